//! The catalog: databases, schemas, tables, indexes, views and sequences, stored as
//! versioned descriptors in the key-value layer.
//!
//! ```text
//!  /t/<tenant>/1/1/<id>   descriptor (JSON, {"format":1,...})
//!  /t/<tenant>/2/1        catalog meta: version and the next free id
//!  /t/<tenant>/3/1/<id>   a sequence's current value
//! ```
//!
//! Every DDL statement rewrites the descriptors it changes and bumps the catalog version,
//! inside the statement's transaction: DDL is transactional, and two concurrent DDL
//! statements conflict like any two writes of one key. A transaction reads the version
//! once; a node keeps the last catalog it loaded and reloads only when the version moved.
//! Descriptors are loaded as a whole catalog (catalogs are small).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use base::{IndexId, TableId, TenantId, Timestamp};
use codec::key::Direction;
use codec::layout;
use serde::{Deserialize, Serialize};
use txn::{Span, Transaction, TxnClient};

use crate::error::{Error, ErrorKind, Result};
use crate::types::SqlType;

/// Id of the descriptors table in a tenant's key space.
const DESCRIPTORS_TABLE: TableId = TableId(1);
/// Id of the catalog meta key.
const META_TABLE: TableId = TableId(2);
/// Id of the sequence values table.
const SEQUENCES_TABLE: TableId = TableId(3);
/// First id handed to user objects.
const FIRST_USER_ID: u64 = 100;
/// Format of descriptor records.
const DESCRIPTOR_FORMAT: u32 = 1;

/// The primary index's id in every table.
pub const PRIMARY_INDEX: u32 = 1;
/// Name of the hidden row id column of tables without a primary key.
pub const ROWID: &str = "rowid";

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct DatabaseDesc {
    pub id: u64,
    pub name: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SchemaDesc {
    pub id: u64,
    pub db_id: u64,
    pub name: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ColumnDesc {
    pub id: u32,
    pub name: String,
    pub ty: SqlType,
    pub nullable: bool,
    /// The DEFAULT expression, as SQL text.
    pub default: Option<String>,
    /// Hidden columns (the row id) are not part of `SELECT *`.
    pub hidden: bool,
    /// Dropped columns keep their id and type so old rows still decode.
    pub dropped: bool,
    /// GENERATED ... AS IDENTITY: `Some(true)` for ALWAYS, `Some(false)` for BY DEFAULT.
    pub identity: Option<bool>,
    /// Value (as text) of rows written before the column was added.
    pub fill: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct IndexColumn {
    pub column: u32,
    pub desc: bool,
    pub nulls_first: bool,
}

impl IndexColumn {
    /// Returns the key direction.
    pub fn direction(&self) -> Direction {
        if self.desc {
            Direction::Desc
        } else {
            Direction::Asc
        }
    }

    /// Returns where NULLs go in the key.
    pub fn nulls(&self) -> codec::key::Nulls {
        if self.nulls_first {
            codec::key::Nulls::First
        } else {
            codec::key::Nulls::Last
        }
    }
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum IndexState {
    /// Maintained by writes, not used by reads (while being backfilled).
    WriteOnly,
    /// Maintained and used.
    Public,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct IndexDesc {
    pub id: u32,
    pub name: String,
    pub columns: Vec<IndexColumn>,
    pub unique: bool,
    pub state: IndexState,
    /// True for indexes created by a UNIQUE constraint (shown as constraints).
    pub constraint: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CheckDesc {
    pub name: String,
    pub expr: String,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum FkAction {
    NoAction,
    Restrict,
    Cascade,
    SetNull,
    SetDefault,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ForeignKeyDesc {
    pub name: String,
    pub columns: Vec<u32>,
    pub ref_table: u64,
    pub ref_columns: Vec<u32>,
    pub on_delete: FkAction,
    pub on_update: FkAction,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TableDesc {
    pub id: u64,
    pub db_id: u64,
    pub schema_id: u64,
    pub name: String,
    pub columns: Vec<ColumnDesc>,
    pub next_column_id: u32,
    /// The primary index; its columns are the primary key (the hidden row id if the table
    /// has no declared primary key).
    pub primary: IndexDesc,
    pub indexes: Vec<IndexDesc>,
    pub next_index_id: u32,
    pub checks: Vec<CheckDesc>,
    pub foreign_keys: Vec<ForeignKeyDesc>,
}

impl TableDesc {
    /// Returns the live (not dropped) columns, in order, hidden ones included.
    pub fn live_columns(&self) -> impl Iterator<Item = &ColumnDesc> {
        self.columns.iter().filter(|c| !c.dropped)
    }

    /// Returns the columns `SELECT *` shows.
    pub fn visible_columns(&self) -> impl Iterator<Item = &ColumnDesc> {
        self.columns.iter().filter(|c| !c.dropped && !c.hidden)
    }

    /// Returns a live column by name.
    pub fn column(&self, name: &str) -> Option<&ColumnDesc> {
        self.live_columns().find(|c| c.name == name)
    }

    /// Returns a column (possibly dropped) by id.
    pub fn column_by_id(&self, id: u32) -> Option<&ColumnDesc> {
        self.columns.iter().find(|c| c.id == id)
    }

    /// Returns the position of a live column among the live columns.
    pub fn live_position(&self, id: u32) -> Option<usize> {
        self.live_columns().position(|c| c.id == id)
    }

    /// Returns true if the primary key is the hidden row id.
    pub fn has_rowid(&self) -> bool {
        self.primary.columns.len() == 1
            && self
                .column_by_id(self.primary.columns[0].column)
                .is_some_and(|c| c.hidden)
    }

    /// Returns the key prefix of one of the table's indexes.
    pub fn index_prefix(&self, tenant: TenantId, index: u32) -> Vec<u8> {
        layout::index_prefix(tenant, TableId(self.id), IndexId(u64::from(index)))
    }

    /// Returns the span of every key of the table.
    pub fn span(&self, tenant: TenantId) -> Span {
        let start = layout::table_prefix(tenant, TableId(self.id));
        let end = codec::key::prefix_end(&start).unwrap_or_default();
        Span { start, end }
    }

    /// Returns every index, the primary first.
    pub fn all_indexes(&self) -> impl Iterator<Item = &IndexDesc> {
        std::iter::once(&self.primary).chain(self.indexes.iter())
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ViewDesc {
    pub id: u64,
    pub db_id: u64,
    pub schema_id: u64,
    pub name: String,
    pub sql: String,
    pub columns: Vec<(String, SqlType)>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SequenceDesc {
    pub id: u64,
    pub db_id: u64,
    pub schema_id: u64,
    pub name: String,
    pub start: i64,
    pub increment: i64,
    pub min: i64,
    pub max: i64,
    pub cycle: bool,
    /// The column this sequence feeds (SERIAL, IDENTITY), dropped with it.
    pub owned_by: Option<(u64, u32)>,
}

/// One catalog object.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Descriptor {
    Database(DatabaseDesc),
    Schema(SchemaDesc),
    Table(TableDesc),
    View(ViewDesc),
    Sequence(SequenceDesc),
}

impl Descriptor {
    /// Returns the object's id.
    pub fn id(&self) -> u64 {
        match self {
            Descriptor::Database(d) => d.id,
            Descriptor::Schema(d) => d.id,
            Descriptor::Table(d) => d.id,
            Descriptor::View(d) => d.id,
            Descriptor::Sequence(d) => d.id,
        }
    }

    /// Returns the object's name.
    pub fn name(&self) -> &str {
        match self {
            Descriptor::Database(d) => &d.name,
            Descriptor::Schema(d) => &d.name,
            Descriptor::Table(d) => &d.name,
            Descriptor::View(d) => &d.name,
            Descriptor::Sequence(d) => &d.name,
        }
    }

    /// Returns the id of the object the name lives in (0 for databases; the database for
    /// schemas; the schema for relations).
    fn parent(&self) -> u64 {
        match self {
            Descriptor::Database(_) => 0,
            Descriptor::Schema(d) => d.db_id,
            Descriptor::Table(d) => d.schema_id,
            Descriptor::View(d) => d.schema_id,
            Descriptor::Sequence(d) => d.schema_id,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Envelope {
    format: u32,
    #[serde(flatten)]
    desc: Descriptor,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
struct Meta {
    format: u32,
    version: u64,
    next_id: u64,
}

/// A loaded catalog: every descriptor of a tenant, indexed by id and by name.
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    pub version: u64,
    next_id: u64,
    descs: BTreeMap<u64, Descriptor>,
    names: HashMap<(u64, String), u64>,
}

fn desc_key(tenant: TenantId, id: u64) -> Vec<u8> {
    let mut k = layout::index_prefix(tenant, DESCRIPTORS_TABLE, IndexId(1));
    codec::key::put_u64(&mut k, id, Direction::Asc);
    k
}

fn meta_key(tenant: TenantId) -> Vec<u8> {
    layout::index_prefix(tenant, META_TABLE, IndexId(1))
}

/// The key a DDL of a cluster writes first, to fence off other nodes' catalog windows
/// (see [`CatalogCache`]); next to the meta key, so both are read in one request.
fn fence_key(tenant: TenantId) -> Vec<u8> {
    let mut k = meta_key(tenant);
    codec::key::put_u64(&mut k, 1, Direction::Asc);
    k
}

/// Returns the key of a sequence's current value.
pub fn sequence_key(tenant: TenantId, id: u64) -> Vec<u8> {
    let mut k = layout::index_prefix(tenant, SEQUENCES_TABLE, IndexId(1));
    codec::key::put_u64(&mut k, id, Direction::Asc);
    k
}

fn decode_meta(b: &[u8]) -> Result<Meta> {
    serde_json::from_slice(b).map_err(corrupt)
}

fn corrupt(what: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::Internal, format!("corrupt catalog: {what}"))
}

impl Catalog {
    /// Reads the catalog version in `txn` (0 if the catalog was never created).
    pub async fn read_version(txn: &mut Transaction, tenant: TenantId) -> Result<u64> {
        // The fence key too: a DDL fencing off the catalog holds a lock on it, which this
        // read waits for.
        let mut got = txn
            .batch_get(&[meta_key(tenant), fence_key(tenant)])
            .await?;
        got.swap_remove(0)
            .map_or(Ok(0), |b| decode_meta(&b).map(|m| m.version))
    }

    async fn read_meta(txn: &mut Transaction, tenant: TenantId) -> Result<Option<Meta>> {
        txn.get(&meta_key(tenant))
            .await?
            .map(|b| decode_meta(&b))
            .transpose()
    }

    /// Loads every descriptor in `txn`, creating the initial catalog (databases `postgres`
    /// and `tessera`, each with schema `public`) if there is none.
    pub async fn load(txn: &mut Transaction, tenant: TenantId) -> Result<Catalog> {
        let Some(meta) = Self::read_meta(txn, tenant).await? else {
            return Self::bootstrap(txn, tenant).await;
        };
        let prefix = layout::index_prefix(tenant, DESCRIPTORS_TABLE, IndexId(1));
        let end = codec::key::prefix_end(&prefix).unwrap_or_default();
        let mut span = Span { start: prefix, end };
        let mut cat = Catalog {
            version: meta.version,
            next_id: meta.next_id,
            ..Catalog::default()
        };
        loop {
            let out = txn.scan(&span, 1024, false).await?;
            for (_, v) in out.pairs {
                let env: Envelope = serde_json::from_slice(&v).map_err(corrupt)?;
                if env.format > DESCRIPTOR_FORMAT {
                    return Err(corrupt(format!(
                        "descriptor format {} is newer than this binary",
                        env.format
                    )));
                }
                cat.insert(env.desc);
            }
            match out.resume {
                Some(r) => span.start = r,
                None => break,
            }
        }
        Ok(cat)
    }

    async fn bootstrap(txn: &mut Transaction, tenant: TenantId) -> Result<Catalog> {
        let mut cat = Catalog {
            version: 0,
            next_id: FIRST_USER_ID,
            ..Catalog::default()
        };
        for db in ["postgres", "tessera"] {
            let db_id = cat.allocate_id();
            cat.put(
                txn,
                tenant,
                Descriptor::Database(DatabaseDesc {
                    id: db_id,
                    name: db.into(),
                }),
            )?;
            let schema_id = cat.allocate_id();
            let public = SchemaDesc {
                id: schema_id,
                db_id,
                name: "public".into(),
            };
            cat.put(txn, tenant, Descriptor::Schema(public))?;
        }
        cat.commit_changes(txn, tenant)?;
        Ok(cat)
    }

    fn insert(&mut self, d: Descriptor) {
        self.names
            .insert((d.parent(), d.name().to_string()), d.id());
        self.descs.insert(d.id(), d);
    }

    /// Hands out a new object id (persisted by [`Catalog::commit_changes`]).
    pub fn allocate_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Writes a descriptor (new or changed) in `txn` and updates this copy.
    pub fn put(&mut self, txn: &mut Transaction, tenant: TenantId, d: Descriptor) -> Result<()> {
        if let Some(old) = self.descs.get(&d.id()) {
            let key = (old.parent(), old.name().to_string());
            self.names.remove(&key);
        }
        let env = Envelope {
            format: DESCRIPTOR_FORMAT,
            desc: d.clone(),
        };
        let bytes = serde_json::to_vec(&env).map_err(corrupt)?;
        txn.put(desc_key(tenant, d.id()), bytes)?;
        self.insert(d);
        Ok(())
    }

    /// Removes a descriptor in `txn` and from this copy.
    pub fn remove(&mut self, txn: &mut Transaction, tenant: TenantId, id: u64) -> Result<()> {
        if let Some(old) = self.descs.remove(&id) {
            self.names.remove(&(old.parent(), old.name().to_string()));
        }
        txn.delete(desc_key(tenant, id))?;
        Ok(())
    }

    /// Bumps the version and persists the id allocator; call once per DDL statement.
    pub fn commit_changes(&mut self, txn: &mut Transaction, tenant: TenantId) -> Result<()> {
        self.version += 1;
        let meta = Meta {
            format: DESCRIPTOR_FORMAT,
            version: self.version,
            next_id: self.next_id,
        };
        txn.put(
            meta_key(tenant),
            serde_json::to_vec(&meta).map_err(corrupt)?,
        )?;
        Ok(())
    }

    /// Returns a descriptor by id.
    pub fn get(&self, id: u64) -> Option<&Descriptor> {
        self.descs.get(&id)
    }

    /// Returns the object named `name` inside `parent`.
    pub fn lookup(&self, parent: u64, name: &str) -> Option<&Descriptor> {
        self.names
            .get(&(parent, name.to_string()))
            .and_then(|id| self.descs.get(id))
    }

    /// Returns every descriptor.
    pub fn all(&self) -> impl Iterator<Item = &Descriptor> {
        self.descs.values()
    }

    /// Returns a database by name.
    pub fn database(&self, name: &str) -> Option<&DatabaseDesc> {
        match self.lookup(0, name) {
            Some(Descriptor::Database(d)) => Some(d),
            _ => None,
        }
    }

    /// Returns a schema of a database by name.
    pub fn schema(&self, db_id: u64, name: &str) -> Option<&SchemaDesc> {
        match self.lookup(db_id, name) {
            Some(Descriptor::Schema(s)) => Some(s),
            _ => None,
        }
    }

    /// Returns a table by id.
    pub fn table(&self, id: u64) -> Option<&TableDesc> {
        match self.descs.get(&id) {
            Some(Descriptor::Table(t)) => Some(t),
            _ => None,
        }
    }

    /// Returns the tables whose foreign keys reference `table`.
    pub fn referencing(&self, table: u64) -> Vec<&TableDesc> {
        self.descs
            .values()
            .filter_map(|d| match d {
                Descriptor::Table(t) if t.foreign_keys.iter().any(|f| f.ref_table == table) => {
                    Some(t)
                }
                _ => None,
            })
            .collect()
    }
}

/// How long a shared catalog cache may use a catalog proven current (see [`CatalogCache`]);
/// also how long a DDL of a cluster waits, once its fence lock is in place, before it reads
/// on.
pub const CATALOG_WINDOW: std::time::Duration = std::time::Duration::from_millis(1_000);

/// A statement uses a window only if at least this much of it is left for its commit.
const WINDOW_MARGIN_MS: u64 = 300;

/// A node's cache of the last loaded catalog.
///
/// Every statement needs the catalog as of its transaction's read timestamp. Reading the
/// catalog version key for that is a store read per statement; the cache avoids it while it
/// can prove the version has not changed:
///
/// - every DDL transaction on this node holds a [`DdlGuard`] from before it commits until
///   after its commit (or rollback) returns; taking one bumps an epoch;
/// - after a miss, with no DDL in flight, the cache reads the version in a fresh
///   transaction at `t0` and, if nothing started meanwhile, marks the cached catalog valid
///   for every read timestamp at or above `t0` in that epoch. Any DDL that committed before
///   has a commit timestamp below `t0`; any that starts later bumps the epoch before it
///   takes its commit timestamp, which is then above the read timestamp of every statement
///   that already used the cache (so a DDL never commits at the timestamp its transaction
///   reserved at its start, [`Transaction::forgo_reserved`]: that one may be below).
///
/// A statement served from the cache still records the version key in its read set, so a
/// writing transaction that overlaps a DDL fails validation at commit exactly as if it had
/// read the key. This assumes the node is the only writer of its tenant's catalog, which
/// holds on a single node.
///
/// A cache made with [`CatalogCache::shared`] (a node of a cluster, where other nodes run
/// DDL too) proves its catalog for a window of [`CATALOG_WINDOW`] instead:
///
/// - the node reads the version key and the fence key next to it at a fresh timestamp
///   `t0` without waiting on locks ([`TxnClient::get_unlocked`]); if no DDL holds a lock
///   there and the version is the cached one, the cached catalog is the catalog at every
///   read timestamp in `[t0, t0 + CATALOG_WINDOW)`;
/// - that holds because every DDL of a cluster first writes and prewrites the fence key,
///   then waits until the oracle is `CATALOG_WINDOW` past a timestamp `p` taken once that
///   lock was in place, and only then reads on and changes the catalog
///   ([`Transaction::put_and_wait_out`]): a proof that did not see the lock has `t0 < p`,
///   and a later one sees it and fails; statements then read both keys in their
///   transaction, which waits for the DDL;
/// - a statement in the window notes the version key as read until `t0 + CATALOG_WINDOW`
///   ([`Transaction::note_read_until`]): a one-phase commit must take its timestamp before
///   that deadline (else it commits in two phases and validates the read), so a writer on
///   the old catalog never commits after a DDL;
/// - the proof is renewed in the background once a third of the window has passed, so a
///   busy node reads the version key about three times a second, not once per statement.
///
/// Outside a window a statement reads the version key in its transaction and reuses the
/// cached catalog only when the version matches.
#[derive(Clone)]
pub struct CatalogCache {
    client: TxnClient,
    state: Arc<std::sync::Mutex<CacheState>>,
    /// True if this node is the only writer of the catalog.
    sole_writer: bool,
}

#[derive(Default)]
struct CacheState {
    current: Option<Arc<Catalog>>,
    /// Bumped when a DDL transaction takes its guard.
    epoch: u64,
    ddl_in_flight: usize,
    /// `(t0, epoch)`: `current` is the catalog at every timestamp at or above `t0` for as
    /// long as the epoch is unchanged and no DDL is in flight.
    valid: Option<(Timestamp, u64)>,
    refreshing: bool,
}

/// Held by a transaction that changes the catalog, from before its commit until after it;
/// see [`CatalogCache`].
pub struct DdlGuard {
    state: Arc<std::sync::Mutex<CacheState>>,
}

impl Drop for DdlGuard {
    fn drop(&mut self) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.ddl_in_flight -= 1;
        st.valid = None;
    }
}

impl CatalogCache {
    /// Returns an empty cache; `client` runs its validity checks.
    pub fn new(client: TxnClient) -> Self {
        CatalogCache {
            client,
            state: Arc::default(),
            sole_writer: true,
        }
    }

    /// Returns an empty cache for a catalog that other nodes change too.
    pub fn shared(client: TxnClient) -> Self {
        CatalogCache {
            sole_writer: false,
            ..CatalogCache::new(client)
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, CacheState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Marks a catalog change in flight until the guard is dropped.
    pub fn begin_ddl(&self) -> DdlGuard {
        let mut st = self.state();
        st.epoch += 1;
        st.ddl_in_flight += 1;
        st.valid = None;
        DdlGuard {
            state: self.state.clone(),
        }
    }

    /// Fences off other nodes' windows before a DDL transaction changes the catalog (see
    /// the type's documentation); where this node is the sole writer, only makes sure the
    /// DDL commits at a timestamp taken after its guard, not one reserved at its start.
    pub async fn fence_ddl(&self, txn: &mut Transaction, tenant: TenantId) -> Result<()> {
        txn.forgo_reserved();
        if self.sole_writer {
            return Ok(());
        }
        let stamp = txn.start_ts().get().to_be_bytes().to_vec();
        txn.put_and_wait_out(fence_key(tenant), stamp, CATALOG_WINDOW)
            .await
            .map_err(Error::from)
    }

    /// Returns the catalog as of `txn`, reusing the cached one if it is known to be current
    /// or its version matches.
    pub async fn get(&self, txn: &mut Transaction, tenant: TenantId) -> Result<Arc<Catalog>> {
        if let Some(c) = self.known_current(txn.read_ts()) {
            txn.note_read(&meta_key(tenant));
            return Ok(c);
        }
        if let Some((c, t0)) = self.windowed(txn.read_ts()) {
            let window = CATALOG_WINDOW.as_millis() as u64;
            txn.note_read_until(&meta_key(tenant), t0.plus_ms(window));
            txn.note_read_until(&fence_key(tenant), t0.plus_ms(window));
            if txn.read_ts() >= t0.plus_ms(window / 3) {
                self.renew(tenant);
            }
            return Ok(c);
        }
        let version = Catalog::read_version(txn, tenant).await?;
        let cached = self.state().current.clone();
        if version > 0
            && let Some(c) = cached
            && c.version == version
        {
            if self.sole_writer {
                self.refresh(tenant).await;
            } else {
                self.renew(tenant);
            }
            return Ok(c);
        }
        let cat = Arc::new(Catalog::load(txn, tenant).await?);
        if version > 0 {
            // Only a committed catalog is cached (not one this transaction bootstrapped).
            let mut st = self.state();
            if st.current.as_ref().is_none_or(|c| c.version < cat.version) {
                st.current = Some(cat.clone());
                st.valid = None;
            }
        }
        Ok(cat)
    }

    /// Returns the cached catalog and the timestamp from which it is proven current, if
    /// it is proven and no DDL started since.
    fn proven(&self) -> Option<(Arc<Catalog>, Timestamp)> {
        let st = self.state();
        match st.valid {
            Some((t0, epoch)) if st.ddl_in_flight == 0 && epoch == st.epoch => {
                Some((st.current.clone()?, t0))
            }
            _ => None,
        }
    }

    fn known_current(&self, read_ts: Timestamp) -> Option<Arc<Catalog>> {
        if !self.sole_writer {
            return None;
        }
        self.proven()
            .filter(|(_, t0)| read_ts >= *t0)
            .map(|(c, _)| c)
    }

    /// Returns the cached catalog and the start of its window if `read_ts` is in a window
    /// with enough of it left for a commit (shared caches only).
    fn windowed(&self, read_ts: Timestamp) -> Option<(Arc<Catalog>, Timestamp)> {
        if self.sole_writer {
            return None;
        }
        self.proven().filter(|(_, t0)| {
            read_ts >= *t0
                && read_ts.plus_ms(WINDOW_MARGIN_MS) < t0.plus_ms(CATALOG_WINDOW.as_millis() as u64)
        })
    }

    /// Marks a proof of the cached catalog in progress and returns the epoch and the
    /// version it is for, unless there is nothing to prove, a DDL is in flight, a proof is
    /// already running, or (`unproven_only`) the cache is proven already.
    fn begin_proof(&self, unproven_only: bool) -> Option<(u64, u64)> {
        let mut st = self.state();
        let version = st.current.as_ref()?.version;
        if st.ddl_in_flight > 0 || st.refreshing || (unproven_only && st.valid.is_some()) {
            return None;
        }
        st.refreshing = true;
        Some((st.epoch, version))
    }

    /// Ends the proof [`CatalogCache::begin_proof`] began: `proved` is the timestamp from
    /// which version `version` was found current, if it was. The cache takes it if nothing
    /// changed meanwhile and it is later than the proof it has.
    fn end_proof(&self, epoch: u64, version: u64, proved: Option<Timestamp>) {
        let mut st = self.state();
        st.refreshing = false;
        if let Some(t0) = proved
            && st.epoch == epoch
            && st.ddl_in_flight == 0
            && st.current.as_ref().is_some_and(|c| c.version == version)
            && st.valid.is_none_or(|(t, _)| t < t0)
        {
            st.valid = Some((t0, epoch));
        }
    }

    /// Starts proving the cached catalog for a new window in the background (shared
    /// caches; see the type's documentation). Failures only leave the cache unproven.
    fn renew(&self, tenant: TenantId) {
        let Some((epoch, version)) = self.begin_proof(false) else {
            return;
        };
        let cache = self.clone();
        tokio::spawn(async move {
            let keys = [meta_key(tenant), fence_key(tenant)];
            let proved = match cache.client.get_unlocked(&keys).await {
                Ok(Some((t0, values))) => values
                    .first()
                    .cloned()
                    .flatten()
                    .and_then(|b| decode_meta(&b).ok())
                    .filter(|m| m.version == version)
                    .map(|_| t0),
                _ => None,
            };
            cache.end_proof(epoch, version, proved);
        });
    }

    /// Tries to prove the cached catalog current from a fresh timestamp on (see the type's
    /// documentation). Failures only leave the cache unproven.
    async fn refresh(&self, tenant: TenantId) {
        if !self.sole_writer {
            return;
        }
        let Some((epoch, version)) = self.begin_proof(true) else {
            return;
        };
        let checked = async {
            let mut t = self.client.begin().await.ok()?;
            let v = Catalog::read_version(&mut t, tenant).await.ok();
            let _ = t.rollback().await;
            (v? == version).then(|| t.read_ts())
        }
        .await;
        self.end_proof(epoch, version, checked);
    }
}
