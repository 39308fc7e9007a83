//! Range splits on the in-process cluster: a split is a Raft command of the range, applied
//! on every replica; the new range gets its own group on the same nodes, the data stays
//! where it is, and requests routed with the old layout still reach the right range.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{applied_on, cluster, get, put, wait_leader};
use kv::{Error, KvService, Request, Response};
use mvcc::commands::ReadSet;
use mvcc::{Mutation, Span};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_makes_a_new_range_on_every_replica() {
    let (c, tso) = cluster(3, Duration::from_secs(10)).await;
    for i in 0..20 {
        put(
            c.kv(1).as_ref(),
            tso.as_ref(),
            format!("p{i:02}").as_bytes(),
            b"before",
        )
        .await
        .unwrap();
    }
    // Range 2 holds "m" onwards; split it at "p10".
    let ranges = c.kv(2).split_at(b"p10").await.unwrap();
    assert_eq!(ranges.len(), 2, "{ranges:?}");
    assert_eq!(ranges[0].id, 2);
    assert_eq!(ranges[0].span, Span::new(b"m".to_vec(), b"p10".to_vec()));
    assert_eq!(ranges[1].span, Span::new(b"p10".to_vec(), Vec::new()));
    let right = ranges[1].id;
    assert!(right > 2, "new range id {right}");
    assert_eq!(c.ranges().len(), 3);
    // Every replica of the old range runs a replica of the new one, which elected a leader.
    wait_leader(&c, right).await;
    for node in c.nodes() {
        let r = c.replica(node, right).unwrap();
        assert_eq!(r.desc().span.start, b"p10".to_vec());
        assert_eq!(c.replica(node, 2).unwrap().desc().span.end, b"p10".to_vec());
    }
    // The data stayed: both halves read back, from every node.
    for node in c.nodes() {
        for i in 0..20 {
            let k = format!("p{i:02}");
            let v = get(c.kv(node).as_ref(), tso.as_ref(), k.as_bytes())
                .await
                .unwrap();
            assert_eq!(v.as_deref(), Some(&b"before"[..]), "{k} via node {node}");
        }
    }
    // Writes on both sides, replicated by their own groups.
    for i in 0..20 {
        let k = format!("p{i:02}");
        put(c.kv(3).as_ref(), tso.as_ref(), k.as_bytes(), b"after")
            .await
            .unwrap();
    }
    for node in c.nodes() {
        applied_on(&c, node, b"p05", b"after").await;
        applied_on(&c, node, b"p15", b"after").await;
    }
    // One request over keys of both halves is divided and its answers put back in order.
    let ts = tso.timestamp().await.unwrap();
    let got = c
        .kv(1)
        .send(Request::Get {
            keys: vec![b"p15".to_vec(), b"p01".to_vec(), b"zz".to_vec()],
            ts,
            txn: None,
        })
        .await
        .unwrap();
    assert_eq!(
        got,
        Response::Values(vec![Some(b"after".to_vec()), Some(b"after".to_vec()), None])
    );
    // A scan across the split comes back whole, in order.
    let mut span = Span::new(b"p".to_vec(), b"q".to_vec());
    let mut keys = Vec::new();
    loop {
        let Response::Scan(out) = c
            .kv(2)
            .send(Request::Scan {
                span: span.clone(),
                ts,
                limit: 100,
                reverse: false,
                txn: None,
            })
            .await
            .unwrap()
        else {
            panic!("not a scan answer");
        };
        keys.extend(out.pairs.into_iter().map(|(k, _)| k));
        match out.resume {
            Some(r) => span.start = r,
            None => break,
        }
    }
    let want: Vec<Vec<u8>> = (0..20).map(|i| format!("p{i:02}").into_bytes()).collect();
    assert_eq!(keys, want);
    // A one-phase commit cannot span two ranges: refused, nothing written.
    let start_ts = tso.timestamp().await.unwrap();
    let err = c
        .kv(1)
        .send(Request::OnePhaseCommit {
            mutations: vec![
                Mutation::Put {
                    key: b"p01".to_vec(),
                    value: b"x".to_vec(),
                },
                Mutation::Put {
                    key: b"p11".to_vec(),
                    value: b"x".to_vec(),
                },
            ],
            reads: ReadSet::default(),
            start_ts,
            deadline: None,
            reserved: None,
        })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::CrossRange(_)), "{err}");
    // Splitting at a range's start again changes nothing.
    let again = c.kv(1).split_at(b"p10").await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].id, right);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_brings_back_the_ranges_splits_made() {
    let (c, tso) = cluster(3, Duration::from_secs(10)).await;
    let ranges = c.kv(1).split_at(b"t").await.unwrap();
    let right = ranges[1].id;
    let more = c.kv(1).split_at(b"w").await.unwrap();
    let far = more[1].id;
    assert_eq!(more[0].id, right);
    assert_eq!(c.ranges().len(), 4);
    for k in ["n1", "t1", "w1"] {
        put(c.kv(2).as_ref(), tso.as_ref(), k.as_bytes(), b"v")
            .await
            .unwrap();
    }
    let leader = wait_leader(&c, right).await;
    c.kill(leader).await;
    put(c.kv(leader % 3 + 1).as_ref(), tso.as_ref(), b"t2", b"v")
        .await
        .unwrap();
    c.boot(leader).await.unwrap();
    // The restarted node's store has the split-off replicas again, with their spans.
    let r = c.replica(leader, right).unwrap();
    assert_eq!(r.desc().span, Span::new(b"t".to_vec(), b"w".to_vec()));
    assert_eq!(
        c.replica(leader, far).unwrap().desc().span,
        Span::new(b"w".to_vec(), Vec::new())
    );
    applied_on(&c, leader, b"t2", b"v").await;
    for k in ["n1", "t1", "w1", "t2"] {
        let v = get(c.kv(leader).as_ref(), tso.as_ref(), k.as_bytes())
            .await
            .unwrap();
        assert_eq!(v.as_deref(), Some(&b"v"[..]), "{k}");
    }
    c.shutdown().await;
}

#[tokio::test]
async fn a_single_node_store_refuses_to_split() {
    let kv = kv::LocalKv::new(
        common::engine(),
        std::sync::Arc::new(
            kv::tso::LocalTso::open(
                common::engine(),
                std::sync::Arc::new(base::SystemClock),
                1_000,
            )
            .unwrap(),
        ),
        std::sync::Arc::new(base::SystemClock),
        kv::LocalKvConfig::default(),
    );
    let err = kv.split_at(b"k").await.unwrap_err();
    assert!(matches!(err, Error::Unsupported(_)), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_missed_a_split_gets_the_new_range_by_snapshot() {
    let (c, tso) = common::cluster_with(3, |c| {
        c.snapshot_after_logs = 20;
    })
    .await;
    let leader = wait_leader(&c, 2).await;
    let behind = common::another_node(&c, leader);
    put(c.kv(leader).as_ref(), tso.as_ref(), b"r-old", b"1")
        .await
        .unwrap();
    applied_on(&c, behind, b"r-old", b"1").await;
    c.kill(behind).await;
    let ranges = c.kv(leader).split_at(b"q").await.unwrap();
    let right = ranges[1].id;
    for i in 0..40 {
        for side in ["n", "r"] {
            let k = format!("{side}{i:03}");
            put(c.kv(leader).as_ref(), tso.as_ref(), k.as_bytes(), b"v")
                .await
                .unwrap();
        }
    }
    // The old range's log past the split is gone: the node that was down cannot apply the
    // split from it, only take a snapshot of the (now smaller) range.
    let lead = c
        .replica(wait_leader(&c, 2).await, 2)
        .unwrap()
        .raft()
        .clone();
    let upto = common::snapshot_and_purge(&lead).await;
    c.boot(behind).await.unwrap();
    // It gets both: the old range by snapshot, the new one as an empty replica the new
    // range's leader fills with a snapshot.
    applied_on(&c, behind, b"n039", b"v").await;
    applied_on(&c, behind, b"r039", b"v").await;
    applied_on(&c, behind, b"r-old", b"1").await;
    let installed = c
        .replica(behind, 2)
        .unwrap()
        .raft()
        .wait(Some(Duration::from_secs(10)))
        .metrics(
            |m| m.snapshot.is_some_and(|s| s.index >= upto),
            "installed the leader's snapshot",
        )
        .await;
    assert!(installed.is_ok(), "the old range caught up from its log");
    let r = c.replica(behind, right).unwrap();
    assert_eq!(r.desc().span, Span::new(b"q".to_vec(), Vec::new()));
    assert_eq!(
        c.replica(behind, 2).unwrap().desc().span,
        Span::new(b"m".to_vec(), b"q".to_vec())
    );
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_over_the_size_limit_split_on_their_own() {
    let (c, tso) = common::cluster_with(3, |c| {
        c.auto_split = Some(kv::autosplit::AutoSplitConfig {
            max_bytes: 16 << 10,
            interval: Duration::from_millis(100),
        });
    })
    .await;
    let value = vec![b'v'; 200];
    let n = 400;
    for i in 0..n {
        put(
            c.kv(i % 3 + 1).as_ref(),
            tso.as_ref(),
            format!("s{i:04}").as_bytes(),
            &value,
        )
        .await
        .unwrap();
    }
    // ~90 KiB of rows in range 2 ("m" on): several splits, each at a key inside.
    let t = std::time::Instant::now();
    while c.ranges().len() < 4 {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "ranges: {:?}",
            c.ranges()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ranges = c.ranges();
    for r in &ranges[1..] {
        assert!(
            r.desc.span.start.as_slice() >= b"m".as_slice(),
            "{ranges:?}"
        );
    }
    for i in (0..n).step_by(13) {
        let k = format!("s{i:04}");
        let got = get(c.kv(2).as_ref(), tso.as_ref(), k.as_bytes())
            .await
            .unwrap();
        assert_eq!(got.as_deref(), Some(value.as_slice()), "{k}");
    }
    c.shutdown().await;
}

#[test]
fn measuring_a_range_finds_a_key_that_halves_it() {
    use storage::{Engine, Keyspace, WriteBatch};
    let engine = storage::MemoryEngine::new();
    let mut b = WriteBatch::new();
    for i in 0..100u32 {
        let k = format!("k{i:03}");
        for ts in 1..=3u64 {
            b.put(
                Keyspace::Mvcc,
                mvcc::key::encode(k.as_bytes(), base::Timestamp::new(ts)),
                vec![0u8; 100],
            );
        }
    }
    engine.write(&b).unwrap();
    let span = Span::new(b"k".to_vec(), b"l".to_vec());
    let (bytes, middle) = kv::autosplit::measure(&engine, &span, u64::MAX).unwrap();
    assert!(bytes > 300 * 100, "{bytes}");
    let middle = middle.unwrap();
    assert!(
        middle.as_slice() > b"k040".as_slice() && middle.as_slice() < b"k060".as_slice(),
        "{}",
        String::from_utf8_lossy(&middle)
    );
    // A limit stops the count early; a span with one key has nowhere to split.
    let (capped, _) = kv::autosplit::measure(&engine, &span, 1000).unwrap();
    assert!(capped < 2000, "{capped}");
    let one = Span::new(b"k000".to_vec(), b"k001".to_vec());
    assert_eq!(
        kv::autosplit::measure(&engine, &one, u64::MAX).unwrap().1,
        None
    );
}
