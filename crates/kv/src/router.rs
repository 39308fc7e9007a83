//! The distributed key-value service: routes each request to the leaseholder of the range
//! that owns its keys, wherever it is, and retries when the leaseholder moved.
//!
//! ```text
//!   txn ──▶ DistKv ──lookup──▶ RangeDirectory (descriptors + replica nodes)
//!             │ leaseholder cache (range → node)
//!             └──▶ NodeTransport::send(node, range, req) ──▶ that node's Store ──▶ Replica
//! ```
//!
//! On an answer that another replica should serve (not the leaseholder, no such replica,
//! node unreachable) the router tries the leaseholder the answer names, or the next
//! replica, backing off, until a deadline; then it fails with [`Error::Unavailable`]. A
//! write whose outcome is unknown ([`Error::Ambiguous`]) is retried only if running it twice
//! is harmless ([`Request::is_idempotent`]); otherwise the ambiguity reaches the client.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use mvcc::Span;

use crate::KvService;
use crate::api::{RangeDesc, Request, Response};
use crate::error::{Error, Result};

/// A range and the nodes that hold its replicas.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangeInfo {
    pub desc: RangeDesc,
    pub replicas: Vec<u64>,
}

/// Where the ranges are.
pub trait RangeDirectory: Send + Sync + 'static {
    /// Returns the range that owns `key`.
    fn lookup(&self, key: &[u8]) -> Result<RangeInfo>;

    /// Returns the ranges that overlap `span`, in key order.
    fn overlapping(&self, span: &Span) -> Result<Vec<RangeInfo>>;
}

/// A fixed set of ranges covering the whole key space, in key order.
#[derive(Clone, Debug)]
pub struct StaticDirectory {
    ranges: Vec<RangeInfo>,
}

impl StaticDirectory {
    /// Returns the directory of `ranges`, which must cover the key space without gaps or
    /// overlaps.
    pub fn new(mut ranges: Vec<RangeInfo>) -> Result<Self> {
        ranges.sort_by(|a, b| a.desc.span.start.cmp(&b.desc.span.start));
        let mut expect: &[u8] = &[];
        for (i, r) in ranges.iter().enumerate() {
            let last = i + 1 == ranges.len();
            if r.desc.span.start != expect || (last != r.desc.span.end.is_empty()) {
                return Err(Error::CrossRange(format!(
                    "range descriptors do not tile the key space at range {}",
                    r.desc.id
                )));
            }
            expect = &r.desc.span.end;
        }
        if ranges.is_empty() {
            return Err(Error::CrossRange("no ranges".into()));
        }
        Ok(StaticDirectory { ranges })
    }

    /// Returns every range.
    pub fn ranges(&self) -> &[RangeInfo] {
        &self.ranges
    }
}

impl RangeDirectory for StaticDirectory {
    fn lookup(&self, key: &[u8]) -> Result<RangeInfo> {
        // The last range whose start is at or below the key.
        let i = self
            .ranges
            .partition_point(|r| r.desc.span.start.as_slice() <= key);
        Ok(self.ranges[i.saturating_sub(1)].clone())
    }

    fn overlapping(&self, span: &Span) -> Result<Vec<RangeInfo>> {
        Ok(self
            .ranges
            .iter()
            .filter(|r| overlaps(&r.desc.span, span))
            .cloned()
            .collect())
    }
}

/// Returns true if two spans share a key.
pub(crate) fn overlaps(a: &Span, b: &Span) -> bool {
    let a_before_b_ends = b.end.is_empty() || a.start < b.end;
    let b_before_a_ends = a.end.is_empty() || b.start < a.end;
    a_before_b_ends && b_before_a_ends
}

/// Sends requests to other nodes' stores.
#[async_trait]
pub trait NodeTransport: Send + Sync + 'static {
    /// Executes `req` on node `to`'s replica of `range`.
    async fn send(&self, to: u64, range: u64, req: Request) -> Result<Response>;
}

/// Settings of a [`DistKv`].
#[derive(Clone, Debug)]
pub struct RouterConfig {
    /// How long a request keeps trying replicas before it fails as unavailable.
    pub deadline: Duration,
    /// How long one replica may take to answer before the router gives up on it (a write
    /// that is not idempotent then fails as ambiguous: it may still commit).
    pub attempt_timeout: Duration,
    /// The first pause between rounds over the replicas; it doubles up to `max_backoff`.
    pub backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RouterConfig {
    fn default() -> Self {
        RouterConfig {
            deadline: Duration::from_secs(10),
            attempt_timeout: Duration::from_secs(3),
            backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(250),
        }
    }
}

/// The key-value service of a cluster, as seen from one node.
pub struct DistKv {
    directory: Arc<dyn RangeDirectory>,
    transport: Arc<dyn NodeTransport>,
    config: RouterConfig,
    /// The last node that served each range.
    leaseholders: Mutex<HashMap<u64, u64>>,
}

impl DistKv {
    /// Routes through `directory` and `transport`.
    pub fn new(
        directory: Arc<dyn RangeDirectory>,
        transport: Arc<dyn NodeTransport>,
        config: RouterConfig,
    ) -> Self {
        DistKv {
            directory,
            transport,
            config,
            leaseholders: Mutex::default(),
        }
    }

    fn cached_leaseholder(&self, range: u64) -> Option<u64> {
        self.leaseholders
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&range)
            .copied()
    }

    fn remember(&self, range: u64, node: u64) {
        self.leaseholders
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(range, node);
    }
}

#[async_trait]
impl KvService for DistKv {
    async fn send(&self, req: Request) -> Result<Response> {
        let started = tokio::time::Instant::now();
        let info = self.directory.lookup(req.routing_key())?;
        let range = info.desc.id;
        let mut backoff = self.config.backoff;
        // The replica to try next: the cached leaseholder, else the first replica.
        let mut next = self
            .cached_leaseholder(range)
            .filter(|n| info.replicas.contains(n))
            .unwrap_or(info.replicas[0]);
        let mut tried_in_round = 0;
        loop {
            let remaining = self.config.deadline.saturating_sub(started.elapsed());
            let attempt = tokio::time::timeout(
                remaining.min(self.config.attempt_timeout),
                self.transport.send(next, range, req.clone()),
            );
            let answer = match attempt.await {
                Ok(answer) => answer,
                Err(_) if !req.is_idempotent() => {
                    return Err(Error::Ambiguous(format!(
                        "node {next} did not answer for range {range} in time"
                    )));
                }
                Err(_) => Err(Error::NodeUnreachable {
                    node: next,
                    detail: "no answer in time".into(),
                }),
            };
            let err = match answer {
                Ok(resp) => {
                    self.remember(range, next);
                    return Ok(resp);
                }
                Err(Error::Ambiguous(detail)) if !req.is_idempotent() => {
                    return Err(Error::Ambiguous(detail));
                }
                Err(e @ Error::Ambiguous(_)) => e,
                Err(e) if e.is_routing() => e,
                Err(e) => return Err(e),
            };
            if started.elapsed() >= self.config.deadline {
                return Err(Error::Unavailable {
                    range,
                    detail: format!(
                        "no leaseholder answered in {:?}; last: {err}",
                        self.config.deadline
                    ),
                });
            }
            tracing::debug!(range, node = next, "retrying: {err}");
            let hinted = match &err {
                Error::NotLeaseholder {
                    leader: Some(l), ..
                } if *l != next && info.replicas.contains(l) => Some(*l),
                _ => None,
            };
            tried_in_round += 1;
            next = match hinted {
                Some(l) => l,
                None => {
                    let pos = info.replicas.iter().position(|&n| n == next).unwrap_or(0);
                    info.replicas[(pos + 1) % info.replicas.len()]
                }
            };
            // After as many tries as there are replicas (an election in progress, a
            // partition, hints pointing at each other), pause.
            if tried_in_round >= info.replicas.len() {
                tried_in_round = 0;
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(self.config.max_backoff);
            }
        }
    }

    async fn range_of(&self, key: &[u8]) -> Result<RangeDesc> {
        Ok(self.directory.lookup(key)?.desc)
    }

    async fn ranges(&self, span: &Span) -> Result<Vec<RangeDesc>> {
        Ok(self
            .directory
            .overlapping(span)?
            .into_iter()
            .map(|r| r.desc)
            .collect())
    }
}
