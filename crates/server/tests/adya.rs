//! Elle-style isolation checking on a three-node cluster in one process under seeded faults.
//!
//! The `adya` crate generates list-append and rw-register transactions and checks the
//! recorded history for anomalies; here its runner drives them through SQL at SERIALIZABLE
//! against all three nodes, with each table split into ranges whose leaders are spread
//! over the nodes, while the links drop and delay messages and one node is killed and
//! restarted or cut off and healed. Each history must be strict-serializable: no anomaly
//! (G0, G1a/b/c, G-single, G2, their real-time variants). Ten seeds by default
//! (`TESSERA_SEEDS=n`; replay one with `TESSERA_SEED=n`).
#![allow(clippy::unwrap_used)]

#[path = "support/adya_sql.rs"]
mod adya_sql;
mod common;

use std::sync::Arc;
use std::time::Duration;

use adya::Valid;
use adya::r#gen::Kind;
use adya_sql::run_workload;
use base::{SystemClock, TableId, TenantId};
use kv::cluster::ClusterConfig;
use kv::tso::{LocalTso, TimestampOracle};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use server::cluster::{SqlCluster, SqlClusterConfig};
use storage::{GroupCommit, MemoryEngine};

type E = MemoryEngine;

/// Keys at which both tables are split (adya's keys count up from 1 as it retires them).
const SPLITS: &str = "(3), (6), (10), (20), (40)";

fn seeds() -> Vec<u64> {
    if let Ok(s) = std::env::var("TESSERA_SEED") {
        return vec![s.parse().expect("TESSERA_SEED is a number")];
    }
    let n = std::env::var("TESSERA_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    (1..=n).collect()
}

async fn start() -> SqlCluster<E> {
    let engine = || Arc::new(GroupCommit::new(Arc::new(MemoryEngine::new())));
    let tso: Arc<dyn TimestampOracle> =
        Arc::new(LocalTso::open(engine(), Arc::new(SystemClock), 1_000).unwrap());
    let config = SqlClusterConfig {
        kv: ClusterConfig {
            // User tables (ids from 100) apart from the meta range.
            split_keys: server::cluster::table_splits(100..101),
            heartbeat_ms: 50,
            election_timeout_ms: (300, 600),
            ..ClusterConfig::default()
        },
        ..SqlClusterConfig::default()
    };
    SqlCluster::start(
        vec![engine(), engine(), engine()],
        tso,
        Arc::new(SystemClock),
        config,
    )
    .await
    .unwrap()
}

/// Creates adya's tables, splits them and spreads the leaders of their ranges over the
/// nodes; returns the ranges.
async fn prepare(c: &SqlCluster<E>) -> Vec<u64> {
    let client = common::connect(&c.url(1).unwrap()).await.unwrap();
    adya_sql::create_tables(&client, SPLITS).await;
    let mut ranges = Vec::new();
    for table in ["adya_lists", "adya_regs"] {
        let oid: i64 = client
            .query_one(
                "SELECT oid::INT8 FROM pg_class WHERE relname = $1",
                &[&table],
            )
            .await
            .unwrap()
            .get(0);
        let start = codec::layout::table_prefix(TenantId::SYSTEM, TableId(oid as u64));
        let end = codec::layout::table_prefix(TenantId::SYSTEM, TableId(oid as u64 + 1));
        ranges.extend(
            c.kv()
                .ranges()
                .into_iter()
                .map(|r| r.desc)
                .filter(|d| d.span.start < end && (d.span.end.is_empty() || start < d.span.end))
                .map(|d| d.id),
        );
    }
    ranges.sort_unstable();
    ranges.dedup();
    // Range i led by node i % 3 + 1.
    for _ in 0..100 {
        let mut moved = false;
        for (i, &r) in ranges.iter().enumerate() {
            let want = i as u64 % 3 + 1;
            match c.kv().leader(r) {
                Some(l) if l == want => {}
                Some(l) => {
                    moved = true;
                    if let Ok(rep) = c.kv().replica(l, r) {
                        let _ = rep.raft().trigger().transfer_leader(want).await;
                    }
                }
                None => moved = true,
            }
        }
        if !moved {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ranges
}

fn urls(c: &SqlCluster<E>) -> Vec<String> {
    (1..=3).map(|n| c.url(n).unwrap()).collect()
}

async fn seed_run(seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let c = Arc::new(start().await);
    let ranges = prepare(&c).await;
    let drop_per_mille = rng.random_range(0..=20);
    let max_delay = Duration::from_millis(rng.random_range(0..=5));
    let victim = rng.random_range(1..=3u64);
    let kill = rng.random_bool(0.5);
    let fault_at = Duration::from_millis(rng.random_range(500..2_500));
    let fault_for = Duration::from_millis(rng.random_range(1_000..3_000));
    println!(
        "seed {seed}: ranges {ranges:?}; links drop {drop_per_mille}‰, delay up to {max_delay:?}; {} node {victim} at {fault_at:?} for {fault_for:?}",
        if kill { "kill" } else { "isolate" }
    );
    c.kv().set_faults(seed, drop_per_mille, max_delay);
    let nemesis = {
        let c = c.clone();
        tokio::spawn(async move {
            tokio::time::sleep(fault_at).await;
            if kill {
                c.kill(victim).await;
            } else {
                c.kv().isolate(victim);
            }
            tokio::time::sleep(fault_for).await;
            if kill {
                c.restart(victim).await.unwrap();
            } else {
                c.kv().heal();
            }
        })
    };
    let kind = if rng.random_bool(0.5) {
        Kind::ListAppend
    } else {
        Kind::RwRegister
    };
    let (valid, summary) = run_workload(urls(&c), kind, seed, 6, 6).await;
    nemesis.await.unwrap();
    c.kv().clear_faults();
    println!("seed {seed}: {summary}");
    assert_eq!(valid, Valid::True, "seed {seed}: {summary}");
    // And the other workload with the cluster healed.
    let other = match kind {
        Kind::ListAppend => Kind::RwRegister,
        Kind::RwRegister => Kind::ListAppend,
    };
    let (valid, summary) = run_workload(urls(&c), other, seed, 2, 6).await;
    println!("seed {seed}: {summary}");
    assert_eq!(valid, Valid::True, "seed {seed}: {summary}");
    Arc::try_unwrap(c).ok().unwrap().shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adya_histories_are_strict_serializable_under_faults() {
    for seed in seeds() {
        if let Err(e) = tokio::spawn(seed_run(seed)).await {
            panic!("adya failed with seed {seed} (replay: TESSERA_SEED={seed}): {e}");
        }
    }
}
