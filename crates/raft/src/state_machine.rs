//! The replicated state of one range: applies committed commands to the storage engine.

use std::io;
use std::sync::{Arc, Mutex};

use futures::{Stream, TryStreamExt};
use mvcc::Span;
use openraft::storage::{EntryResponder, RaftSnapshotBuilder, RaftStateMachine, Snapshot};
use openraft::type_config::alias::{LogIdOf, SnapshotMetaOf, SnapshotOf, StoredMembershipOf};
use openraft::{EntryPayload, OptionalSend, SnapshotMeta};
use serde::{Deserialize, Serialize};
use storage::{Engine, GroupCommit, Keyspace, ReadView, WriteBatch};

use crate::command::replicated_keyspace;
use crate::{Command, TypeConfig, decode, encode, io_err, read_state, state_key};

const APPLIED: u8 = b'a';

/// What was applied last, stored in the same batch as the applied writes.
#[derive(Default, Serialize, Deserialize)]
struct Applied {
    log_id: Option<LogIdOf<TypeConfig>>,
    membership: StoredMembershipOf<TypeConfig>,
}

/// A replicated record: keyspace index, key, value.
type Record = (u8, Vec<u8>, Vec<u8>);

/// A snapshot's metadata and encoded contents.
type StoredSnapshot = (SnapshotMetaOf<TypeConfig>, Vec<u8>);

/// The contents of a snapshot: every replicated record of the range.
#[derive(Serialize, Deserialize)]
struct SnapshotData {
    records: Vec<Record>,
}

/// The state machine of one range's replica. Cheap to clone.
pub struct StateMachine<E: Engine> {
    range: u64,
    /// The user keys the range holds; snapshots carry exactly their records.
    span: Span,
    commit: Arc<GroupCommit<E>>,
    /// The last snapshot built or installed (rebuilt from the data after a restart).
    snapshot: Arc<Mutex<Option<StoredSnapshot>>>,
}

impl<E: Engine> Clone for StateMachine<E> {
    fn clone(&self) -> Self {
        StateMachine {
            range: self.range,
            span: self.span.clone(),
            commit: self.commit.clone(),
            snapshot: self.snapshot.clone(),
        }
    }
}

impl<E: Engine> StateMachine<E> {
    /// Returns the state machine of `range`, holding the keys of `span`, in the engine
    /// behind `commit`.
    pub fn new(range: u64, span: Span, commit: Arc<GroupCommit<E>>) -> Self {
        StateMachine {
            range,
            span,
            commit,
            snapshot: Arc::default(),
        }
    }

    fn applied(&self) -> io::Result<Applied> {
        self.applied_in(self.commit.engine().as_ref())
    }

    fn applied_in<R: ReadView + ?Sized>(&self, view: &R) -> io::Result<Applied> {
        Ok(read_state(view, self.range, APPLIED)?.unwrap_or_default())
    }

    fn put_applied(&self, batch: &mut WriteBatch, applied: &Applied) -> io::Result<()> {
        batch.put(
            Keyspace::RaftState,
            state_key(self.range, APPLIED),
            encode(applied)?,
        );
        Ok(())
    }

    /// Returns every replicated record of the range's keys.
    fn records_in<R: ReadView + ?Sized>(&self, view: &R) -> io::Result<Vec<Record>> {
        let mut out = Vec::new();
        for &ks in Command::replicated_keyspaces() {
            let (start, end) = mvcc::key::keyspace_bounds(ks, &self.span);
            let (start, end) = (
                start.as_ref().map(Vec::as_slice),
                end.as_ref().map(Vec::as_slice),
            );
            for kv in view.scan(ks, start, end, false) {
                let (k, v) = kv.map_err(io_err)?;
                out.push((ks.index() as u8, k, v));
            }
        }
        Ok(out)
    }
}

impl<E: Engine> RaftSnapshotBuilder<TypeConfig> for StateMachine<E> {
    type SnapshotData = Vec<u8>;

    async fn build_snapshot(&mut self) -> Result<SnapshotOf<TypeConfig, Vec<u8>>, io::Error> {
        // The applied state and the records are read from one engine snapshot, so they
        // agree even while entries keep being applied.
        let view = self.commit.engine().snapshot();
        let applied = self.applied_in(&view)?;
        let data = encode(&SnapshotData {
            records: self.records_in(&view)?,
        })?;
        let meta = SnapshotMeta {
            last_log_id: applied.log_id,
            last_membership: applied.membership,
        };
        *self.snapshot.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((meta.clone(), data.clone()));
        Ok(Snapshot {
            meta,
            snapshot: data,
        })
    }
}

impl<E: Engine> RaftStateMachine<TypeConfig> for StateMachine<E> {
    type SnapshotData = Vec<u8>;
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogIdOf<TypeConfig>>, StoredMembershipOf<TypeConfig>), io::Error> {
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
        while let Some((entry, responder)) = entries.try_next().await? {
            match entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(cmd) => cmd.add_to(&mut batch)?,
                EntryPayload::Membership(m) => {
                    applied.membership =
                        StoredMembershipOf::<TypeConfig>::new(Some(entry.log_id), m);
                }
            }
            applied.log_id = Some(entry.log_id);
            responders.extend(responder);
        }
        self.put_applied(&mut batch, &applied)?;
        self.commit.write(&batch).map_err(io_err)?;
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
        snapshot: Vec<u8>,
    ) -> Result<(), io::Error> {
        let data: SnapshotData = decode(&snapshot)?;
        let mut batch = WriteBatch::new();
        for (ks, k, _) in self.records_in(self.commit.engine().as_ref())? {
            batch.delete(Keyspace::ALL[usize::from(ks)], k);
        }
        for (ks, k, v) in data.records {
            batch.put(replicated_keyspace(ks, "snapshot")?, k, v);
        }
        let applied = Applied {
            log_id: meta.last_log_id,
            membership: meta.last_membership.clone(),
        };
        self.put_applied(&mut batch, &applied)?;
        let ticket = self.commit.write(&batch).map_err(io_err)?;
        self.commit.wait_async(ticket).await.map_err(io_err)?;
        *self.snapshot.lock().unwrap_or_else(|e| e.into_inner()) = Some((meta.clone(), snapshot));
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<SnapshotOf<TypeConfig, Vec<u8>>>, io::Error> {
        let snap = self
            .snapshot
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        Ok(snap.map(|(meta, snapshot)| Snapshot { meta, snapshot }))
    }
}
