//! An in-memory engine for tests.
//!
//! Each key keeps a short chain of versions tagged with the sequence number of the batch
//! that wrote them; a snapshot is just a sequence number, registered so that the versions
//! it can see are kept. Writes prune versions that no live snapshot can see.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::engine::{Engine, Keyspace, KvPair, ReadView, ScanIter, WriteBatch};
use crate::error::Result;

/// Versions of one key, oldest first; `None` marks a delete.
type Chain = Vec<(u64, Option<Vec<u8>>)>;

#[derive(Default)]
struct Inner {
    seq: u64,
    spaces: [BTreeMap<Vec<u8>, Chain>; Keyspace::ALL.len()],
    /// Live snapshots: sequence number -> how many.
    snapshots: BTreeMap<u64, usize>,
}

impl Inner {
    fn visible(chain: &Chain, seq: u64) -> Option<&Vec<u8>> {
        chain
            .iter()
            .rev()
            .find(|(s, _)| *s <= seq)
            .and_then(|(_, v)| v.as_ref())
    }

    fn prune(chain: &mut Chain, oldest_snapshot: Option<u64>) {
        let keep_from = match oldest_snapshot {
            // The newest version at or below the oldest snapshot, and everything newer.
            Some(s) => chain.iter().rposition(|(seq, _)| *seq <= s).unwrap_or(0),
            None => chain.len() - 1,
        };
        chain.drain(..keep_from);
    }
}

/// An engine that keeps everything in memory. Clones share the same data.
#[derive(Clone, Default)]
pub struct MemoryEngine {
    inner: Arc<RwLock<Inner>>,
}

impl MemoryEngine {
    /// Returns an empty engine.
    pub fn new() -> Self {
        Self::default()
    }

    /// Returns an independent engine holding a copy of this one's current data.
    pub fn fork(&self) -> MemoryEngine {
        let src = self.read();
        let mut inner = Inner {
            seq: src.seq,
            ..Inner::default()
        };
        for (dst, space) in inner.spaces.iter_mut().zip(&src.spaces) {
            for (k, chain) in space {
                if let Some((seq, Some(v))) = chain.last() {
                    dst.insert(k.clone(), vec![(*seq, Some(v.clone()))]);
                }
            }
        }
        MemoryEngine {
            inner: Arc::new(RwLock::new(inner)),
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write_lock(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    fn snapshot_at_now(&self) -> MemorySnapshot {
        let mut inner = self.write_lock();
        let seq = inner.seq;
        *inner.snapshots.entry(seq).or_default() += 1;
        MemorySnapshot {
            engine: self.clone(),
            seq,
        }
    }
}

impl ReadView for MemoryEngine {
    fn get(&self, ks: Keyspace, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let inner = self.read();
        Ok(inner.spaces[ks.index()]
            .get(key)
            .and_then(|c| Inner::visible(c, u64::MAX))
            .cloned())
    }

    fn scan(
        &self,
        ks: Keyspace,
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
        reverse: bool,
    ) -> ScanIter<'_> {
        Box::new(MemoryScan::new(
            self.snapshot_at_now(),
            ks,
            start,
            end,
            reverse,
        ))
    }
}

impl Engine for MemoryEngine {
    type Snapshot = MemorySnapshot;

    fn write(&self, batch: &WriteBatch) -> Result<()> {
        batch.validate()?;
        let mut inner = self.write_lock();
        inner.seq += 1;
        let seq = inner.seq;
        let oldest = inner.snapshots.keys().next().copied();
        for op in batch.ops() {
            let space = &mut inner.spaces[op.ks.index()];
            let chain = space.entry(op.key.clone()).or_default();
            match chain.last_mut() {
                // A later operation of the same batch replaces the earlier one.
                Some((s, v)) if *s == seq => *v = op.value.clone(),
                _ => chain.push((seq, op.value.clone())),
            }
            Inner::prune(chain, oldest);
            if chain.len() == 1 && chain[0].1.is_none() && oldest.is_none() {
                space.remove(&op.key);
            }
        }
        Ok(())
    }

    fn sync(&self) -> Result<()> {
        Ok(())
    }

    fn snapshot(&self) -> MemorySnapshot {
        self.snapshot_at_now()
    }
}

/// A snapshot of a [`MemoryEngine`].
pub struct MemorySnapshot {
    engine: MemoryEngine,
    seq: u64,
}

impl Drop for MemorySnapshot {
    fn drop(&mut self) {
        let mut inner = self.engine.write_lock();
        if let Some(n) = inner.snapshots.get_mut(&self.seq) {
            *n -= 1;
            if *n == 0 {
                inner.snapshots.remove(&self.seq);
            }
        }
    }
}

impl ReadView for MemorySnapshot {
    fn get(&self, ks: Keyspace, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let inner = self.engine.read();
        Ok(inner.spaces[ks.index()]
            .get(key)
            .and_then(|c| Inner::visible(c, self.seq))
            .cloned())
    }

    fn scan(
        &self,
        ks: Keyspace,
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
        reverse: bool,
    ) -> ScanIter<'_> {
        let snap = self.engine.snapshot_at(self.seq);
        Box::new(MemoryScan::new(snap, ks, start, end, reverse))
    }
}

impl MemoryEngine {
    fn snapshot_at(&self, seq: u64) -> MemorySnapshot {
        *self.write_lock().snapshots.entry(seq).or_default() += 1;
        MemorySnapshot {
            engine: self.clone(),
            seq,
        }
    }
}

/// A lazy scan: each step looks up the next key after the last one returned, so the scan
/// holds no lock between steps and sees the versions of its snapshot.
struct MemoryScan {
    snap: MemorySnapshot,
    ks: Keyspace,
    lo: Bound<Vec<u8>>,
    hi: Bound<Vec<u8>>,
    reverse: bool,
}

impl MemoryScan {
    fn new(
        snap: MemorySnapshot,
        ks: Keyspace,
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
        reverse: bool,
    ) -> Self {
        MemoryScan {
            snap,
            ks,
            lo: start.map(<[u8]>::to_vec),
            hi: end.map(<[u8]>::to_vec),
            reverse,
        }
    }

    fn is_empty_range(&self) -> bool {
        use Bound::*;
        match (&self.lo, &self.hi) {
            (Included(a), Included(b)) => a > b,
            (Included(a), Excluded(b))
            | (Excluded(a), Included(b))
            | (Excluded(a), Excluded(b)) => a >= b,
            _ => false,
        }
    }
}

impl Iterator for MemoryScan {
    type Item = Result<KvPair>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.is_empty_range() {
            return None;
        }
        let found = {
            let inner = self.snap.engine.read();
            let mut range = inner.spaces[self.ks.index()].range((self.lo.clone(), self.hi.clone()));
            let mut step = || {
                if self.reverse {
                    range.next_back()
                } else {
                    range.next()
                }
            };
            loop {
                let (k, chain) = step()?;
                if let Some(v) = Inner::visible(chain, self.snap.seq) {
                    break (k.clone(), v.clone());
                }
            }
        };
        if self.reverse {
            self.hi = Bound::Excluded(found.0.clone());
        } else {
            self.lo = Bound::Excluded(found.0.clone());
        }
        Some(Ok(found))
    }
}
