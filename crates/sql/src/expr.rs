//! Bound expressions and their evaluation.
//!
//! The binder turns sqlparser expressions into [`Expr`]: column references become row
//! positions, every node knows its type, implicit casts are explicit. Evaluation is
//! synchronous: subqueries are run by the executor beforehand (once if uncorrelated, per row
//! if correlated) and their results looked up here by id.

use std::cmp::Ordering;
use std::collections::HashSet;

use regex::Regex;

use crate::cast;
use crate::error::{Error, ErrorKind, Result};
use crate::functions::{self, Func};
use crate::ops::{self, BinOp};
use crate::types::SqlType;
use crate::value::{Row, Value};

/// How a subquery's result is used.
#[derive(Clone, Debug)]
pub enum SubqueryKind {
    /// `(SELECT x ...)`: one value (NULL if no row; an error if more than one).
    Scalar,
    /// `EXISTS (...)`.
    Exists,
    /// `x [NOT] IN (SELECT ...)`.
    In { expr: Box<Expr>, negated: bool },
    /// `x op ANY|ALL (SELECT ...)`.
    Quantified {
        expr: Box<Expr>,
        op: BinOp,
        all: bool,
    },
    /// `ARRAY(SELECT ...)`.
    Array,
}

/// The result of running a subquery, for one outer row.
#[derive(Clone, Debug)]
pub enum SubqueryResult {
    Scalar(Value),
    Exists(bool),
    /// The distinct non-NULL values of the single column, and whether a NULL was seen.
    Set(HashSet<Value>, bool),
    /// Every value of the single column.
    List(Vec<Value>),
}

/// A bound expression.
#[derive(Clone, Debug)]
pub enum Expr {
    Literal(Value, SqlType),
    /// A column of the input row.
    Column(usize, SqlType),
    /// A column of an enclosing query's row (`depth` 1 = the immediately enclosing one).
    Outer {
        depth: usize,
        index: usize,
        ty: SqlType,
    },
    /// A statement parameter (`$1` is index 0).
    Param(usize, SqlType),
    Cast {
        expr: Box<Expr>,
        to: SqlType,
        explicit: bool,
    },
    Not(Box<Expr>),
    Neg(Box<Expr>, SqlType),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Binary {
        op: BinOp,
        left: Box<Expr>,
        right: Box<Expr>,
        ty: SqlType,
    },
    IsNull {
        expr: Box<Expr>,
        negated: bool,
    },
    /// `IS [NOT] TRUE/FALSE/UNKNOWN`: `value` is Some(true/false) or None for UNKNOWN.
    IsBool {
        expr: Box<Expr>,
        value: Option<bool>,
        negated: bool,
    },
    IsDistinct {
        left: Box<Expr>,
        right: Box<Expr>,
        negated: bool,
    },
    Case {
        operand: Option<Box<Expr>>,
        whens: Vec<(Expr, Expr)>,
        otherwise: Option<Box<Expr>>,
        ty: SqlType,
    },
    InList {
        expr: Box<Expr>,
        list: Vec<Expr>,
        negated: bool,
    },
    Between {
        expr: Box<Expr>,
        low: Box<Expr>,
        high: Box<Expr>,
        negated: bool,
    },
    Like {
        expr: Box<Expr>,
        pattern: Box<Expr>,
        escape: Option<Box<Expr>>,
        case_insensitive: bool,
        negated: bool,
    },
    /// `~`, `~*`, `!~`, `!~*`; a constant pattern is compiled once.
    Regex {
        expr: Box<Expr>,
        pattern: Box<Expr>,
        case_insensitive: bool,
        negated: bool,
        compiled: Option<Box<Regex>>,
    },
    Func {
        func: Func,
        args: Vec<Expr>,
        ty: SqlType,
    },
    Array {
        items: Vec<Expr>,
        ty: SqlType,
    },
    Subscript {
        expr: Box<Expr>,
        index: Box<Expr>,
        ty: SqlType,
    },
    /// `x op ANY|ALL (array)`.
    AnyArray {
        expr: Box<Expr>,
        op: BinOp,
        array: Box<Expr>,
        all: bool,
    },
    Subquery {
        id: usize,
        kind: SubqueryKind,
        ty: SqlType,
    },
}

/// What evaluation reads besides the row.
pub struct EvalCtx<'a> {
    pub params: &'a [Value],
    /// Rows of enclosing queries, innermost last.
    pub outer: &'a [Row],
    /// Results of the subqueries of the expression being evaluated, by id.
    pub subqueries: &'a [Option<SubqueryResult>],
    pub session: &'a functions::SessionInfo,
}

impl Expr {
    /// Returns the expression's type.
    pub fn ty(&self) -> SqlType {
        match self {
            Expr::Literal(_, t) | Expr::Column(_, t) | Expr::Param(_, t) => t.clone(),
            Expr::Outer { ty, .. } => ty.clone(),
            Expr::Cast { to, .. } => to.clone(),
            Expr::Neg(_, t) => t.clone(),
            Expr::Binary { ty, .. } | Expr::Case { ty, .. } | Expr::Func { ty, .. } => ty.clone(),
            Expr::Array { ty, .. } | Expr::Subscript { ty, .. } | Expr::Subquery { ty, .. } => {
                ty.clone()
            }
            Expr::Not(_)
            | Expr::And(..)
            | Expr::Or(..)
            | Expr::IsNull { .. }
            | Expr::IsBool { .. }
            | Expr::IsDistinct { .. }
            | Expr::InList { .. }
            | Expr::Between { .. }
            | Expr::Like { .. }
            | Expr::Regex { .. }
            | Expr::AnyArray { .. } => SqlType::Bool,
        }
    }

    /// Returns a NULL literal of a type.
    pub fn null(ty: SqlType) -> Expr {
        Expr::Literal(Value::Null, ty)
    }

    /// Returns true if the expression is a constant (no columns, parameters, subqueries or
    /// volatile functions).
    pub fn is_constant(&self) -> bool {
        let mut constant = true;
        self.walk(&mut |e| {
            if matches!(
                e,
                Expr::Column(..) | Expr::Outer { .. } | Expr::Param(..) | Expr::Subquery { .. }
            ) || matches!(e, Expr::Func { func, .. } if func.is_volatile())
            {
                constant = false;
            }
        });
        constant
    }

    /// Returns true if the expression refers to no input column (it may use parameters
    /// and outer columns): it can be evaluated before reading a row.
    pub fn is_row_independent(&self) -> bool {
        let mut ok = true;
        self.walk(&mut |e| {
            if matches!(e, Expr::Column(..) | Expr::Subquery { .. }) {
                ok = false;
            }
        });
        ok
    }

    /// Returns true if the expression contains a subquery.
    pub fn has_subquery(&self) -> bool {
        let mut found = false;
        self.walk(&mut |e| found |= matches!(e, Expr::Subquery { .. }));
        found
    }

    /// Returns the input columns the expression reads.
    pub fn columns(&self) -> Vec<usize> {
        let mut cols = Vec::new();
        self.walk(&mut |e| {
            if let Expr::Column(i, _) = e {
                cols.push(*i);
            }
        });
        cols.sort_unstable();
        cols.dedup();
        cols
    }

    /// Calls `f` on every node, parents first.
    pub fn walk(&self, f: &mut dyn FnMut(&Expr)) {
        f(self);
        self.for_each_child(&mut |c| c.walk(f));
    }

    fn for_each_child(&self, f: &mut dyn FnMut(&Expr)) {
        match self {
            Expr::Literal(..) | Expr::Column(..) | Expr::Outer { .. } | Expr::Param(..) => {}
            Expr::Cast { expr, .. } | Expr::Not(expr) | Expr::Neg(expr, _) => f(expr),
            Expr::IsNull { expr, .. } | Expr::IsBool { expr, .. } => f(expr),
            Expr::And(a, b) | Expr::Or(a, b) => {
                f(a);
                f(b);
            }
            Expr::Binary { left, right, .. } | Expr::IsDistinct { left, right, .. } => {
                f(left);
                f(right);
            }
            Expr::Case {
                operand,
                whens,
                otherwise,
                ..
            } => {
                if let Some(o) = operand {
                    f(o);
                }
                for (w, t) in whens {
                    f(w);
                    f(t);
                }
                if let Some(o) = otherwise {
                    f(o);
                }
            }
            Expr::InList { expr, list, .. } => {
                f(expr);
                list.iter().for_each(&mut *f);
            }
            Expr::Between {
                expr, low, high, ..
            } => {
                f(expr);
                f(low);
                f(high);
            }
            Expr::Like {
                expr,
                pattern,
                escape,
                ..
            } => {
                f(expr);
                f(pattern);
                if let Some(e) = escape {
                    f(e);
                }
            }
            Expr::Regex { expr, pattern, .. } => {
                f(expr);
                f(pattern);
            }
            Expr::Func { args, .. } | Expr::Array { items: args, .. } => {
                args.iter().for_each(&mut *f)
            }
            Expr::Subscript { expr, index, .. } => {
                f(expr);
                f(index);
            }
            Expr::AnyArray { expr, array, .. } => {
                f(expr);
                f(array);
            }
            Expr::Subquery { kind, .. } => match kind {
                SubqueryKind::In { expr, .. } | SubqueryKind::Quantified { expr, .. } => f(expr),
                _ => {}
            },
        }
    }

    /// Rewrites column references: `map(i)` gives the new expression for column `i`.
    pub fn map_columns(&self, map: &dyn Fn(usize, &SqlType) -> Expr) -> Expr {
        let m = |e: &Expr| Box::new(e.map_columns(map));
        match self {
            Expr::Column(i, t) => map(*i, t),
            Expr::Literal(..) | Expr::Outer { .. } | Expr::Param(..) => self.clone(),
            Expr::Cast { expr, to, explicit } => Expr::Cast {
                expr: m(expr),
                to: to.clone(),
                explicit: *explicit,
            },
            Expr::Not(e) => Expr::Not(m(e)),
            Expr::Neg(e, t) => Expr::Neg(m(e), t.clone()),
            Expr::And(a, b) => Expr::And(m(a), m(b)),
            Expr::Or(a, b) => Expr::Or(m(a), m(b)),
            Expr::Binary {
                op,
                left,
                right,
                ty,
            } => Expr::Binary {
                op: *op,
                left: m(left),
                right: m(right),
                ty: ty.clone(),
            },
            Expr::IsNull { expr, negated } => Expr::IsNull {
                expr: m(expr),
                negated: *negated,
            },
            Expr::IsBool {
                expr,
                value,
                negated,
            } => Expr::IsBool {
                expr: m(expr),
                value: *value,
                negated: *negated,
            },
            Expr::IsDistinct {
                left,
                right,
                negated,
            } => Expr::IsDistinct {
                left: m(left),
                right: m(right),
                negated: *negated,
            },
            Expr::Case {
                operand,
                whens,
                otherwise,
                ty,
            } => Expr::Case {
                operand: operand.as_ref().map(|o| m(o)),
                whens: whens
                    .iter()
                    .map(|(w, t)| (w.map_columns(map), t.map_columns(map)))
                    .collect(),
                otherwise: otherwise.as_ref().map(|o| m(o)),
                ty: ty.clone(),
            },
            Expr::InList {
                expr,
                list,
                negated,
            } => Expr::InList {
                expr: m(expr),
                list: list.iter().map(|e| e.map_columns(map)).collect(),
                negated: *negated,
            },
            Expr::Between {
                expr,
                low,
                high,
                negated,
            } => Expr::Between {
                expr: m(expr),
                low: m(low),
                high: m(high),
                negated: *negated,
            },
            Expr::Like {
                expr,
                pattern,
                escape,
                case_insensitive,
                negated,
            } => Expr::Like {
                expr: m(expr),
                pattern: m(pattern),
                escape: escape.as_ref().map(|e| m(e)),
                case_insensitive: *case_insensitive,
                negated: *negated,
            },
            Expr::Regex {
                expr,
                pattern,
                case_insensitive,
                negated,
                compiled,
            } => Expr::Regex {
                expr: m(expr),
                pattern: m(pattern),
                case_insensitive: *case_insensitive,
                negated: *negated,
                compiled: compiled.clone(),
            },
            Expr::Func { func, args, ty } => Expr::Func {
                func: *func,
                args: args.iter().map(|a| a.map_columns(map)).collect(),
                ty: ty.clone(),
            },
            Expr::Array { items, ty } => Expr::Array {
                items: items.iter().map(|a| a.map_columns(map)).collect(),
                ty: ty.clone(),
            },
            Expr::Subscript { expr, index, ty } => Expr::Subscript {
                expr: m(expr),
                index: m(index),
                ty: ty.clone(),
            },
            Expr::AnyArray {
                expr,
                op,
                array,
                all,
            } => Expr::AnyArray {
                expr: m(expr),
                op: *op,
                array: m(array),
                all: *all,
            },
            Expr::Subquery { id, kind, ty } => {
                let kind = match kind {
                    SubqueryKind::In { expr, negated } => SubqueryKind::In {
                        expr: m(expr),
                        negated: *negated,
                    },
                    SubqueryKind::Quantified { expr, op, all } => SubqueryKind::Quantified {
                        expr: m(expr),
                        op: *op,
                        all: *all,
                    },
                    k => k.clone(),
                };
                Expr::Subquery {
                    id: *id,
                    kind,
                    ty: ty.clone(),
                }
            }
        }
    }

    /// Evaluates the expression on `row`.
    pub fn eval(&self, row: &[Value], ctx: &EvalCtx<'_>) -> Result<Value> {
        Ok(match self {
            Expr::Literal(v, _) => v.clone(),
            Expr::Column(i, _) => row
                .get(*i)
                .cloned()
                .ok_or_else(|| Error::internal(format!("column {i} out of range")))?,
            Expr::Outer { depth, index, .. } => {
                let r = ctx
                    .outer
                    .len()
                    .checked_sub(*depth)
                    .and_then(|d| ctx.outer.get(d))
                    .ok_or_else(|| Error::internal("outer row missing"))?;
                r.get(*index)
                    .cloned()
                    .ok_or_else(|| Error::internal("outer column out of range"))?
            }
            Expr::Param(i, ty) => {
                let v = ctx.params.get(*i).cloned().ok_or_else(|| {
                    Error::new(
                        ErrorKind::UndefinedParameter,
                        format!("there is no parameter ${}", i + 1),
                    )
                })?;
                match (&v, ty) {
                    (Value::Text(s), t)
                        if !matches!(
                            t,
                            SqlType::Text
                                | SqlType::Unknown
                                | SqlType::Varchar(_)
                                | SqlType::Char(_)
                                | SqlType::Name
                        ) =>
                    {
                        crate::textio::from_text(s, t)?
                    }
                    _ => v,
                }
            }
            Expr::Cast { expr, to, explicit } => {
                let from = expr.ty();
                cast::cast(expr.eval(row, ctx)?, &from, to, *explicit)?
            }
            Expr::Not(e) => match e.eval(row, ctx)? {
                Value::Bool(b) => Value::Bool(!b),
                _ => Value::Null,
            },
            Expr::Neg(e, ty) => ops::negate(e.eval(row, ctx)?, ty)?,
            Expr::And(a, b) => {
                let l = a.eval(row, ctx)?;
                if l.as_bool() == Some(false) {
                    return Ok(Value::Bool(false));
                }
                let r = b.eval(row, ctx)?;
                match (l.as_bool(), r.as_bool()) {
                    (_, Some(false)) => Value::Bool(false),
                    (Some(true), Some(true)) => Value::Bool(true),
                    _ => Value::Null,
                }
            }
            Expr::Or(a, b) => {
                let l = a.eval(row, ctx)?;
                if l.as_bool() == Some(true) {
                    return Ok(Value::Bool(true));
                }
                let r = b.eval(row, ctx)?;
                match (l.as_bool(), r.as_bool()) {
                    (_, Some(true)) => Value::Bool(true),
                    (Some(false), Some(false)) => Value::Bool(false),
                    _ => Value::Null,
                }
            }
            Expr::Binary {
                op,
                left,
                right,
                ty,
            } => {
                let l = left.eval(row, ctx)?;
                let r = right.eval(row, ctx)?;
                ops::binary(*op, l, r, &left.ty(), &right.ty(), ty)?
            }
            Expr::IsNull { expr, negated } => {
                Value::Bool(expr.eval(row, ctx)?.is_null() != *negated)
            }
            Expr::IsBool {
                expr,
                value,
                negated,
            } => {
                let v = expr.eval(row, ctx)?;
                Value::Bool((v.as_bool() == *value) != *negated)
            }
            Expr::IsDistinct {
                left,
                right,
                negated,
            } => {
                let same = left.eval(row, ctx)?.not_distinct(&right.eval(row, ctx)?);
                Value::Bool(same == *negated)
            }
            Expr::Case {
                operand,
                whens,
                otherwise,
                ..
            } => {
                let subject = operand.as_ref().map(|o| o.eval(row, ctx)).transpose()?;
                for (w, t) in whens {
                    let hit = match &subject {
                        Some(s) => s.sql_cmp(&w.eval(row, ctx)?) == Some(Ordering::Equal),
                        None => w.eval(row, ctx)?.as_bool() == Some(true),
                    };
                    if hit {
                        return t.eval(row, ctx);
                    }
                }
                match otherwise {
                    Some(o) => o.eval(row, ctx)?,
                    None => Value::Null,
                }
            }
            Expr::InList {
                expr,
                list,
                negated,
            } => {
                let v = expr.eval(row, ctx)?;
                if v.is_null() {
                    return Ok(Value::Null);
                }
                let mut saw_null = false;
                for item in list {
                    let x = item.eval(row, ctx)?;
                    match v.sql_cmp(&x) {
                        Some(Ordering::Equal) => return Ok(Value::Bool(!*negated)),
                        None => saw_null = true,
                        _ => {}
                    }
                }
                if saw_null {
                    Value::Null
                } else {
                    Value::Bool(*negated)
                }
            }
            Expr::Between {
                expr,
                low,
                high,
                negated,
            } => {
                let v = expr.eval(row, ctx)?;
                let lo = v.sql_cmp(&low.eval(row, ctx)?).map(|o| o != Ordering::Less);
                let hi = v
                    .sql_cmp(&high.eval(row, ctx)?)
                    .map(|o| o != Ordering::Greater);
                let r = match (lo, hi) {
                    (Some(false), _) | (_, Some(false)) => Some(false),
                    (Some(true), Some(true)) => Some(true),
                    _ => None,
                };
                r.map_or(Value::Null, |b| Value::Bool(b != *negated))
            }
            Expr::Like {
                expr,
                pattern,
                escape,
                case_insensitive,
                negated,
            } => {
                let (v, p) = (expr.eval(row, ctx)?, pattern.eval(row, ctx)?);
                let esc = match escape {
                    Some(e) => match e.eval(row, ctx)? {
                        Value::Text(s) => s.chars().next(),
                        Value::Null => return Ok(Value::Null),
                        _ => Some('\\'),
                    },
                    None => Some('\\'),
                };
                match (v, p) {
                    (Value::Text(s), Value::Text(p)) => {
                        Value::Bool(functions::like(&s, &p, esc, *case_insensitive)? != *negated)
                    }
                    _ => Value::Null,
                }
            }
            Expr::Regex {
                expr,
                pattern,
                case_insensitive,
                negated,
                compiled,
            } => {
                let v = expr.eval(row, ctx)?;
                let Value::Text(s) = v else {
                    return Ok(Value::Null);
                };
                let matched = match compiled {
                    Some(re) => re.is_match(&s),
                    None => match pattern.eval(row, ctx)? {
                        Value::Text(p) => {
                            functions::compile_regex(&p, *case_insensitive)?.is_match(&s)
                        }
                        _ => return Ok(Value::Null),
                    },
                };
                Value::Bool(matched != *negated)
            }
            Expr::Func { func, args, ty } => {
                let vals = args
                    .iter()
                    .map(|a| a.eval(row, ctx))
                    .collect::<Result<Vec<_>>>()?;
                functions::call(*func, vals, args, ty, ctx.session)?
            }
            Expr::Array { items, .. } => Value::Array(
                items
                    .iter()
                    .map(|i| i.eval(row, ctx))
                    .collect::<Result<_>>()?,
            ),
            Expr::Subscript { expr, index, .. } => {
                let (a, i) = (expr.eval(row, ctx)?, index.eval(row, ctx)?);
                match (a, i) {
                    (Value::Array(items), Value::Int(i)) => usize::try_from(i - 1)
                        .ok()
                        .and_then(|i| items.get(i).cloned())
                        .unwrap_or(Value::Null),
                    _ => Value::Null,
                }
            }
            Expr::AnyArray {
                expr,
                op,
                array,
                all,
            } => {
                let v = expr.eval(row, ctx)?;
                let items = match array.eval(row, ctx)? {
                    Value::Array(items) => items,
                    Value::Null => return Ok(Value::Null),
                    other => {
                        return Err(Error::internal(format!("ANY over a non-array {other:?}")));
                    }
                };
                let elem_ty = array.ty().element().cloned().unwrap_or(SqlType::Unknown);
                quantified(&v, &expr.ty(), *op, items.into_iter(), &elem_ty, *all)?
            }
            Expr::Subquery { id, kind, .. } => {
                let result = ctx
                    .subqueries
                    .get(*id)
                    .and_then(Option::as_ref)
                    .ok_or_else(|| Error::internal(format!("subquery {id} was not evaluated")))?;
                match (kind, result) {
                    (SubqueryKind::Scalar, SubqueryResult::Scalar(v)) => v.clone(),
                    (SubqueryKind::Exists, SubqueryResult::Exists(b)) => Value::Bool(*b),
                    (SubqueryKind::In { expr, negated }, SubqueryResult::Set(set, has_null)) => {
                        let v = expr.eval(row, ctx)?;
                        if v.is_null() {
                            if set.is_empty() && !has_null {
                                return Ok(Value::Bool(*negated));
                            }
                            return Ok(Value::Null);
                        }
                        if set.contains(&v) {
                            Value::Bool(!*negated)
                        } else if *has_null {
                            Value::Null
                        } else {
                            Value::Bool(*negated)
                        }
                    }
                    (SubqueryKind::Quantified { expr, op, all }, SubqueryResult::List(items)) => {
                        let v = expr.eval(row, ctx)?;
                        let t = expr.ty();
                        quantified(&v, &t, *op, items.iter().cloned(), &t, *all)?
                    }
                    (SubqueryKind::Array, SubqueryResult::List(items)) => {
                        Value::Array(items.clone())
                    }
                    _ => return Err(Error::internal("subquery result of the wrong kind")),
                }
            }
        })
    }

    /// Evaluates a predicate: true only for TRUE (NULL and FALSE are false).
    pub fn eval_bool(&self, row: &[Value], ctx: &EvalCtx<'_>) -> Result<bool> {
        Ok(self.eval(row, ctx)?.as_bool() == Some(true))
    }
}

/// `v op ANY (items)` or `v op ALL (items)`, with SQL's NULL rules.
fn quantified(
    v: &Value,
    vty: &SqlType,
    op: BinOp,
    items: impl Iterator<Item = Value>,
    ity: &SqlType,
    all: bool,
) -> Result<Value> {
    let mut saw_null = false;
    let mut any_item = false;
    for item in items {
        any_item = true;
        let r = ops::binary(op, v.clone(), item, vty, ity, &SqlType::Bool)?;
        match (r.as_bool(), all) {
            (Some(true), false) => return Ok(Value::Bool(true)),
            (Some(false), true) => return Ok(Value::Bool(false)),
            (None, _) => saw_null = true,
            _ => {}
        }
    }
    if !any_item {
        return Ok(Value::Bool(all));
    }
    if saw_null {
        Ok(Value::Null)
    } else {
        Ok(Value::Bool(all))
    }
}

/// Splits a predicate into its AND-ed parts.
pub fn conjuncts(e: Expr) -> Vec<Expr> {
    match e {
        Expr::And(a, b) => {
            let mut v = conjuncts(*a);
            v.extend(conjuncts(*b));
            v
        }
        other => vec![other],
    }
}

/// Joins predicates with AND; `None` for an empty list.
pub fn conjoin(parts: Vec<Expr>) -> Option<Expr> {
    parts
        .into_iter()
        .reduce(|a, b| Expr::And(Box::new(a), Box::new(b)))
}

/// Returns an error for a value of the wrong kind where a boolean is needed.
pub fn not_boolean(ty: &SqlType, what: &str) -> Error {
    Error::new(
        ErrorKind::DatatypeMismatch,
        format!(
            "argument of {what} must be type boolean, not type {}",
            ty.pg_name()
        ),
    )
}
