//! Drives adya's list-append and rw-register workloads through SQL at SERIALIZABLE against
//! a set of PostgreSQL URLs and checks the histories (shared by the in-process cluster's
//! and the real processes' tests; tables `adya_lists` and `adya_regs` must exist).
#![allow(dead_code, clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use adya::r#gen::{GenOpts, Kind, TxnOp};
use adya::run::{Client, Outcome, RunOpts};
use adya::{History, Valid, Workload};
use tokio::runtime::Handle;

/// Creates adya's tables and splits each at `splits` (a `VALUES` list).
pub async fn create_tables(client: &tokio_postgres::Client, splits: &str) {
    client
        .batch_execute(&format!(
            "CREATE TABLE adya_lists (k INT8 PRIMARY KEY, v TEXT NOT NULL);
             CREATE TABLE adya_regs (k INT8 PRIMARY KEY, v INT8 NOT NULL);
             ALTER TABLE adya_lists SPLIT AT VALUES {splits};
             ALTER TABLE adya_regs SPLIT AT VALUES {splits};"
        ))
        .await
        .unwrap();
}

/// One adya process: a connection to one node, used from a runner thread.
struct SqlClient {
    rt: Handle,
    client: tokio_postgres::Client,
    /// List-append (else rw-register).
    list: bool,
}

/// Whether an error at COMMIT leaves the outcome unknown: the connection broke, the
/// server said so (40003), or no leaseholder answered (the commit may have landed).
fn unknown_outcome(e: &tokio_postgres::Error) -> bool {
    match e.code().map(|c| c.code()) {
        None => true,
        Some(code) => code == "40003" || code == "58000",
    }
}

impl Client for SqlClient {
    fn txn(&mut self, ops: &[TxnOp]) -> Outcome {
        let (client, list) = (&self.client, self.list);
        let body = async {
            client
                .batch_execute("BEGIN ISOLATION LEVEL SERIALIZABLE")
                .await?;
            let mut reads = Vec::with_capacity(ops.len());
            for op in ops {
                reads.push(match *op {
                    TxnOp::Append(k, v) => {
                        client
                            .execute(
                                "INSERT INTO adya_lists AS t (k, v) VALUES ($1, $2)
                                 ON CONFLICT (k) DO UPDATE SET v = t.v || ',' || excluded.v",
                                &[&k, &v.to_string()],
                            )
                            .await?;
                        None
                    }
                    TxnOp::Write(k, v) => {
                        client
                            .execute(
                                "INSERT INTO adya_regs (k, v) VALUES ($1, $2)
                                 ON CONFLICT (k) DO UPDATE SET v = excluded.v",
                                &[&k, &v],
                            )
                            .await?;
                        None
                    }
                    TxnOp::Read(k) if list => {
                        let row = client
                            .query_opt("SELECT v FROM adya_lists WHERE k = $1", &[&k])
                            .await?;
                        let text: Option<String> = row.map(|r| r.get(0));
                        Some(adya::run::parse_list(text.as_deref()))
                    }
                    TxnOp::Read(k) => {
                        let row = client
                            .query_opt("SELECT v FROM adya_regs WHERE k = $1", &[&k])
                            .await?;
                        Some(row.map(|r| r.get::<_, i64>(0)).into_iter().collect())
                    }
                });
            }
            Ok::<_, tokio_postgres::Error>(reads)
        };
        let reads = match self.rt.block_on(body) {
            Ok(r) => r,
            Err(e) => {
                let _ = self.rt.block_on(client.batch_execute("ROLLBACK"));
                // Nothing is written before COMMIT.
                return Outcome::Fail(e.to_string());
            }
        };
        match self.rt.block_on(client.batch_execute("COMMIT")) {
            Ok(()) => Outcome::Ok(reads),
            Err(e) if unknown_outcome(&e) => Outcome::Info(e.to_string()),
            Err(e) => Outcome::Fail(e.to_string()),
        }
    }

    fn healthy(&mut self) -> bool {
        !self.client.is_closed()
    }
}

/// Runs adya's `kind` workload for `secs` with `processes` clients spread over `urls`
/// (process p starts on `urls[p % n]` and moves on to the next URL when it reconnects,
/// as after a commit of unknown outcome) and checks the history as strict-serializable.
/// Returns the verdict and a one-line summary.
pub async fn run_workload(
    urls: Vec<String>,
    kind: Kind,
    seed: u64,
    secs: u64,
    processes: usize,
) -> (Valid, String) {
    let rt = Handle::current();
    let next = Arc::new(AtomicUsize::new(0));
    let opts = RunOpts {
        processes,
        txns: 1_000_000,
        time_limit: Some(Duration::from_secs(secs)),
        r#gen: GenOpts {
            kind,
            ..GenOpts::default()
        },
        seed,
        nemesis: None,
    };
    let (history, stats) = tokio::task::spawn_blocking(move || {
        let connect = move || -> Result<Box<dyn Client>, adya::Error> {
            let url = &urls[next.fetch_add(1, Ordering::Relaxed) % urls.len()];
            let (client, conn) = rt
                .block_on(tokio_postgres::connect(url, tokio_postgres::NoTls))
                .map_err(|e| adya::Error::new(e.to_string()))?;
            rt.spawn(conn);
            Ok(Box::new(SqlClient {
                rt: rt.clone(),
                client,
                list: kind == Kind::ListAppend,
            }))
        };
        adya::run::run(&connect, &opts)
    })
    .await
    .unwrap()
    .unwrap();
    let h = History::from_json(&history).unwrap();
    let workload = match kind {
        Kind::ListAppend => Workload::ListAppend,
        Kind::RwRegister => Workload::RwRegister,
    };
    let report = adya::check(&h, workload, &adya::Opts::default());
    let summary = format!(
        "{kind:?}: {} ok, {} failed, {} unknown; valid {:?}, anomalies {:?}",
        stats.ok, stats.fail, stats.info, report.valid, report.anomaly_types
    );
    (report.valid, summary)
}
