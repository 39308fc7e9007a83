//! The binder: resolves names against the catalog, types every expression and builds plans.
//!
//! ```text
//!   sqlparser AST ──▶ Binder ──▶ Plan / QueryPlan (+ parameter types)
//!                       │
//!                       ├─ scope.rs   columns visible at a point, outer scopes for
//!                       │             correlated subqueries
//!                       ├─ expr.rs    expressions: name resolution, operators, casts,
//!                       │             functions, aggregates and window functions
//!                       ├─ query.rs   SELECT: FROM, joins, WHERE, GROUP BY, ORDER BY...
//!                       ├─ access.rs  index selection for one table's predicates
//!                       └─ dml.rs     INSERT, UPDATE, DELETE
//! ```
//!
//! Parameters (`$n`) start with an unknown type and take the type their context expects;
//! what remains unknown becomes text.

mod access;
mod dml;
mod expr;
mod lookup;
mod query;
mod scope;

use std::sync::Arc;

use sqlparser::ast::{DataType, ObjectName};

pub use dml::{
    ConflictAction, DefaultValue, DeletePlan, InsertPlan, InsertSource, OnConflict, UpdatePlan,
    table_scope,
};
pub use scope::{Scope, ScopeCol};

use crate::catalog::{Catalog, Descriptor, TableDesc};
use crate::error::{Error, ErrorKind, Result};
use crate::parse;
use crate::plan::SubPlan;
use crate::types::SqlType;

/// A CTE visible to the query being bound.
#[derive(Clone, Debug)]
struct CteBinding {
    name: String,
    id: usize,
    columns: Vec<(String, SqlType)>,
}

/// What a name in FROM refers to.
pub enum Relation {
    Table(Arc<TableDesc>),
    View(String, Vec<(String, SqlType)>),
    Virtual(String),
}

/// Binds statements of one session against one catalog.
pub struct Binder<'a> {
    pub catalog: &'a Catalog,
    pub db_id: u64,
    /// Types of `$1`, `$2`, ...; `Unknown` until a context fixes them.
    pub params: Vec<SqlType>,
    pub subplans: Vec<SubPlan>,
    ctes: Vec<CteBinding>,
    next_cte: usize,
    /// Scopes of enclosing queries, innermost last, each with a flag set when a column of
    /// it is referenced from inside (making the subquery correlated).
    outer: Vec<(Scope, bool)>,
    /// Schemas searched for unqualified names, in order (the `search_path` setting).
    search_path: Vec<String>,
}

/// Splits a `search_path` setting into schema names; `$user` becomes the user's name.
pub fn parse_search_path(setting: &str, user: &str) -> Vec<String> {
    setting
        .split(',')
        .map(|s| s.trim().trim_matches('"').to_string())
        .filter(|s| !s.is_empty())
        .map(|s| if s == "$user" { user.to_string() } else { s })
        .collect()
}

impl<'a> Binder<'a> {
    /// Returns a binder; `params` are the parameter types the client declared (Unknown
    /// where it did not).
    pub fn new(catalog: &'a Catalog, db_id: u64, params: Vec<SqlType>) -> Self {
        Binder {
            catalog,
            db_id,
            params,
            subplans: Vec::new(),
            ctes: Vec::new(),
            next_cte: 0,
            outer: Vec::new(),
            search_path: vec!["public".into()],
        }
    }

    /// Sets the schemas searched for unqualified names.
    pub fn with_search_path(mut self, path: Vec<String>) -> Self {
        self.search_path = path;
        self
    }

    /// Returns the ids of the search path's schemas that exist, in order.
    pub fn search_schemas(&self) -> Vec<u64> {
        self.search_path
            .iter()
            .filter_map(|n| self.catalog.schema(self.db_id, n).map(|s| s.id))
            .collect()
    }

    /// Returns the final parameter types (unknown ones become text).
    pub fn param_types(&self) -> Vec<SqlType> {
        self.params
            .iter()
            .map(|t| {
                if *t == SqlType::Unknown {
                    SqlType::Text
                } else {
                    t.clone()
                }
            })
            .collect()
    }

    fn param_type(&mut self, n: usize) -> SqlType {
        if self.params.len() <= n {
            self.params.resize(n + 1, SqlType::Unknown);
        }
        self.params[n].clone()
    }

    fn set_param_type(&mut self, n: usize, ty: SqlType) {
        if self.params.len() <= n {
            self.params.resize(n + 1, SqlType::Unknown);
        }
        if self.params[n] == SqlType::Unknown {
            self.params[n] = ty;
        }
    }

    /// Returns the id of the `public` schema of the current database.
    pub fn public_schema(&self) -> Result<u64> {
        self.catalog
            .schema(self.db_id, "public")
            .map(|s| s.id)
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::UndefinedSchema,
                    "schema \"public\" does not exist",
                )
            })
    }

    /// Resolves a schema name (None = the search path's first schema).
    pub fn schema_id(&self, name: Option<&str>) -> Result<u64> {
        match name {
            None => self.search_schemas().first().copied().ok_or_else(|| {
                Error::new(
                    ErrorKind::UndefinedSchema,
                    "no schema has been selected to create in",
                )
            }),
            Some("public") => self.public_schema(),
            Some(s) => self
                .catalog
                .schema(self.db_id, s)
                .map(|s| s.id)
                .ok_or_else(|| {
                    Error::new(
                        ErrorKind::UndefinedSchema,
                        format!("schema \"{s}\" does not exist"),
                    )
                }),
        }
    }

    /// Splits a possibly qualified relation name into (schema, name), checking a
    /// database qualifier against the current database.
    pub fn qualified(&self, name: &ObjectName) -> Result<(Option<String>, String)> {
        let parts = parse::object_name(name)?;
        match parts.as_slice() {
            [n] => Ok((None, n.clone())),
            [s, n] => Ok((Some(s.clone()), n.clone())),
            [d, s, n] => {
                let current = self
                    .catalog
                    .get(self.db_id)
                    .map(|d| d.name().to_string())
                    .unwrap_or_default();
                if *d != current {
                    return Err(Error::unsupported("cross-database references"));
                }
                Ok((Some(s.clone()), n.clone()))
            }
            _ => Err(Error::new(
                ErrorKind::Syntax,
                format!("improper qualified name (too many dotted names): {name}"),
            )),
        }
    }

    /// Resolves a relation name in FROM.
    pub fn relation(&self, name: &ObjectName) -> Result<Relation> {
        let (schema, rel) = self.qualified(name)?;
        if matches!(schema.as_deref(), Some("pg_catalog" | "information_schema"))
            || (schema.is_none() && crate::pg_catalog::is_virtual(&rel))
        {
            let full = match schema.as_deref() {
                Some("information_schema") => format!("information_schema.{rel}"),
                _ => rel.clone(),
            };
            if crate::pg_catalog::is_virtual(&full) {
                return Ok(Relation::Virtual(full));
            }
            if schema.is_some() {
                return Err(undefined_table(&rel));
            }
        }
        let found = match schema.as_deref() {
            Some(s) => {
                let sid = self
                    .schema_id(Some(s))
                    .map_err(|_| undefined_table(&format!("{s}.{rel}")))?;
                self.catalog.lookup(sid, &rel)
            }
            None => self
                .search_schemas()
                .into_iter()
                .find_map(|sid| self.catalog.lookup(sid, &rel)),
        };
        match found {
            Some(Descriptor::Table(t)) => Ok(Relation::Table(Arc::new(t.clone()))),
            Some(Descriptor::View(v)) => Ok(Relation::View(v.sql.clone(), v.columns.clone())),
            Some(Descriptor::Sequence(_)) => Err(Error::unsupported("selecting from a sequence")),
            _ => Err(undefined_table(&rel)),
        }
    }

    /// Resolves a table name for a write.
    pub fn table(&self, name: &ObjectName) -> Result<Arc<TableDesc>> {
        match self.relation(name)? {
            Relation::Table(t) => Ok(t),
            Relation::View(..) => Err(Error::unsupported("writing to a view")),
            Relation::Virtual(n) => Err(Error::new(
                ErrorKind::InvalidTransactionState,
                format!("cannot change system catalog relation \"{n}\""),
            )),
        }
    }
}

/// Chooses the index and key access for predicates over a table's live columns.
pub fn choose_access(
    table: &TableDesc,
    conjuncts: &[crate::expr::Expr],
) -> (u32, crate::plan::Access) {
    let c = access::choose(table, conjuncts);
    (c.index, c.access)
}

/// The error for an unknown relation.
pub fn undefined_table(name: &str) -> Error {
    Error::new(
        ErrorKind::UndefinedTable,
        format!("relation \"{name}\" does not exist"),
    )
}

/// Converts a sqlparser data type to a SQL type.
pub fn data_type(t: &DataType) -> Result<SqlType> {
    use sqlparser::ast::{ArrayElemTypeDef, CharacterLength, ExactNumberInfo, TimezoneInfo};
    let len = |l: &Option<CharacterLength>| match l {
        Some(CharacterLength::IntegerLength { length, .. }) => Some(*length as u32),
        _ => None,
    };
    Ok(match t {
        DataType::Bool | DataType::Boolean => SqlType::Bool,
        DataType::SmallInt(_) | DataType::Int2(_) => SqlType::Int2,
        DataType::Int(_) | DataType::Integer(_) | DataType::Int4(_) => SqlType::Int4,
        DataType::BigInt(_) | DataType::Int8(_) => SqlType::Int8,
        DataType::Real | DataType::Float4 => SqlType::Float4,
        DataType::DoublePrecision | DataType::Float8 | DataType::Double(_) => SqlType::Float8,
        DataType::Float(info) => match info {
            ExactNumberInfo::Precision(p) if *p <= 24 => SqlType::Float4,
            _ => SqlType::Float8,
        },
        DataType::Numeric(info) | DataType::Decimal(info) | DataType::Dec(info) => match info {
            ExactNumberInfo::None => SqlType::Numeric(None),
            ExactNumberInfo::Precision(p) => numeric_type(*p, 0)?,
            ExactNumberInfo::PrecisionAndScale(p, s) => {
                if *s < 0 {
                    return Err(Error::unsupported("negative numeric scale"));
                }
                numeric_type(*p, *s as u64)?
            }
        },
        DataType::Text | DataType::String(_) => SqlType::Text,
        DataType::Varchar(l) | DataType::CharacterVarying(l) | DataType::CharVarying(l) => {
            SqlType::Varchar(len(l))
        }
        DataType::Char(l) | DataType::Character(l) => SqlType::Char(len(l).unwrap_or(1)),
        DataType::Bytea => SqlType::Bytea,
        DataType::Date => SqlType::Date,
        DataType::Time(_, tz) => match tz {
            TimezoneInfo::WithTimeZone | TimezoneInfo::Tz => {
                return Err(Error::unsupported("type time with time zone"));
            }
            _ => SqlType::Time,
        },
        DataType::Timestamp(_, tz) => match tz {
            TimezoneInfo::WithTimeZone | TimezoneInfo::Tz => SqlType::TimestampTz,
            _ => SqlType::Timestamp,
        },
        DataType::Interval { .. } => SqlType::Interval,
        DataType::Uuid => SqlType::Uuid,
        DataType::JSON => SqlType::Json,
        DataType::JSONB => SqlType::Jsonb,
        DataType::Regclass => SqlType::RegClass,
        DataType::Array(elem) => match elem {
            ArrayElemTypeDef::SquareBracket(inner, _)
            | ArrayElemTypeDef::AngleBracket(inner)
            | ArrayElemTypeDef::Qualified(inner, _) => {
                let e = data_type(inner)?;
                if matches!(e, SqlType::Array(_)) {
                    return Err(Error::unsupported("multidimensional arrays"));
                }
                SqlType::Array(Box::new(e))
            }
            _ => return Err(Error::unsupported(format!("type {t}"))),
        },
        DataType::Custom(name, mods) => {
            let parts = parse::object_name(name)?;
            let last = parts.last().cloned().unwrap_or_default();
            if parts.len() > 1 && parts[0] != "pg_catalog" {
                return Err(Error::new(
                    ErrorKind::UndefinedObject,
                    format!("type \"{name}\" does not exist"),
                ));
            }
            let first_mod = mods.first().and_then(|m| m.to_string().parse::<u32>().ok());
            match last.as_str() {
                "serial" | "serial4" => SqlType::Int4,
                "bigserial" | "serial8" => SqlType::Int8,
                "smallserial" | "serial2" => SqlType::Int2,
                "int2" => SqlType::Int2,
                "int4" | "int" | "integer" => SqlType::Int4,
                "int8" => SqlType::Int8,
                "float4" => SqlType::Float4,
                "float8" => SqlType::Float8,
                "text" => SqlType::Text,
                "varchar" => SqlType::Varchar(first_mod),
                "bpchar" | "char" => SqlType::Char(first_mod.unwrap_or(1)),
                "bool" | "boolean" => SqlType::Bool,
                "numeric" => SqlType::Numeric(None),
                "name" => SqlType::Name,
                "oid" | "regtype" | "regproc" | "regnamespace" | "regrole" => SqlType::Oid,
                "regclass" => SqlType::RegClass,
                "timestamptz" => SqlType::TimestampTz,
                "timestamp" => SqlType::Timestamp,
                "date" => SqlType::Date,
                "time" => SqlType::Time,
                "interval" => SqlType::Interval,
                "uuid" => SqlType::Uuid,
                "json" => SqlType::Json,
                "jsonb" => SqlType::Jsonb,
                "bytea" => SqlType::Bytea,
                _ => {
                    return Err(Error::new(
                        ErrorKind::UndefinedObject,
                        format!("type \"{last}\" does not exist"),
                    ));
                }
            }
        }
        other => return Err(Error::unsupported(format!("type {other}"))),
    })
}

fn numeric_type(p: u64, s: u64) -> Result<SqlType> {
    if !(1..=1000).contains(&p) {
        return Err(Error::new(
            ErrorKind::InvalidParameterValue,
            format!("NUMERIC precision {p} must be between 1 and 1000"),
        ));
    }
    if s > p {
        return Err(Error::new(
            ErrorKind::InvalidParameterValue,
            format!("NUMERIC scale {s} must be between 0 and precision {p}"),
        ));
    }
    if s > 28 {
        return Err(Error::unsupported(format!(
            "NUMERIC scale {s} (the limit is 28)"
        )));
    }
    Ok(SqlType::Numeric(Some((p as u32, s as u32))))
}

/// Returns true if a type name is one of the serial pseudo-types.
pub fn is_serial(t: &DataType) -> bool {
    if let DataType::Custom(name, _) = t
        && let Ok(parts) = parse::object_name(name)
    {
        return matches!(
            parts.last().map(String::as_str),
            Some("serial" | "serial4" | "bigserial" | "serial8" | "smallserial" | "serial2")
        );
    }
    false
}
