//! One Tessera node, wired together.
//!
//! ```text
//!   PostgreSQL clients ──▶ pgwire ──▶ SqlEngine ──▶ TxnClient ──▶ LocalKv ──▶ GroupCommit ──▶ FjallEngine
//!   HTTP (probes, metrics, status) ──────────────────────┘            └──▶ LocalTso ──┘
//! ```
//!
//! [`Node::open`] opens (or creates) a store; [`Server::start`] adds the PostgreSQL and
//! HTTP listeners and shuts them down gracefully. [`cluster::SqlCluster`] runs several
//! nodes in one process, their ranges replicated by Raft.

pub mod cluster;
mod http;
mod node;
pub mod process;
mod service;

pub use node::{Node, NodeConfig, NodeError};
pub use process::{ClusterServer, ClusterServerConfig};
pub use service::{DEFAULT_HTTP_PORT, DEFAULT_SQL_PORT, Server, ServerConfig, ServerError};
