//! Meeting other transactions' locks: ask the primary, then resolve or wait.

use std::time::{Duration, Instant};

use base::Timestamp;
use kv::{KvService, Request, Response};
use mvcc::LockInfo;
use mvcc::commands::TxnStatus;

use crate::client::Inner;
use crate::error::{Error, Result};

/// Exponential backoff with a deadline, for waiting on a live transaction's lock.
pub(crate) struct Backoff {
    deadline: Instant,
    next: Duration,
}

impl Backoff {
    pub(crate) fn new(timeout: Duration) -> Self {
        Backoff {
            deadline: Instant::now() + timeout,
            next: Duration::from_millis(20),
        }
    }

    /// Waits for `lock` to be released, at most a growing slice of the remaining time (so
    /// that a holder that died is noticed once its TTL runs out).
    async fn wait(&mut self, kv: &dyn KvService, lock: &LockInfo) -> Result<()> {
        let now = Instant::now();
        if now >= self.deadline {
            return Err(Error::LockWaitTimeout {
                key: lock.key.clone(),
                holder: lock.start_ts,
            });
        }
        let slice = self.next.min(self.deadline - now);
        kv.send(Request::WaitLock {
            key: lock.key.clone(),
            start_ts: lock.start_ts,
            timeout_ms: slice.as_millis().max(1) as u64,
        })
        .await?;
        self.next = (self.next * 2).min(Duration::from_millis(500));
        Ok(())
    }
}

impl Inner {
    /// Deals with a lock met by a read or a write: rolls it forward or back if its
    /// transaction is finished (or dead: its TTL ran out), or waits a little while it is
    /// alive. Returns when the caller should retry its request.
    pub(crate) async fn resolve(&self, lock: &LockInfo, backoff: &mut Backoff) -> Result<()> {
        let now_ms = self.clock.now_ms();
        let expired = now_ms >= lock.start_ts.physical_ms().saturating_add(lock.ttl_ms);
        let req = Request::CheckTxnStatus {
            primary: lock.primary.clone(),
            start_ts: lock.start_ts,
            // Only a dead transaction's missing primary may be rolled back: a live one may
            // still be prewriting it.
            rollback_if_missing: expired,
        };
        let status = match self.kv.send(req).await? {
            Response::TxnStatus(s) => s,
            other => return Err(unexpected("CheckTxnStatus", &other)),
        };
        let commit_ts = match status {
            TxnStatus::Committed(ts) => Some(ts),
            TxnStatus::RolledBack => None,
            TxnStatus::Locked { .. } | TxnStatus::NotFound => {
                return backoff.wait(self.kv.as_ref(), lock).await;
            }
        };
        self.resolve_keys(vec![lock.key.clone()], lock.start_ts, commit_ts)
            .await
    }

    async fn resolve_keys(
        &self,
        keys: Vec<Vec<u8>>,
        start_ts: Timestamp,
        commit_ts: Option<Timestamp>,
    ) -> Result<()> {
        match self
            .kv
            .send(Request::ResolveLock {
                keys,
                start_ts,
                commit_ts,
            })
            .await?
        {
            Response::Resolved(_) => Ok(()),
            other => Err(unexpected("ResolveLock", &other)),
        }
    }
}

/// Describes a response that does not match its request.
pub(crate) fn unexpected(req: &str, resp: &Response) -> Error {
    Error::Internal(format!("unexpected response to {req}: {resp:?}"))
}
