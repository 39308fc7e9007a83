//! A corrupt or truncated data file gets a clear error, never a panic or silently wrong data.

#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::{Path, PathBuf};

use storage::{Engine, Error, FjallConfig, FjallEngine, Keyspace, ReadView, WriteBatch};

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

fn fill(dir: &Path, flush: bool) {
    let e = FjallEngine::open(dir, &FjallConfig::for_tests()).unwrap();
    for chunk in 0..20 {
        let mut b = WriteBatch::new();
        for i in 0..100 {
            let k = format!("key-{:05}", chunk * 100 + i);
            b.put(
                Keyspace::Mvcc,
                k.as_bytes(),
                format!("value-{k}-{}", "x".repeat(50)).as_bytes(),
            );
        }
        e.write(&b).unwrap();
    }
    e.sync().unwrap();
    if flush {
        e.flush_memtables().unwrap();
    }
}

/// Opens the store and reads everything, returning the first error.
fn read_all(dir: &Path) -> Result<usize, Error> {
    let e = FjallEngine::open(dir, &FjallConfig::for_tests())?;
    let mut n = 0;
    for i in 0..2000 {
        let k = format!("key-{i:05}");
        if let Some(v) = e.get(Keyspace::Mvcc, k.as_bytes())? {
            assert!(
                v.starts_with(format!("value-{k}").as_bytes()),
                "wrong value for {k}"
            );
        }
    }
    for kv in e.scan(
        Keyspace::Mvcc,
        std::ops::Bound::Unbounded,
        std::ops::Bound::Unbounded,
        false,
    ) {
        kv?;
        n += 1;
    }
    Ok(n)
}

fn expect_corruption(dir: &Path, mentions: &str) {
    let d = dir.to_path_buf();
    let outcome = std::panic::catch_unwind(move || read_all(&d));
    match outcome {
        Ok(Err(err @ Error::Corruption { .. })) => {
            let msg = err.to_string();
            assert!(
                msg.contains("corrupt store") && msg.contains(mentions),
                "{msg}"
            );
            assert!(
                msg.contains(&dir.display().to_string()),
                "names the store: {msg}"
            );
        }
        Ok(other) => panic!("expected a corruption error, got {other:?}"),
        Err(_) => panic!("reading a corrupt store panicked"),
    }
}

fn find(dir: &Path, pred: impl Fn(&Path) -> bool) -> PathBuf {
    files_under(dir)
        .into_iter()
        .find(|p| pred(p))
        .expect("file not found")
}

fn table_file(dir: &Path) -> PathBuf {
    // Keyspace 0 is fjall's own; ours start at 1 in Keyspace::ALL order (1 = mvcc).
    find(dir, |p| p.to_string_lossy().contains("keyspaces/1/tables/"))
}

fn journal_file(dir: &Path) -> PathBuf {
    find(dir, |p| p.extension().is_some_and(|e| e == "jnl"))
}

fn flip_bytes(p: &Path, at: usize) {
    let mut b = fs::read(p).unwrap();
    b[at..at + 8].iter_mut().for_each(|x| *x ^= 0x5a);
    fs::write(p, b).unwrap();
}

fn truncate(p: &Path, len: u64) {
    fs::OpenOptions::new()
        .write(true)
        .open(p)
        .unwrap()
        .set_len(len)
        .unwrap();
}

#[test]
fn intact_store_reads_back_everything() {
    for flush in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        fill(dir.path(), flush);
        assert_eq!(read_all(dir.path()).unwrap(), 2000);
    }
}

#[test]
fn flipped_bytes_in_a_table_file_fail_the_checksum() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), true);
    let table = table_file(dir.path());
    let len = fs::metadata(&table).unwrap().len() as usize;
    flip_bytes(&table, len / 2);
    expect_corruption(dir.path(), "checksum");
}

#[test]
fn truncated_table_file_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), true);
    let table = table_file(dir.path());
    truncate(&table, fs::metadata(&table).unwrap().len() / 2);
    expect_corruption(dir.path(), "table file");
}

#[test]
fn missing_table_file_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), true);
    fs::remove_file(table_file(dir.path())).unwrap();
    expect_corruption(dir.path(), "table file");
}

#[test]
fn damaged_journal_record_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), false);
    // The journal holds ~150 KiB of records at its start (the file is preallocated).
    flip_bytes(&journal_file(dir.path()), 10_000);
    expect_corruption(dir.path(), "journal");
}

#[test]
fn garbage_version_file_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), true);
    fs::write(dir.path().join("data/version"), [9, 9, 9, 9]).unwrap();
    expect_corruption(dir.path(), "format version");
}

/// A journal cut short after its last good record is what a crash mid-write leaves; the
/// store recovers the records before the cut and nothing after it. (A cut inside synced
/// records is a broken disk, which no write-ahead log can tell apart from a crash.)
#[test]
fn journal_cut_short_recovers_a_prefix() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), false);
    truncate(&journal_file(dir.path()), 20_000);
    let n = read_all(dir.path()).unwrap();
    assert!(n > 0 && n < 2000, "recovered {n} of 2000");
    let e = FjallEngine::open(dir.path(), &FjallConfig::for_tests()).unwrap();
    // Whole batches of 100 survive: recovery never splits an atomic batch.
    assert_eq!(n % 100, 0, "recovered {n}");
    assert!(
        e.get(Keyspace::Mvcc, format!("key-{:05}", n - 1).as_bytes())
            .unwrap()
            .is_some()
    );
}
