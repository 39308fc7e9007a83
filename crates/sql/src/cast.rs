//! Casts between types, with PostgreSQL's rounding, range checks and length rules.

use rust_decimal::Decimal;
use rust_decimal::prelude::{FromPrimitive, ToPrimitive};

use crate::error::{Error, ErrorKind, Result};
use crate::textio;
use crate::types::{SqlType, TypeFamily};
use crate::value::{Value, decimal_to_f64};

fn out_of_range(ty: &SqlType) -> Error {
    let what = match ty {
        SqlType::Int2 => "smallint out of range".to_string(),
        SqlType::Int4 => "integer out of range".to_string(),
        SqlType::Int8 => "bigint out of range".to_string(),
        other => format!("value out of range for type {}", other.pg_name()),
    };
    Error::new(ErrorKind::NumericOutOfRange, what)
}

/// Checks that an integer fits its type.
pub fn check_int_range(v: i64, ty: &SqlType) -> Result<()> {
    let ok = match ty {
        SqlType::Int2 => i16::try_from(v).is_ok(),
        SqlType::Int4 => i32::try_from(v).is_ok(),
        SqlType::Oid | SqlType::RegClass => u32::try_from(v).is_ok() || i32::try_from(v).is_ok(),
        _ => true,
    };
    if ok { Ok(()) } else { Err(out_of_range(ty)) }
}

/// Rounds a numeric to its type's scale and checks its precision.
pub fn fit_numeric(mut d: Decimal, ty: &SqlType) -> Result<Value> {
    if let SqlType::Numeric(Some((precision, scale))) = ty {
        d = d.round_dp_with_strategy(*scale, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
        d.rescale(*scale);
        let int_digits = d.trunc().abs().to_string().trim_start_matches('0').len() as u32;
        if int_digits > precision.saturating_sub(*scale) {
            return Err(Error::new(ErrorKind::NumericOutOfRange, "numeric field overflow").with_detail(
                format!(
                    "A field with precision {precision}, scale {scale} must round to an absolute value less than 10^{}.",
                    precision - scale
                ),
            ));
        }
    }
    Ok(Value::Numeric(d))
}

/// Applies a varchar(n) or char(n) length: an explicit cast truncates, an assignment fails
/// if non-space characters would be lost; char(n) pads with spaces.
pub fn fit_string(s: String, ty: &SqlType, explicit: bool) -> Result<Value> {
    let (limit, pad) = match ty {
        SqlType::Varchar(Some(n)) => (*n as usize, false),
        SqlType::Char(n) => (*n as usize, true),
        _ => return Ok(Value::Text(s)),
    };
    let len = s.chars().count();
    let mut s = s;
    if len > limit {
        let cut: String = s.chars().take(limit).collect();
        if !explicit && s.chars().skip(limit).any(|c| c != ' ') {
            return Err(Error::new(
                ErrorKind::StringDataRightTruncation,
                format!("value too long for type {}", ty.pg_name()),
            ));
        }
        s = cut;
    } else if pad && len < limit {
        s.extend(std::iter::repeat_n(' ', limit - len));
    }
    Ok(Value::Text(s))
}

fn cannot(from: &SqlType, to: &SqlType) -> Error {
    Error::new(
        ErrorKind::CannotCoerce,
        format!("cannot cast type {} to {}", from.pg_name(), to.pg_name()),
    )
}

/// Casts `v` (of type `from`) to `to`. `explicit` is true for CAST/`::`, false for the
/// implicit casts of assignment.
pub fn cast(v: Value, from: &SqlType, to: &SqlType, explicit: bool) -> Result<Value> {
    if v.is_null() {
        return Ok(Value::Null);
    }
    use SqlType as T;
    Ok(match (v, to) {
        // To strings: the source's text output, then the length rule.
        (Value::Bool(b), T::Text | T::Varchar(_) | T::Char(_) | T::Name)
            if explicit || from == &T::Bool =>
        {
            fit_string(if b { "true" } else { "false" }.into(), to, explicit)?
        }
        // char(n) padding is not significant: it goes when the value becomes text.
        (Value::Text(s), T::Text | T::Name | T::Unknown | T::Varchar(_))
            if matches!(from, T::Char(_)) =>
        {
            fit_string(s.trim_end_matches(' ').to_string(), to, explicit)?
        }
        (Value::Text(s), T::Text | T::Name | T::Unknown) => Value::Text(s),
        (Value::Text(s), T::Varchar(_) | T::Char(_)) => fit_string(s, to, explicit)?,
        (v, T::Text | T::Varchar(_) | T::Char(_) | T::Name) => {
            let s = textio::to_text(&v, from).unwrap_or_default();
            fit_string(s, to, explicit)?
        }
        // From strings: the target's text input.
        (Value::Text(s), t) => {
            let s = if from == &T::Char(1) || matches!(from, T::Char(_)) {
                s.trim_end().to_string()
            } else {
                s
            };
            textio::from_text(&s, t)?
        }
        // Numbers.
        (Value::Int(i), T::Int2 | T::Int4 | T::Int8 | T::Oid | T::RegClass) => {
            check_int_range(i, to)?;
            Value::Int(i)
        }
        (Value::Int(i), T::Float4 | T::Float8) => Value::Float(i as f64),
        (Value::Int(i), T::Numeric(_)) => fit_numeric(Decimal::from(i), to)?,
        (Value::Int(i), T::Bool) if from.family() == TypeFamily::Integer => Value::Bool(i != 0),
        (Value::Float(f), T::Int2 | T::Int4 | T::Int8) => {
            if !f.is_finite() {
                return Err(out_of_range(to));
            }
            let r = f.round_ties_even();
            if !(-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&r) {
                return Err(out_of_range(to));
            }
            let i = r as i64;
            check_int_range(i, to)?;
            Value::Int(i)
        }
        (Value::Float(f), T::Float4) => {
            let g = f as f32;
            if f.is_finite() && g.is_infinite() {
                return Err(Error::new(
                    ErrorKind::NumericOutOfRange,
                    "value out of range: overflow",
                ));
            }
            Value::Float(f64::from(g))
        }
        (Value::Float(f), T::Float8) => Value::Float(f),
        (Value::Float(f), T::Numeric(_)) => {
            let d = Decimal::from_f64(f).ok_or_else(|| {
                Error::new(
                    ErrorKind::NumericOutOfRange,
                    format!("cannot convert {f} to numeric"),
                )
            })?;
            fit_numeric(d, to)?
        }
        (Value::Numeric(d), T::Int2 | T::Int4 | T::Int8) => {
            let r =
                d.round_dp_with_strategy(0, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
            let i = r.to_i64().ok_or_else(|| out_of_range(to))?;
            check_int_range(i, to)?;
            Value::Int(i)
        }
        (Value::Numeric(d), T::Float4 | T::Float8) => Value::Float(decimal_to_f64(&d)),
        (Value::Numeric(d), T::Numeric(_)) => fit_numeric(d, to)?,
        (Value::Bool(b), T::Bool) => Value::Bool(b),
        (Value::Bool(b), T::Int4 | T::Int8 | T::Int2) => Value::Int(i64::from(b)),
        // Dates and times.
        (Value::Date(d), T::Date) => Value::Date(d),
        (Value::Date(d), T::Timestamp) => Value::Timestamp(d.and_time(chrono::NaiveTime::MIN)),
        (Value::Date(d), T::TimestampTz) => {
            Value::TimestampTz(d.and_time(chrono::NaiveTime::MIN).and_utc())
        }
        (Value::Timestamp(t), T::Timestamp) => Value::Timestamp(t),
        (Value::Timestamp(t), T::Date) => Value::Date(t.date()),
        (Value::Timestamp(t), T::Time) => Value::Time(t.time()),
        (Value::Timestamp(t), T::TimestampTz) => Value::TimestampTz(t.and_utc()),
        (Value::TimestampTz(t), T::TimestampTz) => Value::TimestampTz(t),
        (Value::TimestampTz(t), T::Timestamp) => Value::Timestamp(t.naive_utc()),
        (Value::TimestampTz(t), T::Date) => Value::Date(t.naive_utc().date()),
        (Value::TimestampTz(t), T::Time) => Value::Time(t.naive_utc().time()),
        (Value::Time(t), T::Time) => Value::Time(t),
        (Value::Time(t), T::Interval) => Value::Interval(crate::value::Interval {
            months: 0,
            days: 0,
            micros: (t - chrono::NaiveTime::MIN).num_microseconds().unwrap_or(0),
        }),
        (Value::Interval(i), T::Interval) => Value::Interval(i),
        (Value::Uuid(u), T::Uuid) => Value::Uuid(u),
        (Value::Bytes(b), T::Bytea) => Value::Bytes(b),
        (Value::Json(j), T::Jsonb | T::Json) => Value::Json(j),
        (Value::Array(items), T::Array(elem)) => {
            let from_elem = from.element().cloned().unwrap_or(T::Unknown);
            Value::Array(
                items
                    .into_iter()
                    .map(|x| cast(x, &from_elem, elem, explicit))
                    .collect::<Result<_>>()?,
            )
        }
        (_, _) => return Err(cannot(from, to)),
    })
}

/// Returns true if a value of type `from` may be assigned to a column of type `to`
/// without an explicit cast (PostgreSQL's assignment casts).
pub fn assignable(from: &SqlType, to: &SqlType) -> bool {
    use TypeFamily as F;
    if from == to || from.family() == F::Unknown {
        return true;
    }
    match (from.family(), to.family()) {
        (F::Integer | F::Float | F::Numeric, F::Integer | F::Float | F::Numeric) => true,
        (F::String, F::String) => true,
        (F::DateTime, F::DateTime) => true,
        (_, F::String) => true,
        (F::Json, F::Json) => true,
        (F::Array, F::Array) => true,
        (a, b) => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_to_int_rounds_half_even_numeric_half_away() {
        assert!(matches!(
            cast(Value::Float(2.5), &SqlType::Float8, &SqlType::Int4, true),
            Ok(Value::Int(2))
        ));
        let n = Value::Numeric(Decimal::new(25, 1));
        assert!(matches!(
            cast(n, &SqlType::Numeric(None), &SqlType::Int4, true),
            Ok(Value::Int(3))
        ));
        let e = cast(Value::Int(70000), &SqlType::Int4, &SqlType::Int2, true).unwrap_err();
        assert_eq!(e.message, "smallint out of range");
    }

    #[test]
    fn string_lengths() {
        let vc = SqlType::Varchar(Some(3));
        assert!(fit_string("abcd".into(), &vc, false).is_err());
        assert_eq!(
            fit_string("ab  ".into(), &vc, false).unwrap(),
            Value::Text("ab ".into())
        );
        assert_eq!(
            fit_string("abcd".into(), &vc, true).unwrap(),
            Value::Text("abc".into())
        );
        assert_eq!(
            fit_string("a".into(), &SqlType::Char(3), false).unwrap(),
            Value::Text("a  ".into())
        );
    }

    #[test]
    fn numeric_precision() {
        let t = SqlType::Numeric(Some((5, 2)));
        assert_eq!(
            fit_numeric(Decimal::new(123456, 3), &t).unwrap(),
            Value::Numeric(Decimal::new(12346, 2))
        );
        assert_eq!(
            fit_numeric(Decimal::new(1000, 0), &t).unwrap_err().message,
            "numeric field overflow"
        );
    }

    #[test]
    fn bool_to_text_is_spelled_out() {
        assert_eq!(
            cast(Value::Bool(true), &SqlType::Bool, &SqlType::Text, true).unwrap(),
            Value::Text("true".into())
        );
    }
}
