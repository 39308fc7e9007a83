//! Rollback: removes a transaction's locks and marks it rolled back on each key.

use base::Timestamp;
use storage::{Keyspace, ReadView, WriteBatch};

use super::put_rollback;
use crate::error::{Error, Result};
use crate::reader::MvccReader;
use crate::record::WriteKind;

/// Rolls back transaction `start_ts` on `keys`. A rollback marker is left even where the
/// transaction never locked the key, so that a prewrite arriving late fails. Rolling back a
/// committed transaction fails with `AlreadyCommitted`.
pub fn rollback<R: ReadView + ?Sized>(
    reader: &MvccReader<'_, R>,
    batch: &mut WriteBatch,
    keys: &[Vec<u8>],
    start_ts: Timestamp,
) -> Result<()> {
    for key in keys {
        if let Some(lock) = reader.lock(key)?
            && lock.start_ts == start_ts
        {
            batch.delete(Keyspace::Locks, key.clone());
            put_rollback(reader, batch, key, start_ts)?;
            continue;
        }
        match reader.txn_record(key, start_ts)? {
            Some((_, v)) if v.kind == WriteKind::Rollback => {}
            Some((commit_ts, _)) => {
                return Err(Error::AlreadyCommitted {
                    start_ts,
                    commit_ts,
                });
            }
            None => put_rollback(reader, batch, key, start_ts)?,
        }
    }
    Ok(())
}
