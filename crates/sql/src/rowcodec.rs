//! How rows and index entries are laid out in the key space.
//!
//! ```text
//!  primary index:  /t/<tenant>/<table>/<1>/<pk columns...>        -> row value
//!  unique index:   /t/<tenant>/<table>/<index>/<index columns...> -> primary key suffix
//!                  (when an index column is NULL, the primary key columns are appended to
//!                   the key too, since NULLs never conflict)
//!  other index:    /t/<tenant>/<table>/<index>/<index columns...>/<pk columns...> -> ""
//! ```
//!
//! Key columns use the order-preserving encodings of [`codec::key`]; numerics use a
//! sign/exponent/digits form that sorts by value. The row value holds the non-key columns
//! by column id, so columns can be added and dropped without rewriting rows:
//!
//! ```text
//!  [format 1] ([column id << 1 | null: varint] [value if not null])*
//! ```
//!
//! A NULL column is usually just absent; it is written as an explicit NULL (the low bit
//! set, no value) when absence would mean something else: a column added later with a
//! default reads that default from rows written before it existed.

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime};
use codec::key::{self, Decoder, Direction, Nulls};
use rust_decimal::Decimal;

use crate::error::{Error, ErrorKind, Result};
use crate::types::SqlType;
use crate::value::{Interval, Value};

const ROW_FORMAT_V1: u8 = 1;

/// Tag of an order-preserving numeric in a key (between the float and integer tags).
const TAG_NUMERIC: u8 = 0x14;

fn corrupt(what: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::Internal, format!("corrupt row data: {what}"))
}

fn epoch() -> NaiveDateTime {
    DateTime::UNIX_EPOCH.naive_utc()
}

fn micros_since_epoch(t: &NaiveDateTime) -> i64 {
    (*t - epoch()).num_microseconds().unwrap_or(i64::MAX)
}

fn from_micros(m: i64) -> Result<NaiveDateTime> {
    epoch()
        .checked_add_signed(chrono::Duration::microseconds(m))
        .ok_or_else(|| corrupt("timestamp out of range"))
}

/// Returns true if values of `ty` can be key columns.
pub fn keyable(ty: &SqlType) -> bool {
    !matches!(
        ty,
        SqlType::Json
            | SqlType::Jsonb
            | SqlType::Array(_)
            | SqlType::Int2Vector
            | SqlType::OidVector
            | SqlType::Interval
    )
}

/// Appends a key column.
pub fn put_key(
    buf: &mut Vec<u8>,
    v: &Value,
    ty: &SqlType,
    dir: Direction,
    nulls: Nulls,
) -> Result<()> {
    match v {
        Value::Null => key::put_null(buf, nulls),
        Value::Bool(b) => key::put_bool(buf, *b, dir),
        Value::Int(i) => key::put_i64(buf, *i, dir),
        Value::Float(f) => key::put_f64(buf, *f, dir),
        Value::Numeric(d) => put_decimal(buf, d, dir),
        Value::Text(s) => {
            // char(n) compares without trailing blanks.
            let s = if matches!(ty, SqlType::Char(_)) {
                s.trim_end_matches(' ')
            } else {
                s
            };
            key::put_str(buf, s, dir)
        }
        Value::Bytes(b) => key::put_bytes(buf, b, dir),
        Value::Date(d) => key::put_i64(buf, i64::from(d.num_days_from_ce_compat()), dir),
        Value::Time(t) => key::put_i64(
            buf,
            (*t - NaiveTime::MIN).num_microseconds().unwrap_or(0),
            dir,
        ),
        Value::Timestamp(t) => key::put_i64(buf, micros_since_epoch(t), dir),
        Value::TimestampTz(t) => key::put_i64(buf, micros_since_epoch(&t.naive_utc()), dir),
        Value::Uuid(u) => key::put_bytes(buf, &u.to_be_bytes(), dir),
        Value::Interval(_) | Value::Json(_) | Value::Array(_) => {
            return Err(Error::unsupported(format!(
                "an index key of type {}",
                ty.pg_name()
            )));
        }
    }
    Ok(())
}

/// Reads a key column of type `ty`.
pub fn get_key(d: &mut Decoder<'_>, ty: &SqlType, dir: Direction) -> Result<Value> {
    if d.null().map_err(corrupt)? {
        return Ok(Value::Null);
    }
    let c = corrupt;
    Ok(match ty {
        SqlType::Bool => Value::Bool(d.bool(dir).map_err(c)?),
        SqlType::Int2 | SqlType::Int4 | SqlType::Int8 | SqlType::Oid | SqlType::RegClass => {
            Value::Int(d.i64(dir).map_err(c)?)
        }
        SqlType::Float4 | SqlType::Float8 => Value::Float(d.f64(dir).map_err(c)?),
        SqlType::Numeric(_) => Value::Numeric(get_decimal(d, dir)?),
        SqlType::Text | SqlType::Varchar(_) | SqlType::Name | SqlType::Unknown => {
            Value::Text(d.string(dir).map_err(c)?)
        }
        SqlType::Char(n) => {
            let mut s = d.string(dir).map_err(c)?;
            let len = s.chars().count();
            if len < *n as usize {
                s.extend(std::iter::repeat_n(' ', *n as usize - len));
            }
            Value::Text(s)
        }
        SqlType::Bytea => Value::Bytes(d.bytes(dir).map_err(c)?),
        SqlType::Date => {
            let days = i32::try_from(d.i64(dir).map_err(c)?).map_err(|_| corrupt("date"))?;
            Value::Date(NaiveDate::from_num_days_from_ce_opt(days).ok_or_else(|| corrupt("date"))?)
        }
        SqlType::Time => {
            let us = d.i64(dir).map_err(c)?;
            Value::Time(NaiveTime::MIN + chrono::Duration::microseconds(us))
        }
        SqlType::Timestamp => Value::Timestamp(from_micros(d.i64(dir).map_err(c)?)?),
        SqlType::TimestampTz => Value::TimestampTz(from_micros(d.i64(dir).map_err(c)?)?.and_utc()),
        SqlType::Uuid => {
            let b = d.bytes(dir).map_err(c)?;
            Value::Uuid(u128::from_be_bytes(
                b.try_into().map_err(|_| corrupt("uuid"))?,
            ))
        }
        other => {
            return Err(Error::unsupported(format!(
                "an index key of type {}",
                other.pg_name()
            )));
        }
    })
}

trait DaysFromCe {
    fn num_days_from_ce_compat(&self) -> i32;
}

impl DaysFromCe for NaiveDate {
    fn num_days_from_ce_compat(&self) -> i32 {
        use chrono::Datelike;
        self.num_days_from_ce()
    }
}

/// Numerics in keys: zero is one byte; other values are a sign byte, then the decimal
/// exponent and the significant digits, inverted for negatives, so that keys sort by value
/// and equal values (1.0 and 1.00) encode alike.
fn put_decimal(buf: &mut Vec<u8>, d: &Decimal, dir: Direction) {
    let start = buf.len();
    buf.push(TAG_NUMERIC);
    let n = d.normalize();
    if n.is_zero() {
        buf.push(0x80);
    } else {
        let digits = n.mantissa().unsigned_abs().to_string();
        // value = 0.d1d2d3... * 10^exponent
        let exponent = digits.len() as i64 - i64::from(n.scale());
        let digits = digits.trim_end_matches('0');
        let body_start = buf.len() + 1;
        buf.push(if n.is_sign_negative() { 0x7f } else { 0x81 });
        key::put_i64(buf, exponent, Direction::Asc);
        key::put_bytes(buf, digits.as_bytes(), Direction::Asc);
        if n.is_sign_negative() {
            buf[body_start..].iter_mut().for_each(|b| *b = !*b);
        }
    }
    if dir == Direction::Desc {
        buf[start..].iter_mut().for_each(|b| *b = !*b);
    }
}

fn get_decimal(d: &mut Decoder<'_>, dir: Direction) -> Result<Decimal> {
    let mask = if dir == Direction::Desc { 0xff } else { 0 };
    let rest = d.remaining();
    let tag = rest
        .first()
        .map(|b| b ^ mask)
        .ok_or_else(|| corrupt("numeric"))?;
    if tag != TAG_NUMERIC {
        return Err(corrupt("numeric tag"));
    }
    let sign = rest
        .get(1)
        .map(|b| b ^ mask)
        .ok_or_else(|| corrupt("numeric"))?;
    if sign == 0x80 {
        *d = Decoder::new(&rest[2..]);
        return Ok(Decimal::ZERO);
    }
    let negative = sign == 0x7f;
    let body_mask = if negative { mask ^ 0xff } else { mask };
    let body: Vec<u8> = rest[2..].iter().map(|b| b ^ body_mask).collect();
    let mut inner = Decoder::new(&body);
    let exponent = inner.i64(Direction::Asc).map_err(corrupt)?;
    let digits = inner.bytes(Direction::Asc).map_err(corrupt)?;
    let used = body.len() - inner.remaining().len();
    *d = Decoder::new(&rest[2 + used..]);
    let digits = String::from_utf8(digits).map_err(corrupt)?;
    let mantissa: i128 = digits.parse().map_err(corrupt)?;
    let scale = digits.len() as i64 - exponent;
    let mut v = if scale >= 0 {
        Decimal::try_from_i128_with_scale(mantissa, scale as u32).map_err(corrupt)?
    } else {
        let m = mantissa * 10i128.pow((-scale) as u32);
        Decimal::try_from_i128_with_scale(m, 0).map_err(corrupt)?
    };
    if negative {
        v.set_sign_negative(true);
    }
    Ok(v)
}

fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn get_varint(b: &[u8], pos: &mut usize) -> Result<u64> {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let byte = *b.get(*pos).ok_or_else(|| corrupt("truncated varint"))?;
        *pos += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Ok(v);
        }
        shift += 7;
        if shift > 63 {
            return Err(corrupt("varint too long"));
        }
    }
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn take<'b>(b: &'b [u8], pos: &mut usize, n: usize) -> Result<&'b [u8]> {
    let s = b
        .get(*pos..*pos + n)
        .ok_or_else(|| corrupt("truncated value"))?;
    *pos += n;
    Ok(s)
}

/// Appends one non-NULL value in the row encoding.
fn put_value(buf: &mut Vec<u8>, v: &Value, ty: &SqlType) -> Result<()> {
    match v {
        Value::Null => return Err(corrupt("NULL inside a row value")),
        Value::Bool(b) => buf.push(u8::from(*b)),
        Value::Int(i) => put_varint(buf, zigzag(*i)),
        Value::Float(f) => buf.extend_from_slice(&f.to_bits().to_le_bytes()),
        Value::Numeric(d) => buf.extend_from_slice(&d.serialize()),
        Value::Text(s) => {
            put_varint(buf, s.len() as u64);
            buf.extend_from_slice(s.as_bytes());
        }
        Value::Bytes(b) => {
            put_varint(buf, b.len() as u64);
            buf.extend_from_slice(b);
        }
        Value::Date(d) => put_varint(buf, zigzag(i64::from(d.num_days_from_ce_compat()))),
        Value::Time(t) => put_varint(
            buf,
            zigzag((*t - NaiveTime::MIN).num_microseconds().unwrap_or(0)),
        ),
        Value::Timestamp(t) => put_varint(buf, zigzag(micros_since_epoch(t))),
        Value::TimestampTz(t) => put_varint(buf, zigzag(micros_since_epoch(&t.naive_utc()))),
        Value::Interval(i) => {
            put_varint(buf, zigzag(i.months.into()));
            put_varint(buf, zigzag(i.days.into()));
            put_varint(buf, zigzag(i.micros));
        }
        Value::Uuid(u) => buf.extend_from_slice(&u.to_be_bytes()),
        Value::Json(j) => {
            let s = j.to_string();
            put_varint(buf, s.len() as u64);
            buf.extend_from_slice(s.as_bytes());
        }
        Value::Array(items) => {
            let elem = ty.element().cloned().unwrap_or(SqlType::Text);
            put_varint(buf, items.len() as u64);
            for item in items {
                if item.is_null() {
                    buf.push(0);
                } else {
                    buf.push(1);
                    put_value(buf, item, &elem)?;
                }
            }
        }
    }
    Ok(())
}

fn get_value(b: &[u8], pos: &mut usize, ty: &SqlType) -> Result<Value> {
    Ok(match ty {
        SqlType::Bool => Value::Bool(take(b, pos, 1)?[0] != 0),
        SqlType::Int2 | SqlType::Int4 | SqlType::Int8 | SqlType::Oid | SqlType::RegClass => {
            Value::Int(unzigzag(get_varint(b, pos)?))
        }
        SqlType::Float4 | SqlType::Float8 => Value::Float(f64::from_bits(u64::from_le_bytes(
            take(b, pos, 8)?.try_into().map_err(corrupt)?,
        ))),
        SqlType::Numeric(_) => Value::Numeric(Decimal::deserialize(
            take(b, pos, 16)?.try_into().map_err(corrupt)?,
        )),
        SqlType::Text
        | SqlType::Varchar(_)
        | SqlType::Char(_)
        | SqlType::Name
        | SqlType::Unknown => {
            let n = get_varint(b, pos)? as usize;
            Value::Text(String::from_utf8(take(b, pos, n)?.to_vec()).map_err(corrupt)?)
        }
        SqlType::Bytea => {
            let n = get_varint(b, pos)? as usize;
            Value::Bytes(take(b, pos, n)?.to_vec())
        }
        SqlType::Date => {
            let days = i32::try_from(unzigzag(get_varint(b, pos)?)).map_err(corrupt)?;
            Value::Date(NaiveDate::from_num_days_from_ce_opt(days).ok_or_else(|| corrupt("date"))?)
        }
        SqlType::Time => Value::Time(
            NaiveTime::MIN + chrono::Duration::microseconds(unzigzag(get_varint(b, pos)?)),
        ),
        SqlType::Timestamp => Value::Timestamp(from_micros(unzigzag(get_varint(b, pos)?))?),
        SqlType::TimestampTz => {
            Value::TimestampTz(from_micros(unzigzag(get_varint(b, pos)?))?.and_utc())
        }
        SqlType::Interval => Value::Interval(Interval {
            months: unzigzag(get_varint(b, pos)?) as i32,
            days: unzigzag(get_varint(b, pos)?) as i32,
            micros: unzigzag(get_varint(b, pos)?),
        }),
        SqlType::Uuid => Value::Uuid(u128::from_be_bytes(
            take(b, pos, 16)?.try_into().map_err(corrupt)?,
        )),
        SqlType::Json | SqlType::Jsonb => {
            let n = get_varint(b, pos)? as usize;
            Value::Json(Box::new(
                serde_json::from_slice(take(b, pos, n)?).map_err(corrupt)?,
            ))
        }
        SqlType::Int2Vector | SqlType::OidVector => {
            return Err(corrupt("catalog vector types are not stored"));
        }
        SqlType::Array(elem) => {
            let n = get_varint(b, pos)? as usize;
            let mut items = Vec::with_capacity(n.min(1 << 16));
            for _ in 0..n {
                if take(b, pos, 1)?[0] == 0 {
                    items.push(Value::Null);
                } else {
                    items.push(get_value(b, pos, elem)?);
                }
            }
            Value::Array(items)
        }
    })
}

/// Encodes the non-key columns of a row: `(column id, type, value)` for each.
/// `explicit_null` says whether a NULL must be written rather than left out.
pub fn encode_row<'a>(
    cols: impl IntoIterator<Item = (u32, &'a SqlType, &'a Value, bool)>,
) -> Result<Vec<u8>> {
    let mut buf = vec![ROW_FORMAT_V1];
    for (id, ty, v, explicit_null) in cols {
        if v.is_null() {
            if explicit_null {
                put_varint(&mut buf, (u64::from(id) << 1) | 1);
            }
            continue;
        }
        put_varint(&mut buf, u64::from(id) << 1);
        put_value(&mut buf, v, ty)?;
    }
    Ok(buf)
}

/// Decodes a row value, calling `type_of(column id)` to learn each column's type (dropped
/// columns keep their type in the descriptor, so every id ever used has one) and `put`
/// with each value.
pub fn decode_row(
    bytes: &[u8],
    mut type_of: impl FnMut(u32) -> Option<SqlType>,
    mut put: impl FnMut(u32, Value),
) -> Result<()> {
    match bytes.first() {
        Some(&ROW_FORMAT_V1) => {}
        Some(v) => return Err(corrupt(format!("unknown row format {v}"))),
        None => return Err(corrupt("empty row value")),
    }
    let mut pos = 1;
    while pos < bytes.len() {
        let tagged = get_varint(bytes, &mut pos)?;
        let id = u32::try_from(tagged >> 1).map_err(corrupt)?;
        match type_of(id) {
            Some(_) if tagged & 1 == 1 => put(id, Value::Null),
            Some(ty) => put(id, get_value(bytes, &mut pos, &ty)?),
            None => return Err(corrupt(format!("unknown column id {id}"))),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_of(v: &Value, ty: &SqlType, dir: Direction) -> Vec<u8> {
        let mut b = Vec::new();
        put_key(&mut b, v, ty, dir, Nulls::Last).unwrap();
        b
    }

    #[test]
    fn numeric_keys_sort_by_value_and_round_trip() {
        let vals = [
            "-1000", "-12.5", "-1", "-0.001", "0", "0.001", "0.5", "1", "1.5", "10", "12.34",
            "1000",
        ];
        let ty = SqlType::Numeric(None);
        for dir in [Direction::Asc, Direction::Desc] {
            let keys: Vec<Vec<u8>> = vals
                .iter()
                .map(|s| key_of(&Value::Numeric(s.parse().unwrap()), &ty, dir))
                .collect();
            for (i, k) in keys.iter().enumerate() {
                let back = get_key(&mut Decoder::new(k), &ty, dir).unwrap();
                assert_eq!(
                    back,
                    Value::Numeric(vals[i].parse().unwrap()),
                    "{}",
                    vals[i]
                );
                if i > 0 {
                    let ordered = if dir == Direction::Asc {
                        keys[i - 1] < *k
                    } else {
                        keys[i - 1] > *k
                    };
                    assert!(ordered, "{} vs {}", vals[i - 1], vals[i]);
                }
            }
        }
        assert_eq!(
            key_of(&Value::Numeric("1.0".parse().unwrap()), &ty, Direction::Asc),
            key_of(
                &Value::Numeric("1.00".parse().unwrap()),
                &ty,
                Direction::Asc
            )
        );
    }

    #[test]
    fn explicit_nulls_override_defaults_of_added_columns() {
        let t = SqlType::Text;
        let v = Value::Null;
        let bytes = encode_row([(3, &t, &v, true), (4, &t, &v, false)]).unwrap();
        // The reader starts from the column defaults ("fill" values) of added columns.
        let mut got = [Value::Text("dflt".into()), Value::Text("dflt".into())];
        decode_row(
            &bytes,
            |_| Some(SqlType::Text),
            |id, v| got[id as usize - 3] = v,
        )
        .unwrap();
        assert_eq!(got, [Value::Null, Value::Text("dflt".into())]);
    }

    #[test]
    fn rows_round_trip_by_column_id() {
        let types = [
            SqlType::Int4,
            SqlType::Text,
            SqlType::Float8,
            SqlType::Array(Box::new(SqlType::Int8)),
            SqlType::Numeric(None),
            SqlType::Timestamp,
        ];
        let values = [
            Value::Int(-7),
            Value::Text("héllo".into()),
            Value::Null,
            Value::Array(vec![Value::Int(1), Value::Null]),
            Value::Numeric("-3.25".parse().unwrap()),
            Value::Timestamp(crate::datetime::parse_timestamp("2024-01-02 03:04:05.678").unwrap()),
        ];
        let bytes =
            encode_row((0..6).map(|i| (i as u32 + 10, &types[i], &values[i], false))).unwrap();
        let mut got = vec![Value::Null; 6];
        decode_row(
            &bytes,
            |id| types.get(id as usize - 10).cloned(),
            |id, v| got[id as usize - 10] = v,
        )
        .unwrap();
        assert_eq!(got, values);
        assert!(
            decode_row(
                &bytes[..bytes.len() - 3],
                |id| types.get(id as usize - 10).cloned(),
                |_, _| {}
            )
            .is_err()
        );
    }

    #[test]
    fn text_keys_for_char_ignore_trailing_blanks() {
        let ty = SqlType::Char(5);
        assert_eq!(
            key_of(&Value::Text("ab   ".into()), &ty, Direction::Asc),
            key_of(&Value::Text("ab".into()), &ty, Direction::Asc)
        );
    }
}
