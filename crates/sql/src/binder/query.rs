//! Binding queries: WITH, set operations, VALUES, and SELECT with its FROM clause.

use std::collections::BTreeSet;
use std::sync::Arc;

use sqlparser::ast::{
    self as ast, GroupByExpr, JoinConstraint, JoinOperator, SelectItem, SetExpr, SetQuantifier,
    TableFactor,
};

use super::expr::{
    AggState, ExprCtx, SRF_BASE, SrfState, WindowState, contains_aggregate, refers_to_srf, span_pos,
};
use super::scope::{Scope, ScopeCol};
use super::{Binder, CteBinding, Relation, access};
use crate::catalog::TableDesc;
use crate::error::{Error, ErrorKind, Result};
use crate::expr::{Expr, conjoin, conjuncts};
use crate::functions;
use crate::ops::BinOp;
use crate::parse;
use crate::plan::{Access, Column, JoinKind, Plan, Scan, SetOp, SortKey, TableFunc};
use crate::types::SqlType;

/// Offset given to window-function results while the aggregate width is not known yet.
const WINDOW_BASE: usize = 1 << 30;

/// One FROM item after binding: a base table that can still absorb predicates, or a plan.
struct Unit {
    scope: Scope,
    kind: UnitKind,
}

enum UnitKind {
    Table(Arc<TableDesc>),
    Plan(Plan),
}

impl Binder<'_> {
    /// Binds a query; returns its plan and output columns.
    pub fn bind_query(&mut self, q: &ast::Query) -> Result<(Plan, Vec<Column>)> {
        if let Some(f) = &q.fetch
            && (f.with_ties || f.percent)
        {
            return Err(Error::unsupported("FETCH FIRST ... WITH TIES or PERCENT"));
        }
        let lock = !q.locks.is_empty();
        let cte_mark = self.ctes.len();
        let mut cte_plans = Vec::new();
        if let Some(with) = &q.with {
            for (k, cte) in with.cte_tables.iter().enumerate() {
                let name = parse::ident(&cte.alias.name);
                if with.cte_tables[..k]
                    .iter()
                    .any(|c| parse::ident(&c.alias.name) == name)
                {
                    self.ctes.truncate(cte_mark);
                    return Err(Error::new(
                        ErrorKind::DuplicateAlias,
                        format!("WITH query name \"{name}\" specified more than once"),
                    ));
                }
                let id = self.next_cte;
                self.next_cte += 1;
                let (plan, cols) = if with.recursive {
                    self.bind_recursive_cte(id, &name, cte)?
                } else {
                    self.bind_query(&cte.query)?
                };
                let cols = rename_columns(cols, &cte.alias)?;
                self.ctes.push(CteBinding {
                    name,
                    id,
                    columns: cols
                        .iter()
                        .map(|c| (c.name.clone(), c.ty.clone()))
                        .collect(),
                });
                cte_plans.push((id, plan));
            }
        }
        let (limit, offset) = match &q.limit_clause {
            Some(ast::LimitClause::LimitOffset { limit, offset, .. }) => {
                (limit.clone(), offset.as_ref().map(|o| o.value.clone()))
            }
            Some(ast::LimitClause::OffsetCommaLimit { .. }) => {
                return Err(Error::unsupported("LIMIT offset, count"));
            }
            None => (None, None),
        };
        // FETCH FIRST n ROWS ONLY is LIMIT n (n defaults to 1).
        let limit =
            match &q.fetch {
                Some(f) if limit.is_none() => Some(f.quantity.clone().unwrap_or_else(|| {
                    ast::Expr::Value(ast::Value::Number("1".into(), false).into())
                })),
                _ => limit,
            };
        let order_by: Vec<ast::OrderByExpr> = match &q.order_by {
            Some(ob) => match &ob.kind {
                ast::OrderByKind::Expressions(e) => e.clone(),
                ast::OrderByKind::All(_) => return Err(Error::unsupported("ORDER BY ALL")),
            },
            None => vec![],
        };
        let result = self.bind_set_expr(&q.body, &order_by, limit.as_ref(), offset.as_ref(), lock);
        self.ctes.truncate(cte_mark);
        let (plan, cols) = result?;
        let plan = if cte_plans.is_empty() {
            plan
        } else {
            Plan::With {
                ctes: cte_plans,
                body: Box::new(plan),
            }
        };
        Ok((plan, cols))
    }

    fn bind_recursive_cte(
        &mut self,
        id: usize,
        name: &str,
        cte: &ast::Cte,
    ) -> Result<(Plan, Vec<Column>)> {
        let SetExpr::SetOperation {
            left,
            op: ast::SetOperator::Union,
            set_quantifier,
            right,
        } = cte.query.body.as_ref()
        else {
            // WITH RECURSIVE without a self reference is an ordinary CTE.
            return self.bind_query(&cte.query);
        };
        let (base, base_cols) = self.bind_set_expr(left, &[], None, None, false)?;
        let base_cols = rename_columns(base_cols, &cte.alias)?;
        self.ctes.push(CteBinding {
            name: name.to_string(),
            id,
            columns: base_cols
                .iter()
                .map(|c| (c.name.clone(), c.ty.clone()))
                .collect(),
        });
        let step = self.bind_set_expr(right, &[], None, None, false);
        self.ctes.pop();
        let (step, step_cols) = step?;
        if step_cols.len() != base_cols.len() {
            return Err(Error::new(
                ErrorKind::Syntax,
                "each UNION query must have the same number of columns",
            ));
        }
        let step = cast_columns(
            step,
            &step_cols.iter().map(|c| c.ty.clone()).collect::<Vec<_>>(),
            &base_cols.iter().map(|c| c.ty.clone()).collect::<Vec<_>>(),
        );
        let all = matches!(set_quantifier, SetQuantifier::All);
        Ok((
            Plan::RecursiveCte {
                id,
                base: Box::new(base),
                step: Box::new(step),
                all,
            },
            base_cols,
        ))
    }

    fn bind_set_expr(
        &mut self,
        body: &SetExpr,
        order_by: &[ast::OrderByExpr],
        limit: Option<&ast::Expr>,
        offset: Option<&ast::Expr>,
        lock: bool,
    ) -> Result<(Plan, Vec<Column>)> {
        match body {
            SetExpr::Select(s) => self.bind_select(s, order_by, limit, offset, lock),
            SetExpr::Query(q) => {
                let (plan, cols) = self.bind_query(q)?;
                self.order_and_limit(plan, cols, order_by, limit, offset)
            }
            SetExpr::Values(v) => {
                let (plan, cols) = self.bind_values(v, None)?;
                self.order_and_limit(plan, cols, order_by, limit, offset)
            }
            SetExpr::SetOperation {
                left,
                op,
                set_quantifier,
                right,
            } => {
                let (lp, lc) = self.bind_set_expr(left, &[], None, None, false)?;
                let (rp, rc) = self.bind_set_expr(right, &[], None, None, false)?;
                let name = match op {
                    ast::SetOperator::Union => "UNION",
                    ast::SetOperator::Intersect => "INTERSECT",
                    _ => "EXCEPT",
                };
                if lc.len() != rc.len() {
                    return Err(Error::new(
                        ErrorKind::Syntax,
                        format!("each {name} query must have the same number of columns"),
                    ));
                }
                let mut types = Vec::new();
                for (l, r) in lc.iter().zip(&rc) {
                    let t =
                        functions::common_type(&[l.ty.clone(), r.ty.clone()]).ok_or_else(|| {
                            Error::new(
                                ErrorKind::DatatypeMismatch,
                                format!(
                                    "{name} types {} and {} cannot be matched",
                                    l.ty.pg_name(),
                                    r.ty.pg_name()
                                ),
                            )
                        })?;
                    types.push(if t == SqlType::Unknown {
                        SqlType::Text
                    } else {
                        t
                    });
                }
                let lp = cast_columns(
                    lp,
                    &lc.iter().map(|c| c.ty.clone()).collect::<Vec<_>>(),
                    &types,
                );
                let rp = cast_columns(
                    rp,
                    &rc.iter().map(|c| c.ty.clone()).collect::<Vec<_>>(),
                    &types,
                );
                let op = match op {
                    ast::SetOperator::Union => SetOp::Union,
                    ast::SetOperator::Intersect => SetOp::Intersect,
                    _ => SetOp::Except,
                };
                let all = matches!(set_quantifier, SetQuantifier::All);
                let cols = lc
                    .iter()
                    .zip(types)
                    .map(|(c, t)| Column::new(c.name.clone(), t))
                    .collect();
                let plan = Plan::SetOp {
                    op,
                    all,
                    left: Box::new(lp),
                    right: Box::new(rp),
                };
                self.order_and_limit(plan, cols, order_by, limit, offset)
            }
            _ => Err(Error::unsupported("this kind of query body")),
        }
    }

    /// Binds VALUES rows; `target` gives column types to coerce to (INSERT).
    pub fn bind_values(
        &mut self,
        v: &ast::Values,
        target: Option<&[SqlType]>,
    ) -> Result<(Plan, Vec<Column>)> {
        let empty = Scope::default();
        let mut rows: Vec<Vec<Expr>> = Vec::new();
        for row in &v.rows {
            let mut cx = ExprCtx::plain(&empty, "VALUES");
            let mut out = Vec::new();
            for e in row.iter() {
                out.push(self.bind_expr(e, &mut cx)?);
            }
            if let Some(first) = rows.first()
                && first.len() != out.len()
            {
                return Err(Error::new(
                    ErrorKind::Syntax,
                    "VALUES lists must all be the same length",
                ));
            }
            rows.push(out);
        }
        let width = rows.first().map_or(0, Vec::len);
        let mut types = Vec::with_capacity(width);
        for c in 0..width {
            let t = match target.and_then(|t| t.get(c)) {
                Some(t) => t.clone(),
                None => {
                    let col: Vec<SqlType> = rows.iter().map(|r| r[c].ty()).collect();
                    let t = functions::common_type(&col).ok_or_else(|| {
                        Error::new(
                            ErrorKind::DatatypeMismatch,
                            "VALUES types cannot be matched",
                        )
                    })?;
                    if t == SqlType::Unknown {
                        SqlType::Text
                    } else {
                        t
                    }
                }
            };
            types.push(t);
        }
        for row in &mut rows {
            for (c, e) in row.iter_mut().enumerate() {
                let x = std::mem::replace(e, Expr::null(SqlType::Unknown));
                *e = if target.is_some() {
                    x
                } else {
                    self.coerce(x, &types[c])?
                };
            }
        }
        let cols = types
            .iter()
            .enumerate()
            .map(|(i, t)| Column::new(format!("column{}", i + 1), t.clone()))
            .collect();
        Ok((Plan::Values { rows, types }, cols))
    }

    /// ORDER BY and LIMIT over the output columns of a set operation or VALUES.
    fn order_and_limit(
        &mut self,
        plan: Plan,
        cols: Vec<Column>,
        order_by: &[ast::OrderByExpr],
        limit: Option<&ast::Expr>,
        offset: Option<&ast::Expr>,
    ) -> Result<(Plan, Vec<Column>)> {
        let mut plan = plan;
        if !order_by.is_empty() {
            let scope = Scope {
                cols: cols
                    .iter()
                    .map(|c| ScopeCol {
                        table: None,
                        name: c.name.clone(),
                        ty: c.ty.clone(),
                        hidden: false,
                        table_oid: 0,
                        attnum: 0,
                    })
                    .collect(),
            };
            let mut keys = Vec::new();
            for o in order_by {
                let expr = match &o.expr {
                    ast::Expr::Value(v) if matches!(v.value, ast::Value::Number(..)) => {
                        let n = ordinal(&o.expr, cols.len())?;
                        Expr::Column(n, cols[n].ty.clone())
                    }
                    e => self.bind_expr(e, &mut ExprCtx::plain(&scope, "ORDER BY"))?,
                };
                if !expr.columns().iter().all(|c| *c < cols.len()) {
                    return Err(Error::new(
                        ErrorKind::Syntax,
                        "invalid ORDER BY for a set operation",
                    ));
                }
                let desc = matches!(o.options.sort, Some(ast::OrderBySort::Desc));
                keys.push(SortKey {
                    expr,
                    desc,
                    nulls_first: o.options.nulls_first.unwrap_or(desc),
                });
            }
            plan = Plan::Sort {
                input: Box::new(plan),
                keys,
            };
        }
        plan = self.apply_limit(plan, limit, offset)?;
        Ok((plan, cols))
    }

    fn apply_limit(
        &mut self,
        plan: Plan,
        limit: Option<&ast::Expr>,
        offset: Option<&ast::Expr>,
    ) -> Result<Plan> {
        if limit.is_none() && offset.is_none() {
            return Ok(plan);
        }
        let empty = Scope::default();
        let mut bind = |e: Option<&ast::Expr>, what: &'static str| -> Result<Option<Expr>> {
            match e {
                None => Ok(None),
                Some(x) => {
                    let b = self.bind_expr(x, &mut ExprCtx::plain(&empty, what))?;
                    if b.has_subquery() || !b.columns().is_empty() {
                        return Err(Error::new(
                            ErrorKind::Syntax,
                            format!("argument of {what} must not contain variables"),
                        ));
                    }
                    Ok(Some(self.coerce(b, &SqlType::Int8)?))
                }
            }
        };
        let limit = bind(limit, "LIMIT")?;
        let offset = bind(offset, "OFFSET")?;
        Ok(Plan::Limit {
            input: Box::new(plan),
            limit,
            offset,
        })
    }

    fn bind_select(
        &mut self,
        s: &ast::Select,
        order_by: &[ast::OrderByExpr],
        limit: Option<&ast::Expr>,
        offset: Option<&ast::Expr>,
        lock: bool,
    ) -> Result<(Plan, Vec<Column>)> {
        if s.into.is_some() {
            return Err(Error::unsupported("SELECT INTO"));
        }
        if s.top.is_some()
            || !s.lateral_views.is_empty()
            || s.qualify.is_some()
            || !s.named_window.is_empty()
        {
            return Err(Error::unsupported("this SELECT clause"));
        }
        let (plan, scope) = self.bind_from(&s.from, s.selection.as_ref(), lock)?;
        let group_exprs: Vec<ast::Expr> = match &s.group_by {
            GroupByExpr::Expressions(e, mods) => {
                if !mods.is_empty() {
                    return Err(Error::unsupported("GROUP BY modifiers"));
                }
                e.clone()
            }
            GroupByExpr::All(_) => return Err(Error::unsupported("GROUP BY ALL")),
        };
        let aggregating = !group_exprs.is_empty()
            || s.having.is_some()
            || s.projection.iter().any(|p| match p {
                SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
                    contains_aggregate(e)
                }
                _ => false,
            })
            || order_by.iter().any(|o| contains_aggregate(&o.expr));

        // Expand the select list.
        let items = self.expand_projection(&s.projection, &scope)?;
        let mut plan = plan;
        let mut agg_state = None;
        if aggregating {
            let mut groups = Vec::new();
            for g in &group_exprs {
                let e = self.bind_group_key(g, &items, &scope)?;
                groups.push((format!("{e:?}"), e));
            }
            agg_state = Some(AggState {
                input: scope.clone(),
                groups,
                aggs: Vec::new(),
            });
        }
        let base = if aggregating {
            WINDOW_BASE
        } else {
            scope.len()
        };
        let mut cx = ExprCtx {
            scope: &scope,
            agg: agg_state,
            window: Some(WindowState {
                base,
                calls: Vec::new(),
            }),
            srf: Some(SrfState::default()),
            clause: "SELECT",
        };
        let mut exprs = Vec::new();
        let mut cols = Vec::new();
        for (ast_e, name, source) in &items {
            let e = match source {
                Some(i) => Expr::Column(*i, scope.cols[*i].ty.clone()),
                None => self.bind_expr(ast_e, &mut cx)?,
            };
            let mut col = Column::new(name.clone(), e.ty());
            if let Some(i) = source {
                col.table_oid = scope.cols[*i].table_oid;
                col.column_attnum = scope.cols[*i].attnum;
            }
            cols.push(col);
            exprs.push(e);
        }
        let having = match &s.having {
            Some(h) => {
                cx.clause = "HAVING";
                let w = cx.window.take();
                let f = cx.srf.take();
                let r = self.bind_predicate(h, &mut cx);
                cx.window = w;
                cx.srf = f;
                Some(r?)
            }
            None => None,
        };
        // ORDER BY: output column names and ordinals, or expressions over the input.
        let mut keys = Vec::new();
        let mut extra = Vec::new();
        cx.clause = "ORDER BY";
        for o in order_by {
            let desc = matches!(o.options.sort, Some(ast::OrderBySort::Desc));
            let nulls_first = o.options.nulls_first.unwrap_or(desc);
            let target = match &o.expr {
                ast::Expr::Value(v) if matches!(v.value, ast::Value::Number(..)) => {
                    Some(ordinal(&o.expr, exprs.len())?)
                }
                ast::Expr::Identifier(i) => {
                    let n = parse::ident(i);
                    let hits: Vec<usize> = cols
                        .iter()
                        .enumerate()
                        .filter(|(_, c)| c.name == n)
                        .map(|(k, _)| k)
                        .collect();
                    if hits.len() > 1
                        && !hits
                            .iter()
                            .all(|h| format!("{:?}", exprs[*h]) == format!("{:?}", exprs[hits[0]]))
                    {
                        return Err(Error::new(
                            ErrorKind::AmbiguousColumn,
                            format!("ORDER BY \"{n}\" is ambiguous"),
                        ));
                    }
                    hits.first().copied()
                }
                _ => None,
            };
            let idx = match target {
                Some(i) => i,
                None => {
                    let e = self.bind_expr(&o.expr, &mut cx)?;
                    let fp = format!("{e:?}");
                    match exprs.iter().position(|x| format!("{x:?}") == fp) {
                        Some(i) => i,
                        None => {
                            extra.push(e);
                            exprs.len() + extra.len() - 1
                        }
                    }
                }
            };
            keys.push((idx, desc, nulls_first));
        }
        let agg_state = cx.agg.take();
        let window = cx.window.take().expect("set above");
        let mut srf = cx.srf.take().expect("set above");
        if let Some(state) = &agg_state
            && state
                .aggs
                .iter()
                .any(|a| a.args.iter().chain(a.filter.iter()).any(refers_to_srf))
        {
            return Err(Error::new(
                ErrorKind::FeatureNotSupported,
                "aggregate function calls cannot contain set-returning function calls",
            ));
        }
        if window
            .calls
            .iter()
            .any(|w| w.args.iter().chain(&w.partition_by).any(refers_to_srf))
        {
            return Err(Error::new(
                ErrorKind::FeatureNotSupported,
                "window function calls cannot contain set-returning function calls",
            ));
        }

        if let Some(state) = agg_state {
            let width = state.groups.len() + state.aggs.len();
            let group_by: Vec<Expr> = state.groups.into_iter().map(|(_, e)| e).collect();
            plan = Plan::Aggregate {
                input: Box::new(plan),
                group_by,
                aggs: state.aggs,
            };
            if let Some(h) = having {
                plan = Plan::Filter {
                    input: Box::new(plan),
                    predicate: h,
                };
            }
            // Window results were numbered from WINDOW_BASE; renumber after the aggregates.
            let fix = |e: &Expr| {
                e.map_columns(&|i, t| {
                    if (WINDOW_BASE..SRF_BASE).contains(&i) {
                        Expr::Column(i - WINDOW_BASE + width, t.clone())
                    } else {
                        Expr::Column(i, t.clone())
                    }
                })
            };
            exprs = exprs.iter().map(fix).collect();
            extra = extra.iter().map(fix).collect();
            for call in &mut srf.calls {
                call.args = call.args.iter().map(fix).collect();
            }
        } else if let Some(h) = having {
            plan = Plan::Filter {
                input: Box::new(plan),
                predicate: h,
            };
        }
        if !window.calls.is_empty() {
            plan = Plan::Window {
                input: Box::new(plan),
                funcs: window.calls,
            };
        }
        if !srf.calls.is_empty() {
            // Set-returning functions' results follow the columns they are computed from.
            let width = plan.types().len();
            let fix = |e: &Expr| {
                e.map_columns(&|i, t| {
                    if i >= SRF_BASE {
                        Expr::Column(i - SRF_BASE + width, t.clone())
                    } else {
                        Expr::Column(i, t.clone())
                    }
                })
            };
            exprs = exprs.iter().map(fix).collect();
            extra = extra.iter().map(fix).collect();
            plan = Plan::ProjectSet {
                input: Box::new(plan),
                funcs: srf.calls,
            };
        }

        let n = exprs.len();
        let distinct = match &s.distinct {
            None | Some(ast::Distinct::All) => None,
            Some(ast::Distinct::Distinct) => Some(None),
            Some(ast::Distinct::On(on)) => {
                let mut on_idx = Vec::new();
                let mut cx2 = ExprCtx::plain(&scope, "DISTINCT ON");
                for e in on {
                    let target = match e {
                        ast::Expr::Value(v) if matches!(v.value, ast::Value::Number(..)) => {
                            Some(ordinal(e, n)?)
                        }
                        _ => None,
                    };
                    let idx = match target {
                        Some(i) => i,
                        None => {
                            let b = self.bind_expr(e, &mut cx2)?;
                            let fp = format!("{b:?}");
                            match exprs
                                .iter()
                                .chain(extra.iter())
                                .position(|x| format!("{x:?}") == fp)
                            {
                                Some(i) => i,
                                None => {
                                    extra.push(b);
                                    n + extra.len() - 1
                                }
                            }
                        }
                    };
                    on_idx.push(idx);
                }
                Some(Some(on_idx))
            }
        };
        if matches!(distinct, Some(None)) && !extra.is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidColumnReference,
                "for SELECT DISTINCT, ORDER BY expressions must appear in select list",
            ));
        }
        let mut all_exprs = exprs;
        all_exprs.extend(extra);
        let width = all_exprs.len();
        let types: Vec<SqlType> = all_exprs.iter().map(Expr::ty).collect();
        plan = Plan::Project {
            input: Box::new(plan),
            exprs: all_exprs,
        };
        let mut sort_keys: Vec<SortKey> = keys
            .iter()
            .map(|(i, desc, nf)| SortKey {
                expr: Expr::Column(*i, types[*i].clone()),
                desc: *desc,
                nulls_first: *nf,
            })
            .collect();
        match distinct {
            Some(None) => {
                plan = Plan::Distinct {
                    input: Box::new(plan),
                    on: None,
                }
            }
            Some(Some(on_idx)) => {
                // Sort by the DISTINCT ON keys first (ORDER BY must agree), keep the first row of each.
                for (k, idx) in on_idx.iter().enumerate() {
                    if let Some(key) = sort_keys.get(k)
                        && !matches!(&key.expr, Expr::Column(c, _) if c == idx)
                    {
                        return Err(Error::new(
                            ErrorKind::InvalidColumnReference,
                            "SELECT DISTINCT ON expressions must match initial ORDER BY expressions",
                        ));
                    }
                }
                let mut full = Vec::new();
                for idx in &on_idx {
                    if !sort_keys
                        .iter()
                        .any(|k| matches!(&k.expr, Expr::Column(c, _) if c == idx))
                    {
                        full.push(SortKey {
                            expr: Expr::Column(*idx, types[*idx].clone()),
                            desc: false,
                            nulls_first: false,
                        });
                    }
                }
                full.splice(0..0, sort_keys.drain(..));
                plan = Plan::Sort {
                    input: Box::new(plan),
                    keys: full,
                };
                plan = Plan::Distinct {
                    input: Box::new(plan),
                    on: Some(
                        on_idx
                            .iter()
                            .map(|i| Expr::Column(*i, types[*i].clone()))
                            .collect(),
                    ),
                };
            }
            None => {}
        }
        if !sort_keys.is_empty() {
            plan = Plan::Sort {
                input: Box::new(plan),
                keys: sort_keys,
            };
        }
        plan = self.apply_limit(plan, limit, offset)?;
        if width > n {
            plan = Plan::Project {
                input: Box::new(plan),
                exprs: (0..n).map(|i| Expr::Column(i, types[i].clone())).collect(),
            };
        }
        Ok((
            super::lookup::choose_lookup_joins(optimize_index_order(plan)),
            cols,
        ))
    }

    /// Binds a GROUP BY item: an output ordinal, an output column name, or an expression.
    fn bind_group_key(
        &mut self,
        g: &ast::Expr,
        items: &[(ast::Expr, String, Option<usize>)],
        scope: &Scope,
    ) -> Result<Expr> {
        let mut cx = ExprCtx::plain(scope, "GROUP BY");
        match g {
            ast::Expr::Value(v) if matches!(v.value, ast::Value::Number(..)) => {
                let i = ordinal(g, items.len())?;
                let (e, _, src) = &items[i];
                if contains_aggregate(e) {
                    return Err(Error::new(
                        ErrorKind::GroupingError,
                        "aggregate functions are not allowed in GROUP BY",
                    ));
                }
                match src {
                    Some(c) => Ok(Expr::Column(*c, scope.cols[*c].ty.clone())),
                    None => self.bind_expr(e, &mut cx),
                }
            }
            ast::Expr::Identifier(i) => match self.bind_expr(g, &mut cx) {
                Ok(e) => Ok(e),
                Err(err) => {
                    let n = parse::ident(i);
                    match items.iter().find(|(_, name, _)| *name == n) {
                        Some((e, _, _)) if !contains_aggregate(e) => self.bind_expr(e, &mut cx),
                        _ => Err(err),
                    }
                }
            },
            _ => {
                if contains_aggregate(g) {
                    return Err(Error::new(
                        ErrorKind::GroupingError,
                        "aggregate functions are not allowed in GROUP BY",
                    ));
                }
                self.bind_expr(g, &mut cx)
            }
        }
    }

    /// Expands `*` and `t.*` and names every select item. Returns (expression, name,
    /// the input column it is if it is a bare column from `*`).
    fn expand_projection(
        &mut self,
        items: &[SelectItem],
        scope: &Scope,
    ) -> Result<Vec<(ast::Expr, String, Option<usize>)>> {
        let mut out = Vec::new();
        for item in items {
            match item {
                SelectItem::UnnamedExpr(e) => out.push((e.clone(), column_name(e), None)),
                SelectItem::ExprWithAlias { expr, alias } => {
                    out.push((expr.clone(), parse::ident(alias), None))
                }
                SelectItem::Wildcard(_) => {
                    let before = out.len();
                    for (i, c) in scope.cols.iter().enumerate() {
                        if !c.hidden {
                            out.push((
                                ast::Expr::Identifier(ast::Ident::new(&c.name)),
                                c.name.clone(),
                                Some(i),
                            ));
                        }
                    }
                    if out.len() == before && scope.is_empty() {
                        return Err(Error::new(
                            ErrorKind::Syntax,
                            "SELECT * with no tables specified is not valid",
                        ));
                    }
                }
                SelectItem::QualifiedWildcard(kind, _) => {
                    let name = match kind {
                        ast::SelectItemQualifiedWildcardKind::ObjectName(n) => {
                            parse::object_name(n)?.last().cloned().unwrap_or_default()
                        }
                        _ => return Err(Error::unsupported("this wildcard")),
                    };
                    if !scope.has_table(&name) {
                        return Err(Error::new(
                            ErrorKind::UndefinedTable,
                            format!("missing FROM-clause entry for table \"{name}\""),
                        ));
                    }
                    for (i, c) in scope.cols.iter().enumerate() {
                        if c.table.as_deref() == Some(name.as_str())
                            && !(c.hidden && c.name == crate::catalog::ROWID)
                        {
                            out.push((
                                ast::Expr::Identifier(ast::Ident::new(&c.name)),
                                c.name.clone(),
                                Some(i),
                            ));
                        }
                    }
                }
                SelectItem::ExprWithAliases { .. } => {
                    return Err(Error::unsupported("multiple aliases"));
                }
            }
        }
        Ok(out)
    }

    /// Binds FROM and WHERE together, choosing indexes and a join order.
    pub fn bind_from(
        &mut self,
        from: &[ast::TableWithJoins],
        selection: Option<&ast::Expr>,
        lock: bool,
    ) -> Result<(Plan, Scope)> {
        if from.is_empty() {
            let scope = Scope::default();
            let mut plan = Plan::Values {
                rows: vec![vec![]],
                types: vec![],
            };
            if let Some(w) = selection {
                let pred = self.bind_predicate(w, &mut ExprCtx::plain(&scope, "WHERE"))?;
                plan = Plan::Filter {
                    input: Box::new(plan),
                    predicate: pred,
                };
            }
            return Ok((plan, scope));
        }
        let mut units: Vec<Unit> = Vec::new();
        let mut on_conds: Vec<ast::Expr> = Vec::new();
        for twj in from {
            let simple = twj.joins.iter().all(|j| matches!(&j.join_operator, JoinOperator::Join(c) | JoinOperator::Inner(c) if matches!(c, JoinConstraint::On(_) | JoinConstraint::None)) || matches!(j.join_operator, JoinOperator::CrossJoin(_)));
            if simple {
                units.push(self.bind_factor(&twj.relation, lock)?);
                for j in &twj.joins {
                    units.push(self.bind_factor(&j.relation, lock)?);
                    if let JoinOperator::Join(JoinConstraint::On(e))
                    | JoinOperator::Inner(JoinConstraint::On(e)) = &j.join_operator
                    {
                        on_conds.push(e.clone());
                    }
                }
            } else {
                let (plan, scope) = self.bind_join_tree(twj, lock)?;
                units.push(Unit {
                    scope,
                    kind: UnitKind::Plan(plan),
                });
            }
        }
        let mut scope = Scope::default();
        let mut offsets = Vec::new();
        for u in &units {
            offsets.push(scope.len());
            scope.extend(u.scope.clone());
        }
        // Every predicate over the natural (FROM-order) layout.
        let mut preds = Vec::new();
        for c in &on_conds {
            preds.extend(conjuncts(
                self.bind_predicate(c, &mut ExprCtx::plain(&scope, "JOIN conditions"))?,
            ));
        }
        if let Some(w) = selection {
            if contains_aggregate(w) {
                return Err(Error::new(
                    ErrorKind::GroupingError,
                    "aggregate functions are not allowed in WHERE",
                )
                .at(span_pos(w)));
            }
            preds.extend(conjuncts(
                self.bind_predicate(w, &mut ExprCtx::plain(&scope, "WHERE"))?,
            ));
        }
        let unit_of =
            |col: usize| -> usize { offsets.iter().rposition(|o| *o <= col).unwrap_or(0) };
        let units_of =
            |e: &Expr| -> BTreeSet<usize> { e.columns().into_iter().map(unit_of).collect() };

        // Push single-unit predicates into base-table scans.
        let mut remaining = Vec::new();
        let mut per_unit: Vec<Vec<Expr>> = vec![Vec::new(); units.len()];
        for p in preds {
            let us = units_of(&p);
            if us.len() == 1 && !p.has_subquery() {
                let u = *us.iter().next().expect("one unit");
                per_unit[u].push(p);
            } else if us.is_empty() && !p.has_subquery() {
                // Constant predicates filter everything; apply them on the first unit.
                per_unit[0].push(p);
            } else {
                remaining.push(p);
            }
        }
        let mut planned: Vec<(Plan, u8)> = Vec::new();
        for (k, u) in units.into_iter().enumerate() {
            let off = offsets[k];
            let local: Vec<Expr> = per_unit[k]
                .iter()
                .map(|p| p.map_columns(&|i, t| Expr::Column(i - off, t.clone())))
                .collect();
            planned.push(match u.kind {
                UnitKind::Table(t) => {
                    let choice = access::choose(&t, &local);
                    let rank = match &choice.access {
                        Access::Points(_) => 3,
                        Access::Range { .. } => 2,
                        Access::Full if !local.is_empty() => 1,
                        Access::Full => 0,
                    };
                    let scan = Scan {
                        table: t,
                        index: choice.index,
                        access: choice.access,
                        reverse: false,
                        filter: conjoin(local),
                        limit: None,
                        lock,
                    };
                    (Plan::Scan(Box::new(scan)), rank)
                }
                UnitKind::Plan(p) => {
                    let p = match conjoin(local) {
                        Some(f) => Plan::Filter {
                            input: Box::new(p),
                            predicate: f,
                        },
                        None => p,
                    };
                    (p, 0)
                }
            });
        }
        // Greedy join order over the natural layout.
        let widths: Vec<usize> = offsets
            .iter()
            .enumerate()
            .map(|(k, o)| offsets.get(k + 1).copied().unwrap_or(scope.len()) - o)
            .collect();
        let n = planned.len();
        let mut used = vec![false; n];
        let mut slots: Vec<Option<(Plan, u8)>> = planned.into_iter().map(Some).collect();
        let start = (0..n)
            .max_by_key(|k| (slots[*k].as_ref().map_or(0, |s| s.1), std::cmp::Reverse(*k)))
            .unwrap_or(0);
        used[start] = true;
        let mut layout: Vec<usize> = (offsets[start]..offsets[start] + widths[start]).collect();
        let mut current = slots[start].take().expect("unused").0;
        let mut joined: BTreeSet<usize> = [start].into();
        while joined.len() < n {
            // Prefer a unit connected by a predicate, the most selective first.
            let connected = |k: usize| {
                remaining.iter().any(|p| {
                    let us = units_of(p);
                    us.contains(&k) && us.iter().all(|u| *u == k || joined.contains(u))
                })
            };
            let next = (0..n)
                .filter(|k| !used[*k])
                .max_by_key(|k| {
                    (
                        connected(*k),
                        slots[*k].as_ref().map_or(0, |s| s.1),
                        std::cmp::Reverse(*k),
                    )
                })
                .expect("an unused unit remains");
            used[next] = true;
            joined.insert(next);
            let right_cols: Vec<usize> = (offsets[next]..offsets[next] + widths[next]).collect();
            let (right, _) = slots[next].take().expect("unused");
            // Predicates now fully available.
            let (ready, rest): (Vec<Expr>, Vec<Expr>) = remaining
                .into_iter()
                .partition(|p| !p.has_subquery() && units_of(p).iter().all(|u| joined.contains(u)));
            remaining = rest;
            let mut new_layout = layout.clone();
            new_layout.extend(&right_cols);
            let remap = |e: &Expr, lay: &[usize]| {
                e.map_columns(&|i, t| {
                    Expr::Column(
                        lay.iter()
                            .position(|x| *x == i)
                            .expect("column is in the layout"),
                        t.clone(),
                    )
                })
            };
            let mut equi = Vec::new();
            let mut other = Vec::new();
            for p in ready {
                if let Expr::Binary {
                    op: BinOp::Eq,
                    left,
                    right: r,
                    ..
                } = &p
                {
                    let (lu, ru) = (units_of(left), units_of(r));
                    let left_side =
                        |s: &BTreeSet<usize>| !s.is_empty() && s.iter().all(|u| *u != next);
                    let right_side =
                        |s: &BTreeSet<usize>| !s.is_empty() && s.iter().all(|u| *u == next);
                    if left_side(&lu) && right_side(&ru) && comparable_for_hash(&left.ty(), &r.ty())
                    {
                        equi.push((remap(left, &layout), remap(r, &right_cols)));
                        continue;
                    }
                    if left_side(&ru) && right_side(&lu) && comparable_for_hash(&left.ty(), &r.ty())
                    {
                        equi.push((remap(r, &layout), remap(left, &right_cols)));
                        continue;
                    }
                }
                other.push(remap(&p, &new_layout));
            }
            current = Plan::Join {
                left: Box::new(current),
                right: Box::new(right),
                kind: JoinKind::Inner,
                on: conjoin(other),
                equi,
            };
            layout = new_layout;
        }
        // Restore the natural column order.
        let identity = layout.iter().enumerate().all(|(i, c)| i == *c);
        if !identity {
            let types: Vec<SqlType> = scope.cols.iter().map(|c| c.ty.clone()).collect();
            let exprs = (0..scope.len())
                .map(|nat| {
                    Expr::Column(
                        layout
                            .iter()
                            .position(|x| *x == nat)
                            .expect("every column is joined"),
                        types[nat].clone(),
                    )
                })
                .collect();
            current = Plan::Project {
                input: Box::new(current),
                exprs,
            };
        }
        if let Some(f) = conjoin(remaining) {
            current = Plan::Filter {
                input: Box::new(current),
                predicate: f,
            };
        }
        Ok((current, scope))
    }

    /// Binds one FROM item into a unit.
    fn bind_factor(&mut self, f: &TableFactor, lock: bool) -> Result<Unit> {
        match f {
            TableFactor::Table {
                name,
                alias,
                args,
                with_ordinality,
                ..
            } => {
                if let Some(args) = args {
                    return self.bind_table_function(
                        name,
                        &args.args,
                        alias.as_ref(),
                        *with_ordinality,
                    );
                }
                let parts = parse::object_name(name)?;
                if parts.len() == 1
                    && let Some(cte) = self.ctes.iter().rev().find(|c| c.name == parts[0]).cloned()
                {
                    let alias_name = alias
                        .as_ref()
                        .map_or(cte.name.clone(), |a| parse::ident(&a.name));
                    let cols: Vec<Column> = cte
                        .columns
                        .iter()
                        .map(|(n, t)| Column::new(n.clone(), t.clone()))
                        .collect();
                    let cols = match alias {
                        Some(a) => rename_columns(cols, a)?,
                        None => cols,
                    };
                    let types = cols.iter().map(|c| c.ty.clone()).collect();
                    return Ok(Unit {
                        scope: Scope::for_relation(&alias_name, &cols),
                        kind: UnitKind::Plan(Plan::CteRef { id: cte.id, types }),
                    });
                }
                let rel_name = parts.last().cloned().unwrap_or_default();
                let alias_name = alias
                    .as_ref()
                    .map_or(rel_name.clone(), |a| parse::ident(&a.name));
                match self.relation(name)? {
                    Relation::Table(t) => {
                        let mut scope = Scope::default();
                        for c in t.live_columns() {
                            scope.cols.push(ScopeCol {
                                table: Some(alias_name.clone()),
                                name: c.name.clone(),
                                ty: c.ty.clone(),
                                hidden: c.hidden,
                                table_oid: t.id as u32,
                                attnum: t
                                    .visible_columns()
                                    .position(|v| v.id == c.id)
                                    .map_or(0, |p| p as i16 + 1),
                            });
                        }
                        if let Some(a) = alias {
                            apply_column_aliases(&mut scope, a)?;
                        }
                        Ok(Unit {
                            scope,
                            kind: UnitKind::Table(t),
                        })
                    }
                    Relation::View(sql, _) => {
                        let parsed = parse::parse(&sql)?;
                        let Some(p) = parsed.into_iter().next() else {
                            return Err(Error::internal("empty view definition"));
                        };
                        let sqlparser::ast::Statement::Query(q) = p.stmt else {
                            return Err(Error::internal("view is not a query"));
                        };
                        let (plan, cols) = self.bind_query(&q)?;
                        let mut scope = Scope::for_relation(&alias_name, &cols);
                        if let Some(a) = alias {
                            apply_column_aliases(&mut scope, a)?;
                        }
                        Ok(Unit {
                            scope,
                            kind: UnitKind::Plan(plan),
                        })
                    }
                    Relation::Virtual(vname) => {
                        let cols = crate::pg_catalog::columns(&vname)
                            .ok_or_else(|| super::undefined_table(&vname))?;
                        let types = cols.iter().map(|c| c.ty.clone()).collect();
                        let mut scope = Scope::for_relation(&alias_name, &cols);
                        if let Some(a) = alias {
                            apply_column_aliases(&mut scope, a)?;
                        }
                        Ok(Unit {
                            scope,
                            kind: UnitKind::Plan(Plan::Virtual { name: vname, types }),
                        })
                    }
                }
            }
            TableFactor::Derived {
                lateral,
                subquery,
                alias,
                ..
            } => {
                if *lateral {
                    return Err(Error::unsupported("LATERAL"));
                }
                let (plan, cols) = self.bind_query(subquery)?;
                let alias_name = alias
                    .as_ref()
                    .map_or_else(|| "subquery".to_string(), |a| parse::ident(&a.name));
                let cols = match alias {
                    Some(a) => rename_columns(cols, a)?,
                    None => cols,
                };
                Ok(Unit {
                    scope: Scope::for_relation(&alias_name, &cols),
                    kind: UnitKind::Plan(plan),
                })
            }
            TableFactor::NestedJoin {
                table_with_joins,
                alias,
            } => {
                let (plan, mut scope) = self.bind_join_tree(table_with_joins, lock)?;
                if let Some(a) = alias {
                    let n = parse::ident(&a.name);
                    for c in &mut scope.cols {
                        c.table = Some(n.clone());
                    }
                    apply_column_aliases(&mut scope, a)?;
                }
                Ok(Unit {
                    scope,
                    kind: UnitKind::Plan(plan),
                })
            }
            TableFactor::UNNEST {
                alias,
                array_exprs,
                with_ordinality,
                ..
            } => {
                let name = ast::ObjectName::from(vec![ast::Ident::new("unnest")]);
                let args: Vec<ast::FunctionArg> = array_exprs
                    .iter()
                    .map(|e| ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e.clone())))
                    .collect();
                self.bind_table_function(&name, &args, alias.as_ref(), *with_ordinality)
            }
            TableFactor::Function { lateral: true, .. } => Err(Error::unsupported("LATERAL")),
            TableFactor::Function {
                name,
                args,
                alias,
                with_ordinality,
                ..
            } => self.bind_table_function(name, args, alias.as_ref(), *with_ordinality),
            other => Err(Error::unsupported(format!("the FROM item {other}"))),
        }
    }

    fn bind_table_function(
        &mut self,
        name: &ast::ObjectName,
        args: &[ast::FunctionArg],
        alias: Option<&ast::TableAlias>,
        ordinality: bool,
    ) -> Result<Unit> {
        let fname = parse::object_name(name)?
            .last()
            .cloned()
            .unwrap_or_default();
        let empty = Scope::default();
        let mut bound = Vec::new();
        for a in args {
            match a {
                ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)) => {
                    bound.push(self.bind_expr(e, &mut ExprCtx::plain(&empty, "FROM"))?)
                }
                _ => return Err(Error::unsupported("this table function argument")),
            }
        }
        let (func, bound, types, names) = self.resolve_table_function(&fname, bound)?;
        let alias_name = alias.map_or(fname.clone(), |a| parse::ident(&a.name));
        let mut cols: Vec<Column> = types
            .iter()
            .zip(&names)
            .map(|(t, n)| {
                Column::new(
                    if names.len() == 1 && alias.is_some() {
                        alias_name.clone()
                    } else {
                        n.to_string()
                    },
                    t.clone(),
                )
            })
            .collect();
        if ordinality {
            cols.push(Column::new("ordinality", SqlType::Int8));
        }
        let mut scope = Scope::for_relation(&alias_name, &cols);
        if let Some(a) = alias {
            apply_column_aliases(&mut scope, a)?;
        }
        Ok(Unit {
            scope,
            kind: UnitKind::Plan(Plan::TableFunc {
                func,
                args: bound,
                types,
                ordinality,
            }),
        })
    }

    /// Resolves a set-returning function by name for bound arguments, coercing them:
    /// returns the function, the arguments, and its result columns' types and names.
    #[allow(clippy::type_complexity)]
    pub(super) fn resolve_table_function(
        &mut self,
        fname: &str,
        mut bound: Vec<Expr>,
    ) -> Result<(TableFunc, Vec<Expr>, Vec<SqlType>, Vec<&'static str>)> {
        let (func, types, names): (TableFunc, Vec<SqlType>, Vec<&'static str>) = match fname {
            "generate_series" => {
                if bound.len() < 2 || bound.len() > 3 {
                    return Err(Error::new(
                        ErrorKind::UndefinedFunction,
                        "function generate_series requires two or three arguments",
                    ));
                }
                let types: Vec<SqlType> = bound.iter().map(Expr::ty).collect();
                let t = if types
                    .iter()
                    .any(|t| matches!(t, SqlType::Timestamp | SqlType::TimestampTz | SqlType::Date))
                {
                    if types.contains(&SqlType::TimestampTz) {
                        SqlType::TimestampTz
                    } else {
                        SqlType::Timestamp
                    }
                } else if types
                    .iter()
                    .any(|t| t.family() == crate::types::TypeFamily::Numeric)
                {
                    SqlType::Numeric(None)
                } else if types
                    .iter()
                    .any(|t| t.family() == crate::types::TypeFamily::Float)
                {
                    return Err(Error::unsupported("generate_series over floats"));
                } else if types.contains(&SqlType::Int8) {
                    SqlType::Int8
                } else {
                    SqlType::Int4
                };
                let step_t = if matches!(t, SqlType::Timestamp | SqlType::TimestampTz) {
                    SqlType::Interval
                } else {
                    t.clone()
                };
                let mut b2 = Vec::new();
                for (i, x) in bound.into_iter().enumerate() {
                    b2.push(self.coerce(x, if i == 2 { &step_t } else { &t })?);
                }
                bound = b2;
                (TableFunc::GenerateSeries, vec![t], vec!["generate_series"])
            }
            "unnest" => {
                if bound.len() != 1 {
                    return Err(Error::unsupported("unnest with several arrays"));
                }
                let t = bound[0].ty();
                let elem = match t {
                    SqlType::Array(e) => *e,
                    SqlType::Int2Vector | SqlType::OidVector => {
                        t.element().cloned().expect("vectors have elements")
                    }
                    SqlType::Unknown => SqlType::Text,
                    other => {
                        return Err(Error::new(
                            ErrorKind::UndefinedFunction,
                            format!("function unnest({}) does not exist", other.pg_name()),
                        ));
                    }
                };
                if bound[0].ty() == SqlType::Unknown {
                    let x = bound.remove(0);
                    bound.push(self.coerce(x, &SqlType::Array(Box::new(SqlType::Text)))?);
                }
                (TableFunc::Unnest, vec![elem], vec!["unnest"])
            }
            "pg_partition_ancestors" if bound.len() == 1 => {
                let x = bound.remove(0);
                bound.push(self.coerce(x, &SqlType::RegClass)?);
                (TableFunc::Single, vec![SqlType::RegClass], vec!["relid"])
            }
            "jsonb_array_elements" | "json_array_elements" => (
                TableFunc::JsonbArrayElements,
                vec![SqlType::Jsonb],
                vec!["value"],
            ),
            "jsonb_array_elements_text" | "json_array_elements_text" => (
                TableFunc::JsonbArrayElementsText,
                vec![SqlType::Text],
                vec!["value"],
            ),
            "jsonb_each" | "json_each" => (
                TableFunc::JsonbEach,
                vec![SqlType::Text, SqlType::Jsonb],
                vec!["key", "value"],
            ),
            "jsonb_each_text" | "json_each_text" => (
                TableFunc::JsonbEachText,
                vec![SqlType::Text, SqlType::Text],
                vec!["key", "value"],
            ),
            "jsonb_object_keys" | "json_object_keys" => (
                TableFunc::JsonbObjectKeys,
                vec![SqlType::Text],
                vec!["jsonb_object_keys"],
            ),
            "regexp_split_to_table" => (
                TableFunc::RegexpSplitToTable,
                vec![SqlType::Text],
                vec!["regexp_split_to_table"],
            ),
            "generate_subscripts" => (
                TableFunc::GenerateSubscripts,
                vec![SqlType::Int4],
                vec!["generate_subscripts"],
            ),
            other => {
                return Err(Error::new(
                    ErrorKind::UndefinedFunction,
                    format!("function {other}() does not exist or is not a table function"),
                ));
            }
        };
        if matches!(
            func,
            TableFunc::JsonbArrayElements
                | TableFunc::JsonbArrayElementsText
                | TableFunc::JsonbEach
                | TableFunc::JsonbEachText
                | TableFunc::JsonbObjectKeys
        ) {
            if bound.len() != 1 {
                return Err(Error::new(
                    ErrorKind::UndefinedFunction,
                    format!("function {fname} takes one argument"),
                ));
            }
            let x = bound.remove(0);
            bound.push(self.coerce(x, &SqlType::Jsonb)?);
        }
        if func == TableFunc::RegexpSplitToTable {
            bound = bound
                .into_iter()
                .map(|x| self.coerce(x, &SqlType::Text))
                .collect::<Result<_>>()?;
        }
        Ok((func, bound, types, names))
    }

    /// Binds a join tree with outer joins in syntax order.
    fn bind_join_tree(&mut self, twj: &ast::TableWithJoins, lock: bool) -> Result<(Plan, Scope)> {
        let first = self.bind_factor(&twj.relation, lock)?;
        let (mut plan, mut scope) = unit_plan(first);
        for j in &twj.joins {
            let right = self.bind_factor(&j.relation, lock)?;
            let (rplan, mut rscope) = unit_plan(right);
            let (kind, constraint) = match &j.join_operator {
                JoinOperator::Join(c) | JoinOperator::Inner(c) => (JoinKind::Inner, Some(c)),
                JoinOperator::Left(c) | JoinOperator::LeftOuter(c) => (JoinKind::Left, Some(c)),
                JoinOperator::Right(c) | JoinOperator::RightOuter(c) => (JoinKind::Right, Some(c)),
                JoinOperator::FullOuter(c) => (JoinKind::Full, Some(c)),
                JoinOperator::CrossJoin(_) => (JoinKind::Inner, None),
                other => return Err(Error::unsupported(format!("the join {other:?}"))),
            };
            let left_width = scope.len();
            let mut conds = Vec::new();
            let mut using_pairs: Vec<(usize, usize)> = Vec::new();
            match constraint {
                Some(JoinConstraint::On(e)) => {
                    let mut combined = scope.clone();
                    combined.extend(rscope.clone());
                    conds.extend(conjuncts(self.bind_predicate(
                        e,
                        &mut ExprCtx::plain(&combined, "JOIN conditions"),
                    )?));
                }
                Some(JoinConstraint::Using(names)) => {
                    for n in names {
                        let name = parse::object_name(n)?.join(".");
                        let (c, pair) =
                            self.using_condition(&scope, &mut rscope, left_width, &name)?;
                        conds.push(c);
                        using_pairs.push(pair);
                    }
                }
                Some(JoinConstraint::Natural) => {
                    let common: Vec<String> = scope
                        .cols
                        .iter()
                        .filter(|c| {
                            !c.hidden && rscope.cols.iter().any(|r| !r.hidden && r.name == c.name)
                        })
                        .map(|c| c.name.clone())
                        .collect();
                    for name in common {
                        let (c, pair) =
                            self.using_condition(&scope, &mut rscope, left_width, &name)?;
                        conds.push(c);
                        using_pairs.push(pair);
                    }
                }
                _ => {}
            }
            let mut equi = Vec::new();
            let mut other = Vec::new();
            for c in conds {
                if let Expr::Binary {
                    op: BinOp::Eq,
                    left,
                    right,
                    ..
                } = &c
                    && !c.has_subquery()
                {
                    let (lc, rc) = (left.columns(), right.columns());
                    let is_left =
                        |cols: &[usize]| !cols.is_empty() && cols.iter().all(|i| *i < left_width);
                    let is_right =
                        |cols: &[usize]| !cols.is_empty() && cols.iter().all(|i| *i >= left_width);
                    if is_left(&lc) && is_right(&rc) && comparable_for_hash(&left.ty(), &right.ty())
                    {
                        equi.push((
                            (**left).clone(),
                            right.map_columns(&|i, t| Expr::Column(i - left_width, t.clone())),
                        ));
                        continue;
                    }
                    if is_left(&rc) && is_right(&lc) && comparable_for_hash(&left.ty(), &right.ty())
                    {
                        equi.push((
                            (**right).clone(),
                            left.map_columns(&|i, t| Expr::Column(i - left_width, t.clone())),
                        ));
                        continue;
                    }
                }
                other.push(c);
            }
            plan = Plan::Join {
                left: Box::new(plan),
                right: Box::new(rplan),
                kind,
                on: conjoin(other),
                equi,
            };
            scope.extend(rscope);
            // In a RIGHT or FULL join, a USING column is whichever side has a value.
            if matches!(kind, JoinKind::Right | JoinKind::Full) && !using_pairs.is_empty() {
                let exprs = scope
                    .cols
                    .iter()
                    .enumerate()
                    .map(|(i, c)| match using_pairs.iter().find(|(l, _)| *l == i) {
                        Some((l, r)) => Expr::Func {
                            func: crate::functions::Func::Coalesce,
                            args: vec![
                                Expr::Column(*l, c.ty.clone()),
                                Expr::Column(*r, scope.cols[*r].ty.clone()),
                            ],
                            ty: c.ty.clone(),
                        },
                        None => Expr::Column(i, c.ty.clone()),
                    })
                    .collect();
                plan = Plan::Project {
                    input: Box::new(plan),
                    exprs,
                };
            }
        }
        Ok((plan, scope))
    }

    fn using_condition(
        &mut self,
        left: &Scope,
        right: &mut Scope,
        left_width: usize,
        name: &str,
    ) -> Result<(Expr, (usize, usize))> {
        let l = left
            .cols
            .iter()
            .rposition(|c| c.name == name && !c.hidden)
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::UndefinedColumn,
                    format!(
                        "column \"{name}\" specified in USING clause does not exist in left table"
                    ),
                )
            })?;
        let r = right
            .cols
            .iter()
            .position(|c| c.name == name && !c.hidden)
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::UndefinedColumn,
                    format!(
                        "column \"{name}\" specified in USING clause does not exist in right table"
                    ),
                )
            })?;
        right.cols[r].hidden = true;
        let le = Expr::Column(l, left.cols[l].ty.clone());
        let re = Expr::Column(left_width + r, right.cols[r].ty.clone());
        Ok((self.make_binary(BinOp::Eq, le, re)?, (l, left_width + r)))
    }
}

fn unit_plan(u: Unit) -> (Plan, Scope) {
    let plan = match u.kind {
        UnitKind::Plan(p) => p,
        UnitKind::Table(t) => Plan::Scan(Box::new(Scan {
            index: t.primary.id,
            table: t,
            access: Access::Full,
            reverse: false,
            filter: None,
            limit: None,
            lock: false,
        })),
    };
    (plan, u.scope)
}

fn comparable_for_hash(a: &SqlType, b: &SqlType) -> bool {
    a.family() == b.family() && !matches!(a, SqlType::Char(_)) && !matches!(b, SqlType::Char(_))
}

/// Renames output columns by a table alias's column list.
fn rename_columns(mut cols: Vec<Column>, alias: &ast::TableAlias) -> Result<Vec<Column>> {
    if alias.columns.len() > cols.len() {
        return Err(Error::new(
            ErrorKind::InvalidColumnReference,
            format!(
                "table \"{}\" has {} columns available but {} columns specified",
                alias.name,
                cols.len(),
                alias.columns.len()
            ),
        ));
    }
    for (c, a) in cols.iter_mut().zip(&alias.columns) {
        c.name = parse::ident(&a.name);
    }
    Ok(cols)
}

fn apply_column_aliases(scope: &mut Scope, alias: &ast::TableAlias) -> Result<()> {
    let visible: Vec<usize> = scope
        .cols
        .iter()
        .enumerate()
        .filter(|(_, c)| !c.hidden)
        .map(|(i, _)| i)
        .collect();
    if alias.columns.len() > visible.len() {
        return Err(Error::new(
            ErrorKind::InvalidColumnReference,
            format!(
                "table \"{}\" has {} columns available but {} columns specified",
                alias.name,
                visible.len(),
                alias.columns.len()
            ),
        ));
    }
    for (i, a) in visible.iter().zip(&alias.columns) {
        scope.cols[*i].name = parse::ident(&a.name);
    }
    Ok(())
}

/// Wraps a plan in casts so its columns have `to` types.
fn cast_columns(plan: Plan, from: &[SqlType], to: &[SqlType]) -> Plan {
    if from == to {
        return plan;
    }
    let exprs = from
        .iter()
        .zip(to)
        .enumerate()
        .map(|(i, (f, t))| {
            let c = Expr::Column(i, f.clone());
            if f == t {
                c
            } else {
                Expr::Cast {
                    expr: Box::new(c),
                    to: t.clone(),
                    explicit: false,
                }
            }
        })
        .collect();
    Plan::Project {
        input: Box::new(plan),
        exprs,
    }
}

/// Resolves an ORDER BY / GROUP BY ordinal.
fn ordinal(e: &ast::Expr, n: usize) -> Result<usize> {
    let s = e.to_string();
    let k: usize = s.parse().map_err(|_| {
        Error::new(
            ErrorKind::InvalidColumnReference,
            format!("non-integer constant in ORDER BY: {s}"),
        )
    })?;
    if k == 0 || k > n {
        return Err(Error::new(
            ErrorKind::InvalidColumnReference,
            format!("ORDER BY position {k} is not in select list"),
        )
        .at(span_pos(e)));
    }
    Ok(k - 1)
}

/// Names a select item the way PostgreSQL does.
fn column_name(e: &ast::Expr) -> String {
    use ast::Expr as A;
    match e {
        A::Identifier(i) => parse::ident(i),
        A::CompoundIdentifier(parts) => parts.last().map(parse::ident).unwrap_or_default(),
        A::Function(f) => parse::object_name(&f.name)
            .ok()
            .and_then(|p| p.last().cloned())
            .unwrap_or_else(|| "?column?".into()),
        A::Cast {
            expr, data_type, ..
        } => match expr.as_ref() {
            A::Value(_) => cast_type_name(data_type),
            inner => {
                let n = column_name(inner);
                if n == "?column?" {
                    cast_type_name(data_type)
                } else {
                    n
                }
            }
        },
        A::Nested(inner) => column_name(inner),
        A::Case { .. } => "case".into(),
        A::Exists { .. } => "exists".into(),
        A::Subquery(q) => match q.body.as_ref() {
            SetExpr::Select(s) => match s.projection.first() {
                Some(SelectItem::UnnamedExpr(e)) => column_name(e),
                Some(SelectItem::ExprWithAlias { alias, .. }) => parse::ident(alias),
                _ => "?column?".into(),
            },
            _ => "?column?".into(),
        },
        A::Extract { .. } => "extract".into(),
        A::Substring { .. } => "substring".into(),
        A::Trim { .. } => "btrim".into(),
        A::Position { .. } => "position".into(),
        A::Ceil { .. } => "ceil".into(),
        A::Floor { .. } => "floor".into(),
        A::Array(_) => "array".into(),
        A::TypedString(ts) => cast_type_name(&ts.data_type),
        A::Interval(_) => "interval".into(),
        A::CompoundFieldAccess { access_chain, root } => match access_chain.last() {
            Some(ast::AccessExpr::Dot(inner)) => column_name(inner),
            _ => column_name(root),
        },
        _ => "?column?".into(),
    }
}

fn cast_type_name(t: &ast::DataType) -> String {
    super::data_type(t).map_or_else(
        |_| "?column?".into(),
        |t| match t {
            SqlType::Int4 => "int4".into(),
            SqlType::Int8 => "int8".into(),
            SqlType::Int2 => "int2".into(),
            SqlType::Bool => "bool".into(),
            SqlType::Float8 => "float8".into(),
            SqlType::Float4 => "float4".into(),
            SqlType::Varchar(_) => "varchar".into(),
            SqlType::Char(_) => "bpchar".into(),
            other => other.typname(),
        },
    )
}

/// Drops a sort that an index scan already provides, and passes a LIMIT to the scan.
fn optimize_index_order(plan: Plan) -> Plan {
    // Shape: [Project] <- [Limit] <- Sort <- Project <- Scan
    fn rewrite(plan: Plan) -> Plan {
        match plan {
            Plan::Project { input, exprs } => Plan::Project {
                input: Box::new(rewrite(*input)),
                exprs,
            },
            Plan::Limit {
                input,
                limit,
                offset,
            } => match *input {
                Plan::Sort {
                    input: sort_in,
                    keys,
                } => match try_sort(*sort_in, &keys) {
                    Ok(mut inner) => {
                        push_limit(&mut inner, limit.as_ref(), offset.as_ref());
                        Plan::Limit {
                            input: Box::new(inner),
                            limit,
                            offset,
                        }
                    }
                    Err(orig) => Plan::Limit {
                        input: Box::new(Plan::Sort {
                            input: Box::new(orig),
                            keys,
                        }),
                        limit,
                        offset,
                    },
                },
                Plan::Project { input: pin, exprs } if matches!(pin.as_ref(), Plan::Scan(_)) => {
                    let mut p = Plan::Project { input: pin, exprs };
                    push_limit(&mut p, limit.as_ref(), offset.as_ref());
                    Plan::Limit {
                        input: Box::new(p),
                        limit,
                        offset,
                    }
                }
                other => Plan::Limit {
                    input: Box::new(other),
                    limit,
                    offset,
                },
            },
            Plan::Sort { input, keys } => match try_sort(*input, &keys) {
                Ok(p) => p,
                Err(orig) => Plan::Sort {
                    input: Box::new(orig),
                    keys,
                },
            },
            other => other,
        }
    }
    fn push_limit(p: &mut Plan, limit: Option<&Expr>, offset: Option<&Expr>) {
        let Plan::Project { input, .. } = p else {
            return;
        };
        let Plan::Scan(scan) = input.as_mut() else {
            return;
        };
        let Some(l) = limit else { return };
        if scan.lock {
            return;
        }
        scan.limit = Some(match offset {
            Some(o) => Expr::Binary {
                op: BinOp::Add,
                left: Box::new(l.clone()),
                right: Box::new(o.clone()),
                ty: SqlType::Int8,
            },
            None => l.clone(),
        });
    }
    #[allow(clippy::result_large_err)] // hands the plan back unchanged when it cannot help
    fn try_sort(input: Plan, keys: &[SortKey]) -> std::result::Result<Plan, Plan> {
        let Plan::Project { input: pin, exprs } = input else {
            return Err(input);
        };
        let Plan::Scan(mut scan) = *pin else {
            return Err(Plan::Project { input: pin, exprs });
        };
        let index = scan
            .table
            .all_indexes()
            .find(|i| i.id == scan.index)
            .cloned();
        let eq_prefix = match &scan.access {
            Access::Full => 0,
            Access::Range { prefix, .. } => prefix.len(),
            Access::Points(_) => usize::MAX,
        };
        let ok = index.as_ref().is_some_and(|index| {
            if eq_prefix == usize::MAX {
                return false;
            }
            let mut dir = None;
            keys.iter().enumerate().all(|(k, key)| {
                let Expr::Column(out, _) = &key.expr else {
                    return false;
                };
                let Some(Expr::Column(col, _)) = exprs.get(*out) else {
                    return false;
                };
                let Some(ic) = index.columns.get(eq_prefix + k) else {
                    return false;
                };
                let Some(pos) = scan.table.live_position(ic.column) else {
                    return false;
                };
                if pos != *col {
                    return false;
                }
                let reversed = key.desc != ic.desc;
                // NULL placement must agree with the key order in that direction.
                let nulls_ok = key.nulls_first == (ic.nulls_first != reversed);
                let d = *dir.get_or_insert(reversed);
                d == reversed && nulls_ok
            }) && !keys.is_empty()
        });
        if !ok {
            return Err(Plan::Project {
                input: Box::new(Plan::Scan(scan)),
                exprs,
            });
        }
        let reversed = match &keys[0].expr {
            Expr::Column(..) => {
                let index = index.expect("checked above");
                keys[0].desc != index.columns[eq_prefix].desc
            }
            _ => false,
        };
        scan.reverse = reversed;
        Ok(Plan::Project {
            input: Box::new(Plan::Scan(scan)),
            exprs,
        })
    }
    rewrite(plan)
}
