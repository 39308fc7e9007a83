//! Golden-script tests of transactions: one scenario per file in `tests/scripts/`, with a
//! script per isolation anomaly. Commands are prefixed with the transaction's name
//! (`t1: get a`). The key space is split at `m`, so a transaction touching keys on both
//! sides commits in two phases. Regenerate with
//! `UPDATE_GOLDENFILES=1 cargo test -p tessera-txn --test golden`.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::error::Error;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use base::{ManualClock, Timestamp};
use goldenscript::{Argument, Command, Context};
use kv::tso::LocalTso;
use kv::{KvService, LocalKv, LocalKvConfig, RangeDesc, Request, Response};
use storage::{GroupCommit, Keyspace, MemoryEngine, ReadView};
use txn::{CommitStop, Savepoint, Span, Transaction, TxnClient, TxnConfig};

type Res = Result<String, Box<dyn Error>>;

const CLOCK_START_MS: u64 = 1_000;

/// The key-value service with a count of the requests sent to it, by kind.
struct Counting {
    kv: LocalKv<MemoryEngine>,
    sent: std::sync::Mutex<[u64; kv::stats::REQUEST_KINDS.len()]>,
}

#[async_trait::async_trait]
impl KvService for Counting {
    async fn send(&self, req: Request) -> kv::Result<Response> {
        self.sent.lock().unwrap()[req.kind()] += 1;
        self.kv.send(req).await
    }

    async fn range_of(&self, key: &[u8]) -> kv::Result<RangeDesc> {
        self.kv.range_of(key).await
    }

    async fn ranges(&self, span: &Span) -> kv::Result<Vec<RangeDesc>> {
        self.kv.ranges(span).await
    }
}

struct Runner {
    rt: tokio::runtime::Runtime,
    engine: Arc<MemoryEngine>,
    kv: Arc<Counting>,
    client: TxnClient,
    clock: ManualClock,
    txns: HashMap<String, Transaction>,
    savepoints: HashMap<(String, String), Savepoint>,
}

fn show(b: &[u8]) -> String {
    b.escape_ascii().to_string()
}

/// Timestamps relative to the clock's start, so scripts read small numbers.
fn rel(ts: Timestamp) -> u64 {
    ts.get() - Timestamp::from_parts(CLOCK_START_MS, 0).get()
}

impl Runner {
    fn new() -> Self {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let engine = Arc::new(MemoryEngine::new());
        let clock = ManualClock::new(CLOCK_START_MS);
        let commit = Arc::new(GroupCommit::new(engine.clone()));
        let tso = Arc::new(LocalTso::open(commit.clone(), Arc::new(clock.clone()), 3000).unwrap());
        let config = LocalKvConfig {
            split_keys: vec![b"m".to_vec()],
        };
        let kv = Arc::new(Counting {
            kv: LocalKv::new(commit, tso.clone(), Arc::new(clock.clone()), config),
            sent: Default::default(),
        });
        let txn_config = TxnConfig {
            lock_wait_timeout: Duration::from_millis(100),
            max_txn_bytes: 512,
            gc_ttl_ms: 0,
            ..TxnConfig::default()
        };
        let client = TxnClient::new(kv.clone(), tso, Arc::new(clock.clone()), txn_config);
        Runner {
            rt,
            engine,
            kv,
            client,
            clock,
            txns: HashMap::new(),
            savepoints: HashMap::new(),
        }
    }

    fn txn(&mut self, name: &str) -> Result<&mut Transaction, Box<dyn Error>> {
        self.txns
            .get_mut(name)
            .ok_or_else(|| format!("no transaction {name}").into())
    }

    /// Runs `f` on a transaction with the runtime (only `Runtime::block_on` drives timers).
    fn with_txn<T>(
        &mut self,
        name: &str,
        f: impl FnOnce(&mut Transaction, &tokio::runtime::Runtime) -> txn::Result<T>,
    ) -> Result<T, Box<dyn Error>> {
        let t = self
            .txns
            .get_mut(name)
            .ok_or_else(|| format!("no transaction {name}"))?;
        Ok(f(t, &self.rt)?)
    }

    fn dump(&self) -> Res {
        let mut out = String::new();
        let all = |ks| {
            self.engine.scan(
                ks,
                std::ops::Bound::Unbounded,
                std::ops::Bound::Unbounded,
                false,
            )
        };
        for kv in all(Keyspace::Mvcc) {
            let (k, v) = kv?;
            let (key, ts) = mvcc::key::decode(&k)?;
            let v = mvcc::Version::decode(&k, &v)?;
            let value = if v.kind == mvcc::WriteKind::Put {
                format!(" {:?}", show(&v.value))
            } else {
                String::new()
            };
            writeln!(out, "{}@{} {:?}{}", show(&key), rel(ts), v.kind, value)?;
        }
        for kv in all(Keyspace::Locks) {
            let (k, v) = kv?;
            let l = mvcc::Lock::decode(&k, &v)?;
            writeln!(
                out,
                "lock {} {:?} primary={} start={}",
                show(&k),
                l.kind,
                show(&l.primary),
                rel(l.start_ts)
            )?;
        }
        Ok(out)
    }
}

fn positional(cmd: &Command) -> Vec<String> {
    cmd.args
        .iter()
        .filter_map(|a| match a {
            Argument::Positional(p) => Some(p.clone()),
            _ => None,
        })
        .collect()
}

fn key_value(cmd: &Command, key: &str) -> Option<String> {
    cmd.args.iter().rev().find_map(|a| match a {
        Argument::KeyValue(k, v) if k == key => Some(v.clone()),
        _ => None,
    })
}

impl goldenscript::Runner for Runner {
    type Command = Command;

    fn run(&mut self, cmd: &Command, ctx: &Context) -> Res {
        let name = ctx.prefix.clone().unwrap_or_default();
        let mut out = String::new();
        match cmd.name.as_str() {
            "begin" => {
                let t = self.rt.block_on(self.client.begin())?;
                self.txns.insert(name, t);
            }
            "get" => {
                let keys: Vec<Vec<u8>> = positional(cmd)
                    .into_iter()
                    .map(String::into_bytes)
                    .collect();
                let values = self.with_txn(&name, |t, rt| rt.block_on(t.batch_get(&keys)))?;
                for (k, v) in keys.iter().zip(values) {
                    writeln!(
                        out,
                        "{} = {}",
                        show(k),
                        v.map_or("None".into(), |v| format!("{:?}", show(&v)))
                    )?;
                }
            }
            "put" => {
                for a in &cmd.args {
                    if let Argument::KeyValue(k, v) = a {
                        self.txn(&name)?
                            .put(k.clone().into_bytes(), v.clone().into_bytes())?;
                    }
                }
            }
            "delete" => {
                for k in positional(cmd) {
                    self.txn(&name)?.delete(k.into_bytes())?;
                }
            }
            "scan" => {
                let span = Span::new(
                    key_value(cmd, "from").unwrap_or_default().into_bytes(),
                    key_value(cmd, "to").unwrap_or_default().into_bytes(),
                );
                let limit = key_value(cmd, "limit").map_or(Ok(usize::MAX), |l| l.parse())?;
                let reverse = positional(cmd).iter().any(|p| p == "reverse");
                let res =
                    self.with_txn(&name, |t, rt| rt.block_on(t.scan(&span, limit, reverse)))?;
                for (k, v) in res.pairs {
                    writeln!(out, "{} = {:?}", show(&k), show(&v))?;
                }
                if let Some(r) = res.resume {
                    writeln!(out, "resume at {:?}", show(&r))?;
                }
            }
            "lock" => {
                let keys: Vec<Vec<u8>> = positional(cmd)
                    .into_iter()
                    .map(String::into_bytes)
                    .collect();
                let values = self.with_txn(&name, |t, rt| rt.block_on(t.lock_for_update(&keys)))?;
                for (k, v) in keys.iter().zip(values) {
                    writeln!(
                        out,
                        "{} = {}",
                        show(k),
                        v.map_or("None".into(), |v| format!("{:?}", show(&v)))
                    )?;
                }
            }
            "note_until" => {
                // `t1: note_until KEY MS`: the value of KEY (not read from the store) is
                // known to hold from the read timestamp for MS milliseconds.
                let mut args = positional(cmd);
                let ms: u64 = args.pop().ok_or("note_until KEY MS")?.parse()?;
                let key = args.pop().ok_or("note_until KEY MS")?;
                let t = self.txn(&name)?;
                let deadline = t.read_ts().plus_ms(ms);
                t.note_read_until(key.as_bytes(), deadline);
            }
            "fence" => {
                // `t1: fence KEY=VALUE`: writes KEY and prewrites it at once, then moves
                // the snapshot past it (`Transaction::put_and_wait_out` with no cache
                // window to wait out: the manual clock would not move).
                for a in &cmd.args {
                    if let Argument::KeyValue(k, v) = a {
                        let (k, v) = (k.clone().into_bytes(), v.clone().into_bytes());
                        self.with_txn(&name, |t, rt| {
                            rt.block_on(t.put_and_wait_out(k, v, Duration::ZERO))
                        })?;
                    }
                }
            }
            "savepoint" => {
                let sp_name = positional(cmd).pop().ok_or("savepoint NAME")?;
                let sp = self.txn(&name)?.savepoint();
                self.savepoints.insert((name, sp_name), sp);
            }
            "rollback_to" => {
                let sp_name = positional(cmd).pop().ok_or("rollback_to NAME")?;
                let sp = self
                    .savepoints
                    .get(&(name.clone(), sp_name))
                    .ok_or("no such savepoint")?;
                let t = self.txns.get_mut(&name).ok_or("no transaction")?;
                t.rollback_to(sp);
            }
            "commit" => {
                let mut t = self.txns.remove(&name).ok_or("no transaction")?;
                let ts = self.rt.block_on(t.commit())?;
                let kind = if ts == t.start_ts() {
                    "read-only"
                } else {
                    "committed"
                };
                writeln!(out, "{kind}")?;
            }
            "commit_stop" => {
                let stop = match positional(cmd).pop().as_deref() {
                    Some("after_prewrite") => CommitStop::AfterPrewrite,
                    Some("after_primary") => CommitStop::AfterPrimary,
                    _ => return Err("commit_stop after_prewrite|after_primary".into()),
                };
                let mut t = self.txns.remove(&name).ok_or("no transaction")?;
                self.rt.block_on(t.commit_and_stop(stop))?;
                // The coordinator "crashes": its transaction object is forgotten.
                std::mem::forget(t);
            }
            "rollback" => {
                let mut t = self.txns.remove(&name).ok_or("no transaction")?;
                self.rt.block_on(t.rollback())?;
            }
            "gc" => {
                let report = self.rt.block_on(self.client.gc())?;
                writeln!(
                    out,
                    "gc at {}: removed {} versions",
                    rel(report.safe_point),
                    report.versions_deleted
                )?;
            }
            "advance" => {
                let ms: u64 = positional(cmd).pop().ok_or("advance MS")?.parse()?;
                self.clock.advance(ms);
            }
            "requests" => {
                // `requests KIND...`: how many requests of each kind were sent since the
                // last `requests` (which counts from zero again).
                let sent = std::mem::take(&mut *self.kv.sent.lock().unwrap());
                for kind in positional(cmd) {
                    let i = kv::stats::REQUEST_KINDS
                        .iter()
                        .position(|k| *k == kind)
                        .ok_or_else(|| format!("no request kind {kind}"))?;
                    writeln!(out, "{kind}: {}", sent[i])?;
                }
            }
            "dump" => {
                self.rt.block_on(self.client.settled());
                return self.dump();
            }
            other => return Err(format!("unknown command {other}").into()),
        }
        Ok(out)
    }
}

fn run(name: &str) {
    let path = format!("{}/tests/scripts/{name}", env!("CARGO_MANIFEST_DIR"));
    goldenscript::run(&mut Runner::new(), path).unwrap();
}

macro_rules! scripts {
    ($($name:ident),* $(,)?) => {
        $(#[test] fn $name() { run(stringify!($name)); })*

        #[test]
        fn every_script_is_run() {
            let listed = [$(stringify!($name)),*];
            let dir = format!("{}/tests/scripts", env!("CARGO_MANIFEST_DIR"));
            for entry in std::fs::read_dir(dir).unwrap() {
                let name = entry.unwrap().file_name().into_string().unwrap();
                assert!(listed.contains(&name.as_str()), "script {name} is not listed in golden.rs");
            }
        }
    };
}

scripts!(
    coordinator_crash,
    dirty_read,
    dirty_write,
    limits,
    long_reader_gc,
    lost_update,
    moved_primary,
    own_writes,
    read_leases,
    read_refresh,
    pessimistic_locks,
    phantom,
    read_skew,
    two_phase_commit,
    write_skew,
);
