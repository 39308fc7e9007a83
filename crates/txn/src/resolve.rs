//! Meeting other transactions' locks: ask the primary, then resolve or wait.

use std::time::{Duration, Instant};

use base::Timestamp;
use kv::{KvService, Request, Response, TxnRef};
use mvcc::LockInfo;
use mvcc::commands::TxnStatus;

use crate::client::Inner;
use crate::error::{Error, Result};

/// How many waits-for links deadlock detection follows from the holder of a lock.
const MAX_HOPS: usize = 32;

/// Exponential backoff with a deadline, for waiting on a live transaction's lock; and who
/// waits, for deadlock detection.
pub(crate) struct Backoff {
    deadline: Instant,
    next: Duration,
    /// The waiting transaction, if it may hold locks others wait for.
    waiter: Option<TxnRef>,
    /// Waits so far.
    rounds: u32,
}

impl Backoff {
    /// A backoff for `waiter` (a transaction that may hold locks, or `None` for one that
    /// holds none and so cannot be part of a deadlock), giving up after `timeout`.
    pub(crate) fn new(timeout: Duration, waiter: Option<TxnRef>) -> Self {
        Backoff {
            deadline: Instant::now() + timeout,
            next: Duration::from_millis(20),
            waiter,
            rounds: 0,
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
        self.rounds += 1;
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
        tracing::debug!(
            key = %codec::layout::pretty(&lock.key),
            holder = %lock.start_ts,
            kind = ?lock.kind,
            expired,
            ?status,
            "met a lock"
        );
        let commit_ts = match status {
            TxnStatus::Committed(ts) => Some(ts),
            TxnStatus::RolledBack => None,
            TxnStatus::Locked { .. } | TxnStatus::NotFound => {
                // A short wait is the common case: look for a deadlock only once the
                // first slice went by without the lock going away.
                if let Some(me) = backoff.waiter.as_ref().filter(|_| backoff.rounds > 0)
                    && self.is_deadlock_victim(me, lock).await
                {
                    return Err(Error::Deadlock {
                        key: lock.key.clone(),
                        holder: lock.start_ts,
                    });
                }
                return backoff.wait(self.kv.as_ref(), lock).await;
            }
        };
        self.resolve_keys(vec![lock.key.clone()], lock.start_ts, commit_ts)
            .await
    }

    /// Notes that `me` waits for the holder of `lock`, then follows the chain of waits
    /// from the holder (each transaction's wait is noted at its primary's range). If the
    /// chain leads back to `me`, the youngest transaction on the cycle gives up: returns
    /// true if that is `me`. The others keep waiting; the victim finds the same cycle when
    /// it looks. Detection is best effort: a failed lookup counts as no cycle this time.
    async fn is_deadlock_victim(&self, me: &TxnRef, lock: &LockInfo) -> bool {
        let holder = TxnRef {
            primary: lock.primary.clone(),
            start_ts: lock.start_ts,
        };
        if holder.start_ts == me.start_ts {
            return false;
        }
        let note = Request::NoteWait {
            txn: me.clone(),
            holder: holder.clone(),
        };
        if let Err(e) = self.kv.send(note).await {
            tracing::debug!(error = %e, "noting a lock wait failed");
            return false;
        }
        let mut youngest = me.start_ts.max(holder.start_ts);
        let mut at = holder;
        for _ in 0..MAX_HOPS {
            let next = match self.kv.send(Request::WaitsFor { txn: at }).await {
                Ok(Response::WaitsFor(Some(next))) => next,
                Ok(_) => return false,
                Err(e) => {
                    tracing::debug!(error = %e, "following a lock wait failed");
                    return false;
                }
            };
            if next.start_ts == me.start_ts {
                if youngest == me.start_ts {
                    tracing::debug!(start_ts = %me.start_ts, "deadlock: this transaction gives up");
                    return true;
                }
                return false;
            }
            youngest = youngest.max(next.start_ts);
            at = next;
        }
        false
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
