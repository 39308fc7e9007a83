//! Text input and output of values, in PostgreSQL's formats.

use rust_decimal::Decimal;

use crate::datetime;
use crate::error::{Error, ErrorKind, Result};
use crate::json;
use crate::types::SqlType;
use crate::value::Value;

/// Renders a value as PostgreSQL's text output of type `ty`; `None` for NULL.
pub fn to_text(v: &Value, ty: &SqlType) -> Option<String> {
    Some(match v {
        Value::Null => return None,
        Value::Bool(b) => if *b { "t" } else { "f" }.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => format_float(*f, matches!(ty, SqlType::Float4)),
        Value::Numeric(d) => format_numeric(d, ty),
        Value::Text(s) => s.clone(),
        Value::Bytes(b) => {
            let mut s = String::with_capacity(2 + 2 * b.len());
            s.push_str("\\x");
            for byte in b {
                s.push_str(&format!("{byte:02x}"));
            }
            s
        }
        Value::Date(d) => datetime::format_date(d),
        Value::Time(t) => datetime::format_time(t),
        Value::Timestamp(t) => datetime::format_timestamp(t),
        Value::TimestampTz(t) => datetime::format_timestamptz(t),
        Value::Interval(i) => datetime::format_interval(i),
        Value::Uuid(u) => format_uuid(*u),
        Value::Json(j) => json::to_text(j),
        Value::Array(items) if matches!(ty, SqlType::Int2Vector | SqlType::OidVector) => items
            .iter()
            .map(|item| to_text(item, &SqlType::Int8).unwrap_or_default())
            .collect::<Vec<_>>()
            .join(" "),
        Value::Array(items) => {
            let elem = ty.element().cloned().unwrap_or(SqlType::Text);
            let parts: Vec<String> = items
                .iter()
                .map(|item| match to_text(item, &elem) {
                    None => "NULL".to_string(),
                    Some(s) => quote_array_element(&s),
                })
                .collect();
            format!("{{{}}}", parts.join(","))
        }
    })
}

fn quote_array_element(s: &str) -> String {
    let needs = s.is_empty()
        || s.eq_ignore_ascii_case("null")
        || s.chars()
            .any(|c| matches!(c, '{' | '}' | ',' | '"' | '\\') || c.is_whitespace());
    if !needs {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Formats a float the way PostgreSQL 12+ does: the shortest text that reads back as the
/// same value, in exponent form when the exponent is below -4 or at least 15 (6 for
/// float4).
pub fn format_float(f: f64, float4: bool) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.into();
    }
    let sci = if float4 {
        format!("{:e}", f as f32)
    } else {
        format!("{f:e}")
    };
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let limit = if float4 { 6 } else { 15 };
    if exp < -4 || exp >= limit {
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", exp.abs());
    }
    let neg = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let point = exp + 1; // digits before the decimal point
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if point <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-point) as usize));
        out.push_str(&digits);
    } else if point as usize >= digits.len() {
        out.push_str(&digits);
        out.extend(std::iter::repeat_n('0', point as usize - digits.len()));
    } else {
        out.push_str(&digits[..point as usize]);
        out.push('.');
        out.push_str(&digits[point as usize..]);
    }
    out
}

fn format_numeric(d: &Decimal, ty: &SqlType) -> String {
    match ty {
        SqlType::Numeric(Some((_, scale))) => {
            let mut d = *d;
            d.rescale(*scale);
            d.to_string()
        }
        _ => d.to_string(),
    }
}

fn format_uuid(u: u128) -> String {
    let h = format!("{u:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

fn invalid(ty: &SqlType, s: &str) -> Error {
    Error::new(
        ErrorKind::InvalidTextRepresentation,
        format!("invalid input syntax for type {}: \"{s}\"", ty.pg_name()),
    )
}

/// Parses text input of type `ty`.
pub fn from_text(s: &str, ty: &SqlType) -> Result<Value> {
    Ok(match ty {
        SqlType::Bool => Value::Bool(parse_bool(s).ok_or_else(|| invalid(ty, s))?),
        SqlType::Int2 | SqlType::Int4 | SqlType::Int8 | SqlType::Oid => {
            let v: i64 = s.trim().parse().map_err(|_| {
                if s.trim()
                    .chars()
                    .all(|c| c.is_ascii_digit() || c == '-' || c == '+')
                    && !s.trim().is_empty()
                {
                    Error::new(
                        ErrorKind::NumericOutOfRange,
                        format!("value \"{s}\" is out of range for type {}", ty.pg_name()),
                    )
                } else {
                    invalid(ty, s)
                }
            })?;
            crate::cast::check_int_range(v, ty)?;
            Value::Int(v)
        }
        SqlType::Float4 | SqlType::Float8 => {
            let f = parse_float(s).ok_or_else(|| invalid(ty, s))?;
            let named = matches!(
                s.trim().to_ascii_lowercase().trim_start_matches(['+', '-']),
                "inf" | "infinity" | "nan"
            );
            if !named
                && (f.is_infinite()
                    || (*ty == SqlType::Float4 && f.is_finite() && (f as f32).is_infinite()))
            {
                return Err(Error::new(
                    ErrorKind::NumericOutOfRange,
                    format!("\"{}\" is out of range for type {}", s.trim(), ty.pg_name()),
                ));
            }
            Value::Float(f)
        }
        SqlType::Numeric(_) => {
            let t = s.trim();
            let d = Decimal::from_str_exact(t)
                .or_else(|_| Decimal::from_scientific(t))
                .map_err(|_| invalid(ty, s))?;
            crate::cast::fit_numeric(d, ty)?
        }
        SqlType::Text | SqlType::Name | SqlType::Unknown => Value::Text(s.to_string()),
        SqlType::Varchar(_) | SqlType::Char(_) => {
            crate::cast::fit_string(s.to_string(), ty, false)?
        }
        SqlType::Bytea => Value::Bytes(parse_bytea(s).ok_or_else(|| {
            if s.starts_with("\\x") {
                Error::new(
                    ErrorKind::InvalidParameterValue,
                    format!("invalid hexadecimal data in bytea input: \"{s}\""),
                )
            } else {
                invalid(ty, s)
            }
        })?),
        SqlType::Date => Value::Date(datetime::parse_date(s)?),
        SqlType::Time => Value::Time(datetime::parse_time(s)?),
        SqlType::Timestamp => Value::Timestamp(datetime::parse_timestamp(s)?),
        SqlType::TimestampTz => Value::TimestampTz(datetime::parse_timestamptz(s)?),
        SqlType::Interval => Value::Interval(datetime::parse_interval(s)?),
        SqlType::Uuid => Value::Uuid(parse_uuid(s).ok_or_else(|| invalid(ty, s))?),
        SqlType::Jsonb | SqlType::Json => Value::Json(Box::new(json::parse(s)?)),
        SqlType::Array(elem) => Value::Array(parse_array(s, elem)?),
        SqlType::Int2Vector | SqlType::OidVector => {
            let elem = ty.element().expect("vectors have elements");
            Value::Array(
                s.split_ascii_whitespace()
                    .map(|x| from_text(x, elem))
                    .collect::<Result<_>>()?,
            )
        }
        SqlType::RegClass => Value::Text(s.to_string()),
    })
}

/// Parses PostgreSQL boolean input (`t`, `true`, `yes`, `on`, `1`, prefixes, any case).
pub fn parse_bool(s: &str) -> Option<bool> {
    let t = s.trim().to_ascii_lowercase();
    match t.as_str() {
        "t" | "tr" | "tru" | "true" | "y" | "ye" | "yes" | "on" | "1" => Some(true),
        "f" | "fa" | "fal" | "fals" | "false" | "n" | "no" | "of" | "off" | "0" => Some(false),
        _ => None,
    }
}

/// Parses float input, including `NaN` and `Infinity`.
pub fn parse_float(s: &str) -> Option<f64> {
    let t = s.trim();
    match t.to_ascii_lowercase().as_str() {
        "nan" => Some(f64::NAN),
        "infinity" | "inf" | "+infinity" | "+inf" => Some(f64::INFINITY),
        "-infinity" | "-inf" => Some(f64::NEG_INFINITY),
        _ => t.parse().ok(),
    }
}

fn parse_bytea(s: &str) -> Option<Vec<u8>> {
    if let Some(hex) = s.strip_prefix("\\x") {
        if hex.len() % 2 != 0 {
            return None;
        }
        return (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
            .collect();
    }
    // Escape format: backslash followed by three octal digits or another backslash.
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            if bytes.get(i + 1) == Some(&b'\\') {
                out.push(b'\\');
                i += 2;
                continue;
            }
            let oct = std::str::from_utf8(bytes.get(i + 1..i + 4)?).ok()?;
            out.push(u8::from_str_radix(oct, 8).ok()?);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

fn parse_uuid(s: &str) -> Option<u128> {
    let hex: String = s
        .trim()
        .trim_matches(['{', '}'])
        .chars()
        .filter(|c| *c != '-')
        .collect();
    if hex.len() != 32 {
        return None;
    }
    u128::from_str_radix(&hex, 16).ok()
}

/// Parses a one-dimensional array literal such as `{1,2,NULL}` or `{"a b",c}`.
pub fn parse_array(s: &str, elem: &SqlType) -> Result<Vec<Value>> {
    let bad = || {
        Error::new(
            ErrorKind::InvalidTextRepresentation,
            format!("malformed array literal: \"{s}\""),
        )
    };
    let t = s.trim();
    let inner = t
        .strip_prefix('{')
        .and_then(|r| r.strip_suffix('}'))
        .ok_or_else(bad)?;
    let mut out = Vec::new();
    if inner.trim().is_empty() {
        return Ok(out);
    }
    let mut chars = inner.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut item = String::new();
        let quoted = chars.peek() == Some(&'"');
        if quoted {
            chars.next();
            loop {
                match chars.next().ok_or_else(bad)? {
                    '\\' => item.push(chars.next().ok_or_else(bad)?),
                    '"' => break,
                    c => item.push(c),
                }
            }
            while chars.peek().is_some_and(|c| c.is_whitespace()) {
                chars.next();
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                if c == '{' || c == '}' {
                    return Err(Error::unsupported("multidimensional arrays"));
                }
                item.push(c);
                chars.next();
            }
            item = item.trim().to_string();
        }
        if !quoted && item.eq_ignore_ascii_case("null") {
            out.push(Value::Null);
        } else {
            out.push(from_text(&item, elem)?);
        }
        match chars.next() {
            None => break,
            Some(',') => continue,
            Some(_) => return Err(bad()),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_like_postgres() {
        assert_eq!(format_float(1.0, false), "1");
        assert_eq!(format_float(0.1, false), "0.1");
        assert_eq!(format_float(123456789012345.0, false), "123456789012345");
        assert_eq!(format_float(1e15, false), "1e+15");
        assert_eq!(format_float(0.0001, false), "0.0001");
        assert_eq!(format_float(0.00001, false), "1e-05");
        assert_eq!(format_float(-2.5, false), "-2.5");
        assert_eq!(format_float(1234567.0, true), "1.234567e+06");
        assert_eq!(format_float(123456.0, true), "123456");
        assert_eq!(format_float(f64::NEG_INFINITY, false), "-Infinity");
        assert_eq!(format_float(1.0 / 3.0, false), "0.3333333333333333");
    }

    #[test]
    fn arrays_round_trip() {
        let ty = SqlType::Array(Box::new(SqlType::Text));
        let v = from_text(r#"{a,"b c",NULL,"NULL","x\"y"}"#, &ty).unwrap();
        assert_eq!(to_text(&v, &ty).unwrap(), r#"{a,"b c",NULL,"NULL","x\"y"}"#);
        let ints = SqlType::Array(Box::new(SqlType::Int4));
        assert_eq!(
            to_text(&from_text("{1, 2,3}", &ints).unwrap(), &ints).unwrap(),
            "{1,2,3}"
        );
        assert!(from_text("{1,2", &ints).is_err());
    }

    #[test]
    fn scalars_parse_and_print() {
        assert_eq!(
            to_text(&from_text("yes", &SqlType::Bool).unwrap(), &SqlType::Bool).unwrap(),
            "t"
        );
        assert_eq!(
            to_text(
                &from_text("\\x01ff", &SqlType::Bytea).unwrap(),
                &SqlType::Bytea
            )
            .unwrap(),
            "\\x01ff"
        );
        let u = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11";
        assert_eq!(
            to_text(&from_text(u, &SqlType::Uuid).unwrap(), &SqlType::Uuid).unwrap(),
            u
        );
        let n = SqlType::Numeric(Some((10, 2)));
        assert_eq!(
            to_text(&from_text("3.14159", &n).unwrap(), &n).unwrap(),
            "3.14"
        );
        assert_eq!(
            from_text("abc", &SqlType::Int4).unwrap_err().kind,
            ErrorKind::InvalidTextRepresentation
        );
        assert_eq!(
            from_text("99999999999", &SqlType::Int4).unwrap_err().kind,
            ErrorKind::NumericOutOfRange
        );
    }
}
