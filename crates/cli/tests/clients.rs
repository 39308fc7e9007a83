//! Real clients against the real `tessera` binary: psql (the `\d` family), pgbench in its
//! three protocol modes, psycopg 3, psycopg2, asyncpg, SQLAlchemy 2, tokio-postgres and
//! sqlx; and a pgbench run cut short by SIGKILL, checking that every transaction pgbench
//! saw committed survives the restart.
//!
//! External tools that are missing are skipped with a message, unless
//! `TESSERA_REQUIRE_CLIENTS=1` (set by CI), which makes a missing client a failure.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `tessera start-single-node` process.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    fn start(store: &Path) -> Server {
        Self::start_at(store, "127.0.0.1:0")
    }

    fn start_at(store: &Path, listen: &str) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tessera"))
            .args(["start-single-node", "--store"])
            .arg(store)
            .args(["--listen-addr", listen, "--http-addr", "127.0.0.1:0"])
            .env("TESSERA_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let addr = loop {
            let line = lines
                .next()
                .expect("server exited before printing its address")
                .unwrap();
            if let Some(rest) = line.trim().strip_prefix("sql:") {
                let url = rest.trim();
                let hostport = url.split('@').nth(1).unwrap().split('/').next().unwrap();
                break hostport.parse().unwrap();
            }
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Server { child, addr }
    }

    fn url(&self) -> String {
        format!("postgresql://root@{}/postgres", self.addr)
    }

    fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn stop(mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(
                    status.success(),
                    "server exited with {status} after SIGTERM"
                );
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        panic!("server did not stop within 20 s of SIGTERM");
    }
}

fn scripts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients")
}

fn required() -> bool {
    std::env::var("TESSERA_REQUIRE_CLIENTS").is_ok_and(|v| v == "1")
}

/// Returns false (after saying so) if `program` cannot run `args`.
fn available(program: &str, args: &[&str]) -> bool {
    let ok = Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            !required(),
            "{program} is required (TESSERA_REQUIRE_CLIENTS=1) but `{program} {}` failed",
            args.join(" ")
        );
        println!("SKIPPED: {program} {} is not available", args.join(" "));
    }
    ok
}

/// Runs a client script, failing the test with its output if it fails.
fn run(name: &str, mut cmd: Command) {
    let start = Instant::now();
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!(
        "--- {name} ({:.1}s)\n{}",
        start.elapsed().as_secs_f64(),
        text.trim_end()
    );
    assert!(out.status.success(), "{name} failed ({})", out.status);
}

fn python_client(server: &Server, module: &str, script: &str) {
    if !available("python3", &["-c", &format!("import {module}")]) {
        return;
    }
    let mut cmd = Command::new("python3");
    cmd.arg(scripts().join(script)).arg(server.url());
    run(script, cmd);
}

#[test]
fn command_line_and_python_clients() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let (host, port) = (server.addr.ip().to_string(), server.addr.port().to_string());
    if available("psql", &["--version"]) {
        let mut cmd = Command::new("bash");
        cmd.arg(scripts().join("psql.sh")).args([&host, &port]);
        run("psql", cmd);
    }
    if available("pgbench", &["--version"]) {
        let mut cmd = Command::new("bash");
        cmd.arg(scripts().join("pgbench.sh")).args([&host, &port]);
        run("pgbench", cmd);
    }
    python_client(&server, "psycopg", "psycopg3_test.py");
    python_client(&server, "psycopg2", "psycopg2_test.py");
    python_client(&server, "asyncpg", "asyncpg_test.py");
    python_client(&server, "sqlalchemy, psycopg", "sqlalchemy_test.py");
    server.stop();
}

#[test]
fn rust_clients() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let url = server.url();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // tokio-postgres: prepared statements with typed parameters and binary results.
        let (mut client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client
            .batch_execute(
                "CREATE TABLE tp (id BIGINT PRIMARY KEY, name TEXT, score FLOAT8, ok BOOL)",
            )
            .await
            .unwrap();
        let insert = client
            .prepare("INSERT INTO tp VALUES ($1, $2, $3, $4)")
            .await
            .unwrap();
        for i in 0..20i64 {
            client
                .execute(
                    &insert,
                    &[&i, &format!("n{i}"), &(i as f64 / 2.0), &(i % 2 == 0)],
                )
                .await
                .unwrap();
        }
        let row = client
            .query_one(
                "SELECT count(*), sum(score), max(name) FROM tp WHERE ok = $1",
                &[&true],
            )
            .await
            .unwrap();
        let (n, sum, max): (i64, f64, String) = (row.get(0), row.get(1), row.get(2));
        assert_eq!((n, sum, max.as_str()), (10, 45.0, "n8"));
        let err = client
            .execute(&insert, &[&1i64, &"dup", &0.0f64, &false])
            .await
            .unwrap_err();
        assert_eq!(
            err.code(),
            Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
        );
        let txn = client.transaction().await.unwrap();
        txn.execute("UPDATE tp SET name = 'changed' WHERE id = 1", &[])
            .await
            .unwrap();
        txn.rollback().await.unwrap();
        let name: String = client
            .query_one("SELECT name FROM tp WHERE id = 1", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(name, "n1");

        // sqlx: its own protocol implementation and type decoding.
        use sqlx::Row;
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(4)
            .connect(&url)
            .await
            .unwrap();
        sqlx::query(
            "CREATE TABLE sx (id INT PRIMARY KEY, label TEXT NOT NULL, amount NUMERIC(10, 2))",
        )
        .execute(&pool)
        .await
        .unwrap();
        for i in 0..10i32 {
            sqlx::query("INSERT INTO sx (id, label) VALUES ($1, $2)")
                .bind(i)
                .bind(format!("l{i}"))
                .execute(&pool)
                .await
                .unwrap();
        }
        let rows = sqlx::query("SELECT id, label FROM sx WHERE id >= $1 ORDER BY id")
            .bind(7i32)
            .fetch_all(&pool)
            .await
            .unwrap();
        let got: Vec<(i32, String)> = rows
            .iter()
            .map(|r| (r.get::<i32, _>(0), r.get::<String, _>(1)))
            .collect();
        assert_eq!(
            got,
            vec![(7, "l7".to_string()), (8, "l8".into()), (9, "l9".into())]
        );
        let total: i64 = sqlx::query_scalar("SELECT count(*) FROM sx")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(total, 10);
        let mut tx = pool.begin().await.unwrap();
        sqlx::query("DELETE FROM sx WHERE id < 5")
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let total: i64 = sqlx::query_scalar("SELECT count(*) FROM sx")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(total, 5);
        let err = sqlx::query("INSERT INTO sx (id) VALUES (100)")
            .execute(&pool)
            .await
            .unwrap_err();
        assert_eq!(
            err.as_database_error().and_then(|e| e.code()).as_deref(),
            Some("23502")
        );
        pool.close().await;
    });
    server.stop();
}

/// pgbench inserts rows (one per transaction, tagged with its client id) while the server
/// is killed with SIGKILL; pgbench's per-transaction log lists what it saw committed.
/// After a restart, every logged transaction's row must be there.
#[test]
fn pgbench_survives_sigkill() {
    if !available("pgbench", &["--version"]) || !available("psql", &["--version"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let script = work.join("insert.sql");
    std::fs::write(
        &script,
        "INSERT INTO ledger (client, note) VALUES (:client_id, 'x');\n",
    )
    .unwrap();
    let mut server = Server::start(&store);
    let psql = |addr: SocketAddr, sql: &str| -> String {
        let out = Command::new("psql")
            .args([
                "-X",
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                &addr.ip().to_string(),
                "-p",
                &addr.port().to_string(),
                "-U",
                "root",
                "postgres",
                "-c",
                sql,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    psql(
        server.addr,
        "CREATE TABLE ledger (id BIGSERIAL PRIMARY KEY, client INT NOT NULL, note TEXT)",
    );
    let mut acked: std::collections::BTreeMap<u32, u64> = std::collections::BTreeMap::new();
    let mut rng: rand::rngs::StdRng = rand::SeedableRng::seed_from_u64(std::process::id().into());
    for cycle in 0..3 {
        let prefix = work.join(format!("log{cycle}"));
        let mut bench = Command::new("pgbench")
            .args(["-n", "-c", "8", "-j", "2", "-T", "30", "-l", "--log-prefix"])
            .arg(&prefix)
            .arg("-f")
            .arg(&script)
            .args([
                "-h",
                &server.addr.ip().to_string(),
                "-p",
                &server.addr.port().to_string(),
                "-U",
                "root",
                "postgres",
            ])
            .current_dir(&work)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let wait_ms = rand::RngExt::random_range(&mut rng, 800..2500);
        std::thread::sleep(Duration::from_millis(wait_ms));
        let addr = server.addr;
        server.kill9();
        let _ = bench.wait();
        // Each log line is one transaction pgbench saw complete: "client_id txn_no ...".
        let mut this_cycle = 0;
        for entry in std::fs::read_dir(&work).unwrap() {
            let path = entry.unwrap().path();
            if !path
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&format!("log{cycle}"))
            {
                continue;
            }
            for line in std::fs::read_to_string(&path).unwrap().lines() {
                let mut f = line.split_whitespace();
                let client: u32 = f.next().unwrap().parse().unwrap();
                // Failed transactions are logged with a status instead of a latency.
                let latency = f.nth(1).unwrap_or("failed");
                if latency.parse::<u64>().is_ok() {
                    *acked.entry(client).or_default() += 1;
                    this_cycle += 1;
                }
            }
        }
        server = Server::start_at(&store, &addr.to_string());
        let counts = psql(
            server.addr,
            "SELECT client || ':' || count(*) FROM ledger GROUP BY client ORDER BY client",
        );
        let stored: std::collections::BTreeMap<u32, u64> = counts
            .lines()
            .map(|l| {
                let (c, n) = l.split_once(':').unwrap();
                (c.parse().unwrap(), n.parse().unwrap())
            })
            .collect();
        for (client, n) in &acked {
            let have = stored.get(client).copied().unwrap_or(0);
            assert!(
                have >= *n,
                "cycle {cycle}: client {client} saw {n} commits, the table has {have}"
            );
        }
        println!(
            "cycle {cycle}: killed after {wait_ms} ms; {this_cycle} acknowledged this cycle, all present (per client: {stored:?})"
        );
    }
    server.stop();
}
