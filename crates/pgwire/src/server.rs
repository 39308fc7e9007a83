//! The listener: accepts connections, tracks them for cancel requests, and shuts down
//! gracefully.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sql::SqlEngine;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::conn;

/// Settings of the SQL listener.
#[derive(Clone, Debug)]
pub struct PgConfig {
    /// Connections beyond this many are refused with SQLSTATE 53300.
    pub max_connections: usize,
    /// How long shutdown waits for running statements before closing connections.
    pub shutdown_grace: Duration,
}

impl Default for PgConfig {
    fn default() -> Self {
        PgConfig {
            max_connections: 500,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// State shared by the connections of one listener.
pub struct Shared {
    pub engine: Arc<SqlEngine>,
    pub max_connections: usize,
    pub shutdown: watch::Receiver<bool>,
    connections: AtomicUsize,
    /// pid -> (secret key, cancel flag of the session's running statement).
    cancels: Mutex<HashMap<i32, (i32, Arc<AtomicBool>)>>,
}

impl Shared {
    pub(crate) fn register(&self, pid: i32, secret: i32, flag: Arc<AtomicBool>) {
        self.cancels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(pid, (secret, flag));
    }

    pub(crate) fn unregister(&self, pid: i32) {
        self.cancels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&pid);
    }

    /// Cancels the running statement of `pid` if the key matches; a wrong key is ignored
    /// (as in PostgreSQL, the requester learns nothing).
    pub(crate) fn cancel(&self, pid: i32, secret: i32) {
        let cancels = self.cancels.lock().unwrap_or_else(|e| e.into_inner());
        match cancels.get(&pid) {
            Some((key, flag)) if *key == secret => {
                flag.store(true, Ordering::Relaxed);
                tracing::info!(pid, "cancel request");
            }
            _ => tracing::warn!(pid, "cancel request with an unknown pid or a wrong key"),
        }
    }

    /// Returns the number of open connections.
    pub fn connection_count(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }
}

/// A bound PostgreSQL-protocol listener.
pub struct PgServer {
    listener: TcpListener,
    shared: Arc<Shared>,
    config: PgConfig,
}

impl PgServer {
    /// Binds `addr`. `shutdown` turning true stops the server.
    pub async fn bind(
        addr: SocketAddr,
        engine: Arc<SqlEngine>,
        config: PgConfig,
        shutdown: watch::Receiver<bool>,
    ) -> std::io::Result<PgServer> {
        let listener = TcpListener::bind(addr).await?;
        Ok(Self::from_listener(listener, engine, config, shutdown))
    }

    /// Serves on a listener bound already (a node binds its SQL port before it can run
    /// SQL, so a taken port fails at start).
    pub fn from_listener(
        listener: TcpListener,
        engine: Arc<SqlEngine>,
        config: PgConfig,
        shutdown: watch::Receiver<bool>,
    ) -> PgServer {
        let shared = Arc::new(Shared {
            engine,
            max_connections: config.max_connections,
            shutdown,
            connections: AtomicUsize::new(0),
            cancels: Mutex::new(HashMap::new()),
        });
        PgServer {
            listener,
            shared,
            config,
        }
    }

    /// Returns the state shared by the connections (for metrics).
    pub fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// Returns the address the server listens on.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves connections until shutdown, then waits for connections to finish their
    /// current statement (up to the grace period) and closes them.
    pub async fn run(self) {
        let mut shutdown = self.shared.shutdown.clone();
        let mut tasks = JoinSet::new();
        loop {
            tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let _ = stream.set_nodelay(true);
                        let shared = self.shared.clone();
                        shared.connections.fetch_add(1, Ordering::Relaxed);
                        tasks.spawn(async move {
                            tracing::debug!(%peer, "connection opened");
                            conn::serve(stream, shared.clone()).await;
                            shared.connections.fetch_sub(1, Ordering::Relaxed);
                            tracing::debug!(%peer, "connection closed");
                        });
                    }
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                _ = stopped(&mut shutdown) => break,
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            }
        }
        drop(self.listener);
        let deadline = tokio::time::sleep(self.config.shutdown_grace);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                next = tasks.join_next() => if next.is_none() { break },
                _ = &mut deadline => {
                    tracing::warn!(remaining = tasks.len(), "shutdown grace period over; closing connections");
                    tasks.shutdown().await;
                    break;
                }
            }
        }
    }
}

/// Resolves when `rx` turns true (or its sender is gone).
pub async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await.map(|_| ());
}
