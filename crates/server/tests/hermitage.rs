#![allow(clippy::unwrap_used)]
//! Hermitage isolation tests, replayed through the PostgreSQL protocol.
//!
//! Every test case of `../shared/conformance/hermitage/cockroachdb.md` runs here on a fresh
//! server with a fresh `test` table, and again on a three-node cluster with the table split
//! between its two rows into ranges led by different nodes (session Tn on node n); one
//! connection per session (T1, T2, T3), and every
//! transaction at SERIALIZABLE (`set transaction isolation level read committed` and
//! `repeatable read` are replaced by `serializable`).
//!
//! - Cases the file runs at "serializable" must behave as the file says.
//! - Cases the file runs at a weaker level must show no anomaly: each step must give an
//!   outcome a serializable database may give. A step may block until another session ends
//!   its transaction; a step of a transaction caught in a would-be anomaly may fail with
//!   40001 (the session then rolls back and its later steps are skipped); what a
//!   transaction sees (rows, DELETE counts) must come from one serial order, even if it is
//!   later aborted, since a client acts on what it sees. Steps before any conflict must
//!   simply succeed.
//!
//! At the end of each case the table must hold one of the case's allowed contents, and of a
//! pair of conflicting writers at least one must have aborted.

mod common;

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use common::TestServer;
use server::cluster::SqlCluster;
use storage::MemoryEngine;
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tokio_postgres::{Client, SimpleQueryMessage};

/// How long a statement that must block has to stay blocked.
const BLOCK_WINDOW: Duration = Duration::from_millis(300);
/// How long a statement that must not block may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a blocked statement may take once its blocker ended its transaction.
const RESUME_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a whole case may take.
const CASE_TIMEOUT: Duration = Duration::from_secs(30);

const SETUP: &str = "create table test (id int primary key, value int); \
                     insert into test (id, value) values (1, 10), (2, 20)";
const BEGIN: &str = "begin; set transaction isolation level serializable";

/// A session: one connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum T {
    T1,
    T2,
    T3,
}
use T::{T1, T2, T3};

impl fmt::Display for T {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?}")
    }
}

/// A row of `test`: (id, value).
type Row = (i32, i32);

/// What a statement returned.
#[derive(Clone, Debug, PartialEq)]
enum Got {
    /// Rows, sorted.
    Rows(Vec<Row>),
    /// A command's row count (0 for commands without one).
    Count(u64),
    Error {
        code: String,
        message: String,
    },
}

impl Got {
    fn is_serialization_failure(&self) -> bool {
        matches!(self, Got::Error { code, .. } if code == "40001")
    }
}

impl fmt::Display for Got {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Got::Rows(r) => write!(f, "rows {r:?}"),
            Got::Count(n) => write!(f, "ok ({n})"),
            Got::Error { code, message } => write!(f, "ERROR {code}: {message}"),
        }
    }
}

/// What a step must do.
#[derive(Clone, Debug)]
enum Expect {
    /// Succeeds, whatever it returns.
    Ok,
    /// Returns exactly these rows (in any order).
    Rows(Vec<Row>),
    /// Succeeds with this row count (DELETE n).
    Count(u64),
    /// Fails with SQLSTATE 40001; the session then rolls back.
    SerializationFailure,
    /// Any of these.
    OneOf(Vec<Expect>),
    /// Returns these rows, read in serial state `.0`: every `InState` read of a session must
    /// come from one state.
    InState(u8, Vec<Row>),
    /// Does not complete within `BLOCK_WINDOW`, nor before `by` ends its transaction; then
    /// completes (promptly) as `then`.
    Blocks { by: T, then: Box<Expect> },
}

fn ok() -> Expect {
    Expect::Ok
}

fn rows(r: &[Row]) -> Expect {
    let mut r = r.to_vec();
    r.sort();
    Expect::Rows(r)
}

fn count(n: u64) -> Expect {
    Expect::Count(n)
}

fn fail() -> Expect {
    Expect::SerializationFailure
}

/// `e`, or 40001.
fn or_fail(e: Expect) -> Expect {
    Expect::OneOf(vec![e, fail()])
}

fn one_of(alts: Vec<Expect>) -> Expect {
    Expect::OneOf(alts)
}

fn at(state: u8, r: &[Row]) -> Expect {
    let mut r = r.to_vec();
    r.sort();
    Expect::InState(state, r)
}

fn blocks(by: T, then: Expect) -> Expect {
    Expect::Blocks {
        by,
        then: Box::new(then),
    }
}

impl fmt::Display for Expect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expect::Ok => f.write_str("success"),
            Expect::Rows(r) => write!(f, "rows {r:?}"),
            Expect::Count(n) => write!(f, "ok ({n})"),
            Expect::SerializationFailure => f.write_str("ERROR 40001"),
            Expect::OneOf(alts) => {
                let alts: Vec<String> = alts.iter().map(ToString::to_string).collect();
                write!(f, "{}", alts.join(" or "))
            }
            Expect::InState(s, r) => write!(f, "rows {r:?} (state {s})"),
            Expect::Blocks { by, then } => write!(f, "to block until {by} ends, then {then}"),
        }
    }
}

/// The serial states a session's reads may still come from (`None`: any).
type States = Option<BTreeSet<u8>>;

impl Expect {
    /// Returns the session's states after `got`, or `None` if `got` does not match.
    fn check(&self, got: &Got, states: &States) -> Option<States> {
        let keep = || Some(states.clone());
        match self {
            Expect::Ok => matches!(got, Got::Rows(_) | Got::Count(_))
                .then(keep)
                .flatten(),
            Expect::Rows(want) => matches!(got, Got::Rows(r) if r == want)
                .then(keep)
                .flatten(),
            Expect::Count(n) => (*got == Got::Count(*n)).then(keep).flatten(),
            Expect::SerializationFailure => got.is_serialization_failure().then(keep).flatten(),
            Expect::InState(s, want) => {
                let fits = matches!(got, Got::Rows(r) if r == want)
                    && states.as_ref().is_none_or(|ss| ss.contains(s));
                fits.then(|| Some(BTreeSet::from([*s])))
            }
            Expect::OneOf(alts) => {
                let mut out: Option<States> = None;
                for st in alts.iter().filter_map(|a| a.check(got, states)) {
                    out = Some(match (out, st) {
                        (None, st) => st,
                        (Some(Some(mut a)), Some(b)) => {
                            a.extend(b);
                            Some(a)
                        }
                        _ => None,
                    });
                }
                out
            }
            Expect::Blocks { .. } => None,
        }
    }

    fn uses_states(&self) -> bool {
        match self {
            Expect::InState(..) => true,
            Expect::OneOf(alts) => alts.iter().any(Expect::uses_states),
            Expect::Blocks { then, .. } => then.uses_states(),
            _ => false,
        }
    }
}

/// One statement of one session.
struct Step {
    who: T,
    sql: &'static str,
    expect: Expect,
}

fn s(who: T, sql: &'static str, expect: Expect) -> Step {
    Step { who, sql, expect }
}

/// `begin; set transaction isolation level <level from the file, replaced by serializable>`.
fn begin(who: T) -> Step {
    s(who, BEGIN, ok())
}

struct Case {
    /// The file's anomaly name.
    name: &'static str,
    /// The isolation level the file runs the case at (Tessera runs it at serializable).
    level: &'static str,
    steps: Vec<Step>,
    /// The table contents the case may end with.
    finals: Vec<Vec<Row>>,
    /// Conflicting writers: at least one of them must not commit.
    not_both: Option<(T, T)>,
}

fn case(name: &'static str, level: &'static str, steps: Vec<Step>) -> Case {
    Case {
        name,
        level,
        steps,
        finals: Vec::new(),
        not_both: None,
    }
}

impl Case {
    /// The table contents the case may end with.
    fn ends(mut self, finals: &[&[Row]]) -> Case {
        self.finals = finals.iter().map(|r| table(r)).collect();
        self
    }

    /// `a` and `b` conflict: if both committed, the anomaly got through.
    fn not_both(mut self, a: T, b: T) -> Case {
        self.not_both = Some((a, b));
        self
    }
}

fn table(r: &[Row]) -> Vec<Row> {
    let mut r = r.to_vec();
    r.sort();
    r
}

/// One row read in one of several serial states (`(state, row)`), or 40001.
fn in_state(alts: &[(u8, Row)]) -> Expect {
    let mut alts: Vec<Expect> = alts.iter().map(|&(s, r)| at(s, &[r])).collect();
    alts.push(fail());
    one_of(alts)
}

const ORIG: &[Row] = &[(1, 10), (2, 20)];
const RC: &str = "read committed";
const RR: &str = "repeatable read";
const SER: &str = "serializable";

/// The file's cases, in its order. Comments quote the file (at its isolation level).
#[rustfmt::skip]
fn cases() -> Vec<Case> {
    vec![
        // "read committed" prevents Write Cycles (G0) by locking updated rows
        case("G0", RC, vec![
            begin(T1),
            begin(T2),
            s(T1, "update test set value = 11 where id = 1", ok()),
            // "T2, BLOCKS"; once T1 commits, T2 may go on (after T1) or abort
            s(T2, "update test set value = 12 where id = 1", blocks(T1, or_fail(ok()))),
            s(T1, "update test set value = 21 where id = 2", ok()),
            // "Shows 1 => 11, 2 => 21"
            s(T1, "select * from test", rows(&[(1, 11), (2, 21)])),
            // "This unblocks T2"
            s(T1, "commit", ok()),
            s(T2, "update test set value = 22 where id = 2", or_fail(ok())),
            s(T2, "commit", or_fail(ok())),
        ])
        // "either. Shows 1 => 12, 2 => 22" (or T1's writes alone if T2 aborted)
        .ends(&[&[(1, 12), (2, 22)], &[(1, 11), (2, 21)]]),

        // "read committed" prevents Aborted Reads (G1a)
        case("G1a", RC, vec![
            begin(T1),
            begin(T2),
            s(T1, "update test set value = 101 where id = 1", ok()),
            // "Still shows 1 => 10"
            s(T2, "select * from test", rows(ORIG)),
            // the file's `abort`
            s(T1, "rollback", ok()),
            // "Still shows 1 => 10"
            s(T2, "select * from test", rows(ORIG)),
            s(T2, "commit", ok()),
        ])
        .ends(&[ORIG]),

        // "read committed" prevents Intermediate Reads (G1b)
        case("G1b", RC, vec![
            begin(T1),
            begin(T2),
            s(T1, "update test set value = 101 where id = 1", ok()),
            // "Still shows 1 => 10"
            s(T2, "select * from test", rows(ORIG)),
            s(T1, "update test set value = 11 where id = 1", ok()),
            s(T1, "commit", ok()),
            // "Now shows 1 => 11"; serializable: T2 already read 1 => 10
            s(T2, "select * from test", or_fail(rows(ORIG))),
            s(T2, "commit", ok()),
        ])
        .ends(&[&[(1, 11), (2, 20)]]),

        // "read committed" prevents Circular Information Flow (G1c)
        case("G1c", RC, vec![
            begin(T1),
            begin(T2),
            s(T1, "update test set value = 11 where id = 1", ok()),
            s(T2, "update test set value = 22 where id = 2", ok()),
            // "Still shows 2 => 20"
            s(T1, "select * from test where id = 2", or_fail(rows(&[(2, 20)]))),
            // "Still shows 1 => 10"
            s(T2, "select * from test where id = 1", or_fail(rows(&[(1, 10)]))),
            s(T1, "commit", or_fail(ok())),
            s(T2, "commit", or_fail(ok())),
        ])
        .ends(&[&[(1, 11), (2, 20)], &[(1, 10), (2, 22)], ORIG])
        // each read the other's row before the other wrote it: a cycle if both commit
        .not_both(T1, T2),

        // "read committed" prevents Observed Transaction Vanishes (OTV)
        // T3 reads one serial state: 0 = before T1, 1 = after T1, 2 = after T1 and T2
        case("OTV", RC, vec![
            begin(T1),
            begin(T2),
            begin(T3),
            s(T1, "update test set value = 11 where id = 1", ok()),
            s(T1, "update test set value = 19 where id = 2", ok()),
            // "T2. BLOCKS"
            s(T2, "update test set value = 12 where id = 1", blocks(T1, or_fail(ok()))),
            // "This unblocks T2"
            s(T1, "commit", ok()),
            // "T3. Shows 1 => 11"
            s(T3, "select * from test where id = 1", in_state(&[(0, (1, 10)), (1, (1, 11))])),
            s(T2, "update test set value = 18 where id = 2", or_fail(ok())),
            // "T3. Shows 2 => 19"
            s(T3, "select * from test where id = 2", in_state(&[(0, (2, 20)), (1, (2, 19))])),
            s(T2, "commit", or_fail(ok())),
            // "T3. Shows 2 => 18"
            s(T3, "select * from test where id = 2",
              in_state(&[(0, (2, 20)), (1, (2, 19)), (2, (2, 18))])),
            // "T3. Shows 1 => 12"
            s(T3, "select * from test where id = 1",
              in_state(&[(0, (1, 10)), (1, (1, 11)), (2, (1, 12))])),
            s(T3, "commit", ok()),
        ])
        .ends(&[&[(1, 12), (2, 18)], &[(1, 11), (2, 19)]]),

        // "read committed" does not prevent Predicate-Many-Preceders (PMP)
        case("PMP", RC, vec![
            begin(T1),
            begin(T2),
            // "Returns nothing"
            s(T1, "select * from test where value = 30", rows(&[])),
            s(T2, "insert into test (id, value) values(3, 30)", ok()),
            s(T2, "commit", ok()),
            // "Returns the newly inserted row"; serializable: T1 saw no such row
            s(T1, "select * from test where value % 3 = 0", or_fail(rows(&[]))),
            s(T1, "commit", ok()),
        ])
        .ends(&[&[(1, 10), (2, 20), (3, 30)]]),

        // "repeatable read" prevents Predicate-Many-Preceders (PMP)
        case("PMP", RR, vec![
            begin(T1),
            begin(T2),
            // "Returns nothing"
            s(T1, "select * from test where value = 30", rows(&[])),
            s(T2, "insert into test (id, value) values(3, 30)", ok()),
            s(T2, "commit", ok()),
            // "Still returns nothing"
            s(T1, "select * from test where value % 3 = 0", or_fail(rows(&[]))),
            s(T1, "commit", ok()),
        ])
        .ends(&[&[(1, 10), (2, 20), (3, 30)]]),

        // "read committed" prevents Predicate-Many-Preceders (PMP) for write predicates
        case("PMP write", RC, vec![
            begin(T1),
            begin(T2),
            s(T1, "update test set value = value + 10 where true", ok()),
            // "T2, BLOCKS"; after T1 (1 => 20, 2 => 30) it deletes row 1 alone, or aborts
            s(T2, "delete from test where value = 20", blocks(T1, or_fail(count(1)))),
            // "This unblocks T2"
            s(T1, "commit", ok()),
            // "returns nothing"
            s(T2, "select * from test where value = 20", or_fail(rows(&[]))),
            s(T2, "commit", or_fail(ok())),
        ])
        .ends(&[&[(2, 30)], &[(1, 20), (2, 30)]]),

        // "repeatable read" prevents Predicate-Many-Preceders (PMP) for write predicates
        case("PMP write", RR, vec![
            begin(T1),
            begin(T2),
            s(T1, "update test set value = value + 10 where true", ok()),
            // "T2, BLOCKS"; "commit; -- T1. T2 now prints out ERROR: restart transaction"
            s(T2, "delete from test where value = 20", blocks(T1, or_fail(count(1)))),
            s(T1, "commit", ok()),
            // the file's `abort`
            s(T2, "rollback", ok()),
        ])
        .ends(&[&[(1, 20), (2, 30)]]),

        // "read committed" does not prevent Lost Update (P4)
        case("P4", RC, vec![
            begin(T1),
            begin(T2),
            s(T1, "select * from test where id = 1", rows(&[(1, 10)])),
            s(T2, "select * from test where id = 1", rows(&[(1, 10)])),
            s(T1, "update test set value = 11 where id = 1", ok()),
            // "T2, BLOCKS"
            s(T2, "update test set value = 11 where id = 1", blocks(T1, or_fail(ok()))),
            // "This unblocks T2, so T1's update is overwritten"
            s(T1, "commit", or_fail(ok())),
            s(T2, "commit", or_fail(ok())),
        ])
        .ends(&[&[(1, 11), (2, 20)]])
        // both read 1 => 10 and wrote row 1: a lost update if both commit
        .not_both(T1, T2),

        // "repeatable read" prevents Lost Update (P4)
        case("P4", RR, vec![
            begin(T1),
            begin(T2),
            s(T1, "select * from test where id = 1", rows(&[(1, 10)])),
            s(T2, "select * from test where id = 1", rows(&[(1, 10)])),
            s(T1, "update test set value = 11 where id = 1", ok()),
            // "T2, BLOCKS"
            s(T2, "update test set value = 11 where id = 1", blocks(T1, or_fail(ok()))),
            // "T2 now prints out ERROR: restart transaction"
            s(T1, "commit", or_fail(ok())),
            // the file's `abort`
            s(T2, "rollback", ok()),
        ])
        .ends(&[&[(1, 11), (2, 20)], ORIG])
        .not_both(T1, T2),

        // "read committed" does not prevent Read Skew (G-single)
        case("G-single", RC, vec![
            begin(T1),
            begin(T2),
            // "Shows 1 => 10" (three times)
            s(T1, "select * from test where id = 1", rows(&[(1, 10)])),
            s(T2, "select * from test where id = 1", rows(&[(1, 10)])),
            s(T2, "select * from test where id = 2", rows(&[(2, 20)])),
            s(T2, "update test set value = 12 where id = 1", ok()),
            s(T2, "update test set value = 18 where id = 2", ok()),
            s(T2, "commit", ok()),
            // "Shows 2 => 18"; serializable: T1 read 1 => 10, so 2 => 20
            s(T1, "select * from test where id = 2", or_fail(rows(&[(2, 20)]))),
            s(T1, "commit", ok()),
        ])
        .ends(&[&[(1, 12), (2, 18)]]),

        // "repeatable read" prevents Read Skew (G-single)
        case("G-single", RR, vec![
            begin(T1),
            begin(T2),
            // "Shows 1 => 10" (three times)
            s(T1, "select * from test where id = 1", rows(&[(1, 10)])),
            s(T2, "select * from test where id = 1", rows(&[(1, 10)])),
            s(T2, "select * from test where id = 2", rows(&[(2, 20)])),
            s(T2, "update test set value = 12 where id = 1", ok()),
            s(T2, "update test set value = 18 where id = 2", ok()),
            s(T2, "commit", ok()),
            // "Shows 2 => 20"
            s(T1, "select * from test where id = 2", or_fail(rows(&[(2, 20)]))),
            s(T1, "commit", ok()),
        ])
        .ends(&[&[(1, 12), (2, 18)]]),

        // "repeatable read" prevents Read Skew (G-single) -- test using predicate dependencies
        case("G-single predicate", RR, vec![
            begin(T1),
            begin(T2),
            s(T1, "select * from test where value % 5 = 0", rows(ORIG)),
            s(T2, "update test set value = 12 where value = 10", count(1)),
            s(T2, "commit", ok()),
            // "Returns nothing"
            s(T1, "select * from test where value % 3 = 0", or_fail(rows(&[]))),
            s(T1, "commit", ok()),
        ])
        .ends(&[&[(1, 12), (2, 20)]]),

        // "repeatable read" prevents Read Skew (G-single) -- test using write predicate
        case("G-single write", RR, vec![
            begin(T1),
            begin(T2),
            // "Shows 1 => 10"
            s(T1, "select * from test where id = 1", rows(&[(1, 10)])),
            s(T2, "select * from test", rows(ORIG)),
            s(T2, "update test set value = 12 where id = 1", ok()),
            s(T2, "update test set value = 18 where id = 2", ok()),
            s(T2, "commit", ok()),
            // "Prints ERROR: restart transaction"; serializable: T1 read the state before
            // T2, where the predicate matches row 2 alone, so it deletes that row or fails
            s(T1, "delete from test where value = 20", or_fail(count(1))),
            // the file's `abort`
            s(T1, "rollback", ok()),
        ])
        .ends(&[&[(1, 12), (2, 18)]]),

        // "repeatable read" does not prevent Write Skew (G2-item)
        case("G2-item", RR, vec![
            begin(T1),
            begin(T2),
            s(T1, "select * from test where id in (1,2)", rows(ORIG)),
            s(T2, "select * from test where id in (1,2)", rows(ORIG)),
            s(T1, "update test set value = 11 where id = 1", ok()),
            s(T2, "update test set value = 21 where id = 2", ok()),
            s(T1, "commit", or_fail(ok())),
            s(T2, "commit", or_fail(ok())),
        ])
        .ends(&[&[(1, 11), (2, 20)], &[(1, 10), (2, 21)], ORIG])
        .not_both(T1, T2),

        // "serializable" prevents Write Skew (G2-item)
        case("G2-item", SER, vec![
            begin(T1),
            begin(T2),
            s(T1, "select * from test where id in (1,2)", rows(ORIG)),
            s(T2, "select * from test where id in (1,2)", rows(ORIG)),
            s(T1, "update test set value = 11 where id = 1", ok()),
            s(T2, "update test set value = 21 where id = 2", ok()),
            s(T1, "commit", ok()),
            // "ERROR: restart transaction: ... RETRY_SERIALIZABLE - failed preemptive refresh"
            s(T2, "commit", fail()),
        ])
        .ends(&[&[(1, 11), (2, 20)]])
        .not_both(T1, T2),

        // "repeatable read" does not prevent Anti-Dependency Cycles (G2)
        case("G2", RR, vec![
            begin(T1),
            begin(T2),
            s(T1, "select * from test where value % 3 = 0", rows(&[])),
            s(T2, "select * from test where value % 3 = 0", rows(&[])),
            s(T1, "insert into test (id, value) values(3, 30)", ok()),
            s(T2, "insert into test (id, value) values(4, 42)", ok()),
            s(T1, "commit", or_fail(ok())),
            s(T2, "commit", or_fail(ok())),
        ])
        // "Either. Returns 3 => 30, 4 => 42"; serializable: never both
        .ends(&[&[(1, 10), (2, 20), (3, 30)], &[(1, 10), (2, 20), (4, 42)], ORIG])
        .not_both(T1, T2),

        // "serializable" prevents Anti-Dependency Cycles (G2)
        case("G2", SER, vec![
            begin(T1),
            begin(T2),
            s(T1, "select * from test where value % 3 = 0", rows(&[])),
            s(T2, "select * from test where value % 3 = 0", rows(&[])),
            s(T1, "insert into test (id, value) values(3, 30)", ok()),
            s(T2, "insert into test (id, value) values(4, 42)", ok()),
            s(T1, "commit", ok()),
            // "ERROR: restart transaction: ... RETRY_SERIALIZABLE - failed preemptive refresh"
            s(T2, "commit", fail()),
        ])
        .ends(&[&[(1, 10), (2, 20), (3, 30)]])
        .not_both(T1, T2),

        // "serializable" prevents Anti-Dependency Cycles (G2) -- Fekete et al's example with
        // two anti-dependency edges
        case("G2 two-edges", SER, vec![
            begin(T1),
            // "Shows 1 => 10, 2 => 20"
            s(T1, "select * from test", rows(ORIG)),
            begin(T2),
            s(T2, "update test set value = value + 5 where id = 2", ok()),
            s(T2, "commit", ok()),
            begin(T3),
            // "Shows 1 => 10, 2 => 25"
            s(T3, "select * from test", rows(&[(1, 10), (2, 25)])),
            s(T3, "commit", ok()),
            // Tessera may report the conflict here already: locking id 1 moves T1's snapshot
            // forward (a read refresh), which fails because T1 read id 2 before T2 changed
            // it. The transaction fails either way, as the file says.
            s(T1, "update test set value = 0 where id = 1", or_fail(ok())),
            // "ERROR: restart transaction: ... RETRY_SERIALIZABLE - failed preemptive refresh"
            s(T1, "commit", fail()),
        ])
        .ends(&[&[(1, 10), (2, 25)]]),
    ]
}

/// Runs one statement with the simple protocol.
async fn exec(client: &Client, sql: &str) -> Got {
    let messages = match client.simple_query(sql).await {
        Ok(m) => m,
        Err(e) => {
            return match e.as_db_error() {
                Some(db) => Got::Error {
                    code: db.code().code().to_string(),
                    message: db.message().to_string(),
                },
                None => Got::Error {
                    code: String::new(),
                    message: e.to_string(),
                },
            };
        }
    };
    let mut rows: Option<Vec<Row>> = None;
    let mut n = 0;
    for m in messages {
        match m {
            SimpleQueryMessage::RowDescription(_) => rows = Some(Vec::new()),
            SimpleQueryMessage::Row(r) => {
                let int = |i: usize| r.get(i).and_then(|v| v.parse::<i32>().ok());
                let (Some(id), Some(value)) = (int(0), int(1)) else {
                    return Got::Error {
                        code: String::new(),
                        message: format!("not an (id, value) row: {:?}", (r.get(0), r.get(1))),
                    };
                };
                rows.get_or_insert_with(Vec::new).push((id, value));
            }
            SimpleQueryMessage::CommandComplete(c) => n = c,
            _ => {}
        }
    }
    match rows {
        Some(mut r) => {
            r.sort();
            Got::Rows(r)
        }
        None => Got::Count(n),
    }
}

/// A statement that is waiting for another session.
struct Blocked {
    step: usize,
    sql: &'static str,
    by: T,
    then: Expect,
    task: JoinHandle<Got>,
}

struct Session {
    client: Arc<Client>,
    in_txn: bool,
    /// Failed with 40001 and rolled back: its remaining steps are skipped.
    aborted: bool,
    committed: bool,
    states: States,
    blocked: Option<Blocked>,
}

struct Run {
    sessions: Vec<Session>,
    trace: Vec<String>,
    /// Outcomes worth a mention on the case's line.
    notes: Vec<String>,
}

impl Run {
    fn s(&mut self, t: T) -> &mut Session {
        &mut self.sessions[t as usize]
    }

    fn spawn(&mut self, t: T, sql: &'static str) -> JoinHandle<Got> {
        let client = self.s(t).client.clone();
        tokio::spawn(async move { exec(&client, sql).await })
    }

    async fn steps(&mut self, case: &Case) -> Result<(), String> {
        for (i, step) in case.steps.iter().enumerate() {
            let (n, who, sql) = (i + 1, step.who, step.sql);
            if self.s(who).aborted {
                self.trace
                    .push(format!("{n:>2}. {who} {sql}: skipped ({who} rolled back)"));
                continue;
            }
            assert!(
                self.s(who).blocked.is_none(),
                "case bug: step {n} runs on {who}, which is blocked"
            );
            match &step.expect {
                Expect::Blocks { by, then } if self.s(*by).in_txn => {
                    let task = self.spawn(who, sql);
                    tokio::time::sleep(BLOCK_WINDOW).await;
                    if task.is_finished() {
                        let got = task.await.unwrap();
                        return Err(format!(
                            "step {n}: {who} `{sql}`: expected to block until {by} ends its \
                             transaction, but it completed within {BLOCK_WINDOW:?}: {got}"
                        ));
                    }
                    self.trace.push(format!("{n:>2}. {who} {sql}: blocked"));
                    self.notes.push(format!("{who} waited for {by}"));
                    self.s(who).blocked = Some(Blocked {
                        step: n,
                        sql,
                        by: *by,
                        then: (**then).clone(),
                        task,
                    });
                }
                expect => {
                    // A blocker that already ended (it was aborted) no longer blocks.
                    let expect = match expect {
                        Expect::Blocks { then, .. } => then,
                        e => e,
                    };
                    let task = self.spawn(who, sql);
                    let got = match timeout(STEP_TIMEOUT, task).await {
                        Ok(got) => got.unwrap(),
                        Err(_) => {
                            return Err(format!(
                                "step {n}: {who} `{sql}`: expected {expect}, but it did not \
                                 complete within {STEP_TIMEOUT:?} (blocked)"
                            ));
                        }
                    };
                    self.finish(n, who, sql, expect, got).await?;
                }
            }
            self.check_still_blocked(n).await?;
        }
        for t in [T1, T2, T3] {
            if let Some(b) = &self.s(t).blocked {
                return Err(format!(
                    "step {}: {t} `{}` is still blocked at the end of the case",
                    b.step, b.sql
                ));
            }
        }
        Ok(())
    }

    /// Checks a step's outcome, then settles every statement its transaction's end unblocks.
    async fn finish(
        &mut self,
        n: usize,
        who: T,
        sql: &'static str,
        expect: &Expect,
        got: Got,
    ) -> Result<(), String> {
        let mut ended = Vec::new();
        if self.apply(n, who, sql, expect, got).await? {
            ended.push(who);
        }
        while let Some(x) = ended.pop() {
            for t in [T1, T2, T3] {
                if !self.s(t).blocked.as_ref().is_some_and(|b| b.by == x) {
                    continue;
                }
                let b = self.s(t).blocked.take().unwrap();
                let got = match timeout(RESUME_TIMEOUT, b.task).await {
                    Ok(got) => got.unwrap(),
                    Err(_) => {
                        return Err(format!(
                            "step {}: {t} `{}` is still blocked {RESUME_TIMEOUT:?} after {x} \
                             ended its transaction (step {n})",
                            b.step, b.sql
                        ));
                    }
                };
                if self.apply(b.step, t, b.sql, &b.then, got).await? {
                    ended.push(t);
                }
            }
        }
        Ok(())
    }

    /// Checks one outcome and updates the session; returns true if its transaction ended.
    async fn apply(
        &mut self,
        n: usize,
        who: T,
        sql: &'static str,
        expect: &Expect,
        got: Got,
    ) -> Result<bool, String> {
        let states = self.s(who).states.clone();
        let Some(new_states) = expect.check(&got, &states) else {
            let read = match (&states, expect.uses_states()) {
                (Some(st), true) => format!(" ({who}'s earlier reads were from state {st:?})"),
                _ => String::new(),
            };
            return Err(format!(
                "step {n}: {who} `{sql}`: expected {expect}, got {got}{read}"
            ));
        };
        self.s(who).states = new_states;
        self.trace.push(format!("{n:>2}. {who} {sql}: {got}"));
        if got.is_serialization_failure() {
            self.notes.push(format!("{who} `{sql}` -> 40001"));
            let client = self.s(who).client.clone();
            match timeout(STEP_TIMEOUT, exec(&client, "rollback")).await {
                Ok(Got::Count(_)) => {}
                Ok(other) => return Err(format!("{who}: rollback after 40001: {other}")),
                Err(_) => return Err(format!("{who}: rollback after 40001 did not complete")),
            }
            let s = self.s(who);
            s.aborted = true;
            s.in_txn = false;
            return Ok(true);
        }
        let s = self.s(who);
        match sql {
            BEGIN => s.in_txn = true,
            "commit" => {
                s.committed = true;
                s.in_txn = false;
                return Ok(true);
            }
            "rollback" => {
                s.in_txn = false;
                return Ok(true);
            }
            _ => {}
        }
        Ok(false)
    }

    /// A blocked statement must not complete before its blocker ends its transaction.
    async fn check_still_blocked(&mut self, n: usize) -> Result<(), String> {
        for t in [T1, T2, T3] {
            let done = self
                .s(t)
                .blocked
                .as_ref()
                .is_some_and(|b| b.task.is_finished());
            if done {
                let b = self.s(t).blocked.take().unwrap();
                let got = b.task.await.unwrap();
                return Err(format!(
                    "step {}: {t} `{}` should wait until {} ends its transaction, but it \
                     completed by step {n}: {got}",
                    b.step, b.sql, b.by
                ));
            }
        }
        Ok(())
    }

    /// Checks the table's contents and the conflicting writers after the case.
    async fn end(&mut self, case: &Case, check: &Client) -> Result<String, String> {
        let got = exec(check, "select * from test").await;
        if let Some((a, b)) = case.not_both
            && self.s(a).committed
            && self.s(b).committed
        {
            return Err(format!(
                "conflicting writers {a} and {b} both committed; table now {got}"
            ));
        }
        match &got {
            Got::Rows(r) if case.finals.contains(r) => {
                let mut line = self.notes.join("; ");
                if !line.is_empty() {
                    line.push_str("; ");
                }
                line.push_str(&format!("final {r:?}"));
                Ok(line)
            }
            _ => Err(format!(
                "final table: expected one of {:?}, got {got}",
                case.finals
            )),
        }
    }
}

/// Where the cases run.
enum Target {
    /// A fresh single-node server per case.
    Single,
    /// One three-node cluster in this process. Each case gets a fresh `test` table split
    /// between its two rows, the two ranges led by different nodes, and session Tn talks
    /// to node n.
    Cluster(Box<SqlCluster<MemoryEngine>>),
}

/// Creates a fresh `test` table on the cluster, splits it between its rows and has the two
/// ranges led by different nodes.
async fn cluster_table(c: &SqlCluster<MemoryEngine>, client: &Client) {
    client
        .batch_execute(&format!(
            "drop table if exists test; {SETUP}; alter table test split at values (2)"
        ))
        .await
        .unwrap();
    let ranges: Vec<u64> = common::ranges_of_table(c, client, "test")
        .await
        .into_iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(ranges.len(), 2, "test is split in two: {ranges:?}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let leaders = (c.kv().leader(ranges[0]), c.kv().leader(ranges[1]));
        if let (Some(a), Some(b)) = leaders
            && a != b
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the two ranges of test keep one leader: {leaders:?}"
        );
        if let (Some(a), Some(_)) = leaders {
            let to = a % 3 + 1;
            if let Ok(r) = c.kv().replica(a, ranges[1]) {
                let _ = r.raft().trigger().transfer_leader(to).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs a case on `target`; returns a summary, or what failed with the step trace.
async fn run_case(case: &Case, target: &Target) -> Result<String, (String, Vec<String>)> {
    assert!(
        !case.finals.is_empty(),
        "case bug: {} lists no final table",
        case.name
    );
    let (server, urls) = match target {
        Target::Single => {
            let server = TestServer::start().await;
            let url = server.url();
            (Some(server), vec![url; 3])
        }
        Target::Cluster(c) => (None, (1..=3).map(|n| c.url(n).unwrap()).collect()),
    };
    let check = common::connect(&urls[0]).await.unwrap();
    match target {
        Target::Single => check.batch_execute(SETUP).await.unwrap(),
        Target::Cluster(c) => cluster_table(c, &check).await,
    }
    let mut sessions = Vec::new();
    for url in &urls {
        sessions.push(Session {
            client: Arc::new(common::connect(url).await.unwrap()),
            in_txn: false,
            aborted: false,
            committed: false,
            states: None,
            blocked: None,
        });
    }
    let mut run = Run {
        sessions,
        trace: Vec::new(),
        notes: Vec::new(),
    };
    let result = timeout(CASE_TIMEOUT, async {
        run.steps(case).await?;
        run.end(case, &check).await
    })
    .await
    .unwrap_or_else(|_| Err(format!("the case did not finish within {CASE_TIMEOUT:?}")));
    for s in &mut run.sessions {
        if let Some(b) = s.blocked.take() {
            b.task.abort();
        }
    }
    let trace = std::mem::take(&mut run.trace);
    drop(run);
    drop(check);
    if let Some(server) = server {
        let _ = timeout(Duration::from_secs(5), server.stop()).await;
    }
    result.map_err(|e| (e, trace))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hermitage_cockroachdb_cases_at_serializable() {
    run_all(&Target::Single).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hermitage_cockroachdb_cases_on_a_three_node_cluster() {
    // User tables (ids from 100) apart from the meta range.
    let cluster = common::start_cluster(100..101, Default::default()).await;
    let target = Target::Cluster(Box::new(cluster));
    run_all(&target).await;
    if let Target::Cluster(c) = target {
        c.shutdown().await;
    }
}

async fn run_all(target: &Target) {
    let cases = cases();
    let mut failed = Vec::new();
    for case in &cases {
        let label = format!("{} [{}]", case.name, case.level);
        match run_case(case, target).await {
            Ok(summary) => println!("hermitage PASS {label:<36} {summary}"),
            Err((why, trace)) => {
                println!("hermitage FAIL {label:<36} {why}");
                for line in trace {
                    println!("    {line}");
                }
                failed.push(format!("{label}: {why}"));
            }
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} hermitage cases failed:\n{}",
        failed.len(),
        cases.len(),
        failed.join("\n")
    );
}
