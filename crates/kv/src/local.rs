//! The single-node key-value service: MVCC commands on one storage engine.

use std::sync::Arc;

use async_trait::async_trait;
use base::{Clock, Timestamp};
use mvcc::commands;
use mvcc::{MvccReader, Span};
use storage::{Engine, GroupCommit, WriteBatch};

use crate::KvService;
use crate::api::{RangeDesc, Request, Response};
use crate::error::{Error, Result};
use crate::latches::Latches;
use crate::tso::TimestampOracle;

/// Configuration of a [`LocalKv`].
#[derive(Clone, Debug, Default)]
pub struct LocalKvConfig {
    /// Keys at which the key space is divided into ranges. A single node serves them all;
    /// the division decides which transactions commit in one phase, so tests use it to
    /// exercise two-phase commits.
    pub split_keys: Vec<Vec<u8>>,
}

/// Serves key-value requests from one node's storage engine.
pub struct LocalKv<E: Engine> {
    commit: Arc<GroupCommit<E>>,
    tso: Arc<dyn TimestampOracle>,
    clock: Arc<dyn Clock>,
    latches: Latches,
    ranges: Vec<RangeDesc>,
    lock_waits: LockWaits,
}

/// Where transactions blocked on a lock wait: one notification slot per key hash, woken
/// whenever a command that can release locks on keys of that slot has been applied.
struct LockWaits {
    slots: Vec<tokio::sync::Notify>,
}

impl LockWaits {
    const SLOTS: usize = 256;

    fn new() -> Self {
        LockWaits {
            slots: (0..Self::SLOTS)
                .map(|_| tokio::sync::Notify::new())
                .collect(),
        }
    }

    fn slot(&self, key: &[u8]) -> &tokio::sync::Notify {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut h);
        &self.slots[(h.finish() as usize) % Self::SLOTS]
    }

    /// Wakes the waiters of `keys`' slots.
    fn released<'k>(&self, keys: impl IntoIterator<Item = &'k [u8]>) {
        for k in keys {
            self.slot(k).notify_waiters();
        }
    }
}

impl<E: Engine> LocalKv<E> {
    /// Serves `commit`'s engine, taking one-phase commit timestamps from `tso`.
    pub fn new(
        commit: Arc<GroupCommit<E>>,
        tso: Arc<dyn TimestampOracle>,
        clock: Arc<dyn Clock>,
        config: LocalKvConfig,
    ) -> Self {
        let mut splits = config.split_keys;
        splits.sort();
        splits.dedup();
        splits.retain(|k| !k.is_empty());
        let mut ranges = Vec::with_capacity(splits.len() + 1);
        let mut start = Vec::new();
        for (i, end) in splits
            .into_iter()
            .chain(std::iter::once(Vec::new()))
            .enumerate()
        {
            ranges.push(RangeDesc {
                id: i as u64 + 1,
                span: Span {
                    start,
                    end: end.clone(),
                },
            });
            start = end;
        }
        LocalKv {
            commit,
            tso,
            clock,
            latches: Latches::new(),
            ranges,
            lock_waits: LockWaits::new(),
        }
    }

    /// Returns the engine.
    pub fn engine(&self) -> &Arc<E> {
        self.commit.engine()
    }

    /// Returns the group commit in front of the engine.
    pub fn group_commit(&self) -> &Arc<GroupCommit<E>> {
        &self.commit
    }

    fn reader(&self) -> MvccReader<'_, E> {
        MvccReader::new(self.commit.engine())
    }

    /// Runs a write command under latches on `keys` and waits until its batch is durable.
    async fn write<T>(
        &self,
        keys: Vec<Vec<u8>>,
        durable: bool,
        run: impl FnOnce(&MvccReader<'_, E>, &mut WriteBatch) -> mvcc::Result<T>,
    ) -> Result<T> {
        let _latches = self.latches.acquire(keys).await;
        let mut batch = WriteBatch::new();
        let out = run(&self.reader(), &mut batch)?;
        self.apply(&batch, durable).await?;
        Ok(out)
    }

    async fn apply(&self, batch: &WriteBatch, durable: bool) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let ticket = self.commit.write(batch)?;
        if durable {
            self.commit.wait_async(ticket).await?;
        }
        Ok(())
    }

    async fn one_phase_commit(
        &self,
        mutations: Vec<mvcc::Mutation>,
        reads: commands::ReadSet,
        start_ts: Timestamp,
    ) -> Result<Timestamp> {
        let mutation_keys: Vec<Vec<u8>> = mutations.iter().map(|m| m.key().to_vec()).collect();
        let latches = self.latches.acquire(mutation_keys.clone()).await;
        // The commit timestamp is taken under the latches: a reader that takes its
        // timestamp later finds the latches and waits for this commit.
        let commit_ts = self.tso.timestamp().await?;
        let read_keys = reads.keys.iter().map(|(k, _)| k.as_slice());
        let read_spans = reads.spans.iter().map(|(s, _)| s);
        if let Some(key) = self.latches.find_foreign(read_keys, read_spans, &latches) {
            return Err(Error::ReadInFlight { key });
        }
        let mut batch = WriteBatch::new();
        commands::commit_one_phase(
            &self.reader(),
            &mut batch,
            mutations,
            &reads,
            start_ts,
            commit_ts,
        )?;
        self.apply(&batch, true).await?;
        drop(latches);
        // Pessimistic locks of the transaction became versions.
        self.lock_waits
            .released(mutation_keys.iter().map(Vec::as_slice));
        Ok(commit_ts)
    }
}

#[async_trait]
impl<E: Engine> KvService for LocalKv<E> {
    async fn send(&self, req: Request) -> Result<Response> {
        match req {
            Request::Get { keys, ts, txn } => {
                self.latches.wait_keys(&keys).await;
                let reader = self.reader();
                let values = keys
                    .iter()
                    .map(|k| reader.get(k, ts, txn))
                    .collect::<mvcc::Result<_>>()?;
                Ok(Response::Values(values))
            }
            Request::Scan {
                span,
                ts,
                limit,
                reverse,
                txn,
            } => {
                self.latches.wait_span(&span).await;
                Ok(Response::Scan(
                    self.reader().scan(&span, ts, limit, reverse, txn)?,
                ))
            }
            Request::PessimisticLock {
                keys,
                txn,
                for_update_ts,
            } => {
                // A lost pessimistic lock costs at most a conflict later (the prewrite and
                // read validation re-check the key), so it need not wait for an fsync.
                let values = self
                    .write(keys.clone(), false, |r, b| {
                        keys.iter()
                            .map(|k| {
                                commands::acquire_pessimistic_lock(r, b, k, &txn, for_update_ts)
                            })
                            .collect::<mvcc::Result<Vec<_>>>()
                    })
                    .await?;
                Ok(Response::Values(values))
            }
            Request::Prewrite { txn, mutations } => {
                let keys = mutations.iter().map(|m| m.key().to_vec()).collect();
                self.write(keys, true, |r, b| commands::prewrite(r, b, &txn, mutations))
                    .await?;
                Ok(Response::Done)
            }
            Request::ValidateReads {
                reads,
                start_ts,
                commit_ts,
            } => {
                let keys: Vec<_> = reads.keys.iter().map(|(k, _)| k.clone()).collect();
                self.latches.wait_keys(&keys).await;
                for (span, _) in &reads.spans {
                    self.latches.wait_span(span).await;
                }
                commands::validate_reads(&self.reader(), &reads, start_ts, commit_ts)?;
                Ok(Response::Done)
            }
            Request::Commit {
                keys,
                start_ts,
                commit_ts,
            } => {
                self.write(keys.clone(), true, |r, b| {
                    commands::commit(r, b, &keys, start_ts, commit_ts)
                })
                .await?;
                self.lock_waits.released(keys.iter().map(Vec::as_slice));
                Ok(Response::Done)
            }
            Request::Rollback { keys, start_ts } => {
                self.write(keys.clone(), true, |r, b| {
                    commands::rollback(r, b, &keys, start_ts)
                })
                .await?;
                self.lock_waits.released(keys.iter().map(Vec::as_slice));
                Ok(Response::Done)
            }
            Request::CheckTxnStatus {
                primary,
                start_ts,
                rollback_if_missing,
            } => {
                let now = Timestamp::from_parts(self.clock.now_ms(), 0);
                let status = self
                    .write(vec![primary.clone()], true, |r, b| {
                        commands::check_txn_status(
                            r,
                            b,
                            &primary,
                            start_ts,
                            now,
                            rollback_if_missing,
                        )
                    })
                    .await?;
                // Only a rollback (of an expired lock) releases anything; waking waiters
                // on every status check would make waiters on one slot wake each other.
                if status == commands::TxnStatus::RolledBack {
                    self.lock_waits.released([primary.as_slice()]);
                }
                Ok(Response::TxnStatus(status))
            }
            Request::ResolveLock {
                keys,
                start_ts,
                commit_ts,
            } => {
                let n = self
                    .write(keys.clone(), true, |r, b| {
                        commands::resolve_lock(r, b, &keys, start_ts, commit_ts)
                    })
                    .await?;
                self.lock_waits.released(keys.iter().map(Vec::as_slice));
                Ok(Response::Resolved(n))
            }
            Request::OnePhaseCommit {
                mutations,
                reads,
                start_ts,
            } => Ok(Response::Committed(
                self.one_phase_commit(mutations, reads, start_ts).await?,
            )),
            Request::WaitLock {
                key,
                start_ts,
                timeout_ms,
            } => {
                let notified = self.lock_waits.slot(&key).notified();
                tokio::pin!(notified);
                // Registered before the check, so a release right after it still wakes us.
                notified.as_mut().enable();
                let held = self
                    .reader()
                    .lock(&key)?
                    .is_some_and(|l| l.start_ts == start_ts);
                if held {
                    let _ = tokio::time::timeout(
                        std::time::Duration::from_millis(timeout_ms),
                        notified,
                    )
                    .await;
                }
                Ok(Response::Done)
            }
            Request::Gc {
                span,
                safe_point,
                max_keys,
            } => {
                let mut batch = WriteBatch::new();
                let out = commands::gc(&self.reader(), &mut batch, &span, safe_point, max_keys)?;
                self.apply(&batch, true).await?;
                Ok(Response::Gc(out))
            }
        }
    }

    async fn range_of(&self, key: &[u8]) -> Result<RangeDesc> {
        let r = self
            .ranges
            .iter()
            .find(|r| r.span.contains(key))
            .unwrap_or(&self.ranges[0]);
        Ok(r.clone())
    }

    async fn ranges(&self, span: &Span) -> Result<Vec<RangeDesc>> {
        Ok(self
            .ranges
            .iter()
            .filter(|r| overlaps(&r.span, span))
            .cloned()
            .collect())
    }
}

/// Returns true if two spans share a key.
fn overlaps(a: &Span, b: &Span) -> bool {
    let a_before_b_ends = b.end.is_empty() || a.start < b.end;
    let b_before_a_ends = a.end.is_empty() || b.start < a.end;
    a_before_b_ends && b_before_a_ends
}
