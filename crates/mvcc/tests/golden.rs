//! Golden-script tests of the MVCC commands: one scenario per file in `tests/scripts/`.
//!
//! Mutations are written `key=value` (a put), `del=key` and `lock=key`. Timestamps in
//! scripts are raw numbers; `now_ms` and `ttl` are milliseconds of physical
//! time. Write commands print the storage operations they made. Regenerate the expected
//! output with `UPDATE_GOLDENFILES=1 cargo test -p tessera-mvcc --test golden` and review
//! the diff.

#![allow(clippy::unwrap_used)]

use std::error::Error;
use std::fmt::Write as _;

use base::Timestamp;
use goldenscript::{Argument, Command, Context};
use mvcc::commands::{self, ReadSet, TxnMeta};
use mvcc::{Lock, Mutation, MvccReader, Span, Version};
use storage::{Engine, Keyspace, MemoryEngine, ReadView, WriteBatch};

type Res = Result<String, Box<dyn Error>>;

struct Runner {
    engine: MemoryEngine,
}

fn ts(s: &str) -> Result<Timestamp, Box<dyn Error>> {
    Ok(Timestamp::new(s.parse()?))
}

fn show(b: &[u8]) -> String {
    b.escape_ascii().to_string()
}

/// Parses `key@ts`.
fn key_at(s: &str) -> Result<(Vec<u8>, Timestamp), Box<dyn Error>> {
    let (k, t) = s.split_once('@').ok_or("expected key@ts")?;
    Ok((k.as_bytes().to_vec(), ts(t)?))
}

/// Parses `start..end@ts` (an empty end is unbounded).
fn span_at(s: &str) -> Result<(Span, Timestamp), Box<dyn Error>> {
    let (span, t) = s.split_once('@').ok_or("expected start..end@ts")?;
    let (a, b) = span.split_once("..").ok_or("expected start..end")?;
    Ok((Span::new(a.as_bytes(), b.as_bytes()), ts(t)?))
}

fn describe_record(ks: Keyspace, key: &[u8], value: Option<&[u8]>) -> String {
    match ks {
        Keyspace::Mvcc => {
            let (k, t) = mvcc::key::decode(key).unwrap();
            match value {
                Some(v) => {
                    let v = Version::decode(key, v).unwrap();
                    let val = if v.kind == mvcc::WriteKind::Put {
                        format!(" {:?}", show(&v.value))
                    } else {
                        String::new()
                    };
                    format!(
                        "version {}@{} = {:?} start={}{}",
                        show(&k),
                        t,
                        v.kind,
                        v.start_ts,
                        val
                    )
                }
                None => format!("version {}@{}", show(&k), t),
            }
        }
        Keyspace::Locks => match value {
            Some(v) => {
                let l = Lock::decode(key, v).unwrap();
                let mut s = format!(
                    "lock {} = {:?} primary={} start={} ttl={}",
                    show(key),
                    l.kind,
                    show(&l.primary),
                    l.start_ts,
                    l.ttl_ms
                );
                if l.for_update_ts > Timestamp::ZERO {
                    write!(s, " for_update={}", l.for_update_ts).unwrap();
                }
                if l.kind == mvcc::LockKind::Put {
                    write!(s, " {:?}", show(&l.value)).unwrap();
                }
                s
            }
            None => format!("lock {}", show(key)),
        },
        Keyspace::Latest => match value {
            Some(v) => {
                let l = mvcc::Latest::decode(key, v).unwrap();
                let data = match l.data {
                    Some((t, kind)) => format!("{kind:?}@{t}"),
                    None => "none".into(),
                };
                format!("latest {} = last={} data={data}", show(key), l.last_ts)
            }
            None => format!("latest {}", show(key)),
        },
        other => format!("{other:?} {}", show(key)),
    }
}

impl Runner {
    fn apply(&self, batch: WriteBatch) -> Res {
        let mut out = String::new();
        for op in batch.ops() {
            let verb = if op.value.is_some() { "set" } else { "del" };
            writeln!(
                out,
                "{verb} {}",
                describe_record(op.ks, &op.key, op.value.as_deref())
            )?;
        }
        self.engine.write(&batch)?;
        Ok(out)
    }

    fn mutations_and_reads(cmd: &Command) -> Result<(Vec<Mutation>, ReadSet), Box<dyn Error>> {
        let mut muts = Vec::new();
        let mut reads = ReadSet::default();
        for arg in &cmd.args {
            let Argument::KeyValue(k, v) = arg else {
                continue;
            };
            match k.as_str() {
                "start" | "primary" | "ttl" | "commit" => {}
                "del" => muts.push(Mutation::Delete {
                    key: v.as_bytes().to_vec(),
                }),
                "lock" => muts.push(Mutation::Lock {
                    key: v.as_bytes().to_vec(),
                }),
                "read" => reads.keys.push(key_at(v)?),
                "span" => reads.spans.push(span_at(v)?),
                key => muts.push(Mutation::Put {
                    key: key.into(),
                    value: v.as_bytes().to_vec(),
                }),
            }
        }
        Ok((muts, reads))
    }

    fn positional_keys(cmd: &Command) -> Vec<Vec<u8>> {
        cmd.args
            .iter()
            .filter_map(|a| match a {
                Argument::Positional(k) => Some(k.as_bytes().to_vec()),
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

    fn req(cmd: &Command, key: &str) -> Result<String, Box<dyn Error>> {
        Self::key_value(cmd, key).ok_or_else(|| format!("missing {key}=").into())
    }

    fn meta(cmd: &Command) -> Result<TxnMeta, Box<dyn Error>> {
        Ok(TxnMeta {
            start_ts: ts(&Self::req(cmd, "start")?)?,
            primary: Self::req(cmd, "primary")?.into_bytes(),
            lock_ttl_ms: Self::key_value(cmd, "ttl").map_or(Ok(3000), |t| t.parse())?,
        })
    }

    fn dump(&self) -> Res {
        let mut out = String::new();
        for ks in [Keyspace::Mvcc, Keyspace::Locks, Keyspace::Latest] {
            for kv in self.engine.scan(
                ks,
                std::ops::Bound::Unbounded,
                std::ops::Bound::Unbounded,
                false,
            ) {
                let (k, v) = kv?;
                writeln!(out, "{}", describe_record(ks, &k, Some(&v)))?;
            }
        }
        Ok(out)
    }
}

impl goldenscript::Runner for Runner {
    type Command = Command;

    fn run(&mut self, cmd: &Command, _ctx: &Context) -> Res {
        let snap = self.engine.snapshot();
        let reader = MvccReader::new(&snap);
        let mut batch = WriteBatch::new();
        match cmd.name.as_str() {
            "prewrite" => {
                let (muts, _) = Self::mutations_and_reads(cmd)?;
                commands::prewrite(&reader, &mut batch, &Self::meta(cmd)?, muts)?;
                self.apply(batch)
            }
            "commit" => {
                let keys = Self::positional_keys(cmd);
                let (start, commit) = (
                    ts(&Self::req(cmd, "start")?)?,
                    ts(&Self::req(cmd, "commit")?)?,
                );
                commands::commit(&reader, &mut batch, &keys, start, commit)?;
                self.apply(batch)
            }
            "rollback" => {
                let keys = Self::positional_keys(cmd);
                commands::rollback(&reader, &mut batch, &keys, ts(&Self::req(cmd, "start")?)?)?;
                self.apply(batch)
            }
            "get" => {
                let mut out = String::new();
                let at = ts(&Self::req(cmd, "ts")?)?;
                let own = Self::key_value(cmd, "txn").map(|t| ts(&t)).transpose()?;
                for k in Self::positional_keys(cmd) {
                    let v = reader.get(&k, at, own)?;
                    writeln!(
                        out,
                        "{} → {}",
                        show(&k),
                        v.map_or("None".to_string(), |v| format!("{:?}", show(&v)))
                    )?;
                }
                Ok(out)
            }
            "scan" => {
                let span = Span::new(
                    Self::key_value(cmd, "from")
                        .unwrap_or_default()
                        .into_bytes(),
                    Self::key_value(cmd, "to").unwrap_or_default().into_bytes(),
                );
                let at = ts(&Self::req(cmd, "ts")?)?;
                let own = Self::key_value(cmd, "txn").map(|t| ts(&t)).transpose()?;
                let limit = Self::key_value(cmd, "limit").map_or(Ok(usize::MAX), |l| l.parse())?;
                let reverse = Self::positional_keys(cmd).iter().any(|a| a == b"reverse");
                let res = reader.scan(&span, at, limit, reverse, own)?;
                let mut out = String::new();
                for (k, v) in res.pairs {
                    writeln!(out, "{} = {:?}", show(&k), show(&v))?;
                }
                if let Some(r) = res.resume {
                    writeln!(out, "resume at {:?}", show(&r))?;
                }
                Ok(out)
            }
            "check_status" => {
                let primary = Self::req(cmd, "primary")?.into_bytes();
                let start = ts(&Self::req(cmd, "start")?)?;
                let now = Timestamp::from_parts(Self::req(cmd, "now_ms")?.parse()?, 0);
                let rollback = Self::positional_keys(cmd)
                    .iter()
                    .any(|a| a == b"rollback_missing");
                let status = commands::check_txn_status(
                    &reader, &mut batch, &primary, start, now, rollback,
                )?;
                Ok(format!("{status:?}\n{}", self.apply(batch)?))
            }
            "heartbeat" => {
                let primary = Self::req(cmd, "primary")?.into_bytes();
                let start = ts(&Self::req(cmd, "start")?)?;
                let ttl = Self::req(cmd, "ttl")?.parse()?;
                let status = commands::heartbeat(&reader, &mut batch, &primary, start, ttl)?;
                Ok(format!("{status:?}\n{}", self.apply(batch)?))
            }
            "resolve" => {
                let keys = Self::positional_keys(cmd);
                let start = ts(&Self::req(cmd, "start")?)?;
                let commit = Self::key_value(cmd, "commit").map(|t| ts(&t)).transpose()?;
                let n = commands::resolve_lock(&reader, &mut batch, &keys, start, commit)?;
                Ok(format!("resolved {n}\n{}", self.apply(batch)?))
            }
            "pessimistic_lock" => {
                let key = Self::positional_keys(cmd).pop().ok_or("missing key")?;
                let for_update = ts(&Self::req(cmd, "for_update")?)?;
                let v = commands::acquire_pessimistic_lock(
                    &reader,
                    &mut batch,
                    &key,
                    &Self::meta(cmd)?,
                    for_update,
                )?;
                let shown = v.map_or("None".to_string(), |v| format!("{:?}", show(&v)));
                Ok(format!("{} → {shown}\n{}", show(&key), self.apply(batch)?))
            }
            "validate" => {
                let (_, reads) = Self::mutations_and_reads(cmd)?;
                let (start, commit) = (
                    ts(&Self::req(cmd, "start")?)?,
                    ts(&Self::req(cmd, "commit")?)?,
                );
                commands::validate_reads(&reader, &reads, start, commit)?;
                Ok("ok\n".to_string())
            }
            "one_phase" => {
                let (muts, reads) = Self::mutations_and_reads(cmd)?;
                let (start, commit) = (
                    ts(&Self::req(cmd, "start")?)?,
                    ts(&Self::req(cmd, "commit")?)?,
                );
                commands::commit_one_phase(&reader, &mut batch, muts, &reads, start, commit)?;
                self.apply(batch)
            }
            "gc" => {
                let span = Span::new(
                    Self::key_value(cmd, "from")
                        .unwrap_or_default()
                        .into_bytes(),
                    Self::key_value(cmd, "to").unwrap_or_default().into_bytes(),
                );
                let safe = ts(&Self::req(cmd, "safe")?)?;
                let max = Self::key_value(cmd, "max_keys").map_or(Ok(usize::MAX), |l| l.parse())?;
                let out = commands::gc(&reader, &mut batch, &span, safe, max)?;
                Ok(format!("{out:?}\n{}", self.apply(batch)?))
            }
            "dump" => self.dump(),
            other => Err(format!("unknown command {other}").into()),
        }
    }
}

fn run(name: &str) {
    let path = format!("{}/tests/scripts/{name}", env!("CARGO_MANIFEST_DIR"));
    goldenscript::run(
        &mut Runner {
            engine: MemoryEngine::new(),
        },
        path,
    )
    .unwrap();
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
    check_txn_status,
    gc,
    heartbeat,
    one_phase,
    pessimistic_lock,
    prewrite_commit,
    read_at_timestamp,
    read_validation,
    resolve_lock,
    rollback,
    scan_with_locks,
    write_conflict,
);
