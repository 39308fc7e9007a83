//! The storage engine: one per node, holding Raft logs, Raft state, MVCC data, locks and
//! system data in separate keyspaces of one sorted, durable store.
//!
//! Layers above see only the [`Engine`] trait:
//!
//! ```text
//!   reads: get, ordered scans (forwards or backwards, any bounds), consistent snapshots
//!   writes: WriteBatch (atomic across keyspaces) --write--> visible, not yet durable
//!                                                 --sync--->  durable (fsync)
//! ```
//!
//! Writing and syncing are separate on purpose: [`GroupCommit`] sits on top of any engine
//! and lets concurrent writers share one fsync, which is what makes durable commits fast on
//! a disk whose flush takes milliseconds.
//!
//! Implementations:
//! - [`FjallEngine`]: durable, on the fjall LSM-tree. One fjall database per store, one
//!   fjall keyspace per [`Keyspace`], the journal persisted only when asked (by `sync`).
//! - [`MemoryEngine`]: in memory, for tests; snapshots are cheap.
//! - [`FaultEngine`]: wraps another engine and fails the Nth write or sync (disk full, I/O
//!   error), and can "crash", keeping only what was synced.
//!
//! Every implementation passes the same [`conformance`] suite.

pub mod conformance;
mod engine;
mod error;
mod fault;
mod fjall_engine;
mod group_commit;
mod manifest;
mod memory;

pub use engine::{
    BatchOp, Engine, Keyspace, KvPair, MAX_STORAGE_KEY_LEN, MAX_STORAGE_VALUE_LEN, ReadView,
    ScanIter, WriteBatch,
};
pub use error::{Error, Result};
pub use fault::{FaultEngine, FaultKind};
pub use fjall_engine::{FjallConfig, FjallEngine};
pub use group_commit::{GroupCommit, GroupCommitStats, Ticket};
pub use manifest::STORE_FORMAT_VERSION;
pub use memory::MemoryEngine;
