//! Read validation: the check that makes a commit serializable.

use std::ops::Bound;

use base::Timestamp;
use storage::{Keyspace, ReadView};

use crate::error::{Error, Result};
use crate::key;
use crate::reader::{MvccReader, Span};
use crate::record::{Latest, Lock, Version};

/// What a transaction read, each with the timestamp it read at (its start timestamp, or
/// a later one for keys it locked for update).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReadSet {
    pub keys: Vec<(Vec<u8>, Timestamp)>,
    pub spans: Vec<(Span, Timestamp)>,
}

impl ReadSet {
    /// Returns true if nothing was read.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.spans.is_empty()
    }
}

/// Checks that nothing the transaction `start_ts` read has changed, or may still change,
/// between its read and `commit_ts`: no other transaction committed a new value in
/// `(read_ts, commit_ts]` on a key or span it read, and none holds a write lock there that
/// could commit at or below `commit_ts`. Fails with `ReadConflict`; a lock counts as a
/// conflict (rather than a wait) so that two validating transactions never wait for each
/// other.
pub fn validate_reads<R: ReadView + ?Sized>(
    reader: &MvccReader<'_, R>,
    reads: &ReadSet,
    start_ts: Timestamp,
    commit_ts: Timestamp,
) -> Result<()> {
    for (key, read_ts) in &reads.keys {
        check_key(reader, key, *read_ts, start_ts, commit_ts)?;
    }
    for (span, read_ts) in &reads.spans {
        check_span(reader, span, *read_ts, start_ts, commit_ts)?;
    }
    Ok(())
}

/// True if a version committed after the read conflicts with it: data written by another
/// transaction.
fn conflicts(version: &Version, start_ts: Timestamp) -> bool {
    version.kind.is_data() && version.start_ts != start_ts
}

fn read_conflict(key: &[u8], read_ts: Timestamp, cts: Timestamp, commit_ts: Timestamp) -> Error {
    Error::ReadConflict {
        key: key.to_vec(),
        read_ts,
        conflict_ts: cts,
        commit_ts,
    }
}

/// The conflict a lock makes, if any: another transaction's write lock that could commit
/// at or below `commit_ts`.
fn lock_conflict(key: &[u8], lock: &Lock, start_ts: Timestamp, commit_ts: Timestamp) -> Result<()> {
    if lock.start_ts != start_ts && lock.kind.blocks_readers() && lock.start_ts < commit_ts {
        return Err(Error::ReadLocked {
            key: key.to_vec(),
            lock_ts: lock.start_ts,
            commit_ts,
        });
    }
    Ok(())
}

/// [`check_span`] for one key, by seeks rather than scans: only the versions in
/// `(read_ts, commit_ts]` are visited (newest first), and the lock is a point read. Hot
/// keys collect many versions and lock records; a scan over them would cost time in
/// proportion to the key's history.
fn check_key<R: ReadView + ?Sized>(
    reader: &MvccReader<'_, R>,
    key: &[u8],
    read_ts: Timestamp,
    start_ts: Timestamp,
    commit_ts: Timestamp,
) -> Result<()> {
    // The lock first: see `check_span`.
    if let Some(lock) = reader.lock(key)? {
        lock_conflict(key, &lock, start_ts, commit_ts)?;
    }
    if !Latest::no_data_after(reader.latest(key)?, read_ts) {
        for item in reader.versions(key, commit_ts) {
            let (cts, version) = item?;
            if cts <= read_ts {
                break;
            }
            if conflicts(&version, start_ts) {
                return Err(read_conflict(key, read_ts, cts, commit_ts));
            }
        }
    }
    Ok(())
}

fn check_span<R: ReadView + ?Sized>(
    reader: &MvccReader<'_, R>,
    span: &Span,
    read_ts: Timestamp,
    start_ts: Timestamp,
    commit_ts: Timestamp,
) -> Result<()> {
    // Locks are checked before versions. A commit turns a lock into a version in one
    // batch: checked the other way round, a commit landing between the two reads would
    // be missed by both. A lock that appears after this check belongs to a transaction
    // that prewrites after it and so commits above `commit_ts` (taken before).
    for (key, lock) in reader.locks_in(span)? {
        lock_conflict(&key, &lock, start_ts, commit_ts)?;
    }
    let lo = key::prefix(&span.start);
    let hi = (!span.end.is_empty()).then(|| key::prefix(&span.end));
    let hi_bound = hi.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
    for kv in reader
        .view()
        .scan(Keyspace::Mvcc, Bound::Included(&lo), hi_bound, false)
    {
        let (k, v) = kv?;
        let (prefix, cts) = key::split(&k)?;
        if cts <= read_ts || cts > commit_ts {
            continue;
        }
        let version = Version::decode(&k, &v)?;
        if conflicts(&version, start_ts) {
            return Err(read_conflict(
                &key::user_key(prefix)?,
                read_ts,
                cts,
                commit_ts,
            ));
        }
    }
    Ok(())
}
