//! The layout of Tessera's key space.
//!
//! One sorted key space holds everything; its first byte says who owns a key:
//!
//! ```text
//! 0x01 /local/<range>/<kind>/...        range-local: Raft state, applied index; never
//!                                       replicated as user data
//! 0x02 /sys/<kind>/...                  system: range descriptors, nodes, liveness,
//!                                       settings, the timestamp oracle's high-water mark
//! 0x10 /t/<tenant>/<table>/<index>/<key columns...>
//!                                       rows and index entries, versioned by MVCC
//! ```
//!
//! Identifiers are encoded with [`key::put_u64`](crate::key::put_u64), so `/t/1/52/1` sorts
//! before `/t/1/52/2` and a table's rows are one contiguous span. Keys in this layout are
//! user keys: MVCC adds its own framing (escaping and a timestamp) below them.
//!
//! A change to this layout is a format change: bump [`KEY_LAYOUT_VERSION`], which the
//! storage engine records in every store it creates.

use base::{IndexId, TableId, TenantId};

use crate::key::{self, Decoder, Direction};

/// Version of the key-space layout and key encodings written by this code.
pub const KEY_LAYOUT_VERSION: u32 = 1;

/// First byte of range-local keys.
pub const LOCAL: u8 = 0x01;
/// First byte of system keys.
pub const SYSTEM: u8 = 0x02;
/// First byte of tenant data.
pub const TENANT: u8 = 0x10;

/// Kinds of system keys, under `/sys/<kind>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum SystemKind {
    /// The timestamp oracle's persisted high-water mark.
    TimestampOracle = 1,
    /// Range descriptors, keyed by their end key.
    RangeDescriptor = 2,
    /// Node records.
    Node = 3,
    /// Node liveness records.
    Liveness = 4,
    /// Cluster settings.
    Setting = 5,
    /// Tenant records.
    Tenant = 6,
}

impl SystemKind {
    fn name(raw: u64) -> Option<&'static str> {
        Some(match raw {
            1 => "tso",
            2 => "range",
            3 => "node",
            4 => "liveness",
            5 => "setting",
            6 => "tenant",
            _ => return None,
        })
    }
}

/// Returns the prefix of all system keys of one kind.
pub fn system_prefix(kind: SystemKind) -> Vec<u8> {
    let mut k = vec![SYSTEM];
    key::put_u64(&mut k, kind as u64, Direction::Asc);
    k
}

/// Returns a system key: the kind's prefix followed by `suffix`.
pub fn system_key(kind: SystemKind, suffix: &[u8]) -> Vec<u8> {
    let mut k = system_prefix(kind);
    k.extend_from_slice(suffix);
    k
}

/// Returns the prefix of every key of one tenant.
pub fn tenant_prefix(tenant: TenantId) -> Vec<u8> {
    let mut k = Vec::with_capacity(16);
    k.push(TENANT);
    key::put_u64(&mut k, tenant.0, Direction::Asc);
    k
}

/// Returns the prefix of every key of one table.
pub fn table_prefix(tenant: TenantId, table: TableId) -> Vec<u8> {
    let mut k = tenant_prefix(tenant);
    key::put_u64(&mut k, table.0, Direction::Asc);
    k
}

/// Returns the prefix of every entry of one index; key columns follow it.
pub fn index_prefix(tenant: TenantId, table: TableId, index: IndexId) -> Vec<u8> {
    let mut k = table_prefix(tenant, table);
    key::put_u64(&mut k, index.0, Direction::Asc);
    k
}

/// Renders a key for humans: `/t/1/52/1/42/"abc"`. Columns are decoded by their tags, as
/// if ascending; bytes that do not decode are shown in hex. Never fails.
pub fn pretty(k: &[u8]) -> String {
    let mut out = String::new();
    let Some((&first, rest)) = k.split_first() else {
        return "/Min".to_string();
    };
    let mut d = Decoder::new(rest);
    let ids = match first {
        LOCAL => {
            out.push_str("/local");
            1
        }
        SYSTEM => {
            out.push_str("/sys");
            let mut probe = d.clone();
            if let Ok(kind) = probe.u64(Direction::Asc) {
                d = probe;
                match SystemKind::name(kind) {
                    Some(name) => out.push_str(&format!("/{name}")),
                    None => out.push_str(&format!("/{kind}")),
                }
            }
            0
        }
        TENANT => {
            out.push_str("/t");
            3
        }
        _ => {
            return format!("/raw/{}", k.escape_ascii());
        }
    };
    for _ in 0..ids {
        let mut probe = d.clone();
        match probe.u64(Direction::Asc) {
            Ok(id) => {
                out.push_str(&format!("/{id}"));
                d = probe;
            }
            Err(_) => break,
        }
    }
    while !d.is_empty() {
        let Some(t) = d.peek() else { break };
        let before = d.remaining();
        let part = match t {
            key::tag::NULL_FIRST | key::tag::NULL_LAST => d.null().map(|_| "NULL".to_string()),
            key::tag::FALSE | key::tag::TRUE => d.bool(Direction::Asc).map(|b| b.to_string()),
            key::tag::BYTES => d.bytes(Direction::Asc).map(|b| match String::from_utf8(b) {
                Ok(s) => format!("{s:?}"),
                Err(e) => format!("x'{}'", hex(e.as_bytes())),
            }),
            key::tag::FLOAT => d.f64(Direction::Asc).map(|f| f.to_string()),
            key::tag::INT_NEG_8..=key::tag::INT_POS_8 => {
                d.i64(Direction::Asc).map(|i| i.to_string())
            }
            _ => Err(crate::Error::UnexpectedTag {
                expected: "a key column",
                found: t,
            }),
        };
        match part {
            Ok(p) => out.push_str(&format!("/{p}")),
            Err(_) => {
                out.push_str(&format!("/x'{}'", hex(before)));
                break;
            }
        }
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_are_ordered_and_disjoint() {
        let sys = system_key(SystemKind::Node, b"");
        let t = index_prefix(TenantId(1), TableId(0), IndexId(0));
        assert!(vec![LOCAL, 0xFF] < sys);
        assert!(key::prefix_end(&system_prefix(SystemKind::Tenant)).unwrap() < t);
    }

    #[test]
    fn tables_are_contiguous_spans() {
        let t = TenantId(7);
        let a = index_prefix(t, TableId(52), IndexId(1));
        let b = index_prefix(t, TableId(52), IndexId(2));
        let next_table = table_prefix(t, TableId(53));
        let table_end = key::prefix_end(&table_prefix(t, TableId(52))).unwrap();
        assert!(a < b && b < table_end && table_end <= next_table);
        assert!(table_prefix(t, TableId(255)) < table_prefix(t, TableId(256)));
    }

    #[test]
    fn pretty_prints_layout_and_columns() {
        let mut k = index_prefix(TenantId(1), TableId(52), IndexId(1));
        key::put_i64(&mut k, -42, Direction::Asc);
        key::put_str(&mut k, "abc", Direction::Asc);
        key::put_null(&mut k, key::Nulls::Last);
        assert_eq!(pretty(&k), r#"/t/1/52/1/-42/"abc"/NULL"#);
        assert_eq!(
            pretty(&system_key(SystemKind::TimestampOracle, b"")),
            "/sys/tso"
        );
        assert_eq!(pretty(b""), "/Min");
        assert_eq!(pretty(&[0x10, 0x81]), "/t/x'81'");
        assert_eq!(pretty(&[0x42, 0x43, 0xff]), "/raw/BC\\xff");
    }
}
