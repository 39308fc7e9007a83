//! One Tessera node, wired together.
//!
//! ```text
//!   TxnClient ──▶ LocalKv ──▶ GroupCommit ──▶ FjallEngine (the store directory)
//!       └────────▶ LocalTso ──────┘
//! ```
//!
//! [`Node::open`] opens (or creates) a store and returns the node's transaction client;
//! everything above (SQL, the wire protocol, the HTTP API) is built on that client.

mod node;

pub use node::{Node, NodeConfig, NodeError};
