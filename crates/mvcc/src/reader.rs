//! Reading versions and locks at a timestamp.

use std::collections::BTreeMap;
use std::ops::Bound;

use base::Timestamp;
use storage::{Keyspace, ReadView};

use crate::error::{Error, LockInfo, Result};
use crate::key;
use crate::record::{Latest, Lock, LockKind, Version, WriteKind};

/// A half-open span of user keys, `[start, end)`; an empty `end` means no upper bound.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Span {
    pub start: Vec<u8>,
    pub end: Vec<u8>,
}

impl Span {
    /// Returns the span `[start, end)`.
    pub fn new(start: impl Into<Vec<u8>>, end: impl Into<Vec<u8>>) -> Span {
        Span {
            start: start.into(),
            end: end.into(),
        }
    }

    /// Returns the span holding exactly `key`.
    pub fn point(key: &[u8]) -> Span {
        Span {
            start: key.to_vec(),
            end: next_key(key),
        }
    }

    /// Returns true if `key` is in the span.
    pub fn contains(&self, key: &[u8]) -> bool {
        key >= self.start.as_slice() && (self.end.is_empty() || key < self.end.as_slice())
    }

    fn end_bound(&self) -> Bound<&[u8]> {
        if self.end.is_empty() {
            Bound::Unbounded
        } else {
            Bound::Excluded(&self.end)
        }
    }
}

/// Returns the smallest key greater than `key`.
pub(crate) fn next_key(key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(key.len() + 1);
    k.extend_from_slice(key);
    k.push(0);
    k
}

/// The result of a scan: the pairs found, and where to continue if a limit cut it short.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ScanOutcome {
    pub pairs: Vec<(Vec<u8>, Vec<u8>)>,
    /// For a forward scan, the start of the rest of the span; for a reverse scan, its
    /// (exclusive) end. `None` when the span was scanned to its end.
    pub resume: Option<Vec<u8>>,
}

/// How a reader treats a lock it meets.
enum SeenLock {
    /// Not a concern for this read.
    Ignore,
    /// The reader's own prewritten change: `Some(value)` for a put, `None` for a delete.
    Own(Option<Vec<u8>>),
}

/// Reads MVCC data through a storage read view (an engine or a snapshot).
pub struct MvccReader<'a, R: ReadView + ?Sized> {
    view: &'a R,
}

impl<'a, R: ReadView + ?Sized> MvccReader<'a, R> {
    /// Reads through `view`.
    pub fn new(view: &'a R) -> Self {
        MvccReader { view }
    }

    /// Returns the underlying read view.
    pub fn view(&self) -> &'a R {
        self.view
    }

    /// Returns the lock on `key`, if any.
    pub fn lock(&self, key: &[u8]) -> Result<Option<Lock>> {
        match self.view.get(Keyspace::Locks, key)? {
            Some(bytes) => Ok(Some(Lock::decode(key, &bytes)?)),
            None => Ok(None),
        }
    }

    /// Returns the key's entry in the newest-version index (`None` if it has no versions).
    pub fn latest(&self, key: &[u8]) -> Result<Option<Latest>> {
        match self.view.get(Keyspace::Latest, key)? {
            Some(bytes) => Ok(Some(Latest::decode(key, &bytes)?)),
            None => Ok(None),
        }
    }

    /// Returns the value of `key` committed at or before `ts`, ignoring locks. When the
    /// newest data version is at or below `ts` (the common case) this is two point lookups;
    /// otherwise it walks the versions.
    pub fn value_at(&self, key: &[u8], ts: Timestamp) -> Result<Option<Vec<u8>>> {
        match self.latest(key)?.map(|l| l.data) {
            None | Some(None) => return Ok(None),
            Some(Some((dts, WriteKind::Delete))) if dts <= ts => return Ok(None),
            Some(Some((dts, _))) if dts <= ts => {
                let k = key::encode(key, dts);
                if let Some(bytes) = self.view.get(Keyspace::Mvcc, &k)? {
                    let v = Version::decode(&k, &bytes)?;
                    if v.kind == WriteKind::Put {
                        return Ok(Some(v.value));
                    }
                }
                // The index disagrees with the versions: trust the versions.
            }
            Some(Some(_)) => {}
        }
        for item in self.versions(key, ts) {
            let (_, v) = item?;
            match v.kind {
                WriteKind::Put => return Ok(Some(v.value)),
                WriteKind::Delete => return Ok(None),
                WriteKind::Lock | WriteKind::Rollback => {}
            }
        }
        Ok(None)
    }

    /// Returns every lock on a key in `span`, in key order.
    pub fn locks_in(&self, span: &Span) -> Result<Vec<(Vec<u8>, Lock)>> {
        let iter = self.view.scan(
            Keyspace::Locks,
            Bound::Included(span.start.as_slice()),
            span.end_bound(),
            false,
        );
        iter.map(|kv| {
            let (k, v) = kv?;
            let lock = Lock::decode(&k, &v)?;
            Ok((k, lock))
        })
        .collect()
    }

    /// Returns the versions of `key` committed at or before `ts`, newest first.
    pub fn versions(
        &self,
        user_key: &[u8],
        ts: Timestamp,
    ) -> impl Iterator<Item = Result<(Timestamp, Version)>> + use<'a, R> {
        let from = key::encode(user_key, ts);
        let to = key::encode(user_key, Timestamp::ZERO);
        let iter = self.view.scan(
            Keyspace::Mvcc,
            Bound::Included(&from),
            Bound::Included(&to),
            false,
        );
        iter.map(|kv| {
            let (k, v) = kv?;
            let (_, cts) = key::split(&k)?;
            Ok((cts, Version::decode(&k, &v)?))
        })
    }

    /// Returns the record a transaction left on `key`: its commit version (any kind) or its
    /// rollback marker, with the commit timestamp.
    pub fn txn_record(
        &self,
        key: &[u8],
        start_ts: Timestamp,
    ) -> Result<Option<(Timestamp, Version)>> {
        // Every record of the transaction is at or above its start timestamp.
        if Latest::nothing_since(self.latest(key)?, start_ts) {
            return Ok(None);
        }
        for item in self.versions(key, Timestamp::MAX) {
            let (cts, v) = item?;
            if v.start_ts == start_ts {
                return Ok(Some((cts, v)));
            }
            if cts < start_ts {
                break;
            }
        }
        Ok(None)
    }

    /// Reads `key` at `ts`. `own` is the reader's transaction start timestamp: its own
    /// locks are read back; another transaction's lock that may commit below `ts` is an
    /// error.
    pub fn get(
        &self,
        key: &[u8],
        ts: Timestamp,
        own: Option<Timestamp>,
    ) -> Result<Option<Vec<u8>>> {
        if let Some(lock) = self.lock(key)?
            && let SeenLock::Own(v) = check_lock(key, &lock, ts, own)?
        {
            return Ok(v);
        }
        self.value_at(key, ts)
    }

    /// Scans `span` at `ts`, returning at most `limit` pairs, in key order or in reverse.
    /// Locks are treated as by [`MvccReader::get`], over the part of the span the scan
    /// covered.
    pub fn scan(
        &self,
        span: &Span,
        ts: Timestamp,
        limit: usize,
        reverse: bool,
        own: Option<Timestamp>,
    ) -> Result<ScanOutcome> {
        let limit = limit.max(1);
        // Locks are read before the versions. A commit turns a lock into a version in one
        // batch, so a lock missing here belongs to a transaction that either committed
        // before (its version is seen below) or prewrites later and so commits above `ts`
        // (the reader took `ts` before this read began). Reading the versions first would
        // miss a commit landing in between: neither its lock nor its version.
        let locks = self.locks_in(span)?;
        let mut pairs = if reverse {
            self.scan_versions_reverse(span, ts, limit)?
        } else {
            self.scan_versions(span, ts, limit)?
        };
        let hit_limit = pairs.len() >= limit;
        let (covered, mut resume) = match pairs.last() {
            Some((last, _)) if hit_limit && reverse => (
                Span {
                    start: last.clone(),
                    end: span.end.clone(),
                },
                Some(last.clone()),
            ),
            Some((last, _)) if hit_limit => {
                let next = next_key(last);
                (
                    Span {
                        start: span.start.clone(),
                        end: next.clone(),
                    },
                    Some(next),
                )
            }
            _ => (span.clone(), None),
        };
        let mut own_changes = Vec::new();
        for (k, lock) in locks.iter().filter(|(k, _)| covered.contains(k)) {
            if let SeenLock::Own(v) = check_lock(k, lock, ts, own)? {
                own_changes.push((k.clone(), v));
            }
        }
        if !own_changes.is_empty() {
            let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = pairs.into_iter().collect();
            for (k, v) in own_changes {
                match v {
                    Some(v) => merged.insert(k, v),
                    None => merged.remove(&k),
                };
            }
            pairs = if reverse {
                merged.into_iter().rev().collect()
            } else {
                merged.into_iter().collect()
            };
            if pairs.len() > limit {
                pairs.truncate(limit);
                let last = &pairs[limit - 1].0;
                resume = Some(if reverse {
                    last.clone()
                } else {
                    next_key(last)
                });
            }
        }
        Ok(ScanOutcome { pairs, resume })
    }

    fn scan_versions(
        &self,
        span: &Span,
        ts: Timestamp,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let lo = key::prefix(&span.start);
        let hi = (!span.end.is_empty()).then(|| key::prefix(&span.end));
        let hi_bound = hi.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
        let mut pairs = Vec::new();
        let mut current: Vec<u8> = Vec::new();
        let mut decided = false;
        for kv in self
            .view
            .scan(Keyspace::Mvcc, Bound::Included(&lo), hi_bound, false)
        {
            let (k, v) = kv?;
            let (prefix, cts) = key::split(&k)?;
            if prefix != current.as_slice() {
                current.clear();
                current.extend_from_slice(prefix);
                decided = false;
            }
            if decided || cts > ts {
                continue;
            }
            let version = Version::decode(&k, &v)?;
            match version.kind {
                WriteKind::Put => {
                    pairs.push((key::user_key(prefix)?, version.value));
                    decided = true;
                    if pairs.len() >= limit {
                        break;
                    }
                }
                WriteKind::Delete => decided = true,
                WriteKind::Lock | WriteKind::Rollback => {}
            }
        }
        Ok(pairs)
    }

    fn scan_versions_reverse(
        &self,
        span: &Span,
        ts: Timestamp,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let lo = key::prefix(&span.start);
        let hi = (!span.end.is_empty()).then(|| key::prefix(&span.end));
        let hi_bound = hi.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
        let mut pairs = Vec::new();
        // Walking backwards, a key's versions come oldest first: the last data version at
        // or below `ts` seen before the key changes is the visible one.
        let mut current: Option<Vec<u8>> = None;
        let mut visible: Option<Version> = None;
        let emit = |pairs: &mut Vec<_>, prefix: &[u8], v: Option<Version>| -> Result<()> {
            if let Some(v) = v.filter(|v| v.kind == WriteKind::Put) {
                pairs.push((key::user_key(prefix)?, v.value));
            }
            Ok(())
        };
        for kv in self
            .view
            .scan(Keyspace::Mvcc, Bound::Included(&lo), hi_bound, true)
        {
            let (k, v) = kv?;
            let (prefix, cts) = key::split(&k)?;
            if current.as_deref() != Some(prefix) {
                if let Some(prev) = current.take() {
                    emit(&mut pairs, &prev, visible.take())?;
                    if pairs.len() >= limit {
                        return Ok(pairs);
                    }
                }
                current = Some(prefix.to_vec());
                visible = None;
            }
            if cts <= ts {
                let version = Version::decode(&k, &v)?;
                if version.kind.is_data() {
                    visible = Some(version);
                }
            }
        }
        if let Some(prev) = current {
            emit(&mut pairs, &prev, visible)?;
        }
        Ok(pairs)
    }
}

/// Decides what a read at `ts` by transaction `own` does about `lock` on `key`.
fn check_lock(key: &[u8], lock: &Lock, ts: Timestamp, own: Option<Timestamp>) -> Result<SeenLock> {
    if Some(lock.start_ts) == own {
        return Ok(match lock.kind {
            LockKind::Put => SeenLock::Own(Some(lock.value.clone())),
            LockKind::Delete => SeenLock::Own(None),
            LockKind::Lock | LockKind::Pessimistic => SeenLock::Ignore,
        });
    }
    if lock.kind.blocks_readers() && lock.start_ts <= ts {
        return Err(Error::KeyIsLocked(Box::new(lock_info(key, lock))));
    }
    Ok(SeenLock::Ignore)
}

/// Describes a lock for a caller that must resolve it.
pub(crate) fn lock_info(key: &[u8], lock: &Lock) -> LockInfo {
    LockInfo {
        key: key.to_vec(),
        primary: lock.primary.clone(),
        start_ts: lock.start_ts,
        kind: lock.kind,
        ttl_ms: lock.ttl_ms,
    }
}
