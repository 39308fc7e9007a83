//! Requests and responses of the key-value API.

use base::Timestamp;
use mvcc::commands::{GcOutcome, ReadSet, TxnMeta, TxnStatus};
use mvcc::{Mutation, ScanOutcome, Span};

/// A range: a contiguous span of the key space served as one unit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangeDesc {
    pub id: u64,
    pub span: Span,
}

/// One MVCC command for keys of one range.
#[derive(Clone, Debug)]
pub enum Request {
    /// Reads keys at `ts`; `txn` is the reader's own start timestamp.
    Get {
        keys: Vec<Vec<u8>>,
        ts: Timestamp,
        txn: Option<Timestamp>,
    },
    /// Scans a span at `ts`.
    Scan {
        span: Span,
        ts: Timestamp,
        limit: usize,
        reverse: bool,
        txn: Option<Timestamp>,
    },
    /// Takes pessimistic locks and returns the keys' latest values.
    PessimisticLock {
        keys: Vec<Vec<u8>>,
        txn: TxnMeta,
        for_update_ts: Timestamp,
    },
    /// First phase of a two-phase commit.
    Prewrite {
        txn: TxnMeta,
        mutations: Vec<Mutation>,
    },
    /// Checks a transaction's reads against its commit timestamp.
    ValidateReads {
        reads: ReadSet,
        start_ts: Timestamp,
        commit_ts: Timestamp,
    },
    /// Second phase: locks become versions.
    Commit {
        keys: Vec<Vec<u8>>,
        start_ts: Timestamp,
        commit_ts: Timestamp,
    },
    /// Removes a transaction's locks and leaves rollback markers.
    Rollback {
        keys: Vec<Vec<u8>>,
        start_ts: Timestamp,
    },
    /// Asks a transaction's primary key for its fate.
    CheckTxnStatus {
        primary: Vec<u8>,
        start_ts: Timestamp,
        rollback_if_missing: bool,
    },
    /// Rolls leftover locks forward (`commit_ts`) or back.
    ResolveLock {
        keys: Vec<Vec<u8>>,
        start_ts: Timestamp,
        commit_ts: Option<Timestamp>,
    },
    /// Validates reads and writes versions in one step; the range picks the commit
    /// timestamp.
    OnePhaseCommit {
        mutations: Vec<Mutation>,
        reads: ReadSet,
        start_ts: Timestamp,
    },
    /// Waits until the lock of transaction `start_ts` on `key` is gone (committed, rolled
    /// back or resolved), or `timeout_ms` passed; answers `Done` either way. Lets a
    /// blocked transaction wake as soon as the lock it met is released instead of polling.
    WaitLock {
        key: Vec<u8>,
        start_ts: Timestamp,
        timeout_ms: u64,
    },
    /// Removes versions no reader at or after `safe_point` can see.
    Gc {
        span: Span,
        safe_point: Timestamp,
        max_keys: usize,
    },
}

/// The answer to a [`Request`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    /// Values of a `Get` or `PessimisticLock`, in request order.
    Values(Vec<Option<Vec<u8>>>),
    /// Result of a `Scan`.
    Scan(ScanOutcome),
    /// A command that returns nothing succeeded.
    Done,
    /// A one-phase commit succeeded at this timestamp.
    Committed(Timestamp),
    /// Status of a transaction.
    TxnStatus(TxnStatus),
    /// Number of locks resolved.
    Resolved(usize),
    /// Result of a GC pass.
    Gc(GcOutcome),
}
