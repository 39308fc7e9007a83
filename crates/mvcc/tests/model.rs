//! Model check of MVCC reads: random committed histories, reads at random timestamps
//! (gets and scans, both directions, with limits) compared with a simple model, before and
//! after garbage collection at a random safe point; and the newest-version index checked
//! against the versions it summarizes.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use base::Timestamp;
use mvcc::commands::{self, ReadSet};
use mvcc::{Mutation, MvccReader, Span};
use proptest::prelude::*;
use storage::{Engine, MemoryEngine, WriteBatch};

/// key -> [(commit_ts, value or delete)], in commit order.
type Model = BTreeMap<Vec<u8>, Vec<(u64, Option<Vec<u8>>)>>;

fn model_get(m: &Model, k: &[u8], ts: u64) -> Option<Vec<u8>> {
    m.get(k)?
        .iter()
        .rev()
        .find(|(c, _)| *c <= ts)
        .and_then(|(_, v)| v.clone())
}

fn model_scan(m: &Model, span: &Span, ts: u64) -> Vec<(Vec<u8>, Vec<u8>)> {
    m.keys()
        .filter(|k| span.contains(k))
        .filter_map(|k| model_get(m, k, ts).map(|v| (k.clone(), v)))
        .collect()
}

fn key() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(prop_oneof![Just(0u8), Just(b'a'), Just(b'b')], 1..3)
}

fn txn() -> impl Strategy<Value = Vec<(Vec<u8>, Option<u8>)>> {
    proptest::collection::vec((key(), proptest::option::weighted(0.8, any::<u8>())), 1..4)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn reads_match_the_model(
        txns in proptest::collection::vec(txn(), 1..12),
        reads in proptest::collection::vec((0u64..30, key(), key(), any::<bool>(), 1usize..5), 1..10),
        safe_point in 0u64..30,
    ) {
        let engine = MemoryEngine::new();
        let mut model = Model::new();
        for (i, writes) in txns.iter().enumerate() {
            let (start, commit) = (2 * i as u64 + 1, 2 * i as u64 + 2);
            let mut dedup = BTreeMap::new();
            for (k, v) in writes {
                dedup.insert(k.clone(), *v);
            }
            let muts = dedup.iter().map(|(k, v)| match v {
                Some(v) => Mutation::Put { key: k.clone(), value: vec![*v] },
                None => Mutation::Delete { key: k.clone() },
            }).collect();
            let mut batch = WriteBatch::new();
            commands::commit_one_phase(&MvccReader::new(&engine), &mut batch, muts, &ReadSet::default(), Timestamp::new(start), Timestamp::new(commit)).unwrap();
            engine.write(&batch).unwrap();
            for (k, v) in dedup {
                model.entry(k).or_default().push((commit, v.map(|v| vec![v])));
            }
        }
        let check = |engine: &MemoryEngine, min_ts: u64| -> Result<(), TestCaseError> {
            let reader = MvccReader::new(engine);
            for (ts, a, b, reverse, limit) in &reads {
                if *ts < min_ts { continue; }
                let at = Timestamp::new(*ts);
                prop_assert_eq!(reader.get(a, at, None).unwrap(), model_get(&model, a, *ts));
                let span = Span::new(a.clone().min(b.clone()), a.clone().max(b.clone()));
                let mut want = model_scan(&model, &span, *ts);
                if *reverse { want.reverse(); }
                // Page through the span with the limit, following the resume key.
                let mut got = Vec::new();
                let mut rest = span.clone();
                loop {
                    let out = reader.scan(&rest, at, *limit, *reverse, None).unwrap();
                    got.extend(out.pairs);
                    match out.resume {
                        Some(r) if *reverse => rest.end = r,
                        Some(r) => rest.start = r,
                        None => break,
                    }
                }
                prop_assert_eq!(got, want);
            }
            // The newest-version index agrees with the versions it summarizes.
            for k in model.keys() {
                let versions: Vec<_> = reader.versions(k, Timestamp::MAX).map(|v| v.unwrap()).collect();
                let latest = reader.latest(k).unwrap();
                prop_assert_eq!(latest.is_some(), !versions.is_empty());
                let newest_data = versions.iter().find(|(_, v)| v.kind.is_data()).map(|(t, v)| (*t, v.kind));
                prop_assert_eq!(latest.and_then(|l| l.data), newest_data);
                if let (Some(l), Some((t, _))) = (latest, versions.first()) {
                    prop_assert!(l.last_ts >= *t);
                }
            }
            Ok(())
        };
        check(&engine, 0)?;
        let mut batch = WriteBatch::new();
        commands::gc(&MvccReader::new(&engine), &mut batch, &Span::default(), Timestamp::new(safe_point), usize::MAX).unwrap();
        engine.write(&batch).unwrap();
        check(&engine, safe_point)?;
    }
}
