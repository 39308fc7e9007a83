//! The write buffer: a transaction's puts and deletes, held in memory until commit.

use std::collections::BTreeMap;
use std::ops::Bound;

use mvcc::{Mutation, Span};

/// Key/value pairs, as scans return them.
type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// A buffered change to one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Write {
    Put(Vec<u8>),
    Delete,
}

/// Buffered writes, with an undo log while savepoints exist.
#[derive(Default)]
pub(crate) struct WriteBuffer {
    map: BTreeMap<Vec<u8>, Write>,
    /// Previous state of each key changed since the oldest live savepoint.
    undo: Vec<(Vec<u8>, Option<Write>)>,
    savepoints: usize,
    bytes: usize,
}

impl WriteBuffer {
    pub(crate) fn get(&self, key: &[u8]) -> Option<&Write> {
        self.map.get(key)
    }

    pub(crate) fn set(&mut self, key: Vec<u8>, w: Write) {
        self.bytes += key.len() + if let Write::Put(v) = &w { v.len() } else { 0 };
        let old = self.map.insert(key.clone(), w);
        if self.savepoints > 0 {
            self.undo.push((key, old));
        }
    }

    /// Returns the size of everything buffered so far (an upper bound after rollbacks).
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Marks a point to roll back to; returns its position in the undo log.
    pub(crate) fn savepoint(&mut self) -> usize {
        self.savepoints += 1;
        self.undo.len()
    }

    /// Undoes every change made since the savepoint at `pos`; the savepoint stays.
    pub(crate) fn rollback_to(&mut self, pos: usize) {
        while self.undo.len() > pos {
            let (key, old) = self.undo.pop().expect("length checked above");
            match old {
                Some(w) => self.map.insert(key, w),
                None => self.map.remove(&key),
            };
        }
    }

    /// Forgets a savepoint (and its undo entries once none is left).
    pub(crate) fn release(&mut self) {
        self.savepoints = self.savepoints.saturating_sub(1);
        if self.savepoints == 0 {
            self.undo.clear();
        }
    }

    /// Returns the buffered writes as mutations.
    pub(crate) fn mutations(&self) -> Vec<Mutation> {
        self.map
            .iter()
            .map(|(k, w)| match w {
                Write::Put(v) => Mutation::Put {
                    key: k.clone(),
                    value: v.clone(),
                },
                Write::Delete => Mutation::Delete { key: k.clone() },
            })
            .collect()
    }

    /// Merges the buffered writes in `covered` into scan results from storage (sorted in
    /// the scan's direction) and cuts the result to `limit`. Returns the pairs and, if the
    /// cut removed pairs, the last key kept.
    pub(crate) fn merge(
        &self,
        pairs: Pairs,
        covered: &Span,
        reverse: bool,
        limit: usize,
    ) -> (Pairs, Option<Vec<u8>>) {
        let end = if covered.end.is_empty() {
            Bound::Unbounded
        } else {
            Bound::Excluded(covered.end.as_slice())
        };
        let valid = covered.end.is_empty() || covered.start < covered.end;
        let mut own = valid
            .then(|| {
                self.map
                    .range::<[u8], _>((Bound::Included(covered.start.as_slice()), end))
            })
            .into_iter()
            .flatten()
            .peekable();
        if own.peek().is_none() {
            return (pairs, None);
        }
        let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = pairs.into_iter().collect();
        for (k, w) in own {
            match w {
                Write::Put(v) => merged.insert(k.clone(), v.clone()),
                Write::Delete => merged.remove(k),
            };
        }
        let mut out: Vec<_> = if reverse {
            merged.into_iter().rev().collect()
        } else {
            merged.into_iter().collect()
        };
        if out.len() > limit {
            out.truncate(limit);
            let last = out.last().map(|(k, _)| k.clone());
            return (out, last);
        }
        (out, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(k: &str, v: &str) -> (Vec<u8>, Vec<u8>) {
        (k.as_bytes().to_vec(), v.as_bytes().to_vec())
    }

    #[test]
    fn savepoints_undo_changes() {
        let mut b = WriteBuffer::default();
        b.set(b"a".to_vec(), Write::Put(b"1".to_vec()));
        let sp = b.savepoint();
        b.set(b"a".to_vec(), Write::Put(b"2".to_vec()));
        b.set(b"b".to_vec(), Write::Delete);
        b.rollback_to(sp);
        assert_eq!(b.get(b"a"), Some(&Write::Put(b"1".to_vec())));
        assert_eq!(b.get(b"b"), None);
        b.release();
        b.set(b"c".to_vec(), Write::Delete);
        assert!(b.undo.is_empty(), "no undo log without savepoints");
    }

    #[test]
    fn merge_applies_puts_and_deletes_within_the_covered_span() {
        let mut b = WriteBuffer::default();
        b.set(b"b".to_vec(), Write::Delete);
        b.set(b"bb".to_vec(), Write::Put(b"new".to_vec()));
        b.set(b"z".to_vec(), Write::Put(b"outside".to_vec()));
        let stored = vec![kv("a", "1"), kv("b", "1"), kv("c", "1")];
        let (out, cut) = b.merge(stored.clone(), &Span::new("a", "d"), false, 10);
        assert_eq!(out, vec![kv("a", "1"), kv("bb", "new"), kv("c", "1")]);
        assert_eq!(cut, None);
        let (out, cut) = b.merge(stored, &Span::new("a", "d"), false, 2);
        assert_eq!(out, vec![kv("a", "1"), kv("bb", "new")]);
        assert_eq!(cut, Some(b"bb".to_vec()));
    }
}
