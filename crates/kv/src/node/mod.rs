//! A node of a cluster of processes: its identity, its replicas, its peers over gRPC, and
//! how it becomes part of a cluster.
//!
//! ```text
//!  tessera init ──Init──▶ node A (empty store): cluster id, node id 1, every range with
//!                          A as its only voter, node record 1 in the meta range
//!  node B --join A ─Join─▶ A: next node id from the meta range (a one-phase commit)
//!                          ◀── cluster id, node id, replication, address book
//!  placement (every leader): empty replica on B (AddReplica) ─▶ learner ─▶ voter
//! ```
//!
//! The store's identity (cluster id, node id, replication factor) is written once, durably,
//! before the node takes part in anything; a store that has one never joins again, and a
//! node refuses messages that carry another cluster's id. The replicas a node holds are
//! listed in its store (one descriptor each), so a restart brings them back.
//!
//! The ranges are those [`initial_ranges`] lays out at init; range 1, the meta range, holds
//! the system keys (node records, the oracle's high-water mark) and the SQL catalog. Its
//! leaseholder serves the timestamp oracle ([`tso::ClusterTso`]).

pub mod client;
pub mod meta;
mod placement;
mod quiesce;
mod service;
pub mod tso;

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use base::{Clock, Timestamp};
use codec::layout::{SystemKind, system_key};
use mvcc::commands::ReadSet;
use mvcc::{Mutation, Span};
use openraft::BasicNode;
use prost::Message;
use serde::{Deserialize, Serialize};
use storage::{Engine, GroupCommit, Keyspace, WriteBatch};
use tokio::sync::watch;

use crate::KvService;
use crate::api::{RangeDesc, Request, Response};
use crate::error::{Error, Result};
use crate::replica::{Replica, Store};
use crate::router::{
    DistKv, NodeTransport, RangeDirectory, RangeIds, RangeInfo, RouterConfig, StaticDirectory,
};
use crate::rpc::peers::{Peers, RaftEndpoint};
use crate::rpc::{decode, decode_result, encode, never_sent, pb};
use crate::tso::TimestampOracle;

pub use service::NodeService;
pub use tso::ClusterTso;

/// One stored key and its value.
type KeyValue = (Vec<u8>, Vec<u8>);

/// Most ranges a cluster may start with.
pub const MAX_INITIAL_RANGES: usize = 10_000;

/// The meta range's id.
pub const META_RANGE: u64 = 1;

/// The largest node id: SQL row ids carry the node id in 7 bits.
pub const MAX_NODE_ID: u64 = 127;

/// Settings of a cluster node.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// The address other nodes reach this node's RPC listener at (`host:port`).
    pub addr: String,
    /// The addresses this node's SQL and HTTP listeners are reached at (for status).
    pub sql_addr: String,
    pub http_addr: String,
    /// Nodes to ask to join (an empty store) or to check the cluster against.
    pub join: Vec<String>,
    /// How long an empty node keeps trying to join before it gives up.
    pub join_timeout: Duration,
    /// Raft timing, ms.
    pub heartbeat_ms: u64,
    pub election_timeout_ms: (u64, u64),
    /// A replica snapshots its range after this many log entries.
    pub snapshot_after_logs: u64,
    pub router: RouterConfig,
    /// How far ahead of handed-out timestamps the oracle persists its mark, ms.
    pub tso_window_ms: u64,
    /// Split keys of the ranges laid out at init, besides the meta range's end.
    pub split_keys: Vec<Vec<u8>>,
    /// Splits ranges over a size, if set.
    pub auto_split: Option<crate::autosplit::AutoSplitConfig>,
    /// Idle ranges stop their Raft tickers after this long (see [`quiesce`]), if set.
    pub quiesce_after: Option<Duration>,
    /// Where snapshot files (sent and received) are spooled: a directory of the store's,
    /// emptied of leftovers when the node opens; the system's temporary directory if unset.
    pub spool_dir: Option<std::path::PathBuf>,
}

impl NodeConfig {
    /// Returns the defaults for a node reached at `addr`.
    pub fn new(addr: impl Into<String>) -> Self {
        NodeConfig {
            addr: addr.into(),
            sql_addr: String::new(),
            http_addr: String::new(),
            join: Vec::new(),
            join_timeout: Duration::from_secs(300),
            heartbeat_ms: 150,
            election_timeout_ms: (700, 1_100),
            snapshot_after_logs: 10_000,
            router: RouterConfig::default(),
            tso_window_ms: 3_000,
            split_keys: Vec::new(),
            auto_split: Some(crate::autosplit::AutoSplitConfig::default()),
            quiesce_after: Some(Duration::from_secs(3)),
            spool_dir: None,
        }
    }
}

/// An error of a node's life cycle.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("cluster {0} is already initialized")]
    AlreadyInitialized(String),
    #[error("this node is not part of a cluster yet: run `tessera init` against one node")]
    NotInitialized,
    #[error("cannot join: {0}")]
    Join(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Kv(#[from] Error),
}

impl From<storage::Error> for NodeError {
    fn from(e: storage::Error) -> Self {
        NodeError::Kv(e.into())
    }
}

/// What a store records about the cluster it belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ident {
    pub cluster_id: String,
    pub node_id: u64,
    pub replication: u32,
    /// Where the cluster's initial ranges split the key space (chosen at init, the same
    /// on every node).
    pub split_keys: Vec<Vec<u8>>,
}

const IDENT_KEY: &[u8] = b"cluster/ident";
const REPLICA_PREFIX: &[u8] = b"cluster/replica/";
const PEER_PREFIX: &[u8] = b"cluster/peer/";

fn replica_key(range: u64) -> Vec<u8> {
    let mut k = REPLICA_PREFIX.to_vec();
    k.extend_from_slice(&range.to_be_bytes());
    k
}

fn peer_key(node: u64) -> Vec<u8> {
    let mut k = PEER_PREFIX.to_vec();
    k.extend_from_slice(&node.to_be_bytes());
    k
}

/// The meta key of the node-id counter.
fn node_counter_key() -> Vec<u8> {
    system_key(SystemKind::Node, b"next-id")
}

/// The meta key of node `id`'s record.
fn node_record_key(id: u64) -> Vec<u8> {
    let mut suffix = b"node/".to_vec();
    suffix.extend_from_slice(&id.to_be_bytes());
    system_key(SystemKind::Node, &suffix)
}

/// Returns the ranges a new cluster starts with: the meta range (system keys and the
/// catalog, everything below the first split key) and one range per split key after it.
pub fn initial_ranges(split_keys: &[Vec<u8>]) -> Vec<RangeDesc> {
    RangeDesc::tile(split_keys)
}

/// A node of a cluster of processes.
pub struct ClusterNode<E: Engine> {
    commit: Arc<GroupCommit<E>>,
    config: NodeConfig,
    raft_config: Arc<openraft::Config>,
    clock: Arc<dyn Clock>,
    peers: Peers,
    /// Changes every time the process starts: tells two processes with one id apart.
    incarnation: u64,
    ident: watch::Sender<Option<Ident>>,
    store: OnceLock<Arc<Store<E>>>,
    tso: OnceLock<Arc<ClusterTso<E>>>,
    kv: OnceLock<Arc<DistKv>>,
    /// Held while the node initializes, joins or activates.
    lifecycle: tokio::sync::Mutex<()>,
    /// Held while a replica is created, so two requests do not create one twice.
    creating: tokio::sync::Mutex<()>,
    /// Splits applied by this node's replicas, for the loop that starts the new ranges.
    splits: tokio::sync::mpsc::UnboundedSender<raft::SplitEvent>,
    split_events: std::sync::Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<raft::SplitEvent>>>,
    directory: OnceLock<Arc<NodeDirectory>>,
    stop: watch::Sender<bool>,
}

impl<E: Engine> ClusterNode<E> {
    /// Opens the node on `commit`'s engine. A store that belongs to a cluster brings its
    /// replicas back at once; an empty one waits for `init` or [`ClusterNode::join`].
    pub async fn open(
        commit: Arc<GroupCommit<E>>,
        config: NodeConfig,
        clock: Arc<dyn Clock>,
    ) -> std::result::Result<Arc<Self>, NodeError> {
        let raft_config = openraft::Config {
            heartbeat_interval: config.heartbeat_ms,
            election_timeout_min: config.election_timeout_ms.0,
            election_timeout_max: config.election_timeout_ms.1,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(config.snapshot_after_logs),
            max_in_snapshot_log_to_keep: config.snapshot_after_logs,
            ..Default::default()
        }
        .validate()
        .map_err(|e| NodeError::Config(format!("raft settings: {e}")))?;
        let ident = match commit.engine().get(Keyspace::System, IDENT_KEY)? {
            None => None,
            Some(b) => Some(decode::<Ident>(&b).map_err(|e| {
                NodeError::Kv(Error::Mvcc(mvcc::Error::Corrupt {
                    key: IDENT_KEY.to_vec(),
                    detail: format!("store identity: {e}"),
                }))
            })?),
        };
        if let Some(dir) = &config.spool_dir {
            raft::clean_spool_dir(commit.engine().as_ref(), dir).map_err(|e| {
                NodeError::Config(format!("snapshot directory {}: {e}", dir.display()))
            })?;
        }
        let (splits, split_events) = tokio::sync::mpsc::unbounded_channel();
        let node = Arc::new(ClusterNode {
            commit,
            config,
            raft_config: Arc::new(raft_config),
            clock,
            peers: Peers::default(),
            incarnation: rand::random::<u64>() | 1,
            ident: watch::Sender::new(None),
            store: OnceLock::new(),
            tso: OnceLock::new(),
            kv: OnceLock::new(),
            lifecycle: tokio::sync::Mutex::new(()),
            creating: tokio::sync::Mutex::new(()),
            splits,
            split_events: std::sync::Mutex::new(Some(split_events)),
            directory: OnceLock::new(),
            stop: watch::Sender::new(false),
        });
        for (_, v) in node.scan_local(PEER_PREFIX)? {
            if let Ok(addr) = pb::NodeAddr::decode(v.as_slice()) {
                node.peers.learn(addr);
            }
        }
        if let Some(ident) = ident {
            let _guard = node.lifecycle.lock().await;
            node.activate(ident).await?;
        }
        Ok(node)
    }

    fn scan_local(&self, prefix: &[u8]) -> std::result::Result<Vec<KeyValue>, NodeError> {
        let mut out = Vec::new();
        for item in self.commit.engine().scan_prefix(Keyspace::System, prefix) {
            out.push(item?);
        }
        Ok(out)
    }

    /// Returns the store's identity, once it belongs to a cluster.
    pub fn ident(&self) -> Option<Ident> {
        self.ident.borrow().clone()
    }

    /// Waits until the node belongs to a cluster.
    pub async fn wait_ident(&self) -> Ident {
        let mut rx = self.ident.subscribe();
        loop {
            if let Some(i) = rx.borrow_and_update().clone() {
                return i;
            }
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// Returns this node's addresses as the cluster records them.
    fn self_addr(&self, id: u64) -> pb::NodeAddr {
        pb::NodeAddr {
            id,
            addr: self.config.addr.clone(),
            sql_addr: self.config.sql_addr.clone(),
            http_addr: self.config.http_addr.clone(),
        }
    }

    /// Returns the node's replicas, once it belongs to a cluster.
    /// Where this node's snapshot files go.
    fn spool_dir(&self) -> std::path::PathBuf {
        self.config
            .spool_dir
            .clone()
            .unwrap_or_else(raft::default_spool_dir)
    }

    pub fn store(&self) -> Option<&Arc<Store<E>>> {
        self.store.get()
    }

    /// Returns true if this node's replica of the meta range leads it (the node that runs
    /// the cluster-wide chores, such as GC).
    pub fn leads_meta(&self) -> bool {
        self.store()
            .and_then(|s| s.get(META_RANGE))
            .is_some_and(|r| r.is_leader())
    }

    /// Returns the key-value service as this node sees it, once it belongs to a cluster.
    pub fn kv(&self) -> Option<Arc<DistKv>> {
        self.kv.get().cloned()
    }

    /// Returns the cluster's timestamp oracle, once the node belongs to a cluster.
    pub fn tso(&self) -> Option<Arc<ClusterTso<E>>> {
        self.tso.get().cloned()
    }

    /// Returns the node's peers.
    pub fn peers(&self) -> &Peers {
        &self.peers
    }

    fn active(&self) -> std::result::Result<(Ident, Arc<Store<E>>), NodeError> {
        match (self.ident(), self.store.get()) {
            (Some(i), Some(s)) => Ok((i, s.clone())),
            _ => Err(NodeError::NotInitialized),
        }
    }

    /// Persists the identity and the address book entries, durably.
    async fn persist_ident(&self, ident: &Ident, nodes: &[pb::NodeAddr]) -> Result<()> {
        let mut b = WriteBatch::new();
        b.put(Keyspace::System, IDENT_KEY.to_vec(), encode(ident));
        for n in nodes {
            b.put(Keyspace::System, peer_key(n.id), n.encode_to_vec());
        }
        self.commit.commit_async(&b).await?;
        Ok(())
    }

    /// Adds nodes to the address book, persisting the new entries.
    async fn learn_nodes(&self, nodes: impl IntoIterator<Item = pb::NodeAddr>) {
        let mut b = WriteBatch::new();
        for n in nodes {
            let id = n.id;
            let bytes = n.encode_to_vec();
            if self.peers.learn(n) {
                b.put(Keyspace::System, peer_key(id), bytes);
            }
        }
        if !b.is_empty()
            && let Err(e) = self.commit.commit_async(&b).await
        {
            tracing::warn!("persisting the address book: {e}");
        }
    }

    /// Starts serving as `ident`: brings back the replicas the store lists and starts the
    /// background loops. Called once, under the life-cycle lock.
    async fn activate(self: &Arc<Self>, ident: Ident) -> std::result::Result<(), NodeError> {
        let me = ident.node_id;
        self.peers.set_header(&ident.cluster_id, me);
        self.peers.learn(self.self_addr(me));
        self.peers.heard_from(me);
        let store = Arc::new(Store::new(me, self.peers.stats().clone()));
        let _ = self.store.set(store.clone());
        let tso = Arc::new(ClusterTso::new(
            me,
            store.clone(),
            self.peers.clone(),
            self.commit.clone(),
            self.clock.clone(),
            self.config.tso_window_ms,
        ));
        let _ = self.tso.set(tso.clone());
        let directory = Arc::new(NodeDirectory::new(
            initial_ranges(&ident.split_keys),
            self.peers.clone(),
        ));
        let _ = self.directory.set(directory.clone());
        let transport = Arc::new(GrpcTransport {
            me,
            store: store.clone(),
            peers: self.peers.clone(),
        });
        let range_ids = Arc::new(NodeRangeIds {
            node: me,
            commit: self.commit.clone(),
            lock: tokio::sync::Mutex::new(()),
        });
        let router = self.config.router.clone();
        let _ = self.kv.set(Arc::new_cyclic(|kv| {
            DistKv::new(directory.clone(), transport, router)
                .with_range_ids(range_ids)
                .with_resolver(Arc::new(meta::MetaResolver {
                    kv: kv.clone(),
                    tso: tso.clone(),
                }))
        }));
        // The replicas the store lists, and those splits made (their spans are stored).
        let mut descs: BTreeMap<u64, RangeDesc> = BTreeMap::new();
        for (_, v) in self.scan_local(REPLICA_PREFIX)? {
            let desc: RangeDesc = decode(&v).map_err(|e| {
                NodeError::Kv(Error::Mvcc(mvcc::Error::Corrupt {
                    key: REPLICA_PREFIX.to_vec(),
                    detail: format!("replica descriptor: {e}"),
                }))
            })?;
            descs.insert(desc.id, desc);
        }
        for (id, span) in raft::stored_spans(self.commit.engine().as_ref()).map_err(Error::from)? {
            descs.insert(id, RangeDesc { id, span });
        }
        let events = self
            .split_events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(events) = events {
            tokio::spawn(split_loop(self.clone(), events));
        }
        {
            let _creating = self.creating.lock().await;
            for desc in descs.into_values() {
                let replica = match store.get(desc.id) {
                    Some(r) => r,
                    None => self.start_replica(me, desc).await?,
                };
                directory.learn(replica.desc());
            }
        }
        self.ident.send_replace(Some(ident));
        tokio::spawn(seed_directory(self.clone()));
        tokio::spawn(gossip_loop(self.clone()));
        tokio::spawn(placement::run(self.clone()));
        if let Some(after) = self.config.quiesce_after {
            tokio::spawn(quiesce::run(self.clone(), after));
        }
        if let (Some(config), Some(kv)) = (self.config.auto_split.clone(), self.kv()) {
            let kv: Arc<dyn KvService> = kv;
            tokio::spawn(crate::autosplit::run(
                store.clone(),
                kv,
                self.commit.engine().clone(),
                config,
                self.stop.subscribe(),
            ));
        }
        Ok(())
    }

    /// Starts the replica of a range this node's replica split off, unless it runs.
    async fn split_off(&self, event: raft::SplitEvent) -> Result<()> {
        let _creating = self.creating.lock().await;
        let store = self.store.get().ok_or(Error::Shutdown)?;
        if let Some(directory) = self.directory.get() {
            directory.learn(RangeDesc {
                id: event.left,
                span: event.left_span.clone(),
            });
            directory.learn(RangeDesc {
                id: event.right,
                span: event.right_span.clone(),
            });
        }
        let descs = [
            RangeDesc {
                id: event.left,
                span: event.left_span,
            },
            RangeDesc {
                id: event.right,
                span: event.right_span,
            },
        ];
        // The leaseholder that split records both halves in the meta range.
        if store.get(event.left).is_some_and(|r| r.is_leader())
            && let (Some(kv), Some(tso)) = (self.kv(), self.tso())
        {
            let descs = descs.clone();
            tokio::spawn(async move {
                if let Err(e) = meta::record(kv.as_ref(), tso.as_ref(), &descs).await {
                    tracing::warn!(
                        range = descs[1].id,
                        "recording a split in the meta range: {e}"
                    );
                }
            });
        }
        if store.get(event.right).is_some() {
            return Ok(());
        }
        let [_, right] = descs;
        self.start_replica(store.node(), right).await.map(|_| ())
    }

    /// Starts the Raft member of `desc` on this node and serves it.
    async fn start_replica(&self, me: u64, desc: RangeDesc) -> Result<Arc<Replica<E>>> {
        let store = self.store.get().ok_or(Error::Shutdown)?;
        let range = desc.id;
        let span = raft::stored_span(self.commit.engine().as_ref(), range)
            .map_err(Error::from)?
            .unwrap_or(desc.span);
        let sm = raft::StateMachine::new(range, span, self.commit.clone())
            .with_spool_dir(self.spool_dir())
            .with_hooks(Arc::new(SplitEvents(self.splits.clone())));
        let span = sm.span_cell();
        let raft = raft::Raft::new(
            me,
            self.raft_config.clone(),
            RaftEndpoint {
                peers: self.peers.clone(),
                range,
            },
            raft::LogStore::new(range, self.commit.clone()),
            sm,
        )
        .await
        .map_err(|e| Error::NodeUnreachable {
            node: me,
            detail: format!("starting replica of range {range}: {e}"),
        })?;
        let tso: Arc<dyn TimestampOracle> = self.tso.get().ok_or(Error::Shutdown)?.clone();
        let replica = Arc::new(Replica::new(
            me,
            range,
            span,
            raft,
            self.commit.engine().clone(),
            tso,
            self.clock.clone(),
        ));
        store.add(replica.clone());
        Ok(replica)
    }

    /// Creates an empty replica of `range` (whose split this node missed; the leader's
    /// snapshot gives it its span), unless there is one already.
    pub(crate) async fn create_empty_replica(&self, range: u64) {
        // Not before the node has started the replicas its store lists.
        if self.ident().is_none() {
            return;
        }
        let desc = RangeDesc {
            id: range,
            span: crate::replica::placeholder_span(),
        };
        if let Err(e) = self.create_replica(desc).await {
            tracing::warn!(range, "creating an empty replica: {e}");
        }
    }

    /// Creates an empty replica of `desc` here (recorded durably first), unless there is
    /// one already.
    pub(crate) async fn create_replica(&self, desc: RangeDesc) -> Result<Arc<Replica<E>>> {
        let _creating = self.creating.lock().await;
        let store = self.store.get().ok_or(Error::Shutdown)?;
        if let Some(r) = store.get(desc.id) {
            return Ok(r);
        }
        let mut b = WriteBatch::new();
        b.put(Keyspace::System, replica_key(desc.id), encode(&desc));
        self.commit.commit_async(&b).await?;
        self.start_replica(store.node(), desc).await
    }

    /// Bootstraps a new cluster on this (empty) node: identity, every initial range (split
    /// at `split_keys`, or at the configured keys if it is empty) with this node as its
    /// only voter, and this node's record in the meta range.
    pub async fn init(
        self: &Arc<Self>,
        replication: u32,
        split_keys: Vec<Vec<u8>>,
    ) -> std::result::Result<Ident, NodeError> {
        if replication == 0 || replication.is_multiple_of(2) || replication > 7 {
            return Err(NodeError::Config(format!(
                "replication factor {replication}: it must be odd, between 1 and 7"
            )));
        }
        if split_keys.len() >= MAX_INITIAL_RANGES {
            return Err(NodeError::Config(format!(
                "{} initial ranges: at most {MAX_INITIAL_RANGES}",
                split_keys.len() + 1
            )));
        }
        let split_keys = if split_keys.is_empty() {
            self.config.split_keys.clone()
        } else {
            split_keys
        };
        let _guard = self.lifecycle.lock().await;
        if let Some(i) = self.ident() {
            return Err(NodeError::AlreadyInitialized(i.cluster_id));
        }
        let ident = Ident {
            cluster_id: new_cluster_id(),
            node_id: 1,
            replication,
            split_keys,
        };
        self.persist_ident(&ident, &[self.self_addr(1)]).await?;
        self.activate(ident.clone()).await?;
        let members: BTreeMap<u64, BasicNode> =
            [(1, BasicNode::new(self.config.addr.clone()))].into();
        for desc in initial_ranges(&ident.split_keys) {
            let replica = self.create_replica(desc).await?;
            replica
                .raft()
                .initialize(members.clone())
                .await
                .map_err(|e| NodeError::Conflict(format!("bootstrapping a range: {e}")))?;
        }
        let id = self.allocate_node_id(self.self_addr(0)).await?;
        if id != 1 {
            return Err(NodeError::Conflict(format!(
                "the new cluster's meta range assigned id {id} to its first node"
            )));
        }
        if let (Some(kv), Some(tso)) = (self.kv(), self.tso()) {
            meta::record(
                kv.as_ref(),
                tso.as_ref(),
                &initial_ranges(&ident.split_keys),
            )
            .await?;
        }
        tracing::info!(cluster = %ident.cluster_id, replication, "cluster initialized");
        Ok(ident)
    }

    /// Assigns the next node id to `node` in the meta range and records it there.
    async fn allocate_node_id(&self, node: pb::NodeAddr) -> Result<u64> {
        let kv = self.kv().ok_or(Error::Shutdown)?;
        let tso = self.tso().ok_or(Error::Shutdown)?;
        let counter = node_counter_key();
        let mut last = None;
        for _ in 0..20 {
            let ts = tso.timestamp().await?;
            let current = match kv
                .send(Request::Get {
                    keys: vec![counter.clone()],
                    ts,
                    txn: None,
                })
                .await?
            {
                Response::Values(v) => match v.into_iter().next().flatten() {
                    None => 0,
                    Some(b) => u64::from_be_bytes(b.as_slice().try_into().map_err(|_| {
                        Error::Mvcc(mvcc::Error::Corrupt {
                            key: counter.clone(),
                            detail: "node id counter is not 8 bytes".into(),
                        })
                    })?),
                },
                other => {
                    return Err(Error::CrossRange(format!(
                        "unexpected answer to a read: {other:?}"
                    )));
                }
            };
            let id = current + 1;
            if id > MAX_NODE_ID {
                return Err(Error::CrossRange(format!(
                    "the cluster has assigned all {MAX_NODE_ID} node ids"
                )));
            }
            let mut record = node.clone();
            record.id = id;
            let req = Request::OnePhaseCommit {
                mutations: vec![
                    Mutation::Put {
                        key: counter.clone(),
                        value: id.to_be_bytes().to_vec(),
                    },
                    Mutation::Put {
                        key: node_record_key(id),
                        value: record.encode_to_vec(),
                    },
                ],
                reads: ReadSet {
                    keys: vec![(counter.clone(), ts)],
                    spans: Vec::new(),
                },
                start_ts: ts,
                deadline: None,
                reserved: None,
            };
            match kv.send(req).await {
                Ok(_) => return Ok(id),
                Err(e) if e.is_retryable() => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or(Error::Shutdown))
    }

    /// Admits `node` into the cluster (on a member): assigns its id.
    pub(crate) async fn admit(
        self: &Arc<Self>,
        node: pb::NodeAddr,
    ) -> std::result::Result<pb::JoinReply, NodeError> {
        // Not while this node is still bootstrapping the cluster.
        drop(self.lifecycle.lock().await);
        let (ident, _) = self.active()?;
        if node.addr.is_empty() {
            return Err(NodeError::Config(
                "a joining node must give its address".into(),
            ));
        }
        if node.addr == self.config.addr {
            return Err(NodeError::Config(format!(
                "a node cannot join through itself ({})",
                node.addr
            )));
        }
        let id = self.allocate_node_id(node.clone()).await?;
        let mut record = node;
        record.id = id;
        self.learn_nodes([record]).await;
        self.peers.heard_from(id);
        tracing::info!(node = id, "node joined");
        Ok(pb::JoinReply {
            cluster_id: ident.cluster_id,
            node_id: id,
            replication: ident.replication,
            nodes: self.peers.book(),
            split_keys: ident.split_keys,
        })
    }

    /// Joins the cluster through the `--join` nodes (an empty store), or checks that the
    /// cluster they belong to is this store's and that no other process runs this node.
    pub async fn join(self: &Arc<Self>) -> std::result::Result<(), NodeError> {
        if let Some(ident) = self.ident() {
            return self.check_cluster(&ident).await;
        }
        if self.config.join.is_empty() {
            return Ok(()); // Waits for `tessera init`.
        }
        let started = tokio::time::Instant::now();
        let mut last = String::new();
        let mut announced = false;
        loop {
            if self.ident().is_some() {
                return Ok(()); // Initialized meanwhile (`tessera init` on this node).
            }
            for addr in &self.config.join {
                if *addr == self.config.addr {
                    continue;
                }
                if self.ident().is_some() {
                    return Ok(()); // Initialized meanwhile (`tessera init` on this node).
                }
                let mut client = match crate::rpc::client(addr) {
                    Ok(c) => c,
                    Err(e) => return Err(NodeError::Config(e)),
                };
                let req = pb::JoinRequest {
                    node: Some(self.self_addr(0)),
                };
                match client.join(req).await {
                    Ok(reply) => return self.joined(reply.into_inner()).await,
                    Err(s) if s.code() == tonic::Code::FailedPrecondition => {
                        if !announced {
                            tracing::info!(
                                "waiting for the cluster to be initialized (`tessera init`)"
                            );
                            announced = true;
                        }
                        last = format!("{addr}: {}", s.message());
                    }
                    Err(s) if never_sent(&s) || s.code() == tonic::Code::Unavailable => {
                        last = format!("{addr}: {}", describe(&s));
                    }
                    Err(s) => return Err(NodeError::Join(format!("{addr}: {}", s.message()))),
                }
            }
            if started.elapsed() >= self.config.join_timeout {
                return Err(NodeError::Join(format!(
                    "no node of --join answered within {:?} (last: {last})",
                    self.config.join_timeout
                )));
            }
            tracing::debug!("join: {last}");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    async fn joined(self: &Arc<Self>, reply: pb::JoinReply) -> std::result::Result<(), NodeError> {
        let _guard = self.lifecycle.lock().await;
        if self.ident().is_some() {
            return Ok(());
        }
        if reply.node_id == 0 || reply.node_id > MAX_NODE_ID {
            return Err(NodeError::Join(format!(
                "assigned bad node id {}",
                reply.node_id
            )));
        }
        let ident = Ident {
            cluster_id: reply.cluster_id,
            node_id: reply.node_id,
            replication: reply.replication,
            split_keys: reply.split_keys,
        };
        let mut nodes = reply.nodes;
        nodes.push(self.self_addr(ident.node_id));
        self.persist_ident(&ident, &nodes).await?;
        for n in nodes {
            self.peers.learn(n);
        }
        tracing::info!(node = ident.node_id, cluster = %ident.cluster_id, "joined the cluster");
        self.activate(ident).await
    }

    /// Asks the `--join` nodes which cluster they belong to and where they think this
    /// node runs: a store of another cluster, or a second process of one node, is refused.
    async fn check_cluster(&self, ident: &Ident) -> std::result::Result<(), NodeError> {
        for addr in &self.config.join {
            if *addr == self.config.addr {
                continue;
            }
            let Ok(mut client) = crate::rpc::client(addr) else {
                continue;
            };
            let req = pb::StatusRequest { header: None };
            let Ok(Ok(reply)) =
                tokio::time::timeout(Duration::from_secs(2), client.status(req)).await
            else {
                continue; // A peer that is down cannot tell; the others may.
            };
            let reply = reply.into_inner();
            if reply.cluster_id.is_empty() {
                continue;
            }
            if reply.cluster_id != ident.cluster_id {
                return Err(NodeError::Conflict(format!(
                    "this store belongs to cluster {} but the node at {addr} belongs to cluster {}: \
                     point --join at this store's cluster, or start with an empty store",
                    ident.cluster_id, reply.cluster_id
                )));
            }
            if reply.node_id == ident.node_id && reply.incarnation != self.incarnation {
                return Err(NodeError::Conflict(format!(
                    "node id {} is already running at {addr}: this store is a copy of its store",
                    ident.node_id
                )));
            }
            if let Some(other) = reply.nodes.iter().find(|n| n.id == ident.node_id)
                && other.addr != self.config.addr
                && self.is_running_elsewhere(ident, &other.addr).await
            {
                return Err(NodeError::Conflict(format!(
                    "node id {} is already running at {}: this store is a copy of its store",
                    ident.node_id, other.addr
                )));
            }
        }
        Ok(())
    }

    async fn is_running_elsewhere(&self, ident: &Ident, addr: &str) -> bool {
        let Ok(mut client) = crate::rpc::client(addr) else {
            return false;
        };
        match tokio::time::timeout(
            Duration::from_secs(2),
            client.status(pb::StatusRequest { header: None }),
        )
        .await
        {
            Ok(Ok(r)) => {
                let r = r.into_inner();
                r.cluster_id == ident.cluster_id
                    && r.node_id == ident.node_id
                    && r.incarnation != self.incarnation
            }
            _ => false,
        }
    }

    /// Returns what this node knows: identity, peers and replicas.
    pub fn status(&self) -> pb::StatusReply {
        let ident = self.ident();
        let replicas = self
            .store
            .get()
            .map(|s| s.replicas())
            .unwrap_or_default()
            .iter()
            .map(|r| replica_status(r))
            .collect();
        let id = ident.as_ref().map_or(0, |i| i.node_id);
        pb::StatusReply {
            cluster_id: ident
                .as_ref()
                .map(|i| i.cluster_id.clone())
                .unwrap_or_default(),
            node_id: id,
            self_addr: Some(self.self_addr(id)),
            nodes: self.peers.book(),
            replicas,
            replication: ident.as_ref().map_or(0, |i| i.replication),
            live: self.peers.live(LIVENESS_WINDOW),
            incarnation: self.incarnation,
        }
    }

    /// Stops the node's replicas and loops.
    pub async fn shutdown(&self) {
        self.stop.send_replace(true);
        if let Some(store) = self.store.get() {
            for r in store.replicas() {
                let _ = r.raft().shutdown().await;
            }
        }
        self.peers.close();
    }

    fn stopped(&self) -> bool {
        *self.stop.borrow()
    }
}

/// A node is live if it answered within this long.
pub const LIVENESS_WINDOW: Duration = Duration::from_secs(5);

fn replica_status<E: Engine>(r: &Replica<E>) -> pb::ReplicaStatus {
    use openraft::async_runtime::WatchReceiver;
    let m = r.raft().metrics().borrow_watched().clone();
    let membership = m.membership_config.membership();
    pb::ReplicaStatus {
        range: r.desc().id,
        leader: m.current_leader == Some(m.id),
        voters: membership.voter_ids().collect(),
        learners: membership.learner_ids().collect(),
        applied: m.last_applied.as_ref().map_or(0, |l| l.index),
        term: m.current_term,
        quiesced: r.is_quiesced(),
    }
}

fn new_cluster_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// Describes a failed call for a person.
pub fn describe(s: &tonic::Status) -> String {
    if never_sent(s) {
        return "cannot connect (is a node running there?)".into();
    }
    s.message().to_string()
}

/// Learns the ranges the meta range records (splits made while this node was down, or
/// that it holds no replica of), retrying until the meta range answers.
async fn seed_directory<E: Engine>(node: Arc<ClusterNode<E>>) {
    for _ in 0..60 {
        if node.stopped() {
            return;
        }
        let (Some(kv), Some(tso), Some(directory)) = (node.kv(), node.tso(), node.directory.get())
        else {
            return;
        };
        match meta::read_all(kv.as_ref(), tso.as_ref()).await {
            Ok(descs) => {
                // Newest first would not matter: learning carves each span out of the rest.
                for d in descs {
                    directory.learn(d);
                }
                return;
            }
            Err(e) => tracing::debug!("reading range descriptors: {e}"),
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// Every second, asks each known peer for its status: that keeps liveness fresh and
/// spreads the address book.
async fn gossip_loop<E: Engine>(node: Arc<ClusterNode<E>>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if node.stopped() {
            return;
        }
        let me = node.peers.header().from_node;
        node.peers.heard_from(me);
        let peers: Vec<pb::NodeAddr> = node
            .peers
            .book()
            .into_iter()
            .filter(|n| n.id != me)
            .collect();
        let calls = peers.into_iter().map(|p| {
            let node = node.clone();
            async move {
                let mut client = node.peers.client(p.id, &p.addr).ok()?;
                let req = pb::StatusRequest {
                    header: Some(node.peers.header_to(p.id)),
                };
                let reply = match tokio::time::timeout(Duration::from_secs(1), client.status(req))
                    .await
                    .ok()?
                {
                    Ok(r) => r.into_inner(),
                    Err(s) => {
                        if crate::rpc::refused(&s) {
                            node.peers.down(p.id);
                        }
                        return None;
                    }
                };
                (reply.node_id == p.id).then(|| {
                    node.peers.heard_from(p.id);
                    reply.nodes
                })
            }
        });
        let learned: Vec<pb::NodeAddr> = futures::future::join_all(calls)
            .await
            .into_iter()
            .flatten()
            .flatten()
            .collect();
        node.learn_nodes(learned).await;
    }
}

/// The ranges of a cluster of processes and the nodes that may hold them: the ranges laid
/// out at init, corrected by the splits this node applies or learns of, and any node may
/// hold a replica of any of them (the router asks the others when one holds none).
struct NodeDirectory {
    tiles: StaticDirectory,
    peers: Peers,
}

impl NodeDirectory {
    fn new(ranges: Vec<RangeDesc>, peers: Peers) -> Self {
        let infos = ranges
            .into_iter()
            .map(|desc| RangeInfo {
                desc,
                replicas: Vec::new(),
            })
            .collect();
        NodeDirectory {
            tiles: StaticDirectory::new(infos).expect("the initial ranges tile the key space"),
            peers,
        }
    }

    fn with_replicas(&self, mut info: RangeInfo) -> RangeInfo {
        info.replicas = self.peers.book().iter().map(|n| n.id).collect();
        info
    }
}

impl RangeDirectory for NodeDirectory {
    fn lookup(&self, key: &[u8]) -> Result<RangeInfo> {
        self.tiles.lookup(key).map(|i| self.with_replicas(i))
    }

    fn overlapping(&self, span: &Span) -> Result<Vec<RangeInfo>> {
        Ok(self
            .tiles
            .overlapping(span)?
            .into_iter()
            .map(|i| self.with_replicas(i))
            .collect())
    }

    fn learn(&self, desc: RangeDesc) {
        self.tiles.learn(desc);
    }
}

/// Range ids for splits made through this node: the node id in the high bits, a counter
/// kept in the store below (written durably before an id is used), so ids are unique in
/// the cluster without asking anyone. Ranges laid out at init have small ids.
struct NodeRangeIds<E: Engine> {
    node: u64,
    commit: Arc<GroupCommit<E>>,
    lock: tokio::sync::Mutex<()>,
}

const RANGE_COUNTER_KEY: &[u8] = b"cluster/next-range";

#[async_trait]
impl<E: Engine> RangeIds for NodeRangeIds<E> {
    async fn next_range_id(&self) -> Result<u64> {
        let _one_at_a_time = self.lock.lock().await;
        let last = match self
            .commit
            .engine()
            .get(Keyspace::System, RANGE_COUNTER_KEY)?
        {
            None => 0,
            Some(b) => u64::from_be_bytes(b.as_slice().try_into().map_err(|_| {
                Error::Mvcc(mvcc::Error::Corrupt {
                    key: RANGE_COUNTER_KEY.to_vec(),
                    detail: "range id counter is not 8 bytes".into(),
                })
            })?),
        };
        let next = last + 1;
        let mut b = WriteBatch::new();
        b.put(
            Keyspace::System,
            RANGE_COUNTER_KEY.to_vec(),
            next.to_be_bytes().to_vec(),
        );
        self.commit.commit_async(&b).await?;
        Ok(split_range_id(self.node, next))
    }
}

/// The id of the `n`th range split off through node `node`.
pub fn split_range_id(node: u64, n: u64) -> u64 {
    (node << 40) | (n & ((1 << 40) - 1))
}

/// Passes the splits a replica applied to the node's [`split_loop`].
struct SplitEvents(tokio::sync::mpsc::UnboundedSender<raft::SplitEvent>);

impl raft::StoreHooks for SplitEvents {
    fn split(&self, event: raft::SplitEvent) {
        let _ = self.0.send(event);
    }
}

/// Starts the replicas of the ranges this node's replicas split off.
async fn split_loop<E: Engine>(
    node: Arc<ClusterNode<E>>,
    mut events: tokio::sync::mpsc::UnboundedReceiver<raft::SplitEvent>,
) {
    while let Some(event) = events.recv().await {
        if node.stopped() {
            return;
        }
        let right = event.right;
        if let Err(e) = node.split_off(event).await {
            tracing::error!(
                range = right,
                "starting the replica of a split-off range: {e}"
            );
        }
    }
}

/// Sends key-value requests to other nodes over gRPC (and to this node's store directly).
struct GrpcTransport<E: Engine> {
    me: u64,
    store: Arc<Store<E>>,
    peers: Peers,
}

#[async_trait]
impl<E: Engine> NodeTransport for GrpcTransport<E> {
    async fn send(&self, to: u64, range: u64, req: Request) -> Result<Response> {
        if to == self.me {
            return self.store.execute(range, req).await;
        }
        let unreachable = |detail: String| Error::NodeUnreachable { node: to, detail };
        let idempotent = req.is_idempotent();
        let mut client = self.peers.client_of(to).map_err(unreachable)?;
        let call = client.kv(pb::KvRequest {
            header: Some(self.peers.header_to(to)),
            range,
            body: encode(&req),
        });
        match call.await {
            Ok(reply) => {
                self.peers.heard_from(to);
                decode_result(&reply.into_inner().body, to)
            }
            // Refused before it ran (another cluster, not a member yet), or never sent.
            Err(s)
                if idempotent
                    || never_sent(&s)
                    || matches!(
                        s.code(),
                        tonic::Code::FailedPrecondition
                            | tonic::Code::PermissionDenied
                            | tonic::Code::InvalidArgument
                    ) =>
            {
                Err(unreachable(describe(&s)))
            }
            Err(s) => Err(Error::Ambiguous(format!(
                "the request to node {to} failed after it was sent: {}",
                s.message()
            ))),
        }
    }
}

/// Reads the oracle's high-water mark from this node's copy of the meta range.
pub(crate) fn read_mark<E: Engine>(engine: &E) -> Result<Timestamp> {
    let reader = mvcc::MvccReader::new(engine);
    match reader.value_at(&tso::mark_key(), Timestamp::MAX)? {
        None => Ok(Timestamp::ZERO),
        Some(b) if b.len() == 8 => Ok(Timestamp::new(u64::from_be_bytes(
            b.as_slice().try_into().unwrap_or([0; 8]),
        ))),
        Some(b) => Err(Error::Tso(format!(
            "corrupt cluster high-water mark ({} bytes)",
            b.len()
        ))),
    }
}
