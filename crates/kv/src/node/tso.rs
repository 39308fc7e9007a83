//! The cluster's timestamp oracle, served by the meta range's leaseholder.
//!
//! The leaseholder hands out timestamps from a window whose upper bound (the high-water
//! mark) is committed through the meta range's Raft log before any timestamp below it is
//! handed out. A new leaseholder first catches up with the log (a lease or read-index
//! check), reads the mark its predecessor committed, and starts above it; the old one
//! hands out nothing once its lease is gone. So timestamps increase strictly across
//! leaseholder changes and restarts. Other nodes ask the leaseholder over RPC, one call at
//! a time per node: callers that arrive while a call is out wait for the next one, made by
//! one of them for all of them (each caller makes at most one call, so none is kept
//! serving the others under steady load).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use base::{Clock, Timestamp};
use codec::layout::{SystemKind, system_key};
use mvcc::commands::ReadSet;
use mvcc::{Mutation, MvccReader};
use openraft::async_runtime::WatchReceiver;
use storage::{Engine, GroupCommit, WriteBatch};

use super::META_RANGE;
use crate::error::{Error, Result};
use crate::replica::Store;
use crate::rpc::peers::Peers;
use crate::rpc::{decode_result, pb};
use crate::tso::TimestampOracle;

/// How long a caller keeps looking for the oracle.
const DEADLINE: Duration = Duration::from_secs(10);

/// The meta key of the high-water mark.
pub(crate) fn mark_key() -> Vec<u8> {
    system_key(SystemKind::TimestampOracle, b"cluster-high-water")
}

struct Window {
    /// The leader term the window belongs to; a new term reloads the mark.
    term: u64,
    last: Timestamp,
    limit: Timestamp,
}

/// The timestamp oracle as one node reaches it.
pub struct ClusterTso<E: Engine> {
    me: u64,
    store: Arc<Store<E>>,
    peers: Peers,
    commit: Arc<GroupCommit<E>>,
    clock: Arc<dyn Clock>,
    window_ms: u64,
    window: Mutex<Window>,
    persisting: tokio::sync::Mutex<()>,
    batch: Mutex<Batch>,
}

/// What a waiting caller is told: its timestamps (or why there are none), or that it
/// is the one to fetch next.
enum Reply {
    Got(std::result::Result<Timestamp, String>),
    Fetch,
}

/// A caller waiting for its timestamps: how many, and where they go.
type Waiter = (u32, tokio::sync::oneshot::Sender<Reply>);

/// Callers waiting for the next fetch, and whether a caller is fetching.
#[derive(Default)]
struct Batch {
    waiters: Vec<Waiter>,
    fetching: bool,
}

/// Held by the caller that fetches. When it is done (or its future is dropped mid-way),
/// it hands the fetching over to a waiting caller, or clears the mark if nobody waits; so
/// each caller fetches at most once and no caller serves the others forever.
struct Fetching<'a>(&'a Mutex<Batch>);

impl Drop for Fetching<'_> {
    fn drop(&mut self) {
        hand_over(self.0);
    }
}

/// Hands the fetching to a waiting caller, or clears the mark if nobody waits.
fn hand_over(batch: &Mutex<Batch>) {
    let mut b = batch.lock().unwrap_or_else(|e| e.into_inner());
    while let Some((_, next)) = b.waiters.pop() {
        if next.send(Reply::Fetch).is_ok() {
            return;
        }
    }
    b.fetching = false;
}

/// A caller's wait for its reply. A caller dropped after it was handed the fetching but
/// before it saw that passes the fetching on, so the mark is never left with nobody.
struct Waiting<'a> {
    rx: tokio::sync::oneshot::Receiver<Reply>,
    batch: &'a Mutex<Batch>,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if let Ok(Reply::Fetch) = self.rx.try_recv() {
            hand_over(self.batch);
        }
    }
}

impl<E: Engine> ClusterTso<E> {
    pub(crate) fn new(
        me: u64,
        store: Arc<Store<E>>,
        peers: Peers,
        commit: Arc<GroupCommit<E>>,
        clock: Arc<dyn Clock>,
        window_ms: u64,
    ) -> Self {
        ClusterTso {
            me,
            store,
            peers,
            commit,
            clock,
            window_ms,
            window: Mutex::new(Window {
                term: 0,
                last: Timestamp::ZERO,
                limit: Timestamp::ZERO,
            }),
            persisting: tokio::sync::Mutex::new(()),
            batch: Mutex::default(),
        }
    }

    fn batch(&self) -> std::sync::MutexGuard<'_, Batch> {
        self.batch.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn window(&self) -> std::sync::MutexGuard<'_, Window> {
        self.window.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hands out timestamps if this node's replica of the meta range is its leaseholder;
    /// fails with `NotLeaseholder` (naming the leader it knows) otherwise.
    pub(crate) async fn local(&self, count: u32) -> Result<Timestamp> {
        let count = u64::from(count.max(1));
        let replica = self.store.get(META_RANGE).ok_or(Error::RangeNotFound {
            range: META_RANGE,
            node: self.me,
        })?;
        let m = replica.raft().metrics().borrow_watched().clone();
        if m.current_leader != Some(self.me) {
            return Err(Error::NotLeaseholder {
                range: META_RANGE,
                node: self.me,
                leader: m.current_leader.filter(|&l| l != self.me),
            });
        }
        let term = m.current_term;
        // Under a valid lease, with every committed entry (the predecessor's marks)
        // applied here.
        replica.ready().await?;
        loop {
            let needed = {
                let mut w = self.window();
                if w.term == term {
                    let now = Timestamp::from_parts(self.clock.now_ms(), 0);
                    let first = w.last.next().max(now);
                    let last = Timestamp::new(first.get() + count - 1);
                    if last <= w.limit {
                        w.last = last;
                        return Ok(first);
                    }
                    Some(last)
                } else {
                    None
                }
            };
            let _persisting = self.persisting.lock().await;
            let Some(needed) = needed else {
                let mark = super::read_mark(self.commit.engine().as_ref())?;
                let mut w = self.window();
                if w.term != term {
                    *w = Window {
                        term,
                        last: mark,
                        limit: mark,
                    };
                }
                continue;
            };
            if self.window().limit >= needed {
                continue;
            }
            let limit = needed.plus_ms(self.window_ms);
            let mut batch = WriteBatch::new();
            {
                let reader = MvccReader::new(self.commit.engine().as_ref());
                mvcc::commands::commit_one_phase(
                    &reader,
                    &mut batch,
                    vec![Mutation::Put {
                        key: mark_key(),
                        value: limit.get().to_be_bytes().to_vec(),
                    }],
                    &ReadSet::default(),
                    limit.prev(),
                    limit,
                )?;
            }
            replica.propose(batch).await?;
            let mut w = self.window();
            if w.term == term {
                w.limit = w.limit.max(limit);
            }
        }
    }

    async fn remote(&self, node: u64, count: u32) -> Result<Timestamp> {
        ask(&self.peers, node, count).await
    }
}

/// Asks node `node` for `count` timestamps (it serves them if it leads the meta range).
pub(crate) async fn ask(peers: &Peers, node: u64, count: u32) -> Result<Timestamp> {
    let unreachable = |detail: String| Error::NodeUnreachable { node, detail };
    let mut client = peers.client_of(node).map_err(unreachable)?;
    let reply = tokio::time::timeout(
        Duration::from_secs(3),
        client.tso(pb::TsoRequest {
            header: Some(peers.header_to(node)),
            count,
        }),
    )
    .await
    .map_err(|_| unreachable("no answer in time".into()))?
    .map_err(|s| unreachable(super::describe(&s)))?;
    decode_result(&reply.into_inner().body, node)
}

#[async_trait]
impl<E: Engine> TimestampOracle for ClusterTso<E> {
    async fn timestamps(&self, count: u32) -> Result<Timestamp> {
        let count = count.max(1);
        // Whether this caller was handed the fetching (the mark is already set for it).
        let mut handed = false;
        loop {
            let (tx, rx) = tokio::sync::oneshot::channel();
            let fetch = {
                let mut b = self.batch();
                b.waiters.push((count, tx));
                handed || !std::mem::replace(&mut b.fetching, true)
            };
            handed = false;
            if fetch {
                let _fetching = Fetching(&self.batch);
                // Everyone waiting now, this caller included, in one call.
                let waiters = std::mem::take(&mut self.batch().waiters);
                let total = waiters.iter().map(|(c, _)| u64::from(*c)).sum::<u64>();
                let got = self
                    .fetch(u32::try_from(total).unwrap_or(u32::MAX))
                    .await
                    .map_err(|e| e.to_string());
                let mut offset = 0;
                for (c, tx) in waiters {
                    let mine = got.clone().map(|ts| Timestamp::new(ts.get() + offset));
                    let _ = tx.send(Reply::Got(mine));
                    offset += u64::from(c);
                }
            }
            let mut waiting = Waiting {
                rx,
                batch: &self.batch,
            };
            match (&mut waiting.rx).await {
                Ok(Reply::Got(got)) => return got.map_err(Error::Tso),
                Ok(Reply::Fetch) => handed = true,
                // The caller fetching for us was dropped before it answered: ask again.
                Err(_) => {}
            }
        }
    }
}

impl<E: Engine> ClusterTso<E> {
    /// Takes `count` consecutive timestamps from the leaseholder of the meta range: this
    /// node, or the one it names, or any node that answers.
    async fn fetch(&self, count: u32) -> Result<Timestamp> {
        let started = tokio::time::Instant::now();
        let mut backoff = Duration::from_millis(10);
        let mut hint: Option<u64> = None;
        loop {
            let err = match self.local(count).await {
                Ok(ts) => return Ok(ts),
                Err(Error::NotLeaseholder { leader, .. }) => {
                    hint = leader.or(hint);
                    None
                }
                Err(Error::RangeNotFound { .. }) => None,
                Err(e) if e.is_routing() => Some(e),
                Err(e) => return Err(e),
            };
            let mut last = err;
            // The hinted leader first, then every other node.
            let mut candidates: Vec<u64> = hint.into_iter().collect();
            candidates.extend(
                self.peers
                    .book()
                    .iter()
                    .map(|n| n.id)
                    .filter(|&n| n != self.me && Some(n) != hint),
            );
            for node in candidates {
                match self.remote(node, count).await {
                    Ok(ts) => return Ok(ts),
                    Err(Error::NotLeaseholder {
                        leader: Some(l), ..
                    }) if l != self.me => {
                        hint = Some(l);
                    }
                    Err(e) if e.is_routing() => last = Some(e),
                    Err(e) => return Err(e),
                }
            }
            if started.elapsed() >= DEADLINE {
                return Err(Error::Tso(format!(
                    "no leaseholder of the meta range answered in {DEADLINE:?}{}",
                    last.map(|e| format!(" (last: {e})")).unwrap_or_default()
                )));
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_millis(200));
        }
    }
}
