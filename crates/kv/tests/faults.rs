//! Fault scenarios on the in-process cluster, each run under many seeds. A seed picks the
//! scenario's choices (which node, how many writes, how lossy and slow the Raft links are)
//! and seeds the network's random faults, so a failing seed replays the same schedule of
//! choices: `TESSERA_SEED=<seed> cargo test -p tessera-kv --test faults`. `TESSERA_SEEDS`
//! sets how many seeds run (default 100: a seed takes tens of milliseconds).
//!
//! The scenarios run on a paused runtime clock (`start_paused`, one thread): Raft's and the
//! router's timers, the links' delays, the oracle's and lock TTLs' wall-clock time (a
//! [`kv::cluster::RuntimeClock`]) are all simulated time, which moves only when no task
//! can run. So an election timeout or a 1.5 s request deadline takes no real time, and the
//! times the scenarios assert (writes resume within 5 s of a crash) are simulated ones,
//! free of the machine's load. openraft's random draws (election timeouts) follow the seed
//! as well ([`raft::seed_thread_rng`]).
//!
//! Scenarios: a leader crash, a minority partition and its heal, a follower caught up by
//! snapshot (and not while snapshots are blocked), and range splits under concurrent
//! writes.
#![allow(clippy::unwrap_used)]

mod common;

use std::future::Future;
use std::time::Duration;

use base::Timestamp;
use common::{E, another_node, applied_on, cluster_with, get, put, wait_leader};
use kv::cluster::LocalCluster;
use kv::{Error, KvService, Request, Response};
use mvcc::{MvccReader, Span};
use raft::network::MessageKind;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tokio::time::Instant;

fn seeds() -> Vec<u64> {
    if let Ok(s) = std::env::var("TESSERA_SEED") {
        return vec![s.parse().expect("TESSERA_SEED is a number")];
    }
    let n = std::env::var("TESSERA_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    (1..=n).collect()
}

/// Runs `scenario` once per seed; a failure names its seed.
async fn each_seed<F, Fut>(name: &str, scenario: F)
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    for seed in seeds() {
        let (real, simulated) = (std::time::Instant::now(), Instant::now());
        // The replicas' elections draw from the seed too (they run on this thread).
        raft::seed_thread_rng(seed);
        if let Err(e) = tokio::spawn(scenario(seed)).await {
            panic!("{name} failed with seed {seed} (replay: TESSERA_SEED={seed}): {e}");
        }
        println!(
            "{name}: seed {seed} passed in {:?} ({:?} simulated)",
            real.elapsed(),
            simulated.elapsed()
        );
    }
}

/// A three-node cluster with fast Raft timing, lossy and slow links drawn from `rng`.
async fn faulty_cluster(
    seed: u64,
    rng: &mut StdRng,
) -> (
    LocalCluster<E>,
    std::sync::Arc<dyn kv::tso::TimestampOracle>,
) {
    let (c, tso) = cluster_with(3, |c| {
        c.heartbeat_ms = 30;
        c.election_timeout_ms = (200, 400);
        c.snapshot_after_logs = 20;
        c.router.deadline = Duration::from_millis(1_500);
    })
    .await;
    let drop_per_mille = rng.random_range(0..=30);
    let max_delay = Duration::from_millis(rng.random_range(0..=5));
    c.set_faults(seed, drop_per_mille, max_delay);
    (c, tso)
}

#[tokio::test(start_paused = true)]
async fn leader_crash_then_a_new_leader_and_writes_resume() {
    each_seed("leader crash", |seed| async move {
        let mut rng = StdRng::seed_from_u64(seed);
        let (c, tso) = faulty_cluster(seed, &mut rng).await;
        let range = rng.random_range(1..=2u64);
        let prefix = if range == 1 { "a" } else { "x" };
        let mut acked = Vec::new();
        for i in 0..rng.random_range(1..20) {
            let k = format!("{prefix}{seed}-{i}");
            let via = rng.random_range(1..=3);
            put(c.kv(via).as_ref(), tso.as_ref(), k.as_bytes(), b"v")
                .await
                .unwrap();
            acked.push(k);
        }
        let victim = wait_leader(&c, range).await;
        c.kill(victim).await;
        let survivor = another_node(&c, victim);
        let k = format!("{prefix}{seed}-after");
        let gap = put_retrying(&c, tso.as_ref(), survivor, (k.as_bytes(), b"v"), seed).await;
        println!("seed {seed}: writes resumed {gap:?} (simulated) after the leader's crash");
        acked.push(k);
        assert_ne!(wait_leader(&c, range).await, victim);
        c.boot(victim).await.unwrap();
        for k in &acked {
            let v = get(c.kv(survivor).as_ref(), tso.as_ref(), k.as_bytes())
                .await
                .unwrap();
            assert_eq!(v.as_deref(), Some(&b"v"[..]), "{k}");
            applied_on(&c, victim, k.as_bytes(), b"v").await;
        }
        c.shutdown().await;
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn minority_serves_nothing_and_catches_up_after_heal() {
    each_seed("minority partition", |seed| async move {
        let mut rng = StdRng::seed_from_u64(seed);
        let (c, tso) = faulty_cluster(seed, &mut rng).await;
        put(c.kv(1).as_ref(), tso.as_ref(), b"k", b"old")
            .await
            .unwrap();
        // Cut off the leader of the key's range half the time, a follower otherwise.
        let leader = wait_leader(&c, 1).await;
        let minority = if rng.random_bool(0.5) {
            leader
        } else {
            another_node(&c, leader)
        };
        c.isolate(minority);
        let majority = another_node(&c, minority);
        let gap = put_retrying(&c, tso.as_ref(), majority, (b"k", b"new"), seed).await;
        println!("seed {seed}: the majority took a write {gap:?} (simulated) after the cut");
        let inside = c.kv(minority);
        let (read, write) = tokio::join!(
            get(inside.as_ref(), tso.as_ref(), b"k"),
            put(inside.as_ref(), tso.as_ref(), b"lost", b"x")
        );
        assert!(
            matches!(read, Err(Error::Unavailable { .. })),
            "the minority served a read: {read:?}"
        );
        assert!(
            matches!(write, Err(Error::Unavailable { .. } | Error::Ambiguous(_))),
            "the minority took a write: {write:?}"
        );
        c.heal();
        applied_on(&c, minority, b"k", b"new").await;
        assert_eq!(
            get(inside.as_ref(), tso.as_ref(), b"k")
                .await
                .unwrap()
                .as_deref(),
            Some(&b"new"[..])
        );
        assert_eq!(
            get(inside.as_ref(), tso.as_ref(), b"lost").await.unwrap(),
            None
        );
        c.shutdown().await;
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn follower_far_behind_is_caught_up_by_snapshot() {
    each_seed("snapshot catch-up", |seed| async move {
        let mut rng = StdRng::seed_from_u64(seed);
        let (c, tso) = faulty_cluster(seed, &mut rng).await;
        // Range 2 holds keys from "m": the behind follower's copy of range 1 must stay.
        put(c.kv(1).as_ref(), tso.as_ref(), b"a-untouched", b"1")
            .await
            .unwrap();
        let leader = wait_leader(&c, 2).await;
        let behind = another_node(&c, leader);
        c.kill(behind).await;
        // Far more entries than the log keeps after a snapshot.
        let n = rng.random_range(60..120);
        for i in 0..n {
            put(
                c.kv(leader).as_ref(),
                tso.as_ref(),
                format!("x{i:04}").as_bytes(),
                b"v",
            )
            .await
            .unwrap();
        }
        // The snapshot policy may not have run yet: snapshot and purge the log now.
        let lead = c.replica(leader, 2).unwrap().raft().clone();
        let upto = common::snapshot_and_purge(&lead).await;
        // While snapshots are lost, the restarted node cannot catch up.
        c.block(MessageKind::Snapshot, None);
        c.boot(behind).await.unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let last = format!("x{:04}", n - 1);
        let engine = c.engine(behind).unwrap().engine().clone();
        let early = MvccReader::new(engine.as_ref())
            .get(last.as_bytes(), Timestamp::MAX, None)
            .unwrap();
        assert_eq!(
            early, None,
            "node {behind} caught up with snapshots blocked"
        );
        c.unblock(MessageKind::Snapshot);
        for i in (0..n).step_by(7).chain([n - 1]) {
            applied_on(&c, behind, format!("x{i:04}").as_bytes(), b"v").await;
        }
        applied_on(&c, behind, b"a-untouched", b"1").await;
        // Its state came from a snapshot at or past the purge: the log it needed is gone.
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
        assert!(
            installed.is_ok(),
            "node {behind} caught up without a snapshot: {installed:?}"
        );
        c.shutdown().await;
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn split_during_concurrent_writes_loses_and_duplicates_no_row() {
    each_seed("split under writes", |seed| async move {
        let mut rng = StdRng::seed_from_u64(seed);
        let (c, tso) = faulty_cluster(seed, &mut rng).await;
        let c = std::sync::Arc::new(c);
        // Four writers on keys of range 2 ("m" onwards), each through a node of its own.
        let writers = 4;
        let per_writer = rng.random_range(20..40);
        let handles: Vec<_> = (0..writers)
            .map(|w| {
                let (c, tso) = (c.clone(), tso.clone());
                let via = (w % 3) as u64 + 1;
                tokio::spawn(async move {
                    let (mut acked, mut unknown) = (Vec::new(), Vec::new());
                    for i in 0..per_writer {
                        let k = format!("x{w}-{i:03}");
                        let v = format!("{seed}-{w}-{i}");
                        match put(c.kv(via).as_ref(), tso.as_ref(), k.as_bytes(), v.as_bytes())
                            .await
                        {
                            Ok(_) => acked.push((k, v)),
                            Err(Error::Ambiguous(_)) => unknown.push(k),
                            Err(e) => println!("seed {seed}: {k} not written: {e}"),
                        }
                    }
                    (acked, unknown)
                })
            })
            .collect();
        // Split while they write: between writers 1 and 2, then inside writer 3's keys.
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..100))).await;
        let via = rng.random_range(1..=3);
        let first = split_retrying(&c, via, b"x2").await;
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..100))).await;
        let second = split_retrying(&c, via % 3 + 1, b"x3-010").await;
        let (mut acked, mut unknown) = (Vec::new(), Vec::new());
        for h in handles {
            let (a, u) = h.await.unwrap();
            acked.extend(a);
            unknown.extend(u);
        }
        c.clear_faults();
        // Every acknowledged row is there with its value, read through any node.
        for (k, v) in &acked {
            let got = get(c.kv(1).as_ref(), tso.as_ref(), k.as_bytes())
                .await
                .unwrap();
            assert_eq!(got.as_deref(), Some(v.as_bytes()), "{k}");
        }
        // A scan over the split ranges returns each row once, and none never written.
        let rows = scan_all(&c, tso.as_ref(), Span::new(b"x".to_vec(), b"y".to_vec())).await;
        let mut seen = std::collections::BTreeSet::new();
        for (k, _) in &rows {
            assert!(seen.insert(k.clone()), "row {k:?} returned twice");
        }
        for (k, _) in &acked {
            assert!(seen.contains(k.as_bytes()), "acknowledged row {k} lost");
        }
        let written: std::collections::BTreeSet<Vec<u8>> = acked
            .iter()
            .map(|(k, _)| k.clone().into_bytes())
            .chain(unknown.iter().map(|k| k.clone().into_bytes()))
            .collect();
        for k in &seen {
            assert!(written.contains(k), "row {k:?} was never written");
        }
        // The new ranges run on all three nodes (a follower behind starts its replica
        // when it applies the split) and hold what their leader holds.
        for range in [first, second] {
            wait_leader(&c, range).await;
            for node in c.nodes() {
                let t = Instant::now();
                while let Err(e) = c.replica(node, range) {
                    assert!(t.elapsed() < Duration::from_secs(10), "node {node}: {e}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
        let (k, v) = acked.last().unwrap();
        for node in c.nodes() {
            applied_on(&c, node, k.as_bytes(), v.as_bytes()).await;
        }
        println!(
            "seed {seed}: {} rows acknowledged, {} unknown, ranges {first} and {second} split off",
            acked.len(),
            unknown.len()
        );
        c.shutdown().await;
    })
    .await;
}

/// Writes `key = value` through node `via`, retrying for up to 5 s: one attempt gives up
/// after the router's 1.5 s deadline, and an election over lossy links can take a few
/// rounds. A put is idempotent here (it rewrites the same value), so an ambiguous attempt
/// may be retried. Returns how long it took.
async fn put_retrying(
    c: &LocalCluster<E>,
    tso: &dyn kv::tso::TimestampOracle,
    via: u64,
    (key, value): (&[u8], &[u8]),
    seed: u64,
) -> Duration {
    let t = Instant::now();
    loop {
        match put(c.kv(via).as_ref(), tso, key, value).await {
            Ok(_) => return t.elapsed(),
            Err(e) if t.elapsed() < Duration::from_secs(5) => {
                println!("seed {seed}: a write through node {via} failed, retrying: {e}");
            }
            Err(e) => panic!("no write through node {via} within {:?}: {e}", t.elapsed()),
        }
    }
}

/// Splits at `key` through node `via`, retrying while the links lose messages; returns the
/// id of the range that starts at `key`.
async fn split_retrying(c: &LocalCluster<E>, via: u64, key: &[u8]) -> u64 {
    let t = Instant::now();
    loop {
        match c.kv(via).split_at(key).await {
            Ok(ranges) => {
                return ranges.iter().find(|r| r.span.start == key).unwrap().id;
            }
            Err(e) if t.elapsed() < Duration::from_secs(10) => {
                println!("split at {key:?} failed, retrying: {e}");
            }
            Err(e) => panic!("no split within 10 s: {e}"),
        }
    }
}

/// Reads every row of `span` at one timestamp, following the scan's resume points.
async fn scan_all(
    c: &LocalCluster<E>,
    tso: &dyn kv::tso::TimestampOracle,
    mut span: Span,
) -> Vec<(Vec<u8>, Vec<u8>)> {
    let ts = tso.timestamp().await.unwrap();
    let mut rows = Vec::new();
    loop {
        let req = Request::Scan {
            span: span.clone(),
            ts,
            limit: 7,
            reverse: false,
            txn: None,
        };
        let Response::Scan(out) = c.kv(2).send(req).await.unwrap() else {
            panic!("not a scan answer");
        };
        rows.extend(out.pairs);
        match out.resume {
            Some(r) => span.start = r,
            None => return rows,
        }
    }
}
