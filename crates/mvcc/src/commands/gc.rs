//! Garbage collection of old versions.

use std::ops::Bound;

use base::Timestamp;
use storage::{Keyspace, ReadView, WriteBatch};

use crate::error::Result;
use crate::key;
use crate::reader::{MvccReader, Span};
use crate::record::{Version, WriteKind};

/// What one GC pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
    let mut key = KeyGc::default();
    for kv in reader
        .view()
        .scan(Keyspace::Mvcc, Bound::Included(&lo), hi_bound, false)
    {
        let (k, v) = kv?;
        let (prefix, cts) = key::split(&k)?;
        if prefix != key.prefix.as_slice() {
            key.finish(reader, batch)?;
            if out.keys_scanned == max_keys {
                out.resume = Some(key::user_key(prefix)?);
                break;
            }
            key = KeyGc {
                prefix: prefix.to_vec(),
                ..KeyGc::default()
            };
            out.keys_scanned += 1;
        }
        key.versions += 1;
        if cts > safe_point {
            continue;
        }
        let delete = if key.seen_visible {
            true
        } else {
            match Version::decode(&k, &v)?.kind {
                WriteKind::Put => {
                    key.seen_visible = true;
                    false
                }
                WriteKind::Delete => {
                    key.seen_visible = true;
                    key.deleted_data = Some(cts);
                    true
                }
                WriteKind::Lock | WriteKind::Rollback => true,
            }
        };
        if delete {
            batch.delete(Keyspace::Mvcc, k);
            key.deleted += 1;
            out.versions_deleted += 1;
        }
    }
    if out.resume.is_none() {
        key.finish(reader, batch)?;
    }
    Ok(out)
}

/// The collection of one key's versions, to bring its newest-version index entry in line.
#[derive(Default)]
struct KeyGc {
    prefix: Vec<u8>,
    versions: usize,
    deleted: usize,
    seen_visible: bool,
    /// The timestamp of a collected delete (the newest data version at or below the safe
    /// point; older data versions go with it).
    deleted_data: Option<Timestamp>,
}

impl KeyGc {
    fn finish<R: ReadView + ?Sized>(
        &self,
        reader: &MvccReader<'_, R>,
        batch: &mut WriteBatch,
    ) -> Result<()> {
        if self.deleted == 0 {
            return Ok(());
        }
        let user_key = key::user_key(&self.prefix)?;
        if self.deleted == self.versions {
            batch.delete(Keyspace::Latest, user_key);
            return Ok(());
        }
        if let Some(mut latest) = reader.latest(&user_key)?
            && latest
                .data
                .is_some_and(|(ts, _)| Some(ts) == self.deleted_data)
        {
            latest.data = None;
            batch.put(Keyspace::Latest, user_key, latest.encode());
        }
        Ok(())
    }
}
