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
//! A replica serves the keys of its range's span as applied here. A split (proposed only
//! by the leaseholder, [`Request::Split`]) shrinks it: the split holds the replica's gate
//! exclusively from its proposal until it is applied, while every other request holds
//! it shared from its span check until it is done, so no request evaluated against the
//! old span is in flight when the span changes. A request whose keys are outside the
//! span is answered [`Error::KeyOutsideRange`], naming the range that holds them if the
//! node has a replica of it, so routers fix their directories.
//!
//! A [`Store`] is a node's set of replicas, addressed by range id.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use base::Clock;
use mvcc::Span;
use openraft::ReadPolicy;
use openraft::errors::{ClientWriteError, ForwardReason, LinearizableReadError, RaftError};
use storage::{Engine, WriteBatch};

use crate::api::{RangeDesc, Request, Response};
use crate::error::{Error, Result};
use crate::eval::{Evaluator, Log};
use crate::stats::NodeStats;
use crate::tso::TimestampOracle;

/// How long a replica whose lease lapsed tries to confirm its leadership with a quorum.
const READ_INDEX_TIMEOUT: Duration = Duration::from_secs(2);

/// The log of a replicated range: its Raft group.
struct RaftLog<E: Engine> {
    range: u64,
    node: u64,
    raft: raft::Raft<E>,
    /// Bytes of write batches proposed here since the range's size was last checked.
    written: std::sync::atomic::AtomicU64,
    /// Whether the replica's Raft ticker is stopped (the range is quiesced).
    quiesced: std::sync::atomic::AtomicBool,
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
            // The lease lapsed (a quiesced range sends no heartbeats): confirm leadership
            // with a quorum instead.
            Err(RaftError::APIError(LinearizableReadError::ForwardToLeader(f)))
                if f.reason == ForwardReason::LeaseExpired => {}
            Err(RaftError::APIError(LinearizableReadError::QuorumNotEnough(_))) => {}
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
        self.written.fetch_add(
            batch.size_bytes() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        self.propose(cmd).await
    }

    fn lease_epoch(&self) -> u64 {
        use openraft::async_runtime::WatchReceiver;
        self.raft.metrics().borrow_watched().current_term
    }
}

impl<E: Engine> RaftLog<E> {
    /// Starts the Raft ticker again if the range was quiesced.
    fn wake(&self) -> bool {
        let was = self
            .quiesced
            .swap(false, std::sync::atomic::Ordering::Relaxed);
        if was {
            self.raft.runtime_config().tick(true);
        }
        was
    }

    /// Proposes `cmd` and returns once it is applied here.
    async fn propose(&self, cmd: raft::Command) -> Result<()> {
        // A write wakes a quiesced leader: its followers need heartbeats again.
        self.wake();
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
    id: u64,
    /// The span as applied here (shared with the state machine, which shrinks it).
    span: Arc<RwLock<Span>>,
    /// Held shared by requests, exclusively by a split (see the module comment).
    gate: tokio::sync::RwLock<()>,
    /// Whether the size of the range was looked at since this replica started.
    size_seen: std::sync::atomic::AtomicBool,
    eval: Evaluator<E, RaftLog<E>>,
}

impl<E: Engine> Replica<E> {
    /// Serves range `range` on node `node` through `raft`, the range's Raft member on this
    /// node, whose state machine writes to `engine` and keeps the range's span in `span`
    /// ([`raft::StateMachine::span_cell`]).
    pub fn new(
        node: u64,
        range: u64,
        span: Arc<RwLock<Span>>,
        raft: raft::Raft<E>,
        engine: Arc<E>,
        tso: Arc<dyn TimestampOracle>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let log = RaftLog {
            range,
            node,
            raft,
            written: std::sync::atomic::AtomicU64::new(0),
            quiesced: std::sync::atomic::AtomicBool::new(false),
        };
        Replica {
            id: range,
            span,
            gate: tokio::sync::RwLock::new(()),
            size_seen: std::sync::atomic::AtomicBool::new(false),
            eval: Evaluator::new(engine, log, tso, clock),
        }
    }

    /// Returns the range this replica serves, as applied here.
    pub fn desc(&self) -> RangeDesc {
        RangeDesc {
            id: self.id,
            span: self.span(),
        }
    }

    fn span(&self) -> Span {
        self.span.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Stops the replica's Raft ticker: no heartbeats while it leads, no election while
    /// it follows (see `kv::node::quiesce`). A write through it, or [`Replica::wake`],
    /// starts it again.
    pub fn quiesce(&self) {
        let log = self.eval.log();
        if !log
            .quiesced
            .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            log.raft.runtime_config().tick(false);
        }
    }

    /// Starts the replica's Raft ticker again; returns true if it was stopped.
    pub fn wake(&self) -> bool {
        self.eval.log().wake()
    }

    /// Returns true if the replica's Raft ticker is stopped.
    pub fn is_quiesced(&self) -> bool {
        self.eval
            .log()
            .quiesced
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Returns true if this replica leads its range now.
    pub fn is_leader(&self) -> bool {
        use openraft::async_runtime::WatchReceiver;
        let m = self.raft().metrics().borrow_watched().clone();
        m.current_leader == Some(m.id)
    }

    /// Returns the bytes of writes proposed here since the last call (`None` the first
    /// time: nothing is known about the range's size yet).
    pub fn take_written(&self) -> Option<u64> {
        let log = self.eval.log();
        let n = log.written.swap(0, std::sync::atomic::Ordering::Relaxed);
        let first = !self
            .size_seen
            .swap(true, std::sync::atomic::Ordering::Relaxed);
        (!first).then_some(n)
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
        if let Request::Split { key, right } = req {
            return self.split(key, right).await;
        }
        if let Request::PessimisticLock { wait_ms, .. } = req {
            return self
                .eval
                .locking(wait_ms, || self.execute_once(req.clone()))
                .await;
        }
        self.execute_once(req).await
    }

    async fn execute_once(&self, req: Request) -> Result<Response> {
        // A lock wait only waits: it must not hold a split up for its whole timeout.
        let _gate = match req {
            Request::WaitLock { .. } => None,
            _ => Some(self.gate.read().await),
        };
        // Ready first: a split committed by an earlier leader is applied by then, so the
        // span checked is the one the request is evaluated against.
        self.ready().await?;
        if let Some(key) = req.outside(&self.span()) {
            return Err(Error::KeyOutsideRange {
                range: self.id,
                key: key.to_vec(),
                owner: None,
            });
        }
        self.eval.execute(req).await
    }

    /// Splits the range at `key` (see [`Request::Split`]).
    async fn split(&self, key: Vec<u8>, right: u64) -> Result<Response> {
        let _gate = self.gate.write().await;
        self.ready().await?;
        let span = self.span();
        if key == span.start {
            return Ok(Response::Ranges(vec![self.desc()]));
        }
        if span.start.is_empty() {
            return Err(Error::Unsupported(
                "splitting the first range (it holds the meta records)".into(),
            ));
        }
        if !span.contains(&key) {
            return Err(Error::KeyOutsideRange {
                range: self.id,
                key,
                owner: None,
            });
        }
        self.eval
            .log()
            .propose(raft::Command::split(key.clone(), right))
            .await?;
        let left = self.desc();
        if left.span.end != key {
            // Applied but refused: the key was not inside the span the log had.
            return Err(Error::Ambiguous(format!(
                "range {} did not split at {}",
                self.id,
                codec::layout::pretty(&key)
            )));
        }
        Ok(Response::Ranges(vec![
            left,
            RangeDesc {
                id: right,
                span: Span::new(key, span.end),
            },
        ]))
    }
}

/// A node's replicas, by range id.
pub struct Store<E: Engine> {
    node: u64,
    replicas: RwLock<BTreeMap<u64, Arc<Replica<E>>>>,
    stats: Arc<NodeStats>,
}

impl<E: Engine> Store<E> {
    /// Returns node `node`'s store with no replicas, counting its requests in `stats`.
    pub fn new(node: u64, stats: Arc<NodeStats>) -> Self {
        Store {
            node,
            replicas: RwLock::default(),
            stats,
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
            .insert(replica.id, replica);
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

    /// Returns another replica here (not of `range`) whose span overlaps `span`: a
    /// snapshot of `range` holding `span` must wait until that replica has applied the
    /// split that gave the keys away.
    pub fn overlapping(&self, range: u64, span: &Span) -> Option<u64> {
        self.replicas()
            .iter()
            .filter(|r| r.id != range)
            .map(|r| r.desc())
            .find(|d| !is_placeholder(&d.span) && crate::router::overlaps(&d.span, span))
            .map(|d| d.id)
    }

    /// Refuses a snapshot of `range` holding `span` while another replica here holds
    /// part of it.
    pub fn admit_snapshot(&self, range: u64, span: &Span) -> std::result::Result<(), String> {
        match self.overlapping(range, span) {
            None => Ok(()),
            Some(other) => Err(format!(
                "node {} cannot take a snapshot of range {range} yet: its replica of range \
                 {other} still holds part of it (the split has not been applied here)",
                self.node
            )),
        }
    }

    /// Returns the range of a replica here that holds `key`.
    pub fn owner_of(&self, key: &[u8]) -> Option<RangeDesc> {
        self.replicas()
            .iter()
            .map(|r| r.desc())
            .find(|d| d.span.contains(key))
    }

    /// Executes `req` on this node's replica of `range`. A split returns once the new
    /// range's replica runs here and has campaigned, so it gets a leader at once.
    pub async fn execute(&self, range: u64, req: Request) -> Result<Response> {
        self.stats.request(&req);
        let replica = self.get(range).ok_or(Error::RangeNotFound {
            range,
            node: self.node,
        })?;
        match replica.execute(req).await {
            Err(Error::KeyOutsideRange {
                range,
                key,
                owner: None,
            }) => Err(Error::KeyOutsideRange {
                range,
                owner: self.owner_of(&key),
                key,
            }),
            Ok(Response::Ranges(descs)) if descs.len() == 2 => {
                self.campaign(descs[1].id).await;
                Ok(Response::Ranges(descs))
            }
            other => other,
        }
    }

    /// Waits (a little) for the replica of a range just split off here to start, and
    /// has it campaign, so the new range gets a leader without waiting for an election
    /// timeout.
    async fn campaign(&self, range: u64) {
        let deadline = tokio::time::Instant::now() + SPLIT_CAMPAIGN;
        let replica = loop {
            if let Some(r) = self.get(range) {
                break r;
            }
            if tokio::time::Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        let raft = replica.raft();
        let _ = raft.trigger().elect(false).await;
        let _ = raft
            .wait(Some(
                deadline.saturating_duration_since(tokio::time::Instant::now()),
            ))
            .metrics(|m| m.current_leader.is_some(), "a leader after the split")
            .await;
    }
}

/// The span of a replica created empty, for a range whose split this node missed: it
/// holds no key until the leader's snapshot gives it its span.
pub const PLACEHOLDER_SPAN: (&[u8], &[u8]) = (&[0], &[0]);

/// Returns the span an empty replica starts with (see [`PLACEHOLDER_SPAN`]).
pub fn placeholder_span() -> Span {
    Span::new(PLACEHOLDER_SPAN.0.to_vec(), PLACEHOLDER_SPAN.1.to_vec())
}

pub(crate) fn is_placeholder(span: &Span) -> bool {
    !span.end.is_empty() && span.start >= span.end
}

/// How long a split waits for the new range's replica to start and elect a leader.
const SPLIT_CAMPAIGN: Duration = Duration::from_secs(3);
