//! Replicas of a range on Raft (openraft 0.10).
//!
//! A range's replica is one Raft group member whose log, vote and state machine live in the
//! node's storage engine:
//!
//! ```text
//!  raft_log   keyspace  range_id ++ index              -> Entry (postcard)
//!  raft_state keyspace  range_id ++ b"v"               -> Vote (durable before it is acted on)
//!                       range_id ++ b"c" / b"p"        -> committed / purged log id
//!                       range_id ++ b"a"               -> applied log id + membership
//!                       range_id ++ b"d"               -> span, once a split changed it
//! ```
//!
//! Commands are *proposer-evaluated*: the leaseholder runs the MVCC commands of a request
//! against its own state under latches and proposes the resulting [`Command`] (the write
//! batch); every replica applies the same batch. Log appends are durable through the
//! node's [`storage::GroupCommit`] (so the appends of many groups share one fsync); applying
//! is not synced, because a crash loses only a suffix of applied batches together with the
//! applied index written in the same batch, and Raft re-applies them from the log.
//!
//! All ranges of a store share its engine: a range's data is the records of its span in
//! the `mvcc`, `locks` and `latest` keyspaces, so a split moves no data (see
//! [`StateMachine`]). [`network::LocalNetwork`] is an in-process network with link filters
//! for tests; the node's gRPC transport lives in the `kv` crate.

mod command;
mod log_store;
pub mod network;
mod runtime;
mod snapshot;
mod state_machine;

use std::io;

pub use command::{Command, Split};
pub use log_store::LogStore;
pub use runtime::{Runtime, seed_thread_rng};
pub use snapshot::{CHUNK_BYTES, Pieces, SnapshotFile, SnapshotReceiver, default_spool_dir};
pub use state_machine::{
    SplitEvent, StateMachine, StoreHooks, clean_spool_dir, split_log_id, stored_span, stored_spans,
};

openraft::declare_raft_types!(
    /// Tessera's Raft types: node ids are `u64`, commands are write batches, the runtime is
    /// tokio with a seedable random source ([`Runtime`]).
    pub TypeConfig:
        D = Command,
        R = (),
        AsyncRuntime = Runtime,
);

/// A replica's Raft handle.
pub type Raft<E> = openraft::Raft<TypeConfig, StateMachine<E>>;

/// A log entry.
pub type Entry = <TypeConfig as openraft::RaftTypeConfig>::Entry;

/// Runs blocking `f` (snapshot file I/O, a range's size measurement) on tokio's blocking
/// pool, or in place on a current-thread runtime: there (the simulated cluster's fault
/// scenarios) a thread outside the runtime would decide by the machine's timing when its
/// work lands among the replicas' events, so a replayed seed could take another course.
pub async fn blocking<T, F>(f: F) -> io::Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    use tokio::runtime::{Handle, RuntimeFlavor};
    if Handle::current().runtime_flavor() == RuntimeFlavor::CurrentThread {
        return Ok(f());
    }
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| io::Error::other(format!("a blocking task failed: {e}")))
}

/// The key prefix of everything a range keeps in the Raft keyspaces.
fn range_prefix(range: u64) -> [u8; 8] {
    range.to_be_bytes()
}

fn state_key(range: u64, what: u8) -> Vec<u8> {
    let mut k = range_prefix(range).to_vec();
    k.push(what);
    k
}

/// Reads and decodes the range's record `what` in the `raft_state` keyspace.
fn read_state<T: serde::de::DeserializeOwned>(
    view: &(impl storage::ReadView + ?Sized),
    range: u64,
    what: u8,
) -> io::Result<Option<T>> {
    view.get(storage::Keyspace::RaftState, &state_key(range, what))
        .map_err(io_err)?
        .map(|b| decode(&b))
        .transpose()
}

fn io_err(e: impl std::error::Error + Send + Sync + 'static) -> io::Error {
    io::Error::other(e)
}

fn encode<T: serde::Serialize>(v: &T) -> io::Result<Vec<u8>> {
    postcard::to_allocvec(v).map_err(io_err)
}

fn decode<T: serde::de::DeserializeOwned>(b: &[u8]) -> io::Result<T> {
    postcard::from_bytes(b).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}
