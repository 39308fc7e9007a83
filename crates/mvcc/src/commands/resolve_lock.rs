//! Resolve-lock: rolls a dead or finished transaction's leftover locks forward or back.

use base::Timestamp;
use storage::{ReadView, WriteBatch};

use super::{commit, rollback};
use crate::error::Result;
use crate::reader::MvccReader;

/// Commits (`commit_ts` given) or rolls back the locks of transaction `start_ts` on
/// `keys`. Keys without a lock of that transaction are skipped. Returns how many locks
/// were resolved.
pub fn resolve_lock<R: ReadView + ?Sized>(
    reader: &MvccReader<'_, R>,
    batch: &mut WriteBatch,
    keys: &[Vec<u8>],
    start_ts: Timestamp,
    commit_ts: Option<Timestamp>,
) -> Result<usize> {
    let mut locked = Vec::new();
    for key in keys {
        if reader.lock(key)?.is_some_and(|l| l.start_ts == start_ts) {
            locked.push(key.clone());
        }
    }
    match commit_ts {
        Some(ts) => commit(reader, batch, &locked, start_ts, ts)?,
        None => rollback(reader, batch, &locked, start_ts)?,
    }
    Ok(locked.len())
}
