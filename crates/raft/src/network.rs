//! An in-process network between replicas, with link filters for fault tests: a message
//! over a cut link fails as if the peer were unreachable, messages of a blocked kind are
//! lost, and seeded random faults lose or delay messages.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::errors::{RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{RPCOption, RaftNetworkFactory, RaftNetworkV2};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};
use openraft::storage::Snapshot;
use openraft::type_config::alias::{SnapshotOf, VoteOf};
use openraft::{BasicNode, OptionalSend};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use storage::Engine;

use crate::{Raft, SnapshotFile, SnapshotReceiver, TypeConfig};

struct Links<E: Engine> {
    /// The replicas of each node that is up, by range.
    nodes: BTreeMap<u64, BTreeMap<u64, Raft<E>>>,
    /// Every node ever added, up or down.
    known: BTreeSet<u64>,
    /// Directed links that drop every message: `(from, to)`.
    cut: BTreeSet<(u64, u64)>,
    /// Kinds of message lost on every link (or on one directed link).
    blocked: BTreeSet<(MessageKind, Option<(u64, u64)>)>,
    /// Random faults on every message, if set.
    faults: Option<Faults>,
    /// What the nodes do with leaders' messages for replicas they lack, and snapshots.
    admission: Option<Arc<dyn Admission>>,
}

/// How the nodes of a [`LocalNetwork`] receive what their replicas alone cannot: a
/// leader's message for a range the node has no replica of (it missed the split that
/// made the range: it may create an empty one, which the leader then sends a snapshot),
/// and a snapshot the node must refuse while another of its replicas holds part of it.
pub trait Admission: Send + Sync + 'static {
    /// Node `to` got a leader's message for range `range`, of which it has no replica.
    fn missing(&self, to: u64, range: u64);

    /// Says whether node `to`'s replica of `range` may install a snapshot of `span` now.
    fn admit_snapshot(&self, to: u64, range: u64, span: &mvcc::Span) -> Result<(), String>;
}

/// Random faults applied to every message, drawn from a seeded generator so that a failing
/// run can be replayed with the same seed (the schedule of draws, not the thread timing).
struct Faults {
    rng: StdRng,
    /// Chance, per thousand, that a message is lost.
    drop_per_mille: u32,
    /// Messages are delayed by up to this long.
    max_delay: Duration,
}

/// The kinds of Raft message, for filters that select by kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum MessageKind {
    /// Log entries and heartbeats from a leader.
    Append,
    /// A candidate's vote request.
    Vote,
    /// A leader's snapshot.
    Snapshot,
    /// A leader handing its leadership over.
    TransferLeader,
}

/// What happens to one message.
enum Fate {
    Deliver(Duration),
    Drop,
}

/// The nodes of one process and their replicas, reachable by node and range id.
pub struct LocalNetwork<E: Engine> {
    links: Arc<Mutex<Links<E>>>,
}

impl<E: Engine> Clone for LocalNetwork<E> {
    fn clone(&self) -> Self {
        LocalNetwork {
            links: self.links.clone(),
        }
    }
}

impl<E: Engine> Default for LocalNetwork<E> {
    fn default() -> Self {
        LocalNetwork {
            links: Arc::new(Mutex::new(Links {
                nodes: BTreeMap::new(),
                known: BTreeSet::new(),
                cut: BTreeSet::new(),
                blocked: BTreeSet::new(),
                faults: None,
                admission: None,
            })),
        }
    }
}

impl<E: Engine> LocalNetwork<E> {
    fn links(&self) -> std::sync::MutexGuard<'_, Links<E>> {
        self.links.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Returns the sending side of range `range`'s replica on node `from`, for
    /// [`openraft::Raft::new`].
    pub fn endpoint(&self, from: u64, range: u64) -> Endpoint<E> {
        Endpoint {
            net: self.clone(),
            from,
            range,
        }
    }

    /// Routes leaders' messages for missing replicas, and snapshots, through `admission`.
    pub fn set_admission(&self, admission: Arc<dyn Admission>) {
        self.links().admission = Some(admission);
    }

    /// Makes range `range`'s replica on node `node` reachable (and the node up).
    pub fn add(&self, node: u64, range: u64, raft: Raft<E>) {
        let mut l = self.links();
        l.known.insert(node);
        l.nodes.entry(node).or_default().insert(range, raft);
    }

    /// Marks node `node` up with no replicas yet.
    pub fn add_node(&self, node: u64) {
        let mut l = self.links();
        l.known.insert(node);
        l.nodes.entry(node).or_default();
    }

    /// Makes node `node` unreachable (a crashed process) and returns its replicas.
    pub fn remove(&self, node: u64) -> BTreeMap<u64, Raft<E>> {
        self.links().nodes.remove(&node).unwrap_or_default()
    }

    /// Returns range `range`'s replica on node `node`.
    pub fn get(&self, node: u64, range: u64) -> Option<Raft<E>> {
        self.links().nodes.get(&node)?.get(&range).cloned()
    }

    /// Returns true if node `to` is up and the link from `from` to it is not cut.
    pub fn reachable(&self, from: u64, to: u64) -> bool {
        let l = self.links();
        !l.cut.contains(&(from, to)) && l.nodes.contains_key(&to)
    }

    /// Cuts every link between `id` and the other nodes, both ways.
    pub fn isolate(&self, id: u64) {
        let mut l = self.links();
        let others: Vec<u64> = l.known.iter().copied().filter(|&n| n != id).collect();
        for n in others {
            l.cut.insert((id, n));
            l.cut.insert((n, id));
        }
    }

    /// Restores every link.
    pub fn heal(&self) {
        self.links().cut.clear();
    }

    /// Loses every message of kind `kind`: on the directed link `link` (`(from, to)`) if
    /// given, else on every link. [`LocalNetwork::unblock`] undoes it.
    pub fn block(&self, kind: MessageKind, link: Option<(u64, u64)>) {
        self.links().blocked.insert((kind, link));
    }

    /// Delivers messages of kind `kind` again (every filter on that kind).
    pub fn unblock(&self, kind: MessageKind) {
        self.links().blocked.retain(|(k, _)| *k != kind);
    }

    /// Returns true if a message of kind `kind` from `from` to `to` is blocked.
    fn blocked(&self, kind: MessageKind, from: u64, to: u64) -> bool {
        let l = self.links();
        l.blocked.contains(&(kind, None)) || l.blocked.contains(&(kind, Some((from, to))))
    }

    /// From now on, loses each message with chance `drop_per_mille`/1000 and delays the
    /// others by up to `max_delay`, drawing from a generator seeded with `seed`.
    pub fn set_faults(&self, seed: u64, drop_per_mille: u32, max_delay: Duration) {
        self.links().faults = Some(Faults {
            rng: StdRng::seed_from_u64(seed),
            drop_per_mille,
            max_delay,
        });
    }

    /// Stops dropping and delaying messages.
    pub fn clear_faults(&self) {
        self.links().faults = None;
    }

    fn fate(&self) -> Fate {
        let mut l = self.links();
        let Some(f) = l.faults.as_mut() else {
            return Fate::Deliver(Duration::ZERO);
        };
        if f.rng.random_range(0..1000) < f.drop_per_mille {
            return Fate::Drop;
        }
        let max = f.max_delay.as_micros() as u64;
        Fate::Deliver(Duration::from_micros(if max == 0 {
            0
        } else {
            f.rng.random_range(0..=max)
        }))
    }

    fn route(
        &self,
        from: u64,
        to: u64,
        range: u64,
        from_leader: bool,
    ) -> Result<Raft<E>, Unreachable<TypeConfig>> {
        let l = self.links();
        if l.cut.contains(&(from, to)) {
            return Err(Unreachable::from_string(format!(
                "link {from} -> {to} is cut"
            )));
        }
        let node = l
            .nodes
            .get(&to)
            .ok_or_else(|| Unreachable::from_string(format!("node {to} is down")))?;
        if let Some(raft) = node.get(&range) {
            return Ok(raft.clone());
        }
        if from_leader && let Some(a) = l.admission.clone() {
            drop(l);
            a.missing(to, range);
        }
        Err(Unreachable::from_string(format!(
            "node {to} has no replica of range {range}"
        )))
    }
}

/// The network as seen by one replica.
pub struct Endpoint<E: Engine> {
    net: LocalNetwork<E>,
    from: u64,
    range: u64,
}

/// A connection from one replica of a range to another.
pub struct Connection<E: Engine> {
    net: LocalNetwork<E>,
    from: u64,
    to: u64,
    range: u64,
}

impl<E: Engine> RaftNetworkFactory<TypeConfig> for Endpoint<E> {
    type Network = Connection<E>;

    async fn new_client(&mut self, target: u64, _node: &BasicNode) -> Connection<E> {
        Connection {
            net: self.net.clone(),
            from: self.from,
            to: target,
            range: self.range,
        }
    }
}

impl<E: Engine> Connection<E> {
    /// Sends a request to the peer and its reply back, each over its own link: a message
    /// over a cut link (or to a node that is down) is lost, and so is a reply over a link
    /// cut meanwhile.
    async fn deliver<T, Err, F>(
        &self,
        kind: MessageKind,
        call: impl FnOnce(Raft<E>) -> F,
    ) -> Result<T, Unreachable<TypeConfig>>
    where
        Err: std::error::Error,
        F: std::future::Future<Output = Result<T, Err>>,
    {
        if self.net.blocked(kind, self.from, self.to) {
            return Err(Unreachable::from_string(format!(
                "{kind:?} message {} -> {} blocked",
                self.from, self.to
            )));
        }
        let from_leader = matches!(kind, MessageKind::Append | MessageKind::Snapshot);
        match self.net.fate() {
            Fate::Drop => {
                return Err(Unreachable::from_string(format!(
                    "message {} -> {} lost",
                    self.from, self.to
                )));
            }
            Fate::Deliver(delay) if !delay.is_zero() => tokio::time::sleep(delay).await,
            Fate::Deliver(_) => {}
        }
        let peer = self
            .net
            .route(self.from, self.to, self.range, from_leader)?;
        let reply = call(peer)
            .await
            .map_err(|e| Unreachable::from_string(e.to_string()))?;
        if !self.net.reachable(self.to, self.from) {
            return Err(Unreachable::from_string(format!(
                "reply link {} -> {} is cut",
                self.to, self.from
            )));
        }
        Ok(reply)
    }
}

impl<E: Engine> RaftNetworkV2<TypeConfig> for Connection<E> {
    type SnapshotData = SnapshotFile;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        Ok(self
            .deliver(MessageKind::Append, |peer| async move {
                peer.append_entries(rpc).await
            })
            .await?)
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        Ok(self
            .deliver(
                MessageKind::Vote,
                |peer| async move { peer.vote(rpc).await },
            )
            .await?)
    }

    async fn full_snapshot(
        &mut self,
        vote: VoteOf<TypeConfig>,
        snapshot: SnapshotOf<TypeConfig, SnapshotFile>,
        _cancel: impl std::future::Future<Output = ReplicationClosed> + OptionalSend + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let unreachable = |e: String| StreamingError::from(Unreachable::from_string(e));
        let admission = self.net.links().admission.clone();
        if let Some(a) = admission {
            a.admit_snapshot(self.to, self.range, snapshot.snapshot.span())
                .map_err(unreachable)?;
        }
        // The file travels as the gRPC transport streams it: piece by piece into a file of
        // the receiver's, checked before it is installed.
        let (meta, file, range) = (snapshot.meta, snapshot.snapshot, self.range);
        let dir = file
            .path()
            .ok()
            .and_then(|p| p.parent())
            .map_or_else(crate::default_spool_dir, |d| d.to_path_buf());
        let received = crate::blocking(move || {
            let mut rx = SnapshotReceiver::create(&dir, range)?;
            for piece in file.pieces()? {
                rx.write(&piece?, u64::MAX)?;
            }
            rx.finish()
        })
        .await
        .map_err(|e| unreachable(e.to_string()))?
        .map_err(|e| unreachable(e.to_string()))?;
        Ok(self
            .deliver(MessageKind::Snapshot, |peer| async move {
                peer.install_full_snapshot(
                    vote,
                    Snapshot {
                        meta,
                        snapshot: received,
                    },
                )
                .await
            })
            .await?)
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        Ok(self
            .deliver(MessageKind::TransferLeader, |peer| async move {
                peer.handle_transfer_leader(req).await
            })
            .await?)
    }
}
