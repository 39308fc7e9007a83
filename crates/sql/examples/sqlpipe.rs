//! Runs SQL read from stdin against an in-memory store and prints the results: a tool
//! for poking at the SQL layer without the wire protocol.
//!
//! `echo "SELECT 1;" | cargo run -p tessera-sql --example sqlpipe`

use std::io::Read;
use std::sync::Arc;

use base::SystemClock;
use kv::tso::LocalTso;
use kv::{LocalKv, LocalKvConfig};
use sql::{Outcome, SqlEngine, textio};
use storage::{GroupCommit, MemoryEngine};
use txn::{TxnClient, TxnConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input)?;
    rt.block_on(async move {
        let clock = Arc::new(SystemClock);
        let commit = Arc::new(GroupCommit::new(Arc::new(MemoryEngine::new())));
        let tso = Arc::new(LocalTso::open(commit.clone(), clock.clone(), 3000)?);
        let kv = Arc::new(LocalKv::new(
            commit,
            tso.clone(),
            clock.clone(),
            LocalKvConfig::default(),
        ));
        let client = TxnClient::new(kv, tso, clock.clone(), TxnConfig::default());
        let engine = SqlEngine::new(client, clock);
        let mut session = engine.session("root", "postgres").await?;
        for (_, piece) in sql::parse::split_statements(&input) {
            for result in session.simple_query(&piece).await {
                match result {
                    Err(e) => println!("ERROR {:?}: {}", e.kind, e.message),
                    Ok(out) => {
                        for n in out.notices {
                            println!("NOTICE: {n}");
                        }
                        match out.outcome {
                            Outcome::Rows { columns, rows, tag } => {
                                let names: Vec<String> = columns
                                    .iter()
                                    .map(|c| format!("{}:{}", c.name, c.ty))
                                    .collect();
                                println!("{}", names.join(" | "));
                                for r in &rows {
                                    let cells: Vec<String> = r
                                        .iter()
                                        .zip(columns.iter())
                                        .map(|(v, c)| {
                                            textio::to_text(v, &c.ty)
                                                .unwrap_or_else(|| "NULL".into())
                                        })
                                        .collect();
                                    println!("{}", cells.join(" | "));
                                }
                                println!("{tag} ({} rows)", rows.len());
                            }
                            Outcome::Command(tag) => println!("{tag}"),
                            other => println!("{other:?}"),
                        }
                    }
                }
            }
        }
        Ok::<_, Box<dyn std::error::Error>>(())
    })
}
