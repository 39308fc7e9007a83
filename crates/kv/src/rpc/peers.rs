//! A node's view of its peers: their addresses (the address book), one gRPC connection per
//! peer shared by every range, and the Raft network of each range on top of it.
//!
//! Raft messages to a peer go through one queue per peer: a pump takes whatever messages
//! of any range are waiting and sends them as one `Raft` call, so the heartbeats of many
//! ranges share one round trip. Calls run concurrently; a slow one (a big append) does not
//! hold back the next batch.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use futures::StreamExt;
use openraft::errors::{RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{RPCOption, RaftNetworkFactory, RaftNetworkV2};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};
use openraft::type_config::alias::{SnapshotOf, VoteOf};
use openraft::{BasicNode, OptionalSend};
use raft::TypeConfig;
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, oneshot};
use tonic::transport::Channel;

use super::pb::node_client::NodeClient;
use super::{decode, encode, pb};
use crate::stats::NodeStats;

/// Most Raft messages in one call.
const MAX_BATCH: usize = 256;
/// How long a batch of Raft messages may take.
const RAFT_CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a snapshot may take to send and install.
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(120);

/// Raft message kinds on the wire.
pub(crate) const APPEND: u32 = 1;
pub(crate) const VOTE: u32 = 2;
pub(crate) const PRE_VOTE: u32 = 4;
pub(crate) const TRANSFER_LEADER: u32 = 5;

struct Pending {
    msg: pb::RaftMessage,
    reply: oneshot::Sender<Result<Vec<u8>, String>>,
}

struct Conn {
    addr: String,
    client: NodeClient<Channel>,
    raft: mpsc::UnboundedSender<Pending>,
}

struct Inner {
    header: RwLock<pb::Header>,
    book: RwLock<BTreeMap<u64, pb::NodeAddr>>,
    conns: Mutex<HashMap<u64, Conn>>,
    /// When each peer last answered a call.
    heard: Mutex<HashMap<u64, Instant>>,
    stats: Arc<NodeStats>,
}

/// The peers of one node. Clones share everything.
#[derive(Clone)]
pub struct Peers {
    inner: Arc<Inner>,
}

impl Default for Peers {
    fn default() -> Self {
        Peers {
            inner: Arc::new(Inner {
                header: RwLock::new(pb::Header::default()),
                book: RwLock::default(),
                conns: Mutex::default(),
                heard: Mutex::default(),
                stats: Arc::default(),
            }),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Peers {
    /// Sets the header of every message from now on (once the node knows its cluster and
    /// id).
    pub fn set_header(&self, cluster_id: &str, node: u64) {
        *self.inner.header.write().unwrap_or_else(|e| e.into_inner()) = pb::Header {
            cluster_id: cluster_id.to_string(),
            from_node: node,
            to_node: 0,
        };
    }

    /// Returns the node's counters (its store counts into them too).
    pub fn stats(&self) -> &Arc<NodeStats> {
        &self.inner.stats
    }

    /// Returns the header of outgoing messages.
    pub fn header(&self) -> pb::Header {
        self.inner
            .header
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Returns the header of a message to node `to`.
    pub fn header_to(&self, to: u64) -> pb::Header {
        pb::Header {
            to_node: to,
            ..self.header()
        }
    }

    /// Records a node's addresses; returns true if they are new or changed.
    pub fn learn(&self, node: pb::NodeAddr) -> bool {
        let mut book = self.inner.book.write().unwrap_or_else(|e| e.into_inner());
        if book.get(&node.id) == Some(&node) || node.id == 0 || node.addr.is_empty() {
            return false;
        }
        book.insert(node.id, node);
        true
    }

    /// Returns every node in the address book.
    pub fn book(&self) -> Vec<pb::NodeAddr> {
        self.inner
            .book
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Returns node `node`'s entry in the address book.
    pub fn addr(&self, node: u64) -> Option<pb::NodeAddr> {
        self.inner
            .book
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&node)
            .cloned()
    }

    /// Notes that `node` answered just now.
    pub fn heard_from(&self, node: u64) {
        lock(&self.inner.heard).insert(node, Instant::now());
    }

    /// Forgets when `node` was last heard from: its connection was refused, so it is down
    /// (quiesced ranges it led wake at the next look instead of after the silence window).
    pub fn down(&self, node: u64) {
        lock(&self.inner.heard).remove(&node);
    }

    /// Returns the nodes heard from within `within`.
    pub fn live(&self, within: Duration) -> Vec<u64> {
        let now = Instant::now();
        let mut live: Vec<u64> = lock(&self.inner.heard)
            .iter()
            .filter(|(_, t)| now.duration_since(**t) <= within)
            .map(|(n, _)| *n)
            .collect();
        live.sort_unstable();
        live
    }

    /// Returns a client of node `node` at `addr`, reusing the node's connection.
    pub fn client(&self, node: u64, addr: &str) -> Result<NodeClient<Channel>, String> {
        Ok(self.conn(node, addr)?.0)
    }

    /// Returns a client of node `node`, at the address the book holds.
    pub fn client_of(&self, node: u64) -> Result<NodeClient<Channel>, String> {
        let addr = self
            .addr(node)
            .ok_or_else(|| format!("node {node} has no known address"))?
            .addr;
        self.client(node, &addr)
    }

    fn conn(
        &self,
        node: u64,
        addr: &str,
    ) -> Result<(NodeClient<Channel>, mpsc::UnboundedSender<Pending>), String> {
        let mut conns = lock(&self.inner.conns);
        if let Some(c) = conns.get(&node)
            && c.addr == addr
        {
            return Ok((c.client.clone(), c.raft.clone()));
        }
        let client = super::client(addr)?;
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(pump(self.clone(), node, client.clone(), rx));
        conns.insert(
            node,
            Conn {
                addr: addr.to_string(),
                client: client.clone(),
                raft: tx.clone(),
            },
        );
        Ok((client, tx))
    }

    /// Sends one Raft message to `node` at `addr` through its queue and returns the
    /// encoded answer.
    async fn raft_call(
        &self,
        node: u64,
        addr: &str,
        msg: pb::RaftMessage,
    ) -> Result<Vec<u8>, String> {
        let (_, queue) = self.conn(node, addr)?;
        self.inner.stats.raft_message(msg.kind);
        let (reply, rx) = oneshot::channel();
        queue
            .send(Pending { msg, reply })
            .map_err(|_| "connection closed".to_string())?;
        rx.await
            .map_err(|_| "connection closed".to_string())
            .and_then(|r| r)
    }

    /// Forgets every connection (at shutdown), which stops the pumps.
    pub fn close(&self) {
        lock(&self.inner.conns).clear();
    }
}

/// Sends the Raft messages queued for one peer, batching what is waiting.
async fn pump(
    peers: Peers,
    node: u64,
    client: NodeClient<Channel>,
    mut rx: mpsc::UnboundedReceiver<Pending>,
) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        let mut client = client.clone();
        let peers = peers.clone();
        peers.inner.stats.raft_call();
        tokio::spawn(async move {
            let (messages, replies): (Vec<_>, Vec<_>) =
                batch.into_iter().map(|p| (p.msg, p.reply)).unzip();
            let call = client.raft(pb::RaftBatch {
                header: Some(peers.header_to(node)),
                messages,
            });
            let answers: Vec<Result<Vec<u8>, String>> =
                match tokio::time::timeout(RAFT_CALL_TIMEOUT, call).await {
                    Ok(Ok(resp)) => {
                        peers.heard_from(node);
                        let got = resp.into_inner().replies;
                        if got.len() == replies.len() {
                            got.into_iter()
                                .map(|r| {
                                    if r.error.is_empty() {
                                        Ok(r.body)
                                    } else {
                                        Err(r.error)
                                    }
                                })
                                .collect()
                        } else {
                            vec![
                                Err(format!(
                                    "node {node} answered {} of {} messages",
                                    got.len(),
                                    replies.len()
                                ));
                                replies.len()
                            ]
                        }
                    }
                    Ok(Err(status)) => vec![Err(status.message().to_string()); replies.len()],
                    Err(_) => {
                        vec![Err(format!("node {node} did not answer in time")); replies.len()]
                    }
                };
            for (reply, answer) in replies.into_iter().zip(answers) {
                let _ = reply.send(answer);
            }
        });
    }
}

/// The Raft network of one range on this node.
pub struct RaftEndpoint {
    pub(crate) peers: Peers,
    pub(crate) range: u64,
}

/// A connection from a range's replica here to its replica on another node.
pub struct RaftConnection {
    peers: Peers,
    range: u64,
    target: u64,
    addr: String,
}

impl RaftNetworkFactory<TypeConfig> for RaftEndpoint {
    type Network = RaftConnection;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> RaftConnection {
        RaftConnection {
            peers: self.peers.clone(),
            range: self.range,
            target,
            addr: node.addr.clone(),
        }
    }
}

impl RaftConnection {
    async fn call<T: DeserializeOwned>(
        &self,
        kind: u32,
        body: Vec<u8>,
    ) -> Result<T, Unreachable<TypeConfig>> {
        let msg = pb::RaftMessage {
            range: self.range,
            kind,
            body,
        };
        let answer = self
            .peers
            .raft_call(self.target, &self.addr, msg)
            .await
            .map_err(Unreachable::from_string)?;
        decode(&answer).map_err(Unreachable::from_string)
    }
}

impl RaftNetworkV2<TypeConfig> for RaftConnection {
    type SnapshotData = raft::SnapshotFile;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        Ok(self.call(APPEND, encode(&rpc)).await?)
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        Ok(self.call(VOTE, encode(&rpc)).await?)
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        Ok(self.call(PRE_VOTE, encode(&rpc)).await?)
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        Ok(self.call(TRANSFER_LEADER, encode(&req)).await?)
    }

    async fn full_snapshot(
        &mut self,
        vote: VoteOf<TypeConfig>,
        snapshot: SnapshotOf<TypeConfig, raft::SnapshotFile>,
        _cancel: impl std::future::Future<Output = ReplicationClosed> + OptionalSend + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let unreachable = |e: String| StreamingError::from(Unreachable::from_string(e));
        let mut client = self
            .peers
            .client(self.target, &self.addr)
            .map_err(unreachable)?;
        let file = snapshot.snapshot;
        let first = pb::SnapshotChunk {
            header: Some(self.peers.header_to(self.target)),
            range: self.range,
            meta: encode(&(vote, snapshot.meta, file.span())),
            data: Vec::new(),
        };
        // The file's bytes, read a piece at a time as the stream is polled: the range is
        // never in memory. The stream holds the file, which is removed with it.
        let pieces = file.pieces().map_err(|e| unreachable(e.to_string()))?;
        let range = self.range;
        let rest = futures::stream::iter(pieces).scan(file, move |_file, piece| {
            futures::future::ready(match piece {
                Ok(data) => Some(pb::SnapshotChunk {
                    header: None,
                    range,
                    meta: Vec::new(),
                    data,
                }),
                // Ends the stream early: the receiver finds the file incomplete.
                Err(e) => {
                    tracing::warn!(range, "reading a snapshot file: {e}");
                    None
                }
            })
        });
        let stream = futures::stream::iter([first]).chain(rest);
        let reply = tokio::time::timeout(SNAPSHOT_TIMEOUT, client.snapshot(stream))
            .await
            .map_err(|_| unreachable("snapshot timed out".into()))?
            .map_err(|s| unreachable(s.message().to_string()))?
            .into_inner();
        if !reply.error.is_empty() {
            return Err(unreachable(reply.error));
        }
        decode(&reply.body).map_err(unreachable)
    }
}
