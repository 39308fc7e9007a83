//! The conformance suite every [`Engine`] implementation must pass.
//!
//! [`run_all`] takes a factory of fresh, empty engines and runs each case on its own engine;
//! a failing case panics with its name. Implementations call it from their tests.

use std::ops::Bound::{self, Excluded, Included, Unbounded};

use crate::engine::{Engine, Keyspace, MAX_STORAGE_KEY_LEN, ReadView, WriteBatch};
use crate::error::Error;

/// A conformance case: takes a fresh engine, panics on failure.
type Case<E> = fn(&E);

/// Runs every case, each on a fresh engine from `fresh`.
pub fn run_all<E: Engine>(mut fresh: impl FnMut() -> E) {
    let cases: &[(&str, Case<E>)] = &[
        ("point_reads_and_writes", point_reads_and_writes),
        ("keyspaces_are_separate", keyspaces_are_separate),
        (
            "scans_respect_bounds_and_direction",
            scans_respect_bounds_and_direction,
        ),
        (
            "batches_are_atomic_and_ordered",
            batches_are_atomic_and_ordered,
        ),
        ("snapshots_are_stable", snapshots_are_stable),
        ("scans_see_one_instant", scans_see_one_instant),
        (
            "oversized_writes_are_rejected_whole",
            oversized_writes_are_rejected_whole,
        ),
        ("large_values_round_trip", large_values_round_trip),
        ("sync_and_empty_batches", sync_and_empty_batches),
    ];
    for (name, case) in cases {
        let engine = fresh();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| case(&engine)));
        if let Err(panic) = result {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!("conformance case {name} failed: {msg}");
        }
    }
}

fn put<E: Engine>(e: &E, ks: Keyspace, k: &[u8], v: &[u8]) {
    let mut b = WriteBatch::new();
    b.put(ks, k, v);
    e.write(&b).expect("write");
}

fn delete<E: Engine>(e: &E, ks: Keyspace, k: &[u8]) {
    let mut b = WriteBatch::new();
    b.delete(ks, k);
    e.write(&b).expect("write");
}

fn get<R: ReadView + ?Sized>(r: &R, ks: Keyspace, k: &[u8]) -> Option<Vec<u8>> {
    r.get(ks, k).expect("get")
}

fn keys<R: ReadView + ?Sized>(
    r: &R,
    ks: Keyspace,
    start: Bound<&[u8]>,
    end: Bound<&[u8]>,
    reverse: bool,
) -> Vec<String> {
    r.scan(ks, start, end, reverse)
        .map(|kv| String::from_utf8(kv.expect("scan").0).expect("utf-8 key"))
        .collect()
}

fn point_reads_and_writes<E: Engine>(e: &E) {
    let ks = Keyspace::Mvcc;
    assert_eq!(get(e, ks, b"a"), None);
    put(e, ks, b"a", b"1");
    assert_eq!(get(e, ks, b"a"), Some(b"1".to_vec()));
    put(e, ks, b"a", b"2");
    assert_eq!(get(e, ks, b"a"), Some(b"2".to_vec()));
    let mut b = WriteBatch::new();
    b.put(ks, b"", b"empty key");
    assert!(
        matches!(e.write(&b), Err(Error::EmptyKey)),
        "empty keys are refused"
    );
    assert_eq!(get(e, ks, b""), None);
    put(e, ks, b"b", b"");
    assert_eq!(
        get(e, ks, b"b"),
        Some(Vec::new()),
        "an empty value is not a delete"
    );
    delete(e, ks, b"a");
    assert_eq!(get(e, ks, b"a"), None);
    delete(e, ks, b"never written");
    assert_eq!(get(e, ks, b"never written"), None);
}

fn keyspaces_are_separate<E: Engine>(e: &E) {
    for (i, ks) in Keyspace::ALL.iter().enumerate() {
        put(e, *ks, b"k", &[i as u8]);
    }
    for (i, ks) in Keyspace::ALL.iter().enumerate() {
        assert_eq!(get(e, *ks, b"k"), Some(vec![i as u8]), "{ks:?}");
        assert_eq!(
            keys(e, *ks, Unbounded, Unbounded, false),
            vec!["k"],
            "{ks:?}"
        );
    }
    delete(e, Keyspace::Locks, b"k");
    assert_eq!(get(e, Keyspace::Locks, b"k"), None);
    assert_eq!(get(e, Keyspace::Mvcc, b"k"), Some(vec![0]));
}

fn scans_respect_bounds_and_direction<E: Engine>(e: &E) {
    let ks = Keyspace::Mvcc;
    for k in ["a", "b", "ba", "c", "d"] {
        put(e, ks, k.as_bytes(), k.as_bytes());
    }
    put(e, Keyspace::Locks, b"bb", b"other keyspace");
    let all = keys(e, ks, Unbounded, Unbounded, false);
    assert_eq!(all, ["a", "b", "ba", "c", "d"]);
    assert_eq!(
        keys(e, ks, Unbounded, Unbounded, true),
        ["d", "c", "ba", "b", "a"]
    );
    assert_eq!(
        keys(e, ks, Included(b"b"), Excluded(b"c"), false),
        ["b", "ba"]
    );
    assert_eq!(
        keys(e, ks, Excluded(b"b"), Included(b"c"), false),
        ["ba", "c"]
    );
    assert_eq!(
        keys(e, ks, Excluded(b"b"), Included(b"c"), true),
        ["c", "ba"]
    );
    assert_eq!(keys(e, ks, Included(b"bz"), Unbounded, false), ["c", "d"]);
    assert_eq!(keys(e, ks, Unbounded, Excluded(b"b"), true), ["a"]);
    // Empty and inverted ranges yield nothing and do not panic.
    assert!(keys(e, ks, Included(b"c"), Excluded(b"c"), false).is_empty());
    assert!(keys(e, ks, Excluded(b"c"), Excluded(b"c"), true).is_empty());
    assert!(keys(e, ks, Included(b"d"), Included(b"a"), false).is_empty());
    assert_eq!(keys(e, ks, Included(b"c"), Included(b"c"), false), ["c"]);
    let prefixed: Vec<_> = e
        .scan_prefix(ks, b"b")
        .map(|kv| kv.expect("scan").0)
        .collect();
    assert_eq!(prefixed, [b"b".to_vec(), b"ba".to_vec()]);
    // Deleted keys disappear from scans in both directions.
    delete(e, ks, b"ba");
    assert_eq!(
        keys(e, ks, Included(b"b"), Unbounded, false),
        ["b", "c", "d"]
    );
    assert_eq!(
        keys(e, ks, Unbounded, Included(b"c"), true),
        ["c", "b", "a"]
    );
    // Binary keys sort bytewise, 0x00 and 0xFF included.
    put(e, Keyspace::System, b"\x00", b"");
    put(e, Keyspace::System, b"\xff\xff", b"");
    put(e, Keyspace::System, b"\x00\x00", b"");
    let bin: Vec<_> = e
        .scan(Keyspace::System, Unbounded, Unbounded, false)
        .map(|kv| kv.expect("scan").0)
        .collect();
    assert_eq!(bin, [vec![0], vec![0, 0], vec![0xff, 0xff]]);
}

fn batches_are_atomic_and_ordered<E: Engine>(e: &E) {
    put(e, Keyspace::Mvcc, b"gone", b"x");
    let before = e.snapshot();
    let mut b = WriteBatch::new();
    b.put(Keyspace::Mvcc, b"a", b"1");
    b.put(Keyspace::Locks, b"a", b"lock");
    b.put(Keyspace::RaftLog, b"1", b"entry");
    b.put(Keyspace::Mvcc, b"twice", b"first");
    b.put(Keyspace::Mvcc, b"twice", b"second");
    b.put(Keyspace::Mvcc, b"put-then-delete", b"x");
    b.delete(Keyspace::Mvcc, b"put-then-delete");
    b.delete(Keyspace::Mvcc, b"gone");
    assert_eq!(b.len(), 8);
    e.write(&b).expect("write");
    assert_eq!(get(e, Keyspace::Mvcc, b"a"), Some(b"1".to_vec()));
    assert_eq!(get(e, Keyspace::Locks, b"a"), Some(b"lock".to_vec()));
    assert_eq!(get(e, Keyspace::RaftLog, b"1"), Some(b"entry".to_vec()));
    assert_eq!(get(e, Keyspace::Mvcc, b"twice"), Some(b"second".to_vec()));
    assert_eq!(get(e, Keyspace::Mvcc, b"put-then-delete"), None);
    assert_eq!(get(e, Keyspace::Mvcc, b"gone"), None);
    // A snapshot from before the batch sees none of it.
    assert_eq!(get(&before, Keyspace::Mvcc, b"a"), None);
    assert_eq!(get(&before, Keyspace::Locks, b"a"), None);
    assert_eq!(get(&before, Keyspace::Mvcc, b"gone"), Some(b"x".to_vec()));
}

fn snapshots_are_stable<E: Engine>(e: &E) {
    let ks = Keyspace::Mvcc;
    put(e, ks, b"a", b"old");
    put(e, ks, b"b", b"old");
    let snap = e.snapshot();
    put(e, ks, b"a", b"new");
    delete(e, ks, b"b");
    put(e, ks, b"c", b"new");
    assert_eq!(get(&snap, ks, b"a"), Some(b"old".to_vec()));
    assert_eq!(get(&snap, ks, b"b"), Some(b"old".to_vec()));
    assert_eq!(get(&snap, ks, b"c"), None);
    assert_eq!(keys(&snap, ks, Unbounded, Unbounded, false), ["a", "b"]);
    assert_eq!(keys(&snap, ks, Unbounded, Unbounded, true), ["b", "a"]);
    assert_eq!(keys(e, ks, Unbounded, Unbounded, false), ["a", "c"]);
    let later = e.snapshot();
    drop(snap);
    put(e, ks, b"a", b"newer");
    assert_eq!(get(&later, ks, b"a"), Some(b"new".to_vec()));
    assert_eq!(get(e, ks, b"a"), Some(b"newer".to_vec()));
}

fn scans_see_one_instant<E: Engine>(e: &E) {
    let ks = Keyspace::Mvcc;
    for k in ["a", "c", "e"] {
        put(e, ks, k.as_bytes(), b"1");
    }
    let mut iter = e.scan(ks, Unbounded, Unbounded, false);
    assert_eq!(iter.next().expect("first").expect("ok").0, b"a");
    put(e, ks, b"b", b"1");
    put(e, ks, b"d", b"1");
    delete(e, ks, b"e");
    let rest: Vec<_> = iter.map(|kv| kv.expect("scan").0).collect();
    assert_eq!(rest, [b"c".to_vec(), b"e".to_vec()]);
}

fn oversized_writes_are_rejected_whole<E: Engine>(e: &E) {
    let mut b = WriteBatch::new();
    b.put(Keyspace::Mvcc, b"fine", b"1");
    b.put(
        Keyspace::Mvcc,
        vec![7u8; MAX_STORAGE_KEY_LEN + 1],
        b"too long a key",
    );
    match e.write(&b) {
        Err(Error::KeyTooLarge { len, max }) => {
            assert_eq!((len, max), (MAX_STORAGE_KEY_LEN + 1, MAX_STORAGE_KEY_LEN));
        }
        other => panic!("expected KeyTooLarge, got {other:?}"),
    }
    assert_eq!(
        get(e, Keyspace::Mvcc, b"fine"),
        None,
        "a rejected batch writes nothing"
    );
    let mut b = WriteBatch::new();
    b.put(
        Keyspace::Mvcc,
        vec![7u8; MAX_STORAGE_KEY_LEN],
        b"longest key",
    );
    e.write(&b).expect("a key at the limit is accepted");
}

fn large_values_round_trip<E: Engine>(e: &E) {
    let big: Vec<u8> = (0..(1 << 20)).map(|i: u32| (i * 31 % 251) as u8).collect();
    put(e, Keyspace::Mvcc, b"big", &big);
    assert_eq!(get(e, Keyspace::Mvcc, b"big"), Some(big));
}

fn sync_and_empty_batches<E: Engine>(e: &E) {
    e.write(&WriteBatch::new()).expect("empty batch");
    e.sync().expect("sync with nothing written");
    put(e, Keyspace::Mvcc, b"a", b"1");
    e.sync().expect("sync");
    assert_eq!(get(e, Keyspace::Mvcc, b"a"), Some(b"1".to_vec()));
}
