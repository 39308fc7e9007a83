//! Prewrite: the first phase of a two-phase commit.

use base::Timestamp;
use storage::{Keyspace, ReadView, WriteBatch};

use super::{Newer, check_newer};
use crate::error::{Error, Result};
use crate::reader::{MvccReader, lock_info};
use crate::record::{Lock, LockKind, Mutation};

/// What every lock of a transaction records about it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TxnMeta {
    pub start_ts: Timestamp,
    /// The key whose lock or commit record decides the transaction's fate.
    pub primary: Vec<u8>,
    /// How long (ms after `start_ts`) the locks are protected from resolvers.
    pub lock_ttl_ms: u64,
}

/// Locks every mutated key for the transaction, storing the new values in the locks.
///
/// Fails with `KeyIsLocked` on another transaction's lock, `WriteConflict` on a version
/// committed after the transaction's start (or after its pessimistic lock on the key), and
/// `TxnAborted` if the transaction was already rolled back. A retried prewrite of a key the
/// transaction already locked or committed is a no-op.
pub fn prewrite<R: ReadView + ?Sized>(
    reader: &MvccReader<'_, R>,
    batch: &mut WriteBatch,
    txn: &TxnMeta,
    mutations: Vec<Mutation>,
) -> Result<()> {
    for m in mutations {
        m.validate()?;
        let key = m.key();
        let mut base = txn.start_ts;
        match reader.lock(key)? {
            Some(l) if l.start_ts == txn.start_ts => {
                if l.kind != LockKind::Pessimistic {
                    continue;
                }
                base = l.conflict_ts();
            }
            Some(l) => return Err(Error::KeyIsLocked(Box::new(lock_info(key, &l)))),
            None => {}
        }
        if let Newer::AlreadyCommitted = check_newer(reader, key, txn.start_ts, base)? {
            continue;
        }
        let kind = m.lock_kind();
        let key = key.to_vec();
        let value = match m {
            Mutation::Put { value, .. } => value,
            _ => Vec::new(),
        };
        let lock = Lock {
            kind,
            primary: txn.primary.clone(),
            start_ts: txn.start_ts,
            for_update_ts: if base > txn.start_ts {
                base
            } else {
                Timestamp::ZERO
            },
            ttl_ms: txn.lock_ttl_ms,
            value,
        };
        batch.put(Keyspace::Locks, key, lock.encode());
    }
    Ok(())
}
