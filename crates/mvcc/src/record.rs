//! The persisted records of MVCC: versions and locks, and the mutations that create them.
//!
//! Both records start with a format byte. Version 1:
//!
//! ```text
//!  Version: [1] [kind: 1 Put | 2 Delete | 3 Lock | 4 Rollback] [start_ts: u64 BE] [value...]
//!  Lock:    [1] [kind: 1 Put | 2 Delete | 3 Lock | 4 Pessimistic] [start_ts: u64 BE]
//!           [for_update_ts: u64 BE] [ttl_ms: u64 BE] [primary_len: u32 BE] [primary]
//!           [value...]
//! ```
//!
//! The value is present only for `Put`. A change to either layout bumps the format byte and
//! keeps decoding the old one; the fixtures in the tests below pin the bytes of version 1.
//!
//! The newest-version index (keyspace `latest`, keyed by the user key) holds one
//! [`Latest`] record per key that has versions:
//!
//! ```text
//!  Latest:  [1] [data: 0 none | 1 Put | 2 Delete] [last_ts: u64 BE] [data_ts: u64 BE, if data]
//! ```

use base::Timestamp;

use crate::error::{Error, Result};

const FORMAT_V1: u8 = 1;

/// Returns the error for a damaged record stored under `key`.
fn corrupt(key: &[u8], detail: &str) -> Error {
    Error::Corrupt {
        key: key.to_vec(),
        detail: detail.into(),
    }
}

/// Checks the format byte that starts every record (`what` names the record kind).
fn check_format(key: &[u8], bytes: &[u8], what: &str) -> Result<()> {
    match bytes.first() {
        Some(&FORMAT_V1) => Ok(()),
        Some(&v) => Err(corrupt(key, &format!("unknown {what} record format {v}"))),
        None => Err(corrupt(key, &format!("empty {what} record"))),
    }
}

/// What a committed version records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteKind {
    /// A new value.
    Put,
    /// A deletion (a tombstone).
    Delete,
    /// The key was locked (read for update) by a committed transaction but not changed.
    Lock,
    /// The transaction that started at `start_ts` was rolled back; guards against a late
    /// prewrite. Stored at `commit_ts == start_ts`.
    Rollback,
}

impl WriteKind {
    /// Returns true for versions that change the key's value.
    pub fn is_data(self) -> bool {
        matches!(self, WriteKind::Put | WriteKind::Delete)
    }
}

/// A committed version (or rollback marker) of one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version {
    pub kind: WriteKind,
    /// Start timestamp of the transaction that wrote it.
    pub start_ts: Timestamp,
    /// The value, for `Put`.
    pub value: Vec<u8>,
}

impl Version {
    /// Encodes the record.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(10 + self.value.len());
        out.push(FORMAT_V1);
        out.push(match self.kind {
            WriteKind::Put => 1,
            WriteKind::Delete => 2,
            WriteKind::Lock => 3,
            WriteKind::Rollback => 4,
        });
        out.extend_from_slice(&self.start_ts.get().to_be_bytes());
        if self.kind == WriteKind::Put {
            out.extend_from_slice(&self.value);
        }
        out
    }

    /// Decodes a record stored under `key` (used in error messages).
    pub fn decode(key: &[u8], bytes: &[u8]) -> Result<Version> {
        check_format(key, bytes, "version")?;
        let corrupt = |detail: &str| corrupt(key, detail);
        if bytes.len() < 10 {
            return Err(corrupt("truncated version record"));
        }
        let kind = match bytes[1] {
            1 => WriteKind::Put,
            2 => WriteKind::Delete,
            3 => WriteKind::Lock,
            4 => WriteKind::Rollback,
            k => return Err(corrupt(&format!("unknown version kind {k}"))),
        };
        let start_ts = Timestamp::new(read_u64(&bytes[2..10]));
        Ok(Version {
            kind,
            start_ts,
            value: bytes[10..].to_vec(),
        })
    }
}

/// A key's entry in the newest-version index: enough to answer a read at or above the
/// newest data version, and to tell that nothing was committed after a timestamp, with point
/// lookups only. Kept in the same write batch as every version written or collected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Latest {
    /// The commit timestamp of the newest record of any kind (an upper bound: garbage
    /// collection may remove that record without lowering it).
    pub last_ts: Timestamp,
    /// The newest data version (`Put` or `Delete`) and its commit timestamp; `None` when the
    /// key has no data version (only lock or rollback records, or all collected).
    pub data: Option<(Timestamp, WriteKind)>,
}

impl Latest {
    /// Returns the entry after a version of kind `kind` is written at `ts`.
    pub fn with(old: Option<Latest>, ts: Timestamp, kind: WriteKind) -> Latest {
        let last_ts = old.map_or(ts, |o| o.last_ts.max(ts));
        let old_data = old.and_then(|o| o.data);
        let data = match old_data {
            Some((d, _)) if kind.is_data() && ts >= d => Some((ts, kind)),
            None if kind.is_data() => Some((ts, kind)),
            keep => keep,
        };
        Latest { last_ts, data }
    }

    /// Returns true if no record was committed at or after `ts`.
    pub fn nothing_since(this: Option<Latest>, ts: Timestamp) -> bool {
        this.is_none_or(|l| l.last_ts < ts)
    }

    /// Returns true if no data version was committed after `ts`.
    pub fn no_data_after(this: Option<Latest>, ts: Timestamp) -> bool {
        this.and_then(|l| l.data).is_none_or(|(d, _)| d <= ts)
    }

    /// Encodes the record.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(18);
        out.push(FORMAT_V1);
        out.push(match self.data {
            None => 0,
            Some((_, WriteKind::Put)) => 1,
            Some((_, _)) => 2,
        });
        out.extend_from_slice(&self.last_ts.get().to_be_bytes());
        if let Some((ts, _)) = self.data {
            out.extend_from_slice(&ts.get().to_be_bytes());
        }
        out
    }

    /// Decodes a record stored under `key` (used in error messages).
    pub fn decode(key: &[u8], bytes: &[u8]) -> Result<Latest> {
        check_format(key, bytes, "latest")?;
        let corrupt = |detail: &str| corrupt(key, detail);
        let want = if bytes.get(1) == Some(&0) { 10 } else { 18 };
        if bytes.len() != want {
            return Err(corrupt("latest record of the wrong length"));
        }
        let last_ts = Timestamp::new(read_u64(&bytes[2..10]));
        let data = match bytes[1] {
            0 => None,
            1 => Some((Timestamp::new(read_u64(&bytes[10..18])), WriteKind::Put)),
            2 => Some((Timestamp::new(read_u64(&bytes[10..18])), WriteKind::Delete)),
            k => return Err(corrupt(&format!("unknown latest data kind {k}"))),
        };
        Ok(Latest { last_ts, data })
    }
}

/// What a lock will become when its transaction commits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum LockKind {
    /// A prewritten put.
    Put,
    /// A prewritten delete.
    Delete,
    /// A prewritten lock without a change (SELECT ... FOR UPDATE that wrote nothing).
    Lock,
    /// A pessimistic lock taken when the transaction read the key for update; it blocks
    /// other writers but not readers, and becomes one of the others at prewrite.
    Pessimistic,
}

impl LockKind {
    /// Returns true if readers must wait for (or resolve) this lock: it may commit a new
    /// value below their read timestamp.
    pub fn blocks_readers(self) -> bool {
        matches!(self, LockKind::Put | LockKind::Delete)
    }
}

/// A transaction's lock on one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lock {
    pub kind: LockKind,
    /// The key whose lock (or commit record) decides the transaction's fate.
    pub primary: Vec<u8>,
    pub start_ts: Timestamp,
    /// For pessimistic locks: the timestamp the key was locked (and read) at; writes
    /// committed before it do not conflict. Zero if none.
    pub for_update_ts: Timestamp,
    /// Milliseconds after `start_ts` (physical time) when the lock may be rolled back by
    /// others unless its transaction has extended it.
    pub ttl_ms: u64,
    /// The value, for `Put`.
    pub value: Vec<u8>,
}

/// Returns true if a lock taken by transaction `start_ts` with a time to live of `ttl_ms`
/// (counted from the start) has expired at wall-clock time `now_ms`.
pub(crate) fn ttl_ran_out(start_ts: Timestamp, ttl_ms: u64, now_ms: u64) -> bool {
    now_ms >= start_ts.physical_ms().saturating_add(ttl_ms)
}

impl Lock {
    /// Returns the timestamp a conflict check compares committed versions against.
    pub fn conflict_ts(&self) -> Timestamp {
        self.start_ts.max(self.for_update_ts)
    }

    /// Returns true if the lock's TTL has run out at `now`.
    pub fn is_expired(&self, now: Timestamp) -> bool {
        ttl_ran_out(self.start_ts, self.ttl_ms, now.physical_ms())
    }

    /// Encodes the record.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(30 + self.primary.len() + self.value.len());
        out.push(FORMAT_V1);
        out.push(match self.kind {
            LockKind::Put => 1,
            LockKind::Delete => 2,
            LockKind::Lock => 3,
            LockKind::Pessimistic => 4,
        });
        out.extend_from_slice(&self.start_ts.get().to_be_bytes());
        out.extend_from_slice(&self.for_update_ts.get().to_be_bytes());
        out.extend_from_slice(&self.ttl_ms.to_be_bytes());
        let primary_len = u32::try_from(self.primary.len()).expect("keys are far below 4 GiB");
        out.extend_from_slice(&primary_len.to_be_bytes());
        out.extend_from_slice(&self.primary);
        if self.kind == LockKind::Put {
            out.extend_from_slice(&self.value);
        }
        out
    }

    /// Decodes a lock stored under `key` (used in error messages).
    pub fn decode(key: &[u8], bytes: &[u8]) -> Result<Lock> {
        check_format(key, bytes, "lock")?;
        let corrupt = |detail: &str| corrupt(key, detail);
        if bytes.len() < 30 {
            return Err(corrupt("truncated lock record"));
        }
        let kind = match bytes[1] {
            1 => LockKind::Put,
            2 => LockKind::Delete,
            3 => LockKind::Lock,
            4 => LockKind::Pessimistic,
            k => return Err(corrupt(&format!("unknown lock kind {k}"))),
        };
        let primary_len = u32::from_be_bytes(bytes[26..30].try_into().expect("4 bytes")) as usize;
        let Some(primary) = bytes.get(30..30 + primary_len) else {
            return Err(corrupt("truncated lock record"));
        };
        Ok(Lock {
            kind,
            start_ts: Timestamp::new(read_u64(&bytes[2..10])),
            for_update_ts: Timestamp::new(read_u64(&bytes[10..18])),
            ttl_ms: read_u64(&bytes[18..26]),
            primary: primary.to_vec(),
            value: bytes[30 + primary_len..].to_vec(),
        })
    }
}

fn read_u64(b: &[u8]) -> u64 {
    u64::from_be_bytes(b.try_into().expect("callers pass exactly 8 bytes"))
}

/// One change a transaction makes to one key.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Mutation {
    Put {
        key: Vec<u8>,
        value: Vec<u8>,
    },
    Delete {
        key: Vec<u8>,
    },
    /// Lock the key without changing it, so that the commit conflicts with writers.
    Lock {
        key: Vec<u8>,
    },
}

impl Mutation {
    /// Returns the key the mutation changes.
    pub fn key(&self) -> &[u8] {
        match self {
            Mutation::Put { key, .. } | Mutation::Delete { key } | Mutation::Lock { key } => key,
        }
    }

    /// Checks the key and value against the user limits.
    pub fn validate(&self) -> Result<()> {
        let key = self.key();
        if key.len() > base::MAX_KEY_LEN {
            return Err(Error::KeyTooLarge {
                len: key.len(),
                max: base::MAX_KEY_LEN,
            });
        }
        if let Mutation::Put { value, .. } = self
            && value.len() > base::MAX_VALUE_LEN
        {
            return Err(Error::ValueTooLarge {
                len: value.len(),
                max: base::MAX_VALUE_LEN,
            });
        }
        Ok(())
    }

    pub(crate) fn lock_kind(&self) -> LockKind {
        match self {
            Mutation::Put { .. } => LockKind::Put,
            Mutation::Delete { .. } => LockKind::Delete,
            Mutation::Lock { .. } => LockKind::Lock,
        }
    }

    pub(crate) fn into_version(self, start_ts: Timestamp) -> Version {
        match self {
            Mutation::Put { value, .. } => Version {
                kind: WriteKind::Put,
                start_ts,
                value,
            },
            Mutation::Delete { .. } => Version {
                kind: WriteKind::Delete,
                start_ts,
                value: vec![],
            },
            Mutation::Lock { .. } => Version {
                kind: WriteKind::Lock,
                start_ts,
                value: vec![],
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes written by format 1; they must keep decoding to the same records.
    const VERSION_PUT_V1: &[u8] = b"\x01\x01\x00\x00\x00\x00\x00\x00\x00\x2a\x68\x69";
    const LOCK_PUT_V1: &[u8] = b"\x01\x01\x00\x00\x00\x00\x00\x00\x00\x07\x00\x00\x00\x00\x00\x00\x00\x09\x00\x00\x00\x00\x00\x00\x0b\xb8\x00\x00\x00\x01\x70\x76";

    const LATEST_PUT_V1: &[u8] =
        b"\x01\x01\x00\x00\x00\x00\x00\x00\x00\x09\x00\x00\x00\x00\x00\x00\x00\x07";

    #[test]
    fn latest_fixture_decodes_and_updates() {
        let l = Latest::decode(b"k", LATEST_PUT_V1).unwrap();
        let want = Latest {
            last_ts: Timestamp::new(9),
            data: Some((Timestamp::new(7), WriteKind::Put)),
        };
        assert_eq!(l, want);
        assert_eq!(l.encode(), LATEST_PUT_V1);
        let t = Timestamp::new;
        // A lock record raises only the last timestamp; an older rollback changes nothing
        // but stays covered; a newer delete becomes the data version.
        let l2 = Latest::with(Some(l), t(12), WriteKind::Lock);
        assert_eq!(l2.last_ts, t(12));
        assert_eq!(l2.data, l.data);
        assert_eq!(Latest::with(Some(l2), t(3), WriteKind::Rollback), l2);
        let l3 = Latest::with(Some(l2), t(15), WriteKind::Delete);
        assert_eq!(l3.data, Some((t(15), WriteKind::Delete)));
        let only_rollback = Latest::with(None, t(4), WriteKind::Rollback);
        assert_eq!(only_rollback.data, None);
        for rec in [l3, only_rollback] {
            assert_eq!(Latest::decode(b"k", &rec.encode()).unwrap(), rec);
        }
        assert!(Latest::nothing_since(Some(l3), t(16)));
        assert!(!Latest::nothing_since(Some(l3), t(15)));
        assert!(Latest::no_data_after(Some(only_rollback), t(0)));
        assert!(Latest::no_data_after(None, t(0)));
        assert!(Latest::decode(b"k", b"\x01\x01\x00").is_err());
        assert!(
            Latest::decode(
                b"k",
                b"\x01\x05\x00\x00\x00\x00\x00\x00\x00\x09\x00\x00\x00\x00\x00\x00\x00\x07"
            )
            .is_err()
        );
    }

    #[test]
    fn version_fixture_decodes() {
        let v = Version::decode(b"k", VERSION_PUT_V1).unwrap();
        assert_eq!(
            v,
            Version {
                kind: WriteKind::Put,
                start_ts: Timestamp::new(42),
                value: b"hi".to_vec()
            }
        );
        assert_eq!(v.encode(), VERSION_PUT_V1);
    }

    #[test]
    fn lock_fixture_decodes() {
        let l = Lock::decode(b"k", LOCK_PUT_V1).unwrap();
        let want = Lock {
            kind: LockKind::Put,
            primary: b"p".to_vec(),
            start_ts: Timestamp::new(7),
            for_update_ts: Timestamp::new(9),
            ttl_ms: 3000,
            value: b"v".to_vec(),
        };
        assert_eq!(l, want);
        assert_eq!(want.encode(), LOCK_PUT_V1);
    }

    #[test]
    fn damaged_records_are_reported() {
        assert!(matches!(
            Version::decode(b"k", b""),
            Err(Error::Corrupt { .. })
        ));
        assert!(matches!(
            Version::decode(b"k", b"\x02\x01"),
            Err(Error::Corrupt { .. })
        ));
        assert!(matches!(
            Version::decode(b"k", b"\x01\x09\0\0\0\0\0\0\0\0"),
            Err(Error::Corrupt { .. })
        ));
        assert!(matches!(
            Lock::decode(b"k", &LOCK_PUT_V1[..20]),
            Err(Error::Corrupt { .. })
        ));
        let mut bad_len = LOCK_PUT_V1.to_vec();
        bad_len[29] = 200;
        let err = Lock::decode(b"k", &bad_len).unwrap_err();
        assert!(err.to_string().contains("truncated lock record"), "{err}");
    }

    #[test]
    fn lock_expiry_uses_physical_time() {
        let l = Lock {
            kind: LockKind::Put,
            primary: vec![],
            start_ts: Timestamp::from_parts(1000, 5),
            for_update_ts: Timestamp::ZERO,
            ttl_ms: 3000,
            value: vec![],
        };
        assert!(!l.is_expired(Timestamp::from_parts(3999, 0)));
        assert!(l.is_expired(Timestamp::from_parts(4000, 0)));
    }
}
