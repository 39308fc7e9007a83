//! SQL conformance through the PostgreSQL protocol, with sqllogictest files:
//! - the project's own files under `tests/slt/`, each on a fresh server, run twice: with the
//!   simple protocol and with the extended protocol (binary results);
//! - the SQLite corpus in `../shared/conformance/sqlite-slt/`, counting passed and failed
//!   records and failing if fewer pass than the recorded baseline.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{DbError, Output, TestServer};
use sqllogictest::{AsyncDB, DBOutput, DefaultColumnType, Record, Runner};
use tokio_postgres::Client;

struct Pg {
    client: Client,
    extended: bool,
}

#[async_trait::async_trait]
impl AsyncDB for Pg {
    type Error = DbError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, DbError> {
        let out = if self.extended {
            common::run_extended(&self.client, sql).await?
        } else {
            common::run_simple(&self.client, sql).await?
        };
        Ok(match out {
            Output::Rows(rows, ncols) => DBOutput::Rows {
                types: vec![DefaultColumnType::Any; ncols],
                rows,
            },
            Output::Count(n) => DBOutput::StatementComplete(n),
        })
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "tessera"
    }

    async fn sleep(dur: Duration) {
        tokio::time::sleep(dur).await;
    }

    fn error_sql_state(err: &DbError) -> Option<String> {
        err.sqlstate.clone()
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Runs the records of one script against a fresh server; returns (passed, failures).
async fn run_records(
    records: Vec<Record<DefaultColumnType>>,
    extended: bool,
    labels: &[&str],
    hash_threshold: usize,
) -> (usize, Vec<String>) {
    let server = TestServer::start().await;
    let url = server.url();
    let mut runner = Runner::new(move || {
        let url = url.clone();
        async move {
            let client = common::connect(&url).await?;
            Ok::<_, DbError>(Pg { client, extended })
        }
    });
    for l in labels {
        runner.add_label(l);
    }
    runner.with_hash_threshold(hash_threshold);
    let mut passed = 0;
    let mut failures = Vec::new();
    for record in records {
        let line = record_line(&record);
        match runner.run_async(record).await {
            Ok(
                sqllogictest::RecordOutput::Query { .. }
                | sqllogictest::RecordOutput::Statement { .. },
            ) => passed += 1,
            Ok(_) => {}
            Err(e) => failures.push(format!("line {line}: {e}")),
        }
    }
    server.stop().await;
    (passed, failures)
}

fn record_line(r: &Record<DefaultColumnType>) -> String {
    match r {
        Record::Statement { loc, .. } | Record::Query { loc, .. } => loc.to_string(),
        _ => String::new(),
    }
}

fn own_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/slt");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "slt"))
        .collect();
    files.sort();
    files
}

fn run_own(extended: bool) {
    let rt = runtime();
    let files = own_files();
    assert!(
        files.len() >= 40,
        "expected at least 40 sqllogictest files, found {}",
        files.len()
    );
    let filter = std::env::var("SLT_FILTER").ok();
    let mut all_failures = Vec::new();
    let mut total = 0;
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        if filter.as_ref().is_some_and(|x| !name.contains(x.as_str())) {
            continue;
        }
        let records = sqllogictest::parse_file(f).unwrap_or_else(|e| panic!("{name}: {e}"));
        let start = Instant::now();
        let (passed, failures) = rt.block_on(run_records(records, extended, &["tessera"], 0));
        total += passed;
        println!(
            "{name}: {passed} passed, {} failed ({:.1}s)",
            failures.len(),
            start.elapsed().as_secs_f64()
        );
        all_failures.extend(failures.into_iter().map(|m| format!("{name} {m}")));
    }
    let mode = if extended { "extended" } else { "simple" };
    println!(
        "{mode} protocol: {total} records passed, {} failed",
        all_failures.len()
    );
    assert!(
        all_failures.is_empty(),
        "{} failures:\n{}",
        all_failures.len(),
        all_failures.join("\n\n")
    );
}

#[test]
fn own_files_simple_protocol() {
    run_own(false);
}

#[test]
fn own_files_extended_protocol() {
    run_own(true);
}

/// Prepares a SQLite corpus file as its README says: hash threshold 8, valuewise results,
/// no trailing comments on condition lines.
fn prepare_sqlite(text: &str) -> String {
    let mut out = String::from("hash-threshold 8\n\ncontrol resultmode valuewise\n\n");
    for line in text.lines() {
        if (line.starts_with("skipif") || line.starts_with("onlyif")) && line.contains('#') {
            out.push_str(line.split('#').next().unwrap_or_default().trim_end());
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

#[test]
fn sqlite_corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance/sqlite-slt");
    if !dir.exists() {
        println!(
            "SKIPPED: the SQLite sqllogictest corpus is absent (expected at {})",
            dir.display()
        );
        return;
    }
    let baseline_file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/slt-sqlite-baseline.txt");
    let baseline: Vec<(String, usize)> = std::fs::read_to_string(&baseline_file)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (f, n) = l.split_once(char::is_whitespace).unwrap();
            (f.to_string(), n.trim().parse().unwrap())
        })
        .collect();
    let rt = runtime();
    let mut below = Vec::new();
    for extended in [false, true] {
        let mode = if extended { "extended" } else { "simple" };
        let (mut total_passed, mut total_failed) = (0, 0);
        for (file, min) in &baseline {
            let path = dir.join(file);
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let records = sqllogictest::parse_with_name(&prepare_sqlite(&text), file.as_str())
                .unwrap_or_else(|e| panic!("{file}: {e}"));
            let start = Instant::now();
            let (passed, failures) =
                rt.block_on(run_records(records, extended, &["postgresql"], 8));
            println!(
                "{mode} {file}: {passed} passed, {} failed ({:.1}s)",
                failures.len(),
                start.elapsed().as_secs_f64()
            );
            for f in failures.iter().take(5) {
                println!("  {}", f.lines().take(6).collect::<Vec<_>>().join("\n  "));
            }
            total_passed += passed;
            total_failed += failures.len();
            if passed < *min {
                below.push(format!(
                    "{mode} protocol, {file}: {passed} passed, baseline {min}"
                ));
            }
        }
        println!("SQLite corpus, {mode} protocol: {total_passed} passed, {total_failed} failed");
    }
    assert!(
        below.is_empty(),
        "fewer records pass than the baseline:\n{}",
        below.join("\n")
    );
}
