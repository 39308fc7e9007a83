//! The timestamp oracle: strictly increasing timestamps, across restarts.
//!
//! [`LocalTso`] serves one node. It hands out timestamps close to the wall clock (see
//! [`base::Timestamp`]) and persists a *high-water mark* ahead of what it hands out: before
//! giving out any timestamp above the mark, it durably raises the mark by a window (3 s of
//! physical time by default). After a restart it starts above the persisted mark, so even a
//! clock that went backwards never repeats a timestamp, and it pays one fsync per window,
//! not per timestamp.

use std::sync::Arc;

use async_trait::async_trait;
use base::{Clock, Timestamp};
use codec::layout::{SystemKind, system_key};
use storage::{Engine, GroupCommit, Keyspace, WriteBatch};

use crate::error::{Error, Result};

/// Hands out timestamps that order transactions.
#[async_trait]
pub trait TimestampOracle: Send + Sync + 'static {
    /// Returns a timestamp greater than every one returned before.
    async fn timestamp(&self) -> Result<Timestamp> {
        self.timestamps(1).await
    }

    /// Reserves `count` consecutive timestamps and returns the first.
    async fn timestamps(&self, count: u32) -> Result<Timestamp>;
}

const MARK_FORMAT_V1: u8 = 1;

struct State {
    last: Timestamp,
    limit: Timestamp,
}

/// A timestamp oracle persisted in a node's storage engine.
pub struct LocalTso<E: Engine> {
    commit: Arc<GroupCommit<E>>,
    clock: Arc<dyn Clock>,
    window_ms: u64,
    /// Held briefly to hand out timestamps below the persisted limit.
    state: std::sync::Mutex<State>,
    /// Held while raising the persisted limit, so only one task persists at a time.
    persisting: tokio::sync::Mutex<()>,
}

fn mark_key() -> Vec<u8> {
    system_key(SystemKind::TimestampOracle, b"high-water")
}

impl<E: Engine> LocalTso<E> {
    /// Opens the oracle, resuming above the persisted high-water mark.
    pub fn open(
        commit: Arc<GroupCommit<E>>,
        clock: Arc<dyn Clock>,
        window_ms: u64,
    ) -> Result<Self> {
        let key = mark_key();
        let mark = match commit.engine().get(Keyspace::System, &key)? {
            None => Timestamp::ZERO,
            Some(b) if b.len() == 9 && b[0] == MARK_FORMAT_V1 => {
                Timestamp::new(u64::from_be_bytes(b[1..9].try_into().expect("8 bytes")))
            }
            Some(b) => {
                return Err(Error::Tso(format!(
                    "corrupt high-water mark record ({} bytes, format {:?})",
                    b.len(),
                    b.first()
                )));
            }
        };
        let state = State {
            last: mark,
            limit: mark,
        };
        Ok(LocalTso {
            commit,
            clock,
            window_ms,
            state: std::sync::Mutex::new(state),
            persisting: tokio::sync::Mutex::new(()),
        })
    }

    /// Returns the persisted high-water mark (for tests and status).
    pub fn high_water_mark(&self) -> Timestamp {
        self.state().limit
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hands out `count` timestamps if they fit under the persisted limit; otherwise
    /// returns the limit they need.
    fn try_hand_out(&self, count: u64) -> std::result::Result<Timestamp, Timestamp> {
        let mut s = self.state();
        let now = Timestamp::from_parts(self.clock.now_ms(), 0);
        let first = s.last.next().max(now);
        let last = Timestamp::new(first.get() + count - 1);
        if last > s.limit {
            return Err(last);
        }
        s.last = last;
        Ok(first)
    }
}

#[async_trait]
impl<E: Engine> TimestampOracle for LocalTso<E> {
    async fn timestamps(&self, count: u32) -> Result<Timestamp> {
        let count = u64::from(count.max(1));
        loop {
            let needed = match self.try_hand_out(count) {
                Ok(first) => return Ok(first),
                Err(needed) => needed,
            };
            let _persisting = self.persisting.lock().await;
            if self.state().limit >= needed {
                continue; // Another task raised the limit meanwhile.
            }
            let limit = needed.plus_ms(self.window_ms);
            let mut b = WriteBatch::new();
            let mut v = vec![MARK_FORMAT_V1];
            v.extend_from_slice(&limit.get().to_be_bytes());
            b.put(Keyspace::System, mark_key(), v);
            self.commit
                .commit_async(&b)
                .await
                .map_err(|e| Error::Tso(format!("persisting the high-water mark: {e}")))?;
            let mut s = self.state();
            s.limit = s.limit.max(limit);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base::ManualClock;
    use storage::{FaultEngine, FaultKind, MemoryEngine};

    fn open(
        engine: Arc<FaultEngine<MemoryEngine>>,
        clock: &ManualClock,
    ) -> LocalTso<FaultEngine<MemoryEngine>> {
        let gc = Arc::new(GroupCommit::new(engine));
        LocalTso::open(gc, Arc::new(clock.clone()), 3000).unwrap()
    }

    #[tokio::test]
    async fn strictly_increasing_within_one_millisecond_and_batches() {
        let clock = ManualClock::new(1_000);
        let tso = open(Arc::new(FaultEngine::new(MemoryEngine::new())), &clock);
        let a = tso.timestamp().await.unwrap();
        let b = tso.timestamp().await.unwrap();
        let c = tso.timestamps(10).await.unwrap();
        let d = tso.timestamp().await.unwrap();
        assert_eq!(a, Timestamp::from_parts(1_000, 0));
        assert_eq!(b, a.next());
        assert_eq!(c, b.next());
        assert_eq!(d.get(), c.get() + 10);
        clock.advance(5);
        assert_eq!(
            tso.timestamp().await.unwrap(),
            Timestamp::from_parts(1_005, 0)
        );
    }

    #[tokio::test]
    async fn increasing_across_restarts_even_if_the_clock_goes_back() {
        let clock = ManualClock::new(10_000);
        let engine = Arc::new(FaultEngine::new(MemoryEngine::new()));
        let before = {
            let tso = open(engine.clone(), &clock);
            let t = tso.timestamp().await.unwrap();
            assert_eq!(tso.high_water_mark(), t.plus_ms(3000));
            t
        };
        // Restart from what a crash leaves (only synced writes), with the clock set back.
        clock.set(5_000);
        let tso = open(Arc::new(FaultEngine::new(engine.crash())), &clock);
        let after = tso.timestamp().await.unwrap();
        assert!(
            after > before.plus_ms(3000),
            "{after} must exceed the persisted mark"
        );
    }

    #[tokio::test]
    async fn one_sync_per_window() {
        let clock = ManualClock::new(1_000);
        let engine = Arc::new(FaultEngine::new(MemoryEngine::new()));
        let tso = open(engine.clone(), &clock);
        for _ in 0..100 {
            tso.timestamp().await.unwrap();
            clock.advance(10);
        }
        // 100 timestamps over 1 s of clock time fit in one 3 s window.
        assert_eq!(engine.counts().0, 1, "one persisted mark");
    }

    #[tokio::test]
    async fn a_failed_persist_hands_out_nothing() {
        let clock = ManualClock::new(1_000);
        let engine = Arc::new(FaultEngine::new(MemoryEngine::new()));
        let tso = open(engine.clone(), &clock);
        engine.fail_nth_sync(1, FaultKind::DiskFull);
        let err = tso.timestamp().await.unwrap_err();
        assert!(err.to_string().contains("disk full"), "{err}");
    }
}
