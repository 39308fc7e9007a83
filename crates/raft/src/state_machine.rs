//! The replicated state of one range: applies committed commands to the storage engine.
//!
//! A split is applied like any command, in log order, on every replica: in one batch the
//! range's span shrinks to the keys below the split key, and the new range's Raft state is
//! written as if its log started with a snapshot at [`split_log_id`] holding the keys from
//! the split key on (they are already in the engine, which all ranges of a store share),
//! with the members the range had. Once the batch is written the node is told
//! ([`StoreHooks::split`]) so it starts the new range's replica. Because every replica of
//! the new range starts from that same point, and no log entry precedes it, a replica that
//! missed the split (its range was caught up by a snapshot taken after it) is caught up by
//! snapshot, never by replaying a log it has no base for. A node must not hand a replica a
//! snapshot ([`SnapshotFile::span`]) while another of its replicas still holds part of its span:
//! a range that has not applied its split yet would later overwrite what the new range's
//! snapshot brought.

use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use futures::{Stream, TryStreamExt};
use mvcc::Span;
use openraft::storage::{EntryResponder, RaftSnapshotBuilder, RaftStateMachine, Snapshot};
use openraft::type_config::alias::{LogIdOf, SnapshotMetaOf, SnapshotOf, StoredMembershipOf};
use openraft::{EntryPayload, OptionalSend, SnapshotMeta};
use serde::{Deserialize, Serialize};
use storage::{Engine, GroupCommit, Keyspace, ReadView, WriteBatch};

use crate::command::{Split, replicated_keyspace};
use crate::snapshot::{CHUNK_BYTES, Record, SnapshotFile, SnapshotWriter};
use crate::{Command, TypeConfig, decode, encode, io_err, read_state, state_key};

const APPLIED: u8 = b'a';
/// The range's span, once it differs from the one it was created with (a split, or a
/// snapshot taken before one).
const SPAN: u8 = b'd';
/// The log store's purged log id (see `log_store`).
const PURGED: u8 = b'p';
/// A snapshot install under way: [`Installing`].
const INSTALLING: u8 = b'i';
/// The index a range made by a split starts its log after.
const SPLIT_INDEX: u64 = 10;

/// The log id a range made by a split starts from: the same on every replica.
pub fn split_log_id() -> LogIdOf<TypeConfig> {
    use openraft::vote::RaftLeaderIdExt;
    LogIdOf::<TypeConfig>::new(
        <openraft::type_config::alias::LeaderIdOf<TypeConfig>>::new_committed(0, 0),
        SPLIT_INDEX,
    )
}

/// What a replica tells its node when it applied a split: the range kept `left_span`, and
/// the new range `right` holds `right_span` (its Raft state is written; start its replica).
#[derive(Clone, Debug)]
pub struct SplitEvent {
    pub left: u64,
    pub left_span: Span,
    pub right: u64,
    pub right_span: Span,
}

/// What a replica's state machine asks of the node's store.
pub trait StoreHooks: Send + Sync + 'static {
    /// A split was applied (and written) on this replica: start the new range's replica.
    fn split(&self, event: SplitEvent);
}

/// Returns the span stored for `range`, if it changed since the range was created.
pub fn stored_span(
    view: &(impl storage::ReadView + ?Sized),
    range: u64,
) -> io::Result<Option<Span>> {
    read_state(view, range, SPAN)
}

/// Returns every range with a stored span (the ranges made by splits, and those whose
/// span a split or a snapshot changed), by id.
pub fn stored_spans(view: &(impl storage::ReadView + ?Sized)) -> io::Result<Vec<(u64, Span)>> {
    let mut out = Vec::new();
    for kv in view.scan(
        Keyspace::RaftState,
        std::ops::Bound::Unbounded,
        std::ops::Bound::Unbounded,
        false,
    ) {
        let (k, v) = kv.map_err(io_err)?;
        if k.len() == 9 && k[8] == SPAN {
            let id = u64::from_be_bytes(k[..8].try_into().expect("9-byte key"));
            out.push((id, decode(&v)?));
        }
    }
    Ok(out)
}

/// Removes every file in `dir`, the spool directory of the store behind `view`, except
/// those an interrupted snapshot install still needs: what is left there is snapshots a
/// stopped process was sending or receiving.
pub fn clean_spool_dir(view: &(impl ReadView + ?Sized), dir: &std::path::Path) -> io::Result<()> {
    let mut needed = std::collections::BTreeSet::new();
    for kv in view.scan(
        Keyspace::RaftState,
        std::ops::Bound::Unbounded,
        std::ops::Bound::Unbounded,
        false,
    ) {
        let (k, v) = kv.map_err(io_err)?;
        if k.len() == 9 && k[8] == INSTALLING {
            needed.insert(decode::<Installing>(&v)?.path);
        }
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let path = entry?.path();
        if path.is_file() && !needed.contains(&path) {
            std::fs::remove_file(&path)?;
        }
    }
    Ok(())
}

/// What was applied last, stored in the same batch as the applied writes.
#[derive(Default, Serialize, Deserialize)]
struct Applied {
    log_id: Option<LogIdOf<TypeConfig>>,
    membership: StoredMembershipOf<TypeConfig>,
}

impl Applied {
    /// The metadata of a snapshot of the state at this point.
    fn snapshot_meta(self) -> SnapshotMetaOf<TypeConfig> {
        SnapshotMeta {
            last_log_id: self.log_id,
            last_membership: self.membership,
        }
    }
}

/// A snapshot install that has begun: its file is durable, and the range's records in the
/// engine may be half replaced. Until the install's last batch removes this record, the
/// replica finishes the install from the file when it starts (`applied_state`).
#[derive(Serialize, Deserialize)]
struct Installing {
    meta: SnapshotMetaOf<TypeConfig>,
    path: PathBuf,
}

/// The state machine of one range's replica. Cheap to clone.
pub struct StateMachine<E: Engine> {
    range: u64,
    /// The user keys the range holds (shrunk by splits); snapshots carry exactly their
    /// records.
    span: Arc<RwLock<Span>>,
    commit: Arc<GroupCommit<E>>,
    /// The point of the last snapshot built or installed, if any since the replica
    /// started. Its contents are not kept: the state in the engine is the snapshot, and
    /// [`RaftStateMachine::get_current_snapshot`] reads it out, at the point applied by
    /// then, only when a snapshot is asked for (to catch a follower up). Building one (so
    /// that the log can be purged) is therefore a point read, not a copy of the range.
    snapshot: Arc<Mutex<Option<SnapshotMetaOf<TypeConfig>>>>,
    /// Where snapshot files are written.
    spool: PathBuf,
    hooks: Option<Arc<dyn StoreHooks>>,
}

impl<E: Engine> Clone for StateMachine<E> {
    fn clone(&self) -> Self {
        StateMachine {
            range: self.range,
            span: self.span.clone(),
            commit: self.commit.clone(),
            snapshot: self.snapshot.clone(),
            spool: self.spool.clone(),
            hooks: self.hooks.clone(),
        }
    }
}

impl<E: Engine> StateMachine<E> {
    /// Returns the state machine of `range`, holding the keys of `span` (the stored span,
    /// if [`stored_span`] has one), in the engine behind `commit`.
    pub fn new(range: u64, span: Span, commit: Arc<GroupCommit<E>>) -> Self {
        StateMachine {
            range,
            span: Arc::new(RwLock::new(span)),
            commit,
            snapshot: Arc::default(),
            spool: crate::snapshot::default_spool_dir(),
            hooks: None,
        }
    }

    /// Writes snapshot files (sent and received) in `dir`, on the store's disk.
    pub fn with_spool_dir(mut self, dir: PathBuf) -> Self {
        self.spool = dir;
        self
    }

    /// Tells `hooks` of splits and asks it before installing snapshots.
    pub fn with_hooks(mut self, hooks: Arc<dyn StoreHooks>) -> Self {
        self.hooks = Some(hooks);
        self
    }

    /// Returns the range's span as applied here, shared: it changes when a split or a
    /// snapshot is applied.
    pub fn span_cell(&self) -> Arc<RwLock<Span>> {
        self.span.clone()
    }

    fn span(&self) -> Span {
        self.span.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set_span(&self, span: Span) {
        *self.span.write().unwrap_or_else(|e| e.into_inner()) = span;
    }

    /// Adds the writes of `split` of `span` to `batch`: the shrunk span, and the new
    /// range's Raft state starting at [`split_log_id`] with `members`. Returns what to
    /// tell the node, or `None` if the split key is not strictly inside the span (a
    /// split proposed twice): then nothing changes.
    fn split_into(
        &self,
        batch: &mut WriteBatch,
        span: &Span,
        split: &Split,
        members: &StoredMembershipOf<TypeConfig>,
    ) -> io::Result<Option<SplitEvent>> {
        let inside = split.key > span.start && (span.end.is_empty() || split.key < span.end);
        if !inside || split.right == self.range {
            tracing::warn!(
                range = self.range,
                right = split.right,
                "split key outside the range: not split"
            );
            return Ok(None);
        }
        let left_span = Span::new(span.start.clone(), split.key.clone());
        let right_span = Span::new(split.key.clone(), span.end.clone());
        let start = split_log_id();
        let right = Applied {
            log_id: Some(start),
            membership: StoredMembershipOf::<TypeConfig>::new(
                Some(start),
                members.membership().clone(),
            ),
        };
        batch.put(
            Keyspace::RaftState,
            state_key(self.range, SPAN),
            encode(&left_span)?,
        );
        // Applied again after a crash lost the split's batch: the new range's state was
        // lost with it (the journal keeps a prefix), unless it exists, which then wins.
        let exists =
            read_state::<Applied>(self.commit.engine().as_ref(), split.right, APPLIED)?.is_some();
        if !exists {
            batch.put(
                Keyspace::RaftState,
                state_key(split.right, SPAN),
                encode(&right_span)?,
            );
            batch.put(
                Keyspace::RaftState,
                state_key(split.right, PURGED),
                encode(&start)?,
            );
            batch.put(
                Keyspace::RaftState,
                state_key(split.right, APPLIED),
                encode(&right)?,
            );
        }
        Ok(Some(SplitEvent {
            left: self.range,
            left_span,
            right: split.right,
            right_span,
        }))
    }

    fn applied(&self) -> io::Result<Applied> {
        self.applied_in(self.commit.engine().as_ref())
    }

    fn applied_in<R: ReadView + ?Sized>(&self, view: &R) -> io::Result<Applied> {
        Ok(read_state(view, self.range, APPLIED)?.unwrap_or_default())
    }

    fn put_applied(&self, batch: &mut WriteBatch, applied: &Applied) -> io::Result<()> {
        put_applied(batch, self.range, applied)
    }

    /// Calls `f` with every replicated record of the keys of `span` in `view`.
    fn each_record<R: ReadView + ?Sized>(
        view: &R,
        span: &Span,
        mut f: impl FnMut(Record) -> io::Result<()>,
    ) -> io::Result<()> {
        for &ks in Command::replicated_keyspaces() {
            let (start, end) = mvcc::key::keyspace_bounds(ks, span);
            let (start, end) = (
                start.as_ref().map(Vec::as_slice),
                end.as_ref().map(Vec::as_slice),
            );
            for kv in view.scan(ks, start, end, false) {
                let (k, v) = kv.map_err(io_err)?;
                f((ks.index() as u8, k, v))?;
            }
        }
        Ok(())
    }

    /// Installs `file` (the state at `meta`): its records are written off the async
    /// threads ([`write_install`] through [`crate::blocking`]), then the last batch is
    /// waited for. The file is handed back (kept: the caller removes it once the install
    /// is done).
    async fn install_from(
        &self,
        meta: &SnapshotMetaOf<TypeConfig>,
        file: SnapshotFile,
    ) -> io::Result<SnapshotFile> {
        let span = file.span().clone();
        let applied = Applied {
            log_id: meta.last_log_id,
            membership: meta.last_membership.clone(),
        };
        let (commit, range) = (self.commit.clone(), self.range);
        let (file, ticket) = crate::blocking(move || {
            let ticket = write_install(&commit, range, &applied, &file);
            (file, ticket)
        })
        .await
        .map_err(|e| io::Error::other(format!("range {range}: installing a snapshot: {e}")))?;
        self.commit.wait_async(ticket?).await.map_err(io_err)?;
        self.set_span(span);
        Ok(file)
    }

    /// Finishes a snapshot install a crash interrupted, if there is one.
    async fn finish_interrupted_install(&self) -> io::Result<()> {
        let Some(installing) =
            read_state::<Installing>(self.commit.engine().as_ref(), self.range, INSTALLING)?
        else {
            return Ok(());
        };
        let mut file = SnapshotFile::open(&installing.path).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "range {}: an interrupted snapshot install cannot be finished: {e}",
                    self.range
                ),
            )
        })?;
        file.keep();
        tracing::info!(
            range = self.range,
            path = %installing.path.display(),
            "finishing a snapshot install a restart interrupted"
        );
        let file = self.install_from(&installing.meta, file).await?;
        file.remove();
        Ok(())
    }
}

/// Adds range `range`'s applied point to `batch`.
fn put_applied(batch: &mut WriteBatch, range: u64, applied: &Applied) -> io::Result<()> {
    batch.put(
        Keyspace::RaftState,
        state_key(range, APPLIED),
        encode(applied)?,
    );
    Ok(())
}

/// Writes `batch` to the engine once it holds about a chunk.
fn flush_full<E: Engine>(commit: &GroupCommit<E>, batch: &mut WriteBatch) -> io::Result<()> {
    if batch.size_bytes() >= CHUNK_BYTES {
        commit
            .write_unsynced(&std::mem::take(batch))
            .map_err(io_err)?;
    }
    Ok(())
}

/// Writes `file` as range `range`'s state in batches of about a chunk: every record of the
/// snapshot's span is replaced, then the span and `applied` are written with the removal
/// of the [`Installing`] record, which must already be durable. Returns the last batch's
/// ticket. Blocking: reads the file and writes the engine.
fn write_install<E: Engine>(
    commit: &GroupCommit<E>,
    range: u64,
    applied: &Applied,
    file: &SnapshotFile,
) -> io::Result<storage::Ticket> {
    let span = file.span().clone();
    let mut batch = WriteBatch::new();
    // The snapshot's span is the range's at the snapshot's point (wider than ours if it
    // predates a split we applied, narrower if it follows one we missed): its keys are
    // replaced; keys of ours outside it belong to other ranges now.
    let view = commit.engine().snapshot();
    StateMachine::<E>::each_record(&view, &span, |(ks, k, _)| {
        batch.delete(Keyspace::ALL[usize::from(ks)], k);
        flush_full(commit, &mut batch)
    })?;
    drop(view);
    file.for_each_chunk(|records| {
        for (ks, k, v) in records {
            batch.put(replicated_keyspace(ks, "snapshot")?, k, v);
        }
        flush_full(commit, &mut batch)
    })?;
    batch.put(Keyspace::RaftState, state_key(range, SPAN), encode(&span)?);
    put_applied(&mut batch, range, applied)?;
    batch.delete(Keyspace::RaftState, state_key(range, INSTALLING));
    commit.write(&batch).map_err(io_err)
}

impl<E: Engine> RaftSnapshotBuilder<TypeConfig> for StateMachine<E> {
    type SnapshotData = SnapshotFile;

    async fn build_snapshot(&mut self) -> Result<SnapshotOf<TypeConfig, SnapshotFile>, io::Error> {
        // Everything applied is in the engine: the snapshot is the state as applied now.
        // Openraft keeps only the metadata of a built snapshot (to purge the log up to
        // it); the contents are read when one is sent (`get_current_snapshot`).
        let applied = self.applied()?;
        let meta = applied.snapshot_meta();
        let mut current = self.snapshot.lock().unwrap_or_else(|e| e.into_inner());
        if current
            .as_ref()
            .is_none_or(|m| m.last_log_id <= meta.last_log_id)
        {
            *current = Some(meta.clone());
        }
        drop(current);
        Ok(Snapshot {
            meta,
            snapshot: SnapshotFile::none(),
        })
    }
}

impl<E: Engine> RaftStateMachine<TypeConfig> for StateMachine<E> {
    type SnapshotData = SnapshotFile;
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogIdOf<TypeConfig>>, StoredMembershipOf<TypeConfig>), io::Error> {
        // Openraft asks this first when the replica starts.
        self.finish_interrupted_install().await?;
        let a = self.applied()?;
        Ok((a.log_id, a.membership))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + OptionalSend,
    {
        let mut applied = self.applied()?;
        let mut batch = WriteBatch::new();
        let mut responders = Vec::new();
        let mut span = self.span();
        let mut splits = Vec::new();
        while let Some((entry, responder)) = entries.try_next().await? {
            match entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(cmd) => {
                    cmd.add_to(&mut batch)?;
                    if let Some(split) = cmd.as_split()
                        && let Some(event) =
                            self.split_into(&mut batch, &span, split, &applied.membership)?
                    {
                        span = event.left_span.clone();
                        splits.push(event);
                    }
                }
                EntryPayload::Membership(m) => {
                    applied.membership =
                        StoredMembershipOf::<TypeConfig>::new(Some(entry.log_id), m);
                }
            }
            applied.log_id = Some(entry.log_id);
            responders.extend(responder);
        }
        self.put_applied(&mut batch, &applied)?;
        // Not synced (see the crate's doc): the log entries are durable already.
        self.commit.write_unsynced(&batch).map_err(io_err)?;
        if !splits.is_empty() {
            self.set_span(span);
            for event in splits {
                tracing::info!(range = event.left, right = event.right, "range split");
                if let Some(hooks) = &self.hooks {
                    hooks.split(event);
                }
            }
        }
        for r in responders {
            r.send(());
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMetaOf<TypeConfig>,
        mut snapshot: SnapshotFile,
    ) -> Result<(), io::Error> {
        // The file is durable (`SnapshotReceiver::finish`); once this record is, a crash
        // anywhere below is finished from the file at the next start.
        let installing = Installing {
            meta: meta.clone(),
            path: snapshot.path()?.to_path_buf(),
        };
        snapshot.keep();
        let mut batch = WriteBatch::new();
        batch.put(
            Keyspace::RaftState,
            state_key(self.range, INSTALLING),
            encode(&installing)?,
        );
        let ticket = self.commit.write(&batch).map_err(io_err)?;
        self.commit.wait_async(ticket).await.map_err(io_err)?;
        let snapshot = self.install_from(meta, snapshot).await?;
        snapshot.remove();
        *self.snapshot.lock().unwrap_or_else(|e| e.into_inner()) = Some(meta.clone());
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<SnapshotOf<TypeConfig, SnapshotFile>>, io::Error> {
        if self
            .snapshot
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_none()
        {
            return Ok(None);
        }
        // Read at the point applied now, which is at or after the last snapshot built:
        // a newer snapshot serves every purpose of an older one. The applied point and
        // the records come from one engine snapshot, so they agree even while entries
        // keep being applied. The records go to a file (off the async threads, see
        // `crate::blocking`), which is streamed to the follower: the range is never in
        // memory.
        let view = self.commit.engine().snapshot();
        let applied = self.applied_in(&view)?;
        let span = match stored_span(&view, self.range)? {
            Some(s) => s,
            None => self.span(),
        };
        let (dir, range) = (self.spool.clone(), self.range);
        let file = crate::blocking(move || {
            let mut w = SnapshotWriter::create(&dir, range, span.clone())?;
            Self::each_record(&view, &span, |r| w.push(r))?;
            w.finish()
        })
        .await
        .map_err(io_err)??;
        Ok(Some(Snapshot {
            meta: applied.snapshot_meta(),
            snapshot: file,
        }))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use openraft::type_config::alias::LeaderIdOf;
    use openraft::vote::RaftLeaderIdExt;
    use storage::MemoryEngine;

    use super::*;

    fn machine(spool: &std::path::Path) -> StateMachine<MemoryEngine> {
        let commit = Arc::new(GroupCommit::new(Arc::new(MemoryEngine::new())));
        StateMachine::new(5, Span::default(), commit).with_spool_dir(spool.to_path_buf())
    }

    /// Puts `n` records of `value_len` bytes, keys `{tag}{i}`, in a replicated keyspace.
    fn put(sm: &StateMachine<MemoryEngine>, tag: &str, n: usize, value_len: usize) {
        let mut batch = WriteBatch::new();
        for i in 0..n {
            batch.put(
                Keyspace::Locks,
                format!("{tag}{i:05}").into_bytes(),
                vec![i as u8; value_len],
            );
        }
        sm.commit.write(&batch).unwrap();
    }

    fn records(sm: &StateMachine<MemoryEngine>) -> Vec<Record> {
        let mut out = Vec::new();
        StateMachine::<MemoryEngine>::each_record(
            sm.commit.engine().as_ref(),
            &Span::default(),
            |r| {
                out.push(r);
                Ok(())
            },
        )
        .unwrap();
        out
    }

    /// A snapshot of a machine holding 3,000 records of 1 KiB (several file chunks) at
    /// log index 42.
    async fn snapshot(
        spool: &std::path::Path,
    ) -> (
        StateMachine<MemoryEngine>,
        SnapshotOf<TypeConfig, SnapshotFile>,
    ) {
        let mut a = machine(spool);
        put(&a, "k", 3_000, 1_000);
        let log_id = LogIdOf::<TypeConfig>::new(LeaderIdOf::<TypeConfig>::new_committed(1, 1), 42);
        let mut batch = WriteBatch::new();
        a.put_applied(
            &mut batch,
            &Applied {
                log_id: Some(log_id),
                membership: StoredMembershipOf::<TypeConfig>::default(),
            },
        )
        .unwrap();
        a.commit.write(&batch).unwrap();
        a.build_snapshot().await.unwrap();
        let snap = a.get_current_snapshot().await.unwrap().unwrap();
        assert_eq!(snap.meta.last_log_id, Some(log_id));
        (a, snap)
    }

    #[tokio::test]
    async fn a_snapshot_install_replaces_the_range_and_leaves_no_file() {
        let spool = tempfile::tempdir().unwrap();
        let (a, snap) = snapshot(spool.path()).await;
        let mut b = machine(spool.path());
        put(&b, "k", 10, 3);
        put(&b, "old", 100, 10);
        b.install_snapshot(&snap.meta, snap.snapshot).await.unwrap();
        assert_eq!(records(&b), records(&a));
        assert_eq!(b.applied_state().await.unwrap().0, snap.meta.last_log_id);
        let left: Vec<_> = std::fs::read_dir(spool.path()).unwrap().collect();
        assert!(left.is_empty(), "files left behind: {left:?}");
    }

    #[tokio::test]
    async fn an_install_cut_short_by_a_crash_is_finished_at_the_next_start() {
        let spool = tempfile::tempdir().unwrap();
        let (a, mut snap) = snapshot(spool.path()).await;
        // Node B crashed part-way through installing: its marker is durable, some old
        // records are deleted and some new ones written.
        let b = machine(spool.path());
        put(&b, "old", 100, 10);
        put(&b, "k", 1_000, 1_000);
        let mut batch = WriteBatch::new();
        batch.put(
            Keyspace::RaftState,
            state_key(5, INSTALLING),
            encode(&Installing {
                meta: snap.meta.clone(),
                path: snap.snapshot.path().unwrap().to_path_buf(),
            })
            .unwrap(),
        );
        for i in 0..50 {
            batch.delete(Keyspace::Locks, format!("old{i:05}").into_bytes());
        }
        b.commit.write(&batch).unwrap();
        snap.snapshot.keep();
        let path = snap.snapshot.path().unwrap().to_path_buf();
        drop(snap.snapshot);
        assert!(path.exists());
        // The leftovers of the spool directory are cleaned, but not the file it needs.
        std::fs::write(spool.path().join("r9-1-1.in.snap"), b"partial").unwrap();
        clean_spool_dir(b.commit.engine().as_ref(), spool.path()).unwrap();
        let left: Vec<_> = std::fs::read_dir(spool.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(left, vec![path.clone()]);

        // Restarted: the first thing Raft asks finishes the install.
        let mut b = StateMachine::new(5, Span::default(), b.commit.clone())
            .with_spool_dir(spool.path().to_path_buf());
        let (applied, _) = b.applied_state().await.unwrap();
        assert_eq!(applied, snap.meta.last_log_id);
        assert_eq!(records(&b), records(&a));
        assert!(
            read_state::<Installing>(b.commit.engine().as_ref(), 5, INSTALLING)
                .unwrap()
                .is_none()
        );
        assert!(!path.exists(), "the install's file was kept");

        // A marker whose file is gone: the replica refuses to start, saying why.
        let mut batch = WriteBatch::new();
        batch.put(
            Keyspace::RaftState,
            state_key(5, INSTALLING),
            encode(&Installing {
                meta: snap.meta.clone(),
                path: path.clone(),
            })
            .unwrap(),
        );
        b.commit.write(&batch).unwrap();
        let err = b.applied_state().await.unwrap_err();
        assert!(err.to_string().contains("cannot be finished"), "{err}");
    }
}
