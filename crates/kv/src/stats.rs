//! Counters of what a node's key-value and Raft layers do, for its `/metrics`: how many
//! requests of each kind its replicas executed, and how many Raft messages it sent. They
//! answer "what does one transaction cost" by dividing by the transactions done.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::Request;

/// The kinds of [`Request`], as the `kind` label of `tessera_kv_requests_total`.
pub const REQUEST_KINDS: [&str; 16] = [
    "get",
    "scan",
    "pessimistic_lock",
    "prewrite",
    "validate_reads",
    "commit",
    "rollback",
    "check_txn_status",
    "heartbeat",
    "note_wait",
    "waits_for",
    "resolve_lock",
    "one_phase_commit",
    "wait_lock",
    "gc",
    "split",
];

/// The kinds of Raft message, as the `kind` label of `tessera_raft_messages_sent_total`.
pub const RAFT_KINDS: [&str; 4] = ["append", "vote", "pre_vote", "transfer_leader"];

impl Request {
    /// The request's index in [`REQUEST_KINDS`].
    pub fn kind(&self) -> usize {
        match self {
            Request::Get { .. } => 0,
            Request::Scan { .. } => 1,
            Request::PessimisticLock { .. } => 2,
            Request::Prewrite { .. } => 3,
            Request::ValidateReads { .. } => 4,
            Request::Commit { .. } => 5,
            Request::Rollback { .. } => 6,
            Request::CheckTxnStatus { .. } => 7,
            Request::Heartbeat { .. } => 8,
            Request::NoteWait { .. } => 9,
            Request::WaitsFor { .. } => 10,
            Request::ResolveLock { .. } => 11,
            Request::OnePhaseCommit { .. } => 12,
            Request::WaitLock { .. } => 13,
            Request::Gc { .. } => 14,
            Request::Split { .. } => 15,
        }
    }
}

/// One node's counters. All are totals since the process started.
#[derive(Default)]
pub struct NodeStats {
    requests: [AtomicU64; REQUEST_KINDS.len()],
    remote_requests: AtomicU64,
    raft_sent: [AtomicU64; RAFT_KINDS.len()],
    raft_calls: AtomicU64,
    tso_requests: AtomicU64,
}

/// A copy of a node's counters at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Requests executed by the node's replicas, by kind ([`REQUEST_KINDS`]).
    pub requests: [u64; REQUEST_KINDS.len()],
    /// Of those, the ones that came from other nodes.
    pub remote_requests: u64,
    /// Raft messages sent to other nodes, by kind ([`RAFT_KINDS`]).
    pub raft_sent: [u64; RAFT_KINDS.len()],
    /// Calls that carried them (many messages share a call).
    pub raft_calls: u64,
    /// Timestamp requests the node's oracle served for other nodes.
    pub tso_requests: u64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl NodeStats {
    pub(crate) fn request(&self, req: &Request) {
        bump(&self.requests[req.kind()]);
    }

    pub(crate) fn remote_request(&self) {
        bump(&self.remote_requests);
    }

    /// Counts a Raft message of wire kind `kind` (`rpc::peers::APPEND`, ...).
    pub(crate) fn raft_message(&self, kind: u32) {
        use crate::rpc::peers::{APPEND, PRE_VOTE, TRANSFER_LEADER, VOTE};
        let i = match kind {
            APPEND => 0,
            VOTE => 1,
            PRE_VOTE => 2,
            TRANSFER_LEADER => 3,
            _ => return,
        };
        bump(&self.raft_sent[i]);
    }

    pub(crate) fn raft_call(&self) {
        bump(&self.raft_calls);
    }

    pub(crate) fn tso_request(&self) {
        bump(&self.tso_requests);
    }

    /// Returns the counters now.
    pub fn snapshot(&self) -> StatsSnapshot {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            requests: self.requests.each_ref().map(load),
            remote_requests: load(&self.remote_requests),
            raft_sent: self.raft_sent.each_ref().map(load),
            raft_calls: load(&self.raft_calls),
            tso_requests: load(&self.tso_requests),
        }
    }
}
