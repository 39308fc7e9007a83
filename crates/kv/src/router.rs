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
use std::sync::{Arc, Mutex, RwLock};
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

    /// Learns that `desc` is a range now (a split made it or changed it).
    fn learn(&self, desc: RangeDesc);
}

/// Finds the range holding a key from an authority (the meta range's descriptors), for a
/// router whose directory is stale and that no node told.
#[async_trait]
pub trait RangeResolver: Send + Sync + 'static {
    async fn resolve(&self, key: &[u8]) -> Result<Option<RangeDesc>>;
}

/// Hands out ids for new ranges, unique in the cluster.
#[async_trait]
pub trait RangeIds: Send + Sync + 'static {
    async fn next_range_id(&self) -> Result<u64>;
}

/// Ranges covering the whole key space, in key order: a node's cache of where the ranges
/// are, corrected as it learns of splits ([`RangeDirectory::learn`]).
#[derive(Debug)]
pub struct StaticDirectory {
    ranges: RwLock<Vec<RangeInfo>>,
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
        Ok(StaticDirectory {
            ranges: RwLock::new(ranges),
        })
    }

    /// Returns every range.
    pub fn ranges(&self) -> Vec<RangeInfo> {
        self.read().clone()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<RangeInfo>> {
        self.ranges.read().unwrap_or_else(|e| e.into_inner())
    }
}

impl RangeDirectory for StaticDirectory {
    fn lookup(&self, key: &[u8]) -> Result<RangeInfo> {
        let ranges = self.read();
        // The last range whose start is at or below the key.
        let i = ranges.partition_point(|r| r.desc.span.start.as_slice() <= key);
        Ok(ranges[i.saturating_sub(1)].clone())
    }

    fn overlapping(&self, span: &Span) -> Result<Vec<RangeInfo>> {
        Ok(self
            .read()
            .iter()
            .filter(|r| overlaps(&r.desc.span, span))
            .cloned()
            .collect())
    }

    fn learn(&self, desc: RangeDesc) {
        let mut ranges = self.ranges.write().unwrap_or_else(|e| e.into_inner());
        carve(&mut ranges, desc);
    }
}

/// Puts `desc` into `ranges` (a tiling of the key space in key order), trimming the
/// ranges it overlaps to what lies outside it. A range made by a split has the replicas
/// of the range it came from: the one that held its first key.
fn carve(ranges: &mut Vec<RangeInfo>, desc: RangeDesc) {
    if ranges.iter().any(|r| r.desc == desc) {
        return;
    }
    let replicas = ranges
        .iter()
        .find(|r| r.desc.span.contains(&desc.span.start))
        .map(|r| r.replicas.clone())
        .unwrap_or_default();
    let mut out = Vec::with_capacity(ranges.len() + 1);
    for r in ranges.drain(..) {
        if !overlaps(&r.desc.span, &desc.span) {
            out.push(r);
            continue;
        }
        if r.desc.span.start < desc.span.start {
            out.push(RangeInfo {
                desc: RangeDesc {
                    id: r.desc.id,
                    span: Span::new(r.desc.span.start.clone(), desc.span.start.clone()),
                },
                replicas: r.replicas.clone(),
            });
        }
        let beyond = !desc.span.end.is_empty()
            && (r.desc.span.end.is_empty() || r.desc.span.end > desc.span.end);
        if beyond {
            out.push(RangeInfo {
                desc: RangeDesc {
                    id: r.desc.id,
                    span: Span::new(desc.span.end.clone(), r.desc.span.end.clone()),
                },
                replicas: r.replicas,
            });
        }
    }
    out.push(RangeInfo { desc, replicas });
    out.sort_by(|a, b| a.desc.span.start.cmp(&b.desc.span.start));
    *ranges = out;
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
            max_backoff: Duration::from_millis(100),
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
    /// Where new ranges get their ids (splits are refused without it).
    range_ids: Option<Arc<dyn RangeIds>>,
    /// Where to look a key's range up when no node names it.
    resolver: Option<Arc<dyn RangeResolver>>,
}

/// How a request reaches the ranges: whole to one, clamped to one (a span that reaches
/// past the range; the answer says where to resume), or in pieces to several.
enum Plan {
    One(RangeInfo, Request),
    Clamped(RangeInfo, Request, Vec<u8>),
    Pieces(Vec<(Request, Vec<usize>)>),
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
            range_ids: None,
            resolver: None,
        }
    }

    /// Looks ranges up through `resolver` when no node names them.
    pub fn with_resolver(mut self, resolver: Arc<dyn RangeResolver>) -> Self {
        self.resolver = Some(resolver);
        self
    }

    /// Splits ranges with ids from `ids`.
    pub fn with_range_ids(mut self, ids: Arc<dyn RangeIds>) -> Self {
        self.range_ids = Some(ids);
        self
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

    /// Decides how `req` reaches the ranges the directory knows now.
    fn plan(&self, req: &Request) -> Result<Plan> {
        match req {
            Request::Scan { span, .. } | Request::Gc { span, .. } => {
                let reverse = matches!(req, Request::Scan { reverse: true, .. });
                let info = if reverse {
                    self.directory
                        .overlapping(span)?
                        .pop()
                        .map_or_else(|| self.directory.lookup(&span.start), Ok)?
                } else {
                    self.directory.lookup(&span.start)?
                };
                let r = &info.desc.span;
                let mut clamped = span.clone();
                let resume = if reverse && r.start > span.start {
                    clamped.start = r.start.clone();
                    Some(r.start.clone())
                } else if !reverse && !r.end.is_empty() && (span.end.is_empty() || span.end > r.end)
                {
                    clamped.end = r.end.clone();
                    Some(r.end.clone())
                } else {
                    None
                };
                Ok(match resume {
                    None => Plan::One(info, req.clone()),
                    Some(at) => Plan::Clamped(info, with_span(req, clamped), at),
                })
            }
            _ => {
                let pieces = split_by_range(req, self.directory.as_ref())?;
                if pieces.len() <= 1 {
                    let info = self.directory.lookup(req.routing_key())?;
                    return Ok(Plan::One(info, req.clone()));
                }
                if matches!(req, Request::OnePhaseCommit { .. }) {
                    return Err(Error::CrossRange(
                        "a one-phase commit's keys are in more than one range (a range split)"
                            .into(),
                    ));
                }
                Ok(Plan::Pieces(pieces))
            }
        }
    }

    /// Sends `req` to the leaseholder of `info`'s range, trying its replicas in turn.
    async fn send_to_range(
        &self,
        info: &RangeInfo,
        req: Request,
        started: tokio::time::Instant,
    ) -> Result<Response> {
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
}

/// Returns `req` (a scan or GC) over `span` instead.
fn with_span(req: &Request, span: Span) -> Request {
    let mut req = req.clone();
    if let Request::Scan { span: s, .. } | Request::Gc { span: s, .. } = &mut req {
        *s = span;
    }
    req
}

/// Divides a request on keys among the ranges holding them: one request per range, with
/// the positions of its keys in the original (to put values back in order). A request
/// whose keys are in one range comes back whole.
fn split_by_range(
    req: &Request,
    directory: &dyn RangeDirectory,
) -> Result<Vec<(Request, Vec<usize>)>> {
    // Key positions per range, in key order of first appearance.
    let mut groups: Vec<(u64, Vec<usize>)> = Vec::new();
    let mut group = |range: u64, i: usize| match groups.iter_mut().find(|(r, _)| *r == range) {
        Some((_, v)) => v.push(i),
        None => groups.push((range, vec![i])),
    };
    let pick = |keys: &[Vec<u8>], idx: &[usize]| -> Vec<Vec<u8>> {
        idx.iter().map(|&i| keys[i].clone()).collect()
    };
    match req {
        Request::Get { keys, .. }
        | Request::PessimisticLock { keys, .. }
        | Request::Commit { keys, .. }
        | Request::Rollback { keys, .. }
        | Request::ResolveLock { keys, .. } => {
            for (i, k) in keys.iter().enumerate() {
                group(directory.lookup(k)?.desc.id, i);
            }
            if groups.len() <= 1 {
                return Ok(vec![(req.clone(), Vec::new())]);
            }
            Ok(groups
                .into_iter()
                .map(|(_, idx)| {
                    let mut piece = req.clone();
                    if let Request::Get { keys: k, .. }
                    | Request::PessimisticLock { keys: k, .. }
                    | Request::Commit { keys: k, .. }
                    | Request::Rollback { keys: k, .. }
                    | Request::ResolveLock { keys: k, .. } = &mut piece
                    {
                        *k = pick(keys, &idx);
                    }
                    (piece, idx)
                })
                .collect())
        }
        Request::Prewrite { txn, mutations } => {
            for (i, m) in mutations.iter().enumerate() {
                group(directory.lookup(m.key())?.desc.id, i);
            }
            if groups.len() <= 1 {
                return Ok(vec![(req.clone(), Vec::new())]);
            }
            Ok(groups
                .into_iter()
                .map(|(_, idx)| {
                    let piece = Request::Prewrite {
                        txn: txn.clone(),
                        mutations: idx.iter().map(|&i| mutations[i].clone()).collect(),
                    };
                    (piece, idx)
                })
                .collect())
        }
        Request::ValidateReads {
            reads,
            start_ts,
            commit_ts,
        } => {
            type PerRange = Vec<(u64, mvcc::commands::ReadSet)>;
            fn at(per: &mut PerRange, range: u64) -> &mut mvcc::commands::ReadSet {
                let i = match per.iter().position(|(r, _)| *r == range) {
                    Some(i) => i,
                    None => {
                        per.push((range, mvcc::commands::ReadSet::default()));
                        per.len() - 1
                    }
                };
                &mut per[i].1
            }
            let mut per: PerRange = Vec::new();
            for (k, ts) in &reads.keys {
                at(&mut per, directory.lookup(k)?.desc.id)
                    .keys
                    .push((k.clone(), *ts));
            }
            for (span, ts) in &reads.spans {
                for r in directory.overlapping(span)? {
                    at(&mut per, r.desc.id)
                        .spans
                        .push((intersect(span, &r.desc.span), *ts));
                }
            }
            if per.len() <= 1 {
                return Ok(vec![(req.clone(), Vec::new())]);
            }
            Ok(per
                .into_iter()
                .map(|(_, reads)| {
                    let piece = Request::ValidateReads {
                        reads,
                        start_ts: *start_ts,
                        commit_ts: *commit_ts,
                    };
                    (piece, Vec::new())
                })
                .collect())
        }
        Request::OnePhaseCommit {
            mutations, reads, ..
        } => {
            let mut ranges: Vec<u64> = Vec::new();
            for k in mutations
                .iter()
                .map(|m| m.key())
                .chain(reads.keys.iter().map(|(k, _)| k.as_slice()))
            {
                ranges.push(directory.lookup(k)?.desc.id);
            }
            for (span, _) in &reads.spans {
                ranges.extend(directory.overlapping(span)?.iter().map(|r| r.desc.id));
            }
            ranges.sort_unstable();
            ranges.dedup();
            // Not divisible: the caller learns it spans ranges.
            Ok(vec![(req.clone(), Vec::new()); ranges.len().max(1)])
        }
        _ => Ok(vec![(req.clone(), Vec::new())]),
    }
}

/// Returns the part of `a` inside `b`.
fn intersect(a: &Span, b: &Span) -> Span {
    let start = a.start.clone().max(b.start.clone());
    let end = match (a.end.is_empty(), b.end.is_empty()) {
        (true, _) => b.end.clone(),
        (_, true) => a.end.clone(),
        _ => a.end.clone().min(b.end.clone()),
    };
    Span::new(start, end)
}

/// Puts the answers of a request's pieces back together, as if it had gone whole.
fn merge(pieces: Vec<(Response, Vec<usize>)>) -> Result<Response> {
    let total: usize = pieces.iter().map(|(_, idx)| idx.len()).sum();
    let mut values: Vec<Option<Vec<u8>>> = vec![None; total];
    let (mut resolved, mut any_values, mut any_resolved) = (0, false, false);
    // Pieces of a lock may be taken at different timestamps: each piece's values are the
    // newest, and stay so while locked, so they hold at the newest of the timestamps.
    let mut locked_at = None;
    for (resp, idx) in pieces {
        match resp {
            Response::Values(v) => {
                any_values = true;
                for (value, i) in v.into_iter().zip(idx) {
                    values[i] = value;
                }
            }
            Response::Locked { ts, values: v } => {
                any_values = true;
                locked_at = locked_at.max(Some(ts));
                for (value, i) in v.into_iter().zip(idx) {
                    values[i] = value;
                }
            }
            Response::Resolved(n) => {
                any_resolved = true;
                resolved += n;
            }
            Response::Done => {}
            other => {
                return Err(Error::CrossRange(format!(
                    "cannot merge the answers of a divided request: {other:?}"
                )));
            }
        }
    }
    Ok(if let Some(ts) = locked_at {
        Response::Locked { ts, values }
    } else if any_values {
        Response::Values(values)
    } else if any_resolved {
        Response::Resolved(resolved)
    } else {
        Response::Done
    })
}

#[async_trait]
impl KvService for DistKv {
    async fn send(&self, req: Request) -> Result<Response> {
        let started = tokio::time::Instant::now();
        let mut backoff = self.config.backoff;
        loop {
            let (info, one, resume) = match self.plan(&req)? {
                Plan::One(info, one) => (info, one, None),
                Plan::Clamped(info, one, at) => (info, one, Some(at)),
                Plan::Pieces(pieces) => {
                    let sends = pieces.into_iter().map(|(piece, idx)| async move {
                        self.send(piece).await.map(|resp| (resp, idx))
                    });
                    let answers = futures::future::try_join_all(sends).await?;
                    return merge(answers);
                }
            };
            match self.send_to_range(&info, one, started).await {
                Ok(Response::Scan(mut out)) if out.resume.is_none() && resume.is_some() => {
                    out.resume = resume;
                    return Ok(Response::Scan(out));
                }
                Ok(Response::Gc(mut out)) if out.resume.is_none() && resume.is_some() => {
                    out.resume = resume;
                    return Ok(Response::Gc(out));
                }
                Err(Error::KeyOutsideRange { range, key, owner })
                    if started.elapsed() < self.config.deadline =>
                {
                    // The range split (or moved on) since the directory learned of it.
                    tracing::debug!(range, "key outside the range: {owner:?}");
                    let owner = match (owner, &self.resolver) {
                        (Some(desc), _) => Some(desc),
                        (None, Some(resolver)) => resolver
                            .resolve(&key)
                            .await
                            .ok()
                            .flatten()
                            .filter(|d| *d != info.desc),
                        (None, None) => None,
                    };
                    match owner {
                        Some(desc) => self.directory.learn(desc),
                        None => {
                            tracing::debug!(
                                key = %codec::layout::pretty(&key),
                                "no node named the owner yet"
                            );
                            tokio::time::sleep(backoff).await;
                            backoff = (backoff * 2).min(self.config.max_backoff);
                        }
                    }
                }
                other => return other,
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

    async fn split_at(&self, key: &[u8]) -> Result<Vec<RangeDesc>> {
        let ids = self
            .range_ids
            .as_ref()
            .ok_or_else(|| Error::Unsupported("splitting ranges here".into()))?;
        if key.is_empty() {
            return Err(Error::CrossRange("cannot split at the empty key".into()));
        }
        let right = ids.next_range_id().await?;
        let req = Request::Split {
            key: key.to_vec(),
            right,
        };
        match self.send(req).await? {
            Response::Ranges(descs) => {
                for d in &descs {
                    self.directory.learn(d.clone());
                }
                Ok(descs)
            }
            other => Err(Error::CrossRange(format!(
                "unexpected answer to a split: {other:?}"
            ))),
        }
    }
}
