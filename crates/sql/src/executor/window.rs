//! Window functions.

use std::collections::HashMap;

use super::{ExecCtx, agg, sort_cmp};
use crate::error::{Error, ErrorKind, Result};
use crate::plan::{AggCall, FrameBound, WindowCall, WindowFunc};
use crate::value::{Row, Value};

/// Appends one column per window call to every row.
pub fn run(cx: &mut ExecCtx<'_>, mut rows: Vec<Row>, calls: &[WindowCall]) -> Result<Vec<Row>> {
    let mut results: Vec<Vec<Value>> = Vec::with_capacity(calls.len());
    for call in calls {
        results.push(compute(cx, &rows, call)?);
    }
    for (i, row) in rows.iter_mut().enumerate() {
        for r in &results {
            row.push(r[i].clone());
        }
    }
    Ok(rows)
}

fn compute(cx: &ExecCtx<'_>, rows: &[Row], call: &WindowCall) -> Result<Vec<Value>> {
    let n = rows.len();
    let mut out = vec![Value::Null; n];
    let mut partitions: HashMap<Vec<Value>, Vec<usize>> = HashMap::new();
    let mut order: Vec<Vec<Value>> = Vec::with_capacity(n);
    let mut args: Vec<Vec<Value>> = Vec::with_capacity(n);
    for (i, r) in rows.iter().enumerate() {
        let key = call
            .partition_by
            .iter()
            .map(|e| cx.eval(e, r))
            .collect::<Result<Vec<_>>>()?;
        partitions.entry(key).or_default().push(i);
        order.push(
            call.order_by
                .iter()
                .map(|k| cx.eval(&k.expr, r))
                .collect::<Result<_>>()?,
        );
        args.push(
            call.args
                .iter()
                .map(|a| cx.eval(a, r))
                .collect::<Result<_>>()?,
        );
    }
    let cmp = |a: usize, b: usize| {
        for (k, key) in call.order_by.iter().enumerate() {
            let o = sort_cmp(&order[a][k], &order[b][k], key.desc, key.nulls_first);
            if o.is_ne() {
                return o;
            }
        }
        std::cmp::Ordering::Equal
    };
    for (_, mut idx) in partitions {
        idx.sort_by(|a, b| cmp(*a, *b).then(a.cmp(b)));
        let m = idx.len();
        // Peer groups: [first, last] positions of rows with equal order keys.
        let mut peer_start = vec![0; m];
        let mut peer_end = vec![0; m];
        let mut s = 0;
        while s < m {
            let mut e = s;
            while e + 1 < m && cmp(idx[e + 1], idx[s]).is_eq() {
                e += 1;
            }
            for p in s..=e {
                peer_start[p] = s;
                peer_end[p] = e;
            }
            s = e + 1;
        }
        let mut dense = 0i64;
        for p in 0..m {
            let row = idx[p];
            if peer_start[p] == p {
                dense += 1;
            }
            let value = match call.func {
                WindowFunc::RowNumber => Value::Int(p as i64 + 1),
                WindowFunc::Rank => Value::Int(peer_start[p] as i64 + 1),
                WindowFunc::DenseRank => Value::Int(dense),
                WindowFunc::PercentRank => Value::Float(if m > 1 {
                    peer_start[p] as f64 / (m - 1) as f64
                } else {
                    0.0
                }),
                WindowFunc::CumeDist => Value::Float((peer_end[p] + 1) as f64 / m as f64),
                WindowFunc::Ntile => {
                    let buckets = match args[row].first() {
                        Some(Value::Int(b)) if *b > 0 => *b as usize,
                        Some(Value::Null) | None => {
                            out[row] = Value::Null;
                            continue;
                        }
                        _ => {
                            return Err(Error::new(
                                ErrorKind::InvalidParameterValue,
                                "argument of ntile must be greater than zero",
                            ));
                        }
                    };
                    let base = m / buckets;
                    let extra = m % buckets;
                    // The first `extra` buckets have one more row.
                    let big = extra * (base + 1);
                    let bucket = if p < big {
                        p / (base + 1)
                    } else {
                        extra + (p - big) / base.max(1)
                    };
                    Value::Int(bucket as i64 + 1)
                }
                WindowFunc::Lag | WindowFunc::Lead => {
                    let off = match args[row].get(1) {
                        Some(Value::Int(o)) => *o,
                        Some(Value::Null) => {
                            out[row] = Value::Null;
                            continue;
                        }
                        _ => 1,
                    };
                    let target = if call.func == WindowFunc::Lag {
                        p as i64 - off
                    } else {
                        p as i64 + off
                    };
                    match usize::try_from(target).ok().filter(|t| *t < m) {
                        Some(t) => args[idx[t]].first().cloned().unwrap_or(Value::Null),
                        None => args[row].get(2).cloned().unwrap_or(Value::Null),
                    }
                }
                WindowFunc::FirstValue
                | WindowFunc::LastValue
                | WindowFunc::NthValue
                | WindowFunc::Agg(_) => {
                    let (lo, hi) = frame(cx, call, p, m, &peer_start, &peer_end, &rows[row])?;
                    if lo > hi {
                        match call.func {
                            WindowFunc::Agg(f) => agg::aggregate_frame(&agg_call(call, f), &[])?,
                            _ => Value::Null,
                        }
                    } else {
                        match call.func {
                            WindowFunc::FirstValue => {
                                args[idx[lo]].first().cloned().unwrap_or(Value::Null)
                            }
                            WindowFunc::LastValue => {
                                args[idx[hi]].first().cloned().unwrap_or(Value::Null)
                            }
                            WindowFunc::NthValue => {
                                let nth = match args[row].get(1) {
                                    Some(Value::Int(k)) if *k > 0 => *k as usize,
                                    _ => {
                                        return Err(Error::new(
                                            ErrorKind::InvalidParameterValue,
                                            "argument of nth_value must be greater than zero",
                                        ));
                                    }
                                };
                                if lo + nth - 1 <= hi {
                                    args[idx[lo + nth - 1]]
                                        .first()
                                        .cloned()
                                        .unwrap_or(Value::Null)
                                } else {
                                    Value::Null
                                }
                            }
                            WindowFunc::Agg(f) => {
                                let frame_rows: Vec<(Vec<Value>, Vec<Value>)> = (lo..=hi)
                                    .map(|q| (args[idx[q]].clone(), Vec::new()))
                                    .collect();
                                agg::aggregate_frame(&agg_call(call, f), &frame_rows)?
                            }
                            _ => Value::Null,
                        }
                    }
                }
            };
            out[row] = value;
        }
    }
    Ok(out)
}

fn agg_call(call: &WindowCall, func: crate::plan::AggFunc) -> AggCall {
    AggCall {
        func,
        args: call.args.clone(),
        distinct: false,
        filter: None,
        order_by: Vec::new(),
        ty: call.ty.clone(),
    }
}

/// Returns the inclusive frame [lo, hi] of position `p` (lo > hi for an empty frame).
fn frame(
    cx: &ExecCtx<'_>,
    call: &WindowCall,
    p: usize,
    m: usize,
    peer_start: &[usize],
    peer_end: &[usize],
    row: &[Value],
) -> Result<(usize, usize)> {
    let offset = |e: &crate::expr::Expr| -> Result<i64> {
        match cx.eval(e, row)? {
            Value::Int(n) if n >= 0 => Ok(n),
            _ => Err(Error::new(
                ErrorKind::InvalidParameterValue,
                "frame starting offset must not be negative",
            )),
        }
    };
    let pos = |b: &FrameBound, start: bool| -> Result<i64> {
        Ok(match b {
            FrameBound::UnboundedPreceding => 0,
            FrameBound::UnboundedFollowing => m as i64 - 1,
            FrameBound::CurrentRow => {
                if call.frame.rows {
                    p as i64
                } else if start {
                    peer_start[p] as i64
                } else {
                    peer_end[p] as i64
                }
            }
            FrameBound::Preceding(e) => p as i64 - offset(e)?,
            FrameBound::Following(e) => p as i64 + offset(e)?,
        })
    };
    let lo = pos(&call.frame.start, true)?.max(0);
    let hi = pos(&call.frame.end, false)?.min(m as i64 - 1);
    if lo > hi {
        return Ok((1, 0));
    }
    Ok((lo as usize, hi as usize))
}
