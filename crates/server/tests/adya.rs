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
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use server::cluster::SqlCluster;
use storage::MemoryEngine;

type E = MemoryEngine;

/// Keys at which both tables are split (adya's keys count up from 1 as it retires them).
const SPLITS: &str = "(3), (6), (10), (20), (40)";

/// Creates adya's tables, splits them and spreads the leaders of their ranges over the
/// nodes; returns the ranges.
async fn prepare(c: &SqlCluster<E>) -> Vec<u64> {
    let client = common::connect(&c.url(1).unwrap()).await.unwrap();
    adya_sql::create_tables(&client, SPLITS).await;
    let mut ranges = Vec::new();
    for table in ["adya_lists", "adya_regs"] {
        let descs = common::ranges_of_table(c, &client, table).await;
        ranges.extend(descs.into_iter().map(|d| d.id));
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
    // User tables (ids from 100) apart from the meta range.
    let c = Arc::new(common::start_cluster(100..101, Default::default()).await);
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
    for seed in common::seeds(10) {
        if let Err(e) = tokio::spawn(seed_run(seed)).await {
            panic!("adya failed with seed {seed} (replay: TESSERA_SEED={seed}): {e}");
        }
    }
}
