//! Child process of the crash test: commits transactions with several writers and prints
//! `ack <writer> <n>` after each acknowledged commit, until it is killed.
//!
//! Usage: crash-writer STORE_DIR WRITERS

use std::io::Write;
use std::sync::Arc;

use server::Node;

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let [_, store, writers] = args.as_slice() else {
        return Err("usage: crash-writer STORE_DIR WRITERS".into());
    };
    let writers: u64 = writers.parse().map_err(|_| "WRITERS must be a number")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let node = Node::open(testkit::crash::config(std::path::Path::new(store)))
            .map_err(|e| e.to_string())?;
        let stdout = Arc::new(std::sync::Mutex::new(std::io::stdout()));
        let mut tasks = Vec::new();
        for w in 0..writers {
            let start = testkit::crash::counter(node.txn(), w).await? + 1;
            let (client, out) = (node.txn().clone(), stdout.clone());
            tasks.push(tokio::spawn(testkit::crash::run_writer(
                client,
                w,
                start,
                move |w, n| {
                    let mut out = out.lock().unwrap_or_else(|e| e.into_inner());
                    // The parent must see every acknowledgement it is sent before the kill.
                    let _ = writeln!(out, "ack {w} {n}");
                    let _ = out.flush();
                },
            )));
        }
        {
            let mut out = stdout.lock().unwrap_or_else(|e| e.into_inner());
            let _ = writeln!(out, "ready");
            let _ = out.flush();
        }
        for t in tasks {
            t.await.map_err(|e| e.to_string())??;
        }
        Ok(())
    })
}
