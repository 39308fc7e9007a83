//! One-phase commit: for a transaction whose keys all live in one range.

use base::Timestamp;
use storage::{Keyspace, ReadView, WriteBatch};

use super::{Newer, check_newer_below, put_version, validate_reads};
use crate::error::{Error, Result};
use crate::reader::{MvccReader, lock_info};
use crate::record::Mutation;

/// Validates the reads and writes every mutation as a version at `commit_ts`, in one step
/// and without locks. The caller must keep other commands on these keys out (latches)
/// from before `commit_ts` was taken until the batch is durable.
///
/// A put or delete of a key the transaction neither locked nor read is a blind write: a
/// version another transaction committed after `start_ts` (but below `commit_ts`) is no
/// conflict, since the write does not depend on it, and every read the transaction made
/// is validated up to `commit_ts`, so the transaction is equivalent to one run entirely
/// at `commit_ts`, after the other. (Prewrite cannot do this: its commit timestamp is not
/// known yet.)
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
    let read_keys: std::collections::HashSet<&[u8]> =
        reads.keys.iter().map(|(k, _)| k.as_slice()).collect();
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
        let blind = base == start_ts
            && !matches!(m, Mutation::Lock { .. })
            && !read_keys.contains(key.as_slice())
            && !reads.spans.iter().any(|(s, _)| s.contains(&key));
        let blind_below = blind.then_some(commit_ts);
        if let Newer::AlreadyCommitted =
            check_newer_below(reader, &key, start_ts, base, blind_below)?
        {
            continue;
        }
        put_version(reader, batch, &key, commit_ts, &m.into_version(start_ts))?;
    }
    Ok(())
}
