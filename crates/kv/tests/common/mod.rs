//! Helpers of the in-process cluster tests: a cluster of memory engines, one-key writes
//! and reads through the key-value API, and waits on replicas. Time is the runtime's
//! (tokio's clock, and [`RuntimeClock`] for wall-clock time), so the same helpers serve tests
//! on a real clock and the fault scenarios on a paused, simulated one.
#![allow(dead_code, clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use base::Timestamp;
use kv::cluster::{ClusterConfig, LocalCluster, RuntimeClock};
use kv::tso::{LocalTso, TimestampOracle};
use kv::{KvService, Request, Response, RouterConfig};
use mvcc::commands::ReadSet;
use mvcc::{Mutation, MvccReader};
use storage::{GroupCommit, MemoryEngine};
use tokio::time::Instant;

pub type E = MemoryEngine;

/// Where the clusters' wall clock starts (2026-01-01): fixed, so that a replayed seed sees
/// the same timestamps (the engines are new in every test).
pub const CLOCK_ORIGIN_MS: u64 = 1_767_225_600_000;

/// A memory engine whose syncs run in the writer's thread (no syncer thread for a paused
/// runtime to ignore).
pub fn engine() -> Arc<GroupCommit<E>> {
    Arc::new(GroupCommit::synchronous(Arc::new(MemoryEngine::new())))
}

pub async fn cluster(
    nodes: usize,
    deadline: Duration,
) -> (LocalCluster<E>, Arc<dyn TimestampOracle>) {
    cluster_with(nodes, |c| {
        c.router.deadline = deadline;
    })
    .await
}

/// Starts `nodes` nodes with ranges split at "m", fast Raft timing, and `tune` applied.
pub async fn cluster_with(
    nodes: usize,
    tune: impl FnOnce(&mut ClusterConfig),
) -> (LocalCluster<E>, Arc<dyn TimestampOracle>) {
    let clock = Arc::new(RuntimeClock::new(CLOCK_ORIGIN_MS));
    let tso: Arc<dyn TimestampOracle> =
        Arc::new(LocalTso::open(engine(), clock.clone(), 1_000).unwrap());
    let mut config = ClusterConfig {
        split_keys: vec![b"m".to_vec()],
        heartbeat_ms: 50,
        election_timeout_ms: (300, 600),
        router: RouterConfig::default(),
        ..ClusterConfig::default()
    };
    tune(&mut config);
    let engines = (0..nodes).map(|_| engine()).collect();
    let c = LocalCluster::start(engines, tso.clone(), clock, config)
        .await
        .unwrap();
    (c, tso)
}

/// Writes `key = value` in a one-phase commit through `kv`.
pub async fn put(
    kv: &dyn KvService,
    tso: &dyn TimestampOracle,
    key: &[u8],
    value: &[u8],
) -> kv::Result<Timestamp> {
    let start_ts = tso.timestamp().await?;
    match kv
        .send(Request::OnePhaseCommit {
            mutations: vec![Mutation::Put {
                key: key.to_vec(),
                value: value.to_vec(),
            }],
            reads: ReadSet::default(),
            start_ts,
            deadline: None,
            reserved: None,
        })
        .await?
    {
        Response::Committed(ts) => Ok(ts),
        other => panic!("unexpected answer {other:?}"),
    }
}

pub async fn get(
    kv: &dyn KvService,
    tso: &dyn TimestampOracle,
    key: &[u8],
) -> kv::Result<Option<Vec<u8>>> {
    let ts = tso.timestamp().await?;
    match kv
        .send(Request::Get {
            keys: vec![key.to_vec()],
            ts,
            txn: None,
        })
        .await?
    {
        Response::Values(mut v) => Ok(v.remove(0)),
        other => panic!("unexpected answer {other:?}"),
    }
}

/// Waits until node `node`'s own engine holds `key = value` (applied on that replica).
pub async fn applied_on(c: &LocalCluster<E>, node: u64, key: &[u8], value: &[u8]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let engine = c.engine(node).unwrap().engine().clone();
        let found = MvccReader::new(engine.as_ref())
            .get(key, Timestamp::MAX, None)
            .unwrap();
        if found.as_deref() == Some(value) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "node {node} never applied {key:?} (has {found:?})"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits for range `range` to have a leader and returns its node.
pub async fn wait_leader(c: &LocalCluster<E>, range: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(n) = c.leader(range) {
            return n;
        }
        assert!(Instant::now() < deadline, "range {range} has no leader");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Returns a node of `c` other than `node` (the first such).
pub fn another_node(c: &LocalCluster<E>, node: u64) -> u64 {
    c.nodes().into_iter().find(|&n| n != node).unwrap()
}

/// Has `raft` snapshot everything it applied and purge its log up to the snapshot, less the
/// entries the purge policy keeps, and returns the index purged up to: a replica behind it
/// can then only catch up by snapshot. (Purging more than the policy would could race
/// with a snapshot being built: openraft then lowers its purge target, which its debug
/// assertions reject.)
pub async fn snapshot_and_purge(raft: &raft::Raft<E>) -> u64 {
    use openraft::async_runtime::WatchReceiver;
    raft.trigger().snapshot().await.unwrap();
    let applied = raft
        .metrics()
        .borrow_watched()
        .last_applied
        .map(|l| l.index);
    let m = raft
        .wait(Some(Duration::from_secs(10)))
        .metrics(|m| m.snapshot.map(|s| s.index) >= applied, "snapshot built")
        .await
        .unwrap();
    let keep = raft.config().max_in_snapshot_log_to_keep;
    let upto = m.snapshot.unwrap().index.saturating_sub(keep);
    raft.trigger().purge_log(upto).await.unwrap();
    raft.wait(Some(Duration::from_secs(10)))
        .metrics(|m| m.purged.is_some_and(|p| p.index >= upto), "log purged")
        .await
        .unwrap();
    upto
}
