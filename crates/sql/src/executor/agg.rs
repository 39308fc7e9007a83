//! Aggregation: hash grouping and aggregate accumulators.

use std::collections::{HashMap, HashSet};

use rust_decimal::Decimal;

use super::{ExecCtx, sort_cmp};
use crate::error::{Error, ErrorKind, Result};
use crate::expr::Expr;
use crate::plan::{AggCall, AggFunc};
use crate::types::{SqlType, TypeFamily};
use crate::value::{Interval, Row, Value, decimal_to_f64};

/// The running state of one aggregate in one group.
#[derive(Clone, Debug)]
pub enum Acc {
    Count(i64),
    /// Integer sums kept exact.
    SumInt(i128, bool),
    SumDec(Decimal, bool),
    SumFloat(f64, bool),
    SumInterval(Interval, bool),
    /// Sum and count for averages and variances (Welford for floats).
    Avg {
        sum: Decimal,
        count: i64,
    },
    AvgFloat {
        sum: f64,
        count: i64,
    },
    AvgInterval {
        sum: Interval,
        count: i64,
    },
    Var {
        count: i64,
        mean: f64,
        m2: f64,
        exact: Vec<Decimal>,
    },
    MinMax(Value),
    Bool(Option<bool>),
    Bits(Option<i64>),
    /// Values kept for string_agg, array_agg, jsonb_agg (with their sort keys).
    List(Vec<(Vec<Value>, Value, Value)>),
}

fn new_acc(call: &AggCall) -> Acc {
    let arg = call.args.first().map(Expr::ty).unwrap_or(SqlType::Int8);
    match call.func {
        AggFunc::Count | AggFunc::CountStar => Acc::Count(0),
        AggFunc::Sum => match arg.family() {
            TypeFamily::Integer => Acc::SumInt(0, false),
            TypeFamily::Float => Acc::SumFloat(0.0, false),
            TypeFamily::Interval => Acc::SumInterval(Interval::default(), false),
            _ => Acc::SumDec(Decimal::ZERO, false),
        },
        AggFunc::Avg => match arg.family() {
            TypeFamily::Float => Acc::AvgFloat { sum: 0.0, count: 0 },
            TypeFamily::Interval => Acc::AvgInterval {
                sum: Interval::default(),
                count: 0,
            },
            _ => Acc::Avg {
                sum: Decimal::ZERO,
                count: 0,
            },
        },
        AggFunc::StddevSamp | AggFunc::StddevPop | AggFunc::VarSamp | AggFunc::VarPop => Acc::Var {
            count: 0,
            mean: 0.0,
            m2: 0.0,
            exact: Vec::new(),
        },
        AggFunc::Min | AggFunc::Max => Acc::MinMax(Value::Null),
        AggFunc::BoolAnd | AggFunc::BoolOr => Acc::Bool(None),
        AggFunc::BitAnd | AggFunc::BitOr => Acc::Bits(None),
        AggFunc::StringAgg | AggFunc::ArrayAgg | AggFunc::JsonbAgg => Acc::List(Vec::new()),
    }
}

fn overflow(what: &str) -> Error {
    Error::new(ErrorKind::NumericOutOfRange, format!("{what} out of range"))
}

fn update(acc: &mut Acc, func: AggFunc, args: &[Value], sort_key: Vec<Value>) -> Result<()> {
    let v = args.first().cloned().unwrap_or(Value::Null);
    if func == AggFunc::CountStar {
        if let Acc::Count(n) = acc {
            *n += 1;
        }
        return Ok(());
    }
    // Every other aggregate ignores NULL inputs (array_agg and jsonb_agg keep them).
    if v.is_null() && !matches!(func, AggFunc::ArrayAgg | AggFunc::JsonbAgg) {
        return Ok(());
    }
    match acc {
        Acc::Count(n) => *n += 1,
        Acc::SumInt(s, seen) => {
            if let Value::Int(i) = v {
                *s += i128::from(i);
                *seen = true;
            }
        }
        Acc::SumDec(s, seen) => {
            let d = match v {
                Value::Numeric(d) => d,
                Value::Int(i) => Decimal::from(i),
                _ => return Ok(()),
            };
            *s = s.checked_add(d).ok_or_else(|| overflow("numeric"))?;
            *seen = true;
        }
        Acc::SumFloat(s, seen) => {
            *s += match v {
                Value::Float(f) => f,
                Value::Int(i) => i as f64,
                Value::Numeric(d) => decimal_to_f64(&d),
                _ => return Ok(()),
            };
            *seen = true;
        }
        Acc::SumInterval(s, seen) => {
            if let Value::Interval(i) = v {
                s.months += i.months;
                s.days += i.days;
                s.micros += i.micros;
                *seen = true;
            }
        }
        Acc::Avg { sum, count } => {
            let d = match v {
                Value::Numeric(d) => d,
                Value::Int(i) => Decimal::from(i),
                _ => return Ok(()),
            };
            *sum = sum.checked_add(d).ok_or_else(|| overflow("numeric"))?;
            *count += 1;
        }
        Acc::AvgFloat { sum, count } => {
            if let Value::Float(f) = v {
                *sum += f;
                *count += 1;
            }
        }
        Acc::AvgInterval { sum, count } => {
            if let Value::Interval(i) = v {
                sum.months += i.months;
                sum.days += i.days;
                sum.micros += i.micros;
                *count += 1;
            }
        }
        Acc::Var {
            count,
            mean,
            m2,
            exact,
        } => {
            let x = match &v {
                Value::Int(i) => *i as f64,
                Value::Float(f) => *f,
                Value::Numeric(d) => decimal_to_f64(d),
                _ => return Ok(()),
            };
            if let Value::Int(i) = v {
                exact.push(Decimal::from(i));
            } else if let Value::Numeric(d) = v {
                exact.push(d);
            }
            *count += 1;
            let delta = x - *mean;
            *mean += delta / *count as f64;
            *m2 += delta * (x - *mean);
        }
        Acc::MinMax(cur) => {
            let replace = cur.is_null() || {
                let o = v.sort_cmp(cur);
                if func == AggFunc::Min {
                    o.is_lt()
                } else {
                    o.is_gt()
                }
            };
            if replace {
                *cur = v;
            }
        }
        Acc::Bool(cur) => {
            if let Value::Bool(b) = v {
                *cur = Some(match (func, *cur) {
                    (AggFunc::BoolAnd, Some(c)) => c && b,
                    (AggFunc::BoolOr, Some(c)) => c || b,
                    _ => b,
                });
            }
        }
        Acc::Bits(cur) => {
            if let Value::Int(i) = v {
                *cur = Some(match (func, *cur) {
                    (AggFunc::BitAnd, Some(c)) => c & i,
                    (AggFunc::BitOr, Some(c)) => c | i,
                    _ => i,
                });
            }
        }
        Acc::List(items) => {
            let sep = args.get(1).cloned().unwrap_or(Value::Null);
            items.push((sort_key, v, sep));
        }
    }
    Ok(())
}

fn finish(acc: Acc, call: &AggCall) -> Result<Value> {
    let elem_ty = call.args.first().map(Expr::ty).unwrap_or(SqlType::Text);
    Ok(match acc {
        Acc::Count(n) => Value::Int(n),
        Acc::SumInt(s, seen) => {
            if !seen {
                Value::Null
            } else if call.ty.family() == TypeFamily::Integer {
                Value::Int(i64::try_from(s).map_err(|_| overflow("bigint"))?)
            } else {
                Value::Numeric(Decimal::from_i128_with_scale(s, 0))
            }
        }
        Acc::SumDec(s, seen) => {
            if seen {
                Value::Numeric(s)
            } else {
                Value::Null
            }
        }
        Acc::SumFloat(s, seen) => {
            if seen {
                Value::Float(s)
            } else {
                Value::Null
            }
        }
        Acc::SumInterval(s, seen) => {
            if seen {
                Value::Interval(s)
            } else {
                Value::Null
            }
        }
        Acc::Avg { sum, count } => {
            if count == 0 {
                Value::Null
            } else {
                let r = crate::ops::numeric_div(sum, Decimal::from(count))?;
                Value::Numeric(r)
            }
        }
        Acc::AvgFloat { sum, count } => {
            if count == 0 {
                Value::Null
            } else {
                Value::Float(sum / count as f64)
            }
        }
        Acc::AvgInterval { sum, count } => {
            if count == 0 {
                Value::Null
            } else {
                let f = 1.0 / count as f64;
                Value::Interval(Interval {
                    months: (f64::from(sum.months) * f) as i32,
                    days: (f64::from(sum.days) * f) as i32,
                    micros: (sum.micros as f64 * f) as i64,
                })
            }
        }
        Acc::Var {
            count,
            mean: _,
            m2,
            exact,
        } => {
            let sample = matches!(call.func, AggFunc::StddevSamp | AggFunc::VarSamp);
            let n = if sample { count - 1 } else { count };
            if n <= 0 {
                return Ok(Value::Null);
            }
            let sqrt = matches!(call.func, AggFunc::StddevSamp | AggFunc::StddevPop);
            if call.ty.family() == TypeFamily::Numeric && exact.len() as i64 == count {
                let sum: Decimal = exact.iter().sum();
                let mean = sum / Decimal::from(count);
                let ss: Decimal = exact.iter().map(|x| (*x - mean) * (*x - mean)).sum();
                let var = ss / Decimal::from(n);
                let r = if sqrt {
                    use rust_decimal::MathematicalOps;
                    var.sqrt().unwrap_or_default()
                } else {
                    var
                };
                Value::Numeric(r.round_dp(16).normalize())
            } else {
                let var = m2 / n as f64;
                Value::Float(if sqrt { var.sqrt() } else { var })
            }
        }
        Acc::MinMax(v) => v,
        Acc::Bool(b) => b.map_or(Value::Null, Value::Bool),
        Acc::Bits(b) => b.map_or(Value::Null, Value::Int),
        Acc::List(mut items) => {
            if items.is_empty() {
                return Ok(Value::Null);
            }
            if !call.order_by.is_empty() {
                items.sort_by(|(a, _, _), (b, _, _)| {
                    for (i, k) in call.order_by.iter().enumerate() {
                        let o = sort_cmp(&a[i], &b[i], k.desc, k.nulls_first);
                        if o.is_ne() {
                            return o;
                        }
                    }
                    std::cmp::Ordering::Equal
                });
            }
            match call.func {
                AggFunc::StringAgg => {
                    let mut out = String::new();
                    for (i, (_, v, sep)) in items.iter().enumerate() {
                        if i > 0
                            && let Value::Text(s) = sep
                        {
                            out.push_str(s);
                        }
                        if let Value::Text(s) = v {
                            out.push_str(s);
                        }
                    }
                    Value::Text(out)
                }
                AggFunc::ArrayAgg => Value::Array(items.into_iter().map(|(_, v, _)| v).collect()),
                _ => Value::Json(Box::new(serde_json::Value::Array(
                    items
                        .iter()
                        .map(|(_, v, _)| crate::functions::to_json(v, &elem_ty))
                        .collect(),
                ))),
            }
        }
    })
}

/// Groups rows and computes aggregates; the output rows are group keys then aggregates.
pub async fn aggregate(
    cx: &mut ExecCtx<'_>,
    rows: Vec<Row>,
    group_by: &[Expr],
    aggs: &[AggCall],
) -> Result<Vec<Row>> {
    let mut groups: HashMap<Vec<Value>, usize> = HashMap::new();
    let mut keys: Vec<Vec<Value>> = Vec::new();
    let mut accs: Vec<Vec<Acc>> = Vec::new();
    let mut distinct_seen: Vec<Vec<HashSet<Vec<Value>>>> = Vec::new();
    let needs_prepare = group_by.iter().any(Expr::has_subquery)
        || aggs.iter().any(|a| {
            a.args.iter().any(Expr::has_subquery)
                || a.filter.as_ref().is_some_and(Expr::has_subquery)
        });
    for row in rows {
        cx.check_cancel()?;
        let mut key = Vec::with_capacity(group_by.len());
        for g in group_by {
            key.push(if needs_prepare {
                cx.eval_full(g, &row).await?
            } else {
                cx.eval(g, &row)?
            });
        }
        let gi = match groups.get(&key) {
            Some(i) => *i,
            None => {
                groups.insert(key.clone(), keys.len());
                keys.push(key);
                accs.push(aggs.iter().map(new_acc).collect());
                distinct_seen.push(vec![HashSet::new(); aggs.len()]);
                keys.len() - 1
            }
        };
        for (ai, call) in aggs.iter().enumerate() {
            if let Some(f) = &call.filter {
                let ok = if needs_prepare {
                    cx.eval_full(f, &row).await?
                } else {
                    cx.eval(f, &row)?
                };
                if ok.as_bool() != Some(true) {
                    continue;
                }
            }
            let mut args = Vec::with_capacity(call.args.len());
            for a in &call.args {
                args.push(if needs_prepare {
                    cx.eval_full(a, &row).await?
                } else {
                    cx.eval(a, &row)?
                });
            }
            if call.distinct && !distinct_seen[gi][ai].insert(args.clone()) {
                continue;
            }
            let mut sort_key = Vec::with_capacity(call.order_by.len());
            for k in &call.order_by {
                sort_key.push(cx.eval(&k.expr, &row)?);
            }
            update(&mut accs[gi][ai], call.func, &args, sort_key)?;
        }
    }
    if keys.is_empty() && group_by.is_empty() {
        keys.push(Vec::new());
        accs.push(aggs.iter().map(new_acc).collect());
    }
    let mut out = Vec::with_capacity(keys.len());
    for (key, acc) in keys.into_iter().zip(accs) {
        let mut row = key;
        for (a, call) in acc.into_iter().zip(aggs) {
            row.push(finish(a, call)?);
        }
        out.push(row);
    }
    Ok(out)
}

/// Aggregates one window frame (used by window functions over aggregates).
pub fn aggregate_frame(call: &AggCall, values: &[(Vec<Value>, Vec<Value>)]) -> Result<Value> {
    let mut acc = new_acc(call);
    for (args, key) in values {
        update(&mut acc, call.func, args, key.clone())?;
    }
    finish(acc, call)
}
