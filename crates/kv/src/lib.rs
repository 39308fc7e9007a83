//! The key-value API between transactions and the ranges that hold their data.
//!
//! ```text
//!   txn client ──Request──▶ KvService ──▶ range: latches ─▶ MVCC command ─▶ group commit
//!              ◀─Response──            ◀──────────────── (durable) ◀──────┘
//! ```
//!
//! A [`Request`] carries one MVCC command for keys of one range (a batch get, a scan, a
//! prewrite of many keys, ...). [`KvService`] is the seam: the transaction layer talks
//! only to it, so the single-node [`LocalKv`] here and the distributed router that replaces
//! it later are interchangeable.
//!
//! [`LocalKv`] executes commands on one node's storage engine:
//! - A write command takes **latches** on the keys it writes, runs against the engine, hands
//!   its batch to group commit and releases the latches only once the batch is durable.
//! - A read waits for latches on the keys or span it reads, so it never returns data that
//!   is visible but not yet durable, and never misses a one-phase commit whose timestamp
//!   was taken before the read's.
//! - One-phase commits take their commit timestamp while holding their latches (the one
//!   the transaction reserved when no read or record forbids it, see `read_stamps`, else
//!   one from the oracle), and treat a latch held by another command on a key they read
//!   as a conflict (never a wait, so two of them never wait for each other).
//!
//! In a cluster, each range is a Raft group: a node's [`Store`] holds its [`Replica`]s,
//! which evaluate requests exactly as [`LocalKv`] does (the shared evaluator in `eval`)
//! but only while they are their range's leaseholder, and whose write batches go through
//! Raft instead of straight to the engine. [`DistKv`] routes each request to the
//! leaseholder of its range, retrying as leadership moves; [`cluster::LocalCluster`] runs
//! a whole cluster in one process.
//!
//! The [`tso`] module holds the timestamp oracle.

mod api;
pub mod autosplit;
pub mod cluster;
mod error;
mod eval;
mod latches;
mod local;
pub mod node;
mod read_stamps;
mod replica;
mod router;
pub mod rpc;
pub mod stats;
pub mod tso;

use async_trait::async_trait;

pub use api::{RangeDesc, Request, Response, TxnRef};
pub use error::{Error, Result};
pub use latches::{LatchGuard, Latches};
pub use local::{LocalKv, LocalKvConfig};
pub use replica::{Replica, Store};
pub use router::{
    DistKv, NodeTransport, RangeDirectory, RangeIds, RangeInfo, RangeResolver, RouterConfig,
    StaticDirectory,
};

/// Executes key-value requests, wherever the data lives.
#[async_trait]
pub trait KvService: Send + Sync + 'static {
    /// Executes one request against the range that owns its keys.
    async fn send(&self, req: Request) -> Result<Response>;

    /// Returns the range that owns `key`.
    async fn range_of(&self, key: &[u8]) -> Result<RangeDesc>;

    /// Returns the ranges that overlap `span`, in key order.
    async fn ranges(&self, span: &mvcc::Span) -> Result<Vec<RangeDesc>>;

    /// Splits the range holding `key` at `key` and returns the ranges either side of it
    /// (or just the one starting at `key`, if there is one already).
    async fn split_at(&self, key: &[u8]) -> Result<Vec<RangeDesc>> {
        let _ = key;
        Err(Error::Unsupported(
            "splitting ranges on a single node".into(),
        ))
    }
}
