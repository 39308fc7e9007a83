//! A three-node cluster in one process, through the key-value API: writes from any node
//! reach the range's leaseholder and every replica; the loss of a leaseholder costs a pause,
//! not a write; an isolated leaseholder neither accepts writes nor serves reads, and catches
//! up once the partition heals.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{another_node, applied_on, cluster, get, put, wait_leader};
use kv::{Error, KvService, Request};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_from_any_node_reach_every_replica() {
    let (c, tso) = cluster(3, Duration::from_secs(10)).await;
    assert_eq!(c.ranges().len(), 2);
    // Leaders start spread out: the two ranges' first replicas are different nodes.
    assert_ne!(c.ranges()[0].replicas[0], c.ranges()[1].replicas[0]);
    for (i, node) in [1u64, 2, 3, 1, 2, 3].into_iter().enumerate() {
        let kv = c.kv(node);
        put(
            kv.as_ref(),
            tso.as_ref(),
            format!("a{i}").as_bytes(),
            b"left",
        )
        .await
        .unwrap();
        put(
            kv.as_ref(),
            tso.as_ref(),
            format!("z{i}").as_bytes(),
            b"right",
        )
        .await
        .unwrap();
    }
    for node in c.nodes() {
        let kv = c.kv(node);
        for i in 0..6 {
            let key = format!("a{i}");
            assert_eq!(
                get(kv.as_ref(), tso.as_ref(), key.as_bytes())
                    .await
                    .unwrap()
                    .as_deref(),
                Some(&b"left"[..])
            );
            applied_on(&c, node, key.as_bytes(), b"left").await;
            applied_on(&c, node, format!("z{i}").as_bytes(), b"right").await;
        }
    }
    // A replica refuses a request for keys outside its range.
    let r = c.replica(wait_leader(&c, 1).await, 1).unwrap();
    let err = r
        .execute(Request::Get {
            keys: vec![b"zzz".to_vec()],
            ts: tso.timestamp().await.unwrap(),
            txn: None,
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::KeyOutsideRange { range: 1, .. }),
        "{err}"
    );
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaseholder_crash_costs_a_pause_not_a_write() {
    let (c, tso) = cluster(3, Duration::from_secs(10)).await;
    let mut acked = Vec::new();
    let kv_any = |n| c.kv(n);
    for i in 0..10 {
        let k = format!("b{i:03}");
        put(kv_any(1).as_ref(), tso.as_ref(), k.as_bytes(), b"v")
            .await
            .unwrap();
        acked.push(k);
    }
    let victim = wait_leader(&c, 1).await;
    c.kill(victim).await;
    let survivor = another_node(&c, victim);
    let kv = c.kv(survivor);
    let t = Instant::now();
    put(kv.as_ref(), tso.as_ref(), b"b-after", b"v")
        .await
        .unwrap();
    let gap = t.elapsed();
    println!("range 1: leaseholder node {victim} killed; first write after it took {gap:?}");
    assert!(gap < Duration::from_secs(5), "failover took {gap:?}");
    acked.push("b-after".into());
    for i in 10..20 {
        let k = format!("b{i:03}");
        put(kv.as_ref(), tso.as_ref(), k.as_bytes(), b"v")
            .await
            .unwrap();
        acked.push(k);
    }
    let new_leader = wait_leader(&c, 1).await;
    assert_ne!(new_leader, victim);
    // The killed node restarts from its engine and catches up with every acknowledged write.
    c.boot(victim).await.unwrap();
    for k in &acked {
        assert_eq!(
            get(kv.as_ref(), tso.as_ref(), k.as_bytes())
                .await
                .unwrap()
                .as_deref(),
            Some(&b"v"[..]),
            "{k}"
        );
        applied_on(&c, victim, k.as_bytes(), b"v").await;
    }
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolated_leaseholder_serves_nothing_and_catches_up_after_heal() {
    let (c, tso) = cluster(3, Duration::from_millis(2_500)).await;
    put(c.kv(1).as_ref(), tso.as_ref(), b"c1", b"old")
        .await
        .unwrap();
    let minority = wait_leader(&c, 1).await;
    c.isolate(minority);
    let inside = c.kv(minority);
    // The minority side can neither write nor read (a read could be stale).
    // (The leader may still hold its lease when the write arrives: then the write is
    // proposed but cannot commit, and its fate is unknown to the client.)
    let err = put(inside.as_ref(), tso.as_ref(), b"c2", b"lost")
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Unavailable { .. } | Error::Ambiguous(_)),
        "write in the minority: {err}"
    );
    // The majority elects a leader and takes writes, including a new value of c1.
    let majority = another_node(&c, minority);
    let outside = c.kv(majority);
    put(outside.as_ref(), tso.as_ref(), b"c1", b"new")
        .await
        .unwrap();
    put(outside.as_ref(), tso.as_ref(), b"c3", b"new")
        .await
        .unwrap();
    let err = get(inside.as_ref(), tso.as_ref(), b"c1").await.unwrap_err();
    assert!(
        matches!(err, Error::Unavailable { .. }),
        "read in the minority: {err}"
    );
    c.heal();
    applied_on(&c, minority, b"c1", b"new").await;
    applied_on(&c, minority, b"c3", b"new").await;
    assert_eq!(
        get(inside.as_ref(), tso.as_ref(), b"c1")
            .await
            .unwrap()
            .as_deref(),
        Some(&b"new"[..])
    );
    // The minority's write never happened.
    assert_eq!(
        get(inside.as_ref(), tso.as_ref(), b"c2").await.unwrap(),
        None
    );
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_phase_commit_past_its_deadline_writes_nothing() {
    let (c, tso) = cluster(3, Duration::from_secs(10)).await;
    let kv = c.kv(2);
    let commit = |key: &'static [u8], start_ts, deadline| Request::OnePhaseCommit {
        mutations: vec![mvcc::Mutation::Put {
            key: key.to_vec(),
            value: b"v".to_vec(),
        }],
        reads: Default::default(),
        start_ts,
        deadline: Some(deadline),
        reserved: None,
    };
    // The range takes its commit timestamp after this one: too late.
    let start = tso.timestamp().await.unwrap();
    let err = kv
        .send(commit(b"late", start, start.next()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::DeadlinePassed { deadline, .. } if deadline == start.next()),
        "{err}"
    );
    assert_eq!(get(kv.as_ref(), tso.as_ref(), b"late").await.unwrap(), None);
    // A deadline ten seconds out is met.
    let start = tso.timestamp().await.unwrap();
    let ok = kv
        .send(commit(b"soon", start, start.plus_ms(10_000)))
        .await
        .unwrap();
    assert!(matches!(ok, kv::Response::Committed(ts) if ts < start.plus_ms(10_000)));
    assert_eq!(
        get(kv.as_ref(), tso.as_ref(), b"soon")
            .await
            .unwrap()
            .as_deref(),
        Some(&b"v"[..])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_votes_blocked_no_leader_is_elected_until_they_flow_again() {
    use raft::network::MessageKind;
    let (c, tso) = cluster(3, Duration::from_secs(10)).await;
    let leader = wait_leader(&c, 1).await;
    c.block(MessageKind::Vote, None);
    c.kill(leader).await;
    // Several election timeouts (300-600 ms) pass: candidates campaign, nobody hears them.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(c.leader(1), None, "a leader was elected without votes");
    c.unblock(MessageKind::Vote);
    let new = wait_leader(&c, 1).await;
    assert_ne!(new, leader);
    let kv = c.kv(new);
    put(kv.as_ref(), tso.as_ref(), b"after", b"votes")
        .await
        .unwrap();
    assert_eq!(
        get(kv.as_ref(), tso.as_ref(), b"after")
            .await
            .unwrap()
            .as_deref(),
        Some(&b"votes"[..])
    );
}

/// A one-phase commit with a reserved timestamp commits at it only when no read of its keys
/// was served at or above it and no record of them is: otherwise it asks the oracle. Reads
/// served by a leaseholder that is then killed still count at its successor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_phase_commit_takes_its_reserved_timestamp_only_above_every_read_and_record() {
    use base::Timestamp;
    let (c, tso) = cluster(3, Duration::from_secs(10)).await;
    let kv = c.kv(1);
    let commit = |key: &[u8], value: &[u8], start_ts: Timestamp| Request::OnePhaseCommit {
        mutations: vec![mvcc::Mutation::Put {
            key: key.to_vec(),
            value: value.to_vec(),
        }],
        reads: Default::default(),
        start_ts,
        deadline: None,
        reserved: Some(start_ts.next()),
    };
    let committed = |r: kv::Response| match r {
        kv::Response::Committed(ts) => ts,
        other => panic!("unexpected answer {other:?}"),
    };
    let read_at = |key: &[u8], ts: Timestamp| {
        let kv = kv.clone();
        let key = key.to_vec();
        async move {
            match kv
                .send(Request::Get {
                    keys: vec![key],
                    ts,
                    txn: None,
                })
                .await
                .unwrap()
            {
                kv::Response::Values(mut v) => v.remove(0),
                other => panic!("unexpected answer {other:?}"),
            }
        }
    };

    // The first commit under a leadership takes a floor from the oracle, above every
    // timestamp reserved before it.
    let s = tso.timestamps(2).await.unwrap();
    assert!(committed(kv.send(commit(b"a", b"0", s)).await.unwrap()) > s.next());
    // Nothing forbids: the reserved timestamp.
    let s = tso.timestamps(2).await.unwrap();
    let ts = committed(kv.send(commit(b"a", b"1", s)).await.unwrap());
    assert_eq!(ts, s.next());

    // A read above the reserved timestamp: the commit goes above the read, whose
    // snapshot stays as it was.
    let s = tso.timestamps(2).await.unwrap();
    let r = tso.timestamp().await.unwrap();
    assert_eq!(read_at(b"a", r).await.as_deref(), Some(&b"1"[..]));
    let ts = committed(kv.send(commit(b"a", b"2", s)).await.unwrap());
    assert!(ts > r, "committed at {ts} under a read at {r}");
    assert_eq!(read_at(b"a", r).await.as_deref(), Some(&b"1"[..]));

    // A newer record of the key: the commit goes above it, and is the newest version.
    let older = tso.timestamps(2).await.unwrap();
    let newer = tso.timestamps(2).await.unwrap();
    assert_eq!(
        committed(kv.send(commit(b"b", b"newer", newer)).await.unwrap()),
        newer.next()
    );
    let ts = committed(kv.send(commit(b"b", b"older", older)).await.unwrap());
    assert!(
        ts > newer.next(),
        "committed at {ts} below the newer version"
    );
    let now = tso.timestamp().await.unwrap();
    assert_eq!(read_at(b"b", now).await.as_deref(), Some(&b"older"[..]));

    // A reserved timestamp not above the start is ignored.
    let s = tso.timestamp().await.unwrap();
    let mut req = commit(b"c", b"1", s);
    if let Request::OnePhaseCommit { reserved, .. } = &mut req {
        *reserved = Some(s);
    }
    assert!(committed(kv.send(req).await.unwrap()) > s);

    // A read served by a leaseholder that dies: its successor still commits above it.
    let s = tso.timestamps(2).await.unwrap();
    let r = tso.timestamp().await.unwrap();
    assert_eq!(read_at(b"a", r).await.as_deref(), Some(&b"2"[..]));
    let victim = wait_leader(&c, 1).await;
    c.kill(victim).await;
    let kv = c.kv(another_node(&c, victim));
    let ts = committed(kv.send(commit(b"a", b"3", s)).await.unwrap());
    assert!(
        ts > r,
        "committed at {ts} under a read at {r} of the old leaseholder"
    );
    c.shutdown().await;
}
