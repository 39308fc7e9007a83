//! Sessions: one client connection's transaction state, settings and statement execution.
//!
//! ```text
//!   idle ──BEGIN──▶ in transaction ──error──▶ failed ──ROLLBACK──▶ idle
//!     │                  │  COMMIT / ROLLBACK ▲                     ▲
//!     │                  └────────────────────┘   ROLLBACK TO ──────┘ (back to in transaction)
//!     └─ any other statement: an implicit transaction, committed at once and retried
//!        automatically (up to 10 times) when it fails with a retryable conflict
//! ```
//!
//! Results are computed whole before they are returned, so a retried statement never
//! sends anything twice.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use base::{Clock, TenantId};
use chrono::{DateTime, Utc};
use sqlparser::ast::{self as ast, Statement};
use txn::{Savepoint, Transaction, TxnClient};

use crate::binder::{Binder, DeletePlan, InsertPlan, InsertSource, UpdatePlan};
use crate::catalog::{Catalog, CatalogCache, DdlGuard};
use crate::copy::{self, CopyFormat};
use crate::ddl::DdlCtx;
use crate::error::{Error, ErrorKind, Result};
use crate::executor::{self, ExecCtx};
use crate::functions::SessionInfo;
use crate::parse::{self, Parsed};
use crate::plan::{Column, QueryPlan};
use crate::sequences::Sequences;
use crate::types::SqlType;
use crate::value::{Row, Value};

/// How many times an implicit transaction is retried after a conflict.
const AUTO_RETRIES: usize = 10;
/// Rows buffered by COPY FROM before they are written (all in one transaction).
const COPY_BATCH: usize = 10_000;

/// State shared by every session of a node.
pub struct SqlEngine {
    pub client: TxnClient,
    pub tenant: TenantId,
    pub catalog: CatalogCache,
    pub sequences: Sequences,
    pub clock: Arc<dyn Clock>,
    next_pid: AtomicI32,
}

impl SqlEngine {
    /// Returns the SQL engine over a transaction client.
    pub fn new(client: TxnClient, clock: Arc<dyn Clock>) -> Arc<SqlEngine> {
        Self::with_catalog(
            CatalogCache::new(client.clone()),
            Sequences::new(client.clone(), clock.clone()),
            client,
            clock,
        )
    }

    /// Returns the SQL engine of node `node` of a cluster, whose catalog other nodes change.
    pub fn for_cluster(client: TxnClient, clock: Arc<dyn Clock>, node: u64) -> Arc<SqlEngine> {
        Self::with_catalog(
            CatalogCache::shared(client.clone()),
            Sequences::for_node(client.clone(), clock.clone(), node),
            client,
            clock,
        )
    }

    fn with_catalog(
        catalog: CatalogCache,
        sequences: Sequences,
        client: TxnClient,
        clock: Arc<dyn Clock>,
    ) -> Arc<SqlEngine> {
        Arc::new(SqlEngine {
            sequences,
            catalog,
            client,
            tenant: TenantId::SYSTEM,
            clock,
            next_pid: AtomicI32::new(1000),
        })
    }

    /// Opens a session for `user` on `database`, checking that the database exists.
    pub async fn session(self: &Arc<Self>, user: &str, database: &str) -> Result<Session> {
        let mut t = self.client.begin().await?;
        let cat = self.catalog.get(&mut t, self.tenant).await?;
        t.commit().await?;
        if cat.database(database).is_none() {
            return Err(Error::new(
                ErrorKind::UndefinedDatabase,
                format!("database \"{database}\" does not exist"),
            ));
        }
        let pid = self.next_pid.fetch_add(1, Ordering::Relaxed);
        Ok(Session {
            engine: self.clone(),
            user: user.to_string(),
            database: database.to_string(),
            pid,
            txn: None,
            settings: default_settings(user, database),
            cancel: Arc::new(AtomicBool::new(false)),
            copy: None,
            setting_changes: Arc::default(),
            settings_snapshot: std::sync::Mutex::new(None),
        })
    }
}

fn default_settings(user: &str, database: &str) -> BTreeMap<String, String> {
    let mut s = BTreeMap::new();
    for (k, v) in [
        ("application_name", ""),
        ("client_encoding", "UTF8"),
        ("client_min_messages", "notice"),
        ("datestyle", "ISO, MDY"),
        ("default_transaction_isolation", "serializable"),
        ("default_transaction_read_only", "off"),
        ("extra_float_digits", "1"),
        ("integer_datetimes", "on"),
        ("intervalstyle", "postgres"),
        ("is_superuser", "on"),
        ("lc_collate", "C"),
        ("lc_ctype", "C"),
        ("lc_messages", "C"),
        ("lc_monetary", "C"),
        ("lc_numeric", "C"),
        ("lc_time", "C"),
        ("lock_timeout", "0"),
        ("max_identifier_length", "63"),
        ("search_path", "\"$user\", public"),
        ("server_encoding", "UTF8"),
        ("server_version", "15.0"),
        ("server_version_num", "150000"),
        ("standard_conforming_strings", "on"),
        ("statement_timeout", "0"),
        ("timezone", "UTC"),
        ("transaction_isolation", "serializable"),
        ("transaction_read_only", "off"),
        ("bytea_output", "hex"),
        ("idle_in_transaction_session_timeout", "0"),
        ("row_security", "on"),
        ("synchronous_commit", "on"),
        ("work_mem", "4MB"),
        ("max_connections", "1000"),
        ("block_size", "8192"),
        ("default_table_access_method", "heap"),
    ] {
        s.insert(k.to_string(), v.to_string());
    }
    s.insert("session_authorization".into(), user.to_string());
    s.insert("current_database".into(), database.to_string());
    s
}

/// The transaction status a client sees (ReadyForQuery).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxnStatus {
    Idle,
    InTransaction,
    Failed,
}

/// What a statement produced.
#[derive(Debug)]
pub enum Outcome {
    /// Rows, with a command tag (`SELECT`, or `INSERT 0` for INSERT ... RETURNING: the
    /// row count is appended by the wire layer).
    Rows {
        columns: Arc<Vec<Column>>,
        rows: Vec<Row>,
        tag: String,
    },
    /// A complete command tag (`CREATE TABLE`, `INSERT 0 3`).
    Command(String),
    /// COPY FROM STDIN: the client sends data next.
    CopyIn {
        columns: usize,
        /// The client sends PostgreSQL's binary COPY format (the wire layer decodes it
        /// and hands rows to [`Session::copy_rows`]).
        binary: bool,
    },
    /// COPY TO STDOUT: data lines.
    CopyOut {
        columns: usize,
        lines: Vec<String>,
    },
    /// COPY TO STDOUT in binary format: the wire layer encodes the rows.
    CopyOutBinary {
        types: Vec<SqlType>,
        rows: Vec<Row>,
    },
    Empty,
}

/// A statement's result and the notices it raised.
#[derive(Debug)]
pub struct Output {
    pub outcome: Outcome,
    pub notices: Vec<String>,
}

impl Output {
    fn new(outcome: Outcome) -> Output {
        Output {
            outcome,
            notices: Vec::new(),
        }
    }
}

struct TxnState {
    txn: Transaction,
    explicit: bool,
    failed: bool,
    /// The key-value transaction was rolled back when it failed (a serialization
    /// failure): no savepoint can revive it.
    rolled_back: bool,
    read_only: bool,
    /// The catalog as changed by DDL earlier in this transaction.
    catalog: Option<Arc<Catalog>>,
    /// Held from the first DDL until the transaction ends (see [`CatalogCache`]).
    ddl: Option<DdlGuard>,
    savepoints: Vec<(String, Savepoint)>,
    started: DateTime<Utc>,
    /// Settings when the transaction began (restored by ROLLBACK) and as they will be
    /// after COMMIT (plain SETs, not SET LOCAL).
    settings_at_begin: BTreeMap<String, String>,
    settings_at_commit: BTreeMap<String, String>,
}

/// A bound statement, cached in a prepared statement while the catalog is unchanged.
#[derive(Debug)]
struct Bound {
    stmt: BoundStmt,
    /// Subqueries the statement refers to by index.
    subplans: Vec<crate::plan::SubPlan>,
}

#[derive(Debug)]
enum BoundStmt {
    Query(QueryPlan),
    Insert(InsertPlan),
    Update(UpdatePlan),
    Delete(DeletePlan),
}

/// A statement prepared with the extended protocol.
#[derive(Debug)]
pub struct Prepared {
    pub parsed: Option<Parsed>,
    pub param_types: Vec<SqlType>,
    pub columns: Vec<Column>,
    plan: std::sync::Mutex<Option<(u64, Arc<Bound>)>>,
}

/// COPY FROM STDIN in progress.
struct CopyState {
    plan: InsertPlan,
    types: Vec<SqlType>,
    format: CopyFormat,
    buf: Vec<u8>,
    pending: Vec<Vec<Value>>,
    count: u64,
    header_skipped: bool,
    done: bool,
    /// COPY began its own transaction (no explicit one was open): the whole COPY commits
    /// or rolls back as one, as in PostgreSQL.
    own_txn: bool,
}

/// Settings as name/value pairs, shared with running statements.
type Settings = Arc<Vec<(String, String)>>;

/// One client's session.
pub struct Session {
    engine: Arc<SqlEngine>,
    user: String,
    database: String,
    pid: i32,
    txn: Option<TxnState>,
    settings: BTreeMap<String, String>,
    cancel: Arc<AtomicBool>,
    copy: Option<CopyState>,
    /// set_config() calls of the running statement.
    setting_changes: Arc<std::sync::Mutex<Vec<(String, String, bool)>>>,
    /// The settings as statements see them, reused while they are unchanged.
    settings_snapshot: std::sync::Mutex<Option<Settings>>,
}

fn is_transaction_control(s: &Statement) -> bool {
    matches!(
        s,
        Statement::StartTransaction { .. }
            | Statement::Commit { .. }
            | Statement::Rollback { .. }
            | Statement::Savepoint { .. }
            | Statement::ReleaseSavepoint { .. }
    )
}

impl Session {
    /// Returns the session's process id (for cancel requests).
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Returns the flag that cancels the running statement when set.
    pub fn cancel_flag(&self) -> Arc<AtomicBool> {
        self.cancel.clone()
    }

    /// Returns the user name.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// Returns the current database name.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// Returns a setting's value.
    pub fn setting(&self, name: &str) -> Option<&str> {
        self.settings
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    fn search_path(&self) -> Vec<String> {
        crate::binder::parse_search_path(
            self.setting("search_path").unwrap_or("public"),
            &self.user,
        )
    }

    /// Returns the transaction status.
    pub fn status(&self) -> TxnStatus {
        match &self.txn {
            Some(t) if t.explicit && t.failed => TxnStatus::Failed,
            Some(t) if t.explicit => TxnStatus::InTransaction,
            _ => TxnStatus::Idle,
        }
    }

    /// Runs a string of statements (the simple query protocol). Stops at the first error,
    /// which is the last element.
    pub async fn simple_query(&mut self, sql: &str) -> Vec<Result<Output>> {
        self.cancel.store(false, Ordering::Relaxed);
        let parsed = match parse::parse(sql) {
            Ok(p) => p,
            Err(e) => {
                self.fail_txn();
                return vec![Err(e)];
            }
        };
        let mut out = Vec::new();
        // Several statements in one query string run in one implicit transaction in
        // PostgreSQL; here each runs on its own unless a transaction is open.
        for p in parsed {
            let r = self.run(&p, &[], None).await;
            let failed = r.is_err();
            out.push(r);
            if failed {
                break;
            }
        }
        out
    }

    /// Parses and binds a statement for the extended protocol, inferring parameter types
    /// and result columns.
    pub async fn prepare(&mut self, sql: &str, declared: &[Option<SqlType>]) -> Result<Prepared> {
        let mut parsed = parse::parse(sql)?;
        if parsed.len() > 1 {
            return Err(Error::new(
                ErrorKind::Syntax,
                "cannot insert multiple commands into a prepared statement",
            ));
        }
        let Some(p) = parsed.pop() else {
            return Ok(Prepared {
                parsed: None,
                param_types: vec![],
                columns: vec![],
                plan: std::sync::Mutex::new(None),
            });
        };
        let types: Vec<SqlType> = declared
            .iter()
            .map(|t| t.clone().unwrap_or(SqlType::Unknown))
            .collect();
        let bindable = p.split_at.is_none()
            && matches!(
                p.stmt,
                Statement::Query(_)
                    | Statement::Insert(_)
                    | Statement::Update(_)
                    | Statement::Delete(_)
            );
        if !bindable {
            let columns = match &p.stmt {
                _ if p.split_at.is_some() => split_at_columns(),
                Statement::ShowVariable { variable } => {
                    vec![Column::new(show_name(variable), SqlType::Text)]
                }
                Statement::Explain { .. } => vec![Column::new("QUERY PLAN", SqlType::Text)],
                _ => vec![],
            };
            let n = max_placeholder(&p.stmt);
            let mut pt = types;
            pt.resize(pt.len().max(n), SqlType::Text);
            let pt = pt
                .into_iter()
                .map(|t| {
                    if t == SqlType::Unknown {
                        SqlType::Text
                    } else {
                        t
                    }
                })
                .collect();
            return Ok(Prepared {
                parsed: Some(p),
                param_types: pt,
                columns,
                plan: std::sync::Mutex::new(None),
            });
        }
        let (catalog, db_id) = self.catalog_for_binding().await?;
        let mut b = Binder::new(&catalog, db_id, types).with_search_path(self.search_path());
        let bound = bind(&mut b, &p.stmt)?;
        let columns = match &bound.stmt {
            BoundStmt::Query(q) => q.columns.clone(),
            BoundStmt::Insert(i) => i.columns.clone(),
            BoundStmt::Update(u) => u.columns.clone(),
            BoundStmt::Delete(d) => d.columns.clone(),
        };
        let n = max_placeholder(&p.stmt);
        let mut param_types = b.param_types();
        if param_types.len() < n {
            param_types.resize(n, SqlType::Text);
        }
        Ok(Prepared {
            parsed: Some(p),
            param_types,
            columns,
            plan: std::sync::Mutex::new(Some((catalog.version, Arc::new(bound)))),
        })
    }

    /// Runs a prepared statement with parameter values.
    pub async fn execute(&mut self, prepared: &Prepared, params: &[Value]) -> Result<Output> {
        self.cancel.store(false, Ordering::Relaxed);
        let Some(p) = &prepared.parsed else {
            return Ok(Output::new(Outcome::Empty));
        };
        if params.len() != prepared.param_types.len() {
            return Err(Error::new(
                ErrorKind::InvalidParameterValue,
                format!(
                    "bind message supplies {} parameters, but prepared statement requires {}",
                    params.len(),
                    prepared.param_types.len()
                ),
            ));
        }
        self.run(p, params, Some(prepared)).await
    }

    async fn catalog_for_binding(&mut self) -> Result<(Arc<Catalog>, u64)> {
        let cat = match &mut self.txn {
            Some(t) if !t.failed => match &t.catalog {
                Some(c) => c.clone(),
                None => {
                    self.engine
                        .catalog
                        .get(&mut t.txn, self.engine.tenant)
                        .await?
                }
            },
            _ => {
                let mut t = self.engine.client.begin().await?;
                let c = self.engine.catalog.get(&mut t, self.engine.tenant).await?;
                t.commit().await?;
                c
            }
        };
        let db = cat.database(&self.database).map(|d| d.id).ok_or_else(|| {
            Error::new(
                ErrorKind::UndefinedDatabase,
                format!("database \"{}\" does not exist", self.database),
            )
        })?;
        Ok((cat, db))
    }

    fn fail_txn(&mut self) {
        if let Some(t) = &mut self.txn
            && t.explicit
        {
            t.failed = true;
        }
    }

    /// Fails the explicit transaction after `e`. A serialization failure (a conflict, a
    /// deadlock) also rolls its key-value transaction back at once, as PostgreSQL aborts a
    /// transaction when the error happens: its locks are released now, not at the
    /// client's ROLLBACK, so a deadlock is broken without waiting for the victim's client.
    /// Only ROLLBACK can follow then (not ROLLBACK TO SAVEPOINT).
    async fn fail_txn_after(&mut self, e: &Error) {
        self.fail_txn();
        if e.kind != ErrorKind::SerializationFailure {
            return;
        }
        if let Some(t) = &mut self.txn
            && t.explicit
            && !t.rolled_back
        {
            t.rolled_back = true;
            if let Err(e) = t.txn.rollback().await {
                tracing::warn!(error = %e, "rolling back after a serialization failure");
            }
        }
    }

    async fn run(
        &mut self,
        p: &Parsed,
        params: &[Value],
        prepared: Option<&Prepared>,
    ) -> Result<Output> {
        let r = self.run_inner(p, params, prepared).await;
        if let Err(e) = &r {
            self.fail_txn_after(e).await;
        }
        r
    }

    async fn run_inner(
        &mut self,
        p: &Parsed,
        params: &[Value],
        prepared: Option<&Prepared>,
    ) -> Result<Output> {
        if let Some(table) = &p.split_at {
            return self.split_at(table, p, params).await;
        }
        let stmt = &p.stmt;
        if is_transaction_control(stmt) {
            return self.transaction_control(stmt).await;
        }
        if let Some(t) = &self.txn
            && t.explicit
            && t.failed
        {
            return Err(Error::new(
                ErrorKind::InFailedTransaction,
                "current transaction is aborted, commands ignored until end of transaction block",
            ));
        }
        match stmt {
            Statement::Set(s) => return self.set(s),
            Statement::ShowVariable { variable } => return self.show(variable),
            Statement::Reset(r) => {
                match &r.reset {
                    ast::Reset::ALL => {
                        self.settings = default_settings(&self.user, &self.database);
                    }
                    ast::Reset::SessionAuthorization => {}
                    ast::Reset::ConfigurationParameter(n) => {
                        let name = parse::object_name(n)?.join(".");
                        if let Some(v) = default_settings(&self.user, &self.database).get(&name) {
                            self.settings.insert(name, v.clone());
                        }
                    }
                }
                return Ok(Output::new(Outcome::Command("RESET".into())));
            }
            Statement::Discard { .. } => {
                return Ok(Output::new(Outcome::Command("DISCARD ALL".into())));
            }
            Statement::Deallocate { .. } => {
                return Ok(Output::new(Outcome::Command("DEALLOCATE".into())));
            }
            Statement::Analyze(_) | Statement::Vacuum(_) => {
                let tag = if matches!(stmt, Statement::Analyze(_)) {
                    "ANALYZE"
                } else {
                    "VACUUM"
                };
                return Ok(Output::new(Outcome::Command(tag.into())));
            }
            Statement::Copy {
                source,
                to,
                target,
                options,
                legacy_options,
                ..
            } => {
                return self
                    .copy_statement(source, *to, target, options, legacy_options, params)
                    .await;
            }
            _ => {}
        }
        if self.txn.as_ref().is_some_and(|t| t.explicit) {
            let mut state = self.txn.take().expect("checked above");
            let r = self.run_in_txn(&mut state, p, params, prepared).await;
            self.txn = Some(state);
            return r;
        }
        // An implicit transaction, retried on conflicts.
        let mut attempt = 0;
        loop {
            let txn = self.engine.client.begin().await?;
            let mut state = TxnState {
                txn,
                explicit: false,
                failed: false,
                rolled_back: false,
                read_only: false,
                catalog: None,
                ddl: None,
                savepoints: vec![],
                started: Utc::now(),
                settings_at_begin: BTreeMap::new(),
                settings_at_commit: BTreeMap::new(),
            };
            let r = self.run_in_txn(&mut state, p, params, prepared).await;
            let r = match r {
                Ok(out) => match state.txn.commit().await {
                    Ok(_) => return Ok(out),
                    Err(e) => Err(Error::from(e)),
                },
                Err(e) => {
                    let _ = state.txn.rollback().await;
                    Err(e)
                }
            };
            match r {
                Err(e) if e.is_retryable() && attempt < AUTO_RETRIES => {
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_micros(100 << attempt.min(8)))
                        .await;
                }
                other => return other,
            }
        }
    }

    /// Ends a transaction: commits it if asked and it has not failed, else rolls it back;
    /// the settings become those of after COMMIT or of before BEGIN. Returns the tag.
    async fn end_txn(&mut self, mut t: TxnState, commit: bool) -> Result<&'static str> {
        if commit && !t.failed {
            let r = t.txn.commit().await;
            self.settings = if r.is_ok() {
                t.settings_at_commit
            } else {
                t.settings_at_begin
            };
            r?;
            return Ok("COMMIT");
        }
        self.settings = t.settings_at_begin;
        let r = t.txn.rollback().await;
        // COMMIT of a failed transaction reports ROLLBACK whatever happens to the undo.
        if !commit {
            r?;
        }
        Ok("ROLLBACK")
    }

    /// Begins an explicit transaction.
    async fn new_txn_state(&self, read_only: bool) -> Result<TxnState> {
        Ok(TxnState {
            txn: self.engine.client.begin().await?,
            explicit: true,
            failed: false,
            rolled_back: false,
            read_only,
            catalog: None,
            ddl: None,
            savepoints: vec![],
            started: Utc::now(),
            settings_at_begin: self.settings.clone(),
            settings_at_commit: self.settings.clone(),
        })
    }

    async fn transaction_control(&mut self, stmt: &Statement) -> Result<Output> {
        let tag = |s: &str| Ok(Output::new(Outcome::Command(s.into())));
        match stmt {
            Statement::StartTransaction { modes, .. } => {
                if self.txn.as_ref().is_some_and(|t| t.explicit) {
                    return Ok(Output {
                        outcome: Outcome::Command("BEGIN".into()),
                        notices: vec!["there is already a transaction in progress".into()],
                    });
                }
                let read_only = modes.iter().any(|m| {
                    matches!(
                        m,
                        ast::TransactionMode::AccessMode(ast::TransactionAccessMode::ReadOnly)
                    )
                });
                self.txn = Some(self.new_txn_state(read_only).await?);
                tag("BEGIN")
            }
            Statement::Commit { chain: true, .. }
            | Statement::Rollback {
                chain: true,
                savepoint: None,
                ..
            } => {
                let commit = matches!(stmt, Statement::Commit { .. });
                let what = if commit { "COMMIT" } else { "ROLLBACK" };
                let Some(t) = self.txn.take().filter(|t| t.explicit) else {
                    return Err(Error::new(
                        ErrorKind::NoActiveTransaction,
                        format!("{what} AND CHAIN can only be used in transaction blocks"),
                    ));
                };
                let read_only = t.read_only;
                let tag_text = self.end_txn(t, commit).await?;
                // The new transaction has the same characteristics.
                self.txn = Some(self.new_txn_state(read_only).await?);
                tag(tag_text)
            }
            Statement::Commit { .. } => match self.txn.take() {
                None => Ok(Output {
                    outcome: Outcome::Command("COMMIT".into()),
                    notices: vec!["there is no transaction in progress".into()],
                }),
                Some(t) => tag(self.end_txn(t, true).await?),
            },
            Statement::Rollback {
                savepoint: None, ..
            } => match self.txn.take() {
                None => Ok(Output {
                    outcome: Outcome::Command("ROLLBACK".into()),
                    notices: vec!["there is no transaction in progress".into()],
                }),
                Some(t) => tag(self.end_txn(t, false).await?),
            },
            Statement::Rollback {
                savepoint: Some(name),
                ..
            } => {
                let n = parse::ident(name);
                let Some(t) = self.txn.as_mut().filter(|t| t.explicit) else {
                    return Err(Error::new(
                        ErrorKind::NoActiveTransaction,
                        "ROLLBACK TO SAVEPOINT can only be used in transaction blocks",
                    ));
                };
                let Some(pos) = t.savepoints.iter().rposition(|(s, _)| *s == n) else {
                    return Err(Error::new(
                        ErrorKind::InvalidSavepoint,
                        format!("savepoint \"{n}\" does not exist"),
                    ));
                };
                if t.rolled_back {
                    return Err(Error::new(
                        ErrorKind::InFailedTransaction,
                        "current transaction was aborted by a serialization failure and rolled back; only ROLLBACK is possible",
                    ));
                }
                t.savepoints.truncate(pos + 1);
                t.txn.rollback_to(&t.savepoints[pos].1);
                t.failed = false;
                t.catalog = None;
                tag("ROLLBACK")
            }
            Statement::Savepoint { name } => {
                let n = parse::ident(name);
                let Some(t) = self.txn.as_mut().filter(|t| t.explicit) else {
                    return Err(Error::new(
                        ErrorKind::NoActiveTransaction,
                        "SAVEPOINT can only be used in transaction blocks",
                    ));
                };
                if t.failed {
                    return Err(Error::new(
                        ErrorKind::InFailedTransaction,
                        "current transaction is aborted, commands ignored until end of transaction block",
                    ));
                }
                let sp = t.txn.savepoint();
                t.savepoints.push((n, sp));
                tag("SAVEPOINT")
            }
            Statement::ReleaseSavepoint { name } => {
                let n = parse::ident(name);
                let Some(t) = self.txn.as_mut().filter(|t| t.explicit) else {
                    return Err(Error::new(
                        ErrorKind::NoActiveTransaction,
                        "RELEASE SAVEPOINT can only be used in transaction blocks",
                    ));
                };
                if t.failed {
                    return Err(Error::new(
                        ErrorKind::InFailedTransaction,
                        "current transaction is aborted, commands ignored until end of transaction block",
                    ));
                }
                let Some(pos) = t.savepoints.iter().rposition(|(s, _)| *s == n) else {
                    return Err(Error::new(
                        ErrorKind::InvalidSavepoint,
                        format!("savepoint \"{n}\" does not exist"),
                    ));
                };
                for (_, sp) in t.savepoints.drain(pos..).rev() {
                    t.txn.release(sp);
                }
                tag("RELEASE")
            }
            _ => Err(Error::internal("not a transaction control statement")),
        }
    }

    /// Returns the settings as a shared list, rebuilt only when they changed.
    fn settings_snapshot(&self) -> Settings {
        let mut cached = self
            .settings_snapshot
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(snap) = cached.as_ref()
            && snap.len() == self.settings.len()
            && snap
                .iter()
                .zip(&self.settings)
                .all(|((a, b), (c, d))| a == c && b == d)
        {
            return snap.clone();
        }
        let snap: Settings = Arc::new(
            self.settings
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        );
        *cached = Some(snap.clone());
        snap
    }

    fn session_info(
        &self,
        catalog: Arc<Catalog>,
        db_id: u64,
        started: DateTime<Utc>,
    ) -> SessionInfo {
        SessionInfo {
            user: self.user.clone(),
            database: self.database.clone(),
            txn_time: started,
            statement_time: Utc::now(),
            backend_pid: self.pid,
            catalog,
            db_id,
            settings: self.settings_snapshot(),
            setting_changes: self.setting_changes.clone(),
        }
    }

    async fn run_in_txn(
        &mut self,
        state: &mut TxnState,
        p: &Parsed,
        params: &[Value],
        prepared: Option<&Prepared>,
    ) -> Result<Output> {
        self.setting_changes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        let out = self.run_in_txn_inner(state, p, params, prepared).await?;
        let changes = std::mem::take(
            &mut *self
                .setting_changes
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        for (name, value, local) in changes {
            if local && !state.explicit {
                continue;
            }
            let before = self.settings.clone();
            self.set_variable(&name.to_ascii_lowercase(), &value)?;
            if state.explicit && !local {
                for (k, v) in &self.settings {
                    if before.get(k) != Some(v) {
                        state.settings_at_commit.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        Ok(out)
    }

    async fn run_in_txn_inner(
        &mut self,
        state: &mut TxnState,
        p: &Parsed,
        params: &[Value],
        prepared: Option<&Prepared>,
    ) -> Result<Output> {
        let catalog = match &state.catalog {
            Some(c) => c.clone(),
            None => {
                self.engine
                    .catalog
                    .get(&mut state.txn, self.engine.tenant)
                    .await?
            }
        };
        let db_id = catalog
            .database(&self.database)
            .map(|d| d.id)
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::UndefinedDatabase,
                    format!("database \"{}\" does not exist", self.database),
                )
            })?;
        let info = self.session_info(catalog.clone(), db_id, state.started);
        let engine = self.engine.clone();
        let cancel = self.cancel.clone();
        let stmt = &p.stmt;
        let is_write = matches!(
            stmt,
            Statement::Insert(_) | Statement::Update(_) | Statement::Delete(_)
        ) || matches!(stmt, Statement::Query(q) if !q.locks.is_empty());
        let is_ddl = !matches!(
            stmt,
            Statement::Query(_)
                | Statement::Insert(_)
                | Statement::Update(_)
                | Statement::Delete(_)
                | Statement::Explain { .. }
        );
        if state.read_only && (is_write || is_ddl) {
            return Err(Error::new(
                ErrorKind::ReadOnlyTransaction,
                "cannot execute this statement in a read-only transaction",
            ));
        }
        match stmt {
            Statement::Query(_)
            | Statement::Insert(_)
            | Statement::Update(_)
            | Statement::Delete(_) => {
                let bound = match prepared
                    .and_then(|pr| pr.plan.lock().unwrap_or_else(|e| e.into_inner()).clone())
                {
                    Some((version, b)) if version == catalog.version => b,
                    _ => {
                        let types = prepared
                            .map(|pr| pr.param_types.clone())
                            .unwrap_or_default();
                        let mut b = Binder::new(&catalog, db_id, types)
                            .with_search_path(self.search_path());
                        let bound = Arc::new(bind(&mut b, stmt)?);
                        if let Some(pr) = prepared {
                            *pr.plan.lock().unwrap_or_else(|e| e.into_inner()) =
                                Some((catalog.version, bound.clone()));
                        }
                        bound
                    }
                };
                run_bound(&bound, &mut state.txn, &engine, params, &info, &cancel)
                    .await
                    .map(Output::new)
            }
            Statement::Explain {
                statement,
                analyze,
                options,
                ..
            } => {
                let analyze = *analyze
                    || options.as_ref().is_some_and(|o| {
                        o.iter()
                            .any(|u| u.name.value.eq_ignore_ascii_case("analyze"))
                    });
                let mut b =
                    Binder::new(&catalog, db_id, vec![]).with_search_path(self.search_path());
                let bound = bind(&mut b, statement)?;
                let mut lines = Vec::new();
                let plan = match &bound.stmt {
                    BoundStmt::Query(q) => q.root.clone(),
                    BoundStmt::Insert(i) => {
                        lines.push(format!("Insert on {}", i.table.name));
                        match &i.source {
                            InsertSource::Query(p) => p.clone(),
                            _ => crate::plan::Plan::Values {
                                rows: vec![],
                                types: vec![],
                            },
                        }
                    }
                    BoundStmt::Update(u) => {
                        lines.push(format!("Update on {}", u.table.name));
                        u.scan.clone()
                    }
                    BoundStmt::Delete(d) => {
                        lines.push(format!("Delete on {}", d.table.name));
                        d.scan.clone()
                    }
                };
                let depth = usize::from(!lines.is_empty());
                plan.explain(&mut lines, depth);
                if analyze {
                    let start = std::time::Instant::now();
                    let out = run_bound(
                        &Arc::new(bound),
                        &mut state.txn,
                        &engine,
                        params,
                        &info,
                        &cancel,
                    )
                    .await?;
                    let rows = match &out {
                        Outcome::Rows { rows, .. } => rows.len(),
                        _ => 0,
                    };
                    lines.push(format!(
                        "Execution: {rows} rows in {:.3} ms",
                        start.elapsed().as_secs_f64() * 1000.0
                    ));
                }
                let columns = Arc::new(vec![Column::new("QUERY PLAN", SqlType::Text)]);
                let rows = lines.into_iter().map(|l| vec![Value::Text(l)]).collect();
                Ok(Output::new(Outcome::Rows {
                    columns,
                    rows,
                    tag: "EXPLAIN".into(),
                }))
            }
            _ => {
                // DDL.
                if state.explicit {
                    let what = match stmt {
                        Statement::CreateDatabase { .. } => Some("CREATE DATABASE"),
                        Statement::Drop {
                            object_type: ast::ObjectType::Database,
                            ..
                        } => Some("DROP DATABASE"),
                        _ => None,
                    };
                    if let Some(what) = what {
                        return Err(Error::new(
                            ErrorKind::ActiveTransaction,
                            format!("{what} cannot run inside a transaction block"),
                        ));
                    }
                }
                if state.ddl.is_none() {
                    state.ddl = Some(engine.catalog.begin_ddl());
                    // Other nodes may use the old catalog for a window: wait it out.
                    engine
                        .catalog
                        .fence_ddl(&mut state.txn, engine.tenant)
                        .await?;
                }
                let mut cat = (*catalog).clone();
                let (tag, notice) = {
                    let no_subplans = Vec::new();
                    let mut cx = ExecCtx::new(
                        &mut state.txn,
                        engine.tenant,
                        params,
                        &info,
                        &no_subplans,
                        &engine.sequences,
                        &cancel,
                    );
                    let mut ddl = DdlCtx {
                        cx: &mut cx,
                        catalog: &mut cat,
                        db_id,
                    };
                    ddl.run(stmt, &p.sql).await?
                };
                if cat.version != catalog.version {
                    state.catalog = Some(Arc::new(cat));
                }
                Ok(Output {
                    outcome: Outcome::Command(tag),
                    notices: notice,
                })
            }
        }
    }

    fn set(&mut self, s: &ast::Set) -> Result<Output> {
        let done = Ok(Output::new(Outcome::Command("SET".into())));
        match s {
            ast::Set::SingleAssignment {
                variable,
                values,
                scope,
                ..
            } => {
                let name = parse::object_name(variable)?.join(".").to_ascii_lowercase();
                let value = values
                    .iter()
                    .map(|v| match v {
                        ast::Expr::Value(x) => match &x.value {
                            ast::Value::SingleQuotedString(s) => s.clone(),
                            other => other.to_string(),
                        },
                        ast::Expr::Identifier(i) if i.quote_style.is_some() => {
                            format!("\"{}\"", i.value)
                        }
                        ast::Expr::Identifier(i) => i.value.clone(),
                        other => other.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                let local = matches!(scope, Some(ast::ContextModifier::Local));
                let in_txn = self.txn.as_ref().is_some_and(|t| t.explicit);
                if local && !in_txn {
                    // As in PostgreSQL: a warning, and no effect.
                    return Ok(Output {
                        outcome: Outcome::Command("SET".into()),
                        notices: vec!["SET LOCAL can only be used in transaction blocks".into()],
                    });
                }
                let before = self.settings.clone();
                self.set_variable(&name, &value)?;
                if !local && let Some(t) = self.txn.as_mut().filter(|t| t.explicit) {
                    for (k, v) in &self.settings {
                        if before.get(k) != Some(v) {
                            t.settings_at_commit.insert(k.clone(), v.clone());
                        }
                    }
                }
                done
            }
            ast::Set::SetTimeZone { value, .. } => {
                let v = match value {
                    ast::Expr::Value(x) => match &x.value {
                        ast::Value::SingleQuotedString(s) => s.clone(),
                        other => other.to_string(),
                    },
                    other => other.to_string(),
                };
                self.set_variable("timezone", &v)?;
                done
            }
            ast::Set::SetTransaction { modes, .. } => {
                for m in modes {
                    if let ast::TransactionMode::AccessMode(a) = m
                        && let Some(t) = self.txn.as_mut().filter(|t| t.explicit)
                    {
                        t.read_only = matches!(a, ast::TransactionAccessMode::ReadOnly);
                    }
                }
                done
            }
            ast::Set::SetNames { charset_name, .. } => {
                self.set_variable("client_encoding", &charset_name.value)?;
                done
            }
            ast::Set::SetNamesDefault {} => done,
            ast::Set::SetRole { .. } | ast::Set::SetSessionAuthorization(_) => done,
            _ => Err(Error::unsupported("this form of SET")),
        }
    }

    /// Applies a setting a client sent in its startup packet.
    pub fn set_parameter(&mut self, name: &str, value: &str) -> Result<()> {
        self.set_variable(&name.to_ascii_lowercase(), value)
    }

    fn set_variable(&mut self, name: &str, value: &str) -> Result<()> {
        let v = value.trim();
        let norm = v.trim_matches('\'').to_string();
        match name {
            "timezone" | "time zone" => {
                let upper = norm.to_ascii_uppercase();
                if !matches!(
                    upper.as_str(),
                    "UTC"
                        | "GMT"
                        | "ETC/UTC"
                        | "ETC/GMT"
                        | "Z"
                        | "ZULU"
                        | "UCT"
                        | "UNIVERSAL"
                        | "DEFAULT"
                        | "LOCAL"
                        | "+00"
                        | "+00:00"
                        | "0"
                        | "00:00"
                ) {
                    return Err(Error::unsupported(format!(
                        "time zone \"{norm}\" (sessions run in UTC)"
                    )));
                }
                self.settings.insert("timezone".into(), "UTC".into());
            }
            "client_encoding" | "names" => {
                let upper = norm.to_ascii_uppercase().replace('-', "");
                if !matches!(upper.as_str(), "UTF8" | "UNICODE" | "DEFAULT") {
                    return Err(Error::unsupported(format!(
                        "client encoding \"{norm}\" (only UTF8)"
                    )));
                }
                self.settings
                    .insert("client_encoding".into(), "UTF8".into());
            }
            "datestyle" => {
                let upper = norm.to_ascii_uppercase();
                if !upper.contains("ISO") && upper != "DEFAULT" {
                    return Err(Error::unsupported(format!(
                        "DateStyle \"{norm}\" (only ISO)"
                    )));
                }
                self.settings.insert("datestyle".into(), "ISO, MDY".into());
            }
            "transaction_isolation"
            | "default_transaction_isolation"
            | "transaction isolation level" => {
                // Every transaction is serializable; weaker requests get the stronger level.
                self.settings
                    .insert(name.to_string(), "serializable".into());
            }
            "intervalstyle" => {
                if !norm.eq_ignore_ascii_case("postgres") && !norm.eq_ignore_ascii_case("default") {
                    return Err(Error::unsupported(format!("IntervalStyle \"{norm}\"")));
                }
            }
            "bytea_output" => {
                if !norm.eq_ignore_ascii_case("hex") {
                    return Err(Error::unsupported(format!("bytea_output \"{norm}\"")));
                }
            }
            "standard_conforming_strings" => {
                if !matches!(
                    norm.to_ascii_lowercase().as_str(),
                    "on" | "true" | "default"
                ) {
                    return Err(Error::unsupported("standard_conforming_strings = off"));
                }
            }
            "statement_timeout" | "lock_timeout" | "idle_in_transaction_session_timeout" => {
                let val = if norm.eq_ignore_ascii_case("default") {
                    "0".to_string()
                } else {
                    format_duration_ms(parse_duration_ms(&norm).ok_or_else(|| {
                        Error::new(
                            ErrorKind::InvalidParameterValue,
                            format!("invalid value for parameter \"{name}\": \"{norm}\""),
                        )
                        .with_hint("Valid units for this parameter are \"us\", \"ms\", \"s\", \"min\", \"h\", and \"d\".")
                    })?)
                };
                self.settings.insert(name.to_string(), val);
            }
            n if self.settings.contains_key(n)
                || n.contains('.')
                || KNOWN_SETTINGS.contains(&n) =>
            {
                let val = if norm.eq_ignore_ascii_case("default") {
                    default_settings(&self.user, &self.database)
                        .get(n)
                        .cloned()
                        .unwrap_or_default()
                } else {
                    norm
                };
                self.settings.insert(n.to_string(), val);
            }
            other => {
                return Err(Error::new(
                    ErrorKind::UndefinedObject,
                    format!("unrecognized configuration parameter \"{other}\""),
                ));
            }
        }
        Ok(())
    }

    /// `ALTER TABLE t SPLIT AT query`: splits the table's ranges at the primary keys
    /// (or key prefixes) the query returns, and returns each split key with the range
    /// that now starts there.
    async fn split_at(
        &mut self,
        table: &ast::ObjectName,
        p: &Parsed,
        params: &[Value],
    ) -> Result<Output> {
        if self.txn.as_ref().is_some_and(|t| t.explicit) {
            return Err(Error::new(
                ErrorKind::ActiveTransaction,
                "ALTER TABLE ... SPLIT AT cannot run inside a transaction block",
            ));
        }
        let (catalog, db_id) = self.catalog_for_binding().await?;
        let desc = Binder::new(&catalog, db_id, vec![])
            .with_search_path(self.search_path())
            .table(table)?;
        let query = Parsed {
            stmt: p.stmt.clone(),
            sql: p.sql.clone(),
            split_at: None,
        };
        let out = Box::pin(self.run_inner(&query, params, None)).await?;
        let Outcome::Rows { columns, rows, .. } = out.outcome else {
            return Err(Error::internal("SPLIT AT query returned no rows"));
        };
        let codec = executor::TableCodec::new(desc.clone(), self.engine.tenant)?;
        let pk: Vec<SqlType> = codec
            .pk_positions()
            .iter()
            .map(|&p| codec.types()[p].clone())
            .collect();
        if columns.is_empty() || columns.len() > pk.len() {
            return Err(Error::new(
                ErrorKind::Syntax,
                format!(
                    "SPLIT AT: the query gives {} columns; table \"{}\" has {} primary key columns",
                    columns.len(),
                    desc.name,
                    pk.len()
                ),
            ));
        }
        let kv = self.engine.client.kv().clone();
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let values = row
                .into_iter()
                .zip(columns.iter().zip(&pk))
                .map(|(v, (c, ty))| crate::cast::cast(v, &c.ty, ty, false))
                .collect::<Result<Vec<_>>>()?;
            if values.iter().any(Value::is_null) {
                return Err(Error::new(
                    ErrorKind::NotNullViolation,
                    "SPLIT AT: a split point may not be NULL",
                ));
            }
            let key = codec.primary_key_of(&values)?;
            let ranges = kv.split_at(&key).await.map_err(txn::Error::from)?;
            let right = ranges
                .iter()
                .find(|r| r.span.start == key)
                .map_or(0, |r| r.id);
            out.push(vec![
                Value::Text(codec::layout::pretty(&key)),
                Value::Int(right as i64),
            ]);
        }
        Ok(Output::new(Outcome::Rows {
            columns: Arc::new(split_at_columns()),
            rows: out,
            tag: "SELECT".into(),
        }))
    }

    fn show(&self, variable: &[ast::Ident]) -> Result<Output> {
        let name = show_name(variable);
        let key = name.to_ascii_lowercase();
        let key = match key.as_str() {
            "time zone" => "timezone".to_string(),
            "transaction isolation level" => "transaction_isolation".to_string(),
            k => k.to_string(),
        };
        if key == "all" {
            let columns = Arc::new(vec![
                Column::new("name", SqlType::Text),
                Column::new("setting", SqlType::Text),
                Column::new("description", SqlType::Text),
            ]);
            let rows = self
                .settings
                .iter()
                .map(|(k, v)| {
                    vec![
                        Value::Text(k.clone()),
                        Value::Text(v.clone()),
                        Value::Text(String::new()),
                    ]
                })
                .collect();
            return Ok(Output::new(Outcome::Rows {
                columns,
                rows,
                tag: "SHOW".into(),
            }));
        }
        let value = self.settings.get(&key).cloned().ok_or_else(|| {
            Error::new(
                ErrorKind::UndefinedObject,
                format!("unrecognized configuration parameter \"{key}\""),
            )
        })?;
        let display = match key.as_str() {
            "timezone" => "TimeZone".to_string(),
            "datestyle" => "DateStyle".to_string(),
            "intervalstyle" => "IntervalStyle".to_string(),
            _ => key.clone(),
        };
        let columns = Arc::new(vec![Column::new(display, SqlType::Text)]);
        Ok(Output::new(Outcome::Rows {
            columns,
            rows: vec![vec![Value::Text(value)]],
            tag: "SHOW".into(),
        }))
    }

    async fn copy_statement(
        &mut self,
        source: &ast::CopySource,
        to: bool,
        target: &ast::CopyTarget,
        options: &[ast::CopyOption],
        legacy: &[ast::CopyLegacyOption],
        params: &[Value],
    ) -> Result<Output> {
        let mut fmt = CopyFormat::default();
        let mut null_set = None;
        let mut delim_set = None;
        for o in options {
            match o {
                ast::CopyOption::Format(f) => match f.value.to_ascii_lowercase().as_str() {
                    "csv" => {
                        fmt = CopyFormat {
                            header: fmt.header,
                            ..CopyFormat::csv()
                        }
                    }
                    "text" => {}
                    "binary" => fmt.binary = true,
                    other => return Err(Error::unsupported(format!("COPY format {other}"))),
                },
                ast::CopyOption::Delimiter(c) => delim_set = Some(*c),
                ast::CopyOption::Null(n) => null_set = Some(n.clone()),
                ast::CopyOption::Header(h) => fmt.header = *h,
                ast::CopyOption::Quote(q) => fmt.quote = *q,
                ast::CopyOption::Escape(e) => fmt.escape = *e,
                ast::CopyOption::Encoding(e)
                    if e.eq_ignore_ascii_case("utf8") || e.eq_ignore_ascii_case("utf-8") => {}
                ast::CopyOption::Freeze(_) => {}
                other => return Err(Error::unsupported(format!("COPY option {other}"))),
            }
        }
        for o in legacy {
            match o {
                ast::CopyLegacyOption::Csv(csv_opts) => {
                    fmt = CopyFormat {
                        header: fmt.header,
                        ..CopyFormat::csv()
                    };
                    for c in csv_opts {
                        match c {
                            ast::CopyLegacyCsvOption::Header => fmt.header = true,
                            ast::CopyLegacyCsvOption::Quote(q) => fmt.quote = *q,
                            ast::CopyLegacyCsvOption::Escape(e) => fmt.escape = *e,
                            _ => return Err(Error::unsupported("this COPY CSV option")),
                        }
                    }
                }
                ast::CopyLegacyOption::Delimiter(c) => delim_set = Some(*c),
                ast::CopyLegacyOption::Null(n) => null_set = Some(n.clone()),
                ast::CopyLegacyOption::Binary => fmt.binary = true,
                _ => return Err(Error::unsupported("this COPY option")),
            }
        }
        if let Some(d) = delim_set {
            fmt.delimiter = d;
        }
        if let Some(n) = null_set {
            fmt.null = n;
        }
        match (to, target) {
            (false, ast::CopyTarget::Stdin) => {
                let ast::CopySource::Table {
                    table_name,
                    columns,
                } = source
                else {
                    return Err(Error::new(ErrorKind::Syntax, "COPY FROM needs a table"));
                };
                let (catalog, db_id) = self.catalog_for_binding().await?;
                let mut b =
                    Binder::new(&catalog, db_id, vec![]).with_search_path(self.search_path());
                let cols: Vec<ast::ObjectName> = columns
                    .iter()
                    .map(|c| ast::ObjectName::from(vec![c.clone()]))
                    .collect();
                // Bind as `INSERT INTO t (cols) DEFAULT VALUES`: the targets are what COPY needs.
                let Parsed {
                    stmt: Statement::Insert(mut ins),
                    ..
                } = parse::parse("INSERT INTO t DEFAULT VALUES")?
                    .pop()
                    .ok_or_else(|| Error::internal("empty template"))?
                else {
                    return Err(Error::internal("COPY template is not an INSERT"));
                };
                ins.table = ast::TableObject::TableName(table_name.clone());
                ins.columns = cols;
                let plan = b.bind_insert(&ins)?;
                let live: Vec<SqlType> = plan.table.live_columns().map(|c| c.ty.clone()).collect();
                let types: Vec<SqlType> = plan.targets.iter().map(|p| live[*p].clone()).collect();
                let n = types.len();
                let binary = fmt.binary;
                let own_txn = !self.txn.as_ref().is_some_and(|t| t.explicit);
                if own_txn {
                    self.txn = Some(self.new_txn_state(false).await?);
                }
                self.copy = Some(CopyState {
                    plan,
                    types,
                    format: fmt,
                    buf: Vec::new(),
                    pending: Vec::new(),
                    count: 0,
                    header_skipped: false,
                    done: false,
                    own_txn,
                });
                Ok(Output::new(Outcome::CopyIn { columns: n, binary }))
            }
            (true, ast::CopyTarget::Stdout) => {
                let query = match source {
                    ast::CopySource::Table {
                        table_name,
                        columns,
                    } => {
                        let cols = if columns.is_empty() {
                            "*".to_string()
                        } else {
                            columns
                                .iter()
                                .map(|c| c.to_string())
                                .collect::<Vec<_>>()
                                .join(", ")
                        };
                        format!("SELECT {cols} FROM {table_name}")
                    }
                    ast::CopySource::Query(q) => q.to_string(),
                };
                let parsed = parse::parse(&query)?
                    .pop()
                    .ok_or_else(|| Error::internal("empty COPY query"))?;
                let out = Box::pin(self.run_inner(&parsed, params, None)).await?;
                let Outcome::Rows { columns, rows, .. } = out.outcome else {
                    return Err(Error::internal("COPY query returned no rows"));
                };
                let types: Vec<SqlType> = columns.iter().map(|c| c.ty.clone()).collect();
                if fmt.binary {
                    return Ok(Output::new(Outcome::CopyOutBinary { types, rows }));
                }
                let mut lines = Vec::with_capacity(rows.len() + 1);
                if fmt.header {
                    let names: Vec<String> = columns.iter().map(|c| c.name.clone()).collect();
                    lines.push(format!("{}\n", names.join(&fmt.delimiter.to_string())));
                }
                for r in &rows {
                    lines.push(copy::format_row(r, &types, &fmt));
                }
                Ok(Output::new(Outcome::CopyOut {
                    columns: types.len(),
                    lines,
                }))
            }
            _ => Err(Error::unsupported(
                "COPY to or from a file or program (use STDIN/STDOUT)",
            )),
        }
    }

    /// The column types of the COPY FROM in progress.
    pub fn copy_types(&self) -> Vec<SqlType> {
        self.copy
            .as_ref()
            .map_or_else(Vec::new, |s| s.types.clone())
    }

    /// Receives COPY data in text or CSV format; rows are written in batches.
    pub async fn copy_data(&mut self, data: &[u8]) -> Result<()> {
        let Some(state) = self.copy.as_mut() else {
            return Err(Error::new(ErrorKind::Syntax, "COPY data without COPY"));
        };
        state.buf.extend_from_slice(data);
        let lines = copy::take_lines(&mut state.buf, &state.format);
        let mut failed = None;
        for line in lines {
            if state.done {
                continue;
            }
            if state.format.header && !state.header_skipped {
                state.header_skipped = true;
                continue;
            }
            match copy::parse_line(&line, &state.format, &state.types) {
                Ok(Some(row)) => state.pending.push(row),
                Ok(None) => state.done = true,
                Err(e) => {
                    failed = Some(e.with_detail(format!("COPY, line: {line}")));
                    break;
                }
            }
        }
        if let Some(e) = failed {
            self.copy_fail().await;
            return Err(e);
        }
        self.copy_flush(false).await
    }

    /// Receives rows the wire layer decoded (binary COPY).
    pub async fn copy_rows(&mut self, rows: Vec<Vec<Value>>) -> Result<()> {
        let Some(state) = self.copy.as_mut() else {
            return Err(Error::new(ErrorKind::Syntax, "COPY data without COPY"));
        };
        state.pending.extend(rows);
        self.copy_flush(false).await
    }

    /// Finishes COPY FROM STDIN; returns the number of rows copied.
    pub async fn copy_done(&mut self) -> Result<u64> {
        if let Some(state) = self.copy.as_mut()
            && !state.buf.is_empty()
        {
            let rest = String::from_utf8_lossy(&std::mem::take(&mut state.buf)).into_owned();
            if !state.done && (!state.format.header || state.header_skipped) {
                match copy::parse_line(rest.trim_end_matches('\r'), &state.format, &state.types) {
                    Ok(Some(row)) => state.pending.push(row),
                    Ok(None) => {}
                    Err(e) => {
                        self.copy_fail().await;
                        return Err(e);
                    }
                }
            }
        }
        self.copy_flush(true).await?;
        let Some(state) = self.copy.take() else {
            return Ok(0);
        };
        if state.own_txn
            && let Some(mut t) = self.txn.take()
        {
            t.txn.commit().await?;
        }
        Ok(state.count)
    }

    /// Abandons COPY FROM STDIN: its own transaction rolls back; an explicit one is failed.
    pub async fn copy_fail(&mut self) {
        match self.copy.take() {
            Some(state) if state.own_txn => {
                if let Some(mut t) = self.txn.take() {
                    let _ = t.txn.rollback().await;
                }
            }
            _ => self.fail_txn(),
        }
    }

    /// Writes buffered COPY rows once a batch is full (or always, when `all`).
    async fn copy_flush(&mut self, all: bool) -> Result<()> {
        let Some(mut state) = self.copy.take() else {
            return Ok(());
        };
        if state.pending.is_empty() || (!all && state.pending.len() < COPY_BATCH) {
            self.copy = Some(state);
            return Ok(());
        }
        let rows: Vec<Vec<Option<crate::expr::Expr>>> = std::mem::take(&mut state.pending)
            .into_iter()
            .map(|r| {
                r.into_iter()
                    .zip(&state.types)
                    .map(|(v, t)| Some(crate::expr::Expr::Literal(v, t.clone())))
                    .collect()
            })
            .collect();
        let n = rows.len() as u64;
        let mut plan = state.plan.clone();
        plan.source = InsertSource::Values(rows);
        let bound = Arc::new(Bound {
            stmt: BoundStmt::Insert(plan),
            subplans: Vec::new(),
        });
        self.copy = Some(state);
        match self.run_bound_in_session(bound).await {
            Ok(()) => {
                if let Some(s) = self.copy.as_mut() {
                    s.count += n;
                }
                Ok(())
            }
            Err(e) => {
                self.copy_fail().await;
                Err(e)
            }
        }
    }

    async fn run_bound_in_session(&mut self, bound: Arc<Bound>) -> Result<()> {
        let engine = self.engine.clone();
        let cancel = self.cancel.clone();
        if self.txn.as_ref().is_some_and(|t| t.explicit) {
            let mut state = self.txn.take().expect("checked above");
            let catalog = match &state.catalog {
                Some(c) => c.clone(),
                None => engine.catalog.get(&mut state.txn, engine.tenant).await?,
            };
            let db_id = catalog.database(&self.database).map_or(0, |d| d.id);
            let info = self.session_info(catalog, db_id, state.started);
            let r = run_bound(&bound, &mut state.txn, &engine, &[], &info, &cancel).await;
            self.txn = Some(state);
            return r.map(|_| ());
        }
        let mut attempt = 0;
        loop {
            let mut txn = engine.client.begin().await?;
            let catalog = engine.catalog.get(&mut txn, engine.tenant).await?;
            let db_id = catalog.database(&self.database).map_or(0, |d| d.id);
            let info = self.session_info(catalog, db_id, Utc::now());
            let r = match run_bound(&bound, &mut txn, &engine, &[], &info, &cancel).await {
                Ok(_) => txn.commit().await.map(|_| ()).map_err(Error::from),
                Err(e) => {
                    let _ = txn.rollback().await;
                    Err(e)
                }
            };
            match r {
                Err(e) if e.is_retryable() && attempt < AUTO_RETRIES => attempt += 1,
                other => return other,
            }
        }
    }

    /// Ends the session, rolling back an open transaction.
    pub async fn close(&mut self) {
        if let Some(mut t) = self.txn.take() {
            let _ = t.txn.rollback().await;
        }
    }
}

/// Settings a client may set that have no effect here.
const KNOWN_SETTINGS: &[&str] = &[
    "application_name",
    "extra_float_digits",
    "statement_timeout",
    "lock_timeout",
    "search_path",
    "client_min_messages",
    "idle_in_transaction_session_timeout",
    "synchronous_commit",
    "work_mem",
    "row_security",
    "geqo",
    "jit",
    "enable_seqscan",
    "enable_indexscan",
    "enable_hashjoin",
    "enable_mergejoin",
    "enable_nestloop",
    "random_page_cost",
    "max_parallel_workers_per_gather",
    "default_transaction_read_only",
    "default_transaction_deferrable",
    "transaction_deferrable",
    "session_replication_role",
    "maintenance_work_mem",
    "temp_buffers",
    "vacuum_cost_delay",
    "cursor_tuple_fraction",
    "check_function_bodies",
    "default_tablespace",
    "default_with_oids",
    "xmloption",
    "escape_string_warning",
    "quote_all_identifiers",
    "lc_messages",
    "lc_monetary",
    "lc_numeric",
    "lc_time",
    "join_collapse_limit",
    "from_collapse_limit",
    "plan_cache_mode",
    "timezone_abbreviations",
];

fn show_name(variable: &[ast::Ident]) -> String {
    variable
        .iter()
        .map(|i| i.value.clone())
        .collect::<Vec<_>>()
        .join(" ")
        .to_ascii_lowercase()
}

fn max_placeholder(stmt: &Statement) -> usize {
    use std::ops::ControlFlow;
    let mut max = 0usize;
    let _ = ast::visit_expressions(stmt, |e| {
        if let ast::Expr::Value(v) = e
            && let ast::Value::Placeholder(p) = &v.value
            && let Ok(n) = p.trim_start_matches('$').parse::<usize>()
        {
            max = max.max(n);
        }
        ControlFlow::<()>::Continue(())
    });
    max
}

fn bind(b: &mut Binder<'_>, stmt: &Statement) -> Result<Bound> {
    let stmt = match stmt {
        Statement::Query(q) => {
            let (root, columns) = b.bind_query(q)?;
            let columns = columns
                .into_iter()
                .map(|mut c| {
                    if c.ty == SqlType::Unknown {
                        c.ty = SqlType::Text;
                    }
                    c
                })
                .collect();
            BoundStmt::Query(QueryPlan { root, columns })
        }
        Statement::Insert(i) => BoundStmt::Insert(b.bind_insert(i)?),
        Statement::Update(u) => BoundStmt::Update(b.bind_update(u)?),
        Statement::Delete(d) => BoundStmt::Delete(b.bind_delete(d)?),
        other => {
            return Err(Error::unsupported(format!(
                "EXPLAIN of {}",
                other.to_string().split_whitespace().next().unwrap_or("")
            )));
        }
    };
    Ok(Bound {
        stmt,
        subplans: std::mem::take(&mut b.subplans),
    })
}

/// Runs a bound statement in a transaction.
async fn run_bound(
    bound: &Arc<Bound>,
    txn: &mut Transaction,
    engine: &SqlEngine,
    params: &[Value],
    info: &SessionInfo,
    cancel: &AtomicBool,
) -> Result<Outcome> {
    let mut cx = ExecCtx::new(
        txn,
        engine.tenant,
        params,
        info,
        &bound.subplans,
        &engine.sequences,
        cancel,
    );
    Ok(match &bound.stmt {
        BoundStmt::Query(q) => {
            let mut rows = cx.exec(&q.root).await?;
            regclass_names(&mut rows, &q.columns, info);
            Outcome::Rows {
                columns: Arc::new(q.columns.clone()),
                rows,
                tag: "SELECT".into(),
            }
        }
        BoundStmt::Insert(p) => {
            let r = executor::insert(&mut cx, p).await?;
            match &p.returning {
                Some(_) => Outcome::Rows {
                    columns: Arc::new(p.columns.clone()),
                    rows: r.returning,
                    tag: "INSERT 0".into(),
                },
                None => Outcome::Command(format!("INSERT 0 {}", r.count)),
            }
        }
        BoundStmt::Update(p) => {
            let r = executor::update(&mut cx, p).await?;
            match &p.returning {
                Some(_) => Outcome::Rows {
                    columns: Arc::new(p.columns.clone()),
                    rows: r.returning,
                    tag: "UPDATE".into(),
                },
                None => Outcome::Command(format!("UPDATE {}", r.count)),
            }
        }
        BoundStmt::Delete(p) => {
            let r = executor::delete(&mut cx, p).await?;
            match &p.returning {
                Some(_) => Outcome::Rows {
                    columns: Arc::new(p.columns.clone()),
                    rows: r.returning,
                    tag: "DELETE".into(),
                },
                None => Outcome::Command(format!("DELETE {}", r.count)),
            }
        }
    })
}

/// `regclass` values print as relation names: replaces oids by names in result rows.
fn regclass_names(rows: &mut [Row], columns: &[Column], info: &SessionInfo) {
    let cols: Vec<usize> = columns
        .iter()
        .enumerate()
        .filter(|(_, c)| c.ty == SqlType::RegClass)
        .map(|(i, _)| i)
        .collect();
    if cols.is_empty() {
        return;
    }
    for row in rows {
        for &i in &cols {
            if let Some(Value::Int(oid)) = row.get(i)
                && let Some(d) = u64::try_from(*oid).ok().and_then(|o| info.catalog.get(o))
            {
                row[i] = Value::Text(d.name().to_string());
            }
        }
    }
}

/// Parses a time setting in milliseconds: a number (ms) or a number with a unit.
fn parse_duration_ms(s: &str) -> Option<u64> {
    let t = s.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().ok()?;
    let ms = match unit.trim() {
        "" | "ms" => n,
        "us" => n / 1000.0,
        "s" => n * 1000.0,
        "min" => n * 60_000.0,
        "h" => n * 3_600_000.0,
        "d" => n * 86_400_000.0,
        _ => return None,
    };
    (ms >= 0.0 && ms <= i32::MAX as f64).then_some(ms.round() as u64)
}

/// Shows a time setting as PostgreSQL does: in the largest unit that divides it.
fn format_duration_ms(ms: u64) -> String {
    if ms == 0 {
        return "0".into();
    }
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("min", 60_000),
        ("s", 1000),
    ] {
        if ms.is_multiple_of(size) {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

/// The columns `ALTER TABLE ... SPLIT AT` returns: each split key and the range that
/// starts there.
fn split_at_columns() -> Vec<Column> {
    vec![
        Column::new("key", SqlType::Text),
        Column::new("range_id", SqlType::Int8),
    ]
}
