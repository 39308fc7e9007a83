//! Evaluation of key-value requests against one replica's state.
//!
//! An [`Evaluator`] runs the MVCC command of a [`Request`] against the state of the
//! replica it belongs to: a write takes latches on its keys, checks that the replica may
//! evaluate ([`Log::ready`]), computes its write batch from the current state and hands the
//! batch to the replica's [`Log`], holding the latches until the batch is applied. The log
//! is the node's group commit for a single-node store ([`crate::LocalKv`]) and the range's
//! Raft group for a replicated one ([`crate::Replica`]): the same evaluation serves both.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base::{Clock, Timestamp};
use mvcc::MvccReader;
use mvcc::commands;
use storage::{Engine, WriteBatch};
use tokio::time::Instant;

use crate::api::{Request, Response, TxnRef};
use crate::error::{Error, Result};
use crate::latches::Latches;
use crate::read_stamps::ReadStamps;
use crate::tso::TimestampOracle;

/// Where the write batches a replica evaluates go.
#[async_trait]
pub(crate) trait Log: Send + Sync + 'static {
    /// Returns once the replica may evaluate: it is the range's leaseholder and its state
    /// holds every write committed so far. Fails with [`Error::NotLeaseholder`] otherwise.
    async fn ready(&self) -> Result<()>;

    /// Makes `batch` part of the replica's state (durably, if `durable`). Returns once it
    /// is applied to the replica's engine.
    async fn append(&self, batch: WriteBatch, durable: bool) -> Result<()>;

    /// Identifies the current leadership of the replica: it changes whenever the replica
    /// may have stopped being the leaseholder in between (the Raft term). State kept only
    /// in the leaseholder's memory is dropped when it changes.
    fn lease_epoch(&self) -> u64 {
        0
    }
}

/// Pessimistic locks held only in the leaseholder's memory (TiKV's in-memory pessimistic
/// locks): taking one costs no Raft write. They keep other writers out exactly as a
/// replicated one would while this replica stays the leaseholder; a new leaseholder (or
/// the new range of a split) starts without them. Losing one is safe: the transaction
/// read the key for update at its lock's timestamp and validates that read when it
/// commits, and its prewrite finds no lock of its own and checks for newer versions, so a
/// writer that got in meanwhile turns into a serialization failure, never a lost update.
///
/// The table holds encoded [`mvcc::Lock`]s by key, and is seen by write commands through
/// [`LockOverlay`]. A lock put by a command goes to the table when it is pessimistic and
/// the key has no replicated lock; any other change to a key's lock (a prewrite, commit,
/// rollback, resolution) replaces the table's entry once it is applied.
#[derive(Default)]
struct MemLocks {
    inner: std::sync::Mutex<MemLockTable>,
}

#[derive(Default)]
struct MemLockTable {
    epoch: u64,
    locks: HashMap<Vec<u8>, Vec<u8>>,
    /// Bytes of keys and locks in `locks`.
    bytes: usize,
}

impl MemLockTable {
    /// Past this many bytes, further pessimistic locks are replicated (a transaction that
    /// locks a great many rows does not grow the leaseholder's memory without bound).
    const MAX_BYTES: usize = 4 << 20;

    /// Holds `lock` on `key` in memory if the key has one there already or there is
    /// room; returns false (and holds nothing) otherwise.
    fn insert(&mut self, key: &[u8], lock: &[u8]) -> bool {
        let old = self.locks.get(key).map(Vec::len);
        if old.is_none() && self.bytes + key.len() + lock.len() > Self::MAX_BYTES {
            return false;
        }
        self.bytes -= old.map_or(0, |o| key.len() + o);
        self.bytes += key.len() + lock.len();
        self.locks.insert(key.to_vec(), lock.to_vec());
        true
    }

    fn remove(&mut self, key: &[u8]) {
        if let Some(old) = self.locks.remove(key) {
            self.bytes -= key.len() + old.len();
        }
    }
}

impl MemLocks {
    fn table(&self) -> std::sync::MutexGuard<'_, MemLockTable> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Drops every lock taken under another leadership than `epoch`.
    fn enter(&self, epoch: u64) {
        let mut t = self.table();
        if t.epoch != epoch {
            t.epoch = epoch;
            t.locks.clear();
            t.bytes = 0;
        }
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.table().locks.get(key).cloned()
    }
}

/// The replica's state as write commands see it: the engine, plus the in-memory
/// pessimistic locks where the engine has no lock.
struct LockOverlay<'a, E: Engine> {
    engine: &'a E,
    mem: &'a MemLocks,
}

impl<E: Engine> storage::ReadView for LockOverlay<'_, E> {
    fn get(&self, ks: storage::Keyspace, key: &[u8]) -> storage::Result<Option<Vec<u8>>> {
        let v = self.engine.get(ks, key)?;
        if v.is_none() && ks == storage::Keyspace::Locks {
            return Ok(self.mem.get(key));
        }
        Ok(v)
    }

    // Scans see replicated locks only: the scans of commands (reads, read validation,
    // GC) look for locks that block readers, which a pessimistic lock never does.
    fn scan(
        &self,
        ks: storage::Keyspace,
        start: std::ops::Bound<&[u8]>,
        end: std::ops::Bound<&[u8]>,
        reverse: bool,
    ) -> storage::ScanIter<'_> {
        self.engine.scan(ks, start, end, reverse)
    }
}

/// Where transactions blocked on a lock wait: one notification slot per key hash, woken
/// whenever a command that can release locks on keys of that slot has been applied.
struct LockWaits {
    slots: Vec<tokio::sync::Notify>,
}

impl LockWaits {
    const SLOTS: usize = 256;

    fn new() -> Self {
        LockWaits {
            slots: (0..Self::SLOTS)
                .map(|_| tokio::sync::Notify::new())
                .collect(),
        }
    }

    fn slot(&self, key: &[u8]) -> &tokio::sync::Notify {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut h);
        &self.slots[(h.finish() as usize) % Self::SLOTS]
    }

    /// Wakes the waiters of `keys`' slots.
    fn released<'k>(&self, keys: impl IntoIterator<Item = &'k [u8]>) {
        for k in keys {
            self.slot(k).notify_waiters();
        }
    }
}

/// Which transaction each transaction whose primary lives here waits for, as the waiters
/// noted it ([`Request::NoteWait`]). In memory only: a note lasts as long as its waiter
/// said (at most [`WaitNotes::LIFE`]) unless renewed, and a new leaseholder starts with
/// none (waiters renew theirs while they wait, so deadlock detection only pauses).
#[derive(Default)]
struct WaitNotes {
    notes: std::sync::Mutex<HashMap<TxnRef, (TxnRef, Instant)>>,
}

impl WaitNotes {
    const LIFE: Duration = Duration::from_secs(2);

    fn notes(&self) -> std::sync::MutexGuard<'_, HashMap<TxnRef, (TxnRef, Instant)>> {
        self.notes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Notes that `txn` waits for `holder` for the next `life` (at most [`Self::LIFE`]);
    /// a zero `life` forgets `txn`'s note.
    fn note(&self, txn: TxnRef, holder: TxnRef, life: Duration) {
        let now = Instant::now();
        let mut notes = self.notes();
        if life.is_zero() {
            notes.remove(&txn);
            return;
        }
        if notes.len() >= 1024 {
            notes.retain(|_, (_, until)| now < *until);
        }
        notes.insert(txn, (holder, now + life.min(Self::LIFE)));
    }

    fn waits_for(&self, txn: &TxnRef) -> Option<TxnRef> {
        let notes = self.notes();
        let (holder, until) = notes.get(txn)?;
        (Instant::now() < *until).then(|| holder.clone())
    }
}

/// Evaluates requests against one replica (or, for [`crate::LocalKv`], one whole store).
pub(crate) struct Evaluator<E: Engine, L: Log> {
    engine: Arc<E>,
    log: L,
    tso: Arc<dyn TimestampOracle>,
    clock: Arc<dyn Clock>,
    latches: Latches,
    lock_waits: LockWaits,
    wait_notes: WaitNotes,
    mem_locks: MemLocks,
    read_stamps: ReadStamps,
}

impl<E: Engine, L: Log> Evaluator<E, L> {
    /// Evaluates against `engine`, appending to `log`; one-phase commits take their
    /// timestamp from `tso`.
    pub(crate) fn new(
        engine: Arc<E>,
        log: L,
        tso: Arc<dyn TimestampOracle>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Evaluator {
            engine,
            log,
            tso,
            clock,
            latches: Latches::new(),
            lock_waits: LockWaits::new(),
            wait_notes: WaitNotes::default(),
            mem_locks: MemLocks::default(),
            read_stamps: ReadStamps::default(),
        }
    }

    /// Returns the log.
    pub(crate) fn log(&self) -> &L {
        &self.log
    }

    fn reader(&self) -> MvccReader<'_, E> {
        MvccReader::new(self.engine.as_ref())
    }

    /// Runs `attempt`, one try of a pessimistic lock; when it meets a live holder's lock,
    /// waits for that lock's release and runs it again, until `wait_ms` (the request's) ran
    /// out. The wait holds nothing (no latch, no split gate): when many wait for one hot
    /// key, only the lock taken costs its transaction a round trip.
    pub(crate) async fn locking<F, Fut>(&self, wait_ms: u64, mut attempt: F) -> Result<Response>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<Response>>,
    {
        let until = Instant::now() + Duration::from_millis(wait_ms);
        loop {
            match attempt().await {
                // Not a holder whose time to live ran out: that one's fate is for the
                // transaction to find out, at once.
                Err(Error::Mvcc(mvcc::Error::KeyIsLocked(lock)))
                    if Instant::now() < until && !lock.is_expired(self.clock.now_ms()) =>
                {
                    let left = until.saturating_duration_since(Instant::now());
                    self.wait_released(&lock.key, lock.start_ts, left).await?;
                }
                other => return other,
            }
        }
    }

    /// Waits until the lock of transaction `start_ts` on `key` is gone (or any lock of the
    /// key's wait slot is released), at most `timeout`.
    async fn wait_released(
        &self,
        key: &[u8],
        start_ts: Timestamp,
        timeout: Duration,
    ) -> Result<()> {
        let notified = self.lock_waits.slot(key).notified();
        tokio::pin!(notified);
        // Registered before the check, so a release right after it still wakes us.
        notified.as_mut().enable();
        let view = self.ready_for_writes().await?;
        let held = MvccReader::new(&view)
            .lock(key)?
            .is_some_and(|l| l.start_ts == start_ts);
        if held {
            let _ = tokio::time::timeout(timeout, notified).await;
        }
        Ok(())
    }

    /// Checks that the replica may evaluate (see [`Log::ready`]) and returns the view
    /// write commands read: the engine with the in-memory pessimistic locks of the current
    /// leadership.
    async fn ready_for_writes(&self) -> Result<LockOverlay<'_, E>> {
        self.log.ready().await?;
        self.mem_locks.enter(self.log.lease_epoch());
        Ok(LockOverlay {
            engine: self.engine.as_ref(),
            mem: &self.mem_locks,
        })
    }

    /// Runs a write command under latches on `keys` and waits until its batch is durable.
    async fn write<T>(
        &self,
        keys: Vec<Vec<u8>>,
        durable: bool,
        run: impl FnOnce(&MvccReader<'_, LockOverlay<'_, E>>, &mut WriteBatch) -> mvcc::Result<T>,
    ) -> Result<T> {
        let _latches = self.latches.acquire(keys).await;
        // Checked under the latches: no command of this replica is in flight on the keys,
        // and the state holds every write committed before.
        let view = self.ready_for_writes().await?;
        let mut batch = WriteBatch::new();
        let out = run(&MvccReader::new(&view), &mut batch)?;
        self.apply(batch, durable).await?;
        Ok(out)
    }

    /// Applies a write command's batch: its pessimistic locks on keys without a
    /// replicated lock go to the in-memory table, the rest to the log; once that is
    /// applied, the in-memory locks of the keys whose lock it changed are dropped. The
    /// caller holds latches on every key of the batch.
    async fn apply(&self, batch: WriteBatch, durable: bool) -> Result<()> {
        let mut to_mem = Vec::new();
        let mut changed = Vec::new();
        for (i, op) in batch.ops().iter().enumerate() {
            if op.ks != storage::Keyspace::Locks {
                continue;
            }
            let pessimistic = op.value.as_deref().is_some_and(|v| {
                mvcc::Lock::decode(&op.key, v).is_ok_and(|l| l.kind == mvcc::LockKind::Pessimistic)
            });
            if pessimistic && self.engine.get(op.ks, &op.key)?.is_none() {
                to_mem.push(i);
            } else {
                changed.push(op.key.clone());
            }
        }
        let batch = if to_mem.is_empty() {
            batch
        } else {
            let mut rest = WriteBatch::new();
            let mut t = self.mem_locks.table();
            for (i, op) in batch.ops().iter().enumerate() {
                match (&op.value, to_mem.binary_search(&i).is_ok()) {
                    (Some(v), true) if t.insert(&op.key, v) => {}
                    (Some(v), _) => rest.put(op.ks, op.key.clone(), v.clone()),
                    (None, _) => rest.delete(op.ks, op.key.clone()),
                }
            }
            rest
        };
        if batch.is_empty() {
            return Ok(());
        }
        self.log.append(batch, durable).await?;
        if !changed.is_empty() {
            let mut t = self.mem_locks.table();
            for k in changed {
                t.remove(&k);
            }
        }
        Ok(())
    }

    async fn one_phase_commit(
        &self,
        mutations: Vec<mvcc::Mutation>,
        reads: commands::ReadSet,
        start_ts: Timestamp,
        deadline: Option<Timestamp>,
        reserved: Option<Timestamp>,
    ) -> Result<Timestamp> {
        let mutation_keys: Vec<Vec<u8>> = mutations.iter().map(|m| m.key().to_vec()).collect();
        let read_keys: Vec<Vec<u8>> = reads.keys.iter().map(|(k, _)| k.clone()).collect();
        let mut attempts = 0;
        let (latches, view, commit_ts) = loop {
            // Let writes in flight on the keys read land first (the commit of an earlier
            // transaction's secondaries, often the same client's). Waited for holding no
            // latch, so two one-phase commits never wait for each other while holding any.
            self.latches.wait_keys(&read_keys).await;
            for (span, _) in &reads.spans {
                self.latches.wait_span(span).await;
            }
            let latches = self.latches.acquire(mutation_keys.clone()).await;
            // Read before the lease check: the read stamps count only if the leadership
            // that check proved is the one they belong to.
            let epoch = self.log.lease_epoch();
            let view = self.ready_for_writes().await?;
            // The commit timestamp is taken under the latches: a reader that takes its
            // timestamp later finds the latches and waits for this commit.
            let commit_ts = match reserved {
                Some(ts)
                    if self
                        .may_commit_at(&view, epoch, &mutation_keys, &reads, start_ts, ts)
                        .await? =>
                {
                    ts
                }
                _ => self.tso.timestamp().await?,
            };
            if let Some(deadline) = deadline.filter(|d| commit_ts >= *d) {
                return Err(Error::DeadlinePassed {
                    commit_ts,
                    deadline,
                });
            }
            // The reads are validated up to `commit_ts`: as good as made there. Noted
            // before looking for latches on them, so a one-phase commit writing one of
            // them either sees the note or holds a latch found here.
            self.read_stamps.read_set(&reads, commit_ts);
            let read_spans = reads.spans.iter().map(|(s, _)| s);
            let reads_iter = reads.keys.iter().map(|(k, _)| k.as_slice());
            match self.latches.find_foreign(reads_iter, read_spans, &latches) {
                None => break (latches, view, commit_ts),
                // A write that started on a key read since the wait: let go of the
                // latches and wait again, a few times, before calling it a conflict.
                Some(_) if attempts < 3 => attempts += 1,
                Some(key) => return Err(Error::ReadInFlight { key }),
            }
        };
        let mut batch = WriteBatch::new();
        commands::commit_one_phase(
            &MvccReader::new(&view),
            &mut batch,
            mutations,
            &reads,
            start_ts,
            commit_ts,
        )?;
        self.apply(batch, true).await?;
        drop(latches);
        // Pessimistic locks of the transaction became versions.
        self.lock_waits
            .released(mutation_keys.iter().map(Vec::as_slice));
        Ok(commit_ts)
    }

    /// Returns true if a one-phase commit of `keys` that started at `start_ts` may commit
    /// at `ts`, the timestamp the oracle reserved for it with its start (`start_ts + 1`,
    /// see [`crate::read_stamps`]): the transaction read below `ts`, no read of the keys
    /// was served at or above `ts`, and no key has a record at or above it (nor a lock of
    /// the transaction taken at or above it). Called under the latches, after a lease
    /// check that `epoch` (the leadership before it) still names.
    async fn may_commit_at(
        &self,
        view: &LockOverlay<'_, E>,
        epoch: u64,
        keys: &[Vec<u8>],
        reads: &commands::ReadSet,
        start_ts: Timestamp,
        ts: Timestamp,
    ) -> Result<bool> {
        let own_reads = reads.keys.iter().map(|(_, t)| *t);
        let newest_own = own_reads.chain(reads.spans.iter().map(|(_, t)| *t)).max();
        // Only the successor of the start is reserved for the transaction alone.
        if ts != start_ts.next() || ts <= start_ts || newest_own.is_some_and(|r| r >= ts) {
            return Ok(false);
        }
        if self.log.lease_epoch() != epoch {
            return Ok(false);
        }
        let keys_iter = || keys.iter().map(Vec::as_slice);
        let newest = match self.read_stamps.newest(epoch, keys_iter()) {
            Some(newest) => newest,
            None => {
                // First under this leadership: reads its predecessors served were at
                // timestamps the oracle handed out before this one, taken once this
                // replica holds the lease of `epoch`.
                let floor = self.tso.timestamp().await?;
                if self.log.lease_epoch() != epoch {
                    return Ok(false);
                }
                self.read_stamps.set_floor(epoch, floor);
                match self.read_stamps.newest(epoch, keys_iter()) {
                    Some(newest) => newest,
                    None => return Ok(false),
                }
            }
        };
        if newest >= ts {
            return Ok(false);
        }
        let reader = MvccReader::new(view);
        for k in keys {
            if !mvcc::Latest::nothing_since(reader.latest(k)?, ts) {
                return Ok(false);
            }
            if reader.lock(k)?.is_some_and(|l| l.conflict_ts() >= ts) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Executes `req` against this replica's state.
    pub(crate) async fn execute(&self, req: Request) -> Result<Response> {
        match req {
            Request::Get { keys, ts, txn } => {
                self.read_stamps.keys(keys.iter().map(Vec::as_slice), ts);
                self.latches.wait_keys(&keys).await;
                self.log.ready().await?;
                let reader = self.reader();
                let values = keys
                    .iter()
                    .map(|k| reader.get(k, ts, txn))
                    .collect::<mvcc::Result<_>>()?;
                Ok(Response::Values(values))
            }
            Request::Scan {
                span,
                ts,
                limit,
                reverse,
                txn,
            } => {
                self.read_stamps.span(ts);
                self.latches.wait_span(&span).await;
                self.log.ready().await?;
                Ok(Response::Scan(
                    self.reader().scan(&span, ts, limit, reverse, txn)?,
                ))
            }
            Request::PessimisticLock {
                keys,
                txn,
                for_update_ts,
                // One try here; `Evaluator::locking` waits for a holder's lock and retries.
                wait_ms: _,
            } => {
                self.read_stamps
                    .keys(keys.iter().map(Vec::as_slice), for_update_ts);
                // A lost pessimistic lock costs at most a conflict later (the prewrite and
                // read validation re-check the key), so it need not wait for an fsync.
                let (ts, values) = self
                    .write(keys.clone(), false, |r, b| {
                        let mut ts = for_update_ts;
                        for k in &keys {
                            ts = commands::pessimistic_lock_ts(r, k, ts)?;
                        }
                        let values = keys
                            .iter()
                            .map(|k| commands::acquire_pessimistic_lock(r, b, k, &txn, ts))
                            .collect::<mvcc::Result<Vec<_>>>()?;
                        Ok((ts, values))
                    })
                    .await?;
                self.read_stamps.keys(keys.iter().map(Vec::as_slice), ts);
                Ok(Response::Locked { ts, values })
            }
            Request::Prewrite { txn, mutations } => {
                let keys = mutations.iter().map(|m| m.key().to_vec()).collect();
                self.write(keys, true, |r, b| commands::prewrite(r, b, &txn, mutations))
                    .await?;
                Ok(Response::Done)
            }
            Request::ValidateReads {
                reads,
                start_ts,
                commit_ts,
            } => {
                let keys: Vec<_> = reads.keys.iter().map(|(k, _)| k.clone()).collect();
                // Validated up to `commit_ts`: as good as read there.
                self.read_stamps.read_set(&reads, commit_ts);
                self.latches.wait_keys(&keys).await;
                for (span, _) in &reads.spans {
                    self.latches.wait_span(span).await;
                }
                self.log.ready().await?;
                commands::validate_reads(&self.reader(), &reads, start_ts, commit_ts)?;
                Ok(Response::Done)
            }
            Request::Commit {
                keys,
                start_ts,
                commit_ts,
            } => {
                self.write(keys.clone(), true, |r, b| {
                    commands::commit(r, b, &keys, start_ts, commit_ts)
                })
                .await?;
                self.lock_waits.released(keys.iter().map(Vec::as_slice));
                Ok(Response::Done)
            }
            Request::Rollback { keys, start_ts } => {
                self.write(keys.clone(), true, |r, b| {
                    commands::rollback(r, b, &keys, start_ts)
                })
                .await?;
                self.lock_waits.released(keys.iter().map(Vec::as_slice));
                Ok(Response::Done)
            }
            Request::CheckTxnStatus {
                primary,
                start_ts,
                rollback_if_missing,
            } => {
                let now = Timestamp::from_parts(self.clock.now_ms(), 0);
                let status = self
                    .write(vec![primary.clone()], true, |r, b| {
                        commands::check_txn_status(
                            r,
                            b,
                            &primary,
                            start_ts,
                            now,
                            rollback_if_missing,
                        )
                    })
                    .await?;
                // Only a rollback (of an expired lock) releases anything; waking waiters
                // on every status check would make waiters on one slot wake each other.
                if status == commands::TxnStatus::RolledBack {
                    self.lock_waits.released([primary.as_slice()]);
                }
                Ok(Response::TxnStatus(status))
            }
            Request::Heartbeat {
                primary,
                start_ts,
                ttl_ms,
            } => {
                let status = self
                    .write(vec![primary.clone()], true, |r, b| {
                        commands::heartbeat(r, b, &primary, start_ts, ttl_ms)
                    })
                    .await?;
                Ok(Response::TxnStatus(status))
            }
            Request::NoteWait {
                txn,
                holder,
                for_ms,
            } => {
                self.log.ready().await?;
                self.wait_notes
                    .note(txn, holder, Duration::from_millis(for_ms));
                Ok(Response::Done)
            }
            Request::WaitsFor { txn } => {
                self.log.ready().await?;
                Ok(Response::WaitsFor(self.wait_notes.waits_for(&txn)))
            }
            Request::ResolveLock {
                keys,
                start_ts,
                commit_ts,
            } => {
                let n = self
                    .write(keys.clone(), true, |r, b| {
                        commands::resolve_lock(r, b, &keys, start_ts, commit_ts)
                    })
                    .await?;
                self.lock_waits.released(keys.iter().map(Vec::as_slice));
                Ok(Response::Resolved(n))
            }
            Request::OnePhaseCommit {
                mutations,
                reads,
                start_ts,
                deadline,
                reserved,
            } => Ok(Response::Committed(
                self.one_phase_commit(mutations, reads, start_ts, deadline, reserved)
                    .await?,
            )),
            Request::WaitLock {
                key,
                start_ts,
                timeout_ms,
            } => {
                self.wait_released(&key, start_ts, Duration::from_millis(timeout_ms))
                    .await?;
                Ok(Response::Done)
            }
            Request::Gc {
                span,
                safe_point,
                max_keys,
            } => {
                // Collection fixes history up to the safe point (it may drop a key's
                // newest-version entry): nothing may commit at or below it afterwards.
                self.read_stamps.span(safe_point);
                // A pass that changes a key's newest-version entry holds that key's latch,
                // so a commit to the key cannot land between the pass's read and its
                // batch (the pass would drop the commit's entry and hide its version).
                // The keys are found by a pass without latches, then the pass runs again
                // under them, and once more with more keys if it needs them.
                let latest_keys = |b: &WriteBatch| -> Vec<Vec<u8>> {
                    b.ops()
                        .iter()
                        .filter(|op| op.ks == storage::Keyspace::Latest)
                        .map(|op| op.key.clone())
                        .collect()
                };
                let mut keys = {
                    let view = self.ready_for_writes().await?;
                    let mut b = WriteBatch::new();
                    commands::gc(&MvccReader::new(&view), &mut b, &span, safe_point, max_keys)?;
                    latest_keys(&b)
                };
                loop {
                    keys.sort();
                    keys.dedup();
                    let latched = keys.clone();
                    let out = self
                        .write(keys.clone(), true, |r, b| {
                            let mut pass = WriteBatch::new();
                            let out = commands::gc(r, &mut pass, &span, safe_point, max_keys)?;
                            let more: Vec<_> = latest_keys(&pass)
                                .into_iter()
                                .filter(|k| latched.binary_search(k).is_err())
                                .collect();
                            if !more.is_empty() {
                                return Ok(Err(more));
                            }
                            *b = pass;
                            Ok(Ok(out))
                        })
                        .await?;
                    match out {
                        Ok(out) => return Ok(Response::Gc(out)),
                        Err(more) => keys.extend(more),
                    }
                }
            }
            // A replicated range splits through its Raft log (`Replica`); one store
            // without replication has nothing to split.
            Request::Split { .. } => Err(Error::Unsupported(
                "splitting a range of a single-node store".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::MemLockTable;

    #[test]
    fn the_in_memory_lock_table_keeps_to_its_budget() {
        let mut t = MemLockTable::default();
        let lock = vec![7u8; 1000];
        let mut held = 0u32;
        while t.insert(&held.to_be_bytes(), &lock) {
            held += 1;
        }
        assert!(held > 0 && t.bytes <= MemLockTable::MAX_BYTES);
        assert_eq!(t.locks.len(), held as usize);
        // A key already held may be replaced when the table is full; a new one may not.
        assert!(t.insert(&0u32.to_be_bytes(), &lock));
        assert!(!t.insert(&held.to_be_bytes(), &lock));
        // Removing one makes room for one.
        t.remove(&0u32.to_be_bytes());
        assert!(t.insert(&held.to_be_bytes(), &lock));
        for k in 1..=held {
            t.remove(&k.to_be_bytes());
        }
        assert_eq!((t.locks.len(), t.bytes), (0, 0));
    }
}
