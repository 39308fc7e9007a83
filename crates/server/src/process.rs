//! A node of a cluster of processes: `tessera start`.
//!
//! ```text
//!   peers ──gRPC──▶ NodeService ──▶ ClusterNode (replicas, placement, oracle)
//!   clients ──pg──▶ SqlEngine ──▶ TxnClient ──▶ DistKv ──gRPC / local──▶ leaseholders
//!   probes ──HTTP──▶ health, readiness, metrics, node status (cluster, replicas)
//! ```
//!
//! The RPC and HTTP listeners start first; SQL starts once the node belongs to a cluster
//! (after `tessera init`, or once it joined through `--join`). A store that belongs to a
//! cluster restarts straight into it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base::{Clock, SystemClock};
use kv::node::{ClusterNode, NodeConfig, NodeService};
use kv::rpc::pb;
use pgwire::{PgConfig, PgServer};
use sql::SqlEngine;
use storage::{FjallConfig, FjallEngine, GroupCommit};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use txn::{TxnClient, TxnConfig};

use crate::ServerError;
use crate::service::{Status, serve_http};

/// Settings of a cluster node process.
#[derive(Clone, Debug)]
pub struct ClusterServerConfig {
    pub store: PathBuf,
    pub fjall: FjallConfig,
    /// Where the node-to-node RPC listens.
    pub listen_addr: SocketAddr,
    /// The address peers reach the RPC listener at (default: the bound address).
    pub advertise_addr: Option<String>,
    pub sql_addr: SocketAddr,
    pub http_addr: SocketAddr,
    /// Nodes to join through (empty: wait for `tessera init`).
    pub join: Vec<String>,
    pub join_timeout: Duration,
    pub pg: PgConfig,
    pub txn: TxnConfig,
    /// Raft heartbeat and election timeouts, ms.
    pub heartbeat_ms: u64,
    pub election_timeout_ms: (u64, u64),
    /// A range larger than this splits in two (0: never by size).
    pub range_max_bytes: u64,
}

impl ClusterServerConfig {
    /// Returns the defaults for a store in `store`.
    pub fn new(store: impl Into<PathBuf>) -> Self {
        ClusterServerConfig {
            store: store.into(),
            fjall: FjallConfig::default(),
            listen_addr: SocketAddr::from(([127, 0, 0, 1], DEFAULT_RPC_PORT)),
            advertise_addr: None,
            sql_addr: SocketAddr::from(([127, 0, 0, 1], crate::DEFAULT_SQL_PORT)),
            http_addr: SocketAddr::from(([127, 0, 0, 1], crate::DEFAULT_HTTP_PORT)),
            join: Vec::new(),
            join_timeout: Duration::from_secs(300),
            pg: PgConfig::default(),
            txn: TxnConfig::default(),
            heartbeat_ms: 150,
            election_timeout_ms: (700, 1_100),
            range_max_bytes: kv::autosplit::AutoSplitConfig::default().max_bytes,
        }
    }
}

/// The default node-to-node RPC port.
pub const DEFAULT_RPC_PORT: u16 = 26357;

/// The first table id with a range of its own.
const FIRST_TABLE_RANGE: u64 = 100;
/// The tables that start in ranges of their own in a new cluster (the first ones a
/// database creates).
const INITIAL_TABLE_RANGES: std::ops::Range<u64> = FIRST_TABLE_RANGE..116;

/// A running node of a cluster.
pub struct ClusterServer {
    node: Arc<ClusterNode<FjallEngine>>,
    rpc_addr: SocketAddr,
    sql_addr: SocketAddr,
    http_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

fn listen_err(addr: SocketAddr) -> impl FnOnce(std::io::Error) -> ServerError {
    move |source| ServerError::Listen { addr, source }
}

impl ClusterServer {
    /// Opens the store, starts the listeners, and joins the cluster (or waits for
    /// `tessera init`). Fails if the store belongs to another cluster than the `--join`
    /// nodes, if another process runs this node, or if no `--join` node answered in
    /// time.
    pub async fn start(config: ClusterServerConfig) -> Result<ClusterServer, ServerError> {
        let engine =
            FjallEngine::open(&config.store, &config.fjall).map_err(crate::NodeError::from)?;
        let commit = Arc::new(GroupCommit::new(Arc::new(engine)));
        let rpc_listener = tokio::net::TcpListener::bind(config.listen_addr)
            .await
            .map_err(listen_err(config.listen_addr))?;
        let rpc_addr = rpc_listener
            .local_addr()
            .map_err(listen_err(config.listen_addr))?;
        let sql_listener = tokio::net::TcpListener::bind(config.sql_addr)
            .await
            .map_err(listen_err(config.sql_addr))?;
        let sql_addr = sql_listener
            .local_addr()
            .map_err(listen_err(config.sql_addr))?;
        let http_listener = tokio::net::TcpListener::bind(config.http_addr)
            .await
            .map_err(listen_err(config.http_addr))?;
        let http_addr = http_listener
            .local_addr()
            .map_err(listen_err(config.http_addr))?;

        let mut node_config = NodeConfig::new(
            config
                .advertise_addr
                .clone()
                .unwrap_or_else(|| rpc_addr.to_string()),
        );
        node_config.sql_addr = sql_addr.to_string();
        node_config.http_addr = http_addr.to_string();
        node_config.join = config.join.clone();
        node_config.join_timeout = config.join_timeout;
        node_config.spool_dir = Some(config.store.join("snapshots"));
        node_config.heartbeat_ms = config.heartbeat_ms;
        node_config.election_timeout_ms = config.election_timeout_ms;
        node_config.split_keys = crate::cluster::table_splits(INITIAL_TABLE_RANGES);
        node_config.auto_split =
            (config.range_max_bytes > 0).then(|| kv::autosplit::AutoSplitConfig {
                max_bytes: config.range_max_bytes,
                ..Default::default()
            });
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let node = ClusterNode::open(commit.clone(), node_config, clock.clone())
            .await
            .map_err(node_err)?;

        let (shutdown, rx) = watch::channel(false);
        let mut tasks = Vec::new();
        let mut rpc_rx = rx.clone();
        let service = NodeService::server(node.clone());
        tasks.push(tokio::spawn(async move {
            let serve = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming_shutdown(
                    tonic::transport::server::TcpIncoming::from(rpc_listener)
                        .with_nodelay(Some(true)),
                    async move { pgwire::stopped(&mut rpc_rx).await },
                );
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "RPC server failed");
            }
        }));
        let status = Arc::new(Status {
            txn: Default::default(),
            pg: Default::default(),
            commit,
            store: config.store.clone(),
            sql_addr,
            http_addr,
            cluster: Some(node.clone()),
        });
        tasks.push(serve_http(http_listener, status.clone(), rx.clone()));

        if let Err(e) = node.join().await {
            let _ = shutdown.send(true);
            node.shutdown().await;
            for t in tasks {
                let _ = t.await;
            }
            return Err(node_err(e));
        }

        // SQL, once the node belongs to a cluster.
        let (pg_config, txn_config, sql_rx) = (config.pg.clone(), config.txn.clone(), rx.clone());
        let sql_node = node.clone();
        tasks.push(tokio::spawn(async move {
            let mut stop = sql_rx.clone();
            let ident = tokio::select! {
                i = sql_node.wait_ident() => i,
                _ = pgwire::stopped(&mut stop) => return,
            };
            let (Some(kv), Some(tso)) = (sql_node.kv(), sql_node.tso()) else {
                return;
            };
            let client = TxnClient::new(kv, tso, clock.clone(), txn_config);
            // GC of old versions, run by the node leading the meta range.
            let (gc_client, gc_node, mut gc_stop) =
                (client.clone(), sql_node.clone(), sql_rx.clone());
            tokio::spawn(async move {
                tokio::select! {
                    _ = gc_client.gc_loop(move || gc_node.leads_meta()) => {}
                    _ = pgwire::stopped(&mut gc_stop) => {}
                }
            });
            let sql = SqlEngine::for_cluster(client.clone(), clock, ident.node_id);
            let pg = PgServer::from_listener(sql_listener, sql, pg_config, sql_rx);
            let _ = status.txn.set(client);
            let _ = status.pg.set(pg.shared());
            tracing::info!(node = ident.node_id, %sql_addr, "serving SQL");
            pg.run().await;
        }));
        tracing::info!(%rpc_addr, %sql_addr, %http_addr, store = %config.store.display(), "node started");
        Ok(ClusterServer {
            node,
            rpc_addr,
            sql_addr,
            http_addr,
            shutdown,
            tasks,
        })
    }

    /// Returns the cluster node.
    pub fn node(&self) -> &Arc<ClusterNode<FjallEngine>> {
        &self.node
    }

    pub fn rpc_addr(&self) -> SocketAddr {
        self.rpc_addr
    }

    pub fn sql_addr(&self) -> SocketAddr {
        self.sql_addr
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// Stops the listeners and the node's replicas.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        self.node.shutdown().await;
        tracing::info!("node stopped");
    }
}

fn node_err(e: kv::node::NodeError) -> ServerError {
    ServerError::Cluster(e.to_string())
}

/// Asks the node at `host` to create a new cluster with `replication` replicas per range
/// and `ranges` initial ranges (the node's default if `None`).
pub async fn init_cluster(
    host: &str,
    replication: u32,
    ranges: Option<u64>,
) -> Result<pb::InitReply, String> {
    let split_keys = match ranges {
        None => Vec::new(),
        Some(0) => return Err("--ranges: at least 1".into()),
        Some(n) => crate::cluster::table_splits(FIRST_TABLE_RANGE..FIRST_TABLE_RANGE + n - 1),
    };
    let mut client = kv::rpc::client(host)?;
    client
        .init(pb::InitRequest {
            replication,
            split_keys,
        })
        .await
        .map(|r| r.into_inner())
        .map_err(|s| format!("{host}: {}", kv::node::describe(&s)))
}

/// Asks the node at `host` for its status.
pub async fn node_status(host: &str) -> Result<pb::StatusReply, String> {
    let mut client = kv::rpc::client(host)?;
    tokio::time::timeout(
        Duration::from_secs(5),
        client.status(pb::StatusRequest { header: None }),
    )
    .await
    .map_err(|_| format!("{host}: no answer in 5s"))?
    .map(|r| r.into_inner())
    .map_err(|s| format!("{host}: {}", kv::node::describe(&s)))
}

/// Returns the cluster's ranges as the meta range records them, asking through `host`,
/// as JSON: each range's id and the first and last keys of its span (shown readably).
pub async fn ranges_json(host: &str) -> Result<serde_json::Value, String> {
    let client = kv::node::client::RemoteClient::connect(&[host.to_string()]).await?;
    let (kv, tso) = (client.kv(), client.tso());
    let descs = tokio::time::timeout(
        Duration::from_secs(30),
        kv::node::meta::read_all(kv.as_ref(), tso.as_ref()),
    )
    .await
    .map_err(|_| format!("{host}: the meta range did not answer in 30 s"))?
    .map_err(|e| format!("{host}: {e}"))?;
    Ok(serde_json::Value::Array(
        descs
            .iter()
            .map(|d| {
                serde_json::json!({
                    "range": d.id,
                    "start": codec::layout::pretty(&d.span.start),
                    "end": if d.span.end.is_empty() {
                        "(end of the key space)".to_string()
                    } else {
                        codec::layout::pretty(&d.span.end)
                    },
                })
            })
            .collect(),
    ))
}

/// Renders a node's status as JSON (the HTTP API's `cluster` object).
pub fn status_json(s: &pb::StatusReply) -> serde_json::Value {
    let node = |n: &pb::NodeAddr| {
        serde_json::json!({
            "id": n.id,
            "address": n.addr,
            "sql_address": n.sql_addr,
            "http_address": n.http_addr,
            "live": s.live.contains(&n.id),
        })
    };
    serde_json::json!({
        "cluster_id": s.cluster_id,
        "node_id": s.node_id,
        "replication": s.replication,
        "nodes": s.nodes.iter().map(node).collect::<Vec<_>>(),
        "replicas": s.replicas.iter().map(|r| serde_json::json!({
            "range": r.range,
            "leader": r.leader,
            "voters": r.voters,
            "learners": r.learners,
            "applied": r.applied,
            "term": r.term,
            "quiesced": r.quiesced,
        })).collect::<Vec<_>>(),
    })
}
