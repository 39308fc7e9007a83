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

use base::Timestamp;

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

    #[test]
    fn short_keys_are_corrupt() {
        assert!(matches!(decode(b"abc"), Err(Error::Corrupt { .. })));
    }
}
