//! Bad input gets the SQLSTATE a PostgreSQL user expects, loses nothing, and never
//! disturbs other clients: malformed SQL, unknown objects, type errors, constraint
//! violations, oversized values, invalid UTF-8, a client that vanishes mid-transaction, and
//! protocol messages with a wrong length.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use bytes::{BufMut, BytesMut};
use common::{TestServer, connect};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_postgres::Client;

/// The SQLSTATE of a statement that must fail.
fn sqlstate<T>(r: Result<T, tokio_postgres::Error>, sql: &str) -> String {
    match r {
        Ok(_) => panic!("expected an error from {sql}"),
        Err(e) => e
            .code()
            .unwrap_or_else(|| panic!("no SQLSTATE for {sql}: {e}"))
            .code()
            .to_string(),
    }
}

/// Runs `sql` through the simple protocol and returns its SQLSTATE.
async fn simple_error(c: &Client, sql: &str) -> String {
    sqlstate(c.batch_execute(sql).await, sql)
}

/// Runs `sql` through the extended protocol and returns its SQLSTATE.
async fn extended_error(c: &Client, sql: &str) -> String {
    sqlstate(c.query(sql, &[]).await, sql)
}

async fn count(c: &Client, sql: &str) -> i64 {
    c.query_one(sql, &[]).await.unwrap().get(0)
}

#[tokio::test]
async fn statements_get_postgresql_sqlstates_and_change_nothing() {
    let ts = TestServer::start().await;
    let c = connect(&ts.url()).await.unwrap();
    c.batch_execute(
        "CREATE TABLE parent (id INT PRIMARY KEY, name VARCHAR(5) NOT NULL UNIQUE, \
           qty INT CHECK (qty >= 0));
         CREATE TABLE child (id INT PRIMARY KEY, parent_id INT REFERENCES parent (id));
         INSERT INTO parent VALUES (1, 'one', 1), (2, 'two', 2);
         INSERT INTO child VALUES (10, 1);
         CREATE TABLE notes (id INT PRIMARY KEY, body TEXT);",
    )
    .await
    .unwrap();
    let big = "x".repeat(base::MAX_VALUE_LEN + 1024);
    let long_key = "k".repeat(base::MAX_KEY_LEN + 16);
    let cases: Vec<(String, &str)> = vec![
        ("SELEC 1".into(), "42601"),
        ("SELECT (1".into(), "42601"),
        ("SELECT * FROM parent WHERE".into(), "42601"),
        ("SELECT * FROM nowhere".into(), "42P01"),
        ("SELECT nope FROM parent".into(), "42703"),
        ("SELECT no_such_function(1)".into(), "42883"),
        ("SELECT 1 + 'abc'".into(), "22P02"),
        ("INSERT INTO parent VALUES ('x', 'bad', 1)".into(), "22P02"),
        ("SELECT true + 1".into(), "42883"),
        (
            "UPDATE parent SET qty = 'many' WHERE id = 1".into(),
            "22P02",
        ),
        ("SELECT 1 / 0".into(), "22012"),
        ("SELECT 1.5 / 0".into(), "22012"),
        ("SELECT id % 0 FROM parent".into(), "22012"),
        ("SELECT 2147483647::int4 + 1".into(), "22003"),
        ("INSERT INTO parent VALUES (1, 'dup', 1)".into(), "23505"),
        ("INSERT INTO parent VALUES (3, 'one', 1)".into(), "23505"),
        ("UPDATE parent SET id = 2 WHERE id = 1".into(), "23505"),
        ("INSERT INTO parent VALUES (3, NULL, 1)".into(), "23502"),
        ("UPDATE parent SET name = NULL".into(), "23502"),
        ("INSERT INTO parent VALUES (3, 'neg', -1)".into(), "23514"),
        ("UPDATE parent SET qty = qty - 5".into(), "23514"),
        ("INSERT INTO child VALUES (11, 99)".into(), "23503"),
        ("DELETE FROM parent WHERE id = 1".into(), "23503"),
        ("UPDATE child SET parent_id = 42".into(), "23503"),
        (
            "INSERT INTO parent VALUES (3, 'toolong', 1)".into(),
            "22001",
        ),
        (
            format!("INSERT INTO notes VALUES (1, 'small'), (2, '{big}')"),
            "54000",
        ),
        (
            format!(
                "CREATE TABLE wide (k TEXT PRIMARY KEY); INSERT INTO wide VALUES ('{long_key}')"
            ),
            "54000",
        ),
        ("SELECT 'not a date'::date".into(), "22007"),
        ("SELECT '{1,2'::int[]".into(), "22P02"),
        ("SELECT '{\"a\":'::jsonb".into(), "22P02"),
        ("CREATE TABLE parent (id INT)".into(), "42P07"),
        ("DROP TABLE nowhere".into(), "42P01"),
        ("COMMIT AND CHAIN".into(), "25P01"),
        // One node has no ranges to split.
        ("ALTER TABLE parent SPLIT AT VALUES (5)".into(), "0A000"),
        ("ALTER TABLE nowhere SPLIT AT VALUES (5)".into(), "42P01"),
    ];
    for (sql, want) in &cases {
        assert_eq!(simple_error(&c, sql).await, *want, "simple: {sql:.120}");
        if !sql.contains(';') && !sql.starts_with("COMMIT") {
            assert_eq!(extended_error(&c, sql).await, *want, "extended: {sql:.120}");
        }
        // The connection still serves, and nothing changed.
        assert_eq!(
            count(&c, "SELECT count(*) FROM parent").await,
            2,
            "{sql:.120}"
        );
        assert_eq!(
            count(&c, "SELECT count(*) FROM child").await,
            1,
            "{sql:.120}"
        );
        assert_eq!(count(&c, "SELECT sum(qty)::int8 FROM parent").await, 3);
        assert_eq!(count(&c, "SELECT count(*) FROM notes").await, 0);
    }
    // Inside a transaction an error aborts it (25P02) until ROLLBACK, which undoes the
    // earlier writes of the transaction.
    c.batch_execute("BEGIN; INSERT INTO parent VALUES (5, 'five', 5)")
        .await
        .unwrap();
    assert_eq!(simple_error(&c, "SELECT 1 / 0").await, "22012");
    assert_eq!(simple_error(&c, "SELECT 1").await, "25P02");
    c.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(count(&c, "SELECT count(*) FROM parent").await, 2);
    // A large value below the limit round-trips intact.
    let ok_big = "y".repeat(2 * 1024 * 1024);
    c.execute("INSERT INTO notes VALUES (1, $1)", &[&ok_big])
        .await
        .unwrap();
    let back: String = c
        .query_one("SELECT body FROM notes WHERE id = 1", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(back, ok_big);
    ts.stop().await;
}

/// Builds a startup message for user root and database postgres.
fn startup() -> BytesMut {
    let mut body = BytesMut::new();
    body.put_i32(196_608);
    for s in ["user", "root", "database", "postgres"] {
        body.put_slice(s.as_bytes());
        body.put_u8(0);
    }
    body.put_u8(0);
    let mut m = BytesMut::new();
    m.put_i32(body.len() as i32 + 4);
    m.put_slice(&body);
    m
}

/// A typed message with a correct length.
fn message(tag: u8, body: &[u8]) -> BytesMut {
    let mut m = BytesMut::new();
    m.put_u8(tag);
    m.put_i32(body.len() as i32 + 4);
    m.put_slice(body);
    m
}

/// Reads backend messages until ReadyForQuery (returning every message) or the end of
/// the connection.
async fn read_until_ready(s: &mut TcpStream) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    loop {
        let mut head = [0u8; 5];
        let read = tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut head)).await;
        match read {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => return out,
            Err(_) => panic!("server sent nothing for 10 s; so far: {out:?}"),
        }
        let len = i32::from_be_bytes(head[1..5].try_into().unwrap()) as usize - 4;
        let mut body = vec![0u8; len];
        s.read_exact(&mut body).await.unwrap();
        let tag = head[0];
        out.push((tag, body));
        if tag == b'Z' {
            return out;
        }
    }
}

/// The SQLSTATE and severity of an ErrorResponse body.
fn error_fields(body: &[u8]) -> (String, String) {
    let mut code = String::new();
    let mut severity = String::new();
    for field in body.split(|b| *b == 0) {
        match field.first() {
            Some(b'C') => code = String::from_utf8_lossy(&field[1..]).into_owned(),
            Some(b'S') => severity = String::from_utf8_lossy(&field[1..]).into_owned(),
            _ => {}
        }
    }
    (code, severity)
}

async fn raw_session(ts: &TestServer) -> TcpStream {
    let mut s = TcpStream::connect(ts.server.sql_addr()).await.unwrap();
    s.write_all(&startup()).await.unwrap();
    let msgs = read_until_ready(&mut s).await;
    assert!(
        msgs.iter()
            .any(|(t, b)| *t == b'R' && b[..4] == [0, 0, 0, 0]),
        "no AuthenticationOk: {msgs:?}"
    );
    s
}

#[tokio::test]
async fn invalid_utf8_is_22021_and_the_session_goes_on() {
    let ts = TestServer::start().await;
    let c = connect(&ts.url()).await.unwrap();
    c.batch_execute("CREATE TABLE notes (id INT PRIMARY KEY, body TEXT)")
        .await
        .unwrap();
    let mut s = raw_session(&ts).await;
    // Simple query whose text holds a byte sequence that is not UTF-8.
    s.write_all(&message(
        b'Q',
        b"INSERT INTO notes VALUES (1, '\xff\xfe')\0",
    ))
    .await
    .unwrap();
    let msgs = read_until_ready(&mut s).await;
    let err = msgs.iter().find(|(t, _)| *t == b'E').expect("an error");
    assert_eq!(error_fields(&err.1).0, "22021");
    // The same session still works.
    s.write_all(&message(b'Q', b"INSERT INTO notes VALUES (2, 'fine')\0"))
        .await
        .unwrap();
    let msgs = read_until_ready(&mut s).await;
    assert!(msgs.iter().all(|(t, _)| *t != b'E'), "{msgs:?}");
    // A bind parameter with invalid UTF-8 in text format is 22021 as well.
    let mut parse = BytesMut::new();
    parse.put_slice(b"\0INSERT INTO notes VALUES (3, $1)\0");
    parse.put_i16(1);
    parse.put_u32(25);
    let mut bind = BytesMut::new();
    bind.put_slice(b"\0\0");
    bind.put_i16(0);
    bind.put_i16(1);
    bind.put_i32(2);
    bind.put_slice(b"\xc3\x28");
    bind.put_i16(0);
    let mut execute = BytesMut::new();
    execute.put_slice(b"\0");
    execute.put_i32(0);
    let mut batch = message(b'P', &parse);
    batch.extend_from_slice(&message(b'B', &bind));
    batch.extend_from_slice(&message(b'E', &execute));
    batch.extend_from_slice(&message(b'S', b""));
    s.write_all(&batch).await.unwrap();
    let msgs = read_until_ready(&mut s).await;
    let err = msgs.iter().find(|(t, _)| *t == b'E').expect("an error");
    assert_eq!(error_fields(&err.1).0, "22021");
    let rows = c
        .query("SELECT id FROM notes ORDER BY id", &[])
        .await
        .unwrap();
    let ids: Vec<i32> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(ids, vec![2]);
    ts.stop().await;
}

#[tokio::test]
async fn wrong_message_lengths_end_only_that_connection() {
    let ts = TestServer::start().await;
    let c = connect(&ts.url()).await.unwrap();
    c.batch_execute("CREATE TABLE kv (k INT PRIMARY KEY, v INT)")
        .await
        .unwrap();
    let bad_frames: Vec<Vec<u8>> = vec![
        // Length below the 4 bytes of the length itself.
        vec![b'Q', 0, 0, 0, 2],
        // Negative length.
        vec![b'Q', 0xff, 0xff, 0xff, 0xf0],
        // Longer than any message may be.
        vec![b'Q', 0x7f, 0xff, 0xff, 0xff],
        // A Sync that claims a body it does not have the shape for.
        vec![b'S', 0, 0, 0, 9, 1, 2, 3, 4, 5],
        // A Bind whose declared contents overrun its length.
        {
            let mut b = vec![b'B', 0, 0, 0, 10, 0, 0, 0, 1];
            b.extend_from_slice(&[0xff; 5]);
            b
        },
    ];
    for frame in bad_frames {
        let mut s = raw_session(&ts).await;
        s.write_all(&frame).await.unwrap();
        let msgs = read_until_ready(&mut s).await;
        let err = msgs
            .iter()
            .find(|(t, _)| *t == b'E')
            .unwrap_or_else(|| panic!("no error for {frame:?}: {msgs:?}"));
        let (code, severity) = error_fields(&err.1);
        assert_eq!(code, "08P01", "frame {frame:?}");
        assert_eq!(severity, "FATAL", "frame {frame:?}");
        // The server closes this connection...
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest)).await;
        assert!(closed.is_ok(), "connection left open after {frame:?}");
        // ...and keeps serving everyone else.
        c.execute(
            "INSERT INTO kv VALUES ($1, 1)",
            &[&(rest.len() as i32 + 1000)],
        )
        .await
        .map(|_| ())
        .or_else(|e| {
            // The same key twice (rest is usually empty) is fine: the point is a reply.
            if e.code().map(|c| c.code()) == Some("23505") {
                Ok(())
            } else {
                Err(e)
            }
        })
        .unwrap();
    }
    // A garbage startup packet is refused without harm.
    let mut s = TcpStream::connect(ts.server.sql_addr()).await.unwrap();
    s.write_all(&[0, 0, 0, 3, 0xde, 0xad]).await.unwrap();
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest))
        .await
        .expect("garbage startup left open");
    assert_eq!(count(&c, "SELECT count(*) FROM kv").await, 1);
    ts.stop().await;
}

#[tokio::test]
async fn a_client_that_vanishes_mid_transaction_releases_its_locks() {
    let ts = TestServer::start().await;
    let c = connect(&ts.url()).await.unwrap();
    c.batch_execute(
        "CREATE TABLE acct (id INT PRIMARY KEY, bal INT); INSERT INTO acct VALUES (1, 100), (2, 100)",
    )
    .await
    .unwrap();
    for round in 0..3 {
        // A raw client takes row locks and writes, then disappears without a word.
        let mut s = raw_session(&ts).await;
        s.write_all(&message(
            b'Q',
            b"BEGIN; UPDATE acct SET bal = bal - 50 WHERE id = 1; SELECT * FROM acct WHERE id = 2 FOR UPDATE\0",
        ))
        .await
        .unwrap();
        let msgs = read_until_ready(&mut s).await;
        assert!(msgs.iter().all(|(t, _)| *t != b'E'), "{msgs:?}");
        if round == 2 {
            // Half a message, then gone.
            s.write_all(&[b'Q', 0, 0, 0, 50, b'S']).await.unwrap();
        }
        drop(s);
        // Another client gets both rows promptly, and sees none of the vanished writes.
        let started = std::time::Instant::now();
        let n = tokio::time::timeout(
            Duration::from_secs(10),
            c.execute("UPDATE acct SET bal = bal + 1 WHERE id IN (1, 2)", &[]),
        )
        .await
        .expect("rows still locked 10 s after the client vanished")
        .unwrap();
        assert_eq!(n, 2);
        assert!(started.elapsed() < Duration::from_secs(10));
        let rows = c
            .query("SELECT bal FROM acct ORDER BY id", &[])
            .await
            .unwrap();
        let bals: Vec<i32> = rows.iter().map(|r| r.get(0)).collect();
        assert_eq!(bals, vec![101 + round, 101 + round], "round {round}");
    }
    ts.stop().await;
}

#[tokio::test]
async fn a_bad_row_fails_the_whole_copy() {
    use futures::SinkExt;

    let ts = TestServer::start().await;
    let c = connect(&ts.url()).await.unwrap();
    c.batch_execute("CREATE TABLE items (id INT PRIMARY KEY, name TEXT NOT NULL)")
        .await
        .unwrap();
    // 25,000 good rows (more than one internal batch), then a bad one.
    let mut data = String::new();
    for i in 0..25_000 {
        data.push_str(&format!("{i}\titem {i}\n"));
    }
    data.push_str("oops\tnot a number\n");
    let sink = c
        .copy_in::<_, bytes::Bytes>("COPY items FROM STDIN")
        .await
        .unwrap();
    futures::pin_mut!(sink);
    let sent = sink.send(bytes::Bytes::from(data)).await;
    let finished = match sent {
        Ok(()) => sink.finish().await,
        Err(e) => Err(e),
    };
    let err = finished.expect_err("COPY with a bad row must fail");
    assert_eq!(err.code().map(|c| c.code()), Some("22P02"), "{err}");
    // Nothing of it was written: COPY outside a transaction is atomic.
    assert_eq!(count(&c, "SELECT count(*) FROM items").await, 0);
    // And a good COPY after it works.
    let sink = c
        .copy_in::<_, bytes::Bytes>("COPY items FROM STDIN")
        .await
        .unwrap();
    futures::pin_mut!(sink);
    sink.send(bytes::Bytes::from_static(b"1\tone\n2\ttwo\n"))
        .await
        .unwrap();
    assert_eq!(sink.finish().await.unwrap(), 2);
    assert_eq!(count(&c, "SELECT count(*) FROM items").await, 2);
    ts.stop().await;
}
