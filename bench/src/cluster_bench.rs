//! Durable single-row writes on a 3-node cluster (issue: replicated ranges), through the
//! transactional KV API and through SQL, at several client counts.
//!
//! The nodes run in this process (`server::cluster::SqlCluster`, one fjall store per node,
//! every range replicated 3 ways by Raft, log appends fsynced by each node's group commit);
//! SQL goes over the PostgreSQL protocol on loopback, to the nodes in turn. Each write
//! is a transaction that puts one 256-byte value at a random key of 100,000 and is
//! acknowledged once a quorum has the log entry on disk.
//!
//! With `--urls`, the SQL half runs against a cluster of processes already started
//! (`tessera start`, one PostgreSQL URL per node), the clients spread over the nodes; with
//! `--hosts` (the nodes' RPC addresses) as well, the KV half runs against it too, through
//! `kv::node::client::RemoteClient` (the nodes' gRPC service: a timestamp from the meta
//! range's leaseholder, then a one-phase commit sent to the key's leaseholder), on keys
//! of an otherwise unused table's range.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use server::cluster::{SqlCluster, SqlClusterConfig, table_splits};

struct Options {
    dir: Option<PathBuf>,
    secs: u64,
    clients: Vec<usize>,
    /// PostgreSQL URLs of a running cluster's nodes; empty: an in-process cluster.
    urls: Vec<String>,
    /// RPC addresses of the running cluster's nodes, for the KV half.
    hosts: Vec<String>,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        dir: None,
        secs: 10,
        clients: vec![1, 16, 128],
        urls: Vec::new(),
        hosts: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--dir" => o.dir = Some(value()?.into()),
            "--urls" => o.urls = value()?.split(',').map(str::to_string).collect(),
            "--hosts" => o.hosts = value()?.split(',').map(str::to_string).collect(),
            "--secs" => o.secs = value()?.parse().map_err(|_| "--secs: a number")?,
            "--clients" => {
                o.clients = value()?
                    .split(',')
                    .map(|c| {
                        c.parse()
                            .map_err(|_| "--clients: numbers separated by commas")
                    })
                    .collect::<Result<_, _>>()?
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(o)
}

const KEYS: u64 = 100_000;
const VALUE_LEN: usize = 256;

/// Throughput (per second) and p50/p99 latency (ms) of a run.
struct Outcome {
    rate: f64,
    p50: f64,
    p99: f64,
    errors: usize,
}

fn outcome(lat: Vec<Duration>, errors: usize, elapsed: Duration) -> Outcome {
    let rate = lat.len() as f64 / elapsed.as_secs_f64();
    let (p50_us, p99_us) = crate::storage_bench::percentiles(lat);
    Outcome {
        rate,
        p50: p50_us / 1e3,
        p99: p99_us / 1e3,
        errors,
    }
}

/// Runs `clients` workers for `secs`, each calling `op` with its random generator, and
/// measures every call.
async fn drive<F, Fut>(clients: usize, secs: u64, op: F) -> Outcome
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), String>> + Send,
{
    let op = Arc::new(op);
    let deadline = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let workers: Vec<_> = (0..clients)
        .map(|w| {
            let op = op.clone();
            tokio::spawn(async move {
                let mut rng = StdRng::seed_from_u64(w as u64);
                let (mut lat, mut errors) = (Vec::new(), 0);
                while Instant::now() < deadline {
                    let t = Instant::now();
                    match op(w, rng.random_range(0..KEYS)).await {
                        Ok(()) => lat.push(t.elapsed()),
                        Err(e) => {
                            errors += 1;
                            if errors <= 3 {
                                eprintln!("worker {w}: {e}");
                            }
                        }
                    }
                }
                (lat, errors)
            })
        })
        .collect();
    let (mut lat, mut errors) = (Vec::new(), 0);
    for w in workers {
        let (l, e) = w.await.expect("worker panicked");
        lat.extend(l);
        errors += e;
    }
    outcome(lat, errors, started.elapsed())
}

pub fn run(args: &[String]) -> Result<(), String> {
    let o = parse(args)?;
    let tmp;
    let dir = match &o.dir {
        Some(d) => d.clone(),
        None => {
            tmp =
                std::env::temp_dir().join(format!("tessera-cluster-bench-{}", std::process::id()));
            tmp.clone()
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    if !o.urls.is_empty() {
        return rt.block_on(bench_processes(&o));
    }
    let result = rt.block_on(bench(&o, &dir));
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn bench(o: &Options, dir: &std::path::Path) -> Result<(), String> {
    let mut config = SqlClusterConfig::default();
    config.kv.split_keys = table_splits(100..110);
    let cluster = Arc::new(
        SqlCluster::open(dir, 3, config)
            .await
            .map_err(|e| e.to_string())?,
    );
    let nodes = cluster.kv().nodes();
    let admin_url = cluster.url(1).ok_or("node 1 is down")?;
    let (admin, conn) = tokio_postgres::connect(&admin_url, tokio_postgres::NoTls)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    admin
        .batch_execute("CREATE TABLE kv (k INT8 PRIMARY KEY, v TEXT NOT NULL)")
        .await
        .map_err(|e| e.to_string())?;
    let value = "v".repeat(VALUE_LEN);
    println!(
        "3-node cluster in one process (fjall stores under {}), 256-byte values, {} keys, {} s per point",
        dir.display(),
        KEYS,
        o.secs
    );
    println!("| path | clients | writes/s | p50 ms | p99 ms | errors |");
    println!("|---|---:|---:|---:|---:|---:|");
    for &clients in &o.clients {
        // The transactional KV API: one put per transaction, from every node in turn.
        let kvs: Vec<_> = nodes
            .iter()
            .map(|&n| cluster.sql(n).map(|s| s.client.clone()).ok_or("node down"))
            .collect::<Result<_, _>>()?;
        let v = value.clone().into_bytes();
        let r = drive(clients, o.secs, move |w, k| {
            let client = kvs[w % kvs.len()].clone();
            let v = v.clone();
            async move {
                let mut t = client.begin().await.map_err(|e| e.to_string())?;
                t.put(format!("bench/k{k:08}").into_bytes(), v)
                    .map_err(|e| e.to_string())?;
                t.commit().await.map(|_| ()).map_err(|e| e.to_string())
            }
        })
        .await;
        println!(
            "| KV | {clients} | {:.0} | {:.2} | {:.2} | {} |",
            r.rate, r.p50, r.p99, r.errors
        );

        let urls: Vec<String> = nodes
            .iter()
            .map(|&n| cluster.url(n).ok_or("node down"))
            .collect::<Result<_, _>>()?;
        sql_point(&urls, clients, o.secs, &value).await?;
    }
    cluster.shutdown().await;
    Ok(())
}

/// Runs the SQL workload against a cluster of processes, one PostgreSQL URL per node.
async fn bench_processes(o: &Options) -> Result<(), String> {
    let (admin, conn) = tokio_postgres::connect(&o.urls[0], tokio_postgres::NoTls)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    admin
        .batch_execute("CREATE TABLE IF NOT EXISTS kv (k INT8 PRIMARY KEY, v TEXT NOT NULL)")
        .await
        .map_err(|e| e.to_string())?;
    println!(
        "cluster of {} processes ({}), 256-byte values, {} keys, {} s per point",
        o.urls.len(),
        o.urls.join(" "),
        KEYS,
        o.secs
    );
    println!("| path | clients | writes/s | p50 ms | p99 ms | errors |");
    println!("|---|---:|---:|---:|---:|---:|");
    let value = "v".repeat(VALUE_LEN);
    let remote = match o.hosts.is_empty() {
        true => None,
        false => Some(kv::node::client::RemoteClient::connect(&o.hosts).await?),
    };
    for &clients in &o.clients {
        if let Some(remote) = &remote {
            kv_point(remote, clients, o.secs, &value).await;
        }
        sql_point(&o.urls, clients, o.secs, &value).await?;
    }
    Ok(())
}

/// One KV point against a cluster of processes: each write takes a start timestamp (and
/// reserves the next for its commit) and commits one put in one phase at the key's
/// leaseholder.
async fn kv_point(remote: &kv::node::client::RemoteClient, clients: usize, secs: u64, value: &str) {
    use kv::KvService;
    let (kv, tso) = (remote.kv(), remote.tso());
    // Table 115's range: created at init, unused by the SQL half.
    let prefix = codec::layout::table_prefix(base::TenantId::SYSTEM, base::TableId(115));
    let v = value.as_bytes().to_vec();
    let r = drive(clients, secs, move |_, k| {
        let (kv, tso, v) = (kv.clone(), tso.clone(), v.clone());
        let mut key = prefix.clone();
        key.extend_from_slice(&k.to_be_bytes());
        async move {
            // The start timestamp and its successor, reserved for the commit (as
            // `TxnClient::begin` does).
            let start_ts = tso.timestamps(2).await.map_err(|e| e.to_string())?;
            let req = kv::Request::OnePhaseCommit {
                mutations: vec![mvcc::Mutation::Put { key, value: v }],
                reads: Default::default(),
                start_ts,
                deadline: None,
                reserved: Some(start_ts.next()),
            };
            match kv.send(req).await {
                Ok(kv::Response::Committed(_)) => Ok(()),
                Ok(other) => Err(format!("unexpected answer {other:?}")),
                Err(e) => Err(e.to_string()),
            }
        }
    })
    .await;
    println!(
        "| KV | {clients} | {:.0} | {:.2} | {:.2} | {} |",
        r.rate, r.p50, r.p99, r.errors
    );
}

/// One SQL point: `clients` connections spread over `urls`, each upserting one row per
/// statement over the PostgreSQL protocol.
async fn sql_point(urls: &[String], clients: usize, secs: u64, value: &str) -> Result<(), String> {
    let mut conns = Vec::new();
    for i in 0..clients {
        let (c, conn) = tokio_postgres::connect(&urls[i % urls.len()], tokio_postgres::NoTls)
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let stmt = c
            .prepare("INSERT INTO kv VALUES ($1, $2) ON CONFLICT (k) DO UPDATE SET v = excluded.v")
            .await
            .map_err(|e| e.to_string())?;
        conns.push(Arc::new((c, stmt)));
    }
    let v = value.to_string();
    let r = drive(clients, secs, move |w, k| {
        let c = conns[w].clone();
        let v = v.clone();
        async move {
            c.0.execute(&c.1, &[&(k as i64), &v])
                .await
                .map(|_| ())
                .map_err(|e| match e.as_db_error() {
                    Some(db) => format!("{}: {}", db.code().code(), db.message()),
                    None => e.to_string(),
                })
        }
    })
    .await;
    println!(
        "| SQL | {clients} | {:.0} | {:.2} | {:.2} | {} |",
        r.rate, r.p50, r.p99, r.errors
    );
    Ok(())
}
