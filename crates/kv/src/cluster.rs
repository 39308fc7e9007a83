//! A cluster of nodes inside one process: each node has its own storage engine and store
//! of replicas; the replicas of a range form a Raft group over an in-process network
//! ([`raft::network::LocalNetwork`]) that tests can cut, and each node routes requests with
//! a [`DistKv`] whose transport obeys the same cuts. Tests kill and restart nodes (a
//! restarted node recovers every replica from its engine), isolate them and heal.
//!
//! The ranges are laid out when the cluster starts (split keys); each has `replication`
//! replicas placed round-robin over the nodes, so leaders start spread out. A range split
//! ([`crate::KvService::split_at`]) makes a new range on the same nodes: every node that
//! applies the split starts the new range's replica.

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
use crate::router::{
    DistKv, NodeTransport, RangeDirectory, RangeIds, RangeInfo, RouterConfig, StaticDirectory,
};
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
    /// Splits ranges over a size, if set.
    pub auto_split: Option<crate::autosplit::AutoSplitConfig>,
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
            auto_split: None,
        }
    }
}

/// Wall-clock time that moves with the tokio runtime's clock, from `origin_ms` at its
/// creation. On a runtime whose time is paused (`start_paused`, as the simulated cluster's
/// fault tests run) that clock is manual: it stands still while anything can run and jumps
/// to the next timer when nothing can (or when a test calls `tokio::time::advance`). So the
/// timers of Raft, the router and the network's delays, and the time of the oracle and of
/// lock TTLs, all follow one simulated clock, and a scenario of minutes takes milliseconds.
/// On an ordinary runtime it is the monotonic clock, offset.
#[derive(Clone, Copy, Debug)]
pub struct RuntimeClock {
    origin: tokio::time::Instant,
    origin_ms: u64,
}

impl RuntimeClock {
    /// A clock reading `origin_ms` now (call it inside the runtime whose clock it follows).
    pub fn new(origin_ms: u64) -> Self {
        RuntimeClock {
            origin: tokio::time::Instant::now(),
            origin_ms,
        }
    }
}

impl Clock for RuntimeClock {
    fn now_ms(&self) -> u64 {
        self.origin_ms + self.origin.elapsed().as_millis() as u64
    }
}

type Stores<E> = Arc<Mutex<BTreeMap<u64, Arc<Store<E>>>>>;

/// N nodes in one process.
pub struct LocalCluster<E: Engine> {
    shared: Arc<Shared<E>>,
    router: RouterConfig,
    engines: BTreeMap<u64, Arc<GroupCommit<E>>>,
    range_ids: Arc<CounterRangeIds>,
    auto_split: Option<crate::autosplit::AutoSplitConfig>,
    /// Stops each up node's background loops.
    loops: Mutex<BTreeMap<u64, tokio::sync::watch::Sender<bool>>>,
}

/// What starting a replica needs, shared with the split hooks of the replicas.
struct Shared<E: Engine> {
    raft_config: Arc<openraft::Config>,
    net: LocalNetwork<E>,
    /// The nodes that are up.
    stores: Stores<E>,
    directory: Arc<StaticDirectory>,
    tso: Arc<dyn TimestampOracle>,
    clock: Arc<dyn Clock>,
    /// Held while a replica is started, so a split and a boot do not start one twice.
    starting: tokio::sync::Mutex<()>,
}

impl<E: Engine> Shared<E> {
    fn stores_mut(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<Store<E>>>> {
        self.stores.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts range `range`'s replica on node `node` (its store `store`), holding `span`
    /// unless the engine stores another span for it.
    async fn start_replica(
        self: &Arc<Self>,
        node: u64,
        store: &Store<E>,
        commit: &Arc<GroupCommit<E>>,
        range: u64,
        span: mvcc::Span,
    ) -> Result<()> {
        if store.get(range).is_some() {
            return Ok(());
        }
        let span = raft::stored_span(commit.engine().as_ref(), range)?.unwrap_or(span);
        let hooks = Arc::new(Hooks {
            shared: Arc::downgrade(self),
            node,
            commit: commit.clone(),
        });
        let sm = raft::StateMachine::new(range, span, commit.clone()).with_hooks(hooks);
        let span = sm.span_cell();
        let raft = raft::Raft::new(
            node,
            self.raft_config.clone(),
            self.net.endpoint(node, range),
            raft::LogStore::new(range, commit.clone()),
            sm,
        )
        .await
        .map_err(|e| Error::NodeUnreachable {
            node,
            detail: format!("starting replica of range {range}: {e}"),
        })?;
        self.net.add(node, range, raft.clone());
        store.add(Arc::new(Replica::new(
            node,
            range,
            span,
            raft,
            commit.engine().clone(),
            self.tso.clone(),
            self.clock.clone(),
        )));
        Ok(())
    }

    /// Starts, on `node`, the replica of the range its replica split off, and tells the
    /// directory. (Boxed: starting a replica installs a hook that calls this.)
    fn split_off(
        self: Arc<Self>,
        node: u64,
        commit: Arc<GroupCommit<E>>,
        e: raft::SplitEvent,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        Box::pin(async move {
            self.directory.learn(RangeDesc {
                id: e.left,
                span: e.left_span,
            });
            self.directory.learn(RangeDesc {
                id: e.right,
                span: e.right_span.clone(),
            });
            let _starting = self.starting.lock().await;
            let store = self.stores_mut().get(&node).cloned();
            // A node that went down starts it from its engine when it boots.
            if let Some(store) = store
                && let Err(err) = self
                    .start_replica(node, &store, &commit, e.right, e.right_span)
                    .await
            {
                tracing::error!(node, range = e.right, "starting a split-off replica: {err}");
            }
        })
    }
}

/// What a replica's state machine tells its node: splits it applied.
struct Hooks<E: Engine> {
    shared: std::sync::Weak<Shared<E>>,
    node: u64,
    commit: Arc<GroupCommit<E>>,
}

impl<E: Engine> raft::StoreHooks for Hooks<E> {
    fn split(&self, event: raft::SplitEvent) {
        if let Some(shared) = self.shared.upgrade() {
            tokio::spawn(shared.split_off(self.node, self.commit.clone(), event));
        }
    }
}

/// How the nodes take leaders' messages for replicas they lack, and snapshots.
struct Admission<E: Engine> {
    shared: std::sync::Weak<Shared<E>>,
    engines: BTreeMap<u64, Arc<GroupCommit<E>>>,
}

impl<E: Engine> raft::network::Admission for Admission<E> {
    fn missing(&self, to: u64, range: u64) {
        let (Some(shared), Some(commit)) = (self.shared.upgrade(), self.engines.get(&to)) else {
            return;
        };
        let commit = commit.clone();
        tokio::spawn(async move {
            let _starting = shared.starting.lock().await;
            let store = shared.stores_mut().get(&to).cloned();
            if let Some(store) = store
                && let Err(e) = shared
                    .start_replica(
                        to,
                        &store,
                        &commit,
                        range,
                        crate::replica::placeholder_span(),
                    )
                    .await
            {
                tracing::error!(node = to, range, "creating an empty replica: {e}");
            }
        });
    }

    fn admit_snapshot(
        &self,
        to: u64,
        range: u64,
        span: &mvcc::Span,
    ) -> std::result::Result<(), String> {
        let store = self
            .shared
            .upgrade()
            .and_then(|s| s.stores_mut().get(&to).cloned());
        match store {
            Some(store) => store.admit_snapshot(range, span),
            None => Err(format!("node {to} is down")),
        }
    }
}

/// Range ids for splits in one process: counted from above the ids of the initial ranges.
struct CounterRangeIds(std::sync::atomic::AtomicU64);

#[async_trait]
impl RangeIds for CounterRangeIds {
    async fn next_range_id(&self) -> Result<u64> {
        Ok(self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
    }
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
            shared: Arc::new(Shared {
                raft_config: Arc::new(raft_config),
                net: LocalNetwork::default(),
                stores: Arc::default(),
                directory,
                tso,
                clock,
                starting: tokio::sync::Mutex::new(()),
            }),
            router: config.router,
            engines: (1..).zip(engines).collect(),
            range_ids: Arc::new(CounterRangeIds(std::sync::atomic::AtomicU64::new(1 << 40))),
            auto_split: config.auto_split,
            loops: Mutex::default(),
        };
        cluster.shared.net.set_admission(Arc::new(Admission {
            shared: Arc::downgrade(&cluster.shared),
            engines: cluster.engines.clone(),
        }));
        for &node in cluster.engines.keys() {
            cluster.boot(node).await?;
        }
        for r in cluster.shared.directory.ranges() {
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

    /// Starts node `node`'s replicas from its engine (those the directory places on it
    /// and those splits made there) and makes it reachable.
    pub async fn boot(&self, node: u64) -> Result<()> {
        let commit = self
            .engines
            .get(&node)
            .ok_or(Error::NodeUnreachable {
                node,
                detail: "no such node".into(),
            })?
            .clone();
        let shared = &self.shared;
        let _starting = shared.starting.lock().await;
        let store = Arc::new(Store::new(node, Arc::default()));
        shared.net.add_node(node);
        // Up first, so a split applied while the node replays its logs finds the store.
        shared.stores_mut().insert(node, store.clone());
        let mut ranges: BTreeMap<u64, mvcc::Span> = shared
            .directory
            .ranges()
            .into_iter()
            .filter(|r| r.replicas.contains(&node))
            .map(|r| (r.desc.id, r.desc.span))
            .collect();
        ranges.extend(raft::stored_spans(commit.engine().as_ref())?);
        for (range, span) in ranges {
            shared
                .start_replica(node, &store, &commit, range, span)
                .await?;
        }
        if let Some(config) = self.auto_split.clone() {
            let (stop, stopped) = tokio::sync::watch::channel(false);
            let kv: Arc<dyn crate::KvService> = self.kv(node);
            tokio::spawn(crate::autosplit::run(
                store,
                kv,
                commit.engine().clone(),
                config,
                stopped,
            ));
            if let Some(old) = self.loops().insert(node, stop) {
                old.send_replace(true);
            }
        }
        Ok(())
    }

    fn loops(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, tokio::sync::watch::Sender<bool>>> {
        self.loops.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stops node `node` as a crash would: it stops answering at once and its replicas
    /// shut down. Its engine keeps what was durable.
    pub async fn kill(&self, node: u64) {
        if let Some(stop) = self.loops().remove(&node) {
            stop.send_replace(true);
        }
        self.shared.stores_mut().remove(&node);
        for (_, raft) in self.shared.net.remove(node) {
            let _ = raft.shutdown().await;
        }
    }

    /// Cuts every link between `node` and the others.
    pub fn isolate(&self, node: u64) {
        self.shared.net.isolate(node);
    }

    /// Restores every link.
    pub fn heal(&self) {
        self.shared.net.heal();
    }

    /// Loses every Raft message of kind `kind`, on the directed link `link` if given,
    /// else on every link (see [`raft::network::LocalNetwork::block`]).
    pub fn block(&self, kind: raft::network::MessageKind, link: Option<(u64, u64)>) {
        self.shared.net.block(kind, link);
    }

    /// Delivers Raft messages of kind `kind` again.
    pub fn unblock(&self, kind: raft::network::MessageKind) {
        self.shared.net.unblock(kind);
    }

    /// Loses and delays Raft messages at random from now on (see
    /// [`LocalNetwork::set_faults`]).
    pub fn set_faults(&self, seed: u64, drop_per_mille: u32, max_delay: std::time::Duration) {
        self.shared.net.set_faults(seed, drop_per_mille, max_delay);
    }

    /// Stops losing and delaying Raft messages.
    pub fn clear_faults(&self) {
        self.shared.net.clear_faults();
    }

    /// Returns the key-value service as seen from node `node`.
    pub fn kv(&self, node: u64) -> Arc<DistKv> {
        Arc::new(
            DistKv::new(
                self.shared.directory.clone(),
                Arc::new(LocalTransport {
                    from: node,
                    net: self.shared.net.clone(),
                    stores: self.shared.stores.clone(),
                }),
                self.router.clone(),
            )
            .with_range_ids(self.range_ids.clone()),
        )
    }

    /// Returns the ranges and where their replicas are, as the cluster's directory knows
    /// them.
    pub fn ranges(&self) -> Vec<RangeInfo> {
        self.shared.directory.ranges()
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
            .shared
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
        let stores: Vec<_> = self.shared.stores_mut().values().cloned().collect();
        stores
            .iter()
            .filter_map(|s| s.get(range))
            .map(|r| r.raft().metrics().borrow_watched().clone())
            .filter(|m| m.current_leader == Some(m.id))
            .max_by_key(|m| m.current_term)
            .map(|m| m.id)
    }

    /// Stops every node: every replica first (so none sees its peers vanish and
    /// complains), then the nodes.
    pub async fn shutdown(&self) {
        for (_, stop) in std::mem::take(&mut *self.loops()) {
            stop.send_replace(true);
        }
        let stores: Vec<_> = std::mem::take(&mut *self.shared.stores_mut())
            .into_values()
            .collect();
        for replica in stores.iter().flat_map(|s| s.replicas()) {
            let _ = replica.raft().shutdown().await;
        }
        for node in self.nodes() {
            self.shared.net.remove(node);
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
