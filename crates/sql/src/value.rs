//! SQL values.
//!
//! A [`Value`] carries no type of its own beyond its variant: the static type of the
//! expression that produced it (a [`SqlType`]) says whether an `Int` is an int2 or an int8,
//! or a `Text` a varchar(10). Comparisons and hashing follow SQL: NULL compares as unknown
//! (callers decide), but for grouping and DISTINCT two NULLs are the same group, -0.0 equals
//! 0.0 and numerics compare by value, not by scale.

use std::cmp::Ordering;
use std::hash::{Hash, Hasher};

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use rust_decimal::Decimal;

use crate::types::SqlType;

/// A calendar interval, as PostgreSQL keeps it: months, days and microseconds are separate
/// because their lengths vary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Interval {
    pub months: i32,
    pub days: i32,
    pub micros: i64,
}

impl Interval {
    /// Returns a comparable length: PostgreSQL compares intervals as if a month were 30
    /// days and a day 24 hours.
    pub fn sort_key(&self) -> i128 {
        (i128::from(self.months) * 30 + i128::from(self.days)) * 86_400_000_000
            + i128::from(self.micros)
    }
}

/// A SQL value.
#[derive(Clone, Debug)]
pub enum Value {
    Null,
    Bool(bool),
    /// int2, int4, int8, oid.
    Int(i64),
    /// float4, float8.
    Float(f64),
    Numeric(Decimal),
    /// text, varchar, char, name.
    Text(String),
    Bytes(Vec<u8>),
    Date(NaiveDate),
    Time(NaiveTime),
    Timestamp(NaiveDateTime),
    TimestampTz(DateTime<Utc>),
    Interval(Interval),
    Uuid(u128),
    Json(Box<serde_json::Value>),
    Array(Vec<Value>),
}

impl Value {
    /// Returns true for NULL.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// Returns the boolean, treating NULL as `None`.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// Returns the type a value of this variant most naturally has.
    pub fn natural_type(&self) -> SqlType {
        match self {
            Value::Null => SqlType::Unknown,
            Value::Bool(_) => SqlType::Bool,
            Value::Int(_) => SqlType::Int8,
            Value::Float(_) => SqlType::Float8,
            Value::Numeric(_) => SqlType::Numeric(None),
            Value::Text(_) => SqlType::Text,
            Value::Bytes(_) => SqlType::Bytea,
            Value::Date(_) => SqlType::Date,
            Value::Time(_) => SqlType::Time,
            Value::Timestamp(_) => SqlType::Timestamp,
            Value::TimestampTz(_) => SqlType::TimestampTz,
            Value::Interval(_) => SqlType::Interval,
            Value::Uuid(_) => SqlType::Uuid,
            Value::Json(_) => SqlType::Jsonb,
            Value::Array(v) => SqlType::Array(Box::new(
                v.iter()
                    .find(|x| !x.is_null())
                    .map_or(SqlType::Text, Value::natural_type),
            )),
        }
    }

    /// Compares two non-NULL values of compatible types; `None` if either is NULL or the
    /// types cannot be compared.
    pub fn sql_cmp(&self, other: &Value) -> Option<Ordering> {
        use Value::*;
        Some(match (self, other) {
            (Null, _) | (_, Null) => return None,
            (Bool(a), Bool(b)) => a.cmp(b),
            (Int(a), Int(b)) => a.cmp(b),
            (Float(a), Float(b)) => float_cmp(*a, *b),
            (Int(a), Float(b)) => float_cmp(*a as f64, *b),
            (Float(a), Int(b)) => float_cmp(*a, *b as f64),
            (Numeric(a), Numeric(b)) => a.cmp(b),
            (Int(a), Numeric(b)) => Decimal::from(*a).cmp(b),
            (Numeric(a), Int(b)) => a.cmp(&Decimal::from(*b)),
            (Numeric(a), Float(b)) => float_cmp(decimal_to_f64(a), *b),
            (Float(a), Numeric(b)) => float_cmp(*a, decimal_to_f64(b)),
            (Text(a), Text(b)) => a.as_bytes().cmp(b.as_bytes()),
            (Bytes(a), Bytes(b)) => a.cmp(b),
            (Date(a), Date(b)) => a.cmp(b),
            (Time(a), Time(b)) => a.cmp(b),
            (Timestamp(a), Timestamp(b)) => a.cmp(b),
            (TimestampTz(a), TimestampTz(b)) => a.cmp(b),
            (Date(a), Timestamp(b)) => a.and_time(NaiveTime::MIN).cmp(b),
            (Timestamp(a), Date(b)) => a.cmp(&b.and_time(NaiveTime::MIN)),
            (Timestamp(a), TimestampTz(b)) => a.and_utc().cmp(b),
            (TimestampTz(a), Timestamp(b)) => a.cmp(&b.and_utc()),
            (Interval(a), Interval(b)) => a.sort_key().cmp(&b.sort_key()),
            (Uuid(a), Uuid(b)) => a.cmp(b),
            (Json(a), Json(b)) => json_cmp(a, b),
            (Array(a), Array(b)) => {
                for (x, y) in a.iter().zip(b.iter()) {
                    let o = match (x.is_null(), y.is_null()) {
                        (true, true) => Ordering::Equal,
                        (true, false) => Ordering::Greater,
                        (false, true) => Ordering::Less,
                        _ => x.sql_cmp(y)?,
                    };
                    if o != Ordering::Equal {
                        return Some(o);
                    }
                }
                a.len().cmp(&b.len())
            }
            _ => return None,
        })
    }

    /// Orders values for ORDER BY and sorting: NULLs last, then by value; values that
    /// cannot be compared are ordered by variant so that sorting is total.
    pub fn sort_cmp(&self, other: &Value) -> Ordering {
        match (self.is_null(), other.is_null()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            _ => self
                .sql_cmp(other)
                .unwrap_or_else(|| self.rank().cmp(&other.rank())),
        }
    }

    fn rank(&self) -> u8 {
        match self {
            Value::Null => 0,
            Value::Bool(_) => 1,
            Value::Int(_) | Value::Float(_) | Value::Numeric(_) => 2,
            Value::Text(_) => 3,
            Value::Bytes(_) => 4,
            Value::Date(_) | Value::Timestamp(_) | Value::TimestampTz(_) => 5,
            Value::Time(_) => 6,
            Value::Interval(_) => 7,
            Value::Uuid(_) => 8,
            Value::Json(_) => 9,
            Value::Array(_) => 10,
        }
    }

    /// Returns true if two values are "not distinct": equal, or both NULL.
    pub fn not_distinct(&self, other: &Value) -> bool {
        match (self.is_null(), other.is_null()) {
            (true, true) => true,
            (false, false) => self.sql_cmp(other) == Some(Ordering::Equal),
            _ => false,
        }
    }
}

fn float_cmp(a: f64, b: f64) -> Ordering {
    // PostgreSQL: NaN equals NaN and sorts above every other value.
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        _ => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
    }
}

/// Converts a decimal to the nearest float.
pub fn decimal_to_f64(d: &Decimal) -> f64 {
    use rust_decimal::prelude::ToPrimitive;
    d.to_f64().unwrap_or(f64::NAN)
}

fn json_cmp(a: &serde_json::Value, b: &serde_json::Value) -> Ordering {
    crate::json::to_text(a).cmp(&crate::json::to_text(b))
}

/// Grouping equality: NULL equals NULL, numbers by value.
impl PartialEq for Value {
    fn eq(&self, other: &Value) -> bool {
        self.not_distinct(other)
    }
}

impl Eq for Value {}

impl Hash for Value {
    fn hash<H: Hasher>(&self, state: &mut H) {
        match self {
            Value::Null => 0u8.hash(state),
            Value::Bool(b) => b.hash(state),
            // Integers, floats and numerics that are equal must hash alike.
            Value::Int(i) => hash_number(*i as f64, state),
            Value::Float(f) => hash_number(*f, state),
            Value::Numeric(d) => hash_number(decimal_to_f64(d), state),
            Value::Text(s) => s.hash(state),
            Value::Bytes(b) => b.hash(state),
            Value::Date(d) => d
                .and_time(NaiveTime::MIN)
                .and_utc()
                .timestamp_micros()
                .hash(state),
            Value::Timestamp(t) => t.and_utc().timestamp_micros().hash(state),
            Value::TimestampTz(t) => t.timestamp_micros().hash(state),
            Value::Time(t) => t.hash(state),
            Value::Interval(i) => i.sort_key().hash(state),
            Value::Uuid(u) => u.hash(state),
            Value::Json(j) => crate::json::to_text(j).hash(state),
            Value::Array(a) => a.hash(state),
        }
    }
}

fn hash_number<H: Hasher>(f: f64, state: &mut H) {
    let f = if f == 0.0 { 0.0 } else { f };
    if f.is_nan() {
        u64::MAX.hash(state)
    } else {
        f.to_bits().hash(state)
    }
}

/// A row of values.
pub type Row = Vec<Value>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn sql_comparison_is_unknown_for_null() {
        assert_eq!(Value::Null.sql_cmp(&Value::Int(1)), None);
        assert_eq!(
            Value::Int(1).sql_cmp(&Value::Float(1.5)),
            Some(Ordering::Less)
        );
        assert_eq!(
            Value::Numeric(Decimal::new(150, 2)).sql_cmp(&Value::Int(1)),
            Some(Ordering::Greater)
        );
    }

    #[test]
    fn grouping_treats_equal_numbers_and_nulls_as_one() {
        let set: HashSet<Value> = [
            Value::Null,
            Value::Null,
            Value::Float(0.0),
            Value::Float(-0.0),
            Value::Numeric(Decimal::new(100, 2)),
            Value::Numeric(Decimal::new(1, 0)),
        ]
        .into_iter()
        .collect();
        assert_eq!(set.len(), 3);
    }

    #[test]
    fn sorting_puts_nulls_last_and_nan_high() {
        let mut v = [
            Value::Float(f64::NAN),
            Value::Null,
            Value::Float(1.0),
            Value::Float(-1.0),
        ];
        v.sort_by(Value::sort_cmp);
        assert!(matches!(v[0], Value::Float(x) if x == -1.0));
        assert!(matches!(v[2], Value::Float(x) if x.is_nan()));
        assert!(v[3].is_null());
    }
}
