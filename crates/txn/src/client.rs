//! The transaction client: begins transactions and runs garbage collection.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base::{Clock, Timestamp};
use kv::tso::TimestampOracle;
use kv::{KvService, Request, Response};
use mvcc::Span;

use crate::error::{Error, Result};
use crate::transaction::Transaction;

/// Tuning of transactions.
#[derive(Clone, Debug)]
pub struct TxnConfig {
    /// How long a transaction's locks are protected from resolvers, in milliseconds after
    /// they are taken; a live transaction renews its primary lock's TTL every third of it
    /// (a heartbeat), so only the locks of a dead one run out.
    pub lock_ttl_ms: u64,
    /// How long to wait for another live transaction's lock before giving up.
    pub lock_wait_timeout: Duration,
    /// Largest total size of one transaction's buffered writes.
    pub max_txn_bytes: usize,
    /// Versions older than this (and not needed by a running transaction of this node)
    /// may be removed. A transaction may not run longer than this less a margin (a tenth,
    /// at most a minute): past that it fails with [`Error::TxnTooOld`], so GC on any node
    /// never removes a version a running transaction of another node can still read.
    /// Zero keeps no history and sets no limit (transactions of this node only are
    /// protected: for single-node stores and tests).
    pub gc_ttl_ms: u64,
    /// How often a node runs GC over the ranges (on a cluster, the node leading the meta
    /// range does, one range at a time through each range's leaseholder).
    pub gc_interval: Duration,
}

impl Default for TxnConfig {
    fn default() -> Self {
        TxnConfig {
            lock_ttl_ms: 3_000,
            lock_wait_timeout: Duration::from_secs(30),
            // Enough for loading ~2 million rows of pgbench_accounts in one transaction
            // (pgbench -i -s 20); the writes are buffered in memory until commit.
            max_txn_bytes: 256 * 1024 * 1024,
            gc_ttl_ms: 4 * 60 * 60 * 1000,
            gc_interval: Duration::from_secs(5 * 60),
        }
    }
}

impl TxnConfig {
    /// Checks the settings.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.lock_ttl_ms == 0 {
            return Err("lock_ttl_ms must be positive".into());
        }
        if self.max_txn_bytes == 0 {
            return Err("max_txn_bytes must be positive".into());
        }
        if self.gc_interval.is_zero() {
            return Err("gc_interval must be positive".into());
        }
        Ok(())
    }
}

/// What a GC run did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GcReport {
    pub safe_point: Timestamp,
    pub keys_scanned: usize,
    pub versions_deleted: usize,
}

pub(crate) struct Inner {
    pub(crate) kv: Arc<dyn KvService>,
    pub(crate) tso: Arc<dyn TimestampOracle>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) config: TxnConfig,
    /// Start timestamps of running transactions, with counts.
    active: Mutex<BTreeMap<Timestamp, usize>>,
    /// Transactions between asking for a start timestamp and registering it.
    beginning: AtomicUsize,
    /// Commits of secondaries still running in the background.
    background: AtomicUsize,
    /// Notified when `background` drops to zero.
    settled: tokio::sync::Notify,
}

/// Begins transactions against a key-value service. Cheap to clone.
#[derive(Clone)]
pub struct TxnClient {
    pub(crate) inner: Arc<Inner>,
}

impl TxnClient {
    /// Returns a client of `kv`, taking timestamps from `tso`.
    pub fn new(
        kv: Arc<dyn KvService>,
        tso: Arc<dyn TimestampOracle>,
        clock: Arc<dyn Clock>,
        config: TxnConfig,
    ) -> TxnClient {
        let inner = Inner {
            kv,
            tso,
            clock,
            config,
            active: Mutex::new(BTreeMap::new()),
            beginning: AtomicUsize::new(0),
            background: AtomicUsize::new(0),
            settled: tokio::sync::Notify::new(),
        };
        TxnClient {
            inner: Arc::new(inner),
        }
    }

    /// Begins a serializable transaction.
    pub async fn begin(&self) -> Result<Transaction> {
        self.inner.beginning.fetch_add(1, Ordering::SeqCst);
        // The start timestamp and its successor, reserved for a one-phase commit.
        let ts = self.inner.tso.timestamps(2).await;
        if let Ok(ts) = ts {
            *self.inner.active().entry(ts).or_default() += 1;
        }
        self.inner.beginning.fetch_sub(1, Ordering::SeqCst);
        let ts = ts?;
        Ok(Transaction::new(self.inner.clone(), ts, Some(ts.next())))
    }

    /// Reads `keys` (all in one range) at a fresh timestamp `t` without waiting on locks:
    /// `Some((t, values))` if no transaction holds a lock readers must wait on on any of
    /// them, `None` if one does. A transaction that prewrites one of the keys after this
    /// read takes its timestamps above `t`.
    pub async fn get_unlocked(
        &self,
        keys: &[Vec<u8>],
    ) -> Result<Option<(Timestamp, Vec<Option<Vec<u8>>>)>> {
        let ts = self.inner.tso.timestamp().await?;
        let req = Request::Get {
            keys: keys.to_vec(),
            ts,
            txn: None,
        };
        match self.inner.kv.send(req).await {
            Ok(Response::Values(v)) if v.len() == keys.len() => Ok(Some((ts, v))),
            Ok(other) => Err(crate::resolve::unexpected("Get", &other)),
            Err(kv::Error::Mvcc(mvcc::Error::KeyIsLocked(_))) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Returns the start timestamp of the oldest running transaction.
    pub fn oldest_active(&self) -> Option<Timestamp> {
        self.inner.active().keys().next().copied()
    }

    /// Removes versions that no running or future transaction can read: older than the GC
    /// TTL and older than the oldest running transaction.
    pub async fn gc(&self) -> Result<GcReport> {
        let now = self.inner.tso.timestamp().await?;
        // A transaction that asked for its start timestamp before `now` was taken may not be
        // registered yet; wait for it. Later ones start above `now`.
        while self.inner.beginning.load(Ordering::SeqCst) > 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let mut safe_point = now.minus_ms(self.inner.config.gc_ttl_ms);
        if let Some(oldest) = self.oldest_active() {
            safe_point = safe_point.min(oldest);
        }
        let mut report = GcReport {
            safe_point,
            ..GcReport::default()
        };
        for range in self.inner.kv.ranges(&Span::default()).await? {
            let mut span = range.span.clone();
            loop {
                let req = Request::Gc {
                    span: span.clone(),
                    safe_point,
                    max_keys: 1024,
                };
                let Response::Gc(out) = self.inner.kv.send(req).await? else {
                    return Err(Error::Internal("unexpected response to Gc".into()));
                };
                report.keys_scanned += out.keys_scanned;
                report.versions_deleted += out.versions_deleted;
                match out.resume {
                    Some(resume) => span.start = resume,
                    None => break,
                }
            }
        }
        Ok(report)
    }

    /// Runs [`TxnClient::gc`] every configured interval while `responsible()` says this
    /// node is the one to (on a cluster, the leader of the meta range), logging what each
    /// run did. Never returns: run it as a task and drop or abort it to stop.
    pub async fn gc_loop(&self, responsible: impl Fn() -> bool) {
        let mut every = tokio::time::interval(self.inner.config.gc_interval);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        every.tick().await;
        loop {
            every.tick().await;
            if !responsible() {
                continue;
            }
            match self.gc().await {
                Ok(r) => tracing::info!(
                    safe_point = %r.safe_point,
                    keys_scanned = r.keys_scanned,
                    versions_deleted = r.versions_deleted,
                    "GC pass done"
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "GC pass failed; retrying at the next interval")
                }
            }
        }
    }

    /// Waits until the work committed transactions left to the background (committing
    /// their secondaries) is done: before a clean shutdown, or where a test looks at
    /// locks.
    pub async fn settled(&self) {
        loop {
            let notified = self.inner.settled.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.inner.background.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }

    /// Returns the key-value service under the transactions (for splits and other
    /// administration of ranges).
    pub fn kv(&self) -> &Arc<dyn KvService> {
        &self.inner.kv
    }

    /// Returns the configuration.
    pub fn config(&self) -> &TxnConfig {
        &self.inner.config
    }
}

impl Inner {
    fn active(&self) -> std::sync::MutexGuard<'_, BTreeMap<Timestamp, usize>> {
        self.active.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Fails with [`Error::TxnTooOld`] if a transaction started at `start_ts` has run too
    /// long for GC to keep its snapshot (see [`TxnConfig::gc_ttl_ms`]).
    pub(crate) fn check_age(&self, start_ts: Timestamp) -> Result<()> {
        let ttl = self.config.gc_ttl_ms;
        if ttl == 0 {
            return Ok(());
        }
        let limit_ms = ttl - (ttl / 10).min(60_000);
        let age_ms = self.clock.now_ms().saturating_sub(start_ts.physical_ms());
        if age_ms >= limit_ms {
            return Err(Error::TxnTooOld { age_ms, limit_ms });
        }
        Ok(())
    }

    /// Returns the lock TTL (ms after `start_ts`) that protects locks taken now for the
    /// configured TTL.
    pub(crate) fn ttl_from_now(&self, start_ts: Timestamp) -> u64 {
        self.clock
            .now_ms()
            .saturating_sub(start_ts.physical_ms())
            .saturating_add(self.config.lock_ttl_ms)
    }

    /// Runs `work` in the background, counted until it is done (see
    /// [`TxnClient::settled`]).
    pub(crate) fn in_background(
        self: &Arc<Self>,
        work: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        self.background.fetch_add(1, Ordering::SeqCst);
        let inner = self.clone();
        tokio::spawn(async move {
            work.await;
            if inner.background.fetch_sub(1, Ordering::SeqCst) == 1 {
                inner.settled.notify_waiters();
            }
        });
    }

    /// Forgets a finished transaction.
    pub(crate) fn deregister(&self, start_ts: Timestamp) {
        let mut active = self.active();
        if let Some(n) = active.get_mut(&start_ts) {
            *n -= 1;
            if *n == 0 {
                active.remove(&start_ts);
            }
        }
    }
}
