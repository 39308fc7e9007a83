//! Model-based tests: random sequences of operations run against an engine and against a
//! `BTreeMap` per keyspace; every read must agree with the model, snapshots included, and
//! (for the durable engine) so must a reopened store after a sync.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::ops::Bound;

use proptest::prelude::*;
use storage::{Engine, FjallConfig, FjallEngine, Keyspace, MemoryEngine, ReadView, WriteBatch};

type Model = Vec<BTreeMap<Vec<u8>, Vec<u8>>>;

const SPACES: [Keyspace; 2] = [Keyspace::Mvcc, Keyspace::Locks];

#[derive(Clone, Debug)]
enum Op {
    Batch(Vec<(usize, Vec<u8>, Option<Vec<u8>>)>),
    Get(usize, Vec<u8>),
    Scan {
        ks: usize,
        start: Bound<Vec<u8>>,
        end: Bound<Vec<u8>>,
        reverse: bool,
        take: usize,
    },
    TakeSnapshot,
    CheckSnapshot(usize),
    DropSnapshot(usize),
    SyncAndReopen,
}

fn key() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(prop_oneof![Just(0u8), Just(1), Just(2), Just(0xff)], 1..4)
}

fn bound() -> impl Strategy<Value = Bound<Vec<u8>>> {
    prop_oneof![
        Just(Bound::Unbounded),
        key().prop_map(Bound::Included),
        key().prop_map(Bound::Excluded),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let write = (
        0..SPACES.len(),
        key(),
        proptest::option::weighted(0.7, any::<Vec<u8>>()),
    );
    prop_oneof![
        6 => proptest::collection::vec(write, 1..5).prop_map(Op::Batch),
        2 => (0..SPACES.len(), key()).prop_map(|(ks, k)| Op::Get(ks, k)),
        2 => (0..SPACES.len(), bound(), bound(), any::<bool>(), 1..20usize)
            .prop_map(|(ks, start, end, reverse, take)| Op::Scan { ks, start, end, reverse, take }),
        1 => Just(Op::TakeSnapshot),
        1 => (0..4usize).prop_map(Op::CheckSnapshot),
        1 => (0..4usize).prop_map(Op::DropSnapshot),
        1 => Just(Op::SyncAndReopen),
    ]
}

fn in_range(k: &[u8], start: &Bound<Vec<u8>>, end: &Bound<Vec<u8>>) -> bool {
    let after_start = match start {
        Bound::Included(s) => k >= s.as_slice(),
        Bound::Excluded(s) => k > s.as_slice(),
        Bound::Unbounded => true,
    };
    let before_end = match end {
        Bound::Included(e) => k <= e.as_slice(),
        Bound::Excluded(e) => k < e.as_slice(),
        Bound::Unbounded => true,
    };
    after_start && before_end
}

fn scan<R: ReadView>(
    r: &R,
    ks: Keyspace,
    start: &Bound<Vec<u8>>,
    end: &Bound<Vec<u8>>,
    reverse: bool,
) -> Vec<(Vec<u8>, Vec<u8>)> {
    r.scan(
        ks,
        start.as_ref().map(Vec::as_slice),
        end.as_ref().map(Vec::as_slice),
        reverse,
    )
    .collect::<Result<_, _>>()
    .unwrap()
}

fn full<R: ReadView>(r: &R) -> Model {
    SPACES
        .iter()
        .map(|ks| {
            scan(r, *ks, &Bound::Unbounded, &Bound::Unbounded, false)
                .into_iter()
                .collect()
        })
        .collect()
}

/// Runs `ops` on an engine, checking against the model. `reopen` closes and reopens the
/// engine after a sync (for the durable engine) or returns it unchanged.
fn check<E: Engine>(mut engine: E, ops: &[Op], reopen: impl Fn(E) -> E) {
    let mut model: Model = vec![BTreeMap::new(); SPACES.len()];
    let mut snapshots: Vec<(E::Snapshot, Model)> = Vec::new();
    for op in ops {
        match op {
            Op::Batch(writes) => {
                let mut b = WriteBatch::new();
                for (ks, k, v) in writes {
                    match v {
                        Some(v) => {
                            b.put(SPACES[*ks], k.clone(), v.clone());
                            model[*ks].insert(k.clone(), v.clone());
                        }
                        None => {
                            b.delete(SPACES[*ks], k.clone());
                            model[*ks].remove(k);
                        }
                    }
                }
                engine.write(&b).unwrap();
            }
            Op::Get(ks, k) => {
                assert_eq!(
                    engine.get(SPACES[*ks], k).unwrap().as_ref(),
                    model[*ks].get(k),
                    "get {k:?}"
                );
            }
            Op::Scan {
                ks,
                start,
                end,
                reverse,
                take,
            } => {
                let got: Vec<_> = scan(&engine, SPACES[*ks], start, end, *reverse)
                    .into_iter()
                    .take(*take)
                    .collect();
                let mut want: Vec<_> = model[*ks]
                    .iter()
                    .filter(|(k, _)| in_range(k, start, end))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                if *reverse {
                    want.reverse();
                }
                want.truncate(*take);
                assert_eq!(got, want, "scan {start:?}..{end:?} reverse={reverse}");
            }
            Op::TakeSnapshot => snapshots.push((engine.snapshot(), model.clone())),
            Op::CheckSnapshot(i) => {
                if let Some((snap, then)) = snapshots.get(*i) {
                    assert_eq!(&full(snap), then, "snapshot {i}");
                }
            }
            Op::DropSnapshot(i) => {
                if *i < snapshots.len() {
                    snapshots.remove(*i);
                }
            }
            Op::SyncAndReopen => {
                engine.sync().unwrap();
                snapshots.clear();
                engine = reopen(engine);
                assert_eq!(full(&engine), model, "after reopen");
            }
        }
    }
    assert_eq!(full(&engine), model, "at the end");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn memory_engine_matches_model(ops in proptest::collection::vec(op(), 1..60)) {
        check(MemoryEngine::new(), &ops, |e| e);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn fjall_engine_matches_model(ops in proptest::collection::vec(op(), 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        let open = || FjallEngine::open(dir.path(), &FjallConfig::for_tests()).unwrap();
        check(open(), &ops, |e| {
            drop(e);
            open()
        });
    }
}
