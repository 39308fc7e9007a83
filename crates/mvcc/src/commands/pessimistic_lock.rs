//! Pessimistic locks: taken when a transaction reads a key for update.

use base::Timestamp;
use storage::{Keyspace, ReadView, WriteBatch};

use super::{Newer, check_newer};
use crate::error::{Error, Result};
use crate::reader::{MvccReader, lock_info};
use crate::record::{Lock, LockKind};

/// Returns the timestamp a lock on `key` asked for at `for_update_ts` is taken at: that one,
/// or the commit timestamp of the key's newest data version if it is newer. Locking there
/// returns the newest value instead of failing with `WriteConflict`: the lock is taken under
/// latches, so no version can land between that timestamp and the lock (TiKV's "lock with
/// conflict"). The transaction then reads at that timestamp, which the oracle handed out
/// before, so its snapshot misses no commit below it.
pub fn pessimistic_lock_ts<R: ReadView + ?Sized>(
    reader: &MvccReader<'_, R>,
    key: &[u8],
    for_update_ts: Timestamp,
) -> Result<Timestamp> {
    Ok(match reader.latest(key)?.and_then(|l| l.data) {
        Some((ts, _)) if ts > for_update_ts => ts,
        _ => for_update_ts,
    })
}

/// Locks `key` for transaction `txn` at `for_update_ts` and returns the key's latest value.
///
/// The lock keeps other writers out, so the value read cannot change before the
/// transaction commits; readers are not blocked. Fails with `KeyIsLocked` on another
/// transaction's lock and with `WriteConflict` if a version was committed after
/// `for_update_ts` (retry with a newer one).
pub fn acquire_pessimistic_lock<R: ReadView + ?Sized>(
    reader: &MvccReader<'_, R>,
    batch: &mut WriteBatch,
    key: &[u8],
    txn: &super::TxnMeta,
    for_update_ts: Timestamp,
) -> Result<Option<Vec<u8>>> {
    if key.len() > base::MAX_KEY_LEN {
        return Err(Error::KeyTooLarge {
            len: key.len(),
            max: base::MAX_KEY_LEN,
        });
    }
    let mut for_update_ts = for_update_ts.max(txn.start_ts);
    match reader.lock(key)? {
        Some(l) if l.start_ts == txn.start_ts => {
            if l.kind != LockKind::Pessimistic {
                // Already prewritten by this transaction: nothing more to lock.
                return Ok(if l.kind == LockKind::Put {
                    Some(l.value)
                } else {
                    None
                });
            }
            for_update_ts = for_update_ts.max(l.for_update_ts);
        }
        Some(l) => return Err(Error::KeyIsLocked(Box::new(lock_info(key, &l)))),
        None => {}
    }
    if let Newer::AlreadyCommitted = check_newer(reader, key, txn.start_ts, for_update_ts)? {
        return Err(Error::TxnAborted {
            key: key.to_vec(),
            start_ts: txn.start_ts,
        });
    }
    let value = reader.value_at(key, for_update_ts)?;
    let lock = Lock {
        kind: LockKind::Pessimistic,
        primary: txn.primary.clone(),
        start_ts: txn.start_ts,
        for_update_ts,
        ttl_ms: txn.lock_ttl_ms,
        value: Vec::new(),
    };
    batch.put(Keyspace::Locks, key.to_vec(), lock.encode());
    Ok(value)
}
