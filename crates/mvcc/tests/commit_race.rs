//! Reads that do not hold latches race with commits: a commit turns a lock into a version
//! in one batch, possibly between two reads of one scan or one validation. These tests
//! land a commit right before the first read of each keyspace in turn and check that the
//! scan and the read validation still see it, as the lock or as the version, never as
//! neither.
#![allow(clippy::unwrap_used)]

use std::ops::Bound;
use std::sync::Mutex;

use base::Timestamp;
use mvcc::commands::{self, ReadSet, TxnMeta};
use mvcc::{Error, Mutation, MvccReader, Span};
use storage::{Engine, Keyspace, MemoryEngine, ReadView, ScanIter, WriteBatch};

/// A view of an engine that applies a pending batch just before the first read of one
/// keyspace.
struct CommitOnFirstRead<'a> {
    engine: &'a MemoryEngine,
    at: Keyspace,
    pending: Mutex<Option<WriteBatch>>,
}

impl CommitOnFirstRead<'_> {
    fn trigger(&self, ks: Keyspace) {
        if ks == self.at
            && let Some(b) = self.pending.lock().unwrap().take()
        {
            self.engine.write(&b).unwrap();
        }
    }
}

impl ReadView for CommitOnFirstRead<'_> {
    fn get(&self, ks: Keyspace, key: &[u8]) -> storage::Result<Option<Vec<u8>>> {
        self.trigger(ks);
        self.engine.get(ks, key)
    }

    fn scan(
        &self,
        ks: Keyspace,
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
        reverse: bool,
    ) -> ScanIter<'_> {
        self.trigger(ks);
        self.engine.scan(ks, start, end, reverse)
    }
}

fn ts(t: u64) -> Timestamp {
    Timestamp::new(t)
}

/// Writes `k = old` at 5, prewrites `k = new` for a transaction started at 10, and returns
/// the batch that commits it at 20.
fn setup(engine: &MemoryEngine) -> WriteBatch {
    let put = |value: &str| Mutation::Put {
        key: b"k".to_vec(),
        value: value.as_bytes().to_vec(),
    };
    let mut b = WriteBatch::new();
    let r = MvccReader::new(engine);
    commands::commit_one_phase(
        &r,
        &mut b,
        vec![put("old")],
        &ReadSet::default(),
        ts(1),
        ts(5),
    )
    .unwrap();
    engine.write(&b).unwrap();
    let meta = TxnMeta {
        start_ts: ts(10),
        primary: b"k".to_vec(),
        lock_ttl_ms: 3_000,
    };
    let mut b = WriteBatch::new();
    commands::prewrite(&MvccReader::new(engine), &mut b, &meta, vec![put("new")]).unwrap();
    engine.write(&b).unwrap();
    let mut commit = WriteBatch::new();
    commands::commit(
        &MvccReader::new(engine),
        &mut commit,
        &[b"k".to_vec()],
        ts(10),
        ts(20),
    )
    .unwrap();
    commit
}

/// Sets `engine` up (see [`setup`]) and returns a view that commits the prewritten write
/// right before its first read of `at`.
fn racing_view(engine: &MemoryEngine, at: Keyspace) -> CommitOnFirstRead<'_> {
    let commit = setup(engine);
    CommitOnFirstRead {
        engine,
        at,
        pending: Mutex::new(Some(commit)),
    }
}

const MOMENTS: [Keyspace; 3] = [Keyspace::Locks, Keyspace::Mvcc, Keyspace::Latest];

#[test]
fn a_scan_never_misses_a_commit_that_lands_during_it() {
    for at in MOMENTS {
        let engine = MemoryEngine::new();
        let view = racing_view(&engine, at);
        // Reading at 30, above the commit: the lock (then resolved) or the new value; the old
        // value would be a read of a state that never existed at 30.
        match MvccReader::new(&view).scan(
            &Span::new(b"a".to_vec(), b"z".to_vec()),
            ts(30),
            10,
            false,
            None,
        ) {
            Err(Error::KeyIsLocked(l)) => assert_eq!(l.start_ts, ts(10)),
            Ok(out) => assert_eq!(out.pairs, vec![(b"k".to_vec(), b"new".to_vec())]),
            Err(e) => panic!("{e}"),
        }
        assert!(
            view.pending.lock().unwrap().is_none() || at == Keyspace::Latest,
            "the commit was applied"
        );
    }
}

#[test]
fn read_validation_never_misses_a_commit_that_lands_during_it() {
    for (by_span, at) in [false, true]
        .into_iter()
        .flat_map(|s| MOMENTS.map(|m| (s, m)))
    {
        let engine = MemoryEngine::new();
        let view = racing_view(&engine, at);
        // A transaction that read k at 7 and commits at 30 overlaps the write at 20.
        let mut reads = ReadSet::default();
        if by_span {
            reads
                .spans
                .push((Span::new(b"a".to_vec(), b"z".to_vec()), ts(7)));
        } else {
            reads.keys.push((b"k".to_vec(), ts(7)));
        }
        let err =
            commands::validate_reads(&MvccReader::new(&view), &reads, ts(8), ts(30)).unwrap_err();
        assert!(
            matches!(err, Error::ReadConflict { .. } | Error::ReadLocked { .. }),
            "by span {by_span}, commit before reading {at:?}: {err}"
        );
    }
}
