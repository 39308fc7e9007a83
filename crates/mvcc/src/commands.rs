//! The transactional commands. Each reads through an [`MvccReader`](crate::MvccReader) and
//! adds its writes to a [`WriteBatch`](storage::WriteBatch); when a command fails, the caller
//! discards the batch, so a command applies entirely or not at all.

mod check_txn_status;
mod commit;
mod gc;
mod heartbeat;
mod one_phase;
mod pessimistic_lock;
mod prewrite;
mod resolve_lock;
mod rollback;
mod validate;

pub use check_txn_status::{TxnStatus, check_txn_status};
pub use commit::commit;
pub use gc::{GcOutcome, gc};
pub use heartbeat::heartbeat;
pub use one_phase::commit_one_phase;
pub use pessimistic_lock::{acquire_pessimistic_lock, pessimistic_lock_ts};
pub use prewrite::{TxnMeta, prewrite};
pub use resolve_lock::resolve_lock;
pub use rollback::rollback;
pub use validate::{ReadSet, validate_reads};

use base::Timestamp;
use storage::{Keyspace, ReadView, WriteBatch};

use crate::error::{Error, Result};
use crate::key;
use crate::reader::MvccReader;
use crate::record::{Latest, Version, WriteKind};

/// What a write-write conflict check found.
enum Newer {
    /// No version newer than the base: the write may proceed.
    None,
    /// The transaction already committed this key (a retried request).
    AlreadyCommitted,
}

/// Checks that no data version of `key` was committed after `base` by another transaction,
/// and that the transaction `start_ts` was not rolled back on this key.
fn check_newer<R: ReadView + ?Sized>(
    reader: &MvccReader<'_, R>,
    key: &[u8],
    start_ts: Timestamp,
    base: Timestamp,
) -> Result<Newer> {
    check_newer_below(reader, key, start_ts, base, None)
}

/// [`check_newer`], except that with `blind_below` set, versions another transaction
/// committed below that timestamp are no conflict (a blind write, which read nothing, may
/// land above them; see `commit_one_phase`).
fn check_newer_below<R: ReadView + ?Sized>(
    reader: &MvccReader<'_, R>,
    key: &[u8],
    start_ts: Timestamp,
    base: Timestamp,
    blind_below: Option<Timestamp>,
) -> Result<Newer> {
    // Nothing at or above `base`: no newer write, and no record of this transaction (its
    // records are at or above its start, and `base >= start_ts`).
    if Latest::nothing_since(reader.latest(key)?, base) {
        return Ok(Newer::None);
    }
    for item in reader.versions(key, Timestamp::MAX) {
        let (cts, v) = item?;
        if v.start_ts == start_ts {
            return match v.kind {
                WriteKind::Rollback => Err(Error::TxnAborted {
                    key: key.to_vec(),
                    start_ts,
                }),
                _ => Ok(Newer::AlreadyCommitted),
            };
        }
        if cts <= base {
            break;
        }
        if v.kind.is_data() && blind_below.is_none_or(|below| cts >= below) {
            return Err(Error::WriteConflict {
                key: key.to_vec(),
                start_ts,
                conflict_start_ts: v.start_ts,
                conflict_commit_ts: cts,
            });
        }
    }
    Ok(Newer::None)
}

/// Adds a committed version to the batch and updates the key's newest-version index
/// entry. Every version a command writes for one key has the same timestamp, so entries
/// computed from the same read view agree however many times a key is written in a batch.
fn put_version<R: ReadView + ?Sized>(
    reader: &MvccReader<'_, R>,
    batch: &mut WriteBatch,
    user_key: &[u8],
    commit_ts: Timestamp,
    v: &Version,
) -> Result<()> {
    let latest = Latest::with(reader.latest(user_key)?, commit_ts, v.kind);
    batch.put(Keyspace::Latest, user_key.to_vec(), latest.encode());
    batch.put(Keyspace::Mvcc, key::encode(user_key, commit_ts), v.encode());
    Ok(())
}

/// Adds a rollback marker for transaction `start_ts` to the batch.
fn put_rollback<R: ReadView + ?Sized>(
    reader: &MvccReader<'_, R>,
    batch: &mut WriteBatch,
    user_key: &[u8],
    start_ts: Timestamp,
) -> Result<()> {
    let v = Version {
        kind: WriteKind::Rollback,
        start_ts,
        value: Vec::new(),
    };
    put_version(reader, batch, user_key, start_ts, &v)
}
