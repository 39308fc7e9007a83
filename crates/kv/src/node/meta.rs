//! Range descriptors in the meta range: one record per range, keyed by the range's end
//! key (the last range, which ends nowhere, sorts after every other), so the range holding
//! a key is the first record keyed after it.
//!
//! ```text
//!  system key (RangeDescriptor, 0x01 ++ end)   -> RangeDesc   (a range ending at `end`)
//!  system key (RangeDescriptor, 0x02)          -> RangeDesc   (the last range)
//! ```
//!
//! `tessera init` records the initial ranges; the leaseholder of a range that splits
//! records both halves (the left one under its new end, the right one over the left's old
//! record). A node seeds its directory from them when it starts, and its router asks
//! them for a key's range when no node named one (`RangeResolver`). The meta range itself
//! never splits, so reading it never needs them.

use async_trait::async_trait;
use base::Timestamp;
use codec::layout::{SystemKind, system_key, system_prefix};
use mvcc::{Mutation, Span};

use crate::KvService;
use crate::api::{RangeDesc, Request, Response};
use crate::error::{Error, Result};
use crate::rpc::{decode, encode};
use crate::tso::TimestampOracle;

/// Most descriptors written in one commit, or read in one scan.
const BATCH: usize = 500;

const FINITE: u8 = 1;
const LAST: u8 = 2;

/// Returns the meta key of the descriptor of a range ending at `end` (empty: the last).
pub fn descriptor_key(end: &[u8]) -> Vec<u8> {
    let mut suffix = Vec::with_capacity(end.len() + 1);
    if end.is_empty() {
        suffix.push(LAST);
    } else {
        suffix.push(FINITE);
        suffix.extend_from_slice(end);
    }
    system_key(SystemKind::RangeDescriptor, &suffix)
}

/// Returns the span of every descriptor.
fn descriptors_span() -> Span {
    let mut end = system_prefix(SystemKind::RangeDescriptor);
    end.push(LAST + 1);
    Span::new(system_prefix(SystemKind::RangeDescriptor), end)
}

/// Records `descs` in the meta range (in commits of up to [`BATCH`]).
pub async fn record(
    kv: &dyn KvService,
    tso: &dyn TimestampOracle,
    descs: &[RangeDesc],
) -> Result<()> {
    for chunk in descs.chunks(BATCH) {
        let mutations: Vec<Mutation> = chunk
            .iter()
            .map(|d| Mutation::Put {
                key: descriptor_key(&d.span.end),
                value: encode(d),
            })
            .collect();
        let mut last = None;
        for _ in 0..20 {
            let start_ts = tso.timestamp().await?;
            let req = Request::OnePhaseCommit {
                mutations: mutations.clone(),
                reads: Default::default(),
                start_ts,
                deadline: None,
                reserved: None,
            };
            match kv.send(req).await {
                Ok(_) => {
                    last = None;
                    break;
                }
                Err(e) if e.is_retryable() => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        if let Some(e) = last {
            return Err(e);
        }
    }
    Ok(())
}

/// Reads descriptors from the meta range in key order, from the one of the range holding
/// `from` on, at most `limit`.
pub async fn read(
    kv: &dyn KvService,
    tso: &dyn TimestampOracle,
    from: &[u8],
    limit: usize,
) -> Result<Vec<RangeDesc>> {
    let ts = tso.timestamp().await?;
    let mut span = descriptors_span();
    if !from.is_empty() {
        // The first range ending after `from`.
        let mut start = descriptor_key(from);
        start.push(0);
        span.start = start;
    }
    scan(kv, span, ts, limit).await
}

async fn scan(
    kv: &dyn KvService,
    span: Span,
    ts: Timestamp,
    limit: usize,
) -> Result<Vec<RangeDesc>> {
    let mut out = Vec::new();
    let mut span = span;
    while out.len() < limit {
        let req = Request::Scan {
            span: span.clone(),
            ts,
            limit: (limit - out.len()).min(BATCH),
            reverse: false,
            txn: None,
        };
        let Response::Scan(found) = kv.send(req).await? else {
            return Err(Error::CrossRange("unexpected answer to a scan".into()));
        };
        for (key, value) in found.pairs {
            out.push(
                decode::<RangeDesc>(&value)
                    .map_err(|detail| Error::Mvcc(mvcc::Error::Corrupt { key, detail }))?,
            );
        }
        match found.resume {
            Some(r) => span.start = r,
            None => break,
        }
    }
    Ok(out)
}

/// Reads every descriptor.
pub async fn read_all(kv: &dyn KvService, tso: &dyn TimestampOracle) -> Result<Vec<RangeDesc>> {
    let ts = tso.timestamp().await?;
    scan(kv, descriptors_span(), ts, usize::MAX).await
}

/// Finds a key's range in the meta range for a router no node could tell.
pub struct MetaResolver<K: KvService, T: TimestampOracle> {
    pub kv: std::sync::Weak<K>,
    pub tso: std::sync::Arc<T>,
}

#[async_trait]
impl<K: KvService, T: TimestampOracle> crate::router::RangeResolver for MetaResolver<K, T> {
    async fn resolve(&self, key: &[u8]) -> Result<Option<RangeDesc>> {
        let Some(kv) = self.kv.upgrade() else {
            return Err(Error::Shutdown);
        };
        let found = read(kv.as_ref(), self.tso.as_ref(), key, 1).await?;
        Ok(found.into_iter().next().filter(|d| d.span.contains(key)))
    }
}
