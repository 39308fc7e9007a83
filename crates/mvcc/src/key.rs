//! Framing of user keys in the Mvcc keyspace.
//!
//! ```text
//!  escape(user_key) ++ 0x00 0x01 ++ !commit_ts (8 bytes, big-endian)
//! ```
//!
//! Escaping (see [`codec::key::put_escaped`]) keeps user keys in order and makes every
//! framed key prefix-free, so all versions of a key are contiguous and sort between the
//! key's neighbours; the inverted timestamp puts the newest version first. Locks are stored
//! under the bare user key in their own keyspace.

use std::ops::Bound;

use base::Timestamp;
use storage::Keyspace;

use crate::Span;
use crate::error::{Error, Result};

/// Returns the framed key of one version.
pub fn encode(user_key: &[u8], ts: Timestamp) -> Vec<u8> {
    let mut k = prefix(user_key);
    k.extend_from_slice(&(!ts.get()).to_be_bytes());
    k
}

/// Returns the common prefix of every version of a key; it sorts before all of them.
pub fn prefix(user_key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(user_key.len() + 10);
    codec::key::put_escaped(&mut k, user_key);
    k
}

/// Returns the bounds, in keyspace `ks`, of the records of the user keys in `span`:
/// versions are framed (see the module documentation), while locks and the newest-version
/// index live under the bare user key.
pub fn keyspace_bounds(ks: Keyspace, span: &Span) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
    let frame = |k: &[u8]| match ks {
        Keyspace::Mvcc => prefix(k),
        _ => k.to_vec(),
    };
    let end = if span.end.is_empty() {
        Bound::Unbounded
    } else {
        Bound::Excluded(frame(&span.end))
    };
    (Bound::Included(frame(&span.start)), end)
}

/// Splits a framed key into its escaped prefix and its timestamp, without unescaping.
pub fn split(framed: &[u8]) -> Result<(&[u8], Timestamp)> {
    if framed.len() < 10 {
        return Err(corrupt(framed, "framed key shorter than its timestamp"));
    }
    let (prefix, ts) = framed.split_at(framed.len() - 8);
    let ts = u64::from_be_bytes(ts.try_into().expect("split_at left exactly 8 bytes"));
    Ok((prefix, Timestamp::new(!ts)))
}

/// Recovers the user key from an escaped prefix.
pub fn user_key(prefix: &[u8]) -> Result<Vec<u8>> {
    match codec::key::get_escaped(prefix) {
        Ok((k, used)) if used == prefix.len() => Ok(k),
        Ok(_) => Err(corrupt(prefix, "trailing bytes after the escaped key")),
        Err(e) => Err(corrupt(prefix, &e.to_string())),
    }
}

/// Decodes a framed key into the user key and the version's timestamp.
pub fn decode(framed: &[u8]) -> Result<(Vec<u8>, Timestamp)> {
    let (prefix, ts) = split(framed)?;
    Ok((user_key(prefix)?, ts))
}

fn corrupt(k: &[u8], detail: &str) -> Error {
    Error::Corrupt {
        key: k.to_vec(),
        detail: detail.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::ops::RangeBounds;

    proptest! {
        #[test]
        fn framing_round_trips_and_orders(a: Vec<u8>, b: Vec<u8>, ta: u64, tb: u64) {
            let (ea, eb) = (encode(&a, Timestamp::new(ta)), encode(&b, Timestamp::new(tb)));
            prop_assert_eq!(decode(&ea).unwrap(), (a.clone(), Timestamp::new(ta)));
            // Keys ascend; versions of one key descend by timestamp.
            prop_assert_eq!(ea.cmp(&eb), a.cmp(&b).then(tb.cmp(&ta)));
            prop_assert!(prefix(&a) < ea);
        }
    }

    proptest! {
        #[test]
        fn keyspace_bounds_hold_exactly_the_span(k: Vec<u8>, a: Vec<u8>, b: Vec<u8>, ts: u64) {
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            let span = Span::new(lo, hi);
            let in_bounds = |ks, stored: &Vec<u8>| {
                let (start, end) = keyspace_bounds(ks, &span);
                (start.as_ref(), end.as_ref()).contains(stored)
            };
            let version = encode(&k, Timestamp::new(ts));
            prop_assert_eq!(in_bounds(Keyspace::Mvcc, &version), span.contains(&k));
            prop_assert_eq!(in_bounds(Keyspace::Locks, &k), span.contains(&k));
            let open = Span::new(span.start.clone(), Vec::new());
            let (start, end) = keyspace_bounds(Keyspace::Mvcc, &open);
            prop_assert_eq!((start.as_ref(), end.as_ref()).contains(&version), open.contains(&k));
        }
    }

    #[test]
    fn short_keys_are_corrupt() {
        assert!(matches!(decode(b"abc"), Err(Error::Corrupt { .. })));
    }
}
