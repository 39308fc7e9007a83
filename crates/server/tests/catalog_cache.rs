//! The node-local catalog cache never serves a stale catalog: a DDL committed by one
//! session is seen by the next statement of every other session, a DDL still in flight is
//! not, and a writing transaction that overlaps a committed DDL is refused at commit.
#![allow(clippy::unwrap_used)]

mod common;

use common::{TestServer, connect};

async fn columns(c: &tokio_postgres::Client, table: &str) -> usize {
    c.query(&format!("SELECT * FROM {table} LIMIT 1"), &[])
        .await
        .unwrap()
        .first()
        .map_or(0, |r| r.len())
}

#[tokio::test]
async fn ddl_is_seen_at_once_and_never_before_it_commits() {
    let ts = TestServer::start().await;
    let a = connect(&ts.url()).await.unwrap();
    let b = connect(&ts.url()).await.unwrap();
    a.batch_execute("CREATE TABLE t (id INT PRIMARY KEY, v INT); INSERT INTO t VALUES (1, 1)")
        .await
        .unwrap();
    // Warm the cache in both sessions.
    for _ in 0..3 {
        assert_eq!(columns(&b, "t").await, 2);
        assert_eq!(columns(&a, "t").await, 2);
    }

    // In flight: the other session keeps the old catalog.
    a.batch_execute("BEGIN; ALTER TABLE t ADD COLUMN w INT DEFAULT 7")
        .await
        .unwrap();
    assert_eq!(columns(&b, "t").await, 2);
    b.batch_execute("INSERT INTO t VALUES (2, 2)")
        .await
        .unwrap();
    a.batch_execute("COMMIT").await.unwrap();

    // Committed: the very next statement of the other session sees it.
    assert_eq!(columns(&b, "t").await, 3);
    let w: Vec<Option<i32>> = b
        .query("SELECT w FROM t ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(w, vec![Some(7), Some(7)]);

    // Many DDLs in a row, each seen by the other session right after it commits.
    for i in 0..20 {
        a.batch_execute(&format!("CREATE TABLE n{i} (id INT PRIMARY KEY)"))
            .await
            .unwrap();
        b.batch_execute(&format!("INSERT INTO n{i} VALUES ({i})"))
            .await
            .unwrap();
        a.batch_execute(&format!("DROP TABLE n{i}")).await.unwrap();
        let e = b
            .batch_execute(&format!("INSERT INTO n{i} VALUES ({i})"))
            .await
            .unwrap_err();
        assert_eq!(e.code().unwrap().code(), "42P01", "{e}");
    }
}

#[tokio::test]
async fn a_write_that_overlaps_a_ddl_fails_at_commit() {
    overlap_write_and_ddl(false).await;
}

/// The DDL's transaction began before the write's: its commit must still be ordered after
/// every statement that used the cached catalog (not at a timestamp reserved when it began,
/// which is below the write's start).
#[tokio::test]
async fn a_write_that_overlaps_a_ddl_begun_before_it_fails_at_commit() {
    overlap_write_and_ddl(true).await;
}

async fn overlap_write_and_ddl(ddl_begins_first: bool) {
    let ts = TestServer::start().await;
    let a = connect(&ts.url()).await.unwrap();
    let b = connect(&ts.url()).await.unwrap();
    a.batch_execute("CREATE TABLE t (id INT PRIMARY KEY, v INT)")
        .await
        .unwrap();
    for _ in 0..3 {
        columns(&b, "t").await;
    }
    if ddl_begins_first {
        a.batch_execute("BEGIN").await.unwrap();
        columns(&a, "t").await;
    }
    // b writes under the old catalog (no index); a adds a unique index meanwhile. If b's
    // commit went through, the index would miss b's row.
    b.batch_execute("BEGIN; INSERT INTO t VALUES (1, 5)")
        .await
        .unwrap();
    a.batch_execute("CREATE UNIQUE INDEX t_v ON t (v)")
        .await
        .unwrap();
    if ddl_begins_first {
        a.batch_execute("COMMIT").await.unwrap();
    }
    let e = b.batch_execute("COMMIT").await.unwrap_err();
    assert_eq!(e.code().unwrap().code(), "40001", "{e}");
    // The index is complete: a duplicate is refused, and the table is empty.
    b.batch_execute("INSERT INTO t VALUES (2, 6)")
        .await
        .unwrap();
    let e = b
        .batch_execute("INSERT INTO t VALUES (3, 6)")
        .await
        .unwrap_err();
    assert_eq!(e.code().unwrap().code(), "23505", "{e}");
    let n: i64 = b
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
}
