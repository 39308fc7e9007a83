//! The crash-test workload: writers that commit transactions and report each
//! acknowledged commit, and the check of what a killed writer left behind.
//!
//! Writer `w`'s transaction number `n` reads `a/counter/w`, writes `a/w/n` and `z/w/n` (on
//! both sides of the range split at `m`, so it commits in two phases) and sets the counter
//! to `n`. After a crash, for every writer:
//! - every acknowledged `n` is at most the counter (durability);
//! - every `n` up to the counter has both of its keys, and none above it has either
//!   (atomicity: no half-applied and no uncommitted transaction is visible).

use std::collections::BTreeMap;
use std::path::Path;

use kv::LocalKvConfig;
use server::NodeConfig;
use storage::FjallConfig;
use txn::{Span, TxnClient};

/// Returns the node configuration both the writer and the checker use.
pub fn config(store: &Path) -> NodeConfig {
    let mut c = NodeConfig::new(store);
    c.fjall = FjallConfig::for_tests();
    c.kv = LocalKvConfig {
        split_keys: vec![b"m".to_vec()],
    };
    c
}

fn counter_key(w: u64) -> Vec<u8> {
    format!("a/counter/{w}").into_bytes()
}

fn row_key(side: char, w: u64, n: u64) -> Vec<u8> {
    format!("{side}/{w}/{n:012}").into_bytes()
}

fn parse_u64(v: &[u8]) -> Result<u64, String> {
    std::str::from_utf8(v)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("not a number: {v:?}"))
}

/// Reads writer `w`'s counter: the number of its last committed transaction (0 if none).
pub async fn counter(client: &TxnClient, w: u64) -> Result<u64, String> {
    let mut t = client.begin().await.map_err(|e| e.to_string())?;
    let v = t.get(&counter_key(w)).await.map_err(|e| e.to_string())?;
    t.commit().await.map_err(|e| e.to_string())?;
    v.map_or(Ok(0), |v| parse_u64(&v))
}

/// Commits transactions for writer `w` from number `start` on, calling `ack` after each
/// commit returns. Conflicts are retried; other errors end the writer.
pub async fn run_writer(
    client: TxnClient,
    w: u64,
    start: u64,
    mut ack: impl FnMut(u64, u64),
) -> Result<(), String> {
    let mut n = start;
    loop {
        let result = async {
            let mut t = client.begin().await?;
            let prev = t.get(&counter_key(w)).await?;
            t.put(row_key('a', w, n), n.to_string().into_bytes())?;
            t.put(row_key('z', w, n), n.to_string().into_bytes())?;
            t.put(counter_key(w), n.to_string().into_bytes())?;
            t.commit().await?;
            Ok::<_, txn::Error>(prev)
        }
        .await;
        match result {
            Ok(prev) => {
                let prev = prev.map_or(Ok(0), |v| parse_u64(&v))?;
                if prev + 1 != n {
                    return Err(format!("writer {w}: counter was {prev} before commit {n}"));
                }
                ack(w, n);
                n += 1;
            }
            Err(e) if e.is_retryable() => continue,
            Err(e) => return Err(format!("writer {w}: {e}")),
        }
    }
}

/// Checks the store after a crash against what was acknowledged (`acked[w]` = the highest
/// acknowledged number of writer `w`). Returns each writer's counter.
pub async fn verify(
    client: &TxnClient,
    writers: u64,
    acked: &BTreeMap<u64, u64>,
) -> Result<BTreeMap<u64, u64>, String> {
    let mut counters = BTreeMap::new();
    for w in 0..writers {
        let c = counter(client, w).await?;
        let a = acked.get(&w).copied().unwrap_or(0);
        if a > c {
            return Err(format!(
                "writer {w}: commit {a} was acknowledged but the counter is {c}"
            ));
        }
        for side in ['a', 'z'] {
            let mut t = client.begin().await.map_err(|e| e.to_string())?;
            let prefix = format!("{side}/{w}/").into_bytes();
            let mut end = prefix.clone();
            *end.last_mut().expect("non-empty") += 1;
            let rows = t
                .scan(&Span::new(prefix, end), usize::MAX, false)
                .await
                .map_err(|e| e.to_string())?
                .pairs;
            t.commit().await.map_err(|e| e.to_string())?;
            let found: Vec<u64> = rows
                .iter()
                .map(|(_, v)| parse_u64(v))
                .collect::<Result<_, _>>()?;
            let expected: Vec<u64> = (1..=c).collect();
            if found != expected {
                let missing: Vec<_> = expected
                    .iter()
                    .filter(|n| !found.contains(n))
                    .take(5)
                    .collect();
                let extra: Vec<_> = found
                    .iter()
                    .filter(|n| **n > c || **n == 0)
                    .take(5)
                    .collect();
                return Err(format!(
                    "writer {w} side {side}: counter {c}, {} rows; missing {missing:?}, extra {extra:?}",
                    found.len()
                ));
            }
        }
        counters.insert(w, c);
    }
    Ok(counters)
}
