//! Helpers shared by the server's integration tests: a server on a temporary store, and a
//! PostgreSQL-protocol client that renders every value as text.
#![allow(dead_code, clippy::unwrap_used)]

use std::net::SocketAddr;

use server::{Server, ServerConfig};
use tokio_postgres::types::{FromSql, Type};
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

/// A server on a temporary store, listening on free loopback ports.
pub struct TestServer {
    pub server: Server,
    pub dir: tempfile::TempDir,
}

impl TestServer {
    pub async fn start() -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let mut config = ServerConfig::new(dir.path());
        config.sql_addr = SocketAddr::from(([127, 0, 0, 1], 0));
        config.http_addr = SocketAddr::from(([127, 0, 0, 1], 0));
        let server = Server::start(config).await.unwrap();
        TestServer { server, dir }
    }

    pub fn url(&self) -> String {
        format!("postgresql://root@{}/postgres", self.server.sql_addr())
    }

    pub async fn stop(self) {
        self.server.shutdown().await;
    }
}

/// Connects and drives the connection in the background.
pub async fn connect(url: &str) -> Result<Client, tokio_postgres::Error> {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

/// A result value in binary format, rendered through the server's own decoder and text
/// formatting so that simple and extended protocol results compare equal.
pub struct Raw(pub String);

impl<'a> FromSql<'a> for Raw {
    fn from_sql(
        ty: &Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        if matches!(
            *ty,
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN
        ) {
            return Ok(Raw(std::str::from_utf8(raw)?.to_string()));
        }
        let sql_ty = sql::SqlType::from_oid(ty.oid())
            .ok_or_else(|| format!("no type for OID {}", ty.oid()))?;
        let v = pgwire::binary::decode(raw, &sql_ty).map_err(|e| e.message)?;
        Ok(Raw(
            sql::textio::to_text(&v, &sql_ty).unwrap_or_else(|| "NULL".into())
        ))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// Renders a text cell as sqllogictest expects: NULL and (empty).
pub fn cell(v: Option<&str>) -> String {
    match v {
        None => "NULL".into(),
        Some("") => "(empty)".into(),
        Some(s) => s.to_string(),
    }
}

/// The outcome of one statement, protocol-independent.
#[derive(Debug)]
pub enum Output {
    Rows(Vec<Vec<String>>, usize),
    Count(u64),
}

/// A failed statement.
#[derive(Debug, Clone)]
pub struct DbError {
    pub message: String,
    pub sqlstate: Option<String>,
}

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.sqlstate {
            Some(s) => write!(f, "{} (SQLSTATE {s})", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for DbError {}

impl From<tokio_postgres::Error> for DbError {
    fn from(e: tokio_postgres::Error) -> Self {
        match e.as_db_error() {
            Some(db) => DbError {
                message: db.message().to_string(),
                sqlstate: Some(db.code().code().to_string()),
            },
            None => DbError {
                message: e.to_string(),
                sqlstate: None,
            },
        }
    }
}

/// Runs `sql` with the simple protocol; the last statement's result is returned.
pub async fn run_simple(client: &Client, sql: &str) -> Result<Output, DbError> {
    let messages = client.simple_query(sql).await?;
    let mut rows = Vec::new();
    let mut ncols = None;
    let mut out = Output::Count(0);
    for m in messages {
        match m {
            SimpleQueryMessage::RowDescription(cols) => {
                ncols = Some(cols.len());
                rows.clear();
            }
            SimpleQueryMessage::Row(r) => rows.push((0..r.len()).map(|i| cell(r.get(i))).collect()),
            SimpleQueryMessage::CommandComplete(n) => {
                out = match ncols.take() {
                    Some(c) => Output::Rows(std::mem::take(&mut rows), c),
                    None => Output::Count(n),
                };
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Runs one statement with the extended protocol (Parse, Describe, Bind with binary
/// results, Execute).
pub async fn run_extended(client: &Client, sql: &str) -> Result<Output, DbError> {
    let stmt = match client.prepare(sql).await {
        Ok(s) => s,
        // Several statements cannot be prepared (as in PostgreSQL): run them as a batch.
        Err(e)
            if e.as_db_error()
                .is_some_and(|d| d.message().contains("multiple commands")) =>
        {
            return run_simple(client, sql).await;
        }
        Err(e) => return Err(e.into()),
    };
    if stmt.columns().is_empty() {
        return Ok(Output::Count(client.execute(&stmt, &[]).await?));
    }
    let ncols = stmt.columns().len();
    let rows = client.query(&stmt, &[]).await?;
    let rows = rows
        .iter()
        .map(|r| {
            (0..ncols)
                .map(|i| match r.try_get::<_, Option<Raw>>(i) {
                    Ok(Some(Raw(s))) => cell(Some(&s)),
                    Ok(None) => "NULL".into(),
                    Err(e) => format!("<undecodable: {e}>"),
                })
                .collect()
        })
        .collect();
    Ok(Output::Rows(rows, ncols))
}

/// A three-node SQL cluster in this process on in-memory stores, with fast Raft timing;
/// every table id in `tables` starts as a range of its own (the meta range holds the rest
/// below them).
pub async fn start_cluster(
    tables: std::ops::Range<u64>,
    txn: txn::TxnConfig,
) -> server::cluster::SqlCluster<storage::MemoryEngine> {
    use std::sync::Arc;

    use base::SystemClock;
    use kv::cluster::ClusterConfig;
    use kv::tso::{LocalTso, TimestampOracle};
    use server::cluster::{SqlCluster, SqlClusterConfig};
    use storage::{GroupCommit, MemoryEngine};

    let engine = || Arc::new(GroupCommit::new(Arc::new(MemoryEngine::new())));
    let tso: Arc<dyn TimestampOracle> =
        Arc::new(LocalTso::open(engine(), Arc::new(SystemClock), 1_000).unwrap());
    let config = SqlClusterConfig {
        kv: ClusterConfig {
            split_keys: server::cluster::table_splits(tables),
            heartbeat_ms: 50,
            election_timeout_ms: (300, 600),
            ..ClusterConfig::default()
        },
        txn,
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

/// The seeds a seeded test runs: `TESSERA_SEED=n` replays one, `TESSERA_SEEDS=n` runs 1..=n,
/// else 1..=`default`.
pub fn seeds(default: u64) -> Vec<u64> {
    if let Ok(s) = std::env::var("TESSERA_SEED") {
        return vec![s.parse().expect("TESSERA_SEED is a number")];
    }
    let n = std::env::var("TESSERA_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default);
    (1..=n).collect()
}

/// Returns table `name`'s id.
pub async fn table_id(client: &Client, name: &str) -> u64 {
    let id: i64 = client
        .query_one(
            "SELECT oid::INT8 FROM pg_class WHERE relname = $1",
            &[&name],
        )
        .await
        .unwrap()
        .get(0);
    id as u64
}

/// Returns the ranges holding table `name`'s rows, in key order.
pub async fn ranges_of_table(
    c: &server::cluster::SqlCluster<storage::MemoryEngine>,
    client: &Client,
    name: &str,
) -> Vec<kv::RangeDesc> {
    use base::{TableId, TenantId};
    let id = table_id(client, name).await;
    let start = codec::layout::table_prefix(TenantId::SYSTEM, TableId(id));
    let end = codec::layout::table_prefix(TenantId::SYSTEM, TableId(id + 1));
    c.kv()
        .ranges()
        .into_iter()
        .map(|r| r.desc)
        .filter(|d| d.span.start < end && (d.span.end.is_empty() || start < d.span.end))
        .collect()
}
