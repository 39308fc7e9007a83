//! A single-node stack on a durable store.

use std::path::PathBuf;
use std::sync::Arc;

use base::{Clock, SystemClock};
use kv::tso::LocalTso;
use kv::{LocalKv, LocalKvConfig};
use sql::SqlEngine;
use storage::{FjallConfig, FjallEngine, GroupCommit, GroupCommitStats};
use txn::{TxnClient, TxnConfig};

/// Configuration of one node.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// The store directory; created if missing.
    pub store: PathBuf,
    pub fjall: FjallConfig,
    pub kv: LocalKvConfig,
    pub txn: TxnConfig,
    /// How far ahead of handed-out timestamps the oracle persists its high-water mark, ms.
    pub tso_window_ms: u64,
}

impl NodeConfig {
    /// Returns the defaults for a store in `store`.
    pub fn new(store: impl Into<PathBuf>) -> Self {
        NodeConfig {
            store: store.into(),
            fjall: FjallConfig::default(),
            kv: LocalKvConfig::default(),
            txn: TxnConfig::default(),
            tso_window_ms: 3_000,
        }
    }

    /// Checks the settings.
    pub fn validate(&self) -> Result<(), NodeError> {
        self.txn.validate().map_err(NodeError::Config)?;
        if self.tso_window_ms == 0 {
            return Err(NodeError::Config("tso_window_ms must be positive".into()));
        }
        Ok(())
    }
}

/// An error opening a node.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Storage(#[from] storage::Error),
    #[error(transparent)]
    Kv(#[from] kv::Error),
}

/// A running node.
pub struct Node {
    txn: TxnClient,
    commit: Arc<GroupCommit<FjallEngine>>,
    sql: Arc<SqlEngine>,
    store: PathBuf,
}

impl Node {
    /// Opens the store and starts the node's services, on the system clock.
    pub fn open(config: NodeConfig) -> Result<Node, NodeError> {
        Self::open_with_clock(config, Arc::new(SystemClock))
    }

    /// Opens the node with a given clock (tests use a manual one).
    pub fn open_with_clock(config: NodeConfig, clock: Arc<dyn Clock>) -> Result<Node, NodeError> {
        config.validate()?;
        let engine = Arc::new(FjallEngine::open(&config.store, &config.fjall)?);
        let commit = Arc::new(GroupCommit::new(engine));
        let tso = Arc::new(LocalTso::open(
            commit.clone(),
            clock.clone(),
            config.tso_window_ms,
        )?);
        let kv = Arc::new(LocalKv::new(
            commit.clone(),
            tso.clone(),
            clock.clone(),
            config.kv,
        ));
        let txn = TxnClient::new(kv, tso, clock.clone(), config.txn);
        let sql = SqlEngine::new(txn.clone(), clock);
        Ok(Node {
            txn,
            commit,
            sql,
            store: config.store,
        })
    }

    /// Returns the node's transaction client.
    pub fn txn(&self) -> &TxnClient {
        &self.txn
    }

    /// Returns the node's SQL engine.
    pub fn sql(&self) -> &Arc<SqlEngine> {
        &self.sql
    }

    /// Returns the store directory.
    pub fn store(&self) -> &std::path::Path {
        &self.store
    }

    /// Returns the node's group commit.
    pub fn commit(&self) -> &Arc<GroupCommit<FjallEngine>> {
        &self.commit
    }

    /// Returns group commit counters.
    pub fn commit_stats(&self) -> GroupCommitStats {
        self.commit.stats()
    }
}
