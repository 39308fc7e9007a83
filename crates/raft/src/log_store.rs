//! The Raft log and vote of one range, in the node's storage engine.

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use openraft::OptionalSend;
use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::type_config::alias::{LogIdOf, VoteOf};
use storage::{Engine, GroupCommit, Keyspace, WriteBatch};

use crate::{Entry, TypeConfig, decode, encode, io_err, range_prefix, read_state, state_key};

const VOTE: u8 = b'v';
const COMMITTED: u8 = b'c';
const PURGED: u8 = b'p';
/// Up to how many entries a purge deletes by key without looking for them first.
const PURGE_BY_NAME: u64 = 100_000;

/// The log store of one range's replica. Cheap to clone (readers are clones).
pub struct LogStore<E: Engine> {
    range: u64,
    commit: Arc<GroupCommit<E>>,
}

impl<E: Engine> Clone for LogStore<E> {
    fn clone(&self) -> Self {
        LogStore {
            range: self.range,
            commit: self.commit.clone(),
        }
    }
}

impl<E: Engine> LogStore<E> {
    /// Returns the log store of `range` in the engine behind `commit`.
    pub fn new(range: u64, commit: Arc<GroupCommit<E>>) -> Self {
        LogStore { range, commit }
    }

    fn entry_key(&self, index: u64) -> Vec<u8> {
        let mut k = range_prefix(self.range).to_vec();
        k.extend_from_slice(&index.to_be_bytes());
        k
    }

    fn get<T: serde::de::DeserializeOwned>(&self, what: u8) -> io::Result<Option<T>> {
        read_state(self.commit.engine().as_ref(), self.range, what)
    }

    /// Writes `batch` and waits until it is durable.
    async fn durable(&self, batch: &WriteBatch) -> io::Result<()> {
        let ticket = self.commit.write(batch).map_err(io_err)?;
        self.commit.wait_async(ticket).await.map_err(io_err)
    }

    /// Deletes the entries with indexes in `[from, to]`.
    fn delete_entries(&self, batch: &mut WriteBatch, from: u64, to: u64) -> io::Result<()> {
        let (lo, hi) = (self.entry_key(from), self.entry_key(to));
        for kv in self.commit.engine().scan(
            Keyspace::RaftLog,
            Bound::Included(&lo),
            Bound::Included(&hi),
            false,
        ) {
            let (k, _) = kv.map_err(io_err)?;
            batch.delete(Keyspace::RaftLog, k);
        }
        Ok(())
    }
}

impl<E: Engine> RaftLogReader<TypeConfig> for LogStore<E> {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        let start = match range.start_bound() {
            Bound::Included(&i) => i,
            Bound::Excluded(&i) => i.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(&i) => i,
            Bound::Excluded(&0) => return Ok(Vec::new()),
            Bound::Excluded(&i) => i - 1,
            Bound::Unbounded => u64::MAX,
        };
        if start > end {
            return Ok(Vec::new());
        }
        let (lo, hi) = (self.entry_key(start), self.entry_key(end));
        let mut out = Vec::new();
        for kv in self.commit.engine().scan(
            Keyspace::RaftLog,
            Bound::Included(&lo),
            Bound::Included(&hi),
            false,
        ) {
            let (_, v) = kv.map_err(io_err)?;
            let entry: Entry = decode(&v)?;
            if entry.index() != start + out.len() as u64 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "range {}: raft log has a hole before index {}",
                        self.range,
                        entry.index()
                    ),
                ));
            }
            out.push(entry);
        }
        Ok(out)
    }

    async fn read_vote(&mut self) -> Result<Option<VoteOf<TypeConfig>>, io::Error> {
        self.get(VOTE)
    }
}

impl<E: Engine> RaftLogStorage<TypeConfig> for LogStore<E> {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let purged: Option<LogIdOf<TypeConfig>> = self.get(PURGED)?;
        let (lo, hi) = (self.entry_key(0), self.entry_key(u64::MAX));
        let last = self
            .commit
            .engine()
            .scan(
                Keyspace::RaftLog,
                Bound::Included(&lo),
                Bound::Included(&hi),
                true,
            )
            .next()
            .transpose()
            .map_err(io_err)?
            .map(|(_, v)| decode::<Entry>(&v).map(|e| e.log_id()))
            .transpose()?;
        Ok(LogState {
            last_log_id: last.or(purged),
            last_purged_log_id: purged,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &VoteOf<TypeConfig>) -> Result<(), io::Error> {
        let mut b = WriteBatch::new();
        b.put(
            Keyspace::RaftState,
            state_key(self.range, VOTE),
            encode(vote)?,
        );
        self.durable(&b).await
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogIdOf<TypeConfig>>,
    ) -> Result<(), io::Error> {
        // Not synced: after a crash the committed index is learned again from the leader.
        let mut b = WriteBatch::new();
        b.put(
            Keyspace::RaftState,
            state_key(self.range, COMMITTED),
            encode(&committed)?,
        );
        self.commit.write_unsynced(&b).map_err(io_err)
    }

    async fn read_committed(&mut self) -> Result<Option<LogIdOf<TypeConfig>>, io::Error> {
        Ok(self
            .get::<Option<LogIdOf<TypeConfig>>>(COMMITTED)?
            .flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: IOFlushed<TypeConfig>,
    ) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut b = WriteBatch::new();
        for e in entries {
            b.put(Keyspace::RaftLog, self.entry_key(e.index()), encode(&e)?);
        }
        // Visible to readers once written; acknowledged once the shared fsync covers it.
        let ticket = self.commit.write(&b).map_err(io_err)?;
        let commit = self.commit.clone();
        tokio::spawn(async move {
            callback.io_completed(commit.wait_async(ticket).await.map_err(io_err));
        });
        Ok(())
    }

    async fn truncate_after(
        &mut self,
        last_log_id: Option<LogIdOf<TypeConfig>>,
    ) -> Result<(), io::Error> {
        let from = last_log_id.map_or(0, |l| l.index() + 1);
        let mut b = WriteBatch::new();
        self.delete_entries(&mut b, from, u64::MAX)?;
        // Ordered before any later append in the engine's journal, so the append's sync
        // covers it.
        self.commit.write_unsynced(&b).map_err(io_err)
    }

    async fn purge(&mut self, log_id: LogIdOf<TypeConfig>) -> Result<(), io::Error> {
        // Entries up to the last purge are gone already; scanning them again would walk
        // every tombstone the engine still keeps for them, more with each purge.
        let purged: Option<LogIdOf<TypeConfig>> = self.get(PURGED)?;
        let from = purged.map_or(0, |p| p.index() + 1);
        let mut b = WriteBatch::new();
        b.put(
            Keyspace::RaftState,
            state_key(self.range, PURGED),
            encode(&log_id)?,
        );
        // Purges are frequent and short (openraft purges in batches as the log grows past
        // what it keeps): name the keys rather than read the entries, values and all.
        if log_id.index().saturating_sub(from) < PURGE_BY_NAME {
            for i in from..=log_id.index() {
                b.delete(Keyspace::RaftLog, self.entry_key(i));
            }
        } else {
            self.delete_entries(&mut b, from, log_id.index())?;
        }
        self.commit.write_unsynced(&b).map_err(io_err)
    }
}
