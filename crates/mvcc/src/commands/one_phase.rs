//! One-phase commit: for a transaction whose keys all live in one range.

use base::Timestamp;
use storage::{Keyspace, ReadView, WriteBatch};

use super::{Newer, check_newer, put_version, validate_reads};
use crate::error::{Error, Result};
use crate::reader::{MvccReader, lock_info};
use crate::record::Mutation;

/// Validates the reads and writes every mutation as a version at `commit_ts`, in one step
/// and without locks. The caller must keep other commands on these keys out (latches)
/// from before `commit_ts` was taken until the batch is durable.
///
/// The transaction's own pessimistic locks on the keys are released.
pub fn commit_one_phase<R: ReadView + ?Sized>(
    reader: &MvccReader<'_, R>,
    batch: &mut WriteBatch,
    mutations: Vec<Mutation>,
    reads: &super::ReadSet,
    start_ts: Timestamp,
    commit_ts: Timestamp,
) -> Result<()> {
    validate_reads(reader, reads, start_ts, commit_ts)?;
    for m in mutations {
        m.validate()?;
        let key = m.key().to_vec();
        let mut base = start_ts;
        if let Some(lock) = reader.lock(&key)? {
            if lock.start_ts != start_ts {
                return Err(Error::KeyIsLocked(Box::new(lock_info(&key, &lock))));
            }
            base = lock.conflict_ts();
            batch.delete(Keyspace::Locks, key.clone());
        }
        if commit_ts <= base {
            return Err(Error::InvalidCommitTs {
                commit_ts,
                lock_ts: base,
            });
        }
        if let Newer::AlreadyCommitted = check_newer(reader, &key, start_ts, base)? {
            continue;
        }
        put_version(reader, batch, &key, commit_ts, &m.into_version(start_ts))?;
    }
    Ok(())
}
