//! Timestamps that order transactions.
//!
//! A timestamp is a `u64` made of two parts, as in TiDB's oracle:
//!
//! ```text
//!  63                                   18 17               0
//! +---------------------------------------+------------------+
//! |  physical: milliseconds since epoch   |  logical counter |
//! +---------------------------------------+------------------+
//! ```
//!
//! The physical part keeps timestamps close to wall-clock time, so that age-based policies
//! (garbage collection after a TTL, follower reads) can be expressed in seconds; the logical
//! part lets one oracle hand out 262,144 distinct timestamps per millisecond. Timestamps are
//! compared as plain integers.

use std::fmt;

/// Bits of a timestamp used by the logical counter.
const LOGICAL_BITS: u32 = 18;
const LOGICAL_MASK: u64 = (1 << LOGICAL_BITS) - 1;

/// A point in the total order of transactions.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The smallest timestamp; no transaction ever uses it.
    pub const ZERO: Timestamp = Timestamp(0);
    /// The largest timestamp; a read at `MAX` sees every committed version.
    pub const MAX: Timestamp = Timestamp(u64::MAX);

    /// Wraps a raw timestamp value.
    pub const fn new(raw: u64) -> Self {
        Timestamp(raw)
    }

    /// Builds a timestamp from milliseconds since the Unix epoch and a logical counter.
    pub const fn from_parts(physical_ms: u64, logical: u64) -> Self {
        Timestamp((physical_ms << LOGICAL_BITS) | (logical & LOGICAL_MASK))
    }

    /// Returns the raw value.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// Returns the physical part: milliseconds since the Unix epoch.
    pub const fn physical_ms(self) -> u64 {
        self.0 >> LOGICAL_BITS
    }

    /// Returns the logical part.
    pub const fn logical(self) -> u64 {
        self.0 & LOGICAL_MASK
    }

    /// Returns the next timestamp, saturating at `MAX`.
    pub const fn next(self) -> Self {
        Timestamp(self.0.saturating_add(1))
    }

    /// Returns the previous timestamp, saturating at `ZERO`.
    pub const fn prev(self) -> Self {
        Timestamp(self.0.saturating_sub(1))
    }

    /// Returns this timestamp moved back by `ms` milliseconds of physical time.
    pub const fn minus_ms(self, ms: u64) -> Self {
        Timestamp(self.0.saturating_sub(ms << LOGICAL_BITS))
    }

    /// Returns this timestamp moved forward by `ms` milliseconds of physical time.
    pub const fn plus_ms(self, ms: u64) -> Self {
        Timestamp(self.0.saturating_add(ms << LOGICAL_BITS))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl From<u64> for Timestamp {
    fn from(raw: u64) -> Self {
        Timestamp(raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_round_trip() {
        let ts = Timestamp::from_parts(1_700_000_000_000, 42);
        assert_eq!(ts.physical_ms(), 1_700_000_000_000);
        assert_eq!(ts.logical(), 42);
        assert!(ts < Timestamp::from_parts(1_700_000_000_000, 43));
        assert!(Timestamp::from_parts(1_700_000_000_000, LOGICAL_MASK) < ts.plus_ms(1));
    }

    #[test]
    fn arithmetic_saturates() {
        assert_eq!(Timestamp::MAX.next(), Timestamp::MAX);
        assert_eq!(Timestamp::ZERO.prev(), Timestamp::ZERO);
        assert_eq!(Timestamp::new(5).minus_ms(1), Timestamp::ZERO);
        assert_eq!(
            Timestamp::from_parts(10, 3).minus_ms(4),
            Timestamp::from_parts(6, 3)
        );
    }
}
