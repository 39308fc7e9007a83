//! The gRPC service of a node: what its peers, and the CLI, ask of it.

use std::sync::Arc;

use openraft::Snapshot;
use openraft::type_config::alias::{SnapshotMetaOf, VoteOf};
use raft::TypeConfig;
use storage::Engine;
use tonic::{Request, Response, Status};

use super::{ClusterNode, Ident, NodeError};
use crate::api::RangeDesc;
use crate::error::Error;
use crate::rpc::peers::{APPEND, PRE_VOTE, TRANSFER_LEADER, VOTE};
use crate::rpc::{MAX_MESSAGE_BYTES, decode, encode, encode_result, pb};

/// The largest snapshot a node accepts.
const MAX_SNAPSHOT_BYTES: u64 = 16 << 30;

/// The `Node` service of one node.
pub struct NodeService<E: Engine> {
    node: Arc<ClusterNode<E>>,
}

impl<E: Engine> NodeService<E> {
    /// Returns the tonic service of `node`.
    pub fn server(node: Arc<ClusterNode<E>>) -> pb::node_server::NodeServer<Self> {
        pb::node_server::NodeServer::new(NodeService { node })
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }

    /// Admits a message from a member: this node must belong to a cluster, the same one.
    fn admit(&self, cluster_id: Option<&str>, from: u64) -> Result<Ident, Status> {
        let ident = self
            .node
            .ident()
            .ok_or_else(|| Status::failed_precondition(NodeError::NotInitialized.to_string()))?;
        let theirs = cluster_id.unwrap_or_default();
        if theirs != ident.cluster_id {
            tracing::warn!(
                from,
                cluster = theirs,
                "refused a message from another cluster"
            );
            return Err(Status::permission_denied(format!(
                "message from cluster {theirs:?} refused: node {} belongs to cluster {}",
                ident.node_id, ident.cluster_id
            )));
        }
        if from != 0 {
            self.node.peers.heard_from(from);
        }
        Ok(ident)
    }

    fn admit_header(&self, header: Option<&pb::Header>) -> Result<Ident, Status> {
        let ident = self.admit(
            header.map(|h| h.cluster_id.as_str()),
            header.map_or(0, |h| h.from_node),
        )?;
        let to = header.map_or(0, |h| h.to_node);
        if to != 0 && to != ident.node_id {
            return Err(Status::failed_precondition(format!(
                "message for node {to} reached node {} (a stale address)",
                ident.node_id
            )));
        }
        Ok(ident)
    }

    /// The answer to a leader's message for a range this node holds no replica of: the node
    /// missed the split that made it. An empty replica takes the leader's snapshot.
    fn missing_replica(&self, range: u64, from_leader: bool) -> String {
        if from_leader {
            let node = self.node.clone();
            tokio::spawn(async move { node.create_empty_replica(range).await });
        }
        format!("this node holds no replica of range {range}")
    }

    /// Receives a snapshot streamed after `first` into a file, checks it and has the
    /// range's replica install it.
    async fn receive_snapshot(
        &self,
        first: pb::SnapshotChunk,
        mut rest: tonic::Streaming<pb::SnapshotChunk>,
    ) -> Result<Vec<u8>, String> {
        let store = self
            .node
            .store()
            .ok_or_else(|| "this node is not part of a cluster yet".to_string())?;
        let range = first.range;
        let Some(replica) = store.get(range) else {
            return Err(self.missing_replica(range, true));
        };
        let (vote, meta, span): (VoteOf<TypeConfig>, SnapshotMetaOf<TypeConfig>, mvcc::Span) =
            decode(&first.meta)?;
        // Not while another replica here still holds part of the snapshot's keys.
        store.admit_snapshot(range, &span)?;
        let mut rx = raft::SnapshotReceiver::create(&self.node.spool_dir(), range)
            .map_err(|e| format!("snapshot file: {e}"))?;
        while let Some(chunk) = rest
            .message()
            .await
            .map_err(|s| format!("snapshot stream: {}", s.message()))?
        {
            rx.write(&chunk.data, MAX_SNAPSHOT_BYTES)
                .map_err(|e| format!("snapshot file: {e}"))?;
        }
        let file = tokio::task::spawn_blocking(move || rx.finish())
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("snapshot of range {range} refused: {e}"))?;
        if file.span() != &span {
            return Err(format!(
                "snapshot of range {range} refused: its file holds {:?}, its header says {span:?}",
                file.span()
            ));
        }
        tracing::debug!(range, bytes = file.bytes(), "installing a snapshot");
        let r = replica
            .raft()
            .install_full_snapshot(
                vote,
                Snapshot {
                    meta,
                    snapshot: file,
                },
            )
            .await
            .map_err(|e| e.to_string())?;
        Ok(encode(&r))
    }

    /// Delivers one Raft message to this node's replica of its range.
    async fn deliver(&self, msg: pb::RaftMessage) -> Result<Vec<u8>, String> {
        let store = self
            .node
            .store()
            .ok_or_else(|| "this node is not part of a cluster yet".to_string())?;
        let Some(replica) = store.get(msg.range) else {
            return Err(self.missing_replica(msg.range, msg.kind == APPEND));
        };
        let raft = replica.raft();
        match msg.kind {
            APPEND => {
                let rpc = decode(&msg.body)?;
                let r = raft.append_entries(rpc).await.map_err(|e| e.to_string())?;
                Ok(encode(&r))
            }
            VOTE => {
                let rpc = decode(&msg.body)?;
                let r = raft.vote(rpc).await.map_err(|e| e.to_string())?;
                Ok(encode(&r))
            }
            PRE_VOTE => {
                let rpc = decode(&msg.body)?;
                let r = raft.pre_vote(rpc).await.map_err(|e| e.to_string())?;
                Ok(encode(&r))
            }
            TRANSFER_LEADER => {
                let req = decode(&msg.body)?;
                let r = raft
                    .handle_transfer_leader(req)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(encode(&r))
            }
            other => Err(format!("unknown Raft message kind {other}")),
        }
    }
}

fn status_of(e: NodeError) -> Status {
    match e {
        NodeError::AlreadyInitialized(_) => Status::already_exists(e.to_string()),
        NodeError::NotInitialized => Status::failed_precondition(e.to_string()),
        NodeError::Config(_) => Status::invalid_argument(e.to_string()),
        NodeError::Conflict(_) | NodeError::Join(_) => Status::failed_precondition(e.to_string()),
        NodeError::Kv(_) => Status::unavailable(e.to_string()),
    }
}

#[tonic::async_trait]
impl<E: Engine> pb::node_server::Node for NodeService<E> {
    async fn raft(
        &self,
        request: Request<pb::RaftBatch>,
    ) -> Result<Response<pb::RaftBatchReply>, Status> {
        let batch = request.into_inner();
        self.admit_header(batch.header.as_ref())?;
        let replies = futures::future::join_all(batch.messages.into_iter().map(|m| async {
            match self.deliver(m).await {
                Ok(body) => pb::RaftReply {
                    body,
                    error: String::new(),
                },
                Err(error) => pb::RaftReply {
                    body: Vec::new(),
                    error,
                },
            }
        }))
        .await;
        Ok(Response::new(pb::RaftBatchReply { replies }))
    }

    async fn snapshot(
        &self,
        request: Request<tonic::Streaming<pb::SnapshotChunk>>,
    ) -> Result<Response<pb::RaftReply>, Status> {
        let mut stream = request.into_inner();
        let first = stream
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("an empty snapshot stream"))?;
        self.admit_header(first.header.as_ref())?;
        Ok(Response::new(
            match self.receive_snapshot(first, stream).await {
                Ok(body) => pb::RaftReply {
                    body,
                    error: String::new(),
                },
                Err(error) => pb::RaftReply {
                    body: Vec::new(),
                    error,
                },
            },
        ))
    }

    async fn kv(&self, request: Request<pb::KvRequest>) -> Result<Response<pb::KvReply>, Status> {
        let req = request.into_inner();
        let ident = self.admit_header(req.header.as_ref())?;
        let body = match decode(&req.body) {
            Ok(r) => match self.node.store() {
                Some(store) => {
                    self.node.peers.stats().remote_request();
                    encode_result(store.execute(req.range, r).await)
                }
                None => encode_result::<()>(Err(Error::Shutdown)),
            },
            Err(detail) => encode_result::<()>(Err(Error::NodeUnreachable {
                node: ident.node_id,
                detail,
            })),
        };
        Ok(Response::new(pb::KvReply { body }))
    }

    async fn tso(
        &self,
        request: Request<pb::TsoRequest>,
    ) -> Result<Response<pb::TsoReply>, Status> {
        let req = request.into_inner();
        self.admit_header(req.header.as_ref())?;
        self.node.peers.stats().tso_request();
        let tso = self
            .node
            .tso()
            .ok_or_else(|| Status::failed_precondition(NodeError::NotInitialized.to_string()))?;
        Ok(Response::new(pb::TsoReply {
            body: encode_result(tso.local(req.count).await),
        }))
    }

    async fn add_replica(
        &self,
        request: Request<pb::AddReplicaRequest>,
    ) -> Result<Response<pb::AddReplicaReply>, Status> {
        let req = request.into_inner();
        self.admit_header(req.header.as_ref())?;
        let desc: RangeDesc = decode(&req.desc).map_err(Status::invalid_argument)?;
        self.node
            .create_replica(desc)
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        Ok(Response::new(pb::AddReplicaReply {}))
    }

    async fn init(
        &self,
        request: Request<pb::InitRequest>,
    ) -> Result<Response<pb::InitReply>, Status> {
        let request = request.into_inner();
        let ident = self
            .node
            .init(request.replication, request.split_keys)
            .await
            .map_err(status_of)?;
        Ok(Response::new(pb::InitReply {
            cluster_id: ident.cluster_id,
            node_id: ident.node_id,
        }))
    }

    async fn join(
        &self,
        request: Request<pb::JoinRequest>,
    ) -> Result<Response<pb::JoinReply>, Status> {
        let node = request
            .into_inner()
            .node
            .ok_or_else(|| Status::invalid_argument("a join request must name the node"))?;
        let reply = self.node.admit(node).await.map_err(status_of)?;
        Ok(Response::new(reply))
    }

    async fn status(
        &self,
        request: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusReply>, Status> {
        // A member's request is checked; the CLI's (no header) is answered as is.
        if let Some(h) = request.into_inner().header {
            self.admit_header(Some(&h))?;
        }
        Ok(Response::new(self.node.status()))
    }
}
