//! The newest timestamps a replica served reads at, so a one-phase commit can commit at a
//! timestamp its transaction reserved instead of asking the oracle.
//!
//! A one-phase commit must take a commit timestamp that
//! - is above every timestamp at which a reader already read one of its keys (else that
//!   reader's snapshot would change under it);
//! - is above every record the keys already have (versions and rollback markers);
//! - orders it after every transaction acknowledged before it began (strictness): any
//!   timestamp the oracle handed out before the commit was acknowledged will do, since a
//!   transaction beginning after the acknowledgement starts above it;
//! - is no other transaction's start or commit timestamp (a rollback marker written at a
//!   start timestamp would otherwise replace the version).
//!
//! The oracle's next timestamp satisfies all four, at the price of a call to it (an RPC
//! unless the node leads the meta range). A transaction that took its start timestamp
//! together with its successor (`TimestampOracle::timestamps(2)`) has the successor
//! reserved for its commit alone, which satisfies the last two; the replica checks the first
//! two here: reads are noted per bucket of keys (a hash) and spans in one stamp, before the
//! read waits for latches, so a one-phase commit either sees the stamp or holds the latches
//! the reader then waits on. Reads served under an earlier leadership are covered by a
//! *floor*, a timestamp from the oracle taken once per leadership.

use std::sync::Mutex;

use base::Timestamp;

/// Buckets of keys: a collision only sends a commit to the oracle.
const BUCKETS: usize = 4096;

pub(crate) struct ReadStamps {
    inner: Mutex<Inner>,
}

struct Inner {
    /// The leadership `floor` was taken under; `None` before the first.
    epoch: Option<u64>,
    /// A timestamp from the oracle taken under `epoch`: above every read served before it.
    floor: Timestamp,
    /// The newest read of any key that hashes to each bucket.
    keys: Vec<Timestamp>,
    /// The newest read of a span.
    spans: Timestamp,
}

fn bucket(key: &[u8]) -> usize {
    // FNV-1a: cheap, and good enough to spread keys over the buckets.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % BUCKETS as u64) as usize
}

impl Default for ReadStamps {
    fn default() -> Self {
        ReadStamps {
            inner: Mutex::new(Inner {
                epoch: None,
                floor: Timestamp::ZERO,
                keys: vec![Timestamp::ZERO; BUCKETS],
                spans: Timestamp::ZERO,
            }),
        }
    }
}

impl ReadStamps {
    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Notes reads of `keys` at `ts`. Call before waiting for the keys' latches.
    pub(crate) fn keys<'a>(&self, keys: impl IntoIterator<Item = &'a [u8]>, ts: Timestamp) {
        let mut s = self.inner();
        for k in keys {
            let b = &mut s.keys[bucket(k)];
            *b = (*b).max(ts);
        }
    }

    /// Notes every key and span of `reads` as read at `ts` (a read set validated up to
    /// `ts`). Call before waiting for their latches.
    pub(crate) fn read_set(&self, reads: &mvcc::commands::ReadSet, ts: Timestamp) {
        self.keys(reads.keys.iter().map(|(k, _)| k.as_slice()), ts);
        if !reads.spans.is_empty() {
            self.span(ts);
        }
    }

    /// Notes a read of a span at `ts`. Call before waiting for the span's latches.
    pub(crate) fn span(&self, ts: Timestamp) {
        let mut s = self.inner();
        s.spans = s.spans.max(ts);
    }

    /// Returns the newest read of any of `keys` (spans included) under leadership `epoch`,
    /// or `None` if no floor was taken under it yet (see [`ReadStamps::set_floor`]).
    pub(crate) fn newest<'a>(
        &self,
        epoch: u64,
        keys: impl IntoIterator<Item = &'a [u8]>,
    ) -> Option<Timestamp> {
        let s = self.inner();
        if s.epoch != Some(epoch) {
            return None;
        }
        let mut newest = s.floor.max(s.spans);
        for k in keys {
            newest = newest.max(s.keys[bucket(k)]);
        }
        Some(newest)
    }

    /// Records `floor`, a timestamp from the oracle taken once this replica became the
    /// leaseholder under `epoch`.
    pub(crate) fn set_floor(&self, epoch: u64, floor: Timestamp) {
        let mut s = self.inner();
        if s.epoch != Some(epoch) {
            s.epoch = Some(epoch);
            s.floor = floor;
        } else {
            s.floor = s.floor.max(floor);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(n: u64) -> Timestamp {
        Timestamp::new(n)
    }

    #[test]
    fn reads_raise_the_stamp_of_their_keys_and_spans_of_all() {
        let s = ReadStamps::default();
        s.keys([b"a".as_slice()], t(50));
        // No floor yet under this leadership: nothing is known.
        assert_eq!(s.newest(1, [b"a".as_slice()]), None);
        s.set_floor(1, t(10));
        assert_eq!(s.newest(1, [b"a".as_slice()]), Some(t(50)));
        // Another key (in another bucket) only sees the floor.
        let other = (0u32..)
            .map(|i| i.to_be_bytes().to_vec())
            .find(|k| bucket(k) != bucket(b"a"))
            .unwrap();
        assert_eq!(s.newest(1, [other.as_slice()]), Some(t(10)));
        // A span read covers every key.
        s.span(t(70));
        assert_eq!(s.newest(1, [other.as_slice()]), Some(t(70)));
        // Stamps never go down.
        s.keys([b"a".as_slice()], t(20));
        s.set_floor(1, t(5));
        assert_eq!(s.newest(1, [b"a".as_slice()]), Some(t(70)));
        // A new leadership needs a new floor.
        assert_eq!(s.newest(2, [b"a".as_slice()]), None);
        s.set_floor(2, t(100));
        assert_eq!(s.newest(2, [b"a".as_slice()]), Some(t(100)));
        assert_eq!(s.newest(1, [b"a".as_slice()]), None);
    }
}
