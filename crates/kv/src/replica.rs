//! A node's replicas of ranges, serving key-value requests through their Raft groups.
//!
//! A [`Replica`] evaluates requests only while it is its range's leaseholder (the Raft
//! leader holding openraft's leader lease): writes are evaluated under latches against the
//! leader's applied state and the resulting batch is proposed to the group; the request
//! returns once the batch is committed by a quorum and applied here. Reads are served from
//! the leader's state after a lease check, without a round trip to the followers; a leader
//! whose lease lapsed (it cannot hear a quorum) confirms its leadership with a read-index
//! round first, and fails if it cannot.
//!
//! A [`Store`] is a node's set of replicas, addressed by range id.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use base::Clock;
use openraft::ReadPolicy;
use openraft::errors::{ClientWriteError, ForwardReason, LinearizableReadError, RaftError};
use storage::{Engine, WriteBatch};

use crate::api::{RangeDesc, Request, Response};
use crate::error::{Error, Result};
use crate::eval::{Evaluator, Log};
use crate::tso::TimestampOracle;

/// How long a replica whose lease lapsed tries to confirm its leadership with a quorum.
const READ_INDEX_TIMEOUT: Duration = Duration::from_secs(2);

/// The log of a replicated range: its Raft group.
struct RaftLog<E: Engine> {
    range: u64,
    node: u64,
    raft: raft::Raft<E>,
}

impl<E: Engine> RaftLog<E> {
    fn not_leaseholder(&self, leader: Option<u64>) -> Error {
        Error::NotLeaseholder {
            range: self.range,
            node: self.node,
            leader: leader.filter(|&l| l != self.node),
        }
    }

    fn read_error(
        &self,
        e: RaftError<raft::TypeConfig, LinearizableReadError<raft::TypeConfig>>,
    ) -> Error {
        match e {
            RaftError::APIError(LinearizableReadError::ForwardToLeader(f)) => {
                self.not_leaseholder(f.leader_id)
            }
            RaftError::APIError(LinearizableReadError::QuorumNotEnough(q)) => {
                tracing::debug!(range = self.range, "no quorum: {q}");
                self.not_leaseholder(None)
            }
            RaftError::Fatal(f) => Error::NodeUnreachable {
                node: self.node,
                detail: format!("replica of range {} stopped: {f}", self.range),
            },
        }
    }
}

#[async_trait]
impl<E: Engine> Log for RaftLog<E> {
    async fn ready(&self) -> Result<()> {
        match self.raft.ensure_linearizable(ReadPolicy::LeaseRead).await {
            Ok(_) => return Ok(()),
            Err(RaftError::APIError(LinearizableReadError::ForwardToLeader(f)))
                if f.reason == ForwardReason::LeaseExpired => {}
            Err(e) => return Err(self.read_error(e)),
        }
        match tokio::time::timeout(
            READ_INDEX_TIMEOUT,
            self.raft.ensure_linearizable(ReadPolicy::ReadIndex),
        )
        .await
        {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(self.read_error(e)),
            Err(_) => Err(self.not_leaseholder(None)),
        }
    }

    async fn append(&self, batch: WriteBatch, _durable: bool) -> Result<()> {
        let cmd = raft::Command::from_batch(&batch).map_err(|e| Error::Ambiguous(e.to_string()))?;
        match self.raft.client_write(cmd).await {
            Ok(_) => Ok(()),
            // Rejected before its entry was appended: nothing happened.
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                Err(self.not_leaseholder(f.leader_id))
            }
            Err(e) => Err(Error::Ambiguous(format!(
                "range {} on node {}: {e}",
                self.range, self.node
            ))),
        }
    }
}

/// One replica of a range on this node.
pub struct Replica<E: Engine> {
    desc: RangeDesc,
    eval: Evaluator<E, RaftLog<E>>,
}

impl<E: Engine> Replica<E> {
    /// Serves `desc` on node `node` through `raft`, the range's Raft member on this node,
    /// whose state machine writes to `engine`.
    pub fn new(
        node: u64,
        desc: RangeDesc,
        raft: raft::Raft<E>,
        engine: Arc<E>,
        tso: Arc<dyn TimestampOracle>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let log = RaftLog {
            range: desc.id,
            node,
            raft,
        };
        Replica {
            desc,
            eval: Evaluator::new(engine, log, tso, clock),
        }
    }

    /// Returns the range this replica serves.
    pub fn desc(&self) -> &RangeDesc {
        &self.desc
    }

    /// Returns the replica's Raft member.
    pub fn raft(&self) -> &raft::Raft<E> {
        &self.eval.log().raft
    }

    /// Returns once this replica is the leaseholder (with a valid lease) and has applied
    /// every entry committed before now.
    pub(crate) async fn ready(&self) -> Result<()> {
        self.eval.log().ready().await
    }

    /// Proposes a write batch evaluated outside the evaluator (it takes no latches: only
    /// for keys no request writes) and returns once it is applied here.
    pub(crate) async fn propose(&self, batch: WriteBatch) -> Result<()> {
        self.eval.log().append(batch, true).await
    }

    /// Executes `req` if this replica is the leaseholder and the request's keys are in
    /// the range.
    pub async fn execute(&self, req: Request) -> Result<Response> {
        let key = req.routing_key();
        if !self.desc.span.contains(key) {
            return Err(Error::KeyOutsideRange {
                range: self.desc.id,
                key: key.to_vec(),
            });
        }
        self.eval.execute(req).await
    }
}

/// A node's replicas, by range id.
pub struct Store<E: Engine> {
    node: u64,
    replicas: RwLock<BTreeMap<u64, Arc<Replica<E>>>>,
}

impl<E: Engine> Store<E> {
    /// Returns node `node`'s store with no replicas.
    pub fn new(node: u64) -> Self {
        Store {
            node,
            replicas: RwLock::default(),
        }
    }

    /// Returns the node's id.
    pub fn node(&self) -> u64 {
        self.node
    }

    /// Adds a replica.
    pub fn add(&self, replica: Arc<Replica<E>>) {
        self.replicas
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(replica.desc.id, replica);
    }

    /// Returns the replica of `range`.
    pub fn get(&self, range: u64) -> Option<Arc<Replica<E>>> {
        self.replicas
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&range)
            .cloned()
    }

    /// Returns every replica.
    pub fn replicas(&self) -> Vec<Arc<Replica<E>>> {
        self.replicas
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Executes `req` on this node's replica of `range`.
    pub async fn execute(&self, range: u64, req: Request) -> Result<Response> {
        let replica = self.get(range).ok_or(Error::RangeNotFound {
            range,
            node: self.node,
        })?;
        replica.execute(req).await
    }
}
