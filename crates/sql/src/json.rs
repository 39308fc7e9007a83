//! jsonb: PostgreSQL's text form and operators.
//!
//! jsonb prints objects with `", "` and `": "` separators and orders keys by length, then
//! bytewise; duplicate keys keep the last value. Values are held as `serde_json::Value`
//! with keys re-ordered on output.

use serde_json::Value as J;

use crate::error::{Error, ErrorKind, Result};

/// Parses jsonb text input.
pub fn parse(s: &str) -> Result<J> {
    serde_json::from_str(s).map_err(|e| {
        Error::new(
            ErrorKind::InvalidTextRepresentation,
            "invalid input syntax for type json",
        )
        .with_detail(e.to_string())
    })
}

/// Renders a value as jsonb text output.
pub fn to_text(v: &J) -> String {
    let mut out = String::new();
    write(v, &mut out);
    out
}

fn write(v: &J, out: &mut String) {
    match v {
        J::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_by(|a, b| a.len().cmp(&b.len()).then_with(|| a.cmp(b)));
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&serde_json::to_string(k).unwrap_or_default());
                out.push_str(": ");
                write(&map[k.as_str()], out);
            }
            out.push('}');
        }
        J::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// `->` with a key or index: the sub-value, or `None`.
pub fn get<'a>(v: &'a J, key: &KeyOrIndex) -> Option<&'a J> {
    match (v, key) {
        (J::Object(m), KeyOrIndex::Key(k)) => m.get(k),
        (J::Array(a), KeyOrIndex::Index(i)) => {
            let idx = if *i < 0 { a.len() as i64 + i } else { *i };
            usize::try_from(idx).ok().and_then(|i| a.get(i))
        }
        _ => None,
    }
}

/// `->>`: the sub-value as text (strings unquoted), or `None`.
pub fn get_text(v: &J, key: &KeyOrIndex) -> Option<String> {
    get(v, key).and_then(as_text)
}

/// Renders a json value the way `->>` does: strings without quotes, null as SQL NULL.
pub fn as_text(v: &J) -> Option<String> {
    match v {
        J::Null => None,
        J::String(s) => Some(s.clone()),
        other => Some(to_text(other)),
    }
}

/// The right operand of `->` and `->>`.
pub enum KeyOrIndex {
    Key(String),
    Index(i64),
}

/// `@>`: does `a` contain `b`?
pub fn contains(a: &J, b: &J) -> bool {
    match (a, b) {
        (J::Object(x), J::Object(y)) => y
            .iter()
            .all(|(k, vy)| x.get(k).is_some_and(|vx| contains(vx, vy))),
        (J::Array(x), J::Array(y)) => y.iter().all(|vy| x.iter().any(|vx| contains(vx, vy))),
        (J::Array(x), scalar) if !scalar.is_array() && !scalar.is_object() => {
            x.iter().any(|vx| vx == scalar)
        }
        (x, y) => x == y,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_orders_keys_like_postgres() {
        let v = parse(r#"{"bb": 1, "a": [1, "x", null], "ab": {"z": true}}"#).unwrap();
        assert_eq!(
            to_text(&v),
            r#"{"a": [1, "x", null], "ab": {"z": true}, "bb": 1}"#
        );
    }

    #[test]
    fn containment() {
        let a = parse(r#"{"a": 1, "b": [1, 2, 3], "c": {"d": "e"}}"#).unwrap();
        assert!(contains(&a, &parse(r#"{"b": [3, 1]}"#).unwrap()));
        assert!(contains(&a, &parse(r#"{"c": {}}"#).unwrap()));
        assert!(!contains(&a, &parse(r#"{"a": 2}"#).unwrap()));
    }
}
