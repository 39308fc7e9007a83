//! A SQL cluster inside one process: a [`kv::cluster::LocalCluster`] whose every node also
//! runs the SQL layer and a PostgreSQL listener of its own.
//!
//! ```text
//!   client ──▶ node 1: pgwire ─▶ SqlEngine ─▶ TxnClient ─▶ DistKv ─┐
//!   client ──▶ node 2: pgwire ─▶ SqlEngine ─▶ TxnClient ─▶ DistKv ─┼─▶ leaseholders' Replicas
//!   client ──▶ node 3: ...                                          ┘   (Raft groups, 3 replicas)
//! ```
//!
//! Any node accepts SQL for any table; `tessera demo --nodes N` and the cluster tests run
//! this. The timestamp oracle is one object shared by the nodes (the oracle served by the
//! meta range's leaseholder replaces it in a cluster of processes).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use base::{Clock, SystemClock};
use kv::cluster::{ClusterConfig, LocalCluster};
use kv::tso::{LocalTso, TimestampOracle};
use pgwire::{PgConfig, PgServer};
use sql::SqlEngine;
use storage::{Engine, FjallConfig, FjallEngine, GroupCommit};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use txn::{TxnClient, TxnConfig};

use crate::ServerError;

/// Returns split keys that put each table with an id in `tables` (of the system tenant)
/// in a range of its own.
pub fn table_splits(tables: std::ops::Range<u64>) -> Vec<Vec<u8>> {
    tables
        .map(|t| codec::layout::table_prefix(base::TenantId::SYSTEM, base::TableId(t)))
        .collect()
}

/// Settings of a [`SqlCluster`].
#[derive(Clone, Debug, Default)]
pub struct SqlClusterConfig {
    pub kv: ClusterConfig,
    pub txn: TxnConfig,
    pub pg: PgConfig,
}

struct SqlNode {
    sql: Arc<SqlEngine>,
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// N nodes in one process, each serving SQL.
pub struct SqlCluster<E: Engine> {
    kv: LocalCluster<E>,
    tso: Arc<dyn TimestampOracle>,
    clock: Arc<dyn Clock>,
    config: SqlClusterConfig,
    nodes: Mutex<BTreeMap<u64, SqlNode>>,
}

impl SqlCluster<FjallEngine> {
    /// Opens (or creates) a cluster of `nodes` nodes with stores under `dir`
    /// (`dir/node-1`, ...; the oracle's mark in `dir/tso`).
    pub async fn open(
        dir: &Path,
        nodes: usize,
        config: SqlClusterConfig,
    ) -> Result<Self, ServerError> {
        let open = |name: String| -> Result<Arc<GroupCommit<FjallEngine>>, ServerError> {
            let engine = FjallEngine::open(dir.join(name), &FjallConfig::default())
                .map_err(crate::NodeError::from)?;
            Ok(Arc::new(GroupCommit::new(Arc::new(engine))))
        };
        let engines = (1..=nodes)
            .map(|i| open(format!("node-{i}")))
            .collect::<Result<Vec<_>, _>>()?;
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let tso = Arc::new(
            LocalTso::open(open("tso".into())?, clock.clone(), 3_000)
                .map_err(crate::NodeError::from)?,
        );
        Self::start(engines, tso, clock, config).await
    }
}

impl<E: Engine> SqlCluster<E> {
    /// Starts one node per engine, each with a SQL listener on a free loopback port.
    pub async fn start(
        engines: Vec<Arc<GroupCommit<E>>>,
        tso: Arc<dyn TimestampOracle>,
        clock: Arc<dyn Clock>,
        config: SqlClusterConfig,
    ) -> Result<Self, ServerError> {
        let kv = LocalCluster::start(engines, tso.clone(), clock.clone(), config.kv.clone())
            .await
            .map_err(crate::NodeError::from)?;
        let cluster = SqlCluster {
            kv,
            tso,
            clock,
            config,
            nodes: Mutex::default(),
        };
        for node in cluster.kv.nodes() {
            cluster.start_sql(node).await?;
        }
        Ok(cluster)
    }

    async fn start_sql(&self, node: u64) -> Result<(), ServerError> {
        let client = TxnClient::new(
            self.kv.kv(node),
            self.tso.clone(),
            self.clock.clone(),
            self.config.txn.clone(),
        );
        let sql = SqlEngine::for_cluster(client, self.clock.clone(), node);
        let (shutdown, rx) = watch::channel(false);
        let bind = SocketAddr::from(([127, 0, 0, 1], 0));
        let pg = PgServer::bind(bind, sql.clone(), self.config.pg.clone(), rx)
            .await
            .map_err(|source| ServerError::Listen { addr: bind, source })?;
        let addr = pg
            .local_addr()
            .map_err(|source| ServerError::Listen { addr: bind, source })?;
        let task = tokio::spawn(pg.run());
        tracing::info!(node, %addr, "node serving SQL");
        self.sql_nodes().insert(
            node,
            SqlNode {
                sql,
                addr,
                shutdown,
                task,
            },
        );
        Ok(())
    }

    fn sql_nodes(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, SqlNode>> {
        self.nodes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Returns the key-value cluster underneath.
    pub fn kv(&self) -> &LocalCluster<E> {
        &self.kv
    }

    /// Returns node `node`'s SQL address, if it is up.
    pub fn sql_addr(&self, node: u64) -> Option<SocketAddr> {
        self.sql_nodes().get(&node).map(|n| n.addr)
    }

    /// Returns node `node`'s SQL engine, if it is up.
    pub fn sql(&self, node: u64) -> Option<Arc<SqlEngine>> {
        self.sql_nodes().get(&node).map(|n| n.sql.clone())
    }

    /// Returns a `postgresql://` URL of node `node`.
    pub fn url(&self, node: u64) -> Option<String> {
        self.sql_addr(node)
            .map(|a| format!("postgresql://root@{a}/postgres?sslmode=disable"))
    }

    /// Stops node `node` as a crash would: its SQL connections drop and its replicas stop.
    pub async fn kill(&self, node: u64) {
        let sql = self.sql_nodes().remove(&node);
        if let Some(n) = sql {
            n.task.abort();
            let _ = n.shutdown.send(true);
        }
        self.kv.kill(node).await;
    }

    /// Restarts a killed node from its store, with a new SQL listener.
    pub async fn restart(&self, node: u64) -> Result<(), ServerError> {
        self.kv.boot(node).await.map_err(crate::NodeError::from)?;
        self.start_sql(node).await
    }

    /// Stops every node.
    pub async fn shutdown(&self) {
        for node in self.kv.nodes() {
            let sql = self.sql_nodes().remove(&node);
            if let Some(n) = sql {
                let _ = n.shutdown.send(true);
                let _ = n.task.await;
            }
        }
        self.kv.shutdown().await;
    }
}
