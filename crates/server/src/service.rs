//! A node's network services: the PostgreSQL listener and the HTTP API, with graceful
//! shutdown.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use storage::{FjallEngine, GroupCommit};
use txn::TxnClient;

use pgwire::{PgConfig, PgServer};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::http::{self, HttpState};
use crate::node::{Node, NodeConfig, NodeError};

/// Configuration of a server process.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub node: NodeConfig,
    /// Where the PostgreSQL protocol listens (port 0 picks a free port).
    pub sql_addr: SocketAddr,
    /// Where the HTTP API listens (port 0 picks a free port).
    pub http_addr: SocketAddr,
    pub pg: PgConfig,
}

/// The default SQL port.
pub const DEFAULT_SQL_PORT: u16 = 26257;
/// The default HTTP port.
pub const DEFAULT_HTTP_PORT: u16 = 8080;

impl ServerConfig {
    /// Returns the defaults: a store in `store`, both listeners on loopback.
    pub fn new(store: impl Into<std::path::PathBuf>) -> Self {
        ServerConfig {
            node: NodeConfig::new(store),
            sql_addr: SocketAddr::from(([127, 0, 0, 1], DEFAULT_SQL_PORT)),
            http_addr: SocketAddr::from(([127, 0, 0, 1], DEFAULT_HTTP_PORT)),
            pg: PgConfig::default(),
        }
    }
}

/// An error starting the server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Node(#[from] NodeError),
    #[error("{0}")]
    Cluster(String),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// What the HTTP API reports.
pub(crate) struct Status {
    /// Set once the node can run transactions (a cluster node, once it joined).
    pub txn: OnceLock<TxnClient>,
    pub pg: OnceLock<Arc<pgwire::Shared>>,
    pub commit: Arc<GroupCommit<FjallEngine>>,
    pub store: std::path::PathBuf,
    pub sql_addr: SocketAddr,
    pub http_addr: SocketAddr,
    /// The cluster node, for a node of a cluster of processes.
    pub cluster: Option<Arc<kv::node::ClusterNode<FjallEngine>>>,
}

/// Serves the HTTP API on `listener` until `shutdown` turns true.
pub(crate) fn serve_http(
    listener: tokio::net::TcpListener,
    status: Arc<Status>,
    mut shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let app = http::router(Arc::new(HttpState {
        status,
        started: Instant::now(),
    }));
    tokio::spawn(async move {
        let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
            pgwire::stopped(&mut shutdown).await;
        });
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "HTTP server failed");
        }
    })
}

/// A started server.
pub struct Server {
    node: Arc<Node>,
    sql_addr: SocketAddr,
    http_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    pg_task: JoinHandle<()>,
    http_task: JoinHandle<()>,
}

impl Server {
    /// Opens the store and starts listening. Must run inside a Tokio runtime.
    pub async fn start(config: ServerConfig) -> Result<Server, ServerError> {
        let node = Arc::new(Node::open(config.node.clone())?);
        let (shutdown, rx) = watch::channel(false);
        let pg = PgServer::bind(
            config.sql_addr,
            node.sql().clone(),
            config.pg.clone(),
            rx.clone(),
        )
        .await
        .map_err(|source| ServerError::Listen {
            addr: config.sql_addr,
            source,
        })?;
        let sql_addr = pg.local_addr().map_err(|source| ServerError::Listen {
            addr: config.sql_addr,
            source,
        })?;
        let http_listener = tokio::net::TcpListener::bind(config.http_addr)
            .await
            .map_err(|source| ServerError::Listen {
                addr: config.http_addr,
                source,
            })?;
        let http_addr = http_listener
            .local_addr()
            .map_err(|source| ServerError::Listen {
                addr: config.http_addr,
                source,
            })?;
        let status = Arc::new(Status {
            txn: node.txn().clone().into(),
            pg: pg.shared().into(),
            commit: node.commit().clone(),
            store: node.store().to_path_buf(),
            sql_addr,
            http_addr,
            cluster: None,
        });
        let http_task = serve_http(http_listener, status, rx.clone());
        let pg_task = tokio::spawn(pg.run());
        // GC of old versions (this node holds every range).
        let (gc_client, mut gc_stop) = (node.txn().clone(), rx.clone());
        tokio::spawn(async move {
            tokio::select! {
                _ = gc_client.gc_loop(|| true) => {}
                _ = pgwire::stopped(&mut gc_stop) => {}
            }
        });
        tracing::info!(%sql_addr, %http_addr, store = %node.store().display(), "server started");
        Ok(Server {
            node,
            sql_addr,
            http_addr,
            shutdown,
            pg_task,
            http_task,
        })
    }

    /// Returns the PostgreSQL listener's address.
    pub fn sql_addr(&self) -> SocketAddr {
        self.sql_addr
    }

    /// Returns the HTTP listener's address.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// Returns the node.
    pub fn node(&self) -> &Arc<Node> {
        &self.node
    }

    /// Stops accepting connections, lets running statements finish (up to the grace
    /// period), closes connections and waits for the listeners to end.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.pg_task.await;
        let _ = self.http_task.await;
        tracing::info!("server stopped");
    }
}
