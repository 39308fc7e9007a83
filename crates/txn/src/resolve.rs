//! Meeting other transactions' locks: ask the primary, then resolve or wait.

use std::sync::Arc;
use std::time::Duration;

use base::Timestamp;
use kv::{KvService, Request, Response, TxnRef};
use mvcc::LockInfo;
use mvcc::commands::TxnStatus;
use tokio::time::Instant;

use crate::client::Inner;
use crate::error::{Error, Result};

/// How many waits-for links deadlock detection follows from the holder of a lock.
const MAX_HOPS: usize = 32;
/// How much longer than its coming slice of waiting a wait is noted for.
const NOTE_MARGIN_MS: u64 = 100;
/// The first slice of waiting for a live holder's lock; each next one is twice as long,
/// up to [`LAST_SLICE`]. A wait ends as soon as the lock is released (the range wakes its
/// waiters), so the slices only set how soon a waiter asks the holder's primary whether
/// it is still alive and looks for a deadlock: after 100 ms at first (CockroachDB's push
/// delay; PostgreSQL's `deadlock_timeout` is 1 s). Every slice that runs out costs the
/// waiter four requests or so (the status check, the deadlock search, the lock again):
/// under TPC-B at 32 clients, slices starting at 20 ms ran out twice per transaction.
const FIRST_SLICE: Duration = Duration::from_millis(100);
const LAST_SLICE: Duration = Duration::from_millis(500);

/// Exponential backoff with a deadline, for waiting on a live transaction's lock; and who
/// waits, for deadlock detection.
pub(crate) struct Backoff {
    deadline: Instant,
    next: Duration,
    /// The waiting transaction, if it may hold locks others wait for.
    waiter: Option<TxnRef>,
    /// The waiting transaction under the other primary its locks may name (its first one,
    /// once it moved its primary at commit): its waits are noted under both names, so
    /// whoever follows a chain of waits through it finds them by either.
    alias: Option<TxnRef>,
    /// Waits so far.
    rounds: u32,
    /// Whether the waiter noted a wait at its primary's range (to remove once it ends).
    noted: bool,
}

impl Backoff {
    /// A backoff for `waiter` (a transaction that may hold locks, or `None` for one that
    /// holds none and so cannot be part of a deadlock), giving up after `timeout`.
    pub(crate) fn new(timeout: Duration, waiter: Option<TxnRef>) -> Self {
        Backoff {
            deadline: Instant::now() + timeout,
            next: FIRST_SLICE,
            waiter,
            alias: None,
            rounds: 0,
            noted: false,
        }
    }

    /// Notes the waiter's waits under `alias` too (see [`Backoff::alias`]).
    pub(crate) fn also_known_as(mut self, alias: Option<TxnRef>) -> Self {
        self.alias = alias.filter(|a| Some(a) != self.waiter.as_ref());
        self
    }

    /// The next slice of waiting, in milliseconds: a growing part of the remaining time (so
    /// that a holder that died is noticed once its TTL runs out).
    pub(crate) fn slice_ms(&self) -> u64 {
        let left = self.deadline.saturating_duration_since(Instant::now());
        self.next.min(left).as_millis().max(1) as u64
    }

    /// Fails once the time is up.
    fn check_time(&self, lock: &LockInfo) -> Result<()> {
        if Instant::now() >= self.deadline {
            return Err(Error::LockWaitTimeout {
                key: lock.key.clone(),
                holder: lock.start_ts,
            });
        }
        Ok(())
    }

    /// Notes that a slice was spent waiting: the next one is twice as long.
    fn advance(&mut self) {
        self.next = (self.next * 2).min(LAST_SLICE);
        self.rounds += 1;
    }

    /// Waits for `lock` to be released, at most the next slice; fails if the time is up.
    async fn wait(&mut self, kv: &dyn KvService, lock: &LockInfo) -> Result<()> {
        let slice = self.slice_ms();
        self.check_time(lock)?;
        self.advance();
        kv.send(Request::WaitLock {
            key: lock.key.clone(),
            start_ts: lock.start_ts,
            timeout_ms: slice,
        })
        .await?;
        Ok(())
    }
}

impl Inner {
    /// Deals with a lock met by a read or a write: rolls it forward or back if its
    /// transaction is finished (or dead: its TTL ran out), or waits a little while it is
    /// alive. Returns when the caller should retry its request.
    pub(crate) async fn resolve(&self, lock: &LockInfo, backoff: &mut Backoff) -> Result<()> {
        if self.settle(lock, backoff).await? {
            backoff.wait(self.kv.as_ref(), lock).await?;
        }
        Ok(())
    }

    /// Deals with a lock that a pessimistic lock request met after waiting a slice for it
    /// at the leaseholder (or at once, its holder's time to live having run out): as
    /// [`Inner::resolve`], except that the wait is over. The backoff moves on to the next
    /// slice first, the one the request waits next, so a wait noted for deadlock detection
    /// lasts as long as that wait.
    pub(crate) async fn waited_for(&self, lock: &LockInfo, backoff: &mut Backoff) -> Result<()> {
        backoff.advance();
        if self.settle(lock, backoff).await? {
            backoff.check_time(lock)?;
        }
        Ok(())
    }

    /// Rolls `lock` forward or back if its transaction is finished (or dead), and returns
    /// false; for a live holder, looks for a deadlock (once a slice of waiting went by) and
    /// returns true: the caller should wait.
    async fn settle(&self, lock: &LockInfo, backoff: &mut Backoff) -> Result<bool> {
        let expired = lock.is_expired(self.clock.now_ms());
        let status = self.txn_status(lock, expired).await?;
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
            TxnStatus::Locked { .. } | TxnStatus::NotFound | TxnStatus::Moved { .. } => {
                // A short wait is the common case: look for a deadlock only once the
                // first slice went by without the lock going away.
                if let Some(me) = backoff.waiter.clone().filter(|_| backoff.rounds > 0)
                    && self.is_deadlock_victim(&me, lock, backoff).await
                {
                    return Err(Error::Deadlock {
                        key: lock.key.clone(),
                        holder: lock.start_ts,
                    });
                }
                return Ok(true);
            }
        };
        self.resolve_keys(vec![lock.key.clone()], lock.start_ts, commit_ts)
            .await?;
        Ok(false)
    }

    /// Asks the primary that `lock` names for its transaction's status, following the
    /// transaction to the primary it moved to at commit (a pessimistic lock names the
    /// primary the transaction had when it took it). A `Moved` answer comes back only if
    /// the transaction moved more than once, which it does not: the caller then waits.
    async fn txn_status(&self, lock: &LockInfo, expired: bool) -> Result<TxnStatus> {
        let mut primary = lock.primary.clone();
        for _ in 0..2 {
            let req = Request::CheckTxnStatus {
                primary,
                start_ts: lock.start_ts,
                // Only a dead transaction's missing primary may be rolled back: a live one
                // may still be prewriting it.
                rollback_if_missing: expired,
            };
            match self.kv.send(req).await? {
                Response::TxnStatus(TxnStatus::Moved { primary: to }) => primary = to,
                Response::TxnStatus(s) => return Ok(s),
                other => return Err(unexpected("CheckTxnStatus", &other)),
            }
        }
        Ok(TxnStatus::Moved { primary })
    }

    /// Notes that `me` waits for the holder of `lock`, then follows the chain of waits
    /// from the holder (each transaction's wait is noted at its primary's range). If the
    /// chain leads back to `me`, the youngest transaction on the cycle gives up: returns
    /// true if that is `me`. The others keep waiting; the victim finds the same cycle when
    /// it looks. Detection is best effort: a failed lookup counts as no cycle this time.
    async fn is_deadlock_victim(
        &self,
        me: &TxnRef,
        lock: &LockInfo,
        backoff: &mut Backoff,
    ) -> bool {
        let holder = TxnRef {
            primary: lock.primary.clone(),
            start_ts: lock.start_ts,
        };
        if holder.start_ts == me.start_ts {
            return false;
        }
        // For the coming slice of waiting, and a little more for the round trips.
        let for_ms = backoff.slice_ms() + NOTE_MARGIN_MS;
        for txn in std::iter::once(me).chain(&backoff.alias) {
            let note = Request::NoteWait {
                txn: txn.clone(),
                holder: holder.clone(),
                for_ms,
            };
            if let Err(e) = self.kv.send(note).await {
                tracing::debug!(error = %e, "noting a lock wait failed");
                return false;
            }
        }
        backoff.noted = true;
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

    /// Removes the wait `backoff`'s waiter noted, if it did: its wait is over. In the
    /// background (the waiter holds locks meanwhile) and best effort: a note left behind
    /// ends by itself.
    pub(crate) fn wait_over(self: &Arc<Self>, backoff: &Backoff) {
        let Some(me) = backoff.waiter.clone().filter(|_| backoff.noted) else {
            return;
        };
        let clears: Vec<Request> = std::iter::once(me)
            .chain(backoff.alias.clone())
            .map(|txn| Request::NoteWait {
                holder: txn.clone(),
                txn,
                for_ms: 0,
            })
            .collect();
        let kv = self.kv.clone();
        self.in_background(async move {
            for clear in clears {
                if let Err(e) = kv.send(clear).await {
                    tracing::debug!(error = %e, "removing a lock wait note failed");
                }
            }
        });
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
