//! Requests and responses of the key-value API.

use base::Timestamp;
use mvcc::commands::{GcOutcome, ReadSet, TxnMeta, TxnStatus};
use mvcc::{Mutation, ScanOutcome, Span};

/// A range: a contiguous span of the key space served as one unit.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RangeDesc {
    pub id: u64,
    pub span: Span,
}

impl RangeDesc {
    /// Divides the whole key space at `split_keys` (in any order; duplicates and the empty
    /// key are ignored) into ranges with ids 1, 2, ... in key order.
    pub fn tile(split_keys: &[Vec<u8>]) -> Vec<RangeDesc> {
        let mut splits: Vec<&Vec<u8>> = split_keys.iter().filter(|k| !k.is_empty()).collect();
        splits.sort();
        splits.dedup();
        let mut start = Vec::new();
        let mut out = Vec::with_capacity(splits.len() + 1);
        for (i, end) in splits.into_iter().cloned().chain([Vec::new()]).enumerate() {
            out.push(RangeDesc {
                id: i as u64 + 1,
                span: Span::new(start, end.clone()),
            });
            start = end;
        }
        out
    }
}

/// A transaction as others name it: its primary key (whose range decides its fate) and
/// its start timestamp.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct TxnRef {
    pub primary: Vec<u8>,
    pub start_ts: Timestamp,
}

/// One MVCC command for keys of one range.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
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
    /// Takes pessimistic locks and returns the keys' latest values (`Locked`). The locks
    /// are taken at `for_update_ts`, or at the newest version of any of the keys if that is
    /// newer. Another transaction's lock on a key is waited for, up to `wait_ms`, at the
    /// leaseholder (the lock is taken as soon as it is released); then, or at once if its
    /// time to live ran out, the request fails with `KeyIsLocked`.
    PessimisticLock {
        keys: Vec<Vec<u8>>,
        txn: TxnMeta,
        for_update_ts: Timestamp,
        wait_ms: u64,
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
    /// Extends the TTL of a live transaction's primary lock to `ttl_ms` after its start
    /// (never shortening it) and answers its status, so that a transaction running longer
    /// than the TTL is not rolled back by those who meet its locks.
    Heartbeat {
        primary: Vec<u8>,
        start_ts: Timestamp,
        ttl_ms: u64,
    },
    /// Notes at the range of `txn`'s primary that `txn` waits for `holder`'s lock (for a
    /// short while, renewed as the wait goes on), so that deadlock detection can follow
    /// the chain of waits. Kept in the leaseholder's memory only; answers `Done`.
    /// The note lasts `for_ms` (at most a couple of seconds); zero removes it (the wait
    /// ended), so that no chain of waits runs through a transaction that waits no more.
    NoteWait {
        txn: TxnRef,
        holder: TxnRef,
        for_ms: u64,
    },
    /// Asks the range of `txn`'s primary which transaction `txn` waits for, if it noted
    /// a wait lately; answers `WaitsFor`.
    WaitsFor { txn: TxnRef },
    /// Rolls leftover locks forward (`commit_ts`) or back.
    ResolveLock {
        keys: Vec<Vec<u8>>,
        start_ts: Timestamp,
        commit_ts: Option<Timestamp>,
    },
    /// Validates reads and writes versions in one step; the range picks the commit
    /// timestamp, which must be below `deadline` if one is set (else
    /// [`Error::DeadlinePassed`](crate::Error::DeadlinePassed) and nothing is written).
    OnePhaseCommit {
        mutations: Vec<Mutation>,
        reads: ReadSet,
        start_ts: Timestamp,
        deadline: Option<Timestamp>,
        /// A timestamp the oracle reserved for this commit alone (the transaction took it
        /// with its start timestamp, `TimestampOracle::timestamps(2)`): the range commits
        /// at it when no read or record it knows of forbids, instead of asking the oracle.
        reserved: Option<Timestamp>,
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
    /// Splits the range that holds `key` at `key`; the keys from it on go to a new range
    /// with id `right` (cluster-unique, chosen by the caller). Answers the two ranges, or
    /// just the range that starts at `key` if one does already.
    Split { key: Vec<u8>, right: u64 },
}

/// The answer to a [`Request`].
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Response {
    /// Values of a `Get`, in request order.
    Values(Vec<Option<Vec<u8>>>),
    /// The answer to a `PessimisticLock`: the timestamp the locks were taken at and the
    /// keys' latest values, in request order.
    Locked {
        ts: Timestamp,
        values: Vec<Option<Vec<u8>>>,
    },
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
    /// Ranges, in key order (the answer to a split).
    Ranges(Vec<RangeDesc>),
    /// The transaction a transaction waits for, if any (the answer to `WaitsFor`).
    WaitsFor(Option<TxnRef>),
}

impl Request {
    /// Returns the key that decides which range serves the request (the first key it
    /// touches; the transaction layer sends only requests whose keys share one range).
    pub fn routing_key(&self) -> &[u8] {
        fn first(keys: &[Vec<u8>]) -> Option<&[u8]> {
            keys.first().map(Vec::as_slice)
        }
        let key = match self {
            Request::Get { keys, .. }
            | Request::PessimisticLock { keys, .. }
            | Request::Commit { keys, .. }
            | Request::Rollback { keys, .. }
            | Request::ResolveLock { keys, .. } => first(keys),
            Request::Scan { span, .. } | Request::Gc { span, .. } => Some(span.start.as_slice()),
            Request::Prewrite { mutations, .. } => mutations.first().map(|m| m.key()),
            Request::OnePhaseCommit {
                mutations, reads, ..
            } => mutations
                .first()
                .map(|m| m.key())
                .or_else(|| first_read(reads)),
            Request::ValidateReads { reads, .. } => first_read(reads),
            Request::CheckTxnStatus { primary, .. } | Request::Heartbeat { primary, .. } => {
                Some(primary.as_slice())
            }
            Request::NoteWait { txn, .. } | Request::WaitsFor { txn } => {
                Some(txn.primary.as_slice())
            }
            Request::WaitLock { key, .. } | Request::Split { key, .. } => Some(key.as_slice()),
        };
        key.unwrap_or_default()
    }

    /// Returns true if running the request twice has the effect of running it once, so
    /// a retry after an ambiguous failure is safe. A one-phase commit is not: a second
    /// evaluation would see the first one's versions as a conflict.
    pub fn is_idempotent(&self) -> bool {
        !matches!(self, Request::OnePhaseCommit { .. })
    }
}

impl Request {
    /// Returns the first key or span bound of the request outside `span`, if any: the
    /// request cannot be served by a range holding only `span`.
    pub fn outside<'a>(&'a self, span: &'a Span) -> Option<&'a [u8]> {
        fn key<'a>(span: &Span, k: &'a [u8]) -> Option<&'a [u8]> {
            (!span.contains(k)).then_some(k)
        }
        fn whole<'a>(span: &'a Span, s: &'a Span) -> Option<&'a [u8]> {
            if !span.contains(&s.start) {
                Some(s.start.as_slice())
            } else if !span.end.is_empty() && (s.end.is_empty() || s.end > span.end) {
                Some(span.end.as_slice())
            } else {
                None
            }
        }
        fn reads<'a>(span: &'a Span, r: &'a ReadSet) -> Option<&'a [u8]> {
            r.keys
                .iter()
                .find_map(|(k, _)| key(span, k))
                .or_else(|| r.spans.iter().find_map(|(s, _)| whole(span, s)))
        }
        match self {
            Request::Get { keys, .. }
            | Request::PessimisticLock { keys, .. }
            | Request::Commit { keys, .. }
            | Request::Rollback { keys, .. }
            | Request::ResolveLock { keys, .. } => keys.iter().find_map(|k| key(span, k)),
            Request::Scan { span: s, .. } | Request::Gc { span: s, .. } => whole(span, s),
            Request::Prewrite { mutations, .. } => {
                mutations.iter().find_map(|m| key(span, m.key()))
            }
            Request::OnePhaseCommit {
                mutations,
                reads: r,
                ..
            } => mutations
                .iter()
                .find_map(|m| key(span, m.key()))
                .or_else(|| reads(span, r)),
            Request::ValidateReads { reads: r, .. } => reads(span, r),
            Request::CheckTxnStatus { primary: k, .. }
            | Request::Heartbeat { primary: k, .. }
            | Request::NoteWait {
                txn: TxnRef { primary: k, .. },
                ..
            }
            | Request::WaitsFor {
                txn: TxnRef { primary: k, .. },
            }
            | Request::WaitLock { key: k, .. }
            | Request::Split { key: k, .. } => key(span, k),
        }
    }
}

fn first_read(reads: &ReadSet) -> Option<&[u8]> {
    reads
        .keys
        .first()
        .map(|(k, _)| k.as_slice())
        .or_else(|| reads.spans.first().map(|(s, _)| s.start.as_slice()))
}
