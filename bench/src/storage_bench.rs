//! The storage, MVCC and transaction benchmark (issue: storage engine, MVCC and
//! transactions on one node).

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use server::{Node, NodeConfig};
use txn::{Span, TxnClient};

struct Options {
    dir: Option<PathBuf>,
    secs: u64,
    /// Run only the write benchmark with this many writers (for profiling).
    only_writers: Option<usize>,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        dir: None,
        secs: 10,
        only_writers: None,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--dir" => o.dir = Some(it.next().ok_or("--dir needs a value")?.into()),
            "--secs" => {
                o.secs = it
                    .next()
                    .ok_or("--secs needs a value")?
                    .parse()
                    .map_err(|_| "--secs: a number")?
            }
            "--only-writers" => {
                let n = it.next().ok_or("--only-writers needs a value")?;
                o.only_writers = Some(n.parse().map_err(|_| "--only-writers: a number")?);
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(o)
}

/// Latency percentiles of a sample, in microseconds.
pub(crate) fn percentiles(mut lat: Vec<Duration>) -> (f64, f64) {
    if lat.is_empty() {
        return (0.0, 0.0);
    }
    lat.sort();
    let at = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)].as_secs_f64() * 1e6;
    (at(0.50), at(0.99))
}

/// 4 KiB write + fdatasync in a loop for `secs`, one writer: the disk's serial floor.
fn raw_fsync(dir: &Path, secs: u64) -> Result<(f64, f64, f64), String> {
    let path = dir.join("raw-fsync.dat");
    let mut f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)
        .map_err(|e| e.to_string())?;
    let block = vec![0x5au8; 4096];
    let mut lat = Vec::new();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(secs) {
        let t = Instant::now();
        f.write_all(&block).map_err(|e| e.to_string())?;
        f.sync_data().map_err(|e| e.to_string())?;
        lat.push(t.elapsed());
        if lat.len() % 4096 == 0 {
            f.set_len(0).map_err(|e| e.to_string())?;
        }
    }
    let rate = lat.len() as f64 / start.elapsed().as_secs_f64();
    let (p50, p99) = percentiles(lat);
    let _ = std::fs::remove_file(path);
    Ok((rate, p50, p99))
}

struct WriteResult {
    tps: f64,
    p50_us: f64,
    p99_us: f64,
    commits_per_sync: f64,
    retries: u64,
}

async fn durable_writes(node: &Node, writers: usize, secs: u64) -> Result<WriteResult, String> {
    let before = node.commit_stats();
    let deadline = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let client = node.txn().clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut retries = 0u64;
            let mut rng = StdRng::seed_from_u64(w as u64);
            let value = vec![b'v'; 100];
            while Instant::now() < deadline {
                let key = format!("w/{w:03}/{:016x}", rng.random::<u64>()).into_bytes();
                let t = Instant::now();
                loop {
                    let mut txn = client.begin().await.map_err(|e| e.to_string())?;
                    txn.put(key.clone(), value.clone())
                        .map_err(|e| e.to_string())?;
                    match txn.commit().await {
                        Ok(_) => break,
                        Err(e) if e.is_retryable() => retries += 1,
                        Err(e) => return Err(e.to_string()),
                    }
                }
                lat.push(t.elapsed());
            }
            Ok::<_, String>((lat, retries))
        }));
    }
    let mut lat = Vec::new();
    let mut retries = 0;
    for t in tasks {
        let (l, r) = t.await.map_err(|e| e.to_string())??;
        lat.extend(l);
        retries += r;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let after = node.commit_stats();
    let syncs = (after.syncs - before.syncs).max(1);
    let commits = lat.len() as f64;
    let (p50_us, p99_us) = percentiles(lat);
    Ok(WriteResult {
        tps: commits / elapsed,
        p50_us,
        p99_us,
        commits_per_sync: commits / syncs as f64,
        retries,
    })
}

const ROWS: u64 = 100_000;

fn row_key(i: u64) -> Vec<u8> {
    format!("r/{i:010}").into_bytes()
}

async fn load(client: &TxnClient) -> Result<(), String> {
    for chunk in 0..(ROWS / 1000) {
        let mut t = client.begin().await.map_err(|e| e.to_string())?;
        for i in chunk * 1000..(chunk + 1) * 1000 {
            t.put(row_key(i), vec![b'x'; 100])
                .map_err(|e| e.to_string())?;
        }
        t.commit().await.map_err(|e| e.to_string())?;
    }
    Ok(())
}

async fn point_reads(
    client: &TxnClient,
    readers: usize,
    secs: u64,
) -> Result<(f64, f64, f64), String> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for r in 0..readers {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(r as u64);
            let mut lat = Vec::new();
            while Instant::now() < deadline {
                let t = Instant::now();
                let mut txn = client.begin().await.map_err(|e| e.to_string())?;
                let v = txn
                    .get(&row_key(rng.random_range(0..ROWS)))
                    .await
                    .map_err(|e| e.to_string())?;
                txn.commit().await.map_err(|e| e.to_string())?;
                if v.is_none() {
                    return Err("a loaded row is missing".to_string());
                }
                lat.push(t.elapsed());
            }
            Ok::<_, String>(lat)
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.map_err(|e| e.to_string())??);
    }
    let rate = lat.len() as f64 / started.elapsed().as_secs_f64();
    let (p50, p99) = percentiles(lat);
    Ok((rate, p50, p99))
}

async fn scans(client: &TxnClient, secs: u64) -> Result<f64, String> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let mut rows = 0u64;
    while Instant::now() < deadline {
        let mut txn = client.begin().await.map_err(|e| e.to_string())?;
        let mut span = Span::new(b"r/".to_vec(), b"r0".to_vec());
        loop {
            let out = txn
                .scan(&span, 1000, false)
                .await
                .map_err(|e| e.to_string())?;
            rows += out.pairs.len() as u64;
            match out.resume {
                Some(r) => span.start = r,
                None => break,
            }
        }
        txn.commit().await.map_err(|e| e.to_string())?;
    }
    Ok(rows as f64 / started.elapsed().as_secs_f64())
}

pub fn run(args: &[String]) -> Result<(), String> {
    let o = parse(args)?;
    let tmp = tempdir_in(o.dir.as_deref())?;
    let dir = tmp.path.clone();
    println!(
        "# tessera-bench storage: dir={} secs={} cores={}",
        dir.display(),
        o.secs,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let (raw, raw_p50, raw_p99) = if o.only_writers.is_some() {
        (1.0, 0.0, 0.0)
    } else {
        raw_fsync(&dir, o.secs)?
    };
    println!(
        "raw 4KiB write+fdatasync, 1 writer: {raw:.0} ops/s (p50 {raw_p50:.0} us, p99 {raw_p99:.0} us)"
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let node = Node::open(NodeConfig::new(dir.join("store"))).map_err(|e| e.to_string())?;
        if let Some(writers) = o.only_writers {
            let r = durable_writes(&node, writers, o.secs).await?;
            println!("{writers} writers: {:.0} txn/s, {:.1} commits/fsync", r.tps, r.commits_per_sync);
            return Ok(());
        }
        let mut single = 0.0;
        println!("| writers | txn/s | p50 ms | p99 ms | commits/fsync | retries | vs 1 writer | vs raw fsync |");
        println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
        for writers in [1, 16, 64] {
            let r = durable_writes(&node, writers, o.secs).await?;
            if writers == 1 {
                single = r.tps;
            }
            println!(
                "| {writers} | {:.0} | {:.2} | {:.2} | {:.1} | {} | {:.1}x | {:.2}x |",
                r.tps, r.p50_us / 1000.0, r.p99_us / 1000.0, r.commits_per_sync, r.retries,
                r.tps / single, r.tps / raw
            );
        }
        load(node.txn()).await?;
        for readers in [1, 4] {
            let (rate, p50, p99) = point_reads(node.txn(), readers, o.secs).await?;
            println!("point reads ({readers} readers, txn begin+get+commit, {ROWS} rows): {rate:.0} reads/s (p50 {p50:.0} us, p99 {p99:.0} us)");
        }
        let rows = scans(node.txn(), o.secs).await?;
        println!("rows scanned (1 scanner, pages of 1000): {rows:.0} rows/s");
        Ok::<_, String>(())
    })
}

/// A directory removed on drop.
struct TempDir {
    path: PathBuf,
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

fn tempdir_in(base: Option<&Path>) -> Result<TempDir, String> {
    let base = base.map_or_else(std::env::temp_dir, Path::to_path_buf);
    let path = base.join(format!("tessera-bench-{}", std::process::id()));
    std::fs::create_dir_all(&path).map_err(|e| e.to_string())?;
    Ok(TempDir { path })
}
