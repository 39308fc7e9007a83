//! Tessera benchmarks. Run in release mode; see docs/benchmarks.md for the figures.
//!
//! ```text
//! cargo run --release -p tessera-bench -- storage [--dir DIR] [--secs N]
//! ```
//!
//! `storage` measures, on one durable store in DIR (default: a temporary directory under
//! /tmp, the disk CI uses):
//! - the raw disk: 4 KiB write + fdatasync in a loop, one writer (the serial floor);
//! - durable single-row transactions per second with 1, 16 and 64 concurrent writers, with
//!   latency percentiles and how many commits each fsync carried (group commit);
//! - point reads per second (read-only transactions of one get) and rows scanned per
//!   second (a scan of the whole table in pages).

mod cluster_bench;
mod storage_bench;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("storage") => storage_bench::run(&args[1..]),
        Some("cluster") => cluster_bench::run(&args[1..]),
        _ => Err("usage: tessera-bench storage [--dir DIR] [--secs N]\n       tessera-bench cluster [--dir DIR] [--secs N] [--clients 1,16,128]".to_string()),
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
