//! The engine trait, keyspaces and write batches.

use std::ops::Bound;

use crate::error::{Error, Result};

/// Longest key the engine stores. User keys are limited to [`base::MAX_KEY_LEN`]-ish sizes
/// above this layer; this margin leaves room for MVCC framing.
pub const MAX_STORAGE_KEY_LEN: usize = 32 * 1024;

/// Longest value the engine stores. User values are limited far below this above; the
/// margin covers framed records and Raft entries that carry several values.
pub const MAX_STORAGE_VALUE_LEN: usize = 256 * 1024 * 1024;

/// The separate sorted key spaces of one store. A write batch may span several of them
/// and is still atomic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Keyspace {
    /// MVCC versions of user and system data.
    Mvcc,
    /// Transaction locks (one per locked key).
    Locks,
    /// Raft log entries of every range on the node.
    RaftLog,
    /// Raft hard state and applied state of every range on the node.
    RaftState,
    /// Node-local system data: store identity, the timestamp oracle's high-water mark.
    System,
    /// The newest-version index of MVCC: for every key with versions, the commit
    /// timestamps of its newest version and of its newest data version, so that a point
    /// read is two point lookups (which the LSM's bloom filters serve) instead of a range
    /// scan over every level.
    Latest,
}

impl Keyspace {
    /// Every keyspace, in index order.
    pub const ALL: [Keyspace; 6] = [
        Keyspace::Mvcc,
        Keyspace::Locks,
        Keyspace::RaftLog,
        Keyspace::RaftState,
        Keyspace::System,
        Keyspace::Latest,
    ];

    /// Returns the keyspace's name on disk.
    pub fn name(self) -> &'static str {
        match self {
            Keyspace::Mvcc => "mvcc",
            Keyspace::Locks => "locks",
            Keyspace::RaftLog => "raft_log",
            Keyspace::RaftState => "raft_state",
            Keyspace::System => "system",
            Keyspace::Latest => "latest",
        }
    }

    /// Returns the keyspace's position in [`Keyspace::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// A key and its value.
pub type KvPair = (Vec<u8>, Vec<u8>);

/// An ordered iterator over key/value pairs. It yields an error at most once, then ends.
pub type ScanIter<'a> = Box<dyn Iterator<Item = Result<KvPair>> + Send + 'a>;

/// Read access to a store or to a snapshot of it.
pub trait ReadView {
    /// Returns the value of a key, if present.
    fn get(&self, ks: Keyspace, key: &[u8]) -> Result<Option<Vec<u8>>>;

    /// Returns the pairs with keys between `start` and `end`, in ascending key order, or
    /// descending if `reverse`.
    fn scan(
        &self,
        ks: Keyspace,
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
        reverse: bool,
    ) -> ScanIter<'_>;

    /// Returns the pairs whose keys start with `prefix`, in ascending order.
    fn scan_prefix(&self, ks: Keyspace, prefix: &[u8]) -> ScanIter<'_> {
        // Bounds are copied by every implementation, so the iterator borrows only `self`.
        match codec::key::prefix_end(prefix) {
            Some(end) => self.scan(ks, Bound::Included(prefix), Bound::Excluded(&end), false),
            None => self.scan(ks, Bound::Included(prefix), Bound::Unbounded, false),
        }
    }
}

/// A storage engine.
///
/// Writes become visible to readers as soon as [`Engine::write`] returns, and durable only
/// after a later [`Engine::sync`] returns. Use [`crate::GroupCommit`] to make writes durable
/// with shared syncs.
pub trait Engine: ReadView + Send + Sync + 'static {
    /// A consistent, read-only view of the store at one instant.
    type Snapshot: ReadView + Send + Sync + 'static;

    /// Applies every operation of the batch atomically: a reader or snapshot sees all of
    /// them or none. Fails without writing anything if a key or value is over the limits.
    fn write(&self, batch: &WriteBatch) -> Result<()>;

    /// Makes every write that returned before this call durable.
    fn sync(&self) -> Result<()>;

    /// Returns a snapshot of the store as of now.
    fn snapshot(&self) -> Self::Snapshot;
}

/// One operation of a write batch: a put, or a delete when `value` is `None`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchOp {
    pub ks: Keyspace,
    pub key: Vec<u8>,
    pub value: Option<Vec<u8>>,
}

/// Puts and deletes applied atomically, in order (a later operation on the same key wins).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteBatch {
    ops: Vec<BatchOp>,
    bytes: usize,
}

impl WriteBatch {
    /// Returns an empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a put.
    pub fn put(&mut self, ks: Keyspace, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        let (key, value) = (key.into(), value.into());
        self.bytes += key.len() + value.len();
        self.ops.push(BatchOp {
            ks,
            key,
            value: Some(value),
        });
    }

    /// Adds a delete.
    pub fn delete(&mut self, ks: Keyspace, key: impl Into<Vec<u8>>) {
        let key = key.into();
        self.bytes += key.len();
        self.ops.push(BatchOp {
            ks,
            key,
            value: None,
        });
    }

    /// Appends every operation of `other`.
    pub fn extend(&mut self, other: WriteBatch) {
        self.bytes += other.bytes;
        self.ops.extend(other.ops);
    }

    /// Returns the number of operations.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Returns true if the batch has no operations.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Returns the total size of keys and values.
    pub fn size_bytes(&self) -> usize {
        self.bytes
    }

    /// Returns the operations in order.
    pub fn ops(&self) -> &[BatchOp] {
        &self.ops
    }

    /// Checks every key and value against the engine's limits. Keys may not be empty.
    pub fn validate(&self) -> Result<()> {
        for op in &self.ops {
            if op.key.is_empty() {
                return Err(Error::EmptyKey);
            }
            if op.key.len() > MAX_STORAGE_KEY_LEN {
                return Err(Error::KeyTooLarge {
                    len: op.key.len(),
                    max: MAX_STORAGE_KEY_LEN,
                });
            }
            if let Some(v) = &op.value
                && v.len() > MAX_STORAGE_VALUE_LEN
            {
                return Err(Error::ValueTooLarge {
                    len: v.len(),
                    max: MAX_STORAGE_VALUE_LEN,
                });
            }
        }
        Ok(())
    }
}
