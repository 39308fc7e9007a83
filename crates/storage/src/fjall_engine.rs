//! The durable engine, on the fjall LSM-tree.
//!
//! A store directory holds the manifest (see [`crate::manifest`]) and the fjall database
//! under `data/`. Every [`Keyspace`] is one fjall keyspace; a [`WriteBatch`] becomes one
//! fjall batch, which fjall writes to its journal as one atomic record. The journal is
//! persisted only by [`Engine::sync`] (fjall's `manual_journal_persist`), so group commit
//! decides when to pay for an fsync.
//!
//! fjall checksums journal records and table blocks; a checksum failure surfaces as
//! [`Error::Corruption`] naming the operation that met it. A torn record at the end of the
//! journal (a crash mid-write, never acknowledged) is dropped by fjall's recovery.

use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;

use fjall::Readable;

use crate::engine::{Engine, Keyspace, KvPair, ReadView, ScanIter, WriteBatch};
use crate::error::{Error, Result};
use crate::manifest;

/// Tuning of the durable engine.
#[derive(Clone, Debug)]
pub struct FjallConfig {
    /// Block cache size in bytes.
    pub cache_bytes: u64,
}

impl Default for FjallConfig {
    fn default() -> Self {
        FjallConfig {
            cache_bytes: 256 * 1024 * 1024,
        }
    }
}

impl FjallConfig {
    /// A small preset for tests.
    pub fn for_tests() -> Self {
        FjallConfig {
            cache_bytes: 8 * 1024 * 1024,
        }
    }
}

/// The durable storage engine.
#[derive(Clone)]
pub struct FjallEngine {
    db: fjall::Database,
    spaces: Arc<[fjall::Keyspace]>,
    path: Arc<Path>,
}

impl FjallEngine {
    /// Opens the store in `dir`, creating it if the directory is empty or missing.
    pub fn open(dir: impl AsRef<Path>, config: &FjallConfig) -> Result<FjallEngine> {
        let dir = dir.as_ref();
        manifest::open_or_create(dir)?;
        let db = fjall::Database::builder(dir.join("data"))
            .cache_size(config.cache_bytes)
            .manual_journal_persist(true)
            .open()
            .map_err(|e| match e {
                fjall::Error::Locked => Error::Locked { path: dir.into() },
                e => Error::from_fjall("opening the store", dir, e),
            })?;
        let spaces = Keyspace::ALL
            .iter()
            .map(|ks| {
                db.keyspace(ks.name(), || {
                    fjall::KeyspaceCreateOptions::default().max_memtable_size(memtable_size(*ks))
                })
                .map_err(|e| Error::from_fjall("opening a keyspace", dir, e))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(FjallEngine {
            db,
            spaces: spaces.into(),
            path: dir.into(),
        })
    }

    /// Returns the store directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes every keyspace's in-memory data to table files and waits for it. Used by
    /// maintenance and by tests that need data in table files rather than the journal.
    pub fn flush_memtables(&self) -> Result<()> {
        for space in self.spaces.iter() {
            space
                .rotate_memtable_and_wait()
                .map_err(|e| self.err("flushing", e))?;
        }
        Ok(())
    }

    /// Returns the bytes the store occupies on disk.
    pub fn disk_space(&self) -> Result<u64> {
        self.db
            .disk_space()
            .map_err(|e| self.err("measuring disk space", e))
    }

    fn err(&self, op: &'static str, e: fjall::Error) -> Error {
        Error::from_fjall(op, &self.path, e)
    }

    fn space(&self, ks: Keyspace) -> &fjall::Keyspace {
        &self.spaces[ks.index()]
    }
}

impl ReadView for FjallEngine {
    fn get(&self, ks: Keyspace, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.space(ks)
            .get(key)
            .map(|v| v.map(|v| v.to_vec()))
            .map_err(|e| self.err("reading", e))
    }

    fn scan(
        &self,
        ks: Keyspace,
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
        reverse: bool,
    ) -> ScanIter<'_> {
        if empty_range(start, end) {
            return Box::new(std::iter::empty());
        }
        wrap_iter(
            self.space(ks).range::<&[u8], _>((start, end)),
            reverse,
            self.path.clone(),
        )
    }
}

impl Engine for FjallEngine {
    type Snapshot = FjallSnapshot;

    fn write(&self, batch: &WriteBatch) -> Result<()> {
        batch.validate()?;
        let mut b = self.db.batch();
        for op in batch.ops() {
            let space = self.space(op.ks);
            match &op.value {
                Some(v) => b.insert(space, op.key.as_slice(), v.as_slice()),
                None => b.remove(space, op.key.as_slice()),
            }
        }
        b.commit().map_err(|e| self.err("writing a batch", e))
    }

    fn sync(&self) -> Result<()> {
        self.db
            .persist(fjall::PersistMode::SyncData)
            .map_err(|e| self.err("syncing", e))
    }

    fn snapshot(&self) -> FjallSnapshot {
        FjallSnapshot {
            snap: self.db.snapshot(),
            spaces: self.spaces.clone(),
            path: self.path.clone(),
        }
    }
}

/// A snapshot of a [`FjallEngine`].
pub struct FjallSnapshot {
    snap: fjall::Snapshot,
    spaces: Arc<[fjall::Keyspace]>,
    path: Arc<Path>,
}

impl ReadView for FjallSnapshot {
    fn get(&self, ks: Keyspace, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.snap
            .get(&self.spaces[ks.index()], key)
            .map(|v| v.map(|v| v.to_vec()))
            .map_err(|e| Error::from_fjall("reading", &self.path, e))
    }

    fn scan(
        &self,
        ks: Keyspace,
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
        reverse: bool,
    ) -> ScanIter<'_> {
        if empty_range(start, end) {
            return Box::new(std::iter::empty());
        }
        let iter = self
            .snap
            .range::<&[u8], _>(&self.spaces[ks.index()], (start, end));
        wrap_iter(iter, reverse, self.path.clone())
    }
}

/// The memtable size of each keyspace (fixed when the keyspace is created). Point reads
/// search the memtables' skiplists, whose cost grows with the number of entries, while
/// flushed tables are skipped by their bloom filters: the keyspaces of small, hot,
/// overwritten records (locks and the newest-version index) keep small memtables.
fn memtable_size(ks: Keyspace) -> u64 {
    const MIB: u64 = 1024 * 1024;
    match ks {
        Keyspace::Locks => 4 * MIB,
        Keyspace::Latest => 8 * MIB,
        Keyspace::Mvcc => 32 * MIB,
        Keyspace::RaftLog | Keyspace::RaftState | Keyspace::System => 16 * MIB,
    }
}

fn empty_range(start: Bound<&[u8]>, end: Bound<&[u8]>) -> bool {
    use Bound::*;
    match (start, end) {
        (Included(a), Included(b)) => a > b,
        (Included(a), Excluded(b)) | (Excluded(a), Included(b)) | (Excluded(a), Excluded(b)) => {
            a >= b
        }
        _ => false,
    }
}

fn wrap_iter(iter: fjall::Iter, reverse: bool, path: Arc<Path>) -> ScanIter<'static> {
    let convert = move |g: fjall::Guard| -> Result<KvPair> {
        g.into_inner()
            .map(|(k, v)| (k.to_vec(), v.to_vec()))
            .map_err(|e| Error::from_fjall("scanning", &path, e))
    };
    let items: Box<dyn Iterator<Item = Result<KvPair>> + Send> = if reverse {
        Box::new(iter.rev().map(convert))
    } else {
        Box::new(iter.map(convert))
    };
    // End the scan after its first error.
    let mut failed = false;
    Box::new(items.map_while(move |item| {
        if failed {
            return None;
        }
        failed = item.is_err();
        Some(item)
    }))
}
