//! Heartbeat: a live transaction keeps its primary lock from expiring.

use base::Timestamp;
use storage::{Keyspace, ReadView, WriteBatch};

use super::TxnStatus;
use super::check_txn_status::recorded;
use crate::error::Result;
use crate::reader::MvccReader;

/// Extends the TTL of transaction `start_ts`'s lock on its `primary` key to `ttl_ms` (ms
/// after its start), unless it is already at least that, and returns the transaction's
/// status: `Locked` with the TTL now in force, or, if the lock is gone, what became of it.
///
/// An expired lock that nobody rolled back yet is extended too: whoever rolls it back
/// runs under the same latches, so it either ran first (the heartbeat then finds it rolled
/// back) or meets the extended lock.
pub fn heartbeat<R: ReadView + ?Sized>(
    reader: &MvccReader<'_, R>,
    batch: &mut WriteBatch,
    primary: &[u8],
    start_ts: Timestamp,
    ttl_ms: u64,
) -> Result<TxnStatus> {
    if let Some(mut lock) = reader.lock(primary)?
        && lock.start_ts == start_ts
    {
        if lock.ttl_ms < ttl_ms {
            lock.ttl_ms = ttl_ms;
            batch.put(Keyspace::Locks, primary.to_vec(), lock.encode());
        }
        return Ok(TxnStatus::Locked {
            ttl_ms: lock.ttl_ms,
        });
    }
    Ok(recorded(reader, primary, start_ts)?.unwrap_or(TxnStatus::NotFound))
}
