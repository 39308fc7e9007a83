//! A cluster of nodes inside one process: each node has its own storage engine and store
//! of replicas; the replicas of a range form a Raft group over an in-process network
//! ([`raft::network::LocalNetwork`]) that tests can cut, and each node routes requests with
//! a [`DistKv`] whose transport obeys the same cuts. Tests kill and restart nodes (a
//! restarted node recovers every replica from its engine), isolate them and heal.
//!
//! The ranges are fixed when the cluster starts (split keys); each has
//! `replication` replicas placed round-robin over the nodes, so leaders start spread out.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use base::Clock;
use openraft::BasicNode;
use openraft::async_runtime::WatchReceiver;
use raft::network::LocalNetwork;
use storage::{Engine, GroupCommit};

use crate::api::{RangeDesc, Request, Response};
use crate::error::{Error, Result};
use crate::replica::{Replica, Store};
use crate::router::{DistKv, NodeTransport, RangeInfo, RouterConfig, StaticDirectory};
use crate::tso::TimestampOracle;

/// Settings of a [`LocalCluster`].
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    /// Replicas per range (odd, at most the number of nodes).
    pub replication: usize,
    /// Keys at which the key space is split into ranges.
    pub split_keys: Vec<Vec<u8>>,
    /// Raft timing: heartbeat and election timeouts, in ms.
    pub heartbeat_ms: u64,
    pub election_timeout_ms: (u64, u64),
    /// A replica snapshots its range after this many log entries and keeps no more of
    /// the log than that once a snapshot covers it (a replica further behind catches up
    /// by snapshot).
    pub snapshot_after_logs: u64,
    pub router: RouterConfig,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            replication: 3,
            split_keys: Vec::new(),
            heartbeat_ms: 100,
            election_timeout_ms: (1_000, 2_000),
            snapshot_after_logs: 10_000,
            router: RouterConfig::default(),
        }
    }
}

type Stores<E> = Arc<Mutex<BTreeMap<u64, Arc<Store<E>>>>>;

/// N nodes in one process.
pub struct LocalCluster<E: Engine> {
    raft_config: Arc<openraft::Config>,
    router: RouterConfig,
    net: LocalNetwork<E>,
    engines: BTreeMap<u64, Arc<GroupCommit<E>>>,
    /// The nodes that are up.
    stores: Stores<E>,
    directory: Arc<StaticDirectory>,
    tso: Arc<dyn TimestampOracle>,
    clock: Arc<dyn Clock>,
}

impl<E: Engine> LocalCluster<E> {
    /// Starts one node per engine (node ids 1, 2, ...) and bootstraps every range whose
    /// replicas are new; nodes whose engines hold replicas already resume from them.
    pub async fn start(
        engines: Vec<Arc<GroupCommit<E>>>,
        tso: Arc<dyn TimestampOracle>,
        clock: Arc<dyn Clock>,
        config: ClusterConfig,
    ) -> Result<Self> {
        let n = engines.len();
        if config.replication == 0 || config.replication.is_multiple_of(2) || config.replication > n
        {
            return Err(Error::CrossRange(format!(
                "replication factor {} needs an odd number of replicas between 1 and the {n} nodes",
                config.replication
            )));
        }
        let raft_config = openraft::Config {
            heartbeat_interval: config.heartbeat_ms,
            election_timeout_min: config.election_timeout_ms.0,
            election_timeout_max: config.election_timeout_ms.1,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(config.snapshot_after_logs),
            max_in_snapshot_log_to_keep: config.snapshot_after_logs,
            ..Default::default()
        }
        .validate()
        .map_err(|e| Error::CrossRange(format!("raft settings: {e}")))?;
        let directory = Arc::new(StaticDirectory::new(plan_ranges(
            &config.split_keys,
            n,
            config.replication,
        ))?);
        let cluster = LocalCluster {
            raft_config: Arc::new(raft_config),
            router: config.router,
            net: LocalNetwork::default(),
            engines: (1..).zip(engines).collect(),
            stores: Arc::default(),
            directory,
            tso,
            clock,
        };
        for &node in cluster.engines.keys() {
            cluster.boot(node).await?;
        }
        for r in cluster.directory.ranges() {
            let members: BTreeMap<u64, BasicNode> = r
                .replicas
                .iter()
                .map(|&n| (n, BasicNode::new(format!("node-{n}"))))
                .collect();
            let first = cluster.replica(r.replicas[0], r.desc.id)?;
            // A range whose replicas were bootstrapped before (a restart) refuses; that
            // is the expected answer, not an error.
            if let Err(e) = first.raft().initialize(members).await {
                tracing::debug!(range = r.desc.id, "not initialized: {e}");
            }
        }
        Ok(cluster)
    }

    /// Starts node `node`'s replicas from its engine and makes it reachable.
    pub async fn boot(&self, node: u64) -> Result<()> {
        let commit = self
            .engines
            .get(&node)
            .ok_or(Error::NodeUnreachable {
                node,
                detail: "no such node".into(),
            })?
            .clone();
        let store = Arc::new(Store::new(node));
        self.net.add_node(node);
        for r in self.directory.ranges() {
            if !r.replicas.contains(&node) {
                continue;
            }
            let range = r.desc.id;
            let raft = raft::Raft::new(
                node,
                self.raft_config.clone(),
                self.net.endpoint(node, range),
                raft::LogStore::new(range, commit.clone()),
                raft::StateMachine::new(range, r.desc.span.clone(), commit.clone()),
            )
            .await
            .map_err(|e| Error::NodeUnreachable {
                node,
                detail: format!("starting replica of range {range}: {e}"),
            })?;
            self.net.add(node, range, raft.clone());
            store.add(Arc::new(Replica::new(
                node,
                r.desc.clone(),
                raft,
                commit.engine().clone(),
                self.tso.clone(),
                self.clock.clone(),
            )));
        }
        self.stores_mut().insert(node, store);
        Ok(())
    }

    /// Stops node `node` as a crash would: it stops answering at once and its replicas
    /// shut down. Its engine keeps what was durable.
    pub async fn kill(&self, node: u64) {
        self.stores_mut().remove(&node);
        for (_, raft) in self.net.remove(node) {
            let _ = raft.shutdown().await;
        }
    }

    /// Cuts every link between `node` and the others.
    pub fn isolate(&self, node: u64) {
        self.net.isolate(node);
    }

    /// Restores every link.
    pub fn heal(&self) {
        self.net.heal();
    }

    /// Loses and delays Raft messages at random from now on (see
    /// [`LocalNetwork::set_faults`]).
    pub fn set_faults(&self, seed: u64, drop_per_mille: u32, max_delay: std::time::Duration) {
        self.net.set_faults(seed, drop_per_mille, max_delay);
    }

    /// Stops losing and delaying Raft messages.
    pub fn clear_faults(&self) {
        self.net.clear_faults();
    }

    /// Returns the key-value service as seen from node `node`.
    pub fn kv(&self, node: u64) -> Arc<DistKv> {
        Arc::new(DistKv::new(
            self.directory.clone(),
            Arc::new(LocalTransport {
                from: node,
                net: self.net.clone(),
                stores: self.stores.clone(),
            }),
            self.router.clone(),
        ))
    }

    /// Returns the ranges and where their replicas are.
    pub fn ranges(&self) -> &[RangeInfo] {
        self.directory.ranges()
    }

    /// Returns the node ids.
    pub fn nodes(&self) -> Vec<u64> {
        self.engines.keys().copied().collect()
    }

    /// Returns node `node`'s engine.
    pub fn engine(&self, node: u64) -> Option<&Arc<GroupCommit<E>>> {
        self.engines.get(&node)
    }

    /// Returns the replica of `range` on node `node`, if the node is up.
    pub fn replica(&self, node: u64, range: u64) -> Result<Arc<Replica<E>>> {
        let store = self
            .stores_mut()
            .get(&node)
            .cloned()
            .ok_or(Error::NodeUnreachable {
                node,
                detail: "node is down".into(),
            })?;
        store.get(range).ok_or(Error::RangeNotFound { range, node })
    }

    /// Returns the node whose replica of `range` is the Raft leader, as the up replicas
    /// report it (the highest term wins).
    pub fn leader(&self, range: u64) -> Option<u64> {
        let stores: Vec<_> = self.stores_mut().values().cloned().collect();
        stores
            .iter()
            .filter_map(|s| s.get(range))
            .map(|r| r.raft().metrics().borrow_watched().clone())
            .filter(|m| m.current_leader == Some(m.id))
            .max_by_key(|m| m.current_term)
            .map(|m| m.id)
    }

    fn stores_mut(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<Store<E>>>> {
        self.stores.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stops every node: every replica first (so none sees its peers vanish and
    /// complains), then the nodes.
    pub async fn shutdown(&self) {
        let stores: Vec<_> = std::mem::take(&mut *self.stores_mut())
            .into_values()
            .collect();
        for replica in stores.iter().flat_map(|s| s.replicas()) {
            let _ = replica.raft().shutdown().await;
        }
        for node in self.nodes() {
            self.net.remove(node);
        }
    }
}

/// Divides the key space at `splits` into ranges with ids 1, 2, ..., and places each
/// range's `replication` replicas on consecutive nodes starting at a different node per
/// range.
fn plan_ranges(splits: &[Vec<u8>], nodes: usize, replication: usize) -> Vec<RangeInfo> {
    RangeDesc::tile(splits)
        .into_iter()
        .enumerate()
        .map(|(i, desc)| RangeInfo {
            desc,
            replicas: (0..replication)
                .map(|j| ((i + j) % nodes) as u64 + 1)
                .collect(),
        })
        .collect()
}

/// Delivers requests between the nodes of a [`LocalCluster`], obeying its link cuts.
struct LocalTransport<E: Engine> {
    from: u64,
    net: LocalNetwork<E>,
    stores: Stores<E>,
}

#[async_trait]
impl<E: Engine> NodeTransport for LocalTransport<E> {
    async fn send(&self, to: u64, range: u64, req: Request) -> Result<Response> {
        let unreachable = |detail: &str| Error::NodeUnreachable {
            node: to,
            detail: detail.into(),
        };
        if to != self.from && !self.net.reachable(self.from, to) {
            return Err(unreachable("link is cut"));
        }
        let store = self
            .stores
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&to)
            .cloned()
            .ok_or_else(|| unreachable("node is down"))?;
        let idempotent = req.is_idempotent();
        let resp = store.execute(range, req).await;
        if to != self.from && !self.net.reachable(to, self.from) {
            // The request ran but its answer is lost: for a write, nobody knows its fate.
            return Err(if idempotent {
                unreachable("reply link is cut")
            } else {
                Error::Ambiguous(format!("the reply from node {to} was lost"))
            });
        }
        resp
    }
}
