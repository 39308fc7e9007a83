//! Commit: turns a transaction's locks into versions at its commit timestamp.

use base::Timestamp;
use storage::{Keyspace, ReadView, WriteBatch};

use super::put_version;
use crate::error::{Error, Result};
use crate::reader::MvccReader;
use crate::record::{LockKind, Version, WriteKind};

/// Commits transaction `start_ts` at `commit_ts` on `keys`.
///
/// A key whose lock is gone is fine if the transaction's commit record is there (a retried
/// commit); otherwise the transaction was rolled back by someone else: `TxnAborted`.
pub fn commit<R: ReadView + ?Sized>(
    reader: &MvccReader<'_, R>,
    batch: &mut WriteBatch,
    keys: &[Vec<u8>],
    start_ts: Timestamp,
    commit_ts: Timestamp,
) -> Result<()> {
    for key in keys {
        match reader.lock(key)? {
            Some(lock) if lock.start_ts == start_ts => {
                if commit_ts <= lock.conflict_ts() {
                    return Err(Error::InvalidCommitTs {
                        commit_ts,
                        lock_ts: lock.conflict_ts(),
                    });
                }
                let kind = match lock.kind {
                    LockKind::Put => WriteKind::Put,
                    LockKind::Delete => WriteKind::Delete,
                    LockKind::Lock | LockKind::Pessimistic => WriteKind::Lock,
                };
                let version = Version {
                    kind,
                    start_ts,
                    value: lock.value,
                };
                put_version(reader, batch, key, commit_ts, &version)?;
                batch.delete(Keyspace::Locks, key.clone());
            }
            _ => match reader.txn_record(key, start_ts)? {
                Some((_, v)) if v.kind != WriteKind::Rollback => {}
                _ => {
                    return Err(Error::TxnAborted {
                        key: key.clone(),
                        start_ts,
                    });
                }
            },
        }
    }
    Ok(())
}
