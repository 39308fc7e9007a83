//! Pessimistic locks at the key-value API: a lock request waits at the range for a live
//! holder's lock and takes it once released; a key with a version newer than the asked
//! timestamp is locked at that version rather than failing; a holder whose time to live ran
//! out is not waited for.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use base::{SystemClock, Timestamp};
use kv::tso::{LocalTso, TimestampOracle};
use kv::{KvService, LocalKv, LocalKvConfig, Request, Response};
use mvcc::commands::TxnMeta;

fn store() -> (Arc<LocalKv<common::E>>, Arc<dyn TimestampOracle>) {
    let tso: Arc<dyn TimestampOracle> =
        Arc::new(LocalTso::open(common::engine(), Arc::new(SystemClock), 1_000).unwrap());
    let kv = LocalKv::new(
        common::engine(),
        tso.clone(),
        Arc::new(SystemClock),
        LocalKvConfig::default(),
    );
    (Arc::new(kv), tso)
}

fn txn(start_ts: Timestamp, ttl_ms: u64) -> TxnMeta {
    TxnMeta {
        start_ts,
        primary: b"k".to_vec(),
        lock_ttl_ms: ttl_ms,
    }
}

fn lock(txn: &TxnMeta, for_update_ts: Timestamp, wait_ms: u64) -> Request {
    Request::PessimisticLock {
        keys: vec![b"k".to_vec()],
        txn: txn.clone(),
        for_update_ts,
        wait_ms,
    }
}

fn locked(r: kv::Result<Response>) -> (Timestamp, Vec<Option<Vec<u8>>>) {
    match r {
        Ok(Response::Locked { ts, values }) => (ts, values),
        other => panic!("expected the lock, got {other:?}"),
    }
}

fn held_by(r: kv::Result<Response>) -> Timestamp {
    match r {
        Err(kv::Error::Mvcc(mvcc::Error::KeyIsLocked(l))) => l.start_ts,
        other => panic!("expected a lock conflict, got {other:?}"),
    }
}

/// Sends a lock request that must meet another's lock; returns the holder and how long the
/// answer took.
async fn held_by_after(kv: &LocalKv<common::E>, req: Request) -> (Timestamp, Duration) {
    let asked = Instant::now();
    let holder = held_by(kv.send(req).await);
    (holder, asked.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_request_waits_at_the_range_and_takes_the_lock_once_released() {
    let (kv, tso) = store();
    common::put(kv.as_ref(), tso.as_ref(), b"k", b"1")
        .await
        .unwrap();
    let a = txn(tso.timestamp().await.unwrap(), 60_000);
    locked(kv.send(lock(&a, a.start_ts, 0)).await);
    let b = txn(tso.timestamp().await.unwrap(), 60_000);
    let waiter = tokio::spawn({
        let kv = kv.clone();
        let req = lock(&b, b.start_ts, 30_000);
        async move {
            let r = kv.send(req).await;
            (r, Instant::now())
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!waiter.is_finished(), "the lock was not waited for");
    // The holder writes a new value and commits: the waiter locks it, at the new version.
    let commit_ts = {
        let prewrite = Request::Prewrite {
            txn: a.clone(),
            mutations: vec![mvcc::Mutation::Put {
                key: b"k".to_vec(),
                value: b"2".to_vec(),
            }],
        };
        kv.send(prewrite).await.unwrap();
        let commit_ts = tso.timestamp().await.unwrap();
        kv.send(Request::Commit {
            keys: vec![b"k".to_vec()],
            start_ts: a.start_ts,
            commit_ts,
        })
        .await
        .unwrap();
        commit_ts
    };
    let released = Instant::now();
    let (r, at) = waiter.await.unwrap();
    let (ts, values) = locked(r);
    assert_eq!(values, vec![Some(b"2".to_vec())]);
    assert_eq!(ts, commit_ts, "locked at the holder's version");
    // Woken by the release, not by the end of its 30 s wait.
    assert!(at.duration_since(released) < Duration::from_secs(10));
    // And it holds the lock now: a third transaction waits for it in turn.
    let c = txn(tso.timestamp().await.unwrap(), 60_000);
    assert_eq!(held_by(kv.send(lock(&c, c.start_ts, 50)).await), b.start_ts);
}

#[tokio::test]
async fn a_key_with_a_newer_version_is_locked_at_that_version() {
    let (kv, tso) = store();
    let old = tso.timestamp().await.unwrap();
    let committed = common::put(kv.as_ref(), tso.as_ref(), b"k", b"new")
        .await
        .unwrap();
    assert!(committed > old);
    let a = txn(old, 60_000);
    let (ts, values) = locked(kv.send(lock(&a, old, 0)).await);
    assert_eq!((ts, values), (committed, vec![Some(b"new".to_vec())]));
    // A key with nothing newer is locked at the asked timestamp.
    let b = txn(tso.timestamp().await.unwrap(), 60_000);
    let other = Request::PessimisticLock {
        keys: vec![b"other".to_vec()],
        txn: b.clone(),
        for_update_ts: b.start_ts,
        wait_ms: 0,
    };
    assert_eq!(locked(kv.send(other).await).0, b.start_ts);
}

#[tokio::test]
async fn a_live_holder_is_waited_for_until_the_wait_runs_out_and_a_dead_one_not_at_all() {
    let (kv, tso) = store();
    let live = txn(tso.timestamp().await.unwrap(), 60_000);
    locked(kv.send(lock(&live, live.start_ts, 0)).await);
    let b = txn(tso.timestamp().await.unwrap(), 60_000);
    let (holder, took) = held_by_after(&kv, lock(&b, b.start_ts, 200)).await;
    assert_eq!(holder, live.start_ts);
    assert!(took >= Duration::from_millis(200), "did not wait");
    kv.send(Request::Rollback {
        keys: vec![b"k".to_vec()],
        start_ts: live.start_ts,
    })
    .await
    .unwrap();

    // A holder with a 1 ms time to live: by now its time ran out, so a lock request that
    // may wait 30 s answers at once, for the transaction to resolve the holder.
    let dead = txn(tso.timestamp().await.unwrap(), 1);
    locked(kv.send(lock(&dead, dead.start_ts, 0)).await);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let c = txn(tso.timestamp().await.unwrap(), 60_000);
    let (holder, took) = held_by_after(&kv, lock(&c, c.start_ts, 30_000)).await;
    assert_eq!(holder, dead.start_ts);
    assert!(took < Duration::from_secs(10), "waited for a dead holder");
}
