//! Multi-version concurrency control in the style of Percolator.
//!
//! Every write creates a new version of a key, tagged with the commit timestamp of the
//! transaction that wrote it; a read at timestamp `ts` sees, for each key, the newest version
//! committed at or before `ts`. Transactions commit in two phases over two keyspaces:
//!
//! ```text
//!  Locks keyspace   key -> Lock { primary, start_ts, kind, value, ttl }    one per locked key
//!  Mvcc keyspace    escape(key) ++ !commit_ts -> Version { kind, start_ts, value }
//!                   (newest first; kinds: Put, Delete, Lock, Rollback)
//! ```
//!
//! 1. **Prewrite** writes a lock on every key the transaction writes. One key is the
//!    *primary*; every lock points to it. Prewrite fails on a lock of another transaction
//!    (`KeyIsLocked`) or on a version committed after the writer's start (`WriteConflict`).
//! 2. **Commit** the primary: its lock becomes a version at `commit_ts`. From this instant the
//!    transaction is committed; the primary's version record is the proof.
//! 3. **Commit** (resolve) the secondaries, asynchronously. A reader that meets a leftover
//!    lock asks the primary ([`commands::check_txn_status`]) and then rolls the lock forward
//!    or back ([`commands::resolve_lock`]).
//!
//! A reader at `ts` that meets a lock with `start_ts <= ts` cannot know whether the writer
//! will commit below `ts`, so it reports [`Error::KeyIsLocked`]; its own locks it reads
//! back. Serializable commits also validate their reads ([`commands::validate_reads`]):
//! nothing may have been committed or be locked for writing, in `(read_ts, commit_ts]`, on a
//! key or span the transaction read. A transaction whose keys all live in one range skips
//! the locks: [`commands::commit_one_phase`] checks and writes the versions in one step.
//!
//! Rollback leaves a `Rollback` version at the transaction's start timestamp so that a
//! prewrite arriving late cannot resurrect it. Garbage collection ([`commands::gc`]) removes
//! versions older than a safe point, keeping the newest one a reader at the safe point sees.
//!
//! Commands read through a [`storage::ReadView`] and add their writes to a
//! [`storage::WriteBatch`]; the caller applies the batch atomically and keeps conflicting
//! commands apart (latches), so the same commands run unchanged inside a Raft state machine.

pub mod commands;
mod error;
pub mod key;
mod reader;
pub mod record;

pub use error::{Error, LockInfo, Result};
pub use reader::{MvccReader, ScanOutcome, Span};
pub use record::{Latest, Lock, LockKind, Mutation, Version, WriteKind};
