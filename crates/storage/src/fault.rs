//! A fault-injecting wrapper, for crash and error-path tests.
//!
//! [`FaultEngine`] passes reads and writes through to another engine and counts writes and
//! syncs. It can be told to fail the Nth write or sync (and every one after it, as a full
//! disk stays full until space is freed) with a chosen error. It also keeps a shadow copy
//! of what has been synced, so that [`FaultEngine::crash`] returns the store as a power
//! failure would leave it: every synced write, no unsynced one.
//!
//! The shadow starts empty, so wrap a fresh engine when using `crash`.

use std::ops::Bound;
use std::sync::{Mutex, MutexGuard};

use crate::engine::{Engine, Keyspace, ReadView, ScanIter, WriteBatch};
use crate::error::{Error, Result};
use crate::memory::MemoryEngine;

/// The error an injected fault produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// No space left on the device.
    DiskFull,
    /// A generic I/O error (EIO).
    Io,
}

impl FaultKind {
    fn error(self, op: &'static str) -> Error {
        match self {
            FaultKind::DiskFull => {
                Error::io(op, std::io::Error::from(std::io::ErrorKind::StorageFull))
            }
            FaultKind::Io => Error::io(op, std::io::Error::other("injected I/O error")),
        }
    }
}

#[derive(Default)]
struct State {
    writes: u64,
    syncs: u64,
    fail_writes_from: Option<(u64, FaultKind)>,
    fail_syncs_from: Option<(u64, FaultKind)>,
    unsynced: Vec<WriteBatch>,
    durable: MemoryEngine,
}

/// An engine wrapper that injects faults and simulates crashes.
pub struct FaultEngine<E: Engine> {
    inner: E,
    state: Mutex<State>,
}

impl<E: Engine> FaultEngine<E> {
    /// Wraps an engine; no faults are armed.
    pub fn new(inner: E) -> Self {
        FaultEngine {
            inner,
            state: Mutex::new(State::default()),
        }
    }

    /// Makes the `n`th write from now on (1 = the next one) and every later write fail.
    pub fn fail_nth_write(&self, n: u64, kind: FaultKind) {
        let mut s = self.lock();
        s.fail_writes_from = Some((s.writes + n, kind));
    }

    /// Makes the `n`th sync from now on (1 = the next one) and every later sync fail.
    pub fn fail_nth_sync(&self, n: u64, kind: FaultKind) {
        let mut s = self.lock();
        s.fail_syncs_from = Some((s.syncs + n, kind));
    }

    /// Disarms every fault, as if space had been freed.
    pub fn heal(&self) {
        let mut s = self.lock();
        s.fail_writes_from = None;
        s.fail_syncs_from = None;
    }

    /// Returns the store as a crash now would leave it: every synced write and nothing
    /// else. The wrapped engine is unaffected.
    pub fn crash(&self) -> MemoryEngine {
        self.lock().durable.fork()
    }

    /// Returns the number of writes and syncs attempted so far.
    pub fn counts(&self) -> (u64, u64) {
        let s = self.lock();
        (s.writes, s.syncs)
    }

    /// Returns the wrapped engine.
    pub fn inner(&self) -> &E {
        &self.inner
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<E: Engine> ReadView for FaultEngine<E> {
    fn get(&self, ks: Keyspace, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.inner.get(ks, key)
    }

    fn scan(
        &self,
        ks: Keyspace,
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
        reverse: bool,
    ) -> ScanIter<'_> {
        self.inner.scan(ks, start, end, reverse)
    }
}

impl<E: Engine> Engine for FaultEngine<E> {
    type Snapshot = E::Snapshot;

    fn write(&self, batch: &WriteBatch) -> Result<()> {
        let mut s = self.lock();
        s.writes += 1;
        if let Some((n, kind)) = s.fail_writes_from
            && s.writes >= n
        {
            return Err(kind.error("writing a batch"));
        }
        self.inner.write(batch)?;
        s.unsynced.push(batch.clone());
        Ok(())
    }

    fn sync(&self) -> Result<()> {
        let mut s = self.lock();
        s.syncs += 1;
        if let Some((n, kind)) = s.fail_syncs_from
            && s.syncs >= n
        {
            return Err(kind.error("syncing"));
        }
        self.inner.sync()?;
        let batches = std::mem::take(&mut s.unsynced);
        for b in &batches {
            s.durable.write(b)?;
        }
        Ok(())
    }

    fn snapshot(&self) -> E::Snapshot {
        self.inner.snapshot()
    }
}
