//! Garbage collection of old versions.

use std::ops::Bound;

use base::Timestamp;
use storage::{Keyspace, ReadView, WriteBatch};

use crate::error::Result;
use crate::key;
use crate::reader::{MvccReader, Span};
use crate::record::{Version, WriteKind};

/// What one GC pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GcOutcome {
    pub keys_scanned: usize,
    pub versions_deleted: usize,
    /// Where the next pass should start, if `max_keys` stopped this one.
    pub resume: Option<Vec<u8>>,
}

/// Deletes the versions in `span` that no read at or after `safe_point` can see: for each
/// key, everything older than its newest version at or below the safe point, that version
/// too if it is a delete, and rollback and lock markers at or below the safe point.
/// Stops after `max_keys` keys.
///
/// The caller picks a safe point at or below the start timestamp of every running
/// transaction, so no reader loses its snapshot.
pub fn gc<R: ReadView + ?Sized>(
    reader: &MvccReader<'_, R>,
    batch: &mut WriteBatch,
    span: &Span,
    safe_point: Timestamp,
    max_keys: usize,
) -> Result<GcOutcome> {
    let lo = key::prefix(&span.start);
    let hi = (!span.end.is_empty()).then(|| key::prefix(&span.end));
    let hi_bound = hi.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
    let mut out = GcOutcome::default();
    let mut current: Vec<u8> = Vec::new();
    let mut seen_visible = false;
    for kv in reader
        .view()
        .scan(Keyspace::Mvcc, Bound::Included(&lo), hi_bound, false)
    {
        let (k, v) = kv?;
        let (prefix, cts) = key::split(&k)?;
        if prefix != current.as_slice() {
            if out.keys_scanned == max_keys {
                out.resume = Some(key::user_key(prefix)?);
                break;
            }
            current.clear();
            current.extend_from_slice(prefix);
            seen_visible = false;
            out.keys_scanned += 1;
        }
        if cts > safe_point {
            continue;
        }
        let delete = if seen_visible {
            true
        } else {
            match Version::decode(&k, &v)?.kind {
                WriteKind::Put => {
                    seen_visible = true;
                    false
                }
                WriteKind::Delete => {
                    seen_visible = true;
                    true
                }
                WriteKind::Lock | WriteKind::Rollback => true,
            }
        };
        if delete {
            batch.delete(Keyspace::Mvcc, k);
            out.versions_deleted += 1;
        }
    }
    Ok(out)
}
