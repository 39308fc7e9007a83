//! Latches: short in-memory locks that keep conflicting commands on one range apart.
//!
//! A write command holds latches on every key it writes from before it reads the engine
//! until its batch is durable. Latches are taken in key order, so two commands never wait
//! for each other in a cycle. Readers do not take latches; they wait for any latch on what
//! they read to be released. A key is in the table only while a command holds or awaits
//! its latch.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};

use mvcc::Span;
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

type Table = BTreeMap<Vec<u8>, Arc<AsyncMutex<()>>>;

/// The latch table of one range.
#[derive(Clone, Default)]
pub struct Latches {
    table: Arc<Mutex<Table>>,
}

/// Latches held by one command; released on drop.
pub struct LatchGuard {
    table: Arc<Mutex<Table>>,
    keys: Vec<Vec<u8>>,
    guards: Vec<OwnedMutexGuard<()>>,
}

impl LatchGuard {
    /// Returns true if this guard holds the latch on `key`.
    pub fn holds(&self, key: &[u8]) -> bool {
        self.keys
            .binary_search_by(|k| k.as_slice().cmp(key))
            .is_ok()
    }
}

impl Drop for LatchGuard {
    fn drop(&mut self) {
        self.guards.clear();
        let mut table = lock(&self.table);
        for k in &self.keys {
            if table.get(k).is_some_and(|m| Arc::strong_count(m) == 1) {
                table.remove(k);
            }
        }
    }
}

fn lock(table: &Mutex<Table>) -> MutexGuard<'_, Table> {
    table.lock().unwrap_or_else(|e| e.into_inner())
}

impl Latches {
    /// Returns an empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Acquires the latches on `keys`, waiting for current holders.
    pub async fn acquire(&self, mut keys: Vec<Vec<u8>>) -> LatchGuard {
        keys.sort();
        keys.dedup();
        let mut guards = Vec::with_capacity(keys.len());
        for k in &keys {
            let m = lock(&self.table).entry(k.clone()).or_default().clone();
            guards.push(m.lock_owned().await);
        }
        LatchGuard {
            table: self.table.clone(),
            keys,
            guards,
        }
    }

    /// Waits until no command holds a latch on any of `keys`.
    pub async fn wait_keys(&self, keys: &[Vec<u8>]) {
        for k in keys {
            let m = lock(&self.table).get(k).cloned();
            if let Some(m) = m {
                self.wait_for(k, m).await;
            }
        }
    }

    /// Waits until no command holds a latch on a key in `span`.
    pub async fn wait_span(&self, span: &Span) {
        let held: Vec<_> = {
            let table = lock(&self.table);
            range(&table, span)
                .map(|(k, m)| (k.clone(), m.clone()))
                .collect()
        };
        for (k, m) in held {
            self.wait_for(&k, m).await;
        }
    }

    /// Waits for the latch `m` on `k` to be free, then removes it from the table if
    /// nobody else holds or awaits it: a holder that let go while this waiter still had
    /// the latch in hand left it there (it removes only latches nobody else has).
    async fn wait_for(&self, k: &[u8], m: Arc<AsyncMutex<()>>) {
        drop(m.lock().await);
        drop(m);
        let mut table = lock(&self.table);
        if table.get(k).is_some_and(|m| Arc::strong_count(m) == 1) {
            table.remove(k);
        }
    }

    /// Returns a key in `keys` or `spans` whose latch is held (or awaited) by a command
    /// other than `own`, if any.
    pub fn find_foreign<'a>(
        &self,
        keys: impl IntoIterator<Item = &'a [u8]>,
        spans: impl IntoIterator<Item = &'a Span>,
        own: &LatchGuard,
    ) -> Option<Vec<u8>> {
        let table = lock(&self.table);
        for k in keys {
            if table.contains_key(k) && !own.holds(k) {
                return Some(k.to_vec());
            }
        }
        for span in spans {
            if let Some((k, _)) = range(&table, span).find(|(k, _)| !own.holds(k)) {
                return Some(k.clone());
            }
        }
        None
    }

    /// Returns the number of keys in the table.
    pub fn len(&self) -> usize {
        lock(&self.table).len()
    }

    /// Returns true if no latch is held or awaited.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn range<'t>(
    table: &'t Table,
    span: &Span,
) -> impl Iterator<Item = (&'t Vec<u8>, &'t Arc<AsyncMutex<()>>)> {
    let end = if span.end.is_empty() {
        Bound::Unbounded
    } else {
        Bound::Excluded(span.end.as_slice())
    };
    let start = Bound::Included(span.start.as_slice());
    let valid = span.end.is_empty() || span.start < span.end;
    valid
        .then(|| table.range::<[u8], _>((start, end)))
        .into_iter()
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn keys(ks: &[&str]) -> Vec<Vec<u8>> {
        ks.iter().map(|k| k.as_bytes().to_vec()).collect()
    }

    #[tokio::test]
    async fn latches_exclude_and_are_released() {
        let l = Latches::new();
        let g = l.acquire(keys(&["b", "a", "b"])).await;
        assert!(g.holds(b"a") && g.holds(b"b") && !g.holds(b"c"));
        assert_eq!(l.len(), 2);
        let l2 = l.clone();
        let waiter = tokio::spawn(async move {
            let _g = l2.acquire(keys(&["b", "c"])).await;
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "the second command waits for b");
        let other = l.acquire(keys(&["x"])).await;
        assert_eq!(l.find_foreign([&b"x"[..]], [], &g), Some(b"x".to_vec()));
        assert_eq!(
            l.find_foreign([&b"a"[..]], [], &g),
            None,
            "own latches are not foreign"
        );
        assert_eq!(
            l.find_foreign([], [&Span::new("w", "y")], &g),
            Some(b"x".to_vec())
        );
        drop(other);
        drop(g);
        waiter.await.unwrap();
        assert!(l.is_empty(), "released latches leave the table");
    }

    #[tokio::test]
    async fn readers_wait_for_latches_in_their_span() {
        let l = Latches::new();
        let g = l.acquire(keys(&["m"])).await;
        let l2 = l.clone();
        let reader = tokio::spawn(async move { l2.wait_span(&Span::new("a", "z")).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!reader.is_finished());
        l.wait_span(&Span::new("n", "")).await;
        l.wait_keys(&keys(&["a", "n"])).await;
        drop(g);
        reader.await.unwrap();
        assert!(
            l.is_empty(),
            "a latch released while a reader waited on it leaves the table"
        );
        // Waiting on a key and a span at once, then a new holder: still no leftovers.
        let g = l.acquire(keys(&["k"])).await;
        let (l2, l3) = (l.clone(), l.clone());
        let a = tokio::spawn(async move { l2.wait_keys(&keys(&["k"])).await });
        let b = tokio::spawn(async move { l3.wait_span(&Span::new("j", "l")).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(g);
        a.await.unwrap();
        b.await.unwrap();
        assert_eq!(
            l.find_foreign([&b"k"[..]], [], &l.acquire(vec![]).await),
            None
        );
        assert!(l.is_empty());
    }
}
