//! Check-transaction-status: what a reader or writer that met a lock asks the primary.

use base::Timestamp;
use storage::{Keyspace, ReadView, WriteBatch};

use super::put_rollback;
use crate::error::Result;
use crate::reader::MvccReader;
use crate::record::{LockKind, WriteKind};

/// The fate of a transaction, as its primary key tells it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum TxnStatus {
    /// Committed at this timestamp: roll its other locks forward.
    Committed(Timestamp),
    /// Rolled back (now, because its lock expired, or earlier): roll its other locks back.
    RolledBack,
    /// Still running: its primary lock is alive for `ttl_ms` after its start.
    Locked { ttl_ms: u64 },
    /// No trace of the transaction on its primary, and the caller did not ask to roll it
    /// back: its prewrite may still be on its way.
    NotFound,
    /// The key asked holds a prewritten lock of the transaction naming another key as its
    /// primary: the transaction moved its primary when it committed (see
    /// `txn::Transaction`), and its fate is on `primary`. Asked there instead.
    Moved { primary: Vec<u8> },
}

/// Returns the status of transaction `start_ts` from its `primary` key, at time `now`.
///
/// A primary lock whose TTL has run out is rolled back, so the transaction can no longer
/// commit. If there is no trace of the transaction and `rollback_if_missing`, a rollback
/// marker is written so that its prewrite, if it arrives later, fails.
///
/// A prewritten lock that names another primary is not the transaction's to judge here (it
/// is a secondary: rolling it back would undo part of a transaction that may have
/// committed on its primary): the answer is `Moved`. A pessimistic lock is judged where it
/// is asked, whatever primary it names: it was taken before the transaction chose its
/// final primary, and is asked either as the first primary or as the new one, whose lock it
/// is until the prewrite replaces it.
pub fn check_txn_status<R: ReadView + ?Sized>(
    reader: &MvccReader<'_, R>,
    batch: &mut WriteBatch,
    primary: &[u8],
    start_ts: Timestamp,
    now: Timestamp,
    rollback_if_missing: bool,
) -> Result<TxnStatus> {
    if let Some(lock) = reader.lock(primary)?
        && lock.start_ts == start_ts
    {
        if lock.kind != LockKind::Pessimistic && lock.primary != primary {
            return Ok(TxnStatus::Moved {
                primary: lock.primary,
            });
        }
        if lock.is_expired(now) {
            batch.delete(Keyspace::Locks, primary.to_vec());
            put_rollback(reader, batch, primary, start_ts)?;
            return Ok(TxnStatus::RolledBack);
        }
        return Ok(TxnStatus::Locked {
            ttl_ms: lock.ttl_ms,
        });
    }
    Ok(match recorded(reader, primary, start_ts)? {
        Some(status) => status,
        None if rollback_if_missing => {
            put_rollback(reader, batch, primary, start_ts)?;
            TxnStatus::RolledBack
        }
        None => TxnStatus::NotFound,
    })
}

/// Returns the fate of transaction `start_ts` as recorded on its `primary` key once its
/// lock is gone: committed or rolled back, or `None` if there is no record.
pub(super) fn recorded<R: ReadView + ?Sized>(
    reader: &MvccReader<'_, R>,
    primary: &[u8],
    start_ts: Timestamp,
) -> Result<Option<TxnStatus>> {
    Ok(reader
        .txn_record(primary, start_ts)?
        .map(|(commit_ts, v)| match v.kind {
            WriteKind::Rollback => TxnStatus::RolledBack,
            _ => TxnStatus::Committed(commit_ts),
        }))
}
