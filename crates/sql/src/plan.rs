//! Query plans: what the executor runs.
//!
//! Plans are physical: the binder has already chosen indexes, join algorithms and the
//! order of operations. Every plan node produces rows of a fixed layout (its
//! [`Plan::types`]); expressions above it refer to those columns by position.

use std::fmt::Write as _;
use std::sync::Arc;

use crate::catalog::TableDesc;
use crate::expr::Expr;
use crate::types::SqlType;

/// One output column of a statement.
#[derive(Clone, Debug, PartialEq)]
pub struct Column {
    pub name: String,
    pub ty: SqlType,
    /// The table and column it comes from, for RowDescription.
    pub table_oid: u32,
    pub column_attnum: i16,
}

impl Column {
    /// Returns a column with no source table.
    pub fn new(name: impl Into<String>, ty: SqlType) -> Column {
        Column {
            name: name.into(),
            ty,
            table_oid: 0,
            column_attnum: 0,
        }
    }
}

/// A sort key.
#[derive(Clone, Debug)]
pub struct SortKey {
    pub expr: Expr,
    pub desc: bool,
    pub nulls_first: bool,
}

/// How a scan reaches its rows.
#[derive(Clone, Debug)]
pub enum Access {
    /// Every entry of the index.
    Full,
    /// Exact values for every column of a unique index (or the primary key), one tuple
    /// per lookup (IN lists give several).
    Points(Vec<Vec<Expr>>),
    /// Equality on a prefix of the index columns and optional bounds on the next one.
    Range {
        prefix: Vec<Expr>,
        lower: Option<(Expr, bool)>,
        upper: Option<(Expr, bool)>,
    },
}

/// A read of one table through one of its indexes.
#[derive(Clone, Debug)]
pub struct Scan {
    pub table: Arc<TableDesc>,
    /// The index used (1 = primary).
    pub index: u32,
    pub access: Access,
    pub reverse: bool,
    /// Applied to each row (in the table's live-column layout).
    pub filter: Option<Expr>,
    /// Stop after this many rows (only when there is no filter).
    pub limit: Option<Expr>,
    /// Take pessimistic locks on the rows read (SELECT ... FOR UPDATE, UPDATE, DELETE).
    pub lock: bool,
}

/// A set-returning function called in a select list (evaluated per input row by
/// [`Plan::ProjectSet`]).
#[derive(Clone, Debug)]
pub struct SrfCall {
    pub func: TableFunc,
    pub args: Vec<Expr>,
    pub ty: SqlType,
}

/// A function that produces rows (in FROM).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableFunc {
    GenerateSeries,
    Unnest,
    JsonbArrayElements,
    JsonbArrayElementsText,
    JsonbEach,
    JsonbEachText,
    JsonbObjectKeys,
    RegexpSplitToTable,
    GenerateSubscripts,
    /// One row holding the argument (`pg_partition_ancestors` of a table that is not
    /// partitioned).
    Single,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JoinKind {
    Inner,
    Left,
    Right,
    Full,
    /// Rows of the left side that have a match (EXISTS).
    Semi,
    /// Rows of the left side that have no match (NOT EXISTS).
    Anti,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AggFunc {
    Count,
    CountStar,
    Sum,
    Avg,
    Min,
    Max,
    BoolAnd,
    BoolOr,
    StringAgg,
    ArrayAgg,
    JsonbAgg,
    StddevSamp,
    StddevPop,
    VarSamp,
    VarPop,
    BitAnd,
    BitOr,
}

#[derive(Clone, Debug)]
pub struct AggCall {
    pub func: AggFunc,
    pub args: Vec<Expr>,
    pub distinct: bool,
    pub filter: Option<Expr>,
    pub order_by: Vec<SortKey>,
    pub ty: SqlType,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowFunc {
    RowNumber,
    Rank,
    DenseRank,
    PercentRank,
    CumeDist,
    Ntile,
    Lag,
    Lead,
    FirstValue,
    LastValue,
    NthValue,
    Agg(AggFunc),
}

/// A window frame bound, in rows or peers.
#[derive(Clone, Debug)]
pub enum FrameBound {
    UnboundedPreceding,
    Preceding(Expr),
    CurrentRow,
    Following(Expr),
    UnboundedFollowing,
}

#[derive(Clone, Debug)]
pub struct Frame {
    /// ROWS (true) or RANGE (false; peers of the current row are included).
    pub rows: bool,
    pub start: FrameBound,
    pub end: FrameBound,
}

#[derive(Clone, Debug)]
pub struct WindowCall {
    pub func: WindowFunc,
    pub args: Vec<Expr>,
    pub partition_by: Vec<Expr>,
    pub order_by: Vec<SortKey>,
    pub frame: Frame,
    pub ty: SqlType,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetOp {
    Union,
    Intersect,
    Except,
}

/// A query plan node.
#[derive(Clone, Debug)]
pub enum Plan {
    Values {
        rows: Vec<Vec<Expr>>,
        types: Vec<SqlType>,
    },
    Scan(Box<Scan>),
    /// A catalog table computed from the catalog (pg_catalog, information_schema).
    Virtual {
        name: String,
        types: Vec<SqlType>,
    },
    TableFunc {
        func: TableFunc,
        args: Vec<Expr>,
        types: Vec<SqlType>,
        ordinality: bool,
    },
    Filter {
        input: Box<Plan>,
        predicate: Expr,
    },
    Project {
        input: Box<Plan>,
        exprs: Vec<Expr>,
    },
    /// Nested-loop or hash join; `on` sees the left row followed by the right row.
    Join {
        left: Box<Plan>,
        right: Box<Plan>,
        kind: JoinKind,
        on: Option<Expr>,
        equi: Vec<(Expr, Expr)>,
    },
    Aggregate {
        input: Box<Plan>,
        group_by: Vec<Expr>,
        aggs: Vec<AggCall>,
    },
    Window {
        input: Box<Plan>,
        funcs: Vec<WindowCall>,
    },
    /// Index nested-loop join: the right table's rows are fetched through index `scan.index`
    /// for the distinct values of `keys` (over the left rows; one per leading index
    /// column), as point lookups when `points`, else one prefix scan per key; then joined
    /// as [`Plan::Join`] joins (`equi`, `on`).
    LookupJoin {
        left: Box<Plan>,
        scan: Box<Scan>,
        keys: Vec<Expr>,
        points: bool,
        kind: JoinKind,
        on: Option<Expr>,
        equi: Vec<(Expr, Expr)>,
    },
    /// Set-returning functions of a select list: each input row becomes as many rows as
    /// the longest function returns (the input columns, then one column per function,
    /// NULL once a shorter function runs out), as in PostgreSQL 10 and later.
    ProjectSet {
        input: Box<Plan>,
        funcs: Vec<SrfCall>,
    },
    Sort {
        input: Box<Plan>,
        keys: Vec<SortKey>,
    },
    Limit {
        input: Box<Plan>,
        limit: Option<Expr>,
        offset: Option<Expr>,
    },
    Distinct {
        input: Box<Plan>,
        on: Option<Vec<Expr>>,
    },
    SetOp {
        op: SetOp,
        all: bool,
        left: Box<Plan>,
        right: Box<Plan>,
    },
    /// Rows of a common table expression, computed once per statement.
    CteRef {
        id: usize,
        types: Vec<SqlType>,
    },
    /// WITH RECURSIVE: `base`, then `step` repeatedly over the previous iteration's rows
    /// (seen through `CteRef { id }`) until no new rows appear.
    RecursiveCte {
        id: usize,
        base: Box<Plan>,
        step: Box<Plan>,
        all: bool,
    },
    /// Common table expressions to compute before `body`.
    With {
        ctes: Vec<(usize, Plan)>,
        body: Box<Plan>,
    },
}

/// A subquery used by an expression.
#[derive(Clone, Debug)]
pub struct SubPlan {
    pub plan: Plan,
    /// True if it refers to columns of an enclosing query (run once per outer row).
    pub correlated: bool,
}

/// A complete query: the plan and its output columns.
#[derive(Clone, Debug)]
pub struct QueryPlan {
    pub root: Plan,
    pub columns: Vec<Column>,
}

impl Plan {
    /// Returns the types of the rows the node produces.
    pub fn types(&self) -> Vec<SqlType> {
        match self {
            Plan::Values { types, .. }
            | Plan::Virtual { types, .. }
            | Plan::CteRef { types, .. } => types.clone(),
            Plan::TableFunc {
                types, ordinality, ..
            } => {
                let mut t = types.clone();
                if *ordinality {
                    t.push(SqlType::Int8);
                }
                t
            }
            Plan::Scan(s) => s.table.live_columns().map(|c| c.ty.clone()).collect(),
            Plan::Filter { input, .. }
            | Plan::Sort { input, .. }
            | Plan::Limit { input, .. }
            | Plan::Distinct { input, .. } => input.types(),
            Plan::Project { exprs, .. } => exprs.iter().map(Expr::ty).collect(),
            Plan::Join {
                left, right, kind, ..
            } => {
                let mut t = left.types();
                if !matches!(kind, JoinKind::Semi | JoinKind::Anti) {
                    t.extend(right.types());
                }
                t
            }
            Plan::LookupJoin {
                left, scan, kind, ..
            } => {
                let mut t = left.types();
                if !matches!(kind, JoinKind::Semi | JoinKind::Anti) {
                    t.extend(scan.table.live_columns().map(|c| c.ty.clone()));
                }
                t
            }
            Plan::Aggregate { group_by, aggs, .. } => group_by
                .iter()
                .map(Expr::ty)
                .chain(aggs.iter().map(|a| a.ty.clone()))
                .collect(),
            Plan::Window { input, funcs } => {
                let mut t = input.types();
                t.extend(funcs.iter().map(|f| f.ty.clone()));
                t
            }
            Plan::ProjectSet { input, funcs } => {
                let mut t = input.types();
                t.extend(funcs.iter().map(|f| f.ty.clone()));
                t
            }
            Plan::SetOp { left, .. } => left.types(),
            Plan::RecursiveCte { base, .. } => base.types(),
            Plan::With { body, .. } => body.types(),
        }
    }

    /// Rebuilds the node with `f` applied to each of its input plans.
    pub fn map_inputs(self, f: &mut dyn FnMut(Plan) -> Plan) -> Plan {
        let mut b = |p: Box<Plan>| Box::new(f(*p));
        match self {
            Plan::Filter { input, predicate } => Plan::Filter {
                input: b(input),
                predicate,
            },
            Plan::Project { input, exprs } => Plan::Project {
                input: b(input),
                exprs,
            },
            Plan::Join {
                left,
                right,
                kind,
                on,
                equi,
            } => {
                let left = b(left);
                Plan::Join {
                    left,
                    right: b(right),
                    kind,
                    on,
                    equi,
                }
            }
            Plan::LookupJoin {
                left,
                scan,
                keys,
                points,
                kind,
                on,
                equi,
            } => Plan::LookupJoin {
                left: b(left),
                scan,
                keys,
                points,
                kind,
                on,
                equi,
            },
            Plan::Aggregate {
                input,
                group_by,
                aggs,
            } => Plan::Aggregate {
                input: b(input),
                group_by,
                aggs,
            },
            Plan::Window { input, funcs } => Plan::Window {
                input: b(input),
                funcs,
            },
            Plan::ProjectSet { input, funcs } => Plan::ProjectSet {
                input: b(input),
                funcs,
            },
            Plan::Sort { input, keys } => Plan::Sort {
                input: b(input),
                keys,
            },
            Plan::Limit {
                input,
                limit,
                offset,
            } => Plan::Limit {
                input: b(input),
                limit,
                offset,
            },
            Plan::Distinct { input, on } => Plan::Distinct {
                input: b(input),
                on,
            },
            Plan::SetOp {
                op,
                all,
                left,
                right,
            } => {
                let left = b(left);
                Plan::SetOp {
                    op,
                    all,
                    left,
                    right: b(right),
                }
            }
            Plan::RecursiveCte {
                id,
                base,
                step,
                all,
            } => {
                let base = b(base);
                Plan::RecursiveCte {
                    id,
                    base,
                    step: b(step),
                    all,
                }
            }
            Plan::With { ctes, body } => Plan::With {
                ctes: ctes
                    .into_iter()
                    .map(|(id, p)| (id, *b(Box::new(p))))
                    .collect(),
                body: b(body),
            },
            leaf @ (Plan::Values { .. }
            | Plan::Scan(_)
            | Plan::Virtual { .. }
            | Plan::TableFunc { .. }
            | Plan::CteRef { .. }) => leaf,
        }
    }

    /// Renders the plan as EXPLAIN shows it.
    pub fn explain(&self, out: &mut Vec<String>, depth: usize) {
        let pad = "  ".repeat(depth);
        let mut line = String::new();
        match self {
            Plan::Values { rows, .. } => {
                let _ = write!(line, "Values ({} rows)", rows.len());
            }
            Plan::Scan(s) => {
                let index = s
                    .table
                    .all_indexes()
                    .find(|i| i.id == s.index)
                    .map_or("?".to_string(), |i| i.name.clone());
                let how = match &s.access {
                    Access::Full => "full scan".to_string(),
                    Access::Points(p) => format!(
                        "point lookup ({} key{})",
                        p.len(),
                        if p.len() == 1 { "" } else { "s" }
                    ),
                    Access::Range {
                        prefix,
                        lower,
                        upper,
                    } => {
                        let mut parts = Vec::new();
                        if !prefix.is_empty() {
                            parts.push(format!(
                                "{} equality column{}",
                                prefix.len(),
                                if prefix.len() == 1 { "" } else { "s" }
                            ));
                        }
                        if let Some((_, inc)) = lower {
                            parts.push(format!(
                                "lower bound ({})",
                                if *inc { "inclusive" } else { "exclusive" }
                            ));
                        }
                        if let Some((_, inc)) = upper {
                            parts.push(format!(
                                "upper bound ({})",
                                if *inc { "inclusive" } else { "exclusive" }
                            ));
                        }
                        format!("range scan [{}]", parts.join(", "))
                    }
                };
                let _ = write!(
                    line,
                    "Scan {} using {} ({how}){}",
                    s.table.name,
                    index,
                    if s.reverse { " reverse" } else { "" }
                );
                if s.filter.is_some() {
                    line.push_str(" with filter");
                }
                if s.lock {
                    line.push_str(" locking rows");
                }
            }
            Plan::Virtual { name, .. } => {
                let _ = write!(line, "Virtual table {name}");
            }
            Plan::TableFunc { func, .. } => {
                let _ = write!(line, "Function scan {func:?}");
            }
            Plan::Filter { .. } => line.push_str("Filter"),
            Plan::Project { exprs, .. } => {
                let _ = write!(line, "Project ({} columns)", exprs.len());
            }
            Plan::Join { kind, equi, .. } => {
                let algo = if equi.is_empty() {
                    "Nested loop"
                } else {
                    "Hash"
                };
                let _ = write!(line, "{algo} join ({kind:?})");
            }
            Plan::LookupJoin {
                scan,
                keys,
                points,
                kind,
                ..
            } => {
                let index = scan
                    .table
                    .all_indexes()
                    .find(|i| i.id == scan.index)
                    .map_or("?".to_string(), |i| i.name.clone());
                let _ = write!(
                    line,
                    "Lookup join ({kind:?}) into {} using {index} ({})",
                    scan.table.name,
                    if *points {
                        "point lookups".to_string()
                    } else {
                        format!(
                            "prefix of {} column{}",
                            keys.len(),
                            if keys.len() == 1 { "" } else { "s" }
                        )
                    }
                );
                if scan.filter.is_some() {
                    line.push_str(" with filter");
                }
                if scan.lock {
                    line.push_str(" locking rows");
                }
            }
            Plan::Aggregate { group_by, aggs, .. } => {
                let _ = write!(
                    line,
                    "Aggregate ({} group keys, {} aggregates)",
                    group_by.len(),
                    aggs.len()
                );
            }
            Plan::Window { funcs, .. } => {
                let _ = write!(line, "Window ({} functions)", funcs.len());
            }
            Plan::ProjectSet { funcs, .. } => {
                let names: Vec<String> = funcs.iter().map(|f| format!("{:?}", f.func)).collect();
                let _ = write!(line, "Project set ({})", names.join(", "));
            }
            Plan::Sort { keys, .. } => {
                let _ = write!(line, "Sort ({} keys)", keys.len());
            }
            Plan::Limit { .. } => line.push_str("Limit"),
            Plan::Distinct { on, .. } => line.push_str(if on.is_some() {
                "Distinct on"
            } else {
                "Distinct"
            }),
            Plan::SetOp { op, all, .. } => {
                let _ = write!(line, "{op:?}{}", if *all { " all" } else { "" });
            }
            Plan::CteRef { id, .. } => {
                let _ = write!(line, "CTE scan {id}");
            }
            Plan::RecursiveCte { id, .. } => {
                let _ = write!(line, "Recursive CTE {id}");
            }
            Plan::With { .. } => line.push_str("With"),
        }
        out.push(format!("{pad}{line}"));
        match self {
            Plan::Filter { input, .. }
            | Plan::Project { input, .. }
            | Plan::Aggregate { input, .. }
            | Plan::Window { input, .. }
            | Plan::ProjectSet { input, .. }
            | Plan::Sort { input, .. }
            | Plan::Limit { input, .. }
            | Plan::Distinct { input, .. } => input.explain(out, depth + 1),
            Plan::LookupJoin { left, .. } => left.explain(out, depth + 1),
            Plan::Join { left, right, .. } | Plan::SetOp { left, right, .. } => {
                left.explain(out, depth + 1);
                right.explain(out, depth + 1);
            }
            Plan::RecursiveCte { base, step, .. } => {
                base.explain(out, depth + 1);
                step.explain(out, depth + 1);
            }
            Plan::With { ctes, body } => {
                for (_, p) in ctes {
                    p.explain(out, depth + 1);
                }
                body.explain(out, depth + 1);
            }
            _ => {}
        }
    }
}
