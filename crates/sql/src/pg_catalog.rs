//! The system catalogs clients read: `pg_catalog` and `information_schema` tables,
//! computed from the catalog on demand.
//!
//! Object identifiers: databases, schemas, tables, views and sequences use their
//! descriptor ids; an index's oid is `1_000_000 + table * 100 + index`; built-in types use
//! PostgreSQL's oids; `pg_catalog` is 11 and `information_schema` 13.

use crate::catalog::{Descriptor, IndexDesc, TableDesc};
use crate::error::Result;
use crate::functions::{Func, SessionInfo, quote_ident};
use crate::plan::Column;
use crate::types::SqlType;
use crate::value::{Row, Value};

const PG_CATALOG_OID: i64 = 11;
const INFORMATION_SCHEMA_OID: i64 = 13;
const OWNER_OID: i64 = 10;
const BTREE_AM_OID: i64 = 403;
const HEAP_AM_OID: i64 = 2;

/// Returns the oid of a table's index.
pub fn index_oid(table: u64, index: u32) -> i64 {
    1_000_000 + table as i64 * 100 + i64::from(index)
}

fn t(s: &str) -> Value {
    Value::Text(s.to_string())
}

fn i(n: i64) -> Value {
    Value::Int(n)
}

fn b(v: bool) -> Value {
    Value::Bool(v)
}

fn null() -> Value {
    Value::Null
}

use SqlType as T;

/// Column definitions of each virtual table.
fn definition(name: &str) -> Option<Vec<(&'static str, SqlType)>> {
    let oid = || T::Oid;
    Some(match name {
        "pg_namespace" => vec![
            ("oid", oid()),
            ("nspname", T::Name),
            ("nspowner", oid()),
            ("nspacl", T::Text),
        ],
        "pg_class" => vec![
            ("oid", oid()),
            ("relname", T::Name),
            ("relnamespace", oid()),
            ("reltype", oid()),
            ("reloftype", oid()),
            ("relowner", oid()),
            ("relam", oid()),
            ("relfilenode", oid()),
            ("reltablespace", oid()),
            ("relpages", T::Int4),
            ("reltuples", T::Float4),
            ("relallvisible", T::Int4),
            ("reltoastrelid", oid()),
            ("relhasindex", T::Bool),
            ("relisshared", T::Bool),
            ("relpersistence", T::Text),
            ("relkind", T::Text),
            ("relnatts", T::Int2),
            ("relchecks", T::Int2),
            ("relhasrules", T::Bool),
            ("relhastriggers", T::Bool),
            ("relhassubclass", T::Bool),
            ("relrowsecurity", T::Bool),
            ("relforcerowsecurity", T::Bool),
            ("relispopulated", T::Bool),
            ("relreplident", T::Text),
            ("relispartition", T::Bool),
            ("relrewrite", oid()),
            ("relfrozenxid", T::Int8),
            ("relminmxid", T::Int8),
            ("relacl", T::Text),
            ("reloptions", T::Array(Box::new(T::Text))),
            ("relpartbound", T::Text),
        ],
        "pg_attribute" => vec![
            ("attrelid", oid()),
            ("attname", T::Name),
            ("atttypid", oid()),
            ("attstattarget", T::Int4),
            ("attlen", T::Int2),
            ("attnum", T::Int2),
            ("attndims", T::Int4),
            ("attcacheoff", T::Int4),
            ("atttypmod", T::Int4),
            ("attbyval", T::Bool),
            ("attalign", T::Text),
            ("attstorage", T::Text),
            ("attcompression", T::Text),
            ("attnotnull", T::Bool),
            ("atthasdef", T::Bool),
            ("atthasmissing", T::Bool),
            ("attidentity", T::Text),
            ("attgenerated", T::Text),
            ("attisdropped", T::Bool),
            ("attislocal", T::Bool),
            ("attinhcount", T::Int4),
            ("attcollation", oid()),
            ("attacl", T::Text),
            ("attoptions", T::Text),
            ("attfdwoptions", T::Text),
            ("attmissingval", T::Text),
        ],
        "pg_type" => vec![
            ("oid", oid()),
            ("typname", T::Name),
            ("typnamespace", oid()),
            ("typowner", oid()),
            ("typlen", T::Int2),
            ("typbyval", T::Bool),
            ("typtype", T::Text),
            ("typcategory", T::Text),
            ("typispreferred", T::Bool),
            ("typisdefined", T::Bool),
            ("typdelim", T::Text),
            ("typrelid", oid()),
            ("typsubscript", T::Text),
            ("typelem", oid()),
            ("typarray", oid()),
            ("typinput", T::Text),
            ("typoutput", T::Text),
            ("typreceive", T::Text),
            ("typsend", T::Text),
            ("typmodin", T::Text),
            ("typmodout", T::Text),
            ("typanalyze", T::Text),
            ("typalign", T::Text),
            ("typstorage", T::Text),
            ("typnotnull", T::Bool),
            ("typbasetype", oid()),
            ("typtypmod", T::Int4),
            ("typndims", T::Int4),
            ("typcollation", oid()),
            ("typdefaultbin", T::Text),
            ("typdefault", T::Text),
            ("typacl", T::Text),
        ],
        "pg_index" => vec![
            ("indexrelid", oid()),
            ("indrelid", oid()),
            ("indnatts", T::Int2),
            ("indnkeyatts", T::Int2),
            ("indisunique", T::Bool),
            ("indnullsnotdistinct", T::Bool),
            ("indisprimary", T::Bool),
            ("indisexclusion", T::Bool),
            ("indimmediate", T::Bool),
            ("indisclustered", T::Bool),
            ("indisvalid", T::Bool),
            ("indcheckxmin", T::Bool),
            ("indisready", T::Bool),
            ("indislive", T::Bool),
            ("indisreplident", T::Bool),
            ("indkey", T::Int2Vector),
            ("indcollation", T::OidVector),
            ("indclass", T::OidVector),
            ("indoption", T::Int2Vector),
            ("indexprs", T::Text),
            ("indpred", T::Text),
        ],
        "pg_constraint" => vec![
            ("oid", oid()),
            ("conname", T::Name),
            ("connamespace", oid()),
            ("contype", T::Text),
            ("condeferrable", T::Bool),
            ("condeferred", T::Bool),
            ("convalidated", T::Bool),
            ("conrelid", oid()),
            ("contypid", oid()),
            ("conindid", oid()),
            ("conparentid", oid()),
            ("confrelid", oid()),
            ("confupdtype", T::Text),
            ("confdeltype", T::Text),
            ("confmatchtype", T::Text),
            ("conislocal", T::Bool),
            ("coninhcount", T::Int4),
            ("connoinherit", T::Bool),
            ("conkey", T::Array(Box::new(T::Int2))),
            ("confkey", T::Array(Box::new(T::Int2))),
            ("conbin", T::Text),
        ],
        "pg_database" => vec![
            ("oid", oid()),
            ("datname", T::Name),
            ("datdba", oid()),
            ("encoding", T::Int4),
            ("datlocprovider", T::Text),
            ("datistemplate", T::Bool),
            ("datallowconn", T::Bool),
            ("datconnlimit", T::Int4),
            ("datfrozenxid", T::Int8),
            ("datminmxid", T::Int8),
            ("dattablespace", oid()),
            ("datcollate", T::Text),
            ("datctype", T::Text),
            ("daticulocale", T::Text),
            ("datcollversion", T::Text),
            ("datacl", T::Text),
        ],
        "pg_roles" | "pg_authid" => vec![
            ("oid", oid()),
            ("rolname", T::Name),
            ("rolsuper", T::Bool),
            ("rolinherit", T::Bool),
            ("rolcreaterole", T::Bool),
            ("rolcreatedb", T::Bool),
            ("rolcanlogin", T::Bool),
            ("rolreplication", T::Bool),
            ("rolconnlimit", T::Int4),
            ("rolpassword", T::Text),
            ("rolvaliduntil", T::TimestampTz),
            ("rolbypassrls", T::Bool),
            ("rolconfig", T::Array(Box::new(T::Text))),
        ],
        "pg_user" => vec![
            ("usename", T::Name),
            ("usesysid", oid()),
            ("usecreatedb", T::Bool),
            ("usesuper", T::Bool),
            ("userepl", T::Bool),
            ("usebypassrls", T::Bool),
            ("passwd", T::Text),
            ("valuntil", T::TimestampTz),
            ("useconfig", T::Array(Box::new(T::Text))),
        ],
        "pg_auth_members" => vec![
            ("oid", oid()),
            ("roleid", oid()),
            ("member", oid()),
            ("grantor", oid()),
            ("admin_option", T::Bool),
        ],
        "pg_am" => vec![
            ("oid", oid()),
            ("amname", T::Name),
            ("amhandler", T::Text),
            ("amtype", T::Text),
        ],
        "pg_description" => vec![
            ("objoid", oid()),
            ("classoid", oid()),
            ("objsubid", T::Int4),
            ("description", T::Text),
        ],
        "pg_shdescription" => vec![
            ("objoid", oid()),
            ("classoid", oid()),
            ("description", T::Text),
        ],
        "pg_attrdef" => vec![
            ("oid", oid()),
            ("adrelid", oid()),
            ("adnum", T::Int2),
            ("adbin", T::Text),
        ],
        "pg_sequence" => vec![
            ("seqrelid", oid()),
            ("seqtypid", oid()),
            ("seqstart", T::Int8),
            ("seqincrement", T::Int8),
            ("seqmax", T::Int8),
            ("seqmin", T::Int8),
            ("seqcache", T::Int8),
            ("seqcycle", T::Bool),
        ],
        "pg_tablespace" => vec![
            ("oid", oid()),
            ("spcname", T::Name),
            ("spcowner", oid()),
            ("spcacl", T::Text),
            ("spcoptions", T::Text),
        ],
        "pg_settings" => vec![
            ("name", T::Text),
            ("setting", T::Text),
            ("unit", T::Text),
            ("category", T::Text),
            ("short_desc", T::Text),
            ("context", T::Text),
            ("vartype", T::Text),
            ("source", T::Text),
        ],
        "pg_collation" => vec![
            ("oid", oid()),
            ("collname", T::Name),
            ("collnamespace", oid()),
            ("collprovider", T::Text),
            ("collisdeterministic", T::Bool),
            ("collencoding", T::Int4),
            ("collcollate", T::Text),
            ("collctype", T::Text),
        ],
        "pg_proc" => vec![
            ("oid", oid()),
            ("proname", T::Name),
            ("pronamespace", oid()),
            ("prokind", T::Text),
            ("prorettype", oid()),
            ("proargtypes", T::Text),
        ],
        "pg_opclass" => vec![
            ("oid", oid()),
            ("opcmethod", oid()),
            ("opcname", T::Name),
            ("opcnamespace", oid()),
            ("opcowner", oid()),
            ("opcfamily", oid()),
            ("opcintype", oid()),
            ("opcdefault", T::Bool),
            ("opckeytype", oid()),
        ],
        "pg_inherits" => vec![
            ("inhrelid", oid()),
            ("inhparent", oid()),
            ("inhseqno", T::Int4),
            ("inhdetachpending", T::Bool),
        ],
        "pg_trigger" => vec![
            ("oid", oid()),
            ("tgrelid", oid()),
            ("tgname", T::Name),
            ("tgenabled", T::Text),
            ("tgisinternal", T::Bool),
            ("tgconstraint", oid()),
            ("tgparentid", oid()),
        ],
        "pg_policy" => vec![
            ("oid", oid()),
            ("polname", T::Name),
            ("polrelid", oid()),
            ("polcmd", T::Text),
            ("polpermissive", T::Bool),
            ("polroles", T::Array(Box::new(oid()))),
            ("polqual", T::Text),
            ("polwithcheck", T::Text),
        ],
        "pg_rewrite" => vec![
            ("oid", oid()),
            ("rulename", T::Name),
            ("ev_class", oid()),
            ("ev_type", T::Text),
        ],
        "pg_extension" => vec![
            ("oid", oid()),
            ("extname", T::Name),
            ("extowner", oid()),
            ("extnamespace", oid()),
            ("extversion", T::Text),
        ],
        "pg_statistic_ext" => vec![
            ("oid", oid()),
            ("stxrelid", oid()),
            ("stxname", T::Name),
            ("stxnamespace", oid()),
            ("stxkind", T::Array(Box::new(T::Text))),
            ("stxstattarget", T::Int4),
        ],
        "pg_publication" => vec![
            ("oid", oid()),
            ("pubname", T::Name),
            ("puballtables", T::Bool),
        ],
        "pg_publication_rel" => vec![
            ("oid", oid()),
            ("prpubid", oid()),
            ("prrelid", oid()),
            ("prqual", T::Text),
            ("prattrs", T::Array(Box::new(T::Int2))),
        ],
        "pg_publication_namespace" => vec![("oid", oid()), ("pnpubid", oid()), ("pnnspid", oid())],
        "pg_foreign_table" => vec![("ftrelid", oid()), ("ftserver", oid())],
        "pg_partitioned_table" => vec![("partrelid", oid()), ("partstrat", T::Text)],
        "pg_depend" => vec![
            ("classid", oid()),
            ("objid", oid()),
            ("objsubid", T::Int4),
            ("refclassid", oid()),
            ("refobjid", oid()),
            ("refobjsubid", T::Int4),
            ("deptype", T::Text),
        ],
        "pg_enum" => vec![
            ("oid", oid()),
            ("enumtypid", oid()),
            ("enumsortorder", T::Float4),
            ("enumlabel", T::Name),
        ],
        "pg_range" => vec![
            ("rngtypid", oid()),
            ("rngsubtype", oid()),
            ("rngmultitypid", oid()),
        ],
        "pg_event_trigger" => vec![("oid", oid()), ("evtname", T::Name)],
        "pg_tables" => vec![
            ("schemaname", T::Name),
            ("tablename", T::Name),
            ("tableowner", T::Name),
            ("tablespace", T::Name),
            ("hasindexes", T::Bool),
            ("hasrules", T::Bool),
            ("hastriggers", T::Bool),
            ("rowsecurity", T::Bool),
        ],
        "pg_views" => vec![
            ("schemaname", T::Name),
            ("viewname", T::Name),
            ("viewowner", T::Name),
            ("definition", T::Text),
        ],
        "pg_indexes" => vec![
            ("schemaname", T::Name),
            ("tablename", T::Name),
            ("indexname", T::Name),
            ("tablespace", T::Name),
            ("indexdef", T::Text),
        ],
        "pg_sequences" => vec![
            ("schemaname", T::Name),
            ("sequencename", T::Name),
            ("sequenceowner", T::Name),
            ("data_type", T::Text),
            ("start_value", T::Int8),
            ("min_value", T::Int8),
            ("max_value", T::Int8),
            ("increment_by", T::Int8),
            ("cycle", T::Bool),
            ("cache_size", T::Int8),
            ("last_value", T::Int8),
        ],
        "pg_stat_activity" => vec![
            ("datid", oid()),
            ("datname", T::Name),
            ("pid", T::Int4),
            ("usename", T::Name),
            ("application_name", T::Text),
            ("state", T::Text),
            ("query", T::Text),
        ],
        "pg_locks" => vec![
            ("locktype", T::Text),
            ("database", oid()),
            ("relation", oid()),
            ("pid", T::Int4),
            ("mode", T::Text),
            ("granted", T::Bool),
        ],
        "information_schema.schemata" => vec![
            ("catalog_name", T::Name),
            ("schema_name", T::Name),
            ("schema_owner", T::Name),
        ],
        "information_schema.tables" => vec![
            ("table_catalog", T::Name),
            ("table_schema", T::Name),
            ("table_name", T::Name),
            ("table_type", T::Text),
            ("is_insertable_into", T::Text),
        ],
        "information_schema.columns" => vec![
            ("table_catalog", T::Name),
            ("table_schema", T::Name),
            ("table_name", T::Name),
            ("column_name", T::Name),
            ("ordinal_position", T::Int4),
            ("column_default", T::Text),
            ("is_nullable", T::Text),
            ("data_type", T::Text),
            ("character_maximum_length", T::Int4),
            ("numeric_precision", T::Int4),
            ("numeric_scale", T::Int4),
            ("udt_name", T::Name),
            ("is_identity", T::Text),
            ("identity_generation", T::Text),
        ],
        "information_schema.table_constraints" => vec![
            ("constraint_catalog", T::Name),
            ("constraint_schema", T::Name),
            ("constraint_name", T::Name),
            ("table_catalog", T::Name),
            ("table_schema", T::Name),
            ("table_name", T::Name),
            ("constraint_type", T::Text),
        ],
        "information_schema.key_column_usage" => vec![
            ("constraint_catalog", T::Name),
            ("constraint_schema", T::Name),
            ("constraint_name", T::Name),
            ("table_catalog", T::Name),
            ("table_schema", T::Name),
            ("table_name", T::Name),
            ("column_name", T::Name),
            ("ordinal_position", T::Int4),
        ],
        "information_schema.views" => vec![
            ("table_catalog", T::Name),
            ("table_schema", T::Name),
            ("table_name", T::Name),
            ("view_definition", T::Text),
        ],
        "information_schema.sequences" => vec![
            ("sequence_catalog", T::Name),
            ("sequence_schema", T::Name),
            ("sequence_name", T::Name),
            ("data_type", T::Text),
            ("start_value", T::Text),
            ("increment", T::Text),
        ],
        _ => return None,
    })
}

/// Returns true if `name` is a virtual catalog table.
pub fn is_virtual(name: &str) -> bool {
    definition(name).is_some()
}

/// Returns the columns of a virtual table.
pub fn columns(name: &str) -> Option<Vec<Column>> {
    definition(name).map(|d| d.into_iter().map(|(n, t)| Column::new(n, t)).collect())
}

struct Ctx<'a> {
    s: &'a SessionInfo,
}

impl Ctx<'_> {
    fn databases(&self) -> impl Iterator<Item = &crate::catalog::DatabaseDesc> {
        self.s.catalog.all().filter_map(|d| match d {
            Descriptor::Database(d) => Some(d),
            _ => None,
        })
    }

    fn schemas(&self) -> impl Iterator<Item = &crate::catalog::SchemaDesc> {
        self.s.catalog.all().filter_map(move |d| match d {
            Descriptor::Schema(s) if s.db_id == self.s.db_id => Some(s),
            _ => None,
        })
    }

    fn in_db(&self, schema_id: u64) -> bool {
        self.schemas().any(|s| s.id == schema_id)
    }

    fn schema_name(&self, id: u64) -> String {
        self.s
            .catalog
            .get(id)
            .map_or_else(|| "public".to_string(), |d| d.name().to_string())
    }

    fn tables(&self) -> impl Iterator<Item = &TableDesc> {
        self.s.catalog.all().filter_map(move |d| match d {
            Descriptor::Table(t) if self.in_db(t.schema_id) => Some(t),
            _ => None,
        })
    }

    fn relations(&self) -> impl Iterator<Item = &Descriptor> {
        self.s.catalog.all().filter(move |d| match d {
            Descriptor::Table(t) => self.in_db(t.schema_id),
            Descriptor::View(v) => self.in_db(v.schema_id),
            Descriptor::Sequence(q) => self.in_db(q.schema_id),
            _ => false,
        })
    }
}

fn attnum(t: &TableDesc, col_id: u32) -> i64 {
    t.visible_columns()
        .position(|c| c.id == col_id)
        .map_or(0, |p| p as i64 + 1)
}

fn index_columns_sql(t: &TableDesc, idx: &IndexDesc) -> String {
    idx.columns
        .iter()
        .map(|ic| {
            let name = t
                .column_by_id(ic.column)
                .map_or("?".to_string(), |c| quote_ident(&c.name));
            let mut s = name;
            if ic.desc {
                s.push_str(" DESC");
                if !ic.nulls_first {
                    s.push_str(" NULLS LAST");
                }
            } else if ic.nulls_first {
                s.push_str(" NULLS FIRST");
            }
            s
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Returns the CREATE INDEX statement of an index.
pub fn index_def(schema: &str, t: &TableDesc, idx: &IndexDesc) -> String {
    format!(
        "CREATE {}INDEX {} ON {}.{} USING btree ({})",
        if idx.unique { "UNIQUE " } else { "" },
        quote_ident(&idx.name),
        quote_ident(schema),
        quote_ident(&t.name),
        index_columns_sql(t, idx)
    )
}

fn fk_action(a: crate::catalog::FkAction) -> (&'static str, &'static str) {
    use crate::catalog::FkAction as A;
    match a {
        A::NoAction => ("a", ""),
        A::Restrict => ("r", " RESTRICT"),
        A::Cascade => ("c", " CASCADE"),
        A::SetNull => ("n", " SET NULL"),
        A::SetDefault => ("d", " SET DEFAULT"),
    }
}

/// A constraint of a table as pg_constraint shows it.
struct Constraint {
    oid: i64,
    name: String,
    kind: &'static str,
    index: i64,
    ref_table: i64,
    keys: Vec<i64>,
    fkeys: Vec<i64>,
    def: String,
    upd: &'static str,
    del: &'static str,
}

fn constraints(c: &Ctx<'_>, t: &TableDesc) -> Vec<Constraint> {
    let mut out = Vec::new();
    let base = 2_000_000 + t.id as i64 * 1000;
    if !t.has_rowid() {
        out.push(Constraint {
            oid: base,
            name: t.primary.name.clone(),
            kind: "p",
            index: index_oid(t.id, t.primary.id),
            ref_table: 0,
            keys: t
                .primary
                .columns
                .iter()
                .map(|ic| attnum(t, ic.column))
                .collect(),
            fkeys: vec![],
            def: format!("PRIMARY KEY ({})", index_columns_sql(t, &t.primary)),
            upd: " ",
            del: " ",
        });
    }
    for idx in t.indexes.iter().filter(|i| i.constraint) {
        out.push(Constraint {
            oid: base + i64::from(idx.id),
            name: idx.name.clone(),
            kind: "u",
            index: index_oid(t.id, idx.id),
            ref_table: 0,
            keys: idx.columns.iter().map(|ic| attnum(t, ic.column)).collect(),
            fkeys: vec![],
            def: format!("UNIQUE ({})", index_columns_sql(t, idx)),
            upd: " ",
            del: " ",
        });
    }
    for (k, ch) in t.checks.iter().enumerate() {
        out.push(Constraint {
            oid: base + 300 + k as i64,
            name: ch.name.clone(),
            kind: "c",
            index: 0,
            ref_table: 0,
            keys: vec![],
            fkeys: vec![],
            def: format!("CHECK (({}))", ch.expr),
            upd: " ",
            del: " ",
        });
    }
    for (k, fk) in t.foreign_keys.iter().enumerate() {
        let parent = c.s.catalog.table(fk.ref_table);
        let cols: Vec<String> = fk
            .columns
            .iter()
            .filter_map(|id| t.column_by_id(*id).map(|c| quote_ident(&c.name)))
            .collect();
        let (pname, pcols) = match parent {
            Some(p) => (
                quote_ident(&p.name),
                fk.ref_columns
                    .iter()
                    .filter_map(|id| p.column_by_id(*id).map(|c| quote_ident(&c.name)))
                    .collect::<Vec<_>>(),
            ),
            None => ("?".into(), vec![]),
        };
        let (upd, upd_sql) = fk_action(fk.on_update);
        let (del, del_sql) = fk_action(fk.on_delete);
        let mut def = format!(
            "FOREIGN KEY ({}) REFERENCES {}({})",
            cols.join(", "),
            pname,
            pcols.join(", ")
        );
        if !upd_sql.is_empty() {
            def.push_str(&format!(" ON UPDATE{upd_sql}"));
        }
        if !del_sql.is_empty() {
            def.push_str(&format!(" ON DELETE{del_sql}"));
        }
        out.push(Constraint {
            oid: base + 600 + k as i64,
            name: fk.name.clone(),
            kind: "f",
            index: 0,
            ref_table: fk.ref_table as i64,
            keys: fk.columns.iter().map(|id| attnum(t, *id)).collect(),
            fkeys: parent.map_or(vec![], |p| {
                fk.ref_columns.iter().map(|id| attnum(p, *id)).collect()
            }),
            def,
            upd,
            del,
        });
    }
    out
}

fn int2_array(v: &[i64]) -> Value {
    Value::Array(v.iter().map(|x| Value::Int(*x)).collect())
}

/// Computes the rows of a virtual table.
pub fn rows(name: &str, s: &SessionInfo) -> Result<Vec<Row>> {
    let c = Ctx { s };
    let db_name = s.database.clone();
    let mut out: Vec<Row> = Vec::new();
    match name {
        "pg_namespace" => {
            out.push(vec![
                i(PG_CATALOG_OID),
                t("pg_catalog"),
                i(OWNER_OID),
                null(),
            ]);
            out.push(vec![
                i(INFORMATION_SCHEMA_OID),
                t("information_schema"),
                i(OWNER_OID),
                null(),
            ]);
            for sc in c.schemas() {
                out.push(vec![i(sc.id as i64), t(&sc.name), i(OWNER_OID), null()]);
            }
        }
        "pg_class" => {
            for d in c.relations() {
                let (id, name, schema, kind, natts, hasindex, checks) = match d {
                    Descriptor::Table(tb) => (
                        tb.id,
                        &tb.name,
                        tb.schema_id,
                        "r",
                        tb.visible_columns().count(),
                        true,
                        tb.checks.len(),
                    ),
                    Descriptor::View(v) => {
                        (v.id, &v.name, v.schema_id, "v", v.columns.len(), false, 0)
                    }
                    Descriptor::Sequence(q) => (q.id, &q.name, q.schema_id, "S", 3, false, 0),
                    _ => continue,
                };
                out.push(class_row(
                    id as i64,
                    name,
                    schema as i64,
                    kind,
                    natts as i64,
                    hasindex,
                    checks as i64,
                    if kind == "r" { HEAP_AM_OID } else { 0 },
                ));
                if let Descriptor::Table(tb) = d {
                    // psql lists foreign keys only for tables that "have triggers".
                    let fk = !tb.foreign_keys.is_empty()
                        || c.relations().any(|o| matches!(o, Descriptor::Table(x) if x.foreign_keys.iter().any(|f| f.ref_table == tb.id)));
                    if let Some(row) = out.last_mut() {
                        row[20] = b(fk);
                    }
                    for idx in tb.all_indexes() {
                        if idx.id == tb.primary.id && tb.has_rowid() {
                            continue;
                        }
                        out.push(class_row(
                            index_oid(tb.id, idx.id),
                            &idx.name,
                            schema as i64,
                            "i",
                            idx.columns.len() as i64,
                            false,
                            0,
                            BTREE_AM_OID,
                        ));
                    }
                }
            }
        }
        "pg_attribute" => {
            for d in c.relations() {
                match d {
                    Descriptor::Table(tb) => {
                        for (k, col) in tb.visible_columns().enumerate() {
                            out.push(attr_row(
                                tb.id as i64,
                                &col.name,
                                &col.ty,
                                k as i64 + 1,
                                !col.nullable,
                                col.default.is_some(),
                                col.identity,
                            ));
                        }
                        for idx in tb.all_indexes() {
                            if idx.id == tb.primary.id && tb.has_rowid() {
                                continue;
                            }
                            for (k, ic) in idx.columns.iter().enumerate() {
                                if let Some(col) = tb.column_by_id(ic.column) {
                                    out.push(attr_row(
                                        index_oid(tb.id, idx.id),
                                        &col.name,
                                        &col.ty,
                                        k as i64 + 1,
                                        false,
                                        false,
                                        None,
                                    ));
                                }
                            }
                        }
                    }
                    Descriptor::View(v) => {
                        for (k, (n, ty)) in v.columns.iter().enumerate() {
                            out.push(attr_row(
                                v.id as i64,
                                n,
                                ty,
                                k as i64 + 1,
                                false,
                                false,
                                None,
                            ));
                        }
                    }
                    _ => {}
                }
            }
        }
        "pg_type" => {
            let scalars = T::SCALARS.iter().filter(|t| **t != T::Unknown);
            for ty in scalars {
                let arr = T::Array(Box::new(ty.clone()));
                out.push(type_row(ty, 0, arr.oid() as i64));
                if !matches!(ty, T::RegClass) {
                    out.push(type_row(&arr, ty.oid() as i64, 0));
                }
            }
            for ty in [T::Int2Vector, T::OidVector] {
                let elem = ty.element().map_or(0, |e| e.oid() as i64);
                out.push(type_row(&ty, elem, 0));
            }
        }
        "pg_index" => {
            for tb in c.tables() {
                for idx in tb.all_indexes() {
                    if idx.id == tb.primary.id && tb.has_rowid() {
                        continue;
                    }
                    let keys: Vec<i64> =
                        idx.columns.iter().map(|ic| attnum(tb, ic.column)).collect();
                    let opts: Vec<i64> = idx
                        .columns
                        .iter()
                        .map(|ic| i64::from(ic.desc) | (i64::from(ic.nulls_first) << 1))
                        .collect();
                    let n = keys.len() as i64;
                    out.push(vec![
                        i(index_oid(tb.id, idx.id)),
                        i(tb.id as i64),
                        i(n),
                        i(n),
                        b(idx.unique),
                        b(false),
                        b(idx.id == tb.primary.id),
                        b(false),
                        b(true),
                        b(false),
                        b(true),
                        b(false),
                        b(true),
                        b(true),
                        b(false),
                        int2_array(&keys),
                        // Default collations and operator classes throughout.
                        int2_array(&vec![0; keys.len()]),
                        int2_array(&vec![0; keys.len()]),
                        int2_array(&opts),
                        null(),
                        null(),
                    ]);
                }
            }
        }
        "pg_constraint" => {
            for tb in c.tables() {
                for con in constraints(&c, tb) {
                    out.push(vec![
                        i(con.oid),
                        t(&con.name),
                        i(tb.schema_id as i64),
                        t(con.kind),
                        b(false),
                        b(false),
                        b(true),
                        i(tb.id as i64),
                        i(0),
                        i(con.index),
                        i(0),
                        i(con.ref_table),
                        t(con.upd),
                        t(con.del),
                        t(if con.kind == "f" { "s" } else { " " }),
                        b(true),
                        i(0),
                        b(false),
                        int2_array(&con.keys),
                        if con.fkeys.is_empty() {
                            null()
                        } else {
                            int2_array(&con.fkeys)
                        },
                        null(),
                    ]);
                }
            }
        }
        "pg_database" => {
            for d in c.databases() {
                out.push(vec![
                    i(d.id as i64),
                    t(&d.name),
                    i(OWNER_OID),
                    i(6),
                    t("c"),
                    b(false),
                    b(true),
                    i(-1),
                    i(0),
                    i(0),
                    i(1663),
                    t("C"),
                    t("C"),
                    null(),
                    null(),
                    null(),
                ]);
            }
        }
        "pg_roles" | "pg_authid" => {
            out.push(vec![
                i(OWNER_OID),
                t(&s.user),
                b(true),
                b(true),
                b(true),
                b(true),
                b(true),
                b(true),
                i(-1),
                null(),
                null(),
                b(true),
                null(),
            ]);
        }
        "pg_user" => out.push(vec![
            t(&s.user),
            i(OWNER_OID),
            b(true),
            b(true),
            b(true),
            b(true),
            t("********"),
            null(),
            null(),
        ]),
        "pg_am" => {
            out.push(vec![
                i(HEAP_AM_OID),
                t("heap"),
                t("heap_tableam_handler"),
                t("t"),
            ]);
            out.push(vec![i(BTREE_AM_OID), t("btree"), t("bthandler"), t("i")]);
        }
        "pg_attrdef" => {
            for tb in c.tables() {
                for (k, col) in tb.visible_columns().enumerate() {
                    if let Some(d) = &col.default {
                        out.push(vec![
                            i(3_000_000 + tb.id as i64 * 1000 + k as i64),
                            i(tb.id as i64),
                            i(k as i64 + 1),
                            t(d),
                        ]);
                    }
                }
            }
        }
        "pg_sequence" => {
            for d in c.relations() {
                if let Descriptor::Sequence(q) = d {
                    out.push(vec![
                        i(q.id as i64),
                        i(20),
                        i(q.start),
                        i(q.increment),
                        i(q.max),
                        i(q.min),
                        i(1),
                        b(q.cycle),
                    ]);
                }
            }
        }
        "pg_sequences" => {
            for d in c.relations() {
                if let Descriptor::Sequence(q) = d {
                    out.push(vec![
                        t(&c.schema_name(q.schema_id)),
                        t(&q.name),
                        t(&s.user),
                        t("bigint"),
                        i(q.start),
                        i(q.min),
                        i(q.max),
                        i(q.increment),
                        b(q.cycle),
                        i(1),
                        null(),
                    ]);
                }
            }
        }
        "pg_tablespace" => {
            out.push(vec![i(1663), t("pg_default"), i(OWNER_OID), null(), null()]);
        }
        "pg_settings" => {
            for (k, v) in s.settings.iter() {
                out.push(vec![
                    t(k),
                    t(v),
                    null(),
                    t("Tessera"),
                    null(),
                    t("user"),
                    t("string"),
                    t("session"),
                ]);
            }
        }
        "pg_collation" => {
            out.push(vec![
                i(100),
                t("default"),
                i(PG_CATALOG_OID),
                t("d"),
                b(true),
                i(-1),
                null(),
                null(),
            ]);
            out.push(vec![
                i(950),
                t("C"),
                i(PG_CATALOG_OID),
                t("c"),
                b(true),
                i(-1),
                t("C"),
                t("C"),
            ]);
        }
        "pg_tables" => {
            for tb in c.tables() {
                out.push(vec![
                    t(&c.schema_name(tb.schema_id)),
                    t(&tb.name),
                    t(&s.user),
                    null(),
                    b(!tb.indexes.is_empty() || !tb.has_rowid()),
                    b(false),
                    b(false),
                    b(false),
                ]);
            }
        }
        "pg_views" => {
            for d in c.relations() {
                if let Descriptor::View(v) = d {
                    out.push(vec![
                        t(&c.schema_name(v.schema_id)),
                        t(&v.name),
                        t(&s.user),
                        t(&v.sql),
                    ]);
                }
            }
        }
        "pg_indexes" => {
            for tb in c.tables() {
                let schema = c.schema_name(tb.schema_id);
                for idx in tb.all_indexes() {
                    if idx.id == tb.primary.id && tb.has_rowid() {
                        continue;
                    }
                    out.push(vec![
                        t(&schema),
                        t(&tb.name),
                        t(&idx.name),
                        null(),
                        t(&index_def(&schema, tb, idx)),
                    ]);
                }
            }
        }
        "pg_stat_activity" => {
            out.push(vec![
                i(0),
                t(&db_name),
                i(i64::from(s.backend_pid)),
                t(&s.user),
                t(""),
                t("active"),
                t(""),
            ]);
        }
        "information_schema.schemata" => {
            for sc in c.schemas() {
                out.push(vec![t(&db_name), t(&sc.name), t(&s.user)]);
            }
            out.push(vec![t(&db_name), t("pg_catalog"), t(&s.user)]);
            out.push(vec![t(&db_name), t("information_schema"), t(&s.user)]);
        }
        "information_schema.tables" => {
            for d in c.relations() {
                match d {
                    Descriptor::Table(tb) => out.push(vec![
                        t(&db_name),
                        t(&c.schema_name(tb.schema_id)),
                        t(&tb.name),
                        t("BASE TABLE"),
                        t("YES"),
                    ]),
                    Descriptor::View(v) => out.push(vec![
                        t(&db_name),
                        t(&c.schema_name(v.schema_id)),
                        t(&v.name),
                        t("VIEW"),
                        t("NO"),
                    ]),
                    _ => {}
                }
            }
        }
        "information_schema.columns" => {
            for d in c.relations() {
                #[allow(clippy::type_complexity)]
                let (schema, tname, cols): (
                    u64,
                    &str,
                    Vec<(String, SqlType, bool, Option<String>, Option<bool>)>,
                ) = match d {
                    Descriptor::Table(tb) => (
                        tb.schema_id,
                        &tb.name,
                        tb.visible_columns()
                            .map(|c| {
                                (
                                    c.name.clone(),
                                    c.ty.clone(),
                                    c.nullable,
                                    c.default.clone(),
                                    c.identity,
                                )
                            })
                            .collect(),
                    ),
                    Descriptor::View(v) => (
                        v.schema_id,
                        &v.name,
                        v.columns
                            .iter()
                            .map(|(n, t)| (n.clone(), t.clone(), true, None, None))
                            .collect(),
                    ),
                    _ => continue,
                };
                for (k, (cname, ty, nullable, default, identity)) in cols.into_iter().enumerate() {
                    let (len, prec, scale) = match &ty {
                        T::Varchar(Some(n)) | T::Char(n) => {
                            (Value::Int(i64::from(*n)), null(), null())
                        }
                        T::Numeric(Some((p, s))) => (null(), i(i64::from(*p)), i(i64::from(*s))),
                        T::Int2 => (null(), i(16), i(0)),
                        T::Int4 => (null(), i(32), i(0)),
                        T::Int8 => (null(), i(64), i(0)),
                        _ => (null(), null(), null()),
                    };
                    let data_type = match &ty {
                        T::Array(_) => "ARRAY".to_string(),
                        other => other.base().pg_name(),
                    };
                    out.push(vec![
                        t(&db_name),
                        t(&c.schema_name(schema)),
                        t(tname),
                        t(&cname),
                        i(k as i64 + 1),
                        default.map_or(null(), Value::Text),
                        t(if nullable { "YES" } else { "NO" }),
                        t(&data_type),
                        len,
                        prec,
                        scale,
                        t(&ty.typname()),
                        t(if identity.is_some() { "YES" } else { "NO" }),
                        match identity {
                            Some(true) => t("ALWAYS"),
                            Some(false) => t("BY DEFAULT"),
                            None => null(),
                        },
                    ]);
                }
            }
        }
        "information_schema.table_constraints" => {
            for tb in c.tables() {
                let schema = c.schema_name(tb.schema_id);
                for con in constraints(&c, tb) {
                    let kind = match con.kind {
                        "p" => "PRIMARY KEY",
                        "u" => "UNIQUE",
                        "f" => "FOREIGN KEY",
                        _ => "CHECK",
                    };
                    out.push(vec![
                        t(&db_name),
                        t(&schema),
                        t(&con.name),
                        t(&db_name),
                        t(&schema),
                        t(&tb.name),
                        t(kind),
                    ]);
                }
            }
        }
        "information_schema.key_column_usage" => {
            for tb in c.tables() {
                let schema = c.schema_name(tb.schema_id);
                for con in constraints(&c, tb)
                    .into_iter()
                    .filter(|c| matches!(c.kind, "p" | "u" | "f"))
                {
                    for (k, attnum) in con.keys.iter().enumerate() {
                        let col = tb
                            .visible_columns()
                            .nth((*attnum - 1).max(0) as usize)
                            .map(|c| c.name.clone())
                            .unwrap_or_default();
                        out.push(vec![
                            t(&db_name),
                            t(&schema),
                            t(&con.name),
                            t(&db_name),
                            t(&schema),
                            t(&tb.name),
                            t(&col),
                            i(k as i64 + 1),
                        ]);
                    }
                }
            }
        }
        "information_schema.views" => {
            for d in c.relations() {
                if let Descriptor::View(v) = d {
                    out.push(vec![
                        t(&db_name),
                        t(&c.schema_name(v.schema_id)),
                        t(&v.name),
                        t(&v.sql),
                    ]);
                }
            }
        }
        "information_schema.sequences" => {
            for d in c.relations() {
                if let Descriptor::Sequence(q) = d {
                    out.push(vec![
                        t(&db_name),
                        t(&c.schema_name(q.schema_id)),
                        t(&q.name),
                        t("bigint"),
                        t(&q.start.to_string()),
                        t(&q.increment.to_string()),
                    ]);
                }
            }
        }
        // Catalogs Tessera has no entries in.
        _ => {}
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
fn class_row(
    oid: i64,
    name: &str,
    ns: i64,
    kind: &str,
    natts: i64,
    hasindex: bool,
    checks: i64,
    am: i64,
) -> Row {
    vec![
        i(oid),
        t(name),
        i(ns),
        i(0),
        i(0),
        i(OWNER_OID),
        i(am),
        i(oid),
        i(0),
        i(0),
        Value::Float(-1.0),
        i(0),
        i(0),
        b(hasindex),
        b(false),
        t("p"),
        t(kind),
        i(natts),
        i(checks),
        b(false),
        b(false),
        b(false),
        b(false),
        b(false),
        b(true),
        t("d"),
        b(false),
        i(0),
        i(0),
        i(0),
        null(),
        null(),
        null(),
    ]
}

fn attr_row(
    rel: i64,
    name: &str,
    ty: &SqlType,
    num: i64,
    notnull: bool,
    hasdef: bool,
    identity: Option<bool>,
) -> Row {
    let ident = match identity {
        Some(true) => "a",
        Some(false) => "d",
        None => "",
    };
    vec![
        i(rel),
        t(name),
        i(ty.oid() as i64),
        i(-1),
        i(i64::from(ty.type_len())),
        i(num),
        i(i64::from(matches!(ty, T::Array(_)))),
        i(-1),
        i(i64::from(ty.type_modifier())),
        b(ty.type_len() > 0 && ty.type_len() <= 8),
        t("i"),
        t("p"),
        t(""),
        b(notnull),
        b(hasdef),
        b(false),
        t(ident),
        t(""),
        b(false),
        b(true),
        i(0),
        i(if ty.is_string() { 100 } else { 0 }),
        null(),
        null(),
        null(),
        null(),
    ]
}

fn type_row(ty: &SqlType, elem: i64, array: i64) -> Row {
    let category = match ty.family() {
        crate::types::TypeFamily::Bool => "B",
        crate::types::TypeFamily::Integer
        | crate::types::TypeFamily::Float
        | crate::types::TypeFamily::Numeric => "N",
        crate::types::TypeFamily::String => "S",
        crate::types::TypeFamily::DateTime => "D",
        crate::types::TypeFamily::Interval => "T",
        crate::types::TypeFamily::Array => "A",
        _ => "U",
    };
    vec![
        i(ty.oid() as i64),
        t(&ty.typname()),
        i(PG_CATALOG_OID),
        i(OWNER_OID),
        i(i64::from(ty.type_len())),
        b(ty.type_len() > 0 && ty.type_len() <= 8),
        t("b"),
        t(category),
        b(false),
        b(true),
        t(","),
        i(0),
        t(if elem != 0 {
            "array_subscript_handler"
        } else {
            "-"
        }),
        i(elem),
        i(array),
        t(&format!("{}in", ty.typname())),
        t(&format!("{}out", ty.typname())),
        t(""),
        t(""),
        t(""),
        t(""),
        t(""),
        t("i"),
        t("p"),
        b(false),
        i(0),
        i(-1),
        i(0),
        i(if ty.is_string() { 100 } else { 0 }),
        null(),
        null(),
        null(),
    ]
}

/// `pg_get_indexdef`, `pg_get_constraintdef`, `pg_get_viewdef` for an oid.
pub fn object_definition(func: Func, oid: u64, s: &SessionInfo) -> Option<String> {
    let c = Ctx { s };
    match func {
        Func::PgGetIndexDef => {
            for tb in c.tables() {
                for idx in tb.all_indexes() {
                    if index_oid(tb.id, idx.id) == oid as i64 {
                        return Some(index_def(&c.schema_name(tb.schema_id), tb, idx));
                    }
                }
            }
            None
        }
        Func::PgGetConstraintDef => {
            for tb in c.tables() {
                for con in constraints(&c, tb) {
                    if con.oid == oid as i64 {
                        return Some(con.def);
                    }
                }
            }
            None
        }
        Func::PgGetViewDef => match s.catalog.get(oid) {
            Some(Descriptor::View(v)) => Some(v.sql.clone()),
            _ => None,
        },
        _ => None,
    }
}

/// `pg_get_serial_sequence(table, column)`.
pub fn serial_sequence(table: &str, column: &str, s: &SessionInfo) -> Option<String> {
    let c = Ctx { s };
    let name = table.rsplit('.').next().unwrap_or(table).trim_matches('"');
    let tb = c.tables().find(|t| t.name == name)?;
    let col = tb.column(column)?;
    c.relations().find_map(|d| match d {
        Descriptor::Sequence(q) if q.owned_by == Some((tb.id, col.id)) => {
            Some(format!("{}.{}", c.schema_name(q.schema_id), q.name))
        }
        _ => None,
    })
}
