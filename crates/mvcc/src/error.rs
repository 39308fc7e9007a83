//! MVCC errors, classified for the layers above.

use base::Timestamp;

use crate::record::LockKind;

/// A lock that blocked a read or write, with what a caller needs to resolve it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LockInfo {
    pub key: Vec<u8>,
    pub primary: Vec<u8>,
    pub start_ts: Timestamp,
    pub kind: LockKind,
    pub ttl_ms: u64,
}

impl LockInfo {
    /// Returns true if the lock's TTL has run out at wall-clock time `now_ms`.
    pub fn is_expired(&self, now_ms: u64) -> bool {
        crate::record::ttl_ran_out(self.start_ts, self.ttl_ms, now_ms)
    }
}

/// An error from an MVCC command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Another transaction holds a lock on the key. Resolve it, then retry.
    #[error("key {} is locked by transaction {}", codec::layout::pretty(&.0.key), .0.start_ts)]
    KeyIsLocked(Box<LockInfo>),
    /// A version was committed after the writer's start (or lock) timestamp.
    #[error(
        "write conflict on key {}: transaction {start_ts} found a version committed at \
         {conflict_commit_ts} by transaction {conflict_start_ts}",
        codec::layout::pretty(key)
    )]
    WriteConflict {
        key: Vec<u8>,
        start_ts: Timestamp,
        conflict_start_ts: Timestamp,
        conflict_commit_ts: Timestamp,
    },
    /// A key or span the transaction read changed (or may change) between its read and
    /// its commit timestamp, so committing would not be serializable.
    #[error(
        "read conflict on key {}: read at {read_ts}, but a version was committed at \
         {conflict_ts} (before the commit at {commit_ts})",
        codec::layout::pretty(key)
    )]
    ReadConflict {
        key: Vec<u8>,
        read_ts: Timestamp,
        conflict_ts: Timestamp,
        commit_ts: Timestamp,
    },
    /// Another transaction holds a write lock on a key the transaction read, and may
    /// commit below its commit timestamp; committing would risk a non-serializable result.
    #[error(
        "read conflict on key {}: transaction {lock_ts} holds a write lock that may commit \
         before the commit at {commit_ts}",
        codec::layout::pretty(key)
    )]
    ReadLocked {
        key: Vec<u8>,
        lock_ts: Timestamp,
        commit_ts: Timestamp,
    },
    /// The transaction's lock is gone and it was not committed: it was rolled back (by a
    /// resolver that found it expired) or never prewritten.
    #[error(
        "transaction {start_ts} was aborted: no lock on key {}",
        codec::layout::pretty(key)
    )]
    TxnAborted { key: Vec<u8>, start_ts: Timestamp },
    /// A rollback was asked for a transaction that is already committed.
    #[error("transaction {start_ts} is already committed at {commit_ts}")]
    AlreadyCommitted {
        start_ts: Timestamp,
        commit_ts: Timestamp,
    },
    /// A commit timestamp not above the start (or lock) timestamp.
    #[error("invalid commit timestamp {commit_ts} for a transaction locked at {lock_ts}")]
    InvalidCommitTs {
        commit_ts: Timestamp,
        lock_ts: Timestamp,
    },
    /// A key is longer than the limit.
    #[error("key of {len} bytes is larger than the limit of {max} bytes")]
    KeyTooLarge { len: usize, max: usize },
    /// A value is longer than the limit.
    #[error("value of {len} bytes is larger than the limit of {max} bytes")]
    ValueTooLarge { len: usize, max: usize },
    /// A stored record could not be decoded.
    #[error(
        "corrupt MVCC record under key {}: {detail}",
        codec::layout::pretty(key)
    )]
    Corrupt { key: Vec<u8>, detail: String },
    /// The storage engine failed.
    #[error(transparent)]
    Storage(#[from] storage::Error),
}

impl Error {
    /// Returns true if retrying the whole transaction (with a new start timestamp) may
    /// succeed: the error is a conflict with another transaction, not a fault.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::KeyIsLocked(_)
                | Error::WriteConflict { .. }
                | Error::ReadConflict { .. }
                | Error::ReadLocked { .. }
                | Error::TxnAborted { .. }
        )
    }
}

/// The result of an MVCC command.
pub type Result<T> = std::result::Result<T, Error>;
