//! PostgreSQL's binary value formats (what `typsend`/`typreceive` produce), for result
//! columns and parameters a client asks to exchange in binary.

use std::str::FromStr;

use bytes::{Buf, BufMut, BytesMut};
use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, NaiveTime, Timelike, Utc};
use rust_decimal::Decimal;
use sql::value::Interval;
use sql::{Error, ErrorKind, SqlType, Value};

const NUMERIC_POS: u16 = 0x0000;
const NUMERIC_NEG: u16 = 0x4000;
const NUMERIC_NAN: u16 = 0xC000;

fn pg_epoch_date() -> NaiveDate {
    NaiveDate::from_ymd_opt(2000, 1, 1).expect("2000-01-01 is a date")
}

fn pg_epoch() -> NaiveDateTime {
    pg_epoch_date().and_time(NaiveTime::MIN)
}

/// Writes `v` of type `ty` in binary. NULL is handled by the caller.
pub fn encode(v: &Value, ty: &SqlType, out: &mut BytesMut) -> Result<(), Error> {
    match (ty, v) {
        (SqlType::Bool, Value::Bool(b)) => out.put_u8(u8::from(*b)),
        (SqlType::Int2, Value::Int(i)) => out.put_i16(narrow(*i)?),
        (SqlType::Int4, Value::Int(i)) => out.put_i32(narrow(*i)?),
        (SqlType::Oid | SqlType::RegClass, Value::Int(i)) => out.put_u32(narrow(*i)?),
        (SqlType::Int8, Value::Int(i)) => out.put_i64(*i),
        (SqlType::Float4, Value::Float(f)) => out.put_f32(*f as f32),
        (SqlType::Float8, Value::Float(f)) => out.put_f64(*f),
        (SqlType::Numeric(_), Value::Numeric(d)) => encode_numeric(d, out),
        (SqlType::Bytea, Value::Bytes(b)) => out.put_slice(b),
        (SqlType::Date, Value::Date(d)) => out.put_i32(narrow((*d - pg_epoch_date()).num_days())?),
        (SqlType::Time, Value::Time(t)) => out.put_i64(
            i64::from(t.num_seconds_from_midnight()) * 1_000_000 + i64::from(t.nanosecond() / 1000),
        ),
        (SqlType::Timestamp, Value::Timestamp(ts)) => out.put_i64(micros_since_epoch(ts)?),
        (SqlType::TimestampTz, Value::TimestampTz(ts)) => {
            out.put_i64(micros_since_epoch(&ts.naive_utc())?)
        }
        (SqlType::Interval, Value::Interval(i)) => {
            out.put_i64(i.micros);
            out.put_i32(i.days);
            out.put_i32(i.months);
        }
        (SqlType::Uuid, Value::Uuid(u)) => out.put_u128(*u),
        (SqlType::Jsonb, _) => {
            out.put_u8(1);
            out.put_slice(text(v, ty)?.as_bytes());
        }
        (SqlType::Int2Vector | SqlType::OidVector, Value::Array(_)) => {
            // Sent like a one-dimensional array with lower bound 0.
            let elem = ty.element().expect("vectors have elements");
            let mut arr = BytesMut::new();
            encode(v, &SqlType::Array(Box::new(elem.clone())), &mut arr)?;
            if arr.len() >= 20 {
                arr[16..20].copy_from_slice(&0i32.to_be_bytes());
            }
            out.put_slice(&arr);
        }
        (SqlType::Array(elem), Value::Array(items)) => {
            let has_null = items.iter().any(Value::is_null);
            if items.is_empty() {
                out.put_i32(0);
                out.put_i32(0);
                out.put_u32(elem.oid());
                return Ok(());
            }
            out.put_i32(1);
            out.put_i32(i32::from(has_null));
            out.put_u32(elem.oid());
            out.put_i32(narrow(items.len() as i64)?);
            out.put_i32(1);
            for item in items {
                put_value(item, elem, out)?;
            }
        }
        // Text-like types, and anything whose binary form is its text.
        (_, _) => out.put_slice(text(v, ty)?.as_bytes()),
    }
    Ok(())
}

/// Writes a length-prefixed value (-1 for NULL), as in DataRow and array elements.
pub fn put_value(v: &Value, ty: &SqlType, out: &mut BytesMut) -> Result<(), Error> {
    if v.is_null() {
        out.put_i32(-1);
        return Ok(());
    }
    let at = out.len();
    out.put_i32(0);
    encode(v, ty, out)?;
    let len = out.len() - at - 4;
    let len = i32::try_from(len)
        .map_err(|_| Error::new(ErrorKind::ProgramLimitExceeded, "value too large to send"))?;
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

fn text(v: &Value, ty: &SqlType) -> Result<String, Error> {
    sql::textio::to_text(v, ty).ok_or_else(|| Error::internal("NULL where a value was expected"))
}

fn narrow<T: TryFrom<i64>>(i: i64) -> Result<T, Error> {
    T::try_from(i).map_err(|_| {
        Error::new(
            ErrorKind::NumericOutOfRange,
            format!("value {i} out of range for its type"),
        )
    })
}

fn micros_since_epoch(ts: &NaiveDateTime) -> Result<i64, Error> {
    (*ts - pg_epoch())
        .num_microseconds()
        .ok_or_else(|| Error::new(ErrorKind::DatetimeOverflow, "timestamp out of range"))
}

fn encode_numeric(d: &Decimal, out: &mut BytesMut) {
    let scale = d.scale();
    let digits = d.mantissa().unsigned_abs().to_string();
    let scale_us = scale as usize;
    // Split into integer and fraction digit strings.
    let (int_part, frac_part) = if digits.len() > scale_us {
        digits.split_at(digits.len() - scale_us)
    } else {
        ("", digits.as_str())
    };
    let frac_owned;
    let frac_part = if frac_part.len() < scale_us {
        frac_owned = format!("{}{}", "0".repeat(scale_us - frac_part.len()), frac_part);
        frac_owned.as_str()
    } else {
        frac_part
    };
    // Base-10000 groups aligned on the decimal point.
    let int_pad = (4 - int_part.len() % 4) % 4;
    let int_str = format!("{}{}", "0".repeat(int_pad), int_part);
    let frac_pad = (4 - frac_part.len() % 4) % 4;
    let frac_str = format!("{}{}", frac_part, "0".repeat(frac_pad));
    let group = |s: &str| -> Vec<i16> {
        s.as_bytes()
            .chunks(4)
            .map(|c| std::str::from_utf8(c).map_or(0, |s| s.parse().unwrap_or(0)))
            .collect()
    };
    let int_groups = group(&int_str);
    let frac_groups = group(&frac_str);
    let mut weight = int_groups.len() as i32 - 1;
    let mut groups: Vec<i16> = int_groups.into_iter().chain(frac_groups).collect();
    // Strip leading zero groups (each lowers the weight) and trailing ones.
    let lead = groups.iter().take_while(|g| **g == 0).count();
    groups.drain(..lead);
    weight -= lead as i32;
    while groups.last() == Some(&0) {
        groups.pop();
    }
    if groups.is_empty() {
        weight = 0;
    }
    out.put_i16(groups.len() as i16);
    out.put_i16(weight as i16);
    out.put_u16(if d.is_sign_negative() && !d.is_zero() {
        NUMERIC_NEG
    } else {
        NUMERIC_POS
    });
    out.put_u16(scale as u16);
    for g in groups {
        out.put_i16(g);
    }
}

fn decode_numeric(mut b: &[u8]) -> Result<Decimal, Error> {
    if b.len() < 8 {
        return Err(bad("numeric"));
    }
    let n = b.get_i16();
    let weight = i32::from(b.get_i16());
    let sign = b.get_u16();
    let dscale = b.get_u16();
    if sign == NUMERIC_NAN {
        return Err(Error::unsupported("numeric NaN"));
    }
    if n < 0 || b.len() != n as usize * 2 || (sign != NUMERIC_POS && sign != NUMERIC_NEG) {
        return Err(bad("numeric"));
    }
    let mut s = String::new();
    if sign == NUMERIC_NEG {
        s.push('-');
    }
    let groups: Vec<i16> = (0..n).map(|_| b.get_i16()).collect();
    if groups.iter().any(|g| !(0..10000).contains(g)) {
        return Err(bad("numeric"));
    }
    // Integer part: groups with exponent weight..0.
    let mut int = String::new();
    for e in (0..=weight.max(0)).rev() {
        let idx = weight - e;
        let g = if idx >= 0 && (idx as usize) < groups.len() {
            groups[idx as usize]
        } else {
            0
        };
        int.push_str(&format!("{g:04}"));
    }
    let int = int.trim_start_matches('0');
    s.push_str(if int.is_empty() { "0" } else { int });
    if dscale > 0 {
        let mut frac = String::new();
        let mut e = -1;
        while frac.len() < dscale as usize {
            let idx = weight - e;
            let g = if idx >= 0 && (idx as usize) < groups.len() {
                groups[idx as usize]
            } else {
                0
            };
            frac.push_str(&format!("{g:04}"));
            e -= 1;
        }
        frac.truncate(dscale as usize);
        s.push('.');
        s.push_str(&frac);
    }
    Decimal::from_str(&s).map_err(|_| {
        Error::new(
            ErrorKind::NumericOutOfRange,
            format!("numeric value {s} out of range"),
        )
    })
}

fn bad(ty: &str) -> Error {
    Error::new(
        ErrorKind::InvalidBinaryRepresentation,
        format!("incorrect binary data format in bind parameter of type {ty}"),
    )
}

fn exact<const N: usize>(b: &[u8], ty: &str) -> Result<[u8; N], Error> {
    b.try_into().map_err(|_| bad(ty))
}

/// Reads a binary parameter of type `ty`.
pub fn decode(b: &[u8], ty: &SqlType) -> Result<Value, Error> {
    Ok(match ty {
        SqlType::Bool => match b {
            [0] => Value::Bool(false),
            [1] => Value::Bool(true),
            _ => return Err(bad("boolean")),
        },
        SqlType::Int2 => Value::Int(i16::from_be_bytes(exact(b, "smallint")?).into()),
        SqlType::Int4 => Value::Int(i32::from_be_bytes(exact(b, "integer")?).into()),
        SqlType::Oid | SqlType::RegClass => Value::Int(u32::from_be_bytes(exact(b, "oid")?).into()),
        SqlType::Int8 => Value::Int(i64::from_be_bytes(exact(b, "bigint")?)),
        SqlType::Float4 => Value::Float(f32::from_be_bytes(exact(b, "real")?).into()),
        SqlType::Float8 => Value::Float(f64::from_be_bytes(exact(b, "double precision")?)),
        SqlType::Numeric(_) => Value::Numeric(decode_numeric(b)?),
        SqlType::Bytea => Value::Bytes(b.to_vec()),
        SqlType::Date => {
            let days = i32::from_be_bytes(exact(b, "date")?);
            Value::Date(
                pg_epoch_date()
                    .checked_add_signed(Duration::days(days.into()))
                    .ok_or_else(|| Error::new(ErrorKind::DatetimeOverflow, "date out of range"))?,
            )
        }
        SqlType::Time => {
            let us = i64::from_be_bytes(exact(b, "time")?);
            if !(0..=86_400_000_000).contains(&us) {
                return Err(Error::new(ErrorKind::DatetimeOverflow, "time out of range"));
            }
            Value::Time(NaiveTime::MIN + Duration::microseconds(us))
        }
        SqlType::Timestamp | SqlType::TimestampTz => {
            let us = i64::from_be_bytes(exact(b, "timestamp")?);
            let ts = pg_epoch()
                .checked_add_signed(Duration::microseconds(us))
                .ok_or_else(|| Error::new(ErrorKind::DatetimeOverflow, "timestamp out of range"))?;
            if *ty == SqlType::Timestamp {
                Value::Timestamp(ts)
            } else {
                Value::TimestampTz(DateTime::<Utc>::from_naive_utc_and_offset(ts, Utc))
            }
        }
        SqlType::Interval => {
            let raw: [u8; 16] = exact(b, "interval")?;
            let mut r = &raw[..];
            let micros = r.get_i64();
            let days = r.get_i32();
            let months = r.get_i32();
            Value::Interval(Interval {
                months,
                days,
                micros,
            })
        }
        SqlType::Uuid => Value::Uuid(u128::from_be_bytes(exact(b, "uuid")?)),
        SqlType::Jsonb => match b.split_first() {
            Some((1, rest)) => from_text(rest, ty)?,
            _ => return Err(bad("jsonb")),
        },
        SqlType::Array(elem) => decode_array(b, elem)?,
        SqlType::Int2Vector | SqlType::OidVector => {
            decode_array(b, ty.element().expect("vectors have elements"))?
        }
        _ => from_text(b, ty)?,
    })
}

fn from_text(b: &[u8], ty: &SqlType) -> Result<Value, Error> {
    let s = std::str::from_utf8(b).map_err(|_| {
        Error::new(
            ErrorKind::CharacterNotInRepertoire,
            "invalid byte sequence for encoding \"UTF8\"",
        )
    })?;
    sql::textio::from_text(s, ty)
}

fn decode_array(mut b: &[u8], elem: &SqlType) -> Result<Value, Error> {
    if b.len() < 12 {
        return Err(bad("array"));
    }
    let ndim = b.get_i32();
    let _flags = b.get_i32();
    let _oid = b.get_u32();
    if ndim == 0 {
        return Ok(Value::Array(Vec::new()));
    }
    if ndim != 1 {
        return Err(Error::unsupported("multidimensional arrays"));
    }
    if b.len() < 8 {
        return Err(bad("array"));
    }
    let n = b.get_i32();
    let _lower = b.get_i32();
    let mut items = Vec::with_capacity(n.clamp(0, 1024) as usize);
    for _ in 0..n {
        if b.len() < 4 {
            return Err(bad("array"));
        }
        let len = b.get_i32();
        if len < 0 {
            items.push(Value::Null);
            continue;
        }
        let len = len as usize;
        if b.len() < len {
            return Err(bad("array"));
        }
        items.push(decode(&b[..len], elem)?);
        b.advance(len);
    }
    if !b.is_empty() {
        return Err(bad("array"));
    }
    Ok(Value::Array(items))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn round_trip(v: Value, ty: SqlType) {
        let mut out = BytesMut::new();
        encode(&v, &ty, &mut out).unwrap();
        let back = decode(&out, &ty).unwrap();
        assert!(back.not_distinct(&v), "{v:?} as {ty} came back as {back:?}");
    }

    #[test]
    fn scalars_round_trip() {
        round_trip(Value::Bool(true), SqlType::Bool);
        round_trip(Value::Int(-32768), SqlType::Int2);
        round_trip(Value::Int(i64::from(i32::MIN)), SqlType::Int4);
        round_trip(Value::Int(i64::MAX), SqlType::Int8);
        round_trip(Value::Float(1.5), SqlType::Float4);
        round_trip(Value::Float(-0.1), SqlType::Float8);
        round_trip(Value::Text("héllo".into()), SqlType::Text);
        round_trip(Value::Bytes(vec![0, 255, 1]), SqlType::Bytea);
        round_trip(
            Value::Date(NaiveDate::from_ymd_opt(1999, 12, 31).unwrap()),
            SqlType::Date,
        );
        round_trip(
            Value::Time(NaiveTime::from_hms_micro_opt(23, 59, 59, 999_999).unwrap()),
            SqlType::Time,
        );
        let ts = NaiveDate::from_ymd_opt(2026, 11, 30)
            .unwrap()
            .and_hms_micro_opt(1, 2, 3, 4)
            .unwrap();
        round_trip(Value::Timestamp(ts), SqlType::Timestamp);
        round_trip(
            Value::TimestampTz(DateTime::from_naive_utc_and_offset(ts, Utc)),
            SqlType::TimestampTz,
        );
        round_trip(
            Value::Interval(Interval {
                months: 14,
                days: -3,
                micros: 5,
            }),
            SqlType::Interval,
        );
        round_trip(
            Value::Uuid(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef),
            SqlType::Uuid,
        );
        round_trip(
            Value::Array(vec![Value::Int(1), Value::Null, Value::Int(3)]),
            SqlType::Array(Box::new(SqlType::Int4)),
        );
        round_trip(
            Value::Array(vec![]),
            SqlType::Array(Box::new(SqlType::Text)),
        );
    }

    #[test]
    fn numeric_matches_postgres_bytes() {
        // SELECT numeric_send(12345.678): ndigits 3, weight 1, sign 0, dscale 3, 1 2345 6780.
        let mut out = BytesMut::new();
        encode(
            &Value::Numeric(Decimal::from_str("12345.678").unwrap()),
            &SqlType::Numeric(None),
            &mut out,
        )
        .unwrap();
        assert_eq!(
            &out[..],
            &[0, 3, 0, 1, 0, 0, 0, 3, 0, 1, 0x09, 0x29, 0x1a, 0x7c]
        );
        // 0.0001: ndigits 1, weight -1, dscale 4, digit 1.
        let mut out = BytesMut::new();
        encode(
            &Value::Numeric(Decimal::from_str("0.0001").unwrap()),
            &SqlType::Numeric(None),
            &mut out,
        )
        .unwrap();
        assert_eq!(&out[..], &[0, 1, 0xff, 0xff, 0, 0, 0, 4, 0, 1]);
    }

    proptest::proptest! {
        #[test]
        fn numerics_round_trip(m in proptest::num::i64::ANY, scale in 0u32..12) {
            let d = Decimal::new(m, scale);
            let mut out = BytesMut::new();
            encode(&Value::Numeric(d), &SqlType::Numeric(None), &mut out).unwrap();
            let Value::Numeric(back) = decode(&out, &SqlType::Numeric(None)).unwrap() else { panic!("not numeric") };
            proptest::prop_assert_eq!(back, d);
            proptest::prop_assert_eq!(back.scale(), d.scale());
        }
    }

    #[test]
    fn malformed_input_is_an_error() {
        assert!(decode(&[1, 2, 3], &SqlType::Int4).is_err());
        assert!(decode(&[2], &SqlType::Bool).is_err());
        assert!(decode(&[0, 1, 0, 0, 0x40, 0, 0], &SqlType::Numeric(None)).is_err());
        assert!(
            decode(
                &[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 23, 0, 0, 0, 5],
                &SqlType::Array(Box::new(SqlType::Int4))
            )
            .is_err()
        );
    }
}
