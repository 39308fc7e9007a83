//! The executor: runs plans inside a transaction.
//!
//! Operators materialize their output (`Vec<Row>`): the workloads this engine is tuned for
//! read and write few rows per statement, and a materialized result lets a statement be
//! retried whole after a conflict before anything reaches the client. Scans read in
//! batches and stop early at a LIMIT.
//!
//! Subqueries run before the expressions that use them are evaluated: an uncorrelated one
//! once per statement, a correlated one once per outer row (with that row pushed on the
//! outer-row stack, where `Expr::Outer` finds it).

mod agg;
pub mod dml;
mod scan;
mod tablefunc;
mod window;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use base::TenantId;
use txn::Transaction;

pub use dml::{delete, insert, update};
pub use scan::{TableCodec, scan_keys_for_truncate};

use crate::error::{Error, ErrorKind, Result};
use crate::expr::{EvalCtx, Expr, SubqueryKind, SubqueryResult};
use crate::functions::SessionInfo;
use crate::plan::{JoinKind, Plan, SetOp, SubPlan};
use crate::sequences::Sequences;
use crate::value::{Row, Value};

/// A boxed future, for recursion through plans.
pub type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Everything a statement's execution reads and writes.
pub struct ExecCtx<'a> {
    pub txn: &'a mut Transaction,
    pub tenant: TenantId,
    pub params: &'a [Value],
    pub session: &'a SessionInfo,
    pub subplans: &'a [SubPlan],
    pub sequences: &'a Sequences,
    pub cancel: &'a AtomicBool,
    /// Rows of enclosing queries, innermost last.
    pub outer: Vec<Row>,
    /// Subquery results by id (uncorrelated: kept; correlated: replaced per row).
    pub subs: Vec<Option<SubqueryResult>>,
    ctes: HashMap<usize, Arc<Vec<Row>>>,
    /// Rows read from storage, for EXPLAIN ANALYZE.
    pub rows_read: u64,
}

impl<'a> ExecCtx<'a> {
    /// Returns a context for one statement.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        txn: &'a mut Transaction,
        tenant: TenantId,
        params: &'a [Value],
        session: &'a SessionInfo,
        subplans: &'a [SubPlan],
        sequences: &'a Sequences,
        cancel: &'a AtomicBool,
    ) -> Self {
        ExecCtx {
            txn,
            tenant,
            params,
            session,
            subplans,
            sequences,
            cancel,
            outer: Vec::new(),
            subs: vec![None; subplans.len()],
            ctes: HashMap::new(),
            rows_read: 0,
        }
    }

    fn check_cancel(&self) -> Result<()> {
        if self.cancel.load(Ordering::Relaxed) {
            return Err(Error::new(
                ErrorKind::QueryCanceled,
                "canceling statement due to user request",
            ));
        }
        Ok(())
    }

    /// Evaluates an expression whose subqueries have been prepared.
    pub fn eval(&self, e: &Expr, row: &[Value]) -> Result<Value> {
        let ctx = EvalCtx {
            params: self.params,
            outer: &self.outer,
            subqueries: &self.subs,
            session: self.session,
        };
        e.eval(row, &ctx)
    }

    /// Evaluates a predicate.
    pub fn eval_bool(&self, e: &Expr, row: &[Value]) -> Result<bool> {
        Ok(self.eval(e, row)?.as_bool() == Some(true))
    }

    /// Runs the subqueries `e` needs for `row`.
    pub async fn prepare(&mut self, e: &Expr, row: &[Value]) -> Result<()> {
        let mut ids = Vec::new();
        e.walk(&mut |x| {
            if let Expr::Subquery { id, kind, .. } = x {
                ids.push((*id, kind.clone()));
            }
        });
        for (id, kind) in ids {
            let sub = &self.subplans[id];
            if !sub.correlated && self.subs[id].is_some() {
                continue;
            }
            self.outer.push(row.to_vec());
            let result = self.exec(&sub.plan).await;
            self.outer.pop();
            let rows = result?;
            let value = match kind {
                SubqueryKind::Scalar => {
                    if rows.len() > 1 {
                        return Err(Error::new(
                            ErrorKind::CardinalityViolation,
                            "more than one row returned by a subquery used as an expression",
                        ));
                    }
                    SubqueryResult::Scalar(
                        rows.into_iter()
                            .next()
                            .and_then(|r| r.into_iter().next())
                            .unwrap_or(Value::Null),
                    )
                }
                SubqueryKind::Exists => SubqueryResult::Exists(!rows.is_empty()),
                SubqueryKind::In { .. } => {
                    let mut set = HashSet::new();
                    let mut has_null = false;
                    for r in rows {
                        match r.into_iter().next() {
                            Some(Value::Null) | None => has_null = true,
                            Some(v) => {
                                set.insert(v);
                            }
                        }
                    }
                    SubqueryResult::Set(set, has_null)
                }
                SubqueryKind::Quantified { .. } | SubqueryKind::Array => SubqueryResult::List(
                    rows.into_iter()
                        .map(|r| r.into_iter().next().unwrap_or(Value::Null))
                        .collect(),
                ),
            };
            self.subs[id] = Some(value);
        }
        Ok(())
    }

    /// Evaluates an expression on a row, running its subqueries first if it has any.
    pub async fn eval_full(&mut self, e: &Expr, row: &[Value]) -> Result<Value> {
        if e.has_subquery() {
            self.prepare(e, row).await?;
        }
        self.eval(e, row)
    }

    /// Runs a plan and returns its rows.
    pub fn exec<'b>(&'b mut self, plan: &'b Plan) -> BoxFut<'b, Result<Vec<Row>>>
    where
        'a: 'b,
    {
        Box::pin(async move {
            self.check_cancel()?;
            match plan {
                Plan::Values { rows, .. } => {
                    let mut out = Vec::with_capacity(rows.len());
                    for r in rows {
                        let mut vals = Vec::with_capacity(r.len());
                        for e in r {
                            vals.push(self.eval_full(e, &[]).await?);
                        }
                        out.push(vals);
                    }
                    Ok(out)
                }
                Plan::Scan(s) => scan::scan(self, s).await,
                Plan::Virtual { name, .. } => crate::pg_catalog::rows(name, self.session),
                Plan::TableFunc {
                    func,
                    args,
                    ordinality,
                    ..
                } => {
                    let mut vals = Vec::new();
                    for a in args {
                        vals.push(self.eval_full(a, &[]).await?);
                    }
                    tablefunc::run(*func, &vals, *ordinality)
                }
                Plan::Filter { input, predicate } => {
                    let rows = self.exec(input).await?;
                    let mut out = Vec::new();
                    let sub = predicate.has_subquery();
                    for r in rows {
                        if sub {
                            self.prepare(predicate, &r).await?;
                        }
                        if self.eval_bool(predicate, &r)? {
                            out.push(r);
                        }
                    }
                    Ok(out)
                }
                Plan::Project { input, exprs } => {
                    let rows = self.exec(input).await?;
                    let sub = exprs.iter().any(Expr::has_subquery);
                    let mut out = Vec::with_capacity(rows.len());
                    for r in rows {
                        let mut vals = Vec::with_capacity(exprs.len());
                        for e in exprs {
                            if sub && e.has_subquery() {
                                self.prepare(e, &r).await?;
                            }
                            vals.push(self.eval(e, &r)?);
                        }
                        out.push(vals);
                    }
                    Ok(out)
                }
                Plan::Join {
                    left,
                    right,
                    kind,
                    on,
                    equi,
                } => {
                    let l = self.exec(left).await?;
                    let r = self.exec(right).await?;
                    let rw = right.types().len();
                    let lw = left.types().len();
                    self.join(l, r, lw, rw, *kind, on.as_ref(), equi).await
                }
                Plan::LookupJoin {
                    left,
                    scan,
                    keys,
                    points,
                    kind,
                    on,
                    equi,
                } => {
                    let l = self.exec(left).await?;
                    let lw = left.types().len();
                    let rw = scan.table.live_columns().count();
                    let right = self.lookup(&l, scan, keys, *points).await?;
                    self.join(l, right, lw, rw, *kind, on.as_ref(), equi).await
                }
                Plan::Aggregate {
                    input,
                    group_by,
                    aggs,
                } => {
                    let rows = self.exec(input).await?;
                    agg::aggregate(self, rows, group_by, aggs).await
                }
                Plan::ProjectSet { input, funcs } => {
                    let rows = self.exec(input).await?;
                    let mut out = Vec::with_capacity(rows.len());
                    for r in rows {
                        let mut results = Vec::with_capacity(funcs.len());
                        for f in funcs {
                            let mut vals = Vec::with_capacity(f.args.len());
                            for a in &f.args {
                                if a.has_subquery() {
                                    self.prepare(a, &r).await?;
                                }
                                vals.push(self.eval(a, &r)?);
                            }
                            results.push(tablefunc::run(f.func, &vals, false)?);
                        }
                        let n = results.iter().map(Vec::len).max().unwrap_or(0);
                        for k in 0..n {
                            let mut row = r.clone();
                            for res in &mut results {
                                row.push(
                                    res.get_mut(k).and_then(|x| x.pop()).unwrap_or(Value::Null),
                                );
                            }
                            out.push(row);
                        }
                    }
                    Ok(out)
                }
                Plan::Window { input, funcs } => {
                    let rows = self.exec(input).await?;
                    window::run(self, rows, funcs)
                }
                Plan::Sort { input, keys } => {
                    let rows = self.exec(input).await?;
                    let mut keyed = Vec::with_capacity(rows.len());
                    for r in rows {
                        let mut k = Vec::with_capacity(keys.len());
                        for key in keys {
                            k.push(self.eval_full(&key.expr, &r).await?);
                        }
                        keyed.push((k, r));
                    }
                    keyed.sort_by(|(a, _), (b, _)| {
                        for (i, key) in keys.iter().enumerate() {
                            let o = sort_cmp(&a[i], &b[i], key.desc, key.nulls_first);
                            if o != std::cmp::Ordering::Equal {
                                return o;
                            }
                        }
                        std::cmp::Ordering::Equal
                    });
                    Ok(keyed.into_iter().map(|(_, r)| r).collect())
                }
                Plan::Limit {
                    input,
                    limit,
                    offset,
                } => {
                    let limit = match limit {
                        Some(e) => self.count_arg(e, "LIMIT")?,
                        None => None,
                    };
                    let offset = match offset {
                        Some(e) => self.count_arg(e, "OFFSET")?.unwrap_or(0),
                        None => 0,
                    };
                    let rows = self.exec(input).await?;
                    Ok(rows
                        .into_iter()
                        .skip(offset)
                        .take(limit.unwrap_or(usize::MAX))
                        .collect())
                }
                Plan::Distinct { input, on } => {
                    let rows = self.exec(input).await?;
                    let mut seen = HashSet::new();
                    let mut out = Vec::new();
                    for r in rows {
                        let key: Vec<Value> = match on {
                            Some(exprs) => exprs
                                .iter()
                                .map(|e| self.eval(e, &r))
                                .collect::<Result<_>>()?,
                            None => r.clone(),
                        };
                        if seen.insert(key) {
                            out.push(r);
                        }
                    }
                    Ok(out)
                }
                Plan::SetOp {
                    op,
                    all,
                    left,
                    right,
                } => {
                    let l = self.exec(left).await?;
                    let r = self.exec(right).await?;
                    Ok(set_op(*op, *all, l, r))
                }
                Plan::CteRef { id, .. } => Ok(self
                    .ctes
                    .get(id)
                    .map(|r| r.as_ref().clone())
                    .unwrap_or_default()),
                Plan::RecursiveCte {
                    id,
                    base,
                    step,
                    all,
                } => {
                    let mut result = self.exec(base).await?;
                    let mut seen: HashSet<Row> = HashSet::new();
                    if !*all {
                        result.retain(|r| seen.insert(r.clone()));
                    }
                    let mut working = result.clone();
                    let mut iterations = 0;
                    while !working.is_empty() {
                        iterations += 1;
                        if iterations > 1_000_000 {
                            return Err(Error::new(
                                ErrorKind::ProgramLimitExceeded,
                                "recursive query did not terminate after 1000000 iterations",
                            ));
                        }
                        self.ctes.insert(*id, Arc::new(working));
                        let mut next = self.exec(step).await?;
                        if !*all {
                            next.retain(|r| seen.insert(r.clone()));
                        }
                        if result.len() + next.len() > 10_000_000 {
                            return Err(Error::new(
                                ErrorKind::ProgramLimitExceeded,
                                "recursive query produced more than 10000000 rows",
                            ));
                        }
                        result.extend(next.iter().cloned());
                        working = next;
                    }
                    Ok(result)
                }
                Plan::With { ctes, body } => {
                    for (id, p) in ctes {
                        let rows = self.exec(p).await?;
                        self.ctes.insert(*id, Arc::new(rows));
                    }
                    self.exec(body).await
                }
            }
        })
    }

    fn count_arg(&self, e: &Expr, what: &str) -> Result<Option<usize>> {
        match self.eval(e, &[])? {
            Value::Null => Ok(None),
            Value::Int(n) if n >= 0 => Ok(Some(n as usize)),
            Value::Int(_) => Err(Error::new(
                if what == "OFFSET" {
                    ErrorKind::InvalidOffset
                } else {
                    ErrorKind::InvalidLimit
                },
                format!("{what} must not be negative"),
            )),
            other => Err(Error::internal(format!("{what} evaluated to {other:?}"))),
        }
    }

    /// Fetches the rows of `scan`'s table whose index keys equal `keys` evaluated over
    /// some row of `left` (each distinct key once; NULL keys match nothing).
    async fn lookup(
        &mut self,
        left: &[Row],
        scan: &crate::plan::Scan,
        keys: &[Expr],
        points: bool,
    ) -> Result<Vec<Row>> {
        let mut seen = HashSet::new();
        let mut tuples = Vec::new();
        for row in left {
            let vals: Vec<Value> = keys
                .iter()
                .map(|k| self.eval(k, row))
                .collect::<Result<_>>()?;
            if vals.iter().any(Value::is_null) || !seen.insert(vals.clone()) {
                continue;
            }
            tuples.push(
                vals.into_iter()
                    .zip(keys)
                    .map(|(v, k)| Expr::Literal(v, k.ty()))
                    .collect::<Vec<Expr>>(),
            );
        }
        if tuples.is_empty() {
            return Ok(Vec::new());
        }
        let mut s = scan.clone();
        if points {
            s.access = crate::plan::Access::Points(tuples);
            return scan::scan(self, &s).await;
        }
        let mut out = Vec::new();
        for prefix in tuples {
            self.check_cancel()?;
            s.access = crate::plan::Access::Range {
                prefix,
                lower: None,
                upper: None,
            };
            out.extend(scan::scan(self, &s).await?);
        }
        Ok(out)
    }

    #[allow(clippy::too_many_arguments)]
    async fn join(
        &mut self,
        left: Vec<Row>,
        right: Vec<Row>,
        lw: usize,
        rw: usize,
        kind: JoinKind,
        on: Option<&Expr>,
        equi: &[(Expr, Expr)],
    ) -> Result<Vec<Row>> {
        let mut out = Vec::new();
        let mut right_matched = vec![false; right.len()];
        let null_right: Row = vec![Value::Null; rw];
        let null_left: Row = vec![Value::Null; lw];
        // Hash the right side on its equi-join keys (NULL keys never match).
        let table: Option<HashMap<Vec<Value>, Vec<usize>>> = if equi.is_empty() {
            None
        } else {
            let mut t: HashMap<Vec<Value>, Vec<usize>> = HashMap::new();
            for (i, r) in right.iter().enumerate() {
                let key: Vec<Value> = equi
                    .iter()
                    .map(|(_, re)| self.eval(re, r))
                    .collect::<Result<_>>()?;
                if key.iter().any(Value::is_null) {
                    continue;
                }
                t.entry(key).or_default().push(i);
            }
            Some(t)
        };
        let all: Vec<usize> = (0..right.len()).collect();
        for l in left {
            self.check_cancel()?;
            let candidates: &[usize] = match &table {
                Some(t) => {
                    let key: Vec<Value> = equi
                        .iter()
                        .map(|(le, _)| self.eval(le, &l))
                        .collect::<Result<_>>()?;
                    if key.iter().any(Value::is_null) {
                        &[]
                    } else {
                        t.get(&key).map_or(&[][..], Vec::as_slice)
                    }
                }
                None => &all,
            };
            let mut matched = false;
            for &ri in candidates {
                let mut combined = Vec::with_capacity(lw + rw);
                combined.extend(l.iter().cloned());
                combined.extend(right[ri].iter().cloned());
                let ok = match on {
                    Some(p) => {
                        if p.has_subquery() {
                            self.prepare(p, &combined).await?;
                        }
                        self.eval_bool(p, &combined)?
                    }
                    None => true,
                };
                if ok {
                    matched = true;
                    right_matched[ri] = true;
                    match kind {
                        JoinKind::Semi | JoinKind::Anti => break,
                        _ => out.push(combined),
                    }
                }
            }
            match kind {
                JoinKind::Left | JoinKind::Full if !matched => {
                    let mut combined = l;
                    combined.extend(null_right.iter().cloned());
                    out.push(combined);
                }
                JoinKind::Semi if matched => out.push(l),
                JoinKind::Anti if !matched => out.push(l),
                _ => {}
            }
        }
        if matches!(kind, JoinKind::Right | JoinKind::Full) {
            for (ri, r) in right.into_iter().enumerate() {
                if !right_matched[ri] {
                    let mut combined = null_left.clone();
                    combined.extend(r);
                    out.push(combined);
                }
            }
        }
        Ok(out)
    }
}

/// Compares two sort key values.
pub fn sort_cmp(a: &Value, b: &Value, desc: bool, nulls_first: bool) -> std::cmp::Ordering {
    use std::cmp::Ordering::*;
    match (a.is_null(), b.is_null()) {
        (true, true) => Equal,
        (true, false) => {
            if nulls_first {
                Less
            } else {
                Greater
            }
        }
        (false, true) => {
            if nulls_first {
                Greater
            } else {
                Less
            }
        }
        _ => {
            let o = a.sort_cmp(b);
            if desc { o.reverse() } else { o }
        }
    }
}

fn set_op(op: SetOp, all: bool, left: Vec<Row>, right: Vec<Row>) -> Vec<Row> {
    match (op, all) {
        (SetOp::Union, true) => {
            let mut out = left;
            out.extend(right);
            out
        }
        (SetOp::Union, false) => {
            let mut seen = HashSet::new();
            left.into_iter()
                .chain(right)
                .filter(|r| seen.insert(r.clone()))
                .collect()
        }
        (SetOp::Intersect, _) | (SetOp::Except, _) => {
            let mut counts: HashMap<Row, usize> = HashMap::new();
            for r in right {
                *counts.entry(r).or_default() += 1;
            }
            let mut out = Vec::new();
            let mut emitted = HashSet::new();
            for r in left {
                let c = counts.get_mut(&r);
                let in_right = c.as_ref().is_some_and(|c| **c > 0);
                let keep = match op {
                    SetOp::Intersect => in_right,
                    _ => !in_right,
                };
                if all {
                    if op == SetOp::Intersect {
                        if let Some(c) = c
                            && *c > 0
                        {
                            *c -= 1;
                            out.push(r);
                        }
                    } else if let Some(c) = c
                        && *c > 0
                    {
                        *c -= 1;
                    } else {
                        out.push(r);
                    }
                } else if keep && emitted.insert(r.clone()) {
                    out.push(r);
                }
            }
            out
        }
    }
}
