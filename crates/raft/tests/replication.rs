//! A range replicated on three in-process replicas: writes reach every replica's engine,
//! the group survives the loss of its leader and a partition of it, a restarted replica
//! catches up from its own store, and a replica that fell behind a purged log catches up
//! by snapshot.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use openraft::{BasicNode, Config};
use raft::network::LocalNetwork;
use raft::{Command, LogStore, Raft, StateMachine};
use storage::{Engine, GroupCommit, Keyspace, MemoryEngine, ReadView, WriteBatch};

type E = MemoryEngine;
const RANGE: u64 = 1;
const WAIT: Option<Duration> = Some(Duration::from_secs(10));

fn config() -> Arc<Config> {
    Arc::new(
        Config {
            heartbeat_interval: 50,
            election_timeout_min: 200,
            election_timeout_max: 400,
            ..Default::default()
        }
        .validate()
        .unwrap(),
    )
}

/// Starts replica `id` of the range on `store` and makes it reachable on `net`.
async fn start_replica<S: Engine>(
    net: &LocalNetwork<S>,
    id: u64,
    store: Arc<GroupCommit<S>>,
) -> Raft<S> {
    let raft = Raft::new(
        id,
        config(),
        net.endpoint(id, RANGE),
        LogStore::new(RANGE, store.clone()),
        StateMachine::new(RANGE, mvcc::Span::default(), store),
    )
    .await
    .unwrap();
    net.add(id, RANGE, raft.clone());
    raft
}

struct Cluster {
    net: LocalNetwork<E>,
    stores: BTreeMap<u64, Arc<GroupCommit<E>>>,
}

impl Cluster {
    async fn start(n: u64) -> Cluster {
        let mut c = Cluster {
            net: LocalNetwork::default(),
            stores: BTreeMap::new(),
        };
        for id in 1..=n {
            c.stores.insert(
                id,
                Arc::new(GroupCommit::new(Arc::new(MemoryEngine::new()))),
            );
            c.boot(id).await;
        }
        let members: BTreeMap<u64, BasicNode> = (1..=n)
            .map(|i| (i, BasicNode::new(format!("node-{i}"))))
            .collect();
        c.net
            .get(1, RANGE)
            .unwrap()
            .initialize(members)
            .await
            .unwrap();
        c
    }

    /// Starts (or restarts) node `id` on its store.
    async fn boot(&self, id: u64) -> Raft<E> {
        start_replica(&self.net, id, self.stores[&id].clone()).await
    }

    /// Waits for a leader among `candidates` that a quorum acknowledges.
    async fn leader(&self, candidates: &[u64]) -> Raft<E> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            for &id in candidates {
                let Some(r) = self.net.get(id, RANGE) else {
                    continue;
                };
                if r.current_leader().await == Some(id)
                    && r.wait(Some(Duration::from_millis(500)))
                        .leader_with_quorum_acked(None, "lease")
                        .await
                        .is_ok()
                {
                    return r;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no leader among {candidates:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn value(&self, id: u64, key: &str) -> Option<Vec<u8>> {
        self.stores[&id]
            .engine()
            .get(Keyspace::Mvcc, key.as_bytes())
            .unwrap()
    }

    /// Waits until node `id` has applied the log up to the leader's last write (a
    /// blank entry first, so that everything committed before is covered).
    async fn caught_up(&self, id: u64, leader: &Raft<E>) {
        let index = Some(leader.write_blank().await.unwrap().log_id.index);
        self.net
            .get(id, RANGE)
            .unwrap()
            .wait(WAIT)
            .applied_index_at_least(index, "caught up")
            .await
            .unwrap();
    }
}

fn put(key: &str, value: &str) -> Command {
    let mut b = WriteBatch::new();
    b.put(
        Keyspace::Mvcc,
        key.as_bytes().to_vec(),
        value.as_bytes().to_vec(),
    );
    Command::from_batch(&b).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_replicate_and_survive_the_leader() {
    let c = Cluster::start(3).await;
    let leader = c.leader(&[1, 2, 3]).await;
    for i in 0..20 {
        leader
            .client_write(put(&format!("k{i:02}"), "a"))
            .await
            .unwrap();
    }
    for id in 1..=3 {
        c.caught_up(id, &leader).await;
        assert_eq!(c.value(id, "k19"), Some(b"a".to_vec()), "node {id}");
    }

    // The leader's process dies: the others elect a new one and keep accepting writes.
    let old = *leader.node_id();
    c.net.remove(old)[&RANGE].shutdown().await.unwrap();
    let rest: Vec<u64> = (1..=3).filter(|&i| i != old).collect();
    let leader = c.leader(&rest).await;
    assert_ne!(*leader.node_id(), old);
    for i in 20..40 {
        leader
            .client_write(put(&format!("k{i:02}"), "b"))
            .await
            .unwrap();
    }
    for &id in &rest {
        c.caught_up(id, &leader).await;
        assert_eq!(c.value(id, "k39"), Some(b"b".to_vec()), "node {id}");
    }

    // It restarts on its own store: its log and vote are there, and it catches up.
    assert_eq!(c.value(old, "k39"), None);
    c.boot(old).await;
    c.caught_up(old, &leader).await;
    for i in 0..40 {
        let want = if i < 20 { b"a" } else { b"b" };
        assert_eq!(
            c.value(old, &format!("k{i:02}")),
            Some(want.to_vec()),
            "k{i}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_leader_loses_its_writes_and_catches_up() {
    let c = Cluster::start(3).await;
    let leader = c.leader(&[1, 2, 3]).await;
    leader.client_write(put("before", "1")).await.unwrap();
    let old = *leader.node_id();

    c.net.isolate(old);
    // The minority leader cannot commit: its write does not complete.
    let stuck = {
        let leader = leader.clone();
        tokio::spawn(async move { leader.client_write(put("minority", "x")).await })
    };
    let rest: Vec<u64> = (1..=3).filter(|&i| i != old).collect();
    let new = c.leader(&rest).await;
    new.client_write(put("majority", "y")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!stuck.is_finished(), "a minority leader committed a write");

    c.net.heal();
    c.caught_up(old, &new).await;
    // The old leader's uncommitted entry was replaced; the client learns it was not
    // committed (its request fails rather than reporting success).
    let r = tokio::time::timeout(Duration::from_secs(10), stuck)
        .await
        .unwrap()
        .unwrap();
    assert!(r.is_err(), "the minority write reported success: {r:?}");
    for id in 1..=3 {
        assert_eq!(c.value(id, "majority"), Some(b"y".to_vec()), "node {id}");
        assert_eq!(c.value(id, "minority"), None, "node {id}");
        assert_eq!(c.value(id, "before"), Some(b"1".to_vec()), "node {id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_behind_a_purged_log_catches_up_by_snapshot() {
    let c = Cluster::start(3).await;
    let leader = c.leader(&[1, 2, 3]).await;
    let lagging = (1..=3).find(|&i| i != *leader.node_id()).unwrap();
    c.net.remove(lagging)[&RANGE].shutdown().await.unwrap();
    for i in 0..30 {
        leader
            .client_write(put(&format!("s{i:02}"), "v"))
            .await
            .unwrap();
    }
    // The leader compacts its log past everything the lagging replica has.
    leader.trigger().snapshot().await.unwrap();
    let snap = leader
        .wait(WAIT)
        .metrics(
            |m| m.snapshot.as_ref().is_some_and(|s| s.index >= 30),
            "snapshot",
        )
        .await
        .unwrap()
        .snapshot
        .unwrap();
    leader.trigger().purge_log(snap.index).await.unwrap();
    leader
        .wait(WAIT)
        .metrics(
            |m| m.purged.as_ref().is_some_and(|p| p.index >= snap.index),
            "purged",
        )
        .await
        .unwrap();

    c.boot(lagging).await;
    c.caught_up(lagging, &leader).await;
    for i in 0..30 {
        assert_eq!(c.value(lagging, &format!("s{i:02}")), Some(b"v".to_vec()));
    }
    // And it keeps replicating after the snapshot.
    leader.client_write(put("after", "w")).await.unwrap();
    c.caught_up(lagging, &leader).await;
    assert_eq!(c.value(lagging, "after"), Some(b"w".to_vec()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_cannot_write_outside_the_range_keyspaces() {
    let mut b = WriteBatch::new();
    b.put(Keyspace::RaftState, b"x".to_vec(), b"y".to_vec());
    assert!(Command::from_batch(&b).is_err());
}

/// The log survives a real restart of a durable store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_replica_on_fjall_keeps_its_log_across_restarts() {
    use storage::{FjallConfig, FjallEngine};
    let dir = tempfile::tempdir().unwrap();
    let net = LocalNetwork::<FjallEngine>::default();
    let open = || {
        Arc::new(GroupCommit::new(Arc::new(
            FjallEngine::open(dir.path(), &FjallConfig::for_tests()).unwrap(),
        )))
    };
    {
        let r = start_replica(&net, 1, open()).await;
        r.initialize(BTreeMap::from([(1, BasicNode::new("n1"))]))
            .await
            .unwrap();
        r.wait(WAIT)
            .leader_with_quorum_acked(None, "leader")
            .await
            .unwrap();
        for i in 0..10 {
            r.client_write(put(&format!("d{i}"), "x")).await.unwrap();
        }
        net.remove(1);
        r.shutdown().await.unwrap();
    }
    let store = open();
    let r = start_replica(&net, 1, store.clone()).await;
    r.wait(WAIT)
        .leader_with_quorum_acked(None, "leader again")
        .await
        .unwrap();
    r.client_write(put("d10", "y")).await.unwrap();
    for i in 0..10 {
        assert_eq!(
            store
                .engine()
                .get(Keyspace::Mvcc, format!("d{i}").as_bytes())
                .unwrap(),
            Some(b"x".to_vec())
        );
    }
    assert_eq!(
        store.engine().get(Keyspace::Mvcc, b"d10").unwrap(),
        Some(b"y".to_vec())
    );
    r.shutdown().await.unwrap();
}
