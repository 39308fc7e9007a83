//! One transaction.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use base::Timestamp;
use kv::{RangeDesc, Request, Response, TxnRef};
use mvcc::commands::{ReadSet, TxnMeta, TxnStatus};
use mvcc::{Mutation, ScanOutcome, Span};

use crate::client::Inner;
use crate::error::{Error, Result};
use crate::resolve::{Backoff, unexpected};
use crate::writes::{Write, WriteBuffer};

/// Where a commit stops early, leaving its work half done as a crashed coordinator would.
/// For fault-injection tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommitStop {
    /// After every key is prewritten, before the primary commits.
    AfterPrewrite,
    /// After the primary commits, before the secondaries do.
    AfterPrimary,
}

/// A point in a transaction's writes to roll back to.
#[derive(Debug)]
pub struct Savepoint {
    pos: usize,
}

/// What the transaction read, for validation at commit.
#[derive(Default)]
struct Reads {
    keys: BTreeMap<Vec<u8>, Timestamp>,
    spans: Vec<(Span, Timestamp)>,
}

/// The work of one range in a commit.
struct Group {
    mutations: Vec<Mutation>,
    reads: ReadSet,
    /// Reads known to hold until the transaction's lease deadline (see
    /// [`Transaction::note_read_until`]): validated only by a commit at or after it.
    leased: Vec<(Vec<u8>, Timestamp)>,
}

/// A serializable transaction. Writes are buffered until [`Transaction::commit`].
///
/// **The primary.** The first key a transaction locks is its primary: every lock it takes
/// names it, and its lock (then its commit record) decides the transaction's fate. A
/// two-phase commit moves the primary to the key locked last, which its prewritten locks
/// name instead. That key is the one most likely contended (in TPC-B, the branch row every
/// transaction of a branch waits for): the primary's lock is released when the primary
/// commits, with the client's answer, while a secondary's waits for the commit of the
/// secondaries after it (a request and a Raft round more). Whoever asks the old primary
/// about a moved transaction, having met a pessimistic lock taken before the move, is sent
/// on to the new one (`TxnStatus::Moved`).
pub struct Transaction {
    client: Arc<Inner>,
    start_ts: Timestamp,
    /// A timestamp the oracle reserved for this transaction's commit, taken with its start
    /// timestamp: a one-phase commit may use it instead of a call to the oracle.
    reserved: Option<Timestamp>,
    /// The snapshot reads see: the start timestamp, moved forward when locking a key that
    /// changed since (a read refresh: every earlier read is first checked still to hold at
    /// the new timestamp, so all of the transaction's reads stay one consistent snapshot).
    read_ts: Timestamp,
    writes: WriteBuffer,
    /// Keys under this transaction's pessimistic locks, with the timestamp of each lock.
    locked: BTreeMap<Vec<u8>, Timestamp>,
    primary: Option<Vec<u8>>,
    /// Locked keys whose reads hold up to their lock: the refresh of the lock call that
    /// took the lock validated them (a call that failed half way covers nothing). A read
    /// refresh and the commit need not validate them again (see [`Transaction::refresh`]).
    covered: BTreeSet<Vec<u8>>,
    /// The last key a lock call locked, with the TTL its lock was taken with: the primary
    /// of a two-phase commit, if its lock is not about to expire.
    last_locked: Option<(Vec<u8>, u64)>,
    /// The primary its pessimistic locks name, once the commit moved it elsewhere.
    moved_from: Option<Vec<u8>>,
    reads: Reads,
    /// Reads known valid until a deadline without validation (see
    /// [`Transaction::note_read_until`]): the read timestamp and the deadline of each.
    leased: BTreeMap<Vec<u8>, (Timestamp, Timestamp)>,
    /// True once a key was prewritten before the commit
    /// ([`Transaction::put_and_wait_out`]): the commit takes two phases.
    prewritten_early: bool,
    /// Keeps the primary lock alive while the transaction runs, once it has locks.
    heartbeat: Option<Heartbeat>,
    /// Keeps the first primary's lock alive too, once the commit moved the primary, until
    /// the prewrite has replaced the locks that name it.
    moved_heartbeat: Option<Heartbeat>,
    finished: bool,
}

/// The task that renews a transaction's primary lock TTL; stopped when dropped.
struct Heartbeat(tokio::task::AbortHandle);

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Transaction {
    pub(crate) fn new(
        client: Arc<Inner>,
        start_ts: Timestamp,
        reserved: Option<Timestamp>,
    ) -> Self {
        Transaction {
            client,
            start_ts,
            reserved,
            read_ts: start_ts,
            writes: WriteBuffer::default(),
            locked: BTreeMap::new(),
            primary: None,
            covered: BTreeSet::new(),
            last_locked: None,
            moved_from: None,
            reads: Reads::default(),
            leased: BTreeMap::new(),
            prewritten_early: false,
            heartbeat: None,
            moved_heartbeat: None,
            finished: false,
        }
    }

    /// Gives up the timestamp reserved at the start: the commit takes one from the oracle,
    /// above every timestamp handed out before this call. For a transaction whose commit
    /// must be ordered after something that happens once it has begun (a DDL on a node that
    /// proves its catalog cache by its DDL guard).
    pub fn forgo_reserved(&mut self) {
        self.reserved = None;
    }

    /// Starts renewing the TTL of the lock on `primary` every third of the configured
    /// TTL, until the transaction ends (or its primary is found committed or rolled back).
    fn start_heartbeat(&mut self, primary: &[u8]) {
        if self.heartbeat.is_some() {
            return;
        }
        let (client, start_ts, primary) = (self.client.clone(), self.start_ts, primary.to_vec());
        let every = std::time::Duration::from_millis((client.config.lock_ttl_ms / 3).max(1));
        let task = tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let req = Request::Heartbeat {
                    primary: primary.clone(),
                    start_ts,
                    ttl_ms: client.ttl_from_now(start_ts),
                };
                match client.kv.send(req).await {
                    // Alive, or its primary lock not written yet.
                    Ok(Response::TxnStatus(TxnStatus::Locked { .. } | TxnStatus::NotFound)) => {}
                    Ok(other) => {
                        tracing::debug!(%start_ts, "heartbeat stops: {other:?}");
                        return;
                    }
                    Err(e) => tracing::debug!(%start_ts, error = %e, "heartbeat failed"),
                }
            }
        });
        self.heartbeat = Some(Heartbeat(task.abort_handle()));
    }

    /// The transaction as a waiter on others' locks: named by its primary once it has one
    /// (before that it holds no lock, so nobody waits for it).
    fn backoff(&self) -> Backoff {
        self.backoff_as(self.primary.as_deref())
    }

    /// A backoff for this transaction named by `primary` (and by the primary it moved
    /// from, if it did).
    fn backoff_as(&self, primary: Option<&[u8]>) -> Backoff {
        let waiter = primary.map(|p| self.txn_ref(p));
        Backoff::new(self.client.config.lock_wait_timeout, waiter)
            .also_known_as(self.moved_from.as_ref().map(|p| self.txn_ref(p)))
    }

    /// Names this transaction by `primary`, for deadlock detection.
    fn txn_ref(&self, primary: &[u8]) -> TxnRef {
        TxnRef {
            primary: primary.to_vec(),
            start_ts: self.start_ts,
        }
    }

    /// Returns the lock record of this transaction for locks taken now.
    fn meta(&self, primary: Vec<u8>) -> TxnMeta {
        TxnMeta {
            start_ts: self.start_ts,
            primary,
            lock_ttl_ms: self.client.ttl_from_now(self.start_ts),
        }
    }

    /// Returns the timestamp the transaction reads at.
    pub fn start_ts(&self) -> Timestamp {
        self.start_ts
    }

    /// Returns the timestamp reads see now (the start timestamp, or later after a read
    /// refresh).
    pub fn read_ts(&self) -> Timestamp {
        self.read_ts
    }

    /// Records a read of `key` whose value the caller knows without asking the store (a
    /// node-local cache known to be current at the read timestamp): commit validates it as
    /// if it had been read.
    pub fn note_read(&mut self, key: &[u8]) {
        if self.writes.get(key).is_none() {
            self.record_read(key);
        }
    }

    /// Records a read of `key` whose value the caller knows to hold from the read timestamp
    /// until `deadline` (a node-local cache with a validity window, such as the catalog's):
    /// a commit in one phase needs no validation of it if it commits before `deadline`;
    /// any other commit validates it as a read.
    pub fn note_read_until(&mut self, key: &[u8], deadline: Timestamp) {
        if self.writes.get(key).is_some() || self.reads.keys.contains_key(key) {
            return;
        }
        if self.read_ts >= deadline {
            self.record_read(key);
            return;
        }
        self.leased
            .entry(key.to_vec())
            .or_insert((self.read_ts, deadline));
    }

    /// Writes `key = value` and prewrites it at once (a lock that readers wait on), then
    /// waits until the timestamp oracle is `wait` past a timestamp taken once the lock was
    /// in place, and moves the read snapshot there. The transaction then commits in two
    /// phases with `key` as its primary (if it has none yet); its heartbeat keeps the lock
    /// alive while it works.
    ///
    /// A transaction about to change a value that others cache under a validity window of
    /// `wait` ([`Transaction::note_read_until`]), proven by reading `key` without meeting a
    /// lock, fences them off this way: whoever proved the old value did so below that
    /// timestamp, so every window is over (and every write made under one committed or
    /// refused) before this transaction reads on, and later readers of `key` wait for it.
    /// Fails with a serialization error if something this transaction read changed
    /// meanwhile.
    pub async fn put_and_wait_out(
        &mut self,
        key: Vec<u8>,
        value: Vec<u8>,
        wait: std::time::Duration,
    ) -> Result<()> {
        self.put(key.clone(), value.clone())?;
        let primary = self.primary.get_or_insert_with(|| key.clone()).clone();
        let meta = self.meta(primary.clone());
        // Rolled back with the pessimistic locks if the transaction does not commit.
        self.locked.insert(key.clone(), self.start_ts);
        // Covered once the refresh below has validated its read: the prewrite checks only
        // from this transaction's own pessimistic lock on it, if it has one.
        self.covered.remove(&key);
        self.prewritten_early = true;
        self.start_heartbeat(&primary);
        self.prewrite(
            &meta,
            vec![Mutation::Put {
                key: key.clone(),
                value,
            }],
        )
        .await?;
        let fenced = self.client.tso.timestamp().await?;
        let not_before = fenced.plus_ms(wait.as_millis() as u64);
        let mut now = fenced;
        while now < not_before {
            let ms = not_before.physical_ms().saturating_sub(now.physical_ms());
            tokio::time::sleep(std::time::Duration::from_millis(ms.max(1))).await;
            now = self.client.tso.timestamp().await?;
        }
        self.refresh(now).await?;
        self.covered.insert(key);
        Ok(())
    }

    /// Turns the reads known valid only until a deadline at or before `ts` into reads
    /// validated at commit; the others still hold at `ts`.
    fn unlease_before(&mut self, ts: Timestamp) {
        let (expired, live) = std::mem::take(&mut self.leased)
            .into_iter()
            .partition(|(_, (_, deadline))| *deadline <= ts);
        self.leased = live;
        for (k, (read_ts, _)) in expired {
            self.reads.keys.entry(k).or_insert(read_ts);
        }
    }

    /// Adds a key read from the store to the read set, at the timestamp it was first read.
    fn record_read(&mut self, key: &[u8]) {
        self.reads.keys.entry(key.to_vec()).or_insert(self.read_ts);
    }

    /// Returns true if the transaction has written or locked nothing.
    pub fn is_read_only(&self) -> bool {
        self.writes.is_empty() && self.locked.is_empty()
    }

    /// Fails if the transaction is finished, or too old to read or commit.
    fn check_active(&self) -> Result<()> {
        if self.finished {
            return Err(Error::Finished);
        }
        self.client.check_age(self.start_ts)
    }

    /// Reads a key.
    pub async fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.batch_get(&[key.to_vec()]).await?.pop().flatten())
    }

    /// Reads several keys, in one request per range.
    pub async fn batch_get(&mut self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>> {
        self.check_active()?;
        let mut out: Vec<Option<Option<Vec<u8>>>> = keys
            .iter()
            .map(|k| match self.writes.get(k) {
                Some(Write::Put(v)) => Some(Some(v.clone())),
                Some(Write::Delete) => Some(None),
                None => None,
            })
            .collect();
        let missing: Vec<usize> = (0..keys.len()).filter(|&i| out[i].is_none()).collect();
        let mut by_range: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
        for &i in &missing {
            by_range
                .entry(self.client.kv.range_of(&keys[i]).await?.id)
                .or_default()
                .push(i);
        }
        for idx in by_range.into_values() {
            let req_keys: Vec<Vec<u8>> = idx.iter().map(|&i| keys[i].clone()).collect();
            let values = self.read_values(req_keys).await?;
            for (&i, v) in idx.iter().zip(values) {
                out[i] = Some(v);
            }
        }
        for &i in &missing {
            self.record_read(&keys[i]);
        }
        Ok(out.into_iter().map(Option::flatten).collect())
    }

    async fn read_values(&self, keys: Vec<Vec<u8>>) -> Result<Vec<Option<Vec<u8>>>> {
        let mut backoff = self.backoff();
        loop {
            let req = Request::Get {
                keys: keys.clone(),
                ts: self.read_ts,
                txn: Some(self.start_ts),
            };
            match self.client.kv.send(req).await {
                Ok(Response::Values(v)) => return Ok(v),
                Ok(other) => return Err(unexpected("Get", &other)),
                Err(kv::Error::Mvcc(mvcc::Error::KeyIsLocked(lock))) => {
                    self.client.resolve(&lock, &mut backoff).await?;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Scans `span` forwards (or backwards if `reverse`), returning up to `limit` pairs with
    /// the transaction's own writes merged in. When `resume` is set, more may follow: for
    /// a forward scan, continue from `resume`; for a reverse one, up to it.
    pub async fn scan(&mut self, span: &Span, limit: usize, reverse: bool) -> Result<ScanOutcome> {
        self.check_active()?;
        let limit = limit.max(1);
        let mut pairs = Vec::new();
        let mut rest = span.clone();
        loop {
            let ranges = self.client.kv.ranges(&rest).await?;
            let range = if reverse {
                ranges.last()
            } else {
                ranges.first()
            };
            let Some(range) = range else {
                return Ok(ScanOutcome {
                    pairs,
                    resume: None,
                });
            };
            let sub = intersect(&rest, range);
            let want = limit - pairs.len();
            let found = self.scan_range(&sub, want, reverse).await?;
            let mut covered = match &found.resume {
                Some(r) if reverse => Span {
                    start: r.clone(),
                    end: sub.end.clone(),
                },
                Some(r) => Span {
                    start: sub.start.clone(),
                    end: r.clone(),
                },
                None => sub.clone(),
            };
            let (merged, cut) = self.writes.merge(found.pairs, &covered, reverse, want);
            if let Some(last) = cut {
                if reverse {
                    covered.start = last;
                } else {
                    covered.end = next_key(&last);
                }
            }
            self.reads.spans.push((covered.clone(), self.read_ts));
            pairs.extend(merged);
            let done = if reverse {
                covered.start <= span.start
            } else {
                covered.end.is_empty() || (!span.end.is_empty() && covered.end >= span.end)
            };
            if done {
                return Ok(ScanOutcome {
                    pairs,
                    resume: None,
                });
            }
            if reverse {
                rest.end = covered.start.clone();
            } else {
                rest.start = covered.end.clone();
            }
            if pairs.len() >= limit {
                let resume = if reverse { covered.start } else { covered.end };
                return Ok(ScanOutcome {
                    pairs,
                    resume: Some(resume),
                });
            }
        }
    }

    async fn scan_range(&self, span: &Span, limit: usize, reverse: bool) -> Result<ScanOutcome> {
        let mut backoff = self.backoff();
        loop {
            let req = Request::Scan {
                span: span.clone(),
                ts: self.read_ts,
                limit,
                reverse,
                txn: Some(self.start_ts),
            };
            match self.client.kv.send(req).await {
                Ok(Response::Scan(out)) => return Ok(out),
                Ok(other) => return Err(unexpected("Scan", &other)),
                Err(kv::Error::Mvcc(mvcc::Error::KeyIsLocked(lock))) => {
                    self.client.resolve(&lock, &mut backoff).await?;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Buffers a put.
    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) -> Result<()> {
        self.check_active()?;
        check_key(&key)?;
        if value.len() > base::MAX_VALUE_LEN {
            return Err(Error::ValueTooLarge {
                len: value.len(),
                max: base::MAX_VALUE_LEN,
            });
        }
        self.buffer(key, Write::Put(value))
    }

    /// Buffers a delete.
    pub fn delete(&mut self, key: Vec<u8>) -> Result<()> {
        self.check_active()?;
        check_key(&key)?;
        self.buffer(key, Write::Delete)
    }

    fn buffer(&mut self, key: Vec<u8>, w: Write) -> Result<()> {
        let size = key.len() + if let Write::Put(v) = &w { v.len() } else { 0 };
        let max = self.client.config.max_txn_bytes;
        if self.writes.bytes() + size > max {
            return Err(Error::TxnTooLarge {
                bytes: self.writes.bytes() + size,
                max,
            });
        }
        self.writes.set(key, w);
        Ok(())
    }

    /// Locks keys for update (pessimistically) and returns their latest values, with this
    /// transaction's own writes applied. Other writers wait for the locks; readers do not.
    pub async fn lock_for_update(&mut self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>> {
        self.check_active()?;
        for k in keys {
            check_key(k)?;
        }
        let Some(first) = keys.first() else {
            return Ok(Vec::new());
        };
        let primary = self.primary.get_or_insert_with(|| first.clone()).clone();
        self.start_heartbeat(&primary);
        let meta = self.meta(primary);
        let mut by_range: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
        for (i, k) in keys.iter().enumerate() {
            by_range
                .entry(self.client.kv.range_of(k).await?.id)
                .or_default()
                .push(i);
        }
        // Covered again only once this call's refresh has validated them (a key locked
        // again may have lost its lock in between, see `refresh`).
        for k in keys {
            self.covered.remove(k);
        }
        let mut out = vec![None; keys.len()];
        let mut newest = self.read_ts;
        let mut locked_now = Vec::new();
        for idx in by_range.into_values() {
            let group: Vec<Vec<u8>> = idx.iter().map(|&i| keys[i].clone()).collect();
            let (for_update_ts, values) = self.lock_group(&group, &meta).await?;
            newest = newest.max(for_update_ts);
            for (&i, v) in idx.iter().zip(values) {
                let key = &keys[i];
                self.locked.insert(key.clone(), for_update_ts);
                locked_now.push(key.clone());
                out[i] = match self.writes.get(key) {
                    Some(Write::Put(own)) => Some(own.clone()),
                    Some(Write::Delete) => None,
                    None => v,
                };
            }
        }
        // The locked values are the newest; move the snapshot up to them so that later
        // reads agree with what was locked, after checking nothing read so far changed.
        // A key read before at an older timestamp than its lock's is checked even if the
        // snapshot stays (a key locked again, after losing its lock, whose read was left
        // behind by an earlier refresh).
        let behind = locked_now
            .iter()
            .any(|k| self.reads.keys.get(k).is_some_and(|t| *t < newest));
        if newest > self.read_ts || behind {
            self.refresh(newest).await?;
        }
        for key in &locked_now {
            self.reads.keys.entry(key.clone()).or_insert(newest);
        }
        self.covered.extend(locked_now);
        self.last_locked = keys.last().map(|k| (k.clone(), meta.lock_ttl_ms));
        Ok(out)
    }

    /// Moves the read snapshot to `ts` if every read so far still holds there (nothing
    /// else committed or is committing on it in between); otherwise the transaction must
    /// restart: a serialization conflict.
    ///
    /// A covered key (see [`Transaction::covered`]) is not validated, and its read keeps
    /// its timestamp: no other transaction commits a version of it while the lock is
    /// held. If the lock was lost with its leaseholder (the in-memory ones are), the
    /// prewrite finds none of this transaction's and fails on any version since the start
    /// (the commit's validation relies on that too). Should the transaction lock the key
    /// again, the read's old timestamp makes that lock call validate it from there: the
    /// new lock hides the versions in between from the prewrite, which checks only from
    /// the new lock.
    async fn refresh(&mut self, ts: Timestamp) -> Result<()> {
        // A cached read is known valid up to its deadline: one that ends by `ts` is
        // validated like the rest; one that does not still holds at `ts` and stays as it
        // is (so moving the snapshot, as every lock for update does, costs no validation
        // of the SQL catalog, and a one-phase commit stays possible).
        self.unlease_before(ts);
        let mut by_range: BTreeMap<u64, ReadSet> = BTreeMap::new();
        for (k, t) in &self.reads.keys {
            // Nothing to check for a read made at `ts` already.
            if *t >= ts || self.covered.contains(k) {
                continue;
            }
            let r = self.client.kv.range_of(k).await?;
            by_range.entry(r.id).or_default().keys.push((k.clone(), *t));
        }
        for (span, t) in &self.reads.spans {
            if *t >= ts {
                continue;
            }
            for r in self.client.kv.ranges(span).await? {
                by_range
                    .entry(r.id)
                    .or_default()
                    .spans
                    .push((intersect(span, &r), *t));
            }
        }
        // Every range at once: a lock that moved the snapshot (it waited for another
        // writer) holds its key through this validation.
        let validations = by_range
            .into_values()
            .map(|reads| self.validate_reads_waiting(reads, ts));
        futures::future::try_join_all(validations).await?;
        for (k, t) in self.reads.keys.iter_mut() {
            if !self.covered.contains(k) {
                *t = ts.max(*t);
            }
        }
        for (_, t) in &mut self.reads.spans {
            *t = ts.max(*t);
        }
        self.read_ts = self.read_ts.max(ts);
        Ok(())
    }

    /// Validates `reads` (all in one range) up to `ts`. Another transaction's write lock
    /// on a key read (a DDL's catalog fence, say) may yet roll back: it is waited for a
    /// little rather than failing at once and having the retry meet the same lock.
    async fn validate_reads_waiting(&self, reads: ReadSet, ts: Timestamp) -> Result<()> {
        let mut waits = 0;
        loop {
            let req = Request::ValidateReads {
                reads: reads.clone(),
                start_ts: self.start_ts,
                commit_ts: ts,
            };
            match self.client.kv.send(req).await {
                Ok(_) => return Ok(()),
                Err(kv::Error::Mvcc(mvcc::Error::ReadLocked { key, lock_ts, .. }))
                    if waits < REFRESH_LOCK_WAITS =>
                {
                    waits += 1;
                    self.client
                        .kv
                        .send(Request::WaitLock {
                            key,
                            start_ts: lock_ts,
                            timeout_ms: REFRESH_LOCK_WAIT.as_millis() as u64,
                        })
                        .await?;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    async fn lock_group(
        &self,
        keys: &[Vec<u8>],
        meta: &TxnMeta,
    ) -> Result<(Timestamp, Vec<Option<Vec<u8>>>)> {
        let mut backoff = self.backoff();
        loop {
            // At the snapshot: the range locks at the newest version of a key instead if
            // that is newer (and the snapshot then moves up to it), so taking a lock asks
            // the oracle for nothing, and a version committed meanwhile is no retry.
            let req = Request::PessimisticLock {
                keys: keys.to_vec(),
                txn: meta.clone(),
                for_update_ts: self.read_ts,
                wait_ms: backoff.slice_ms(),
            };
            match self.client.kv.send(req).await {
                Ok(Response::Locked { ts, values }) => {
                    self.client.wait_over(&backoff);
                    return Ok((ts, values));
                }
                Ok(other) => return Err(unexpected("PessimisticLock", &other)),
                // The range waited a slice for the holder (or not at all, if its time to
                // live ran out): find out its fate, and look for a deadlock.
                Err(kv::Error::Mvcc(mvcc::Error::KeyIsLocked(lock))) => {
                    self.client.waited_for(&lock, &mut backoff).await?;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Marks a point that [`Transaction::rollback_to`] can return the writes to.
    pub fn savepoint(&mut self) -> Savepoint {
        Savepoint {
            pos: self.writes.savepoint(),
        }
    }

    /// Undoes the writes made since `sp`; the savepoint stays usable. Reads and locks are
    /// kept, as they still constrain the transaction.
    pub fn rollback_to(&mut self, sp: &Savepoint) {
        self.writes.rollback_to(sp.pos);
    }

    /// Forgets a savepoint, keeping its writes.
    pub fn release(&mut self, sp: Savepoint) {
        let _ = sp;
        self.writes.release();
    }

    /// Commits the transaction and returns its commit timestamp (the start timestamp for a
    /// transaction that wrote nothing).
    pub async fn commit(&mut self) -> Result<Timestamp> {
        let ts = self.finish_commit(None).await?;
        Ok(ts.unwrap_or(self.start_ts))
    }

    /// Runs a commit that stops at `stop`, leaving locks behind as a coordinator that
    /// crashed there would (its heartbeat stops too). For fault-injection tests.
    #[doc(hidden)]
    pub async fn commit_and_stop(&mut self, stop: CommitStop) -> Result<()> {
        self.finish_commit(Some(stop)).await.map(|_| ())
    }

    async fn finish_commit(&mut self, stop: Option<CommitStop>) -> Result<Option<Timestamp>> {
        self.check_active()?;
        self.finished = true;
        let result = self.commit_inner(stop).await;
        self.heartbeat = None;
        self.client.deregister(self.start_ts);
        result
    }

    /// Rolls the transaction back, releasing its locks.
    pub async fn rollback(&mut self) -> Result<()> {
        if self.finished {
            return Ok(());
        }
        self.finished = true;
        self.heartbeat = None;
        self.client.deregister(self.start_ts);
        let keys: Vec<Vec<u8>> = self.locked.keys().cloned().collect();
        self.rollback_keys(keys).await
    }

    async fn rollback_keys(&self, keys: Vec<Vec<u8>>) -> Result<()> {
        let mut by_range: BTreeMap<u64, Vec<Vec<u8>>> = BTreeMap::new();
        for k in keys {
            by_range
                .entry(self.client.kv.range_of(&k).await?.id)
                .or_default()
                .push(k);
        }
        for keys in by_range.into_values() {
            for keys in chunks(keys, Vec::len) {
                self.client
                    .kv
                    .send(Request::Rollback {
                        keys,
                        start_ts: self.start_ts,
                    })
                    .await?;
            }
        }
        Ok(())
    }

    async fn commit_inner(&mut self, stop: Option<CommitStop>) -> Result<Option<Timestamp>> {
        let mut mutations = self.writes.mutations();
        for key in self.locked.keys() {
            if self.writes.get(key).is_none() {
                mutations.push(Mutation::Lock { key: key.clone() });
            }
        }
        if mutations.is_empty() {
            // Read-only: it takes effect at its start timestamp, where every read was made.
            return Ok(None);
        }
        let reads = std::mem::take(&mut self.reads);
        let leased = std::mem::take(&mut self.leased);
        let deadline = leased.values().map(|(_, d)| *d).min();
        let leased: Vec<(Vec<u8>, Timestamp)> =
            leased.into_iter().map(|(k, (ts, _))| (k, ts)).collect();
        let mut groups = self.group(mutations, reads).await?;
        let small = || {
            groups
                .values()
                .all(|g| g.mutations.iter().map(mutation_bytes).sum::<usize>() <= MAX_REQUEST_BYTES)
        };
        if groups.len() == 1 && stop.is_none() && !self.prewritten_early && small() {
            let (_, g) = groups.into_iter().next().expect("one group");
            let (mutations, reads) = (g.mutations.clone(), g.reads.clone());
            match self.commit_one_phase(g, deadline).await {
                // The range split since the keys were grouped, or the range's commit
                // timestamp came too late for a cached read: commit in two phases.
                Err(Error::Kv(
                    e @ (kv::Error::CrossRange(_) | kv::Error::DeadlinePassed { .. }),
                )) => {
                    tracing::debug!("one-phase commit refused: {e}");
                    let reads = Reads {
                        keys: reads.keys.into_iter().chain(leased).collect(),
                        spans: reads.spans,
                    };
                    let groups = self.group(mutations, reads).await?;
                    return self.commit_two_phase(groups, None, stop).await;
                }
                other => return other.map(Some),
            }
        }
        for (k, ts) in leased {
            let r = self.client.kv.range_of(&k).await?;
            group_of(&mut groups, &r).leased.push((k, ts));
        }
        self.commit_two_phase(groups, deadline, stop).await
    }

    /// Sorts mutations and reads by the range that owns them.
    async fn group(&self, mutations: Vec<Mutation>, reads: Reads) -> Result<BTreeMap<u64, Group>> {
        let mut groups: BTreeMap<u64, Group> = BTreeMap::new();
        let kv = &self.client.kv;
        for m in mutations {
            let r = kv.range_of(m.key()).await?;
            group_of(&mut groups, &r).mutations.push(m);
        }
        for (k, ts) in reads.keys {
            let r = kv.range_of(&k).await?;
            group_of(&mut groups, &r).reads.keys.push((k, ts));
        }
        for (span, ts) in reads.spans {
            for r in kv.ranges(&span).await? {
                let part = intersect(&span, &r);
                group_of(&mut groups, &r).reads.spans.push((part, ts));
            }
        }
        Ok(groups)
    }

    async fn commit_one_phase(&self, g: Group, deadline: Option<Timestamp>) -> Result<Timestamp> {
        let mut backoff = self.backoff();
        loop {
            let req = Request::OnePhaseCommit {
                mutations: g.mutations.clone(),
                reads: g.reads.clone(),
                start_ts: self.start_ts,
                deadline,
                reserved: self.reserved,
            };
            match self.client.kv.send(req).await {
                Ok(Response::Committed(ts)) => return Ok(ts),
                Ok(other) => return Err(unexpected("OnePhaseCommit", &other)),
                Err(kv::Error::Mvcc(mvcc::Error::KeyIsLocked(lock))) => {
                    self.client.resolve(&lock, &mut backoff).await?;
                }
                // Nothing was written; the caller commits in two phases instead.
                Err(e @ (kv::Error::CrossRange(_) | kv::Error::DeadlinePassed { .. })) => {
                    return Err(e.into());
                }
                Err(e) => {
                    // Nothing was written, but pessimistic locks may remain.
                    let _ = self
                        .rollback_keys(self.locked.keys().cloned().collect())
                        .await;
                    return Err(e.into());
                }
            }
        }
    }

    async fn commit_two_phase(
        &mut self,
        groups: BTreeMap<u64, Group>,
        deadline: Option<Timestamp>,
        stop: Option<CommitStop>,
    ) -> Result<Option<Timestamp>> {
        // The key locked last becomes the primary (see the type's documentation); not for
        // a transaction whose primary is already prewritten, nor onto a lock with less
        // than half its TTL left (nothing renewed it: it was no primary).
        if !self.prewritten_early
            && let Some((last, ttl_ms)) = self.last_locked.clone()
            && self.primary.as_ref() != Some(&last)
            && self.start_ts.physical_ms() + ttl_ms
                > self.client.clock.now_ms() + self.client.config.lock_ttl_ms / 2
            && groups
                .values()
                .any(|g| g.mutations.iter().any(|m| m.key() == last.as_slice()))
        {
            self.moved_from = self.primary.replace(last);
            // The new primary is renewed from now on, and the first one until the
            // prewrite has replaced the locks that name it.
            self.moved_heartbeat = self.heartbeat.take();
        }
        let primary = match &self.primary {
            Some(p) => p.clone(),
            None => groups
                .values()
                .flat_map(|g| g.mutations.first())
                .map(|m| m.key().to_vec())
                .next()
                .ok_or_else(|| Error::Internal("two-phase commit without mutations".into()))?,
        };
        // A large prewrite can outlast the TTL it started with.
        self.start_heartbeat(&primary);
        let meta = self.meta(primary.clone());
        let all_keys: Vec<Vec<u8>> = groups
            .values()
            .flat_map(|g| g.mutations.iter().map(|m| m.key().to_vec()))
            .collect();
        let result = self
            .prewrite_and_validate(&groups, deadline, &meta, stop)
            .await;
        self.moved_heartbeat = None;
        let commit_ts = match result {
            Ok(Some(ts)) => ts,
            Ok(None) => return Ok(None),
            Err(e) => {
                let _ = self.rollback_keys(all_keys).await;
                return Err(e);
            }
        };
        self.client
            .kv
            .send(Request::Commit {
                keys: vec![primary.clone()],
                start_ts: self.start_ts,
                commit_ts,
            })
            .await?;
        if stop == Some(CommitStop::AfterPrimary) {
            return Ok(Some(commit_ts));
        }
        // The transaction is committed: the secondaries are committed in the background,
        // one request per range at once. Any that fail (or that a reader meets first) are
        // rolled forward by whoever meets their locks.
        let secondaries: Vec<Vec<Vec<u8>>> = groups
            .values()
            .map(|g| {
                g.mutations
                    .iter()
                    .map(|m| m.key().to_vec())
                    .filter(|k| *k != primary)
                    .collect::<Vec<_>>()
            })
            .filter(|keys| !keys.is_empty())
            .flat_map(|keys| chunks(keys, Vec::len))
            .collect();
        if !secondaries.is_empty() {
            let (client, start_ts) = (self.client.clone(), self.start_ts);
            self.client.in_background(async move {
                let commits = secondaries.into_iter().map(|keys| {
                    client.kv.send(Request::Commit {
                        keys,
                        start_ts,
                        commit_ts,
                    })
                });
                for r in futures::future::join_all(commits).await {
                    if let Err(e) = r {
                        tracing::warn!(error = %e, %start_ts, "committing secondaries failed");
                    }
                }
            });
        }
        Ok(Some(commit_ts))
    }

    /// Prewrites `mutations` (all in one range), resolving or waiting on the locks of
    /// others it meets.
    async fn prewrite(&self, meta: &TxnMeta, mutations: Vec<Mutation>) -> Result<()> {
        let mut backoff = self.backoff_as(Some(&meta.primary));
        loop {
            let req = Request::Prewrite {
                txn: meta.clone(),
                mutations: mutations.clone(),
            };
            match self.client.kv.send(req).await {
                Ok(_) => return Ok(()),
                Err(kv::Error::Mvcc(mvcc::Error::KeyIsLocked(lock))) => {
                    self.client.resolve(&lock, &mut backoff).await?;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    async fn prewrite_and_validate(
        &self,
        groups: &BTreeMap<u64, Group>,
        deadline: Option<Timestamp>,
        meta: &TxnMeta,
        stop: Option<CommitStop>,
    ) -> Result<Option<Timestamp>> {
        // Every range at once (a range's chunks one after another).
        let prewrites = groups
            .values()
            .filter(|g| !g.mutations.is_empty())
            .map(|g| async move {
                for chunk in chunks(g.mutations.clone(), mutation_bytes) {
                    self.prewrite(meta, chunk).await?;
                }
                Ok::<(), Error>(())
            });
        futures::future::try_join_all(prewrites).await?;
        if stop == Some(CommitStop::AfterPrewrite) {
            return Ok(None);
        }
        let commit_ts = self.client.tso.timestamp().await?;
        // Validated: what was read, except the leased reads if the commit is before their
        // deadline, and the covered keys (see `Transaction::covered`). Those need none:
        // the lock call that took each lock validated every read of the key up to the
        // lock's timestamp (from its first read, if the key was locked again), no other
        // transaction commits a version of the key while the lock is held, and the
        // prewrite just failed on any version newer than the lock, or newer than the start
        // if the lock was lost since (a leaseholder change drops the in-memory ones).
        let lease_holds = deadline.is_some_and(|d| commit_ts < d);
        let validations = groups.values().filter_map(|g| {
            let mut reads = ReadSet {
                keys: g
                    .reads
                    .keys
                    .iter()
                    .filter(|(k, _)| !self.covered.contains(k))
                    .cloned()
                    .collect(),
                spans: g.reads.spans.clone(),
            };
            if !lease_holds {
                reads.keys.extend(g.leased.iter().cloned());
            }
            (!reads.is_empty()).then(|| {
                self.client.kv.send(Request::ValidateReads {
                    reads,
                    start_ts: self.start_ts,
                    commit_ts,
                })
            })
        });
        futures::future::try_join_all(validations).await?;
        Ok(Some(commit_ts))
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        self.client.deregister(self.start_ts);
        if self.locked.is_empty() {
            return;
        }
        // Release pessimistic locks in the background; if that fails, their TTL frees them.
        let keys: Vec<Vec<u8>> = self.locked.keys().cloned().collect();
        let (client, start_ts) = (self.client.clone(), self.start_ts);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let mut t = Transaction::new(client, start_ts, None);
                t.finished = true;
                if let Err(e) = t.rollback_keys(keys).await {
                    tracing::warn!(error = %e, %start_ts, "releasing locks of a dropped transaction");
                }
            });
        }
    }
}

fn check_key(key: &[u8]) -> Result<()> {
    if key.is_empty() {
        return Err(Error::EmptyKey);
    }
    if key.len() > base::MAX_KEY_LEN {
        return Err(Error::KeyTooLarge {
            len: key.len(),
            max: base::MAX_KEY_LEN,
        });
    }
    Ok(())
}

/// Returns the smallest key greater than `key`.
fn next_key(key: &[u8]) -> Vec<u8> {
    let mut k = key.to_vec();
    k.push(0);
    k
}

/// Returns the part of `span` inside `range`.
fn intersect(span: &Span, range: &RangeDesc) -> Span {
    let start = span.start.clone().max(range.span.start.clone());
    let end = match (span.end.is_empty(), range.span.end.is_empty()) {
        (true, _) => range.span.end.clone(),
        (_, true) => span.end.clone(),
        _ => span.end.clone().min(range.span.end.clone()),
    };
    Span { start, end }
}

/// Returns the group of range `r`, creating it empty.
fn group_of<'g>(groups: &'g mut BTreeMap<u64, Group>, r: &RangeDesc) -> &'g mut Group {
    groups.entry(r.id).or_insert_with(|| Group {
        mutations: Vec::new(),
        reads: ReadSet::default(),
        leased: Vec::new(),
    })
}

/// How many times, and how long each, a read refresh waits for a write lock on a key it
/// read before it reports the conflict (bounded: the waiter may hold locks the holder
/// waits for).
const REFRESH_LOCK_WAITS: usize = 4;
const REFRESH_LOCK_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

/// Most bytes of keys and values one prewrite, commit or rollback request carries: a
/// transaction with more in one range sends several (and commits in two phases), so no Raft
/// entry or RPC message grows with the transaction.
const MAX_REQUEST_BYTES: usize = 1 << 20;

/// Returns the bytes of keys and values `m` carries.
fn mutation_bytes(m: &Mutation) -> usize {
    match m {
        Mutation::Put { key, value } => key.len() + value.len(),
        Mutation::Delete { key } | Mutation::Lock { key } => key.len(),
    }
}

/// Cuts `items` into runs of at most [`MAX_REQUEST_BYTES`] (by `bytes`; an item larger
/// than that goes alone).
fn chunks<T>(items: Vec<T>, bytes: impl Fn(&T) -> usize) -> Vec<Vec<T>> {
    let mut out: Vec<Vec<T>> = Vec::new();
    let mut size = 0;
    for item in items {
        let b = bytes(&item);
        match out.last_mut() {
            Some(run) if size + b <= MAX_REQUEST_BYTES => run.push(item),
            _ => {
                out.push(vec![item]);
                size = 0;
            }
        }
        size += b;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_stay_under_the_request_limit_and_keep_every_item_in_order() {
        let item = MAX_REQUEST_BYTES / 3;
        let items: Vec<usize> = vec![item, item, item, item, MAX_REQUEST_BYTES * 2, 1, 1];
        let runs = chunks(items.clone(), |b| *b);
        assert_eq!(runs.concat(), items);
        assert_eq!(
            runs,
            vec![
                vec![item, item, item],
                vec![item],
                vec![MAX_REQUEST_BYTES * 2],
                vec![1, 1]
            ]
        );
        for run in &runs {
            assert!(run.len() == 1 || run.iter().sum::<usize>() <= MAX_REQUEST_BYTES);
        }
        assert!(chunks(Vec::<usize>::new(), |b| *b).is_empty());
    }
}
