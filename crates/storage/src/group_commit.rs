//! Group commit: concurrent writers share one fsync.
//!
//! ```text
//!  writer A ─ write ─┐ ticket 1 ─ wait ─────────────┐ durable
//!  writer B ─ write ─┤ ticket 2 ─ wait ─────────────┤ durable
//!  writer C ─ write ─┘ ticket 3 ─ wait ─────────────┘ durable
//!                      syncer:  target = 3 ─ fsync ─ synced = 3 ─ wake all
//! ```
//!
//! A writer applies its batch to the engine (visible, not yet durable), then takes a
//! ticket from a counter it increments *after* the write returned. The syncer thread reads
//! the counter, syncs, and publishes the value it read as `synced`: every ticket at or below
//! it belongs to a write that finished before the fsync began, so it is durable. While one
//! fsync runs, more writers arrive and the next fsync covers all of them, so the number of
//! fsyncs per second stays near the disk's limit while commits per second grow with the
//! number of writers.
//!
//! Waiting is blocking ([`GroupCommit::wait`]) or async ([`GroupCommit::wait_async`]),
//! so both threads and async tasks can commit without a runtime-specific dependency here.
//!
//! [`GroupCommit::synchronous`] has no syncer: each ticket syncs in its caller's thread. It
//! is for the simulated cluster, whose tests run on one thread with a paused clock (a
//! thread the runtime cannot see would let it advance time while a writer waits).
//!
//! Before each sync, the syncer gives writers that are already inside the engine a moment
//! (at most [`IN_FLIGHT_WAIT`]) to finish, so that they ride this sync rather than the next.
//!
//! A failed sync poisons the group: every waiting and later writer gets the error, because
//! after a failed fsync the kernel may have dropped dirty pages and nothing written since
//! the last good sync can be trusted.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use event_listener::{Event, Listener};

use crate::engine::{Engine, WriteBatch};
use crate::error::{Error, Result};

/// A position in the order of writes; durable once a sync that began after it succeeded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ticket(u64);

/// Counters of a group commit, for benchmarks and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GroupCommitStats {
    /// Writes that asked for durability.
    pub writes: u64,
    /// Syncs performed.
    pub syncs: u64,
}

#[derive(Default)]
struct Shared {
    /// Writers between starting their engine write and taking their ticket.
    in_flight: AtomicU64,
    written: AtomicU64,
    synced: AtomicU64,
    syncs: AtomicU64,
    poisoned: Mutex<Option<String>>,
    is_poisoned: AtomicBool,
    shutdown: AtomicBool,
    /// Notified when `written` grows or on shutdown.
    work: Event,
    /// Notified when `in_flight` drops to zero.
    drained: Event,
    /// Notified when `synced` grows or the group is poisoned.
    done: Event,
    /// Held across a sync and its publication, without a syncer thread.
    sync_inline: Mutex<()>,
}

impl Shared {
    fn poison_error(&self) -> Error {
        let cause = self
            .poisoned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .unwrap_or_else(|| "a sync failed".to_string());
        Error::Poisoned { cause }
    }

    fn check(&self, ticket: Ticket) -> Option<Result<()>> {
        if self.synced.load(Ordering::Acquire) >= ticket.0 {
            return Some(Ok(()));
        }
        if self.is_poisoned.load(Ordering::Acquire) {
            return Some(Err(self.poison_error()));
        }
        None
    }
}

/// Makes writes to an engine durable, sharing fsyncs between concurrent writers.
pub struct GroupCommit<E: Engine> {
    engine: Arc<E>,
    shared: Arc<Shared>,
    syncer: Option<JoinHandle<()>>,
}

impl<E: Engine> GroupCommit<E> {
    /// Starts a syncer thread for `engine`.
    pub fn new(engine: Arc<E>) -> GroupCommit<E> {
        let shared = Arc::new(Shared::default());
        let syncer = {
            let (engine, shared) = (engine.clone(), shared.clone());
            std::thread::Builder::new()
                .name("tessera-sync".into())
                .spawn(move || run_syncer(&*engine, &shared))
                .expect("spawning the sync thread")
        };
        GroupCommit {
            engine,
            shared,
            syncer: Some(syncer),
        }
    }

    /// Syncs in the caller's thread when a ticket is taken, with no syncer thread: no
    /// sharing of fsyncs, for engines whose sync costs nothing (the simulated cluster's
    /// memory engines).
    pub fn synchronous(engine: Arc<E>) -> GroupCommit<E> {
        GroupCommit {
            engine,
            shared: Arc::new(Shared::default()),
            syncer: None,
        }
    }

    /// Returns the engine.
    pub fn engine(&self) -> &Arc<E> {
        &self.engine
    }

    /// Applies a batch (visible at once) and returns the ticket to wait on for durability.
    pub fn write(&self, batch: &WriteBatch) -> Result<Ticket> {
        self.shared.in_flight.fetch_add(1, Ordering::AcqRel);
        let result = self.write_unsynced(batch).map(|()| self.ticket());
        if self.shared.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.drained.notify(1);
        }
        result
    }

    /// Applies a batch that needs no sync of its own (visible at once), without waking the
    /// syncer: it becomes durable with the next sync someone waits for, since the engine's
    /// journal keeps writes in order. For what a crash may lose and recovery redoes (a Raft
    /// replica's applied commands, its committed index, log purges).
    pub fn write_unsynced(&self, batch: &WriteBatch) -> Result<()> {
        if self.shared.is_poisoned.load(Ordering::Acquire) {
            return Err(self.shared.poison_error());
        }
        let result = self.engine.write(batch);
        if let Err(e) = &result
            && e.is_fatal()
        {
            self.poison(e);
        }
        result
    }

    /// Returns a ticket covering every write visible so far, for a caller that needs what
    /// it has read to be durable: the covering sync starts after this call.
    pub fn ticket(&self) -> Ticket {
        let t = Ticket(self.shared.written.fetch_add(1, Ordering::AcqRel) + 1);
        if self.syncer.is_some() {
            self.shared.work.notify(1);
        } else {
            // Synchronous: this sync covers every write before the ticket. One at a time,
            // and none once one failed: a sync that succeeds after a failed one proves
            // nothing about the writes before the failure, so it must not publish them.
            let _one = self
                .shared
                .sync_inline
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if !self.shared.is_poisoned.load(Ordering::Acquire) {
                sync_through(&*self.engine, &self.shared, t.0);
            }
        }
        t
    }

    /// Blocks until the ticket is durable.
    pub fn wait(&self, ticket: Ticket) -> Result<()> {
        loop {
            if let Some(r) = self.shared.check(ticket) {
                return r;
            }
            let listener = self.shared.done.listen();
            if let Some(r) = self.shared.check(ticket) {
                return r;
            }
            listener.wait();
        }
    }

    /// Waits, without blocking a thread, until the ticket is durable.
    pub async fn wait_async(&self, ticket: Ticket) -> Result<()> {
        loop {
            if let Some(r) = self.shared.check(ticket) {
                return r;
            }
            let listener = self.shared.done.listen();
            if let Some(r) = self.shared.check(ticket) {
                return r;
            }
            listener.await;
        }
    }

    /// Applies a batch and blocks until it is durable.
    pub fn commit(&self, batch: &WriteBatch) -> Result<()> {
        let t = self.write(batch)?;
        self.wait(t)
    }

    /// Applies a batch and waits, without blocking a thread, until it is durable.
    pub async fn commit_async(&self, batch: &WriteBatch) -> Result<()> {
        let t = self.write(batch)?;
        self.wait_async(t).await
    }

    /// Returns the counters.
    pub fn stats(&self) -> GroupCommitStats {
        GroupCommitStats {
            writes: self.shared.written.load(Ordering::Relaxed),
            syncs: self.shared.syncs.load(Ordering::Relaxed),
        }
    }

    fn poison(&self, e: &Error) {
        poison(&self.shared, e);
    }
}

fn poison(shared: &Shared, e: &Error) {
    let mut p = shared.poisoned.lock().unwrap_or_else(|e| e.into_inner());
    if p.is_none() {
        tracing::error!(error = %e, "storage failed; refusing further writes");
        *p = Some(e.to_string());
    }
    shared.is_poisoned.store(true, Ordering::Release);
    shared.done.notify(usize::MAX);
}

impl<E: Engine> Drop for GroupCommit<E> {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::Release);
        self.shared.work.notify(usize::MAX);
        if let Some(t) = self.syncer.take() {
            let _ = t.join();
        }
    }
}

/// How long the syncer waits for writers already inside the engine before syncing without
/// them: they are usually microseconds from done, and carrying them in this sync saves
/// them waiting a whole extra one.
const IN_FLIGHT_WAIT: Duration = Duration::from_micros(200);

fn run_syncer<E: Engine>(engine: &E, shared: &Shared) {
    let mut synced = 0;
    loop {
        if shared.written.load(Ordering::Acquire) != synced {
            let deadline = Instant::now() + IN_FLIGHT_WAIT;
            while shared.in_flight.load(Ordering::Acquire) > 0 {
                let listener = shared.drained.listen();
                if shared.in_flight.load(Ordering::Acquire) == 0
                    || listener.wait_deadline(deadline).is_none()
                {
                    break;
                }
            }
        }
        let target = shared.written.load(Ordering::Acquire);
        if target == synced {
            if shared.shutdown.load(Ordering::Acquire) {
                return;
            }
            let listener = shared.work.listen();
            if shared.written.load(Ordering::Acquire) == synced
                && !shared.shutdown.load(Ordering::Acquire)
            {
                listener.wait();
            }
            continue;
        }
        if !sync_through(engine, shared, target) {
            return;
        }
        synced = target;
    }
}

/// Syncs the engine and publishes every ticket up to `target` as durable, waking the
/// waiters; or poisons the group if the sync failed. Returns whether it succeeded.
fn sync_through<E: Engine + ?Sized>(engine: &E, shared: &Shared, target: u64) -> bool {
    match engine.sync() {
        Ok(()) => {
            shared.syncs.fetch_add(1, Ordering::Relaxed);
            shared.synced.fetch_max(target, Ordering::AcqRel);
            shared.done.notify(usize::MAX);
            true
        }
        Err(e) => {
            poison(shared, &e);
            false
        }
    }
}
