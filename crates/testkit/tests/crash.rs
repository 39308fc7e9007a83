//! Kill -9 test with real processes: a child commits transactions and reports each
//! acknowledged commit; the parent kills it at a random moment, reopens the store and
//! checks that every acknowledged commit is there, whole, and nothing else is.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base::{Clock, ManualClock, SystemClock};
use rand::RngExt;
use server::Node;

const CYCLES: usize = 20;
const WRITERS: u64 = 4;

#[test]
fn acknowledged_commits_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut rng = rand::rng();
    let mut total_acked: u64 = 0;
    for cycle in 0..CYCLES {
        let mut child = Command::new(env!("CARGO_BIN_EXE_crash-writer"))
            .arg(&store)
            .arg(WRITERS.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let acked: Arc<Mutex<BTreeMap<u64, u64>>> = Arc::default();
        let ready = Arc::new(Mutex::new(false));
        let reader = {
            let (acked, ready) = (acked.clone(), ready.clone());
            let stdout = child.stdout.take().unwrap();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let line = line.unwrap();
                    let parts: Vec<&str> = line.split_whitespace().collect();
                    match parts.as_slice() {
                        ["ready"] => *ready.lock().unwrap() = true,
                        ["ack", w, n] => {
                            let (w, n): (u64, u64) = (w.parse().unwrap(), n.parse().unwrap());
                            let mut a = acked.lock().unwrap();
                            let e = a.entry(w).or_default();
                            *e = (*e).max(n);
                        }
                        _ => panic!("unexpected line from child: {line}"),
                    }
                }
            })
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !*ready.lock().unwrap() {
            assert!(Instant::now() < deadline, "child never became ready");
            assert!(child.try_wait().unwrap().is_none(), "child exited early");
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(rng.random_range(20..400)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
        let acked = acked.lock().unwrap().clone();
        total_acked = acked.values().sum();

        // Reopen with a clock far ahead, so locks the child left are expired and readers
        // resolve them at once. Each check moves the oracle's timestamps to its clock, and
        // the next child continues from there, so each check goes an hour further.
        let ahead = 3_600_000 * (cycle as u64 + 1);
        let clock = ManualClock::new(SystemClock.now_ms() + ahead);
        let node = Node::open_with_clock(testkit::crash::config(&store), Arc::new(clock)).unwrap();
        let counters = rt
            .block_on(testkit::crash::verify(node.txn(), WRITERS, &acked))
            .unwrap_or_else(|e| panic!("cycle {cycle}: {e}"));
        println!(
            "cycle {cycle}: acknowledged up to {acked:?}, counters after recovery {counters:?}"
        );
        drop(node);
    }
    assert!(total_acked > 0, "the writers never committed anything");
}
