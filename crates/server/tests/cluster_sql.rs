//! SQL on a three-node cluster in one process: every node accepts SQL for every table,
//! DDL run on one node is seen by the others, and a bank workload whose transfers span
//! two ranges led by different nodes keeps its total exact while the leaseholder of one
//! of them is killed and restarted. Every acknowledged transfer is present at the end.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use base::{TableId, TenantId};
use common::{connect, ranges_of_table, table_id};
use server::cluster::SqlCluster;
use storage::MemoryEngine;

type E = MemoryEngine;

const ACCOUNTS: i32 = 8;
const START_BALANCE: i64 = 100;

/// A three-node cluster where each table (ids 100 to 119) is a range of its own.
async fn start() -> SqlCluster<E> {
    start_with(txn::TxnConfig::default()).await
}

/// [`start`] with transactions configured by `txn`.
async fn start_with(txn: txn::TxnConfig) -> SqlCluster<E> {
    common::start_cluster(100..120, txn).await
}

/// Returns the range holding table `name`'s rows.
async fn range_of_table(c: &SqlCluster<E>, client: &tokio_postgres::Client, name: &str) -> u64 {
    let id = table_id(client, name).await;
    let key = codec::layout::table_prefix(TenantId::SYSTEM, TableId(id));
    c.kv()
        .ranges()
        .iter()
        .find(|r| r.desc.span.contains(&key))
        .unwrap()
        .desc
        .id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_node_serves_sql_and_ddl_is_seen_everywhere() {
    let c = start().await;
    let n1 = connect(&c.url(1).unwrap()).await.unwrap();
    let n3 = connect(&c.url(3).unwrap()).await.unwrap();
    n1.batch_execute("CREATE TABLE t (id INT PRIMARY KEY, v TEXT)")
        .await
        .unwrap();
    n3.batch_execute("INSERT INTO t VALUES (1, 'from node 3')")
        .await
        .unwrap();
    let v: String = n1
        .query_one("SELECT v FROM t WHERE id = 1", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(v, "from node 3");
    n3.batch_execute("ALTER TABLE t ADD COLUMN w INT DEFAULT 5")
        .await
        .unwrap();
    let w: i32 = n1
        .query_one("SELECT w FROM t WHERE id = 1", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(w, 5);
    // Rows inserted on different nodes with generated row ids never collide.
    n1.batch_execute("CREATE TABLE r (v INT)").await.unwrap();
    let n2 = connect(&c.url(2).unwrap()).await.unwrap();
    for i in 0..20 {
        let client = [&n1, &n2, &n3][i % 3];
        client
            .execute("INSERT INTO r VALUES ($1)", &[&(i as i32)])
            .await
            .unwrap();
    }
    let n: i64 = n2
        .query_one("SELECT count(*) FROM r", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 20);
    c.shutdown().await;
}

/// Node 1 writes without pause (so it serves statements from its cached catalog, proven
/// for a window) while node 3 creates an index on the table. No write made on the old
/// catalog may commit after the index is built: every row is found through the index.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_built_on_one_node_holds_every_row_written_on_another() {
    let c = start().await;
    let n1 = connect(&c.url(1).unwrap()).await.unwrap();
    let n3 = connect(&c.url(3).unwrap()).await.unwrap();
    n1.batch_execute("CREATE TABLE w (id INT PRIMARY KEY, v INT)")
        .await
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let insert = n1.prepare("INSERT INTO w VALUES ($1, $2)").await.unwrap();
            let mut written = 0i32;
            while !stop.load(Ordering::Relaxed) {
                // A write that overlapped the index build fails at commit; it is not
                // acknowledged and not counted.
                if n1
                    .execute(&insert, &[&written, &(written % 7)])
                    .await
                    .is_ok()
                {
                    written += 1;
                }
            }
            written
        })
    };
    tokio::time::sleep(Duration::from_millis(800)).await;
    n3.batch_execute("CREATE INDEX w_v ON w (v)").await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let written = writer.await.unwrap();
    assert!(written > 10, "too few writes: {written}");
    let plan: Vec<String> = n3
        .query("EXPLAIN SELECT count(*) FROM w WHERE v = 3", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(plan.join("\n").contains("using w_v"), "{plan:?}");
    let mut through_index = 0;
    for v in 0..7 {
        let n: i64 = n3
            .query_one("SELECT count(*) FROM w WHERE v = $1", &[&v])
            .await
            .unwrap()
            .get(0);
        through_index += n;
    }
    let all: i64 = n3
        .query_one("SELECT count(*) FROM w", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(all, i64::from(written), "acknowledged rows");
    assert_eq!(through_index, all, "rows missing from the index");
    c.shutdown().await;
}

/// One consistent view of the bank: balances and the transfers that made them.
struct Bank {
    a: Vec<i64>,
    b: Vec<i64>,
    transfers: Vec<i64>,
}

impl Bank {
    /// Checks the view: the total is exact, and every account holds exactly what the
    /// visible transfers imply (transfer `i` of a writer moves 1 from `acc_a` row
    /// `i % 8 + 1` to `acc_b` row `3i % 8 + 1`), so no transfer is seen half-done.
    fn check(&self) {
        let total: i64 = self.a.iter().sum::<i64>() + self.b.iter().sum::<i64>();
        assert_eq!(
            total,
            2 * i64::from(ACCOUNTS) * START_BALANCE,
            "a partial transfer"
        );
        let mut a = vec![START_BALANCE; ACCOUNTS as usize];
        let mut b = a.clone();
        for id in &self.transfers {
            let i = id & 0xffff_ffff;
            a[(i % 8) as usize] -= 1;
            b[((i * 3) % 8) as usize] += 1;
        }
        assert_eq!(
            (&self.a, &self.b),
            (&a, &b),
            "balances disagree with the transfers"
        );
    }
}

impl Bank {
    /// Checks the last read of a run: consistent, every acknowledged transfer present, and
    /// nothing else but transfers whose outcome was unknown.
    fn check_final(&self, acked: &BTreeSet<i64>, ambiguous: &BTreeSet<i64>) {
        self.check();
        let ids: BTreeSet<i64> = self.transfers.iter().copied().collect();
        let lost: Vec<_> = acked.difference(&ids).collect();
        assert!(lost.is_empty(), "acknowledged transfers lost: {lost:?}");
        let stray: Vec<_> = ids
            .iter()
            .filter(|id| !acked.contains(id) && !ambiguous.contains(id))
            .collect();
        assert!(
            stray.is_empty(),
            "transfers that failed are present: {stray:?}"
        );
    }
}

/// Reads the whole bank in one transaction.
async fn snapshot(client: &tokio_postgres::Client) -> Result<Bank, tokio_postgres::Error> {
    async fn column(
        client: &tokio_postgres::Client,
        sql: &str,
    ) -> Result<Vec<i64>, tokio_postgres::Error> {
        Ok(client
            .query(sql, &[])
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect())
    }
    client.batch_execute("BEGIN").await?;
    let a = column(client, "SELECT bal FROM acc_a ORDER BY id").await?;
    let b = column(client, "SELECT bal FROM acc_b ORDER BY id").await?;
    let transfers = column(client, "SELECT id FROM transfers").await?;
    client.batch_execute("COMMIT").await?;
    Ok(Bank { a, b, transfers })
}

/// Reads the whole bank through `url` until `stop`, checking every read; a read that fails
/// must fail with one of the SQLSTATEs in `allowed`. Returns how many reads succeeded.
async fn bank_reader(
    url: String,
    stop: Arc<AtomicBool>,
    allowed: &'static [&'static str],
) -> usize {
    let client = connect(&url).await.unwrap();
    let mut reads = 0;
    while !stop.load(Ordering::Relaxed) {
        match snapshot(&client).await {
            Ok(bank) => {
                bank.check();
                reads += 1;
            }
            Err(e) => {
                let _ = client.batch_execute("ROLLBACK").await;
                let code = e.code().map(|c| c.code());
                assert!(
                    code.is_some_and(|c| allowed.contains(&c)),
                    "read failed: {e:?}"
                );
            }
        }
    }
    reads
}

/// Moves 1 from `acc_a` to `acc_b` in transfer `id` until `stop`; returns the transfers
/// acknowledged and those whose outcome is unknown (40003).
async fn transfers(
    url: String,
    writer: i64,
    stop: Arc<AtomicBool>,
) -> (BTreeSet<i64>, BTreeSet<i64>) {
    let client = connect(&url).await.unwrap();
    let mut acked = BTreeSet::new();
    let mut ambiguous = BTreeSet::new();
    let mut i = 0i64;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let id = writer << 32 | i;
        let (from, to) = ((i % 8) as i32 + 1, ((i * 3) % 8) as i32 + 1);
        let sql = format!(
            "BEGIN;
             UPDATE acc_a SET bal = bal - 1 WHERE id = {from};
             UPDATE acc_b SET bal = bal + 1 WHERE id = {to};
             INSERT INTO transfers VALUES ({id}, 1);
             COMMIT"
        );
        if let Err(e) = client.batch_execute(&sql).await {
            let _ = client.batch_execute("ROLLBACK").await;
            match e.code().map(|c| c.code()) {
                // A conflict, or no leaseholder reachable for now: nothing committed.
                Some("40001" | "58000") => {}
                Some("40003") => {
                    ambiguous.insert(id);
                }
                // The connection is gone (its node was killed, which may first tell its
                // sessions so with 57P01): the outcome is unknown.
                Some("57P01") => {
                    ambiguous.insert(id);
                    break;
                }
                None if client.is_closed() => {
                    ambiguous.insert(id);
                    break;
                }
                _ => panic!("transfer {id} failed: {e:?}"),
            }
        } else {
            acked.insert(id);
        }
    }
    (acked, ambiguous)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bank_stays_consistent_while_a_leaseholder_dies() {
    let c = start().await;
    let admin = connect(&c.url(1).unwrap()).await.unwrap();
    admin
        .batch_execute(&format!(
            "CREATE TABLE acc_a (id INT PRIMARY KEY, bal INT8 NOT NULL);
             CREATE TABLE acc_b (id INT PRIMARY KEY, bal INT8 NOT NULL);
             CREATE TABLE transfers (id INT8 PRIMARY KEY, amount INT8 NOT NULL);
             INSERT INTO acc_a SELECT i, {START_BALANCE} FROM generate_series(1, {ACCOUNTS}) g(i);
             INSERT INTO acc_b SELECT i, {START_BALANCE} FROM generate_series(1, {ACCOUNTS}) g(i);"
        ))
        .await
        .unwrap();
    let range_a = range_of_table(&c, &admin, "acc_a").await;
    let range_b = range_of_table(&c, &admin, "acc_b").await;
    assert_ne!(range_a, range_b);
    snapshot(&admin).await.unwrap().check();
    let victim = c.kv().leader(range_a).unwrap();
    let others: Vec<u64> = [1, 2, 3].into_iter().filter(|&n| n != victim).collect();
    println!(
        "acc_a: range {range_a} led by node {victim}; acc_b: range {range_b} led by node {:?}",
        c.kv().leader(range_b)
    );

    // Two writers and a reader on the nodes that stay up.
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = others
        .iter()
        .enumerate()
        .map(|(w, &node)| tokio::spawn(transfers(c.url(node).unwrap(), w as i64, stop.clone())))
        .collect();
    let reader = tokio::spawn(bank_reader(
        c.url(others[0]).unwrap(),
        stop.clone(),
        &["40001"],
    ));

    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let killed_at = Instant::now();
    c.kill(victim).await;
    // Writes to the victim's range resume once the survivors elect a leader.
    let probe = connect(&c.url(others[1]).unwrap()).await.unwrap();
    while probe
        .batch_execute("UPDATE acc_a SET bal = bal WHERE id = 1")
        .await
        .is_err()
    {
        assert!(
            killed_at.elapsed() < Duration::from_secs(10),
            "writes never resumed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let gap = killed_at.elapsed();
    println!("leaseholder node {victim} killed; writes to its range resumed after {gap:?}");
    assert!(
        gap < Duration::from_secs(5),
        "writes resumed only after {gap:?}"
    );
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    c.restart(victim).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    stop.store(true, Ordering::Relaxed);

    let mut acked = BTreeSet::new();
    let mut ambiguous = BTreeSet::new();
    for w in writers {
        let (a, m) = w.await.unwrap();
        acked.extend(a);
        ambiguous.extend(m);
    }
    let reads = reader.await.unwrap();
    println!(
        "{} transfers acknowledged, {} ambiguous, {reads} consistent snapshots read",
        acked.len(),
        ambiguous.len()
    );
    assert!(acked.len() > 20, "too few transfers: {}", acked.len());
    assert!(reads > 5, "too few reads: {reads}");

    // On the restarted node: consistent, every acknowledged transfer present, and no
    // transfer that failed.
    let check = connect(&c.url(victim).unwrap()).await.unwrap();
    let last = snapshot(&check).await.unwrap();
    last.check_final(&acked, &ambiguous);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_at_divides_a_table_while_it_is_written() {
    let c = start().await;
    let n1 = connect(&c.url(1).unwrap()).await.unwrap();
    n1.batch_execute("CREATE TABLE items (id INT PRIMARY KEY, v TEXT)")
        .await
        .unwrap();
    assert_eq!(ranges_of_table(&c, &n1, "items").await.len(), 1);
    // Writers on every node insert rows while the table is split three times.
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..3i32 {
        let url = c.url(w as u64 + 1).unwrap();
        let stop = stop.clone();
        writers.push(tokio::spawn(async move {
            let client = connect(&url).await.unwrap();
            let mut acked = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) || i < 30 {
                let id = i * 3 + w;
                match client
                    .execute(
                        "INSERT INTO items VALUES ($1, $2)",
                        &[&id, &format!("w{w}")],
                    )
                    .await
                {
                    Ok(_) => acked.push(id),
                    Err(e) => println!("insert {id}: {e}"),
                }
                i += 1;
            }
            acked
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rows = n1
        .query("ALTER TABLE items SPLIT AT VALUES (30), (60), (90)", &[])
        .await
        .unwrap();
    assert_eq!(rows.len(), 3);
    let new_ranges: BTreeSet<i64> = rows.iter().map(|r| r.get::<_, i64>(1)).collect();
    assert_eq!(new_ranges.len(), 3, "{new_ranges:?}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    let mut acked = BTreeSet::new();
    for w in writers {
        acked.extend(w.await.unwrap());
    }
    let ranges = ranges_of_table(&c, &n1, "items").await;
    assert_eq!(ranges.len(), 4, "{ranges:?}");
    // Every acknowledged row is there once, read through each node.
    for node in 1..=3 {
        let client = connect(&c.url(node).unwrap()).await.unwrap();
        let ids: Vec<i32> = client
            .query("SELECT id FROM items ORDER BY id", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        let distinct: BTreeSet<i32> = ids.iter().copied().collect();
        assert_eq!(
            distinct.len(),
            ids.len(),
            "node {node}: a row came back twice"
        );
        for id in &acked {
            assert!(
                distinct.contains(id),
                "node {node}: acknowledged row {id} lost"
            );
        }
        let n: i64 = client
            .query_one("SELECT count(*) FROM items WHERE id >= 30 AND id < 90", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(
            n as usize,
            distinct.iter().filter(|&&i| (30..90).contains(&i)).count()
        );
    }
    // A transaction over rows of all four ranges commits atomically.
    n1.batch_execute("BEGIN; UPDATE items SET v = 'all' WHERE id IN (0, 31, 61, 91); COMMIT")
        .await
        .unwrap();
    let all: i64 = n1
        .query_one("SELECT count(*) FROM items WHERE v = 'all'", &[])
        .await
        .unwrap()
        .get(0);
    let expect = [0, 31, 61, 91].iter().filter(|i| acked.contains(i)).count();
    assert_eq!(all as usize, expect);
    // Splitting at an existing boundary changes nothing; bad split points are refused.
    let again = n1
        .query("ALTER TABLE items SPLIT AT VALUES (60)", &[])
        .await
        .unwrap();
    assert!(new_ranges.contains(&again[0].get::<_, i64>(1)));
    assert_eq!(ranges_of_table(&c, &n1, "items").await.len(), 4);
    for (sql, code) in [
        ("ALTER TABLE items SPLIT AT VALUES (1, 2)", "42601"),
        ("ALTER TABLE items SPLIT AT VALUES (NULL)", "23502"),
        ("ALTER TABLE items SPLIT AT VALUES ('x')", "22P02"),
        ("ALTER TABLE nowhere SPLIT AT VALUES (1)", "42P01"),
        (
            "BEGIN; ALTER TABLE items SPLIT AT VALUES (5); COMMIT",
            "25001",
        ),
    ] {
        let err = n1.batch_execute(sql).await.unwrap_err();
        assert_eq!(err.code().unwrap().code(), code, "{sql}: {err}");
        let _ = n1.batch_execute("ROLLBACK").await;
    }
    c.shutdown().await;
}

/// Runs `first` then, if it succeeded, `COMMIT` on `client`; on an error rolls back and
/// returns the error's SQLSTATE and message.
async fn update_and_commit(
    client: &tokio_postgres::Client,
    first: &str,
) -> Result<(), (String, String)> {
    let r = match client.batch_execute(first).await {
        Ok(()) => client.batch_execute("COMMIT").await,
        Err(e) => Err(e),
    };
    r.map_err(|e| {
        let code = e.code().map(|c| c.code().to_string()).unwrap_or_default();
        let msg = e
            .as_db_error()
            .map(|d| d.message().to_string())
            .unwrap_or(e.to_string());
        (code, msg)
    })
}

/// Two transactions on different nodes update the same two rows, of tables in ranges led
/// by different nodes, in opposite orders: a deadlock. One of them is told so (SQLSTATE
/// 40001) long before the 30 s lock wait timeout, and the other commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadlock_across_ranges_aborts_one_transaction_and_the_other_commits() {
    let c = start().await;
    let s1 = connect(&c.url(1).unwrap()).await.unwrap();
    let s2 = connect(&c.url(2).unwrap()).await.unwrap();
    s1.batch_execute(
        "CREATE TABLE da (k INT PRIMARY KEY, v INT);
         CREATE TABLE db (k INT PRIMARY KEY, v INT);
         INSERT INTO da VALUES (1, 0);
         INSERT INTO db VALUES (1, 0);",
    )
    .await
    .unwrap();
    let (ra, rb) = (
        range_of_table(&c, &s1, "da").await,
        range_of_table(&c, &s1, "db").await,
    );
    assert_ne!(ra, rb);
    println!(
        "da: range {ra} led by {:?}; db: range {rb} led by {:?}",
        c.kv().leader(ra),
        c.kv().leader(rb)
    );
    s1.batch_execute("BEGIN; UPDATE da SET v = 1 WHERE k = 1")
        .await
        .unwrap();
    s2.batch_execute("BEGIN; UPDATE db SET v = 2 WHERE k = 1")
        .await
        .unwrap();
    let started = Instant::now();
    let (s1, s2) = (Arc::new(s1), Arc::new(s2));
    let first = {
        let s1 = s1.clone();
        tokio::spawn(async move { update_and_commit(&s1, "UPDATE db SET v = 1 WHERE k = 1").await })
    };
    // Let the first wait begin, so that both are waiting.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let second = update_and_commit(&s2, "UPDATE da SET v = 2 WHERE k = 1").await;
    let first = first.await.unwrap();
    let took = started.elapsed();
    println!("first: {first:?}; second: {second:?}; both done after {took:?}");
    let (winner, loser) = match (&first, &second) {
        (Ok(()), Err(e)) => (1, e),
        (Err(e), Ok(())) => (2, e),
        _ => panic!("exactly one transaction must give up: {first:?} / {second:?}"),
    };
    assert_eq!(loser.0, "40001", "{loser:?}");
    assert!(loser.1.contains("deadlock"), "{loser:?}");
    assert!(
        took < Duration::from_secs(10),
        "the deadlock took {took:?} to break"
    );
    let _ = [&s1, &s2][2 - winner].batch_execute("ROLLBACK").await;
    // Both rows hold the winner's values, and nothing of the loser's.
    for t in ["da", "db"] {
        let v: i32 = s1
            .query_one(&format!("SELECT v FROM {t} WHERE k = 1"), &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(v, winner as i32, "{t}");
    }
    c.shutdown().await;
}

/// A transaction that holds a row lock for longer than the lock TTL (3 s) is not taken for
/// dead: its heartbeat keeps the lock, a writer on another node waits for it, and both
/// commit, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_holding_a_lock_past_its_ttl_keeps_it() {
    let c = start().await;
    let s1 = connect(&c.url(1).unwrap()).await.unwrap();
    s1.batch_execute(
        "CREATE TABLE h (k INT PRIMARY KEY, v INT);
         INSERT INTO h VALUES (1, 0);
         BEGIN;
         UPDATE h SET v = v + 1 WHERE k = 1;",
    )
    .await
    .unwrap();
    let url = c.url(3).unwrap();
    let waiter = tokio::spawn(async move {
        let s3 = connect(&url).await.unwrap();
        s3.batch_execute("UPDATE h SET v = v * 10 WHERE k = 1")
            .await
            .map(|()| Instant::now())
    });
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        !waiter.is_finished(),
        "the writer did not wait for the lock"
    );
    let committed = Instant::now();
    s1.batch_execute("COMMIT").await.unwrap();
    let waited_until = waiter.await.unwrap().unwrap();
    assert!(waited_until >= committed);
    let v: i32 = s1
        .query_one("SELECT v FROM h WHERE k = 1", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        v, 10,
        "the waiting update must apply after the first commit"
    );
    c.shutdown().await;
}

/// Pessimistic locks live in the leaseholder's memory only, so a leaseholder's death takes
/// them with it. The transaction that held one must then not commit an update computed
/// from the value it locked if another writer got in meanwhile: it fails with 40001, or
/// commits only if its read still holds. Either way no update is lost. Here the holder
/// commits in one phase (one range).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_lost_with_its_leaseholder_costs_a_retry_not_an_update() {
    lock_lost_with_its_leaseholder(LostLock::OneRange).await;
}

/// How the holder of the lost lock goes on.
#[derive(Clone, Copy, PartialEq)]
enum LostLock {
    /// It commits at once, in one phase.
    OneRange,
    /// It updates the row again, then a row of a second range, and commits in two phases.
    TwoRanges,
    /// As `TwoRanges`, but the second range's row changed after the other writer's update,
    /// and the holder locks it first: that lock moves the holder's snapshot past the other
    /// writer's commit, so taking the first row's lock again does not move it.
    SnapshotMovedFirst,
}

/// As above, with a holder that then updates the row again (taking its lock anew) and a
/// second table (another range), so it commits in two phases: its locked reads are not
/// validated at commit (the lock stood for them), so taking the lock again must check the
/// row's earlier read, or the other writer's update is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_lost_with_its_leaseholder_fails_a_two_phase_commit_too() {
    lock_lost_with_its_leaseholder(LostLock::TwoRanges).await;
}

/// As above, with the holder's snapshot moved past the other writer's commit by a lock of
/// another range before it locks the row again: a read refresh leaves the locked row's
/// read where it was (the lock stood for it), so locking the row again checks it from
/// there even though the snapshot does not move.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_lost_with_its_leaseholder_fails_a_commit_whose_snapshot_moved_past_it() {
    lock_lost_with_its_leaseholder(LostLock::SnapshotMovedFirst).await;
}

async fn lock_lost_with_its_leaseholder(mode: LostLock) {
    let two_ranges = mode != LostLock::OneRange;
    let c = start().await;
    let admin = connect(&c.url(1).unwrap()).await.unwrap();
    admin
        .batch_execute(
            "CREATE TABLE p (k INT PRIMARY KEY, v INT); INSERT INTO p VALUES (1, 0);
             CREATE TABLE q (k INT PRIMARY KEY, v INT); INSERT INTO q VALUES (1, 0);",
        )
        .await
        .unwrap();
    let range = range_of_table(&c, &admin, "p").await;
    if two_ranges {
        assert_ne!(range, range_of_table(&c, &admin, "q").await);
    }
    let victim = c.kv().leader(range).unwrap();
    let others: Vec<u64> = [1, 2, 3].into_iter().filter(|&n| n != victim).collect();
    let holder = connect(&c.url(others[0]).unwrap()).await.unwrap();
    holder
        .batch_execute("BEGIN; UPDATE p SET v = v + 1 WHERE k = 1;")
        .await
        .unwrap();
    c.kill(victim).await;
    // The other writer, on the other surviving node, gets in once a new leaseholder serves
    // the range (the lock went with the old one; a replicated lock would make it wait).
    let writer = connect(&c.url(others[1]).unwrap()).await.unwrap();
    let started = Instant::now();
    let wrote = tokio::time::timeout(
        Duration::from_secs(20),
        writer.batch_execute("UPDATE p SET v = v + 10 WHERE k = 1"),
    )
    .await;
    println!(
        "leaseholder node {victim} killed; the second writer finished after {:?}: {wrote:?}",
        started.elapsed()
    );
    let bumped = if mode == LostLock::SnapshotMovedFirst {
        writer
            .batch_execute("UPDATE q SET v = v + 100 WHERE k = 1")
            .await
            .unwrap();
        100
    } else {
        0
    };
    let rest = match mode {
        LostLock::OneRange => "COMMIT",
        LostLock::TwoRanges => {
            "UPDATE p SET v = v + 1 WHERE k = 1; UPDATE q SET v = v + 1 WHERE k = 1; COMMIT"
        }
        LostLock::SnapshotMovedFirst => {
            "UPDATE q SET v = v + 1 WHERE k = 1; UPDATE p SET v = v + 1 WHERE k = 1; COMMIT"
        }
    };
    let commit = holder.batch_execute(rest).await;
    let holder_committed = match &commit {
        Ok(()) => true,
        Err(e) => {
            assert_eq!(
                e.code().map(|c| c.code()),
                Some("40001"),
                "the first writer's commit failed otherwise: {e:?}"
            );
            let _ = holder.batch_execute("ROLLBACK").await;
            false
        }
    };
    let writer_committed = matches!(wrote, Ok(Ok(())));
    let v: i32 = writer
        .query_one("SELECT v FROM p WHERE k = 1", &[])
        .await
        .unwrap()
        .get(0);
    let w: i32 = writer
        .query_one("SELECT v FROM q WHERE k = 1", &[])
        .await
        .unwrap()
        .get(0);
    println!(
        "first writer committed: {holder_committed}, second: {writer_committed}, v = {v}, w = {w}"
    );
    assert!(
        holder_committed || writer_committed,
        "one of the two writers must commit"
    );
    let holder_adds = if two_ranges { 2 } else { 1 };
    assert_eq!(
        v,
        holder_adds * i32::from(holder_committed) + 10 * i32::from(writer_committed),
        "every committed update must be in the value"
    );
    assert_eq!(
        w,
        bumped + i32::from(holder_committed && two_ranges),
        "the holder's other update is there if and only if it committed"
    );
    c.shutdown().await;
}

/// A transaction with keys in two ranges led by different nodes whose coordinator stops
/// mid-commit, as if its node died (its heartbeat stops with it). Stopped after prewrite,
/// it is rolled back; stopped after its primary committed, it is rolled forward. Either way
/// a reader on another node gets its answer within the lock TTL (3 s) plus slack, sees all
/// of it or nothing, and no lock of it is left on the keys once read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_whose_coordinator_stops_mid_commit_is_all_or_nothing() {
    use txn::CommitStop;
    let c = start().await;
    let key = |table: u64| {
        let mut k = codec::layout::table_prefix(TenantId::SYSTEM, TableId(table));
        k.extend_from_slice(b"coordinator-test");
        k
    };
    let keys = vec![key(100), key(101)];
    let ranges: Vec<u64> = keys
        .iter()
        .map(|k| {
            c.kv()
                .ranges()
                .iter()
                .find(|r| r.desc.span.contains(k))
                .unwrap()
                .desc
                .id
        })
        .collect();
    assert_ne!(ranges[0], ranges[1]);
    println!(
        "ranges {ranges:?} led by {:?} and {:?}",
        c.kv().leader(ranges[0]),
        c.kv().leader(ranges[1])
    );
    let coordinator = c.sql(1).unwrap().client.clone();
    let reader = c.sql(2).unwrap().client.clone();
    let mut expect: Option<Vec<u8>> = None;
    for (round, stop) in [CommitStop::AfterPrewrite, CommitStop::AfterPrimary]
        .into_iter()
        .enumerate()
    {
        let value = format!("round {round}").into_bytes();
        let mut t = coordinator.begin().await.unwrap();
        for k in &keys {
            t.put(k.clone(), value.clone()).unwrap();
        }
        t.commit_and_stop(stop).await.unwrap();
        drop(t);
        if stop == CommitStop::AfterPrimary {
            expect = Some(value);
        }
        let started = Instant::now();
        let mut r = reader.begin().await.unwrap();
        let got = r.batch_get(&keys).await.unwrap();
        r.commit().await.unwrap();
        let took = started.elapsed();
        println!("{stop:?}: the reader got {got:?} after {took:?}");
        assert_eq!(got, vec![expect.clone(), expect.clone()], "{stop:?}");
        assert!(took < Duration::from_secs(5), "{stop:?}: took {took:?}");
        // The locks the reader met are gone from every replica.
        let deadline = Instant::now() + Duration::from_secs(5);
        for node in 1..=3 {
            let engine = c.kv().engine(node).unwrap().engine().clone();
            for k in &keys {
                while mvcc::MvccReader::new(engine.as_ref())
                    .lock(k)
                    .unwrap()
                    .is_some()
                {
                    assert!(
                        Instant::now() < deadline,
                        "{stop:?}: a lock is left on node {node}"
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
    c.shutdown().await;
}

/// The bank workload (transfers between two tables in ranges led by different nodes, with
/// a log table in a third) under seeded faults, ten seeds by default: lossy and slow links
/// throughout, and per seed either the leaseholder of one account table is killed and
/// restarted, or it is cut off from the others and healed. Every consistent read sees an
/// exact bank; at the end every acknowledged transfer is there, and nothing else but
/// transfers whose outcome was unknown. A failing seed is named (replay with
/// `TESSERA_SEED=n`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bank_holds_under_seeded_faults() {
    for seed in common::seeds(10) {
        let started = Instant::now();
        if let Err(e) = tokio::spawn(bank_with_faults(seed)).await {
            panic!("bank failed with seed {seed} (replay: TESSERA_SEED={seed}): {e}");
        }
        println!("bank: seed {seed} passed in {:?}", started.elapsed());
    }
}

async fn bank_with_faults(seed: u64) {
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};
    let mut rng = StdRng::seed_from_u64(seed);
    let c = start().await;
    let admin = connect(&c.url(1).unwrap()).await.unwrap();
    admin
        .batch_execute(&format!(
            "CREATE TABLE acc_a (id INT PRIMARY KEY, bal INT8 NOT NULL);
             CREATE TABLE acc_b (id INT PRIMARY KEY, bal INT8 NOT NULL);
             CREATE TABLE transfers (id INT8 PRIMARY KEY, amount INT8 NOT NULL);
             INSERT INTO acc_a SELECT i, {START_BALANCE} FROM generate_series(1, {ACCOUNTS}) g(i);
             INSERT INTO acc_b SELECT i, {START_BALANCE} FROM generate_series(1, {ACCOUNTS}) g(i);"
        ))
        .await
        .unwrap();
    let drop_per_mille = rng.random_range(0..=20);
    let max_delay = Duration::from_millis(rng.random_range(0..=5));
    c.kv().set_faults(seed, drop_per_mille, max_delay);
    let kill = rng.random_bool(0.5);
    let table = if rng.random_bool(0.5) {
        "acc_a"
    } else {
        "acc_b"
    };
    let range = range_of_table(&c, &admin, table).await;
    let victim = c.kv().leader(range).unwrap();
    let others: Vec<u64> = [1, 2, 3].into_iter().filter(|&n| n != victim).collect();
    println!(
        "seed {seed}: links drop {drop_per_mille}‰ and delay up to {max_delay:?}; {} node {victim}, leaseholder of {table}",
        if kill { "kill" } else { "isolate" }
    );
    let stop = Arc::new(AtomicBool::new(false));
    // Writers on every node (those on a killed node stop when it dies), a reader on a
    // node that stays up and connected.
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let url = c.url(w % 3 + 1).unwrap();
            tokio::spawn(transfers(url, w as i64, stop.clone()))
        })
        .collect();
    let reader = tokio::spawn(bank_reader(
        c.url(others[0]).unwrap(),
        stop.clone(),
        &["40001", "58000"],
    ));
    tokio::time::sleep(Duration::from_millis(rng.random_range(500..1_500))).await;
    if kill {
        c.kill(victim).await;
    } else {
        c.kv().isolate(victim);
    }
    tokio::time::sleep(Duration::from_millis(rng.random_range(1_000..2_500))).await;
    if kill {
        c.restart(victim).await.unwrap();
    } else {
        c.kv().heal();
    }
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut acked = BTreeSet::new();
    let mut ambiguous = BTreeSet::new();
    for w in writers {
        let (a, m) = w.await.unwrap();
        acked.extend(a);
        ambiguous.extend(m);
    }
    let reads = reader.await.unwrap();
    c.kv().clear_faults();
    println!(
        "seed {seed}: {} transfers acknowledged, {} unknown, {reads} consistent reads",
        acked.len(),
        ambiguous.len()
    );
    assert!(acked.len() > 5, "too few transfers: {}", acked.len());
    assert!(reads > 2, "too few reads: {reads}");
    let check = connect(&c.url(victim).unwrap()).await.unwrap();
    let started = Instant::now();
    let last = loop {
        match snapshot(&check).await {
            Ok(bank) => break bank,
            Err(e) => {
                let _ = check.batch_execute("ROLLBACK").await;
                assert!(
                    started.elapsed() < Duration::from_secs(15),
                    "final read: {e:?}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    last.check_final(&acked, &ambiguous);
    c.shutdown().await;
}

/// GC run from one node while a transaction of another node reads: versions older than
/// the GC TTL go (except the newest of each key at the safe point), the reader keeps its
/// snapshot (it is younger than the TTL less its margin, so above the safe point), and once
/// older than that limit it is refused (40001) instead of reading a collected snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_removes_old_versions_and_keeps_every_running_snapshot() {
    let c = start_with(txn::TxnConfig {
        gc_ttl_ms: 2_000,
        ..txn::TxnConfig::default()
    })
    .await;
    let (one, two) = (
        c.sql(1).unwrap().client.clone(),
        c.sql(2).unwrap().client.clone(),
    );
    let mut key = codec::layout::table_prefix(TenantId::SYSTEM, TableId(100));
    key.extend_from_slice(b"gc-test");
    let write = |v: u32| {
        let (client, key) = (two.clone(), key.clone());
        async move {
            let mut t = client.begin().await.unwrap();
            t.put(key, v.to_be_bytes().to_vec()).unwrap();
            t.commit().await.unwrap();
        }
    };
    for v in 0..=5 {
        write(v).await;
    }
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let mut reader = one.begin().await.unwrap();
    let started = Instant::now();
    assert_eq!(
        reader.get(&key).await.unwrap(),
        Some(5u32.to_be_bytes().to_vec())
    );
    for v in 6..=10 {
        write(v).await;
    }
    tokio::time::sleep(Duration::from_millis(1_000).saturating_sub(started.elapsed())).await;
    // Node 2 does not know the reader; the GC TTL protects it.
    let report = two.gc().await.unwrap();
    println!("GC from node 2: {report:?}");
    assert!(
        report.versions_deleted >= 5,
        "versions 0 to 4 are older than the safe point: {report:?}"
    );
    assert_eq!(
        reader.get(&key).await.unwrap(),
        Some(5u32.to_be_bytes().to_vec()),
        "the reader lost its snapshot"
    );
    tokio::time::sleep(Duration::from_millis(1_900).saturating_sub(started.elapsed())).await;
    let err = reader.get(&key).await.unwrap_err();
    assert!(matches!(err, txn::Error::TxnTooOld { .. }), "{err}");
    assert!(err.is_retryable());
    let mut fresh = one.begin().await.unwrap();
    assert_eq!(
        fresh.get(&key).await.unwrap(),
        Some(10u32.to_be_bytes().to_vec())
    );
    c.shutdown().await;
}

/// A transaction larger than one request may carry (1 MiB per range) commits in chunks:
/// an insert of ~5 MB into one range, then an update of every row, are all there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_larger_than_a_request_commits_in_chunks() {
    let c = start().await;
    let n1 = connect(&c.url(1).unwrap()).await.unwrap();
    n1.batch_execute(
        "CREATE TABLE big (id INT PRIMARY KEY, v TEXT);
         INSERT INTO big SELECT i, repeat('x', 200) FROM generate_series(1, 20000) g(i);",
    )
    .await
    .unwrap();
    let n2 = connect(&c.url(2).unwrap()).await.unwrap();
    n2.batch_execute("UPDATE big SET v = repeat('y', 200)")
        .await
        .unwrap();
    let row = n2
        .query_one(
            "SELECT count(*), count(*) FILTER (WHERE v = repeat('y', 200)) FROM big",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        (row.get::<_, i64>(0), row.get::<_, i64>(1)),
        (20_000, 20_000)
    );
    c.shutdown().await;
}
