//! Group commit under faults: a full disk, failed syncs, crashes that lose unsynced writes.

#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;

use storage::{
    Engine, Error, FaultEngine, FaultKind, FjallConfig, FjallEngine, GroupCommit, Keyspace,
    MemoryEngine, ReadView, WriteBatch,
};

fn batch(k: &str) -> WriteBatch {
    let mut b = WriteBatch::new();
    b.put(Keyspace::Mvcc, k.as_bytes(), k.as_bytes());
    b
}

fn has<R: ReadView>(r: &R, k: &str) -> bool {
    r.get(Keyspace::Mvcc, k.as_bytes()).unwrap().is_some()
}

#[test]
fn disk_full_fails_the_write_and_refuses_later_ones() {
    let engine = Arc::new(FaultEngine::new(MemoryEngine::new()));
    let gc = GroupCommit::new(engine.clone());
    for k in ["a", "b", "c"] {
        gc.commit(&batch(k)).unwrap();
    }
    engine.fail_nth_write(1, FaultKind::DiskFull);
    let err = gc.commit(&batch("d")).unwrap_err();
    assert!(matches!(err, Error::DiskFull { .. }), "{err}");
    assert!(err.to_string().contains("disk full"), "{err}");
    // Even once space is freed, the engine stays read-only until restarted.
    engine.heal();
    let err = gc.commit(&batch("e")).unwrap_err();
    assert!(matches!(err, Error::Poisoned { .. }), "{err}");
    assert!(
        err.to_string().contains("disk full"),
        "names the first failure: {err}"
    );
    // Everything acknowledged survives a crash; nothing refused appears.
    let after = engine.crash();
    assert!(["a", "b", "c"].iter().all(|k| has(&after, k)));
    assert!(!has(&after, "d") && !has(&after, "e"));
}

#[test]
fn failed_sync_fails_the_waiter_and_keeps_acknowledged_writes() {
    let engine = Arc::new(FaultEngine::new(MemoryEngine::new()));
    let gc = GroupCommit::new(engine.clone());
    gc.commit(&batch("acked")).unwrap();
    engine.fail_nth_sync(1, FaultKind::Io);
    let err = gc.commit(&batch("unlucky")).unwrap_err();
    assert!(
        matches!(err, Error::Io { .. }) || matches!(err, Error::Poisoned { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("injected I/O error"), "{err}");
    assert!(matches!(
        gc.commit(&batch("later")).unwrap_err(),
        Error::Poisoned { .. }
    ));
    let after = engine.crash();
    assert!(has(&after, "acked"));
    assert!(!has(&after, "unlucky") && !has(&after, "later"));
}

#[test]
fn crash_keeps_synced_writes_only() {
    let engine = FaultEngine::new(MemoryEngine::new());
    engine.write(&batch("synced")).unwrap();
    engine.sync().unwrap();
    engine.write(&batch("unsynced")).unwrap();
    assert!(has(&engine, "unsynced"), "visible before the crash");
    let after = engine.crash();
    assert!(has(&after, "synced"));
    assert!(!has(&after, "unsynced"));
    assert_eq!(engine.counts(), (2, 1));
}

/// An engine whose syncs wait at a gate, to make group commit observable deterministically.
struct GatedSync {
    inner: MemoryEngine,
    open: Mutex<bool>,
    opened: Condvar,
    sync_started: AtomicBool,
}

impl ReadView for GatedSync {
    fn get(&self, ks: Keyspace, key: &[u8]) -> storage::Result<Option<Vec<u8>>> {
        self.inner.get(ks, key)
    }
    fn scan(
        &self,
        ks: Keyspace,
        start: std::ops::Bound<&[u8]>,
        end: std::ops::Bound<&[u8]>,
        reverse: bool,
    ) -> storage::ScanIter<'_> {
        self.inner.scan(ks, start, end, reverse)
    }
}

impl Engine for GatedSync {
    type Snapshot = <MemoryEngine as Engine>::Snapshot;
    fn write(&self, batch: &WriteBatch) -> storage::Result<()> {
        self.inner.write(batch)
    }
    fn sync(&self) -> storage::Result<()> {
        self.sync_started.store(true, Ordering::SeqCst);
        let mut open = self.open.lock().unwrap();
        while !*open {
            open = self.opened.wait(open).unwrap();
        }
        Ok(())
    }
    fn snapshot(&self) -> Self::Snapshot {
        self.inner.snapshot()
    }
}

#[test]
fn writers_waiting_during_a_sync_share_the_next_one() {
    let engine = Arc::new(GatedSync {
        inner: MemoryEngine::new(),
        open: Mutex::new(false),
        opened: Condvar::new(),
        sync_started: AtomicBool::new(false),
    });
    let gc = Arc::new(GroupCommit::new(engine.clone()));
    let first = {
        let gc = gc.clone();
        thread::spawn(move || gc.commit(&batch("first")))
    };
    while !engine.sync_started.load(Ordering::SeqCst) {
        thread::yield_now();
    }
    let writers: Vec<_> = (0..10)
        .map(|i| {
            let gc = gc.clone();
            thread::spawn(move || gc.commit(&batch(&format!("w{i}"))))
        })
        .collect();
    while gc.stats().writes < 11 {
        thread::yield_now();
    }
    *engine.open.lock().unwrap() = true;
    engine.opened.notify_all();
    first.join().unwrap().unwrap();
    for w in writers {
        w.join().unwrap().unwrap();
    }
    let stats = gc.stats();
    assert_eq!(stats.writes, 11);
    assert_eq!(
        stats.syncs, 2,
        "ten writers that queued behind one sync share the next"
    );
}

#[test]
fn group_committed_writes_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = Arc::new(FjallEngine::open(dir.path(), &FjallConfig::for_tests()).unwrap());
        let gc = Arc::new(GroupCommit::new(engine));
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let gc = gc.clone();
                thread::spawn(move || {
                    for i in 0..25 {
                        gc.commit(&batch(&format!("t{t}-{i}"))).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(gc.stats().syncs <= 200);
    }
    let engine = FjallEngine::open(dir.path(), &FjallConfig::for_tests()).unwrap();
    for t in 0..8 {
        for i in 0..25 {
            assert!(has(&engine, &format!("t{t}-{i}")), "t{t}-{i}");
        }
    }
}

#[test]
fn async_waiters_are_woken() {
    let engine = Arc::new(MemoryEngine::new());
    let gc = GroupCommit::new(engine.clone());
    let b = batch("a");
    let fut = gc.commit_async(&b);
    // A minimal executor: the future completes once the syncer publishes the sync.
    block_on(fut).unwrap();
    assert!(has(&*engine, "a"));
}

/// Polls a future to completion on this thread, parking between polls.
fn block_on<F: std::future::Future>(fut: F) -> F::Output {
    use std::task::{Context, Poll, Wake, Waker};
    struct Unpark(thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        thread::park();
    }
}

#[test]
fn an_unsynced_write_waits_for_the_next_sync_someone_asks_for() {
    let engine = Arc::new(FaultEngine::new(MemoryEngine::new()));
    let gc = GroupCommit::new(engine.clone());
    for k in ["applied-1", "applied-2", "applied-3"] {
        gc.write_unsynced(&batch(k)).unwrap();
    }
    assert!(has(&*engine, "applied-3"), "visible at once");
    // No sync of its own: the syncer stays asleep.
    thread::sleep(std::time::Duration::from_millis(50));
    assert_eq!(gc.stats().syncs, 0, "an unsynced write started a sync");
    assert!(
        !has(&engine.crash(), "applied-1"),
        "lost by a crash until synced"
    );
    // The next durable write's sync covers every write before it.
    gc.commit(&batch("appended")).unwrap();
    assert_eq!(gc.stats().syncs, 1);
    let after = engine.crash();
    assert!(
        ["applied-1", "applied-2", "applied-3", "appended"]
            .iter()
            .all(|k| has(&after, k))
    );
    // A failed write poisons like any other.
    engine.fail_nth_write(1, FaultKind::DiskFull);
    assert!(matches!(
        gc.write_unsynced(&batch("full")).unwrap_err(),
        Error::DiskFull { .. }
    ));
    assert!(matches!(
        gc.commit(&batch("later")).unwrap_err(),
        Error::Poisoned { .. }
    ));
}

#[test]
fn a_synchronous_group_commit_syncs_in_the_callers_thread() {
    let engine = Arc::new(FaultEngine::new(MemoryEngine::new()));
    let gc = GroupCommit::synchronous(engine.clone());
    gc.write_unsynced(&batch("applied")).unwrap();
    assert_eq!(gc.stats().syncs, 0, "an unsynced write synced");
    // Durable when the call returns: no other thread is involved.
    gc.commit(&batch("a")).unwrap();
    block_on(gc.commit_async(&batch("b"))).unwrap();
    assert_eq!(gc.stats().syncs, 2);
    let after = engine.crash();
    assert!(["applied", "a", "b"].iter().all(|k| has(&after, k)));
    // A failed sync fails its writer and poisons the group, as with a syncer.
    engine.fail_nth_sync(1, FaultKind::Io);
    let err = gc.commit(&batch("unlucky")).unwrap_err();
    assert!(err.to_string().contains("injected I/O error"), "{err}");
    assert!(matches!(
        gc.commit(&batch("later")).unwrap_err(),
        Error::Poisoned { .. }
    ));
    assert!(!has(&engine.crash(), "unlucky"));
}
