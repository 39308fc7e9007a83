//! Binding expressions.

use sqlparser::ast::{
    self as ast, BinaryOperator, CastKind, DateTimeField, FunctionArg, FunctionArgExpr,
    FunctionArguments, InTarget, UnaryOperator, Value as AstValue, WindowFrameBound,
    WindowFrameUnits, WindowType,
};

use super::Binder;
use super::scope::{Lookup, Scope};
use crate::cast;
use crate::error::{Error, ErrorKind, Result};
use crate::expr::{Expr, SubqueryKind, not_boolean};
use crate::functions::{self, Func};
use crate::ops::{self, BinOp};
use crate::parse;
use crate::plan::{AggCall, AggFunc, Frame, FrameBound, SortKey, SubPlan, WindowCall, WindowFunc};
use crate::textio;
use crate::types::{SqlType, TypeFamily};
use crate::value::Value;

/// Aggregation state while binding expressions above a GROUP BY.
pub struct AggState {
    /// The scope of the rows being aggregated.
    pub input: Scope,
    /// GROUP BY expressions, bound against `input`, with their fingerprints.
    pub groups: Vec<(String, Expr)>,
    pub aggs: Vec<AggCall>,
}

/// Window-function state while binding a select list.
pub struct WindowState {
    /// Width of the rows the window functions see (their results come after).
    pub base: usize,
    pub calls: Vec<WindowCall>,
}

/// Column numbers at and above this refer to set-returning functions of a select list
/// (renumbered once the [`crate::plan::Plan::ProjectSet`] is placed).
pub const SRF_BASE: usize = 1 << 40;

/// Returns true if `e` uses the result of a select-list set-returning function.
pub fn refers_to_srf(e: &Expr) -> bool {
    let found = std::cell::Cell::new(false);
    e.map_columns(&|i, t| {
        if i >= SRF_BASE {
            found.set(true);
        }
        Expr::Column(i, t.clone())
    });
    found.get()
}

/// Set-returning functions collected from a select list.
#[derive(Default)]
pub struct SrfState {
    pub calls: Vec<crate::plan::SrfCall>,
}

/// Where an expression is being bound.
pub struct ExprCtx<'s> {
    pub scope: &'s Scope,
    /// Set when binding above an aggregation: column references must be grouped, and
    /// aggregate calls are collected.
    pub agg: Option<AggState>,
    pub window: Option<WindowState>,
    /// Set while binding a select list, where set-returning functions are allowed.
    pub srf: Option<SrfState>,
    /// The clause, for "aggregate functions are not allowed in WHERE".
    pub clause: &'static str,
}

impl<'s> ExprCtx<'s> {
    /// A context with no aggregation or windowing.
    pub fn plain(scope: &'s Scope, clause: &'static str) -> Self {
        ExprCtx {
            scope,
            agg: None,
            window: None,
            srf: None,
            clause,
        }
    }
}

fn fingerprint(e: &Expr) -> String {
    format!("{e:?}")
}

/// Returns true if the expression contains an aggregate call (not inside a subquery,
/// whose aggregates belong to the subquery).
pub fn contains_aggregate(e: &ast::Expr) -> bool {
    use std::ops::ControlFlow;

    use sqlparser::ast::{Visit, Visitor};

    struct Finder {
        depth: usize,
    }
    impl Visitor for Finder {
        type Break = ();
        fn pre_visit_query(&mut self, _: &ast::Query) -> ControlFlow<()> {
            self.depth += 1;
            ControlFlow::Continue(())
        }
        fn post_visit_query(&mut self, _: &ast::Query) -> ControlFlow<()> {
            self.depth -= 1;
            ControlFlow::Continue(())
        }
        fn pre_visit_expr(&mut self, x: &ast::Expr) -> ControlFlow<()> {
            if self.depth == 0
                && let ast::Expr::Function(f) = x
                && f.over.is_none()
                && agg_func(&fn_name(f)).is_some()
            {
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        }
    }
    e.visit(&mut Finder { depth: 0 }).is_break()
}

fn fn_name(f: &ast::Function) -> String {
    parse::object_name(&f.name)
        .ok()
        .and_then(|p| p.last().cloned())
        .unwrap_or_default()
}

/// Returns the aggregate function of a name.
pub fn agg_func(name: &str) -> Option<AggFunc> {
    Some(match name {
        "count" => AggFunc::Count,
        "sum" => AggFunc::Sum,
        "avg" => AggFunc::Avg,
        "min" => AggFunc::Min,
        "max" => AggFunc::Max,
        "bool_and" | "every" => AggFunc::BoolAnd,
        "bool_or" => AggFunc::BoolOr,
        "string_agg" => AggFunc::StringAgg,
        "array_agg" => AggFunc::ArrayAgg,
        "jsonb_agg" | "json_agg" => AggFunc::JsonbAgg,
        "stddev" | "stddev_samp" => AggFunc::StddevSamp,
        "stddev_pop" => AggFunc::StddevPop,
        "variance" | "var_samp" => AggFunc::VarSamp,
        "var_pop" => AggFunc::VarPop,
        "bit_and" => AggFunc::BitAnd,
        "bit_or" => AggFunc::BitOr,
        _ => return None,
    })
}

/// Returns the result type of an aggregate over an argument type.
pub fn agg_type(func: AggFunc, arg: &SqlType) -> Result<SqlType> {
    use SqlType as T;
    let bad = || {
        Error::new(
            ErrorKind::UndefinedFunction,
            format!("function {:?}({}) does not exist", func, arg.pg_name()).to_lowercase(),
        )
    };
    Ok(match func {
        AggFunc::Count | AggFunc::CountStar => T::Int8,
        AggFunc::Sum => match arg {
            T::Int2 | T::Int4 => T::Int8,
            T::Int8 | T::Numeric(_) => T::Numeric(None),
            T::Float4 => T::Float4,
            T::Float8 => T::Float8,
            T::Interval => T::Interval,
            T::Unknown => T::Float8,
            _ => return Err(bad()),
        },
        AggFunc::Avg => match arg.family() {
            TypeFamily::Integer | TypeFamily::Numeric => T::Numeric(None),
            TypeFamily::Float | TypeFamily::Unknown => T::Float8,
            TypeFamily::Interval => T::Interval,
            _ => return Err(bad()),
        },
        AggFunc::StddevSamp | AggFunc::StddevPop | AggFunc::VarSamp | AggFunc::VarPop => {
            match arg.family() {
                TypeFamily::Integer | TypeFamily::Numeric => T::Numeric(None),
                TypeFamily::Float | TypeFamily::Unknown => T::Float8,
                _ => return Err(bad()),
            }
        }
        AggFunc::Min | AggFunc::Max => {
            if matches!(arg, T::Unknown) {
                T::Text
            } else if arg.family() == TypeFamily::Json {
                return Err(bad());
            } else {
                arg.clone()
            }
        }
        AggFunc::BoolAnd | AggFunc::BoolOr => T::Bool,
        AggFunc::StringAgg => T::Text,
        AggFunc::ArrayAgg => T::Array(Box::new(if *arg == T::Unknown {
            T::Text
        } else {
            arg.clone()
        })),
        AggFunc::JsonbAgg => T::Jsonb,
        AggFunc::BitAnd | AggFunc::BitOr => {
            if arg.family() != TypeFamily::Integer {
                return Err(bad());
            }
            arg.clone()
        }
    })
}

fn is_default_ident(e: &ast::Expr) -> bool {
    matches!(e, ast::Expr::Identifier(i) if i.quote_style.is_none() && i.value.eq_ignore_ascii_case("default"))
}

/// Parses a numeric literal: int4, int8 or numeric like PostgreSQL.
pub fn number_literal(s: &str) -> Result<Expr> {
    let clean: String = s.chars().filter(|c| *c != '_').collect();
    if let Ok(i) = clean.parse::<i64>() {
        let ty = if i32::try_from(i).is_ok() {
            SqlType::Int4
        } else {
            SqlType::Int8
        };
        return Ok(Expr::Literal(Value::Int(i), ty));
    }
    if let Some(hex) = clean
        .strip_prefix("0x")
        .or_else(|| clean.strip_prefix("0X"))
        && let Ok(i) = i64::from_str_radix(hex, 16)
    {
        return Ok(Expr::Literal(Value::Int(i), SqlType::Int8));
    }
    match textio::from_text(&clean, &SqlType::Numeric(None)) {
        Ok(v) => Ok(Expr::Literal(v, SqlType::Numeric(None))),
        Err(_) => match clean.parse::<f64>() {
            Ok(f) => Ok(Expr::Literal(Value::Float(f), SqlType::Float8)),
            Err(_) => Err(Error::new(
                ErrorKind::Syntax,
                format!("invalid number \"{s}\""),
            )),
        },
    }
}

impl Binder<'_> {
    /// Coerces an expression to `to` where PostgreSQL would do so implicitly (operator
    /// and function arguments): unknown literals and parameters take the type, numbers
    /// widen, strings mix.
    pub fn coerce(&mut self, e: Expr, to: &SqlType) -> Result<Expr> {
        let from = e.ty();
        if from == *to || *to == SqlType::Unknown {
            return Ok(e);
        }
        match e {
            Expr::Literal(Value::Null, _) => return Ok(Expr::Literal(Value::Null, to.clone())),
            Expr::Literal(Value::Text(s), SqlType::Unknown) if *to == SqlType::RegClass => {
                return Ok(Expr::Literal(self.regclass_value(&s)?, SqlType::RegClass));
            }
            Expr::Literal(Value::Text(s), SqlType::Unknown) => {
                return Ok(Expr::Literal(textio::from_text(&s, to)?, to.clone()));
            }
            Expr::Param(n, SqlType::Unknown) => {
                self.set_param_type(n, to.clone());
                let t = self.param_type(n);
                return Ok(if t == *to {
                    Expr::Param(n, t)
                } else {
                    Expr::Cast {
                        expr: Box::new(Expr::Param(n, t)),
                        to: to.clone(),
                        explicit: false,
                    }
                });
            }
            _ => {}
        }
        if implicitly_castable(&from, to) {
            return Ok(Expr::Cast {
                expr: Box::new(e),
                to: to.clone(),
                explicit: false,
            });
        }
        Err(Error::new(
            ErrorKind::DatatypeMismatch,
            format!(
                "cannot use a value of type {} as {}",
                from.pg_name(),
                to.pg_name()
            ),
        ))
    }

    /// Coerces for assignment to a column of type `to` (INSERT, UPDATE).
    pub fn coerce_assign(&mut self, e: Expr, to: &SqlType, column: &str) -> Result<Expr> {
        let from = e.ty();
        if from == *to {
            return Ok(e);
        }
        if matches!(
            e,
            Expr::Literal(Value::Null, _)
                | Expr::Literal(_, SqlType::Unknown)
                | Expr::Param(_, SqlType::Unknown)
        ) {
            return self.coerce(e, to);
        }
        if cast::assignable(&from, to) {
            return Ok(Expr::Cast {
                expr: Box::new(e),
                to: to.clone(),
                explicit: false,
            });
        }
        Err(Error::new(
            ErrorKind::DatatypeMismatch,
            format!(
                "column \"{column}\" is of type {} but expression is of type {}",
                to.pg_name(),
                from.pg_name()
            ),
        )
        .with_hint("You will need to rewrite or cast the expression."))
    }

    /// Binds a predicate and checks that it is boolean.
    pub fn bind_predicate(&mut self, e: &ast::Expr, cx: &mut ExprCtx<'_>) -> Result<Expr> {
        let b = self.bind_expr(e, cx)?;
        let b = if b.ty() == SqlType::Unknown {
            self.coerce(b, &SqlType::Bool)?
        } else {
            b
        };
        if b.ty() != SqlType::Bool {
            return Err(not_boolean(&b.ty(), cx.clause).at(span_pos(e)));
        }
        Ok(b)
    }

    /// Binds an expression.
    pub fn bind_expr(&mut self, e: &ast::Expr, cx: &mut ExprCtx<'_>) -> Result<Expr> {
        if cx.agg.is_some() {
            return self.bind_post_agg(e, cx);
        }
        self.bind_inner(e, cx).map_err(|err| err.at(span_pos(e)))
    }

    /// Binding above an aggregation: grouped expressions become references to the group
    /// columns, aggregate calls to the aggregate columns.
    fn bind_post_agg(&mut self, e: &ast::Expr, cx: &mut ExprCtx<'_>) -> Result<Expr> {
        if let ast::Expr::Function(f) = e
            && f.over.is_none()
            && let Some(func) = agg_func(&fn_name(f))
        {
            return self.bind_aggregate(func, f, cx);
        }
        if matches!(e, ast::Expr::Function(f) if f.over.is_some()) {
            return self.bind_inner(e, cx);
        }
        // Does the whole expression match a GROUP BY expression?
        let state = cx.agg.take().expect("checked by the caller");
        let mut pre = ExprCtx::plain(&state.input, cx.clause);
        let saved_params = self.params.clone();
        let attempt = if contains_aggregate(e) {
            None
        } else {
            self.bind_inner(e, &mut pre).ok()
        };
        cx.agg = Some(state);
        if let Some(bound) = attempt {
            let fp = fingerprint(&bound);
            let groups = &cx.agg.as_ref().expect("restored above").groups;
            if let Some(i) = groups.iter().position(|(g, _)| *g == fp) {
                return Ok(Expr::Column(i, bound.ty()));
            }
            if bound.is_row_independent() {
                return Ok(bound);
            }
        } else {
            self.params = saved_params;
        }
        match e {
            ast::Expr::Identifier(_) | ast::Expr::CompoundIdentifier(_) => {
                let name = e.to_string();
                Err(Error::new(
                    ErrorKind::GroupingError,
                    format!("column \"{name}\" must appear in the GROUP BY clause or be used in an aggregate function"),
                )
                .at(span_pos(e)))
            }
            _ => self.bind_inner(e, cx).map_err(|err| err.at(span_pos(e))),
        }
    }

    fn bind_aggregate(
        &mut self,
        func: AggFunc,
        f: &ast::Function,
        cx: &mut ExprCtx<'_>,
    ) -> Result<Expr> {
        let state = cx
            .agg
            .take()
            .expect("aggregate binding needs aggregation state");
        let result = (|| {
            let mut inner = ExprCtx::plain(&state.input, "aggregate function calls");
            let (args, distinct, order_by) = match &f.args {
                FunctionArguments::List(list) => {
                    let distinct = matches!(
                        list.duplicate_treatment,
                        Some(ast::DuplicateTreatment::Distinct)
                    );
                    let mut order = Vec::new();
                    for clause in &list.clauses {
                        if let ast::FunctionArgumentClause::OrderBy(keys) = clause {
                            for k in keys {
                                let expr = self.bind_expr(&k.expr, &mut inner)?;
                                let desc = matches!(k.options.sort, Some(ast::OrderBySort::Desc));
                                order.push(SortKey {
                                    expr,
                                    desc,
                                    nulls_first: k.options.nulls_first.unwrap_or(desc),
                                });
                            }
                        }
                    }
                    (list.args.clone(), distinct, order)
                }
                FunctionArguments::None => (vec![], false, vec![]),
                FunctionArguments::Subquery(_) => {
                    return Err(Error::unsupported("a subquery as aggregate argument"));
                }
            };
            let star = matches!(
                args.as_slice(),
                [FunctionArg::Unnamed(FunctionArgExpr::Wildcard)]
            );
            let mut bound = Vec::new();
            if !star {
                for a in &args {
                    let FunctionArg::Unnamed(FunctionArgExpr::Expr(x)) = a else {
                        return Err(Error::unsupported("this aggregate argument form"));
                    };
                    if contains_aggregate(x) {
                        return Err(Error::new(
                            ErrorKind::GroupingError,
                            "aggregate function calls cannot be nested",
                        ));
                    }
                    bound.push(self.bind_expr(x, &mut inner)?);
                }
            }
            let func = if star {
                if func != AggFunc::Count {
                    return Err(Error::new(
                        ErrorKind::Syntax,
                        format!("{}(*) is not allowed", fn_name(f)),
                    ));
                }
                AggFunc::CountStar
            } else {
                func
            };
            let expected = match func {
                AggFunc::CountStar => 0,
                AggFunc::StringAgg => 2,
                _ => 1,
            };
            if bound.len() != expected {
                return Err(Error::new(
                    ErrorKind::UndefinedFunction,
                    format!(
                        "function {}() with {} arguments does not exist",
                        fn_name(f),
                        bound.len()
                    ),
                ));
            }
            if func == AggFunc::StringAgg {
                let a = bound.remove(0);
                let a = self.coerce(a, &SqlType::Text).map_err(|_| {
                    Error::new(
                        ErrorKind::UndefinedFunction,
                        "function string_agg requires text arguments",
                    )
                })?;
                let sep = bound.remove(0);
                let sep = self.coerce(sep, &SqlType::Text)?;
                bound = vec![a, sep];
            } else if let Some(a) = bound.first_mut() {
                if matches!(func, AggFunc::BoolAnd | AggFunc::BoolOr) {
                    let x = std::mem::replace(a, Expr::null(SqlType::Bool));
                    *a = self.coerce(x, &SqlType::Bool)?;
                } else if a.ty() == SqlType::Unknown && matches!(func, AggFunc::Sum | AggFunc::Avg)
                {
                    let x = std::mem::replace(a, Expr::null(SqlType::Bool));
                    *a = self.coerce(x, &SqlType::Float8)?;
                } else if a.ty() == SqlType::Unknown {
                    let x = std::mem::replace(a, Expr::null(SqlType::Bool));
                    *a = self.coerce(x, &SqlType::Text)?;
                }
            }
            let arg_ty = bound.first().map_or(SqlType::Int8, Expr::ty);
            let ty = agg_type(func, &arg_ty)?;
            let filter = match &f.filter {
                Some(w) => {
                    Some(self.bind_predicate(w, &mut ExprCtx::plain(&state.input, "FILTER"))?)
                }
                None => None,
            };
            Ok(AggCall {
                func,
                args: bound,
                distinct,
                filter,
                order_by,
                ty,
            })
        })();
        let mut state = state;
        let call = result?;
        let ty = call.ty.clone();
        state.aggs.push(call);
        let idx = state.groups.len() + state.aggs.len() - 1;
        cx.agg = Some(state);
        Ok(Expr::Column(idx, ty))
    }

    fn bind_column(&mut self, table: Option<&str>, name: &str, cx: &ExprCtx<'_>) -> Result<Expr> {
        if let Lookup::Found(i) = cx.scope.lookup(table, name)? {
            return Ok(Expr::Column(i, cx.scope.cols[i].ty.clone()));
        }
        // Enclosing queries, innermost first.
        let n = self.outer.len();
        for depth in 1..=n {
            let (scope, _) = &self.outer[n - depth];
            if let Lookup::Found(i) = scope.lookup(table, name)? {
                let ty = scope.cols[i].ty.clone();
                for d in 1..=depth {
                    self.outer[n - d].1 = true;
                }
                return Ok(Expr::Outer {
                    depth,
                    index: i,
                    ty,
                });
            }
        }
        Err(match table {
            Some(t)
                if !cx.scope.has_table(t) && !self.outer.iter().any(|(s, _)| s.has_table(t)) =>
            {
                Error::new(
                    ErrorKind::UndefinedTable,
                    format!("missing FROM-clause entry for table \"{t}\""),
                )
            }
            Some(t) => Error::new(
                ErrorKind::UndefinedColumn,
                format!("column {t}.{name} does not exist"),
            ),
            None => Error::new(
                ErrorKind::UndefinedColumn,
                format!("column \"{name}\" does not exist"),
            ),
        })
    }

    fn bind_inner(&mut self, e: &ast::Expr, cx: &mut ExprCtx<'_>) -> Result<Expr> {
        use ast::Expr as A;
        match e {
            A::Identifier(i) => {
                let name = parse::ident(i);
                match self.bind_column(None, &name, cx) {
                    Ok(x) => Ok(x),
                    Err(err) if i.quote_style.is_none() => match name.as_str() {
                        "current_schema" => {
                            self.bind_function_call(Func::CurrentSchema, &name, vec![])
                        }
                        "current_role" | "current_user" | "session_user" | "user" => {
                            self.bind_function_call(Func::CurrentUser, &name, vec![])
                        }
                        "current_catalog" => {
                            self.bind_function_call(Func::CurrentDatabase, &name, vec![])
                        }
                        _ if is_default_ident(e) => Err(Error::new(
                            ErrorKind::Syntax,
                            "DEFAULT is not allowed in this context",
                        )),
                        _ => Err(err),
                    },
                    Err(err) => Err(err),
                }
            }
            A::CompoundIdentifier(parts) => {
                let names: Vec<String> = parts.iter().map(parse::ident).collect();
                match names.as_slice() {
                    [t, c] => self.bind_column(Some(t), c, cx),
                    [_, t, c] => self.bind_column(Some(t), c, cx),
                    [_, _, t, c] => self.bind_column(Some(t), c, cx),
                    _ => Err(Error::new(
                        ErrorKind::Syntax,
                        format!("improper qualified name: {e}"),
                    )),
                }
            }
            A::Value(v) => self.bind_value(&v.value),
            A::Nested(inner) => self.bind_expr(inner, cx),
            A::BinaryOp { left, op, right } => self.bind_binary(left, op, right, cx),
            A::UnaryOp { op, expr } => match op {
                UnaryOperator::Not => {
                    let x = self.bind_predicate(expr, cx)?;
                    Ok(Expr::Not(Box::new(x)))
                }
                UnaryOperator::Minus => {
                    if let A::Value(v) = expr.as_ref()
                        && let AstValue::Number(n, _) = &v.value
                    {
                        return number_literal(&format!("-{n}"));
                    }
                    let x = self.bind_expr(expr, cx)?;
                    let x = if x.ty() == SqlType::Unknown {
                        self.coerce(x, &SqlType::Float8)?
                    } else {
                        x
                    };
                    if !(x.ty().is_numeric() || x.ty() == SqlType::Interval) {
                        return Err(Error::new(
                            ErrorKind::UndefinedFunction,
                            format!("operator does not exist: - {}", x.ty().pg_name()),
                        ));
                    }
                    let ty = x.ty();
                    Ok(Expr::Neg(Box::new(x), ty))
                }
                UnaryOperator::Plus => self.bind_expr(expr, cx),
                UnaryOperator::PGSquareRoot | UnaryOperator::PGCubeRoot => {
                    let x = self.bind_expr(expr, cx)?;
                    let (func, name) = if matches!(op, UnaryOperator::PGSquareRoot) {
                        (Func::Sqrt, "sqrt")
                    } else {
                        (Func::Cbrt, "cbrt")
                    };
                    let x = if x.ty().family() == TypeFamily::Float
                        || x.ty().family() == TypeFamily::Unknown
                    {
                        x
                    } else {
                        self.coerce(x, &SqlType::Float8)?
                    };
                    self.bind_function_call(func, name, vec![x])
                }
                other => Err(Error::unsupported(format!("the unary operator {other}"))),
            },
            A::Cast {
                kind,
                expr,
                data_type,
                ..
            } => {
                if matches!(kind, CastKind::TryCast | CastKind::SafeCast) {
                    return Err(Error::unsupported("TRY_CAST"));
                }
                let to = super::data_type(data_type)?;
                let x = self.bind_expr(expr, cx)?;
                self.explicit_cast(x, to)
            }
            A::TypedString(ts) => {
                let to = super::data_type(&ts.data_type)?;
                let s = ts.value.value.clone().into_string().unwrap_or_default();
                Ok(Expr::Literal(textio::from_text(&s, &to)?, to))
            }
            A::Interval(iv) => {
                let x = self.bind_expr(&iv.value, cx)?;
                let x = match (&x, &iv.leading_field) {
                    (Expr::Literal(Value::Text(s), _), Some(unit))
                        if iv.last_field.is_none() && !s.chars().any(|c| c.is_alphabetic()) =>
                    {
                        Expr::Literal(
                            Value::Text(format!("{s} {}", unit_name(unit))),
                            SqlType::Unknown,
                        )
                    }
                    _ => x,
                };
                self.explicit_cast(x, SqlType::Interval)
            }
            A::IsNull(x) | A::IsNotNull(x) => {
                let b = self.bind_expr(x, cx)?;
                Ok(Expr::IsNull {
                    expr: Box::new(b),
                    negated: matches!(e, A::IsNotNull(_)),
                })
            }
            A::IsTrue(x)
            | A::IsNotTrue(x)
            | A::IsFalse(x)
            | A::IsNotFalse(x)
            | A::IsUnknown(x)
            | A::IsNotUnknown(x) => {
                let b = self.bind_predicate(x, cx)?;
                let (value, negated) = match e {
                    A::IsTrue(_) => (Some(true), false),
                    A::IsNotTrue(_) => (Some(true), true),
                    A::IsFalse(_) => (Some(false), false),
                    A::IsNotFalse(_) => (Some(false), true),
                    A::IsUnknown(_) => (None, false),
                    _ => (None, true),
                };
                Ok(Expr::IsBool {
                    expr: Box::new(b),
                    value,
                    negated,
                })
            }
            A::IsDistinctFrom(a, b) | A::IsNotDistinctFrom(a, b) => {
                let (l, r) = self.bind_pair(a, b, cx)?;
                ops::result_type(BinOp::Eq, &l.ty(), &r.ty())?;
                Ok(Expr::IsDistinct {
                    left: Box::new(l),
                    right: Box::new(r),
                    negated: matches!(e, A::IsNotDistinctFrom(..)),
                })
            }
            A::Between {
                expr,
                negated,
                low,
                high,
            } => {
                let x = self.bind_expr(expr, cx)?;
                let lo = self.bind_expr(low, cx)?;
                let hi = self.bind_expr(high, cx)?;
                let t = functions::common_type(&[x.ty(), lo.ty(), hi.ty()]).ok_or_else(|| {
                    Error::new(
                        ErrorKind::UndefinedFunction,
                        format!(
                            "operator does not exist: {} >= {}",
                            x.ty().pg_name(),
                            lo.ty().pg_name()
                        ),
                    )
                })?;
                let (x, lo, hi) = (
                    self.coerce_operand(x, &t)?,
                    self.coerce_operand(lo, &t)?,
                    self.coerce_operand(hi, &t)?,
                );
                Ok(Expr::Between {
                    expr: Box::new(x),
                    low: Box::new(lo),
                    high: Box::new(hi),
                    negated: *negated,
                })
            }
            A::In {
                expr,
                target,
                negated,
                ..
            } => match target {
                // (a, b) IN ((1, 2), (3, 4)): a row comparison per item, ORed.
                InTarget::List(list) if matches!(expr.as_ref(), A::Tuple(_)) => {
                    let A::Tuple(lhs) = expr.as_ref() else {
                        unreachable!("matched above")
                    };
                    let mut any: Option<A> = None;
                    for item in list {
                        let A::Tuple(rhs) = item else {
                            return Err(Error::new(
                                ErrorKind::Syntax,
                                "IN list items must be rows of the same length as the left side",
                            ));
                        };
                        if rhs.len() != lhs.len() {
                            return Err(Error::new(
                                ErrorKind::Syntax,
                                "unequal number of entries in row expressions",
                            ));
                        }
                        let mut all: Option<A> = None;
                        for (l, r) in lhs.iter().zip(rhs) {
                            let eq = A::BinaryOp {
                                left: Box::new(l.clone()),
                                op: ast::BinaryOperator::Eq,
                                right: Box::new(r.clone()),
                            };
                            all = Some(match all {
                                None => eq,
                                Some(a) => A::BinaryOp {
                                    left: Box::new(a),
                                    op: ast::BinaryOperator::And,
                                    right: Box::new(eq),
                                },
                            });
                        }
                        let all = A::Nested(Box::new(all.ok_or_else(|| {
                            Error::new(ErrorKind::Syntax, "empty row in IN list")
                        })?));
                        any = Some(match any {
                            None => all,
                            Some(a) => A::BinaryOp {
                                left: Box::new(a),
                                op: ast::BinaryOperator::Or,
                                right: Box::new(all),
                            },
                        });
                    }
                    let any = A::Nested(Box::new(
                        any.ok_or_else(|| Error::new(ErrorKind::Syntax, "empty IN list"))?,
                    ));
                    let e = if *negated {
                        A::UnaryOp {
                            op: UnaryOperator::Not,
                            expr: Box::new(any),
                        }
                    } else {
                        any
                    };
                    self.bind_expr(&e, cx)
                }
                InTarget::List(list) => {
                    let x = self.bind_expr(expr, cx)?;
                    let mut items = Vec::with_capacity(list.len());
                    for item in list {
                        items.push(self.bind_expr(item, cx)?);
                    }
                    let mut types = vec![x.ty()];
                    types.extend(items.iter().map(Expr::ty));
                    let t = functions::common_type(&types).ok_or_else(|| {
                        Error::new(
                            ErrorKind::UndefinedFunction,
                            format!(
                                "operator does not exist: {} = {}",
                                x.ty().pg_name(),
                                types
                                    .iter()
                                    .skip(1)
                                    .find(|t| **t != x.ty())
                                    .map_or(String::new(), SqlType::pg_name)
                            ),
                        )
                    })?;
                    let x = self.coerce_operand(x, &t)?;
                    let items = items
                        .into_iter()
                        .map(|i| self.coerce_operand(i, &t))
                        .collect::<Result<_>>()?;
                    Ok(Expr::InList {
                        expr: Box::new(x),
                        list: items,
                        negated: *negated,
                    })
                }
                InTarget::Subquery(q) => {
                    let x = self.bind_expr(expr, cx)?;
                    let (plan, correlated, cols) = self.bind_subquery(q, cx)?;
                    if cols.len() != 1 {
                        return Err(Error::new(
                            ErrorKind::Syntax,
                            "subquery has too many columns",
                        ));
                    }
                    let t =
                        functions::common_type(&[x.ty(), cols[0].clone()]).ok_or_else(|| {
                            Error::new(
                                ErrorKind::UndefinedFunction,
                                format!(
                                    "operator does not exist: {} = {}",
                                    x.ty().pg_name(),
                                    cols[0].pg_name()
                                ),
                            )
                        })?;
                    let x = self.coerce_operand(x, &t)?;
                    let plan = self.cast_subplan(plan, &cols[0], &t);
                    let id = self.add_subplan(plan, correlated);
                    Ok(Expr::Subquery {
                        id,
                        kind: SubqueryKind::In {
                            expr: Box::new(x),
                            negated: *negated,
                        },
                        ty: SqlType::Bool,
                    })
                }
                _ => Err(Error::unsupported("this form of IN")),
            },
            A::Like {
                negated,
                expr,
                pattern,
                escape_char,
                any,
                ..
            }
            | A::ILike {
                negated,
                expr,
                pattern,
                escape_char,
                any,
                ..
            } => {
                if *any {
                    return Err(Error::unsupported("LIKE ANY"));
                }
                let x = self.bind_expr(expr, cx)?;
                let x = self.coerce_text(x)?;
                let p = self.bind_expr(pattern, cx)?;
                let p = self.coerce_text(p)?;
                let esc = match escape_char {
                    Some(c) => Some(Box::new(
                        self.bind_expr(c, cx).and_then(|c| self.coerce_text(c))?,
                    )),
                    None => None,
                };
                Ok(Expr::Like {
                    expr: Box::new(x),
                    pattern: Box::new(p),
                    escape: esc,
                    case_insensitive: matches!(e, A::ILike { .. }),
                    negated: *negated,
                })
            }
            A::SimilarTo { .. } => Err(Error::unsupported("SIMILAR TO")),
            A::Case {
                operand,
                conditions,
                else_result,
                ..
            } => {
                let operand = match operand {
                    Some(o) => Some(self.bind_expr(o, cx)?),
                    None => None,
                };
                let mut whens = Vec::new();
                let mut results = Vec::new();
                for cw in conditions {
                    let w = match &operand {
                        Some(_) => self.bind_expr(&cw.condition, cx)?,
                        None => self.bind_predicate(&cw.condition, cx)?,
                    };
                    whens.push(w);
                    results.push(self.bind_expr(&cw.result, cx)?);
                }
                let otherwise = match else_result {
                    Some(x) => Some(self.bind_expr(x, cx)?),
                    None => None,
                };
                let mut types: Vec<SqlType> = results.iter().map(Expr::ty).collect();
                if let Some(o) = &otherwise {
                    types.push(o.ty());
                }
                let ty = functions::common_type(&types).ok_or_else(|| {
                    Error::new(
                        ErrorKind::DatatypeMismatch,
                        format!(
                            "CASE types {} cannot be matched",
                            types
                                .iter()
                                .map(SqlType::pg_name)
                                .collect::<Vec<_>>()
                                .join(" and ")
                        ),
                    )
                })?;
                let operand = match operand {
                    Some(o) => {
                        let mut t: Vec<SqlType> = vec![o.ty()];
                        t.extend(whens.iter().map(Expr::ty));
                        let ot = functions::common_type(&t).ok_or_else(|| {
                            Error::new(
                                ErrorKind::DatatypeMismatch,
                                "CASE/WHEN types cannot be matched",
                            )
                        })?;
                        whens = whens
                            .into_iter()
                            .map(|w| self.coerce_operand(w, &ot))
                            .collect::<Result<_>>()?;
                        Some(Box::new(self.coerce_operand(o, &ot)?))
                    }
                    None => None,
                };
                let results: Vec<Expr> = results
                    .into_iter()
                    .map(|r| self.coerce(r, &ty))
                    .collect::<Result<_>>()?;
                let otherwise = otherwise
                    .map(|o| self.coerce(o, &ty))
                    .transpose()?
                    .map(Box::new);
                Ok(Expr::Case {
                    operand,
                    whens: whens.into_iter().zip(results).collect(),
                    otherwise,
                    ty,
                })
            }
            A::Function(f) => self.bind_function(f, cx),
            A::Exists { subquery, negated } => {
                let (plan, correlated, _) = self.bind_subquery(subquery, cx)?;
                let id = self.add_subplan(plan, correlated);
                let x = Expr::Subquery {
                    id,
                    kind: SubqueryKind::Exists,
                    ty: SqlType::Bool,
                };
                Ok(if *negated { Expr::Not(Box::new(x)) } else { x })
            }
            A::Subquery(q) => {
                let (plan, correlated, cols) = self.bind_subquery(q, cx)?;
                if cols.len() != 1 {
                    return Err(Error::new(
                        ErrorKind::Syntax,
                        "subquery must return only one column",
                    ));
                }
                let id = self.add_subplan(plan, correlated);
                Ok(Expr::Subquery {
                    id,
                    kind: SubqueryKind::Scalar,
                    ty: cols[0].clone(),
                })
            }
            A::AnyOp {
                left,
                compare_op,
                right,
                ..
            }
            | A::AllOp {
                left,
                compare_op,
                right,
            } => {
                let all = matches!(e, A::AllOp { .. });
                let op = comparison_op(compare_op)?;
                let x = self.bind_expr(left, cx)?;
                if let A::Subquery(q) = right.as_ref() {
                    let (plan, correlated, cols) = self.bind_subquery(q, cx)?;
                    if cols.len() != 1 {
                        return Err(Error::new(
                            ErrorKind::Syntax,
                            "subquery has too many columns",
                        ));
                    }
                    let t =
                        functions::common_type(&[x.ty(), cols[0].clone()]).ok_or_else(|| {
                            Error::new(ErrorKind::UndefinedFunction, "operator does not exist")
                        })?;
                    let x = self.coerce_operand(x, &t)?;
                    let plan = self.cast_subplan(plan, &cols[0], &t);
                    let id = self.add_subplan(plan, correlated);
                    return Ok(Expr::Subquery {
                        id,
                        kind: SubqueryKind::Quantified {
                            expr: Box::new(x),
                            op,
                            all,
                        },
                        ty: SqlType::Bool,
                    });
                }
                let arr = self.bind_expr(right, cx)?;
                let arr = match arr.ty() {
                    SqlType::Array(_) => arr,
                    SqlType::Unknown => {
                        let t = SqlType::Array(Box::new(if x.ty() == SqlType::Unknown {
                            SqlType::Text
                        } else {
                            x.ty()
                        }));
                        self.coerce(arr, &t)?
                    }
                    other => {
                        return Err(Error::new(
                            ErrorKind::DatatypeMismatch,
                            format!(
                                "op ANY/ALL (array) requires array on right side, not {}",
                                other.pg_name()
                            ),
                        ));
                    }
                };
                let elem = arr.ty().element().cloned().unwrap_or(SqlType::Text);
                let x = self.coerce_operand(x, &elem)?;
                ops::result_type(op, &x.ty(), &elem)?;
                Ok(Expr::AnyArray {
                    expr: Box::new(x),
                    op,
                    array: Box::new(arr),
                    all,
                })
            }
            A::Array(arr) => {
                let mut items = Vec::new();
                for x in &arr.elem {
                    items.push(self.bind_expr(x, cx)?);
                }
                let types: Vec<SqlType> = items.iter().map(Expr::ty).collect();
                let elem = functions::common_type(&types).ok_or_else(|| {
                    Error::new(ErrorKind::DatatypeMismatch, "ARRAY types cannot be matched")
                })?;
                if matches!(elem, SqlType::Array(_)) {
                    return Err(Error::unsupported("multidimensional arrays"));
                }
                let items = items
                    .into_iter()
                    .map(|i| self.coerce(i, &elem))
                    .collect::<Result<_>>()?;
                Ok(Expr::Array {
                    items,
                    ty: SqlType::Array(Box::new(elem)),
                })
            }
            A::CompoundFieldAccess { root, access_chain } => {
                // t.arr[1] comes as root t with [Dot(arr), Subscript(1)].
                let mut chain = access_chain.as_slice();
                let mut base = match (root.as_ref(), chain.first()) {
                    (A::Identifier(t), Some(ast::AccessExpr::Dot(A::Identifier(c)))) => {
                        chain = &chain[1..];
                        self.bind_column(Some(&parse::ident(t)), &parse::ident(c), cx)?
                    }
                    _ => self.bind_expr(root, cx)?,
                };
                for access in chain {
                    match access {
                        ast::AccessExpr::Subscript(ast::Subscript::Index { index }) => {
                            let i = self.bind_expr(index, cx)?;
                            let i = self.coerce(i, &SqlType::Int4)?;
                            let ty = match base.ty() {
                                SqlType::Array(e) => *e,
                                other => {
                                    return Err(Error::new(
                                        ErrorKind::DatatypeMismatch,
                                        format!(
                                            "cannot subscript type {} because it does not support subscripting",
                                            other.pg_name()
                                        ),
                                    ));
                                }
                            };
                            base = Expr::Subscript {
                                expr: Box::new(base),
                                index: Box::new(i),
                                ty,
                            };
                        }
                        _ => return Err(Error::unsupported("this field access or slice")),
                    }
                }
                Ok(base)
            }
            A::Substring {
                expr,
                substring_from,
                substring_for,
                ..
            } => {
                let mut args = vec![self.bind_expr(expr, cx)?];
                args.push(match substring_from {
                    Some(f) => self.bind_expr(f, cx)?,
                    None => Expr::Literal(Value::Int(1), SqlType::Int4),
                });
                if let Some(f) = substring_for {
                    args.push(self.bind_expr(f, cx)?);
                }
                self.bind_function_call(Func::Substr, "substring", args)
            }
            A::Trim {
                expr,
                trim_where,
                trim_what,
                trim_characters,
            } => {
                let func = match trim_where {
                    Some(ast::TrimWhereField::Leading) => Func::Ltrim,
                    Some(ast::TrimWhereField::Trailing) => Func::Rtrim,
                    _ => Func::Btrim,
                };
                let mut args = vec![self.bind_expr(expr, cx)?];
                if let Some(w) = trim_what {
                    args.push(self.bind_expr(w, cx)?);
                } else if let Some(chars) = trim_characters
                    && let Some(c) = chars.first()
                {
                    args.push(self.bind_expr(c, cx)?);
                }
                self.bind_function_call(func, "trim", args)
            }
            A::Position { expr, r#in } => {
                let args = vec![self.bind_expr(r#in, cx)?, self.bind_expr(expr, cx)?];
                self.bind_function_call(Func::Strpos, "position", args)
            }
            A::Extract { field, expr, .. } => {
                let unit = Expr::Literal(Value::Text(unit_name(field)), SqlType::Text);
                let x = self.bind_expr(expr, cx)?;
                let x = if x.ty() == SqlType::Unknown {
                    self.coerce(x, &SqlType::TimestampTz)?
                } else {
                    x
                };
                let field_name = unit_name(field).to_ascii_lowercase();
                let f = self.bind_function_call(Func::DatePart, "date_part", vec![unit, x])?;
                // EXTRACT returns numeric in PostgreSQL 14+, with microsecond scale for
                // seconds and epochs.
                let scale = match field_name.as_str() {
                    "epoch" | "second" | "seconds" => Some(6),
                    "millisecond" | "milliseconds" => Some(3),
                    _ => None,
                };
                Ok(Expr::Cast {
                    expr: Box::new(f),
                    to: SqlType::Numeric(scale.map(|s| (28, s))),
                    explicit: true,
                })
            }
            A::Ceil { expr, .. } | A::Floor { expr, .. } => {
                let x = self.bind_expr(expr, cx)?;
                let func = if matches!(e, A::Ceil { .. }) {
                    Func::Ceil
                } else {
                    Func::Floor
                };
                self.bind_function_call(func, "ceil", vec![x])
            }
            A::AtTimeZone {
                timestamp,
                time_zone,
            } => {
                let x = self.bind_expr(timestamp, cx)?;
                let zone = self.bind_expr(time_zone, cx)?;
                let ok_zone = matches!(&zone, Expr::Literal(Value::Text(z), _) if matches!(z.to_ascii_uppercase().as_str(), "UTC" | "GMT" | "Z" | "ETC/UTC" | "+00" | "00:00"));
                if !ok_zone {
                    return Err(Error::unsupported("time zones other than UTC"));
                }
                let x = if x.ty() == SqlType::Unknown {
                    self.coerce(x, &SqlType::TimestampTz)?
                } else {
                    x
                };
                let to = match x.ty() {
                    SqlType::TimestampTz => SqlType::Timestamp,
                    SqlType::Timestamp => SqlType::TimestampTz,
                    other => {
                        return Err(Error::new(
                            ErrorKind::UndefinedFunction,
                            format!(
                                "function timezone(unknown, {}) does not exist",
                                other.pg_name()
                            ),
                        ));
                    }
                };
                Ok(Expr::Cast {
                    expr: Box::new(x),
                    to,
                    explicit: true,
                })
            }
            A::Collate { expr, .. } => self.bind_expr(expr, cx),
            A::Tuple(_) => Err(Error::unsupported("row values outside comparisons")),
            other => Err(Error::unsupported(format!("the expression {other}"))),
        }
    }

    fn bind_value(&mut self, v: &AstValue) -> Result<Expr> {
        Ok(match v {
            AstValue::Number(n, _) => number_literal(n)?,
            AstValue::SingleQuotedString(s)
            | AstValue::EscapedStringLiteral(s)
            | AstValue::UnicodeStringLiteral(s)
            | AstValue::NationalStringLiteral(s) => {
                Expr::Literal(Value::Text(s.clone()), SqlType::Unknown)
            }
            AstValue::DollarQuotedString(d) => {
                Expr::Literal(Value::Text(d.value.clone()), SqlType::Unknown)
            }
            AstValue::HexStringLiteral(h) => {
                let bytes = textio::from_text(&format!("\\x{h}"), &SqlType::Bytea)?;
                Expr::Literal(bytes, SqlType::Bytea)
            }
            AstValue::Boolean(b) => Expr::Literal(Value::Bool(*b), SqlType::Bool),
            AstValue::Null => Expr::Literal(Value::Null, SqlType::Unknown),
            AstValue::Placeholder(p) => {
                let n: usize = p.trim_start_matches('$').parse().map_err(|_| {
                    Error::new(
                        ErrorKind::Syntax,
                        format!("syntax error at or near \"{p}\""),
                    )
                })?;
                if n == 0 || n > 65535 {
                    return Err(Error::new(
                        ErrorKind::UndefinedParameter,
                        format!("there is no parameter {p}"),
                    ));
                }
                let ty = self.param_type(n - 1);
                Expr::Param(n - 1, ty)
            }
            other => return Err(Error::unsupported(format!("the literal {other}"))),
        })
    }

    /// Resolves a relation name (or a number) given as text to its oid, as a cast to
    /// `regclass` does.
    fn regclass_value(&self, s: &str) -> Result<Value> {
        if let Ok(n) = s.trim().parse::<u32>() {
            return Ok(Value::Int(n.into()));
        }
        let name = sqlparser::parser::Parser::new(&sqlparser::dialect::PostgreSqlDialect {})
            .try_with_sql(s)
            .and_then(|mut p| p.parse_object_name(false))
            .map_err(|_| {
                Error::new(
                    ErrorKind::InvalidName,
                    format!("invalid name syntax: \"{s}\""),
                )
            })?;
        let (schema, rel) = self.qualified(&name)?;
        if matches!(schema.as_deref(), Some("pg_catalog" | "information_schema"))
            || crate::pg_catalog::is_virtual(&rel)
        {
            return Err(Error::unsupported(format!(
                "regclass of the system relation \"{rel}\""
            )));
        }
        let sid = self.schema_id(schema.as_deref())?;
        match self.catalog.lookup(sid, &rel) {
            Some(d) => Ok(Value::Int(d.id() as i64)),
            None => Err(Error::new(
                ErrorKind::UndefinedTable,
                format!("relation \"{s}\" does not exist"),
            )),
        }
    }

    /// An explicit cast (CAST, `::`): constants fold at bind time.
    pub fn explicit_cast(&mut self, x: Expr, to: SqlType) -> Result<Expr> {
        match x {
            Expr::Literal(Value::Text(s), SqlType::Unknown | SqlType::Text)
                if to == SqlType::RegClass =>
            {
                Ok(Expr::Literal(self.regclass_value(&s)?, SqlType::RegClass))
            }
            // An explicit cast to varchar(n) or char(n) truncates.
            Expr::Literal(Value::Text(s), SqlType::Unknown)
                if matches!(to, SqlType::Varchar(_) | SqlType::Char(_)) =>
            {
                Ok(Expr::Literal(cast::fit_string(s, &to, true)?, to))
            }
            Expr::Literal(Value::Text(s), SqlType::Unknown) => {
                Ok(Expr::Literal(textio::from_text(&s, &to)?, to))
            }
            Expr::Literal(Value::Null, _) => Ok(Expr::Literal(Value::Null, to)),
            Expr::Param(n, SqlType::Unknown) => {
                self.set_param_type(n, to.clone());
                Ok(Expr::Param(n, to))
            }
            Expr::Literal(v, from) => {
                let c = cast::cast(v, &from, &to, true)?;
                Ok(Expr::Literal(c, to))
            }
            x if x.ty() == to => Ok(x),
            x => {
                // Reject casts that can never succeed now, with PostgreSQL's message.
                let from = x.ty();
                if !castable(&from, &to) {
                    return Err(Error::new(
                        ErrorKind::CannotCoerce,
                        format!("cannot cast type {} to {}", from.pg_name(), to.pg_name()),
                    ));
                }
                Ok(Expr::Cast {
                    expr: Box::new(x),
                    to,
                    explicit: true,
                })
            }
        }
    }

    fn coerce_text(&mut self, x: Expr) -> Result<Expr> {
        match x.ty().family() {
            TypeFamily::String => Ok(x),
            TypeFamily::Unknown => self.coerce(x, &SqlType::Text),
            _ => Err(Error::new(
                ErrorKind::UndefinedFunction,
                format!("operator does not exist: {} ~~ unknown", x.ty().pg_name()),
            )),
        }
    }

    /// Coerces one operand of a comparison or IN to the common type `t`: unknowns take it;
    /// numbers of other types stay as they are (the comparison handles mixed numbers).
    fn coerce_operand(&mut self, x: Expr, t: &SqlType) -> Result<Expr> {
        let xt = x.ty();
        if xt == *t {
            return Ok(x);
        }
        if xt == SqlType::Unknown {
            return self.coerce(x, t);
        }
        if xt.is_numeric() && t.is_numeric() {
            return Ok(x);
        }
        self.coerce(x, t)
    }

    fn bind_pair(
        &mut self,
        a: &ast::Expr,
        b: &ast::Expr,
        cx: &mut ExprCtx<'_>,
    ) -> Result<(Expr, Expr)> {
        let l = self.bind_expr(a, cx)?;
        let r = self.bind_expr(b, cx)?;
        match (l.ty() == SqlType::Unknown, r.ty() == SqlType::Unknown) {
            (true, false) => {
                let t = r.ty();
                Ok((self.coerce(l, &t)?, r))
            }
            (false, true) => {
                let t = l.ty();
                Ok((l, self.coerce(r, &t)?))
            }
            (true, true) => Ok((
                self.coerce(l, &SqlType::Text)?,
                self.coerce(r, &SqlType::Text)?,
            )),
            _ => Ok((l, r)),
        }
    }

    fn bind_binary(
        &mut self,
        left: &ast::Expr,
        op: &BinaryOperator,
        right: &ast::Expr,
        cx: &mut ExprCtx<'_>,
    ) -> Result<Expr> {
        use BinaryOperator as B;
        match op {
            B::And | B::Or => {
                let l = self.bind_predicate(left, cx)?;
                let r = self.bind_predicate(right, cx)?;
                return Ok(if matches!(op, B::And) {
                    Expr::And(Box::new(l), Box::new(r))
                } else {
                    Expr::Or(Box::new(l), Box::new(r))
                });
            }
            B::PGRegexMatch | B::PGRegexIMatch | B::PGRegexNotMatch | B::PGRegexNotIMatch => {
                return self.bind_regex(
                    left,
                    right,
                    matches!(op, B::PGRegexIMatch | B::PGRegexNotIMatch),
                    matches!(op, B::PGRegexNotMatch | B::PGRegexNotIMatch),
                    cx,
                );
            }
            B::PGCustomBinaryOperator(parts) => {
                let opname = parts.last().map(String::as_str).unwrap_or("");
                return match opname {
                    "~" | "~*" | "!~" | "!~*" => self.bind_regex(
                        left,
                        right,
                        opname.contains('*'),
                        opname.starts_with('!'),
                        cx,
                    ),
                    "=" | "<>" | "<" | ">" | "<=" | ">=" => {
                        let b = match opname {
                            "=" => B::Eq,
                            "<>" => B::NotEq,
                            "<" => B::Lt,
                            ">" => B::Gt,
                            "<=" => B::LtEq,
                            _ => B::GtEq,
                        };
                        self.bind_binary(left, &b, right, cx)
                    }
                    other => Err(Error::unsupported(format!(
                        "the operator OPERATOR({other})"
                    ))),
                };
            }
            B::PGLikeMatch | B::PGILikeMatch | B::PGNotLikeMatch | B::PGNotILikeMatch => {
                let x = self.bind_expr(left, cx)?;
                let x = self.coerce_text(x)?;
                let p = self.bind_expr(right, cx)?;
                let p = self.coerce_text(p)?;
                return Ok(Expr::Like {
                    expr: Box::new(x),
                    pattern: Box::new(p),
                    escape: None,
                    case_insensitive: matches!(op, B::PGILikeMatch | B::PGNotILikeMatch),
                    negated: matches!(op, B::PGNotLikeMatch | B::PGNotILikeMatch),
                });
            }
            _ => {}
        }
        // Row comparisons: (a, b) = (1, 2).
        if let (ast::Expr::Tuple(ls), ast::Expr::Tuple(rs)) = (left, right)
            && matches!(op, B::Eq | B::NotEq)
        {
            if ls.len() != rs.len() {
                return Err(Error::new(
                    ErrorKind::Syntax,
                    "unequal number of entries in row expressions",
                ));
            }
            let mut parts = Vec::new();
            for (l, r) in ls.iter().zip(rs) {
                parts.push(self.bind_binary(l, &B::Eq, r, cx)?);
            }
            let all = crate::expr::conjoin(parts)
                .unwrap_or(Expr::Literal(Value::Bool(true), SqlType::Bool));
            return Ok(if matches!(op, B::NotEq) {
                Expr::Not(Box::new(all))
            } else {
                all
            });
        }
        let bop = match op {
            B::Plus => BinOp::Add,
            B::Minus => BinOp::Sub,
            B::Multiply => BinOp::Mul,
            B::Divide => BinOp::Div,
            B::Modulo => BinOp::Mod,
            B::PGExp => BinOp::Pow,
            B::StringConcat => BinOp::Concat,
            B::Eq => BinOp::Eq,
            B::NotEq => BinOp::NotEq,
            B::Lt => BinOp::Lt,
            B::LtEq => BinOp::LtEq,
            B::Gt => BinOp::Gt,
            B::GtEq => BinOp::GtEq,
            B::BitwiseAnd => BinOp::BitAnd,
            B::BitwiseOr => BinOp::BitOr,
            B::PGBitwiseXor => BinOp::BitXor,
            B::PGBitwiseShiftLeft => BinOp::ShiftLeft,
            B::PGBitwiseShiftRight => BinOp::ShiftRight,
            B::Arrow => BinOp::JsonGet,
            B::LongArrow => BinOp::JsonGetText,
            B::AtArrow => BinOp::Contains,
            B::ArrowAt => BinOp::ContainedBy,
            B::Question => BinOp::JsonHasKey,
            B::PGOverlap => BinOp::Overlap,
            B::PGStartsWith => BinOp::StartsWith,
            other => return Err(Error::unsupported(format!("the operator {other}"))),
        };
        let l = self.bind_expr(left, cx)?;
        let r = self.bind_expr(right, cx)?;
        self.make_binary(bop, l, r)
    }

    /// Types and builds `l op r`.
    pub fn make_binary(&mut self, op: BinOp, l: Expr, r: Expr) -> Result<Expr> {
        let (lt, rt) = (l.ty(), r.ty());
        let (l, r) = match (lt == SqlType::Unknown, rt == SqlType::Unknown) {
            (true, true) => {
                let t = if op.is_comparison() || op == BinOp::Concat {
                    SqlType::Text
                } else {
                    SqlType::Float8
                };
                let l = if matches!(l, Expr::Literal(Value::Null, _)) {
                    Expr::null(t.clone())
                } else {
                    self.coerce(l, &t)?
                };
                let r = if matches!(r, Expr::Literal(Value::Null, _)) {
                    Expr::null(t.clone())
                } else {
                    self.coerce(r, &t)?
                };
                (l, r)
            }
            (true, false) => {
                let target = operand_target(op, &rt, true);
                (self.coerce(l, &target)?, r)
            }
            (false, true) => {
                let target = operand_target(op, &lt, false);
                (l, self.coerce(r, &target)?)
            }
            _ => (l, r),
        };
        let ty = ops::result_type(op, &l.ty(), &r.ty())?;
        Ok(Expr::Binary {
            op,
            left: Box::new(l),
            right: Box::new(r),
            ty,
        })
    }

    fn bind_regex(
        &mut self,
        left: &ast::Expr,
        right: &ast::Expr,
        ci: bool,
        negated: bool,
        cx: &mut ExprCtx<'_>,
    ) -> Result<Expr> {
        let x = self.bind_expr(left, cx)?;
        let x = self.coerce_text(x)?;
        let p = self.bind_expr(right, cx)?;
        let p = self.coerce_text(p)?;
        let compiled = match &p {
            Expr::Literal(Value::Text(s), _) => Some(Box::new(functions::compile_regex(s, ci)?)),
            _ => None,
        };
        Ok(Expr::Regex {
            expr: Box::new(x),
            pattern: Box::new(p),
            case_insensitive: ci,
            negated,
            compiled,
        })
    }

    fn bind_function(&mut self, f: &ast::Function, cx: &mut ExprCtx<'_>) -> Result<Expr> {
        let parts = parse::object_name(&f.name)?;
        if parts.len() > 1 && parts[0] != "pg_catalog" && parts[0] != "public" {
            return Err(Error::new(
                ErrorKind::UndefinedFunction,
                format!("function {} does not exist", f.name),
            ));
        }
        let name = parts.last().cloned().unwrap_or_default();
        if let Some(over) = &f.over {
            return self.bind_window(f, &name, over, cx);
        }
        if let Some(_agg) = agg_func(&name) {
            if cx.agg.is_none() {
                return Err(Error::new(
                    ErrorKind::GroupingError,
                    format!("aggregate functions are not allowed in {}", cx.clause),
                ));
            }
            return self.bind_post_agg(&ast::Expr::Function(f.clone()), cx);
        }
        if f.filter.is_some() {
            return Err(Error::new(
                ErrorKind::Syntax,
                format!("FILTER specified, but {name} is not an aggregate function"),
            ));
        }
        let args = match &f.args {
            FunctionArguments::None => vec![],
            FunctionArguments::Subquery(q) if name == "array" => {
                let (plan, correlated, cols) = self.bind_subquery(q, cx)?;
                if cols.len() != 1 {
                    return Err(Error::new(
                        ErrorKind::Syntax,
                        "subquery must return only one column",
                    ));
                }
                let id = self.add_subplan(plan, correlated);
                return Ok(Expr::Subquery {
                    id,
                    kind: SubqueryKind::Array,
                    ty: SqlType::Array(Box::new(cols[0].clone())),
                });
            }
            FunctionArguments::Subquery(_) => {
                return Err(Error::unsupported(format!("a subquery argument to {name}")));
            }
            FunctionArguments::List(list) => {
                if list.duplicate_treatment.is_some() {
                    return Err(Error::new(
                        ErrorKind::Syntax,
                        format!("DISTINCT specified, but {name} is not an aggregate function"),
                    ));
                }
                let mut out = Vec::new();
                for a in &list.args {
                    match a {
                        FunctionArg::Unnamed(FunctionArgExpr::Expr(x)) => {
                            out.push(self.bind_expr(x, cx)?)
                        }
                        _ => {
                            return Err(Error::unsupported(format!(
                                "this argument form in {name}()"
                            )));
                        }
                    }
                }
                out
            }
        };
        match name.as_str() {
            "nextval" | "currval" | "setval" | "lastval" => {
                return Err(
                    Error::unsupported(format!("{name}() outside a column default"))
                        .with_hint("Sequences are used through SERIAL and IDENTITY columns."),
                );
            }
            "row" => return Err(Error::unsupported("ROW constructors")),
            _ => {}
        }
        if matches!(
            name.as_str(),
            "generate_series"
                | "unnest"
                | "generate_subscripts"
                | "jsonb_array_elements"
                | "json_array_elements"
                | "jsonb_array_elements_text"
                | "json_array_elements_text"
                | "jsonb_each"
                | "json_each"
                | "jsonb_each_text"
                | "json_each_text"
                | "jsonb_object_keys"
                | "json_object_keys"
                | "regexp_split_to_table"
        ) {
            let Some(mut srf) = cx.srf.take() else {
                if cx.clause == "aggregate function calls" {
                    return Err(Error::new(
                        ErrorKind::FeatureNotSupported,
                        "aggregate function calls cannot contain set-returning function calls",
                    )
                    .with_hint("You might be able to move the set-returning function into a LATERAL FROM item."));
                }
                return Err(Error::new(
                    ErrorKind::FeatureNotSupported,
                    format!("set-returning functions are not allowed in {}", cx.clause),
                )
                .with_hint(format!(
                    "Call it in FROM instead: SELECT ... FROM {name}(...) AS t(x)."
                )));
            };
            let nested = args.iter().any(refers_to_srf);
            let r = if nested {
                Err(Error::unsupported(format!(
                    "a set-returning function in the arguments of {name}()"
                )))
            } else {
                self.resolve_table_function(&name, args)
            };
            let r = r.and_then(|(func, args, types, _)| match types.as_slice() {
                [ty] => {
                    srf.calls.push(crate::plan::SrfCall {
                        func,
                        args,
                        ty: ty.clone(),
                    });
                    Ok(Expr::Column(SRF_BASE + srf.calls.len() - 1, ty.clone()))
                }
                _ => Err(Error::unsupported(format!(
                    "{name}() returning a record in a select list"
                ))
                .with_hint(format!(
                    "Call it in FROM instead: SELECT ... FROM {name}(...) AS t(x)."
                ))),
            });
            cx.srf = Some(srf);
            return r;
        }
        let func = Func::by_name(&name).ok_or_else(|| {
            Error::new(ErrorKind::UndefinedFunction, format!("function {name}({}) does not exist", args.iter().map(|a| a.ty().pg_name()).collect::<Vec<_>>().join(", ")))
                .with_hint("No function matches the given name and argument types. You might need to add explicit type casts.")
        })?;
        self.bind_function_call(func, &name, args)
    }

    /// Resolves and coerces a call of a known function.
    pub fn bind_function_call(&mut self, func: Func, name: &str, args: Vec<Expr>) -> Result<Expr> {
        let types: Vec<SqlType> = args.iter().map(Expr::ty).collect();
        let (ty, expected) = functions::resolve(func, name, &types)?;
        let mut coerced = Vec::with_capacity(args.len());
        for (a, t) in args
            .into_iter()
            .zip(expected.iter().chain(std::iter::repeat(&SqlType::Unknown)))
        {
            let at = a.ty();
            let c = if at == *t || *t == SqlType::Unknown {
                a
            } else if at == SqlType::Unknown
                || implicitly_castable(&at, t)
                || (at.is_numeric() && t.is_numeric())
            {
                self.coerce(a, t)?
            } else if matches!(
                func,
                Func::Concat
                    | Func::ConcatWs
                    | Func::JsonbBuildObject
                    | Func::JsonbBuildArray
                    | Func::ToJsonb
            ) {
                a
            } else {
                return Err(functions_error(name, &types));
            };
            coerced.push(c);
        }
        Ok(Expr::Func {
            func,
            args: coerced,
            ty,
        })
    }

    fn bind_window(
        &mut self,
        f: &ast::Function,
        name: &str,
        over: &WindowType,
        cx: &mut ExprCtx<'_>,
    ) -> Result<Expr> {
        let Some(mut wstate) = cx.window.take() else {
            return Err(Error::new(
                ErrorKind::WindowingError,
                format!("window functions are not allowed in {}", cx.clause),
            ));
        };
        let result = (|| {
            let spec = match over {
                WindowType::WindowSpec(s) => s,
                WindowType::NamedWindow(_) => return Err(Error::unsupported("named windows")),
            };
            // Arguments, partitions and orderings are evaluated on the (grouped) rows.
            let mut args = Vec::new();
            if let FunctionArguments::List(list) = &f.args {
                for a in &list.args {
                    match a {
                        FunctionArg::Unnamed(FunctionArgExpr::Expr(x)) => {
                            args.push(self.bind_expr(x, cx)?)
                        }
                        FunctionArg::Unnamed(FunctionArgExpr::Wildcard) => {}
                        _ => return Err(Error::unsupported("this window function argument")),
                    }
                }
            }
            let func = match name {
                "row_number" => WindowFunc::RowNumber,
                "rank" => WindowFunc::Rank,
                "dense_rank" => WindowFunc::DenseRank,
                "percent_rank" => WindowFunc::PercentRank,
                "cume_dist" => WindowFunc::CumeDist,
                "ntile" => WindowFunc::Ntile,
                "lag" => WindowFunc::Lag,
                "lead" => WindowFunc::Lead,
                "first_value" => WindowFunc::FirstValue,
                "last_value" => WindowFunc::LastValue,
                "nth_value" => WindowFunc::NthValue,
                other => match agg_func(other) {
                    Some(a) => {
                        let star = matches!(&f.args, FunctionArguments::List(l) if matches!(l.args.as_slice(), [FunctionArg::Unnamed(FunctionArgExpr::Wildcard)]));
                        WindowFunc::Agg(if star { AggFunc::CountStar } else { a })
                    }
                    None => {
                        return Err(Error::new(
                            ErrorKind::UndefinedFunction,
                            format!("function {other} is not a window function"),
                        ));
                    }
                },
            };
            let ty = match func {
                WindowFunc::RowNumber | WindowFunc::Rank | WindowFunc::DenseRank => SqlType::Int8,
                WindowFunc::PercentRank | WindowFunc::CumeDist => SqlType::Float8,
                WindowFunc::Ntile => SqlType::Int4,
                WindowFunc::Lag
                | WindowFunc::Lead
                | WindowFunc::FirstValue
                | WindowFunc::LastValue
                | WindowFunc::NthValue => args.first().map(Expr::ty).ok_or_else(|| {
                    Error::new(
                        ErrorKind::UndefinedFunction,
                        format!("function {name}() does not exist"),
                    )
                })?,
                WindowFunc::Agg(a) => agg_type(a, &args.first().map_or(SqlType::Int8, Expr::ty))?,
            };
            if matches!(func, WindowFunc::Lag | WindowFunc::Lead) && args.len() == 3 {
                let d = args.remove(2);
                args.push(self.coerce(d, &ty)?);
            }
            let mut partition_by = Vec::new();
            for p in &spec.partition_by {
                partition_by.push(self.bind_expr(p, cx)?);
            }
            let mut order_by = Vec::new();
            for o in &spec.order_by {
                let expr = self.bind_expr(&o.expr, cx)?;
                let desc = matches!(o.options.sort, Some(ast::OrderBySort::Desc));
                order_by.push(SortKey {
                    expr,
                    desc,
                    nulls_first: o.options.nulls_first.unwrap_or(desc),
                });
            }
            let frame = match &spec.window_frame {
                None => Frame {
                    rows: false,
                    start: FrameBound::UnboundedPreceding,
                    end: FrameBound::CurrentRow,
                },
                Some(wf) => {
                    let rows = match wf.units {
                        WindowFrameUnits::Rows => true,
                        WindowFrameUnits::Range => false,
                        WindowFrameUnits::Groups => {
                            return Err(Error::unsupported("GROUPS frames"));
                        }
                    };
                    let bound = |b: &WindowFrameBound,
                                 binder: &mut Self,
                                 cx: &mut ExprCtx<'_>|
                     -> Result<FrameBound> {
                        Ok(match b {
                            WindowFrameBound::CurrentRow => FrameBound::CurrentRow,
                            WindowFrameBound::Preceding(None) => FrameBound::UnboundedPreceding,
                            WindowFrameBound::Following(None) => FrameBound::UnboundedFollowing,
                            WindowFrameBound::Preceding(Some(x)) => {
                                if !rows {
                                    return Err(Error::unsupported("RANGE frames with an offset"));
                                }
                                let x = binder.bind_expr(x, cx)?;
                                FrameBound::Preceding(binder.coerce(x, &SqlType::Int8)?)
                            }
                            WindowFrameBound::Following(Some(x)) => {
                                if !rows {
                                    return Err(Error::unsupported("RANGE frames with an offset"));
                                }
                                let x = binder.bind_expr(x, cx)?;
                                FrameBound::Following(binder.coerce(x, &SqlType::Int8)?)
                            }
                        })
                    };
                    let start = bound(&wf.start_bound, self, cx)?;
                    let end = match &wf.end_bound {
                        Some(b) => bound(b, self, cx)?,
                        None => FrameBound::CurrentRow,
                    };
                    Frame { rows, start, end }
                }
            };
            Ok(WindowCall {
                func,
                args,
                partition_by,
                order_by,
                frame,
                ty,
            })
        })();
        let call = match result {
            Ok(c) => c,
            Err(e) => {
                cx.window = Some(wstate);
                return Err(e);
            }
        };
        let ty = call.ty.clone();
        let idx = wstate.base + wstate.calls.len();
        wstate.calls.push(call);
        cx.window = Some(wstate);
        Ok(Expr::Column(idx, ty))
    }

    /// Binds a subquery with the current scope as its outer scope. Returns the plan,
    /// whether it is correlated, and its column types.
    pub fn bind_subquery(
        &mut self,
        q: &ast::Query,
        cx: &ExprCtx<'_>,
    ) -> Result<(crate::plan::Plan, bool, Vec<SqlType>)> {
        // Above an aggregation the subquery sees the grouped columns; keep it simple and
        // give it the input scope only when not aggregating.
        let scope = match &cx.agg {
            Some(_) => Scope::default(),
            None => cx.scope.clone(),
        };
        self.outer.push((scope, false));
        let result = self.bind_query(q);
        let (_, correlated) = self.outer.pop().expect("pushed above");
        let (plan, cols) = result?;
        Ok((
            plan,
            correlated,
            cols.iter().map(|c| c.ty.clone()).collect(),
        ))
    }

    fn add_subplan(&mut self, plan: crate::plan::Plan, correlated: bool) -> usize {
        self.subplans.push(SubPlan { plan, correlated });
        self.subplans.len() - 1
    }

    fn cast_subplan(
        &mut self,
        plan: crate::plan::Plan,
        from: &SqlType,
        to: &SqlType,
    ) -> crate::plan::Plan {
        if from == to || (from.is_numeric() && to.is_numeric()) {
            return plan;
        }
        crate::plan::Plan::Project {
            input: Box::new(plan),
            exprs: vec![Expr::Cast {
                expr: Box::new(Expr::Column(0, from.clone())),
                to: to.clone(),
                explicit: false,
            }],
        }
    }
}

fn functions_error(name: &str, types: &[SqlType]) -> Error {
    Error::new(
        ErrorKind::UndefinedFunction,
        format!("function {name}({}) does not exist", types.iter().map(SqlType::pg_name).collect::<Vec<_>>().join(", ")),
    )
    .with_hint("No function matches the given name and argument types. You might need to add explicit type casts.")
}

/// The type an unknown operand takes next to a known one.
fn operand_target(op: BinOp, other: &SqlType, _unknown_is_left: bool) -> SqlType {
    match op {
        BinOp::Concat => match other {
            SqlType::Array(_) | SqlType::Jsonb | SqlType::Bytea => other.clone(),
            _ => SqlType::Text,
        },
        BinOp::JsonGet | BinOp::JsonGetText | BinOp::JsonHasKey => SqlType::Text,
        BinOp::Add | BinOp::Sub
            if matches!(
                other,
                SqlType::Date | SqlType::Timestamp | SqlType::TimestampTz | SqlType::Time
            ) =>
        {
            SqlType::Interval
        }
        BinOp::Mul | BinOp::Div if *other == SqlType::Interval => SqlType::Float8,
        _ => other.clone(),
    }
}

/// Casts PostgreSQL applies implicitly (function arguments, operands).
fn implicitly_castable(from: &SqlType, to: &SqlType) -> bool {
    use TypeFamily as F;
    if from.base() == to.base() {
        return true;
    }
    match (from.family(), to.family()) {
        (F::Integer, F::Integer | F::Float | F::Numeric) => true,
        (F::Numeric, F::Float | F::Numeric) => true,
        (F::Float, F::Float) => true,
        (F::String, F::String) => true,
        (F::DateTime, F::DateTime) => {
            !matches!(from, SqlType::Time)
                && !matches!(to, SqlType::Time)
                && !matches!(to, SqlType::Date)
        }
        (F::Json, F::Json) => true,
        (F::Array, F::Array) => true,
        (F::Unknown, _) => true,
        (F::Integer, F::Unknown) | (_, F::Unknown) => true,
        _ => matches!(
            (from, to),
            (SqlType::Name, SqlType::Text)
                | (SqlType::RegClass, SqlType::Oid)
                | (SqlType::Oid, SqlType::RegClass)
        ),
    }
}

/// Casts PostgreSQL accepts explicitly.
fn castable(from: &SqlType, to: &SqlType) -> bool {
    use TypeFamily as F;
    if implicitly_castable(from, to) {
        return true;
    }
    match (from.family(), to.family()) {
        (_, F::String) | (F::String, _) => true,
        (F::Integer | F::Float | F::Numeric, F::Integer | F::Float | F::Numeric) => true,
        (F::Integer, F::Bool) | (F::Bool, F::Integer) => true,
        (F::DateTime, F::DateTime) => true,
        (F::DateTime, F::Interval) | (F::Interval, F::DateTime) => {
            matches!(from, SqlType::Time) || matches!(to, SqlType::Time)
        }
        _ => false,
    }
}

fn comparison_op(op: &BinaryOperator) -> Result<BinOp> {
    Ok(match op {
        BinaryOperator::Eq => BinOp::Eq,
        BinaryOperator::NotEq => BinOp::NotEq,
        BinaryOperator::Lt => BinOp::Lt,
        BinaryOperator::LtEq => BinOp::LtEq,
        BinaryOperator::Gt => BinOp::Gt,
        BinaryOperator::GtEq => BinOp::GtEq,
        BinaryOperator::PGLikeMatch => return Err(Error::unsupported("LIKE ANY")),
        other => return Err(Error::unsupported(format!("{other} ANY/ALL"))),
    })
}

fn unit_name(f: &DateTimeField) -> String {
    match f {
        DateTimeField::Custom(i) => i.value.to_ascii_lowercase(),
        other => other.to_string().to_ascii_lowercase(),
    }
}

/// Returns the 1-based character position where an expression starts, if known.
pub fn span_pos(e: &ast::Expr) -> Option<usize> {
    use sqlparser::ast::Spanned;
    let s = e.span();
    (s.start.line == 1 && s.start.column > 0).then_some(s.start.column as usize)
}
