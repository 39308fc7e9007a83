//! Size-based splits: every so often, the leaseholder of each range that grew by more
//! than an eighth of the size limit since it was last measured (or was never measured
//! since the replica started) measures its span, and splits a range over the limit at
//! the key that halves it. Measuring reads the range's MVCC versions (keys and values),
//! stopping at twice the limit, off the async runtime.

use std::sync::Arc;
use std::time::Duration;

use mvcc::Span;
use storage::{Engine, Keyspace};
use tokio::sync::watch;

use crate::KvService;
use crate::error::Result;
use crate::replica::{Store, is_placeholder};

/// Most split-point candidates kept while measuring a range.
const MAX_MARKS: usize = 4096;

/// When ranges split by size.
#[derive(Clone, Debug)]
pub struct AutoSplitConfig {
    /// A range larger than this splits in two (bytes of MVCC keys and values).
    pub max_bytes: u64,
    /// How often the leaseholders look.
    pub interval: Duration,
}

impl Default for AutoSplitConfig {
    fn default() -> Self {
        AutoSplitConfig {
            max_bytes: 64 << 20,
            interval: Duration::from_secs(10),
        }
    }
}

/// Returns the bytes of the MVCC versions of `span` (keys and values), counting no
/// further than `limit`, and the user key at which the bytes before it reach half of
/// what was counted (`None` if no key other than the span's start qualifies).
pub fn measure<E: Engine>(engine: &E, span: &Span, limit: u64) -> Result<(u64, Option<Vec<u8>>)> {
    let (start, end) = mvcc::key::keyspace_bounds(Keyspace::Mvcc, span);
    let (start, end) = (
        start.as_ref().map(Vec::as_slice),
        end.as_ref().map(Vec::as_slice),
    );
    let mut total = 0u64;
    // Where user keys start, as (bytes before it, its framed prefix); thinned out as the
    // scan goes so a large range costs no more than a few thousand entries.
    let mut marks: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut last_prefix: Vec<u8> = Vec::new();
    let mut step = 1u64;
    let mut next_mark = 0u64;
    for kv in engine.scan(Keyspace::Mvcc, start, end, false) {
        let (k, v) = kv?;
        let (prefix, _) = mvcc::key::split(&k)?;
        if prefix != last_prefix.as_slice() {
            if total >= next_mark {
                marks.push((total, prefix.to_vec()));
                next_mark = total + step;
                if marks.len() >= MAX_MARKS {
                    let mut i = 0;
                    marks.retain(|_| {
                        i += 1;
                        i % 2 == 1
                    });
                    step *= 2;
                }
            }
            last_prefix = prefix.to_vec();
        }
        total += (k.len() + v.len()) as u64;
        if total >= limit {
            break;
        }
    }
    let half = total / 2;
    let middle = marks
        .iter()
        .find(|(before, _)| *before >= half)
        .or(marks.last())
        .map(|(_, prefix)| mvcc::key::user_key(prefix))
        .transpose()?
        .filter(|k| *k > span.start);
    Ok((total, middle))
}

/// Splits the ranges this node leads once they are over the limit, until `stop`.
pub async fn run<E: Engine>(
    store: Arc<Store<E>>,
    kv: Arc<dyn KvService>,
    engine: Arc<E>,
    config: AutoSplitConfig,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(config.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
        for replica in store.replicas() {
            if !replica.is_leader() {
                continue;
            }
            match replica.take_written() {
                Some(n) if n < config.max_bytes / 8 => continue,
                _ => {}
            }
            let desc = replica.desc();
            if is_placeholder(&desc.span) {
                continue;
            }
            let (engine, span, limit) = (engine.clone(), desc.span.clone(), config.max_bytes * 2);
            let measured = raft::blocking(move || measure(engine.as_ref(), &span, limit)).await;
            let (bytes, middle) = match measured {
                Ok(Ok(m)) => m,
                Ok(Err(e)) => {
                    tracing::warn!(range = desc.id, "measuring the range: {e}");
                    continue;
                }
                Err(e) => {
                    tracing::warn!(range = desc.id, "measuring the range: {e}");
                    continue;
                }
            };
            let Some(key) = middle.filter(|_| bytes > config.max_bytes) else {
                continue;
            };
            match kv.split_at(&key).await {
                Ok(ranges) => tracing::info!(
                    range = desc.id,
                    bytes,
                    ?ranges,
                    "split a range over {} bytes",
                    config.max_bytes
                ),
                Err(e) => tracing::warn!(range = desc.id, bytes, "size split failed: {e}"),
            }
        }
    }
}
