//! Operators: which operand types they accept, what they return, and how they compute.

use std::cmp::Ordering;

use chrono::{NaiveDateTime, NaiveTime};
use rust_decimal::Decimal;
use rust_decimal::prelude::{FromPrimitive, ToPrimitive};

use crate::cast::check_int_range;
use crate::datetime;
use crate::error::{Error, ErrorKind, Result};
use crate::json;
use crate::types::{SqlType, TypeFamily};
use crate::value::{Interval, Value, decimal_to_f64};

/// A binary operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Concat,
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
    BitAnd,
    BitOr,
    BitXor,
    ShiftLeft,
    ShiftRight,
    /// jsonb `->`.
    JsonGet,
    /// jsonb `->>`.
    JsonGetText,
    /// `@>`: jsonb or array containment.
    Contains,
    /// `<@`.
    ContainedBy,
    /// jsonb `?`.
    JsonHasKey,
    /// array `&&`.
    Overlap,
    /// `^@`.
    StartsWith,
}

impl BinOp {
    /// Returns true for comparison operators.
    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinOp::Eq | BinOp::NotEq | BinOp::Lt | BinOp::LtEq | BinOp::Gt | BinOp::GtEq
        )
    }

    /// Returns the operator's SQL spelling.
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Mod => "%",
            BinOp::Pow => "^",
            BinOp::Concat => "||",
            BinOp::Eq => "=",
            BinOp::NotEq => "<>",
            BinOp::Lt => "<",
            BinOp::LtEq => "<=",
            BinOp::Gt => ">",
            BinOp::GtEq => ">=",
            BinOp::BitAnd => "&",
            BinOp::BitOr => "|",
            BinOp::BitXor => "#",
            BinOp::ShiftLeft => "<<",
            BinOp::ShiftRight => ">>",
            BinOp::JsonGet => "->",
            BinOp::JsonGetText => "->>",
            BinOp::Contains => "@>",
            BinOp::ContainedBy => "<@",
            BinOp::JsonHasKey => "?",
            BinOp::Overlap => "&&",
            BinOp::StartsWith => "^@",
        }
    }

    /// Returns the comparison with its operands swapped (`a < b` is `b > a`).
    pub fn commute(self) -> BinOp {
        match self {
            BinOp::Lt => BinOp::Gt,
            BinOp::LtEq => BinOp::GtEq,
            BinOp::Gt => BinOp::Lt,
            BinOp::GtEq => BinOp::LtEq,
            other => other,
        }
    }
}

fn no_operator(op: BinOp, l: &SqlType, r: &SqlType) -> Error {
    Error::new(
        ErrorKind::UndefinedFunction,
        format!("operator does not exist: {} {} {}", l.pg_name(), op.symbol(), r.pg_name()),
    )
    .with_hint("No operator matches the given name and argument types. You might need to add explicit type casts.")
}

fn int_width(t: &SqlType) -> u8 {
    match t {
        SqlType::Int2 => 2,
        SqlType::Int4 | SqlType::Oid | SqlType::RegClass => 4,
        _ => 8,
    }
}

fn wider_int(l: &SqlType, r: &SqlType) -> SqlType {
    match int_width(l).max(int_width(r)) {
        2 => SqlType::Int2,
        4 => SqlType::Int4,
        _ => SqlType::Int8,
    }
}

/// Returns the common type numeric operands are computed in.
pub fn numeric_common(l: &SqlType, r: &SqlType) -> SqlType {
    use TypeFamily as F;
    match (l.family(), r.family()) {
        (F::Float, _) | (_, F::Float) => {
            if matches!(l, SqlType::Float4) && matches!(r, SqlType::Float4) {
                SqlType::Float4
            } else {
                SqlType::Float8
            }
        }
        (F::Numeric, _) | (_, F::Numeric) => SqlType::Numeric(None),
        _ => wider_int(l, r),
    }
}

/// Returns the type of `l op r` for operand types that are already known (not Unknown),
/// or an error if no such operator exists.
pub fn result_type(op: BinOp, l: &SqlType, r: &SqlType) -> Result<SqlType> {
    use TypeFamily as F;
    let (lf, rf) = (l.family(), r.family());
    let numeric = |f: F| matches!(f, F::Integer | F::Float | F::Numeric);
    if op.is_comparison() {
        let ok = lf == rf
            || (numeric(lf) && numeric(rf))
            || (lf == F::Unknown || rf == F::Unknown)
            || (lf == F::DateTime && rf == F::DateTime);
        return if ok {
            Ok(SqlType::Bool)
        } else {
            Err(no_operator(op, l, r))
        };
    }
    Ok(match op {
        BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Mod | BinOp::Pow => {
            if numeric(lf) && numeric(rf) {
                let t = numeric_common(l, r);
                if op == BinOp::Pow && t.family() == F::Integer {
                    SqlType::Float8
                } else {
                    t
                }
            } else {
                datetime_result(op, l, r).ok_or_else(|| no_operator(op, l, r))?
            }
        }
        BinOp::Concat => match (l, r) {
            (SqlType::Array(_), _) => l.clone(),
            (_, SqlType::Array(_)) => r.clone(),
            (SqlType::Jsonb, SqlType::Jsonb) => SqlType::Jsonb,
            (SqlType::Bytea, SqlType::Bytea) => SqlType::Bytea,
            _ if lf == F::String || rf == F::String || lf == F::Unknown || rf == F::Unknown => {
                SqlType::Text
            }
            _ => return Err(no_operator(op, l, r)),
        },
        BinOp::BitAnd | BinOp::BitOr | BinOp::BitXor | BinOp::ShiftLeft | BinOp::ShiftRight
            if lf == F::Integer && rf == F::Integer =>
        {
            if matches!(op, BinOp::ShiftLeft | BinOp::ShiftRight) {
                l.clone()
            } else {
                wider_int(l, r)
            }
        }
        BinOp::JsonGet | BinOp::JsonGetText => {
            if lf != F::Json {
                return Err(no_operator(op, l, r));
            }
            if op == BinOp::JsonGet {
                l.clone()
            } else {
                SqlType::Text
            }
        }
        BinOp::Contains | BinOp::ContainedBy | BinOp::Overlap
            if ((lf == F::Json && rf == F::Json) || (lf == F::Array && rf == F::Array)) =>
        {
            SqlType::Bool
        }
        BinOp::JsonHasKey => SqlType::Bool,
        BinOp::StartsWith => SqlType::Bool,
        _ => return Err(no_operator(op, l, r)),
    })
}

fn datetime_result(op: BinOp, l: &SqlType, r: &SqlType) -> Option<SqlType> {
    use SqlType as T;
    Some(match (op, l, r) {
        (BinOp::Add, T::Date, t) | (BinOp::Add, t, T::Date)
            if t.family() == TypeFamily::Integer =>
        {
            T::Date
        }
        (BinOp::Sub, T::Date, t) if t.family() == TypeFamily::Integer => T::Date,
        (BinOp::Sub, T::Date, T::Date) => T::Int4,
        (BinOp::Add | BinOp::Sub, T::Date, T::Interval) => T::Timestamp,
        (BinOp::Add, T::Interval, T::Date) => T::Timestamp,
        (BinOp::Add, T::Date, T::Time) | (BinOp::Add, T::Time, T::Date) => T::Timestamp,
        (BinOp::Add | BinOp::Sub, T::Timestamp, T::Interval) => T::Timestamp,
        (BinOp::Add, T::Interval, T::Timestamp) => T::Timestamp,
        (BinOp::Add | BinOp::Sub, T::TimestampTz, T::Interval) => T::TimestampTz,
        (BinOp::Add, T::Interval, T::TimestampTz) => T::TimestampTz,
        (BinOp::Add | BinOp::Sub, T::Time, T::Interval) => T::Time,
        (BinOp::Sub, T::Time, T::Time) => T::Interval,
        (BinOp::Sub, T::Timestamp, T::Timestamp) | (BinOp::Sub, T::TimestampTz, T::TimestampTz) => {
            T::Interval
        }
        (BinOp::Sub, T::Timestamp, T::TimestampTz) | (BinOp::Sub, T::TimestampTz, T::Timestamp) => {
            T::Interval
        }
        (BinOp::Add | BinOp::Sub, T::Interval, T::Interval) => T::Interval,
        (BinOp::Mul, T::Interval, n) | (BinOp::Mul, n, T::Interval) if n.is_numeric() => {
            T::Interval
        }
        (BinOp::Div, T::Interval, n) if n.is_numeric() => T::Interval,
        _ => return None,
    })
}

fn div_zero() -> Error {
    Error::new(ErrorKind::DivisionByZero, "division by zero")
}

fn overflow(ty: &SqlType) -> Error {
    match ty {
        SqlType::Int2 => Error::new(ErrorKind::NumericOutOfRange, "smallint out of range"),
        SqlType::Int4 => Error::new(ErrorKind::NumericOutOfRange, "integer out of range"),
        SqlType::Int8 => Error::new(ErrorKind::NumericOutOfRange, "bigint out of range"),
        _ => Error::new(ErrorKind::NumericOutOfRange, "value out of range: overflow"),
    }
}

fn as_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Int(i) => Some(*i as f64),
        Value::Float(f) => Some(*f),
        Value::Numeric(d) => Some(decimal_to_f64(d)),
        _ => None,
    }
}

fn as_decimal(v: &Value) -> Option<Decimal> {
    match v {
        Value::Int(i) => Some(Decimal::from(*i)),
        Value::Numeric(d) => Some(*d),
        Value::Float(f) => Decimal::from_f64(*f),
        _ => None,
    }
}

/// PostgreSQL's result scale for numeric division: at least 16 significant digits.
/// Returns the weight (position of the first non-zero base-10000 digit, 0 for the units
/// group) and that digit, as PostgreSQL's numeric code sees a value.
pub(crate) fn base10000_lead(d: &Decimal) -> (i64, u32) {
    let abs = d.abs();
    if abs.is_zero() {
        return (0, 0);
    }
    let int = abs.trunc().to_string();
    if int != "0" {
        let n = int.len() as i64;
        let weight = (n - 1) / 4;
        let lead_len = (n - 4 * weight) as usize;
        return (weight, int[..lead_len].parse().unwrap_or(0));
    }
    let s = abs.to_string();
    let frac = s.split('.').nth(1).unwrap_or_default();
    let zeros = (frac.len() - frac.trim_start_matches('0').len()) as i64;
    let group = zeros / 4;
    let start = (group * 4) as usize;
    let digits: String = frac.chars().skip(start).take(4).collect();
    let digits = format!("{digits:0<4}");
    (-group - 1, digits.parse().unwrap_or(0))
}

/// Divides numerics with PostgreSQL's result scale (`select_div_scale`): at least 16
/// significant digits, and no fewer decimals than either input; rounded half away from
/// zero.
pub fn numeric_div(a: Decimal, b: Decimal) -> Result<Decimal> {
    if b.is_zero() {
        return Err(div_zero());
    }
    let (w1, f1) = base10000_lead(&a);
    let (w2, f2) = base10000_lead(&b);
    let mut qweight = w1 - w2;
    if f1 <= f2 {
        qweight -= 1;
    }
    let rscale = (16 - 4 * qweight)
        .max(i64::from(a.scale()))
        .max(i64::from(b.scale()))
        .clamp(0, 28) as u32;
    let q = a.checked_div(b).ok_or_else(|| {
        Error::new(
            ErrorKind::NumericOutOfRange,
            "value overflows numeric format",
        )
    })?;
    let mut r =
        q.round_dp_with_strategy(rscale, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
    if r.scale() < rscale {
        r.rescale(rscale);
    }
    Ok(r)
}

/// Computes `l op r` where the operand types are `lt` and `rt` and the result type `ty`.
pub fn binary(
    op: BinOp,
    l: Value,
    r: Value,
    lt: &SqlType,
    rt: &SqlType,
    ty: &SqlType,
) -> Result<Value> {
    if op.is_comparison() {
        if l.is_null() || r.is_null() {
            return Ok(Value::Null);
        }
        let ord = compare(&l, &r, lt, rt)?;
        return Ok(Value::Bool(match op {
            BinOp::Eq => ord == Ordering::Equal,
            BinOp::NotEq => ord != Ordering::Equal,
            BinOp::Lt => ord == Ordering::Less,
            BinOp::LtEq => ord != Ordering::Greater,
            BinOp::Gt => ord == Ordering::Greater,
            _ => ord != Ordering::Less,
        }));
    }
    if op == BinOp::Concat {
        return concat(l, r, lt, rt);
    }
    if l.is_null() || r.is_null() {
        return Ok(Value::Null);
    }
    match ty.family() {
        // date - date is an integer, but it is date arithmetic.
        TypeFamily::Integer if matches!(l, Value::Date(_)) => other_op(op, l, r, lt, rt, ty),
        TypeFamily::Integer => int_op(op, &l, &r, ty),
        TypeFamily::Float => {
            let (a, b) = (
                as_f64(&l).ok_or_else(|| no_operator(op, lt, rt))?,
                as_f64(&r).ok_or_else(|| no_operator(op, lt, rt))?,
            );
            let v = match op {
                BinOp::Add => a + b,
                BinOp::Sub => a - b,
                BinOp::Mul => a * b,
                BinOp::Div => {
                    if b == 0.0 {
                        return Err(div_zero());
                    }
                    a / b
                }
                BinOp::Mod => {
                    if b == 0.0 {
                        return Err(div_zero());
                    }
                    a % b
                }
                BinOp::Pow => {
                    if a == 0.0 && b < 0.0 {
                        return Err(Error::new(
                            ErrorKind::InvalidArgumentForPower,
                            "zero raised to a negative power is undefined",
                        ));
                    }
                    if a < 0.0 && b.fract() != 0.0 {
                        return Err(Error::new(
                            ErrorKind::InvalidArgumentForPower,
                            "a negative number raised to a non-integer power yields a complex result",
                        ));
                    }
                    a.powf(b)
                }
                _ => return Err(no_operator(op, lt, rt)),
            };
            if v.is_infinite() && a.is_finite() && b.is_finite() {
                return Err(Error::new(
                    ErrorKind::NumericOutOfRange,
                    "value out of range: overflow",
                ));
            }
            Ok(Value::Float(if matches!(ty, SqlType::Float4) {
                f64::from(v as f32)
            } else {
                v
            }))
        }
        TypeFamily::Numeric => {
            let (a, b) = (
                as_decimal(&l).ok_or_else(|| no_operator(op, lt, rt))?,
                as_decimal(&r).ok_or_else(|| no_operator(op, lt, rt))?,
            );
            let ovf = || {
                Error::new(
                    ErrorKind::NumericOutOfRange,
                    "value overflows numeric format",
                )
            };
            let v = match op {
                BinOp::Add => a.checked_add(b).ok_or_else(ovf)?,
                BinOp::Sub => a.checked_sub(b).ok_or_else(ovf)?,
                BinOp::Mul => a.checked_mul(b).ok_or_else(ovf)?,
                BinOp::Div => numeric_div(a, b)?,
                BinOp::Mod => {
                    if b.is_zero() {
                        return Err(div_zero());
                    }
                    a.checked_rem(b).ok_or_else(ovf)?
                }
                BinOp::Pow => {
                    use rust_decimal::MathematicalOps;
                    a.checked_powd(b).ok_or_else(ovf)?
                }
                _ => return Err(no_operator(op, lt, rt)),
            };
            Ok(Value::Numeric(v))
        }
        _ => other_op(op, l, r, lt, rt, ty),
    }
}

fn int_op(op: BinOp, l: &Value, r: &Value, ty: &SqlType) -> Result<Value> {
    let (Value::Int(a), Value::Int(b)) = (l, r) else {
        return Err(Error::internal(format!(
            "integer operator on {l:?} and {r:?}"
        )));
    };
    let (a, b) = (*a, *b);
    let v = match op {
        BinOp::Add => a.checked_add(b),
        BinOp::Sub => a.checked_sub(b),
        BinOp::Mul => a.checked_mul(b),
        BinOp::Div => {
            if b == 0 {
                return Err(div_zero());
            }
            a.checked_div(b)
        }
        BinOp::Mod => {
            if b == 0 {
                return Err(div_zero());
            }
            Some(a.checked_rem(b).unwrap_or(0))
        }
        BinOp::BitAnd => Some(a & b),
        BinOp::BitOr => Some(a | b),
        BinOp::BitXor => Some(a ^ b),
        BinOp::ShiftLeft => Some(a.wrapping_shl(b as u32)),
        BinOp::ShiftRight => Some(a.wrapping_shr(b as u32)),
        _ => return Err(Error::internal(format!("integer operator {op:?}"))),
    };
    let v = v.ok_or_else(|| overflow(ty))?;
    check_int_range(v, ty).map_err(|_| overflow(ty))?;
    Ok(Value::Int(v))
}

fn other_op(
    op: BinOp,
    l: Value,
    r: Value,
    lt: &SqlType,
    rt: &SqlType,
    ty: &SqlType,
) -> Result<Value> {
    use Value as V;
    let ts_overflow = || Error::new(ErrorKind::DatetimeOverflow, "timestamp out of range");
    Ok(match (op, l, r) {
        (BinOp::Add, V::Date(d), V::Int(n)) | (BinOp::Add, V::Int(n), V::Date(d)) => V::Date(
            d.checked_add_signed(chrono::Duration::days(n))
                .ok_or_else(ts_overflow)?,
        ),
        (BinOp::Sub, V::Date(d), V::Int(n)) => V::Date(
            d.checked_sub_signed(chrono::Duration::days(n))
                .ok_or_else(ts_overflow)?,
        ),
        (BinOp::Sub, V::Date(a), V::Date(b)) => V::Int((a - b).num_days()),
        (BinOp::Add, V::Date(d), V::Interval(i)) | (BinOp::Add, V::Interval(i), V::Date(d)) => {
            V::Timestamp(datetime::add_interval(d.and_time(NaiveTime::MIN), &i)?)
        }
        (BinOp::Sub, V::Date(d), V::Interval(i)) => V::Timestamp(datetime::add_interval(
            d.and_time(NaiveTime::MIN),
            &neg_interval(&i),
        )?),
        (BinOp::Add, V::Date(d), V::Time(t)) | (BinOp::Add, V::Time(t), V::Date(d)) => {
            V::Timestamp(d.and_time(t))
        }
        (BinOp::Add, V::Timestamp(t), V::Interval(i))
        | (BinOp::Add, V::Interval(i), V::Timestamp(t)) => {
            V::Timestamp(datetime::add_interval(t, &i)?)
        }
        (BinOp::Sub, V::Timestamp(t), V::Interval(i)) => {
            V::Timestamp(datetime::add_interval(t, &neg_interval(&i))?)
        }
        (BinOp::Add, V::TimestampTz(t), V::Interval(i))
        | (BinOp::Add, V::Interval(i), V::TimestampTz(t)) => {
            V::TimestampTz(datetime::add_interval(t.naive_utc(), &i)?.and_utc())
        }
        (BinOp::Sub, V::TimestampTz(t), V::Interval(i)) => {
            V::TimestampTz(datetime::add_interval(t.naive_utc(), &neg_interval(&i))?.and_utc())
        }
        (BinOp::Add, V::Time(t), V::Interval(i)) => {
            V::Time(t + chrono::Duration::microseconds(i.micros))
        }
        (BinOp::Sub, V::Time(t), V::Interval(i)) => {
            V::Time(t - chrono::Duration::microseconds(i.micros))
        }
        (BinOp::Sub, V::Time(a), V::Time(b)) => V::Interval(Interval {
            months: 0,
            days: 0,
            micros: (a - b).num_microseconds().unwrap_or(0),
        }),
        (
            BinOp::Sub,
            a @ (V::Timestamp(_) | V::TimestampTz(_)),
            b @ (V::Timestamp(_) | V::TimestampTz(_)),
        ) => V::Interval(datetime::diff(naive(&a), naive(&b))),
        (BinOp::Add, V::Interval(a), V::Interval(b)) => V::Interval(Interval {
            months: a.months + b.months,
            days: a.days + b.days,
            micros: a.micros + b.micros,
        }),
        (BinOp::Sub, V::Interval(a), V::Interval(b)) => V::Interval(Interval {
            months: a.months - b.months,
            days: a.days - b.days,
            micros: a.micros - b.micros,
        }),
        (BinOp::Mul, V::Interval(i), n) | (BinOp::Mul, n, V::Interval(i)) => {
            let f = as_f64(&n).ok_or_else(|| no_operator(op, lt, rt))?;
            V::Interval(scale_interval(&i, f))
        }
        (BinOp::Div, V::Interval(i), n) => {
            let f = as_f64(&n).ok_or_else(|| no_operator(op, lt, rt))?;
            if f == 0.0 {
                return Err(div_zero());
            }
            V::Interval(scale_interval(&i, 1.0 / f))
        }
        (BinOp::JsonGet | BinOp::JsonGetText, V::Json(j), key) => {
            let k = match key {
                V::Text(s) => json::KeyOrIndex::Key(s),
                V::Int(i) => json::KeyOrIndex::Index(i),
                _ => return Err(no_operator(op, lt, rt)),
            };
            if op == BinOp::JsonGet {
                json::get(&j, &k).map_or(V::Null, |v| V::Json(Box::new(v.clone())))
            } else {
                json::get_text(&j, &k).map_or(V::Null, V::Text)
            }
        }
        (BinOp::Contains, V::Json(a), V::Json(b)) => V::Bool(json::contains(&a, &b)),
        (BinOp::ContainedBy, V::Json(a), V::Json(b)) => V::Bool(json::contains(&b, &a)),
        (BinOp::JsonHasKey, V::Json(a), V::Text(k)) => V::Bool(match a.as_ref() {
            serde_json::Value::Object(m) => m.contains_key(&k),
            serde_json::Value::Array(items) => items.iter().any(|x| x.as_str() == Some(k.as_str())),
            _ => false,
        }),
        (BinOp::Contains, V::Array(a), V::Array(b)) => V::Bool(
            b.iter()
                .all(|x| a.iter().any(|y| y.not_distinct(x) && !x.is_null())),
        ),
        (BinOp::ContainedBy, V::Array(a), V::Array(b)) => V::Bool(
            a.iter()
                .all(|x| b.iter().any(|y| y.not_distinct(x) && !x.is_null())),
        ),
        (BinOp::Overlap, V::Array(a), V::Array(b)) => V::Bool(
            a.iter()
                .any(|x| !x.is_null() && b.iter().any(|y| y.not_distinct(x))),
        ),
        (BinOp::StartsWith, V::Text(a), V::Text(b)) => V::Bool(a.starts_with(&b)),
        _ => {
            return Err(
                no_operator(op, lt, rt).with_detail(format!("result type {}", ty.pg_name()))
            );
        }
    })
}

fn naive(v: &Value) -> NaiveDateTime {
    match v {
        Value::Timestamp(t) => *t,
        Value::TimestampTz(t) => t.naive_utc(),
        _ => NaiveDateTime::default(),
    }
}

fn neg_interval(i: &Interval) -> Interval {
    Interval {
        months: -i.months,
        days: -i.days,
        micros: -i.micros,
    }
}

fn scale_interval(i: &Interval, f: f64) -> Interval {
    // Fractions of months spill into days and fractions of days into time, as in PostgreSQL.
    let months = f64::from(i.months) * f;
    let whole_months = months.trunc();
    let days = f64::from(i.days) * f + (months - whole_months) * 30.0;
    let whole_days = days.trunc();
    let micros = i.micros as f64 * f + (days - whole_days) * 86_400e6;
    Interval {
        months: whole_months as i32,
        days: whole_days as i32,
        micros: micros.round() as i64,
    }
}

fn concat(l: Value, r: Value, lt: &SqlType, rt: &SqlType) -> Result<Value> {
    Ok(match (l, r) {
        (Value::Array(mut a), Value::Array(b)) => {
            a.extend(b);
            Value::Array(a)
        }
        (Value::Array(mut a), x) => {
            a.push(x);
            Value::Array(a)
        }
        (x, Value::Array(mut b)) => {
            b.insert(0, x);
            Value::Array(b)
        }
        (Value::Null, _) | (_, Value::Null) => Value::Null,
        (Value::Json(a), Value::Json(b)) => match (*a, *b) {
            (serde_json::Value::Array(mut x), serde_json::Value::Array(y)) => {
                x.extend(y);
                Value::Json(Box::new(serde_json::Value::Array(x)))
            }
            (serde_json::Value::Object(mut x), serde_json::Value::Object(y)) => {
                x.extend(y);
                Value::Json(Box::new(serde_json::Value::Object(x)))
            }
            (x, y) => Value::Json(Box::new(serde_json::Value::Array(vec![x, y]))),
        },
        (Value::Bytes(mut a), Value::Bytes(b)) => {
            a.extend(b);
            Value::Bytes(a)
        }
        (a, b) => {
            // Each side as text the way a cast to text writes it: booleans as true/false,
            // char(n) without its padding.
            let text = |v: Value, t: &SqlType| -> String {
                match (&v, t) {
                    (Value::Bool(b), _) => if *b { "true" } else { "false" }.to_string(),
                    (Value::Text(s), SqlType::Char(_)) => s.trim_end_matches(' ').to_string(),
                    _ => crate::textio::to_text(&v, t).unwrap_or_default(),
                }
            };
            Value::Text(text(a, lt) + &text(b, rt))
        }
    })
}

/// Compares two non-NULL values whose types were checked by [`result_type`].
pub fn compare(l: &Value, r: &Value, lt: &SqlType, rt: &SqlType) -> Result<Ordering> {
    if let (Value::Text(a), Value::Text(b)) = (l, r)
        && (matches!(lt, SqlType::Char(_)) || matches!(rt, SqlType::Char(_)))
    {
        return Ok(a.trim_end_matches(' ').cmp(b.trim_end_matches(' ')));
    }
    l.sql_cmp(r).ok_or_else(|| no_operator(BinOp::Eq, lt, rt))
}

/// Negates a number or interval.
pub fn negate(v: Value, ty: &SqlType) -> Result<Value> {
    Ok(match v {
        Value::Null => Value::Null,
        Value::Int(i) => {
            let n = i.checked_neg().ok_or_else(|| overflow(ty))?;
            check_int_range(n, ty).map_err(|_| overflow(ty))?;
            Value::Int(n)
        }
        Value::Float(f) => Value::Float(-f),
        Value::Numeric(d) => Value::Numeric(-d),
        Value::Interval(i) => Value::Interval(neg_interval(&i)),
        other => {
            return Err(Error::new(
                ErrorKind::UndefinedFunction,
                format!(
                    "operator does not exist: - {}",
                    other.natural_type().pg_name()
                ),
            ));
        }
    })
}

/// Converts a value to i64 (for LIMIT, OFFSET, generate_series...).
pub fn to_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        Value::Float(f) => Some(f.round() as i64),
        Value::Numeric(d) => d.round().to_i64(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_overflow_and_division() {
        let t = SqlType::Int4;
        assert_eq!(
            binary(BinOp::Div, Value::Int(7), Value::Int(2), &t, &t, &t).unwrap(),
            Value::Int(3)
        );
        assert_eq!(
            binary(BinOp::Div, Value::Int(1), Value::Int(0), &t, &t, &t)
                .unwrap_err()
                .kind,
            ErrorKind::DivisionByZero
        );
        let e = binary(
            BinOp::Mul,
            Value::Int(100_000),
            Value::Int(100_000),
            &t,
            &t,
            &t,
        )
        .unwrap_err();
        assert_eq!(e.message, "integer out of range");
        assert_eq!(
            binary(BinOp::Mod, Value::Int(-7), Value::Int(2), &t, &t, &t).unwrap(),
            Value::Int(-1)
        );
    }

    #[test]
    fn numeric_division_keeps_sixteen_significant_digits() {
        let n = SqlType::Numeric(None);
        let v = binary(
            BinOp::Div,
            Value::Numeric(Decimal::ONE),
            Value::Numeric(Decimal::from(3)),
            &n,
            &n,
            &n,
        )
        .unwrap();
        assert_eq!(
            crate::textio::to_text(&v, &n).unwrap(),
            "0.33333333333333333333"
        );
        let v = binary(
            BinOp::Div,
            Value::Numeric(Decimal::from(10)),
            Value::Numeric(Decimal::from(3)),
            &n,
            &n,
            &n,
        )
        .unwrap();
        assert_eq!(
            crate::textio::to_text(&v, &n).unwrap(),
            "3.3333333333333333"
        );
    }

    #[test]
    fn result_types() {
        assert_eq!(
            result_type(BinOp::Add, &SqlType::Int4, &SqlType::Int8).unwrap(),
            SqlType::Int8
        );
        assert_eq!(
            result_type(BinOp::Add, &SqlType::Int4, &SqlType::Numeric(None)).unwrap(),
            SqlType::Numeric(None)
        );
        assert_eq!(
            result_type(BinOp::Sub, &SqlType::Date, &SqlType::Date).unwrap(),
            SqlType::Int4
        );
        assert_eq!(
            result_type(BinOp::Eq, &SqlType::Int4, &SqlType::Text)
                .unwrap_err()
                .kind,
            ErrorKind::UndefinedFunction
        );
    }
}
