//! SQL data types.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A SQL data type, as PostgreSQL names it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SqlType {
    Bool,
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    /// numeric(precision, scale); `None` for unconstrained numeric.
    Numeric(Option<(u32, u32)>),
    Text,
    /// varchar(n); `None` for no limit.
    Varchar(Option<u32>),
    /// char(n), blank-padded.
    Char(u32),
    Bytea,
    Date,
    Time,
    Timestamp,
    TimestampTz,
    Interval,
    Uuid,
    Jsonb,
    Json,
    Array(Box<SqlType>),
    /// Object identifiers, used by the catalog tables.
    Oid,
    /// The `name` type of the catalog tables.
    Name,
    /// `regclass`: a table name that casts to its oid.
    RegClass,
    /// `int2vector` and `oidvector` of the catalog tables: arrays (of int2 and oid) that
    /// print space-separated.
    Int2Vector,
    OidVector,
    /// A NULL or a string literal whose type is not known yet.
    Unknown,
}

/// Broad families of types, for overload resolution and implicit casts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TypeFamily {
    Bool,
    Integer,
    Float,
    Numeric,
    String,
    Bytes,
    DateTime,
    Interval,
    Uuid,
    Json,
    Array,
    Unknown,
}

impl SqlType {
    /// Returns the PostgreSQL type OID.
    pub fn oid(&self) -> u32 {
        match self {
            SqlType::Bool => 16,
            SqlType::Bytea => 17,
            SqlType::Name => 19,
            SqlType::Int8 => 20,
            SqlType::Int2 => 21,
            SqlType::Int4 => 23,
            SqlType::Text => 25,
            SqlType::Oid => 26,
            SqlType::Json => 114,
            SqlType::Float4 => 700,
            SqlType::Float8 => 701,
            SqlType::Unknown => 705,
            SqlType::Char(_) => 1042,
            SqlType::Varchar(_) => 1043,
            SqlType::Date => 1082,
            SqlType::Time => 1083,
            SqlType::Timestamp => 1114,
            SqlType::TimestampTz => 1184,
            SqlType::Interval => 1186,
            SqlType::Numeric(_) => 1700,
            SqlType::RegClass => 2205,
            SqlType::Int2Vector => 22,
            SqlType::OidVector => 30,
            SqlType::Uuid => 2950,
            SqlType::Jsonb => 3802,
            SqlType::Array(elem) => match elem.as_ref() {
                SqlType::Bool => 1000,
                SqlType::Bytea => 1001,
                SqlType::Name => 1003,
                SqlType::Int2 => 1005,
                SqlType::Int4 => 1007,
                SqlType::Text => 1009,
                SqlType::Char(_) => 1014,
                SqlType::Varchar(_) => 1015,
                SqlType::Int8 => 1016,
                SqlType::Float4 => 1021,
                SqlType::Float8 => 1022,
                SqlType::Oid => 1028,
                SqlType::Timestamp => 1115,
                SqlType::Date => 1182,
                SqlType::Time => 1183,
                SqlType::TimestampTz => 1185,
                SqlType::Interval => 1187,
                SqlType::Numeric(_) => 1231,
                SqlType::Uuid => 2951,
                SqlType::Jsonb => 3807,
                SqlType::Json => 199,
                _ => 1009,
            },
        }
    }

    /// Returns the type named `name` (`int4`, `integer`, `text[]`, `_int4`), as
    /// `to_regtype` resolves it.
    pub fn from_name(name: &str) -> Option<SqlType> {
        let name = name.trim().to_ascii_lowercase();
        let name = name.strip_prefix("pg_catalog.").unwrap_or(&name);
        if let Some(elem) = name.strip_suffix("[]") {
            return SqlType::from_name(elem)
                .filter(|t| !matches!(t, SqlType::Array(_) | SqlType::Unknown))
                .map(|t| SqlType::Array(Box::new(t)));
        }
        let alias = match name {
            "int" | "integer" => Some(SqlType::Int4),
            "bigint" => Some(SqlType::Int8),
            "smallint" => Some(SqlType::Int2),
            "real" => Some(SqlType::Float4),
            "double precision" | "float" => Some(SqlType::Float8),
            "decimal" => Some(SqlType::Numeric(None)),
            "character varying" => Some(SqlType::Varchar(None)),
            "character" | "char" => Some(SqlType::Char(1)),
            _ => None,
        };
        alias.or_else(|| {
            let all = Self::SCALARS.iter().cloned().chain(
                Self::SCALARS
                    .iter()
                    .map(|t| SqlType::Array(Box::new(t.clone()))),
            );
            all.into_iter()
                .find(|t| t.typname() == name || t.pg_name() == name)
        })
    }

    /// The scalar types Tessera supports (each also has an array type, but `unknown` and
    /// `regclass`).
    pub const SCALARS: [SqlType; 23] = [
        SqlType::Bool,
        SqlType::Bytea,
        SqlType::Name,
        SqlType::Int8,
        SqlType::Int2,
        SqlType::Int4,
        SqlType::Text,
        SqlType::Oid,
        SqlType::Json,
        SqlType::Float4,
        SqlType::Float8,
        SqlType::Unknown,
        SqlType::Char(1),
        SqlType::Varchar(None),
        SqlType::Date,
        SqlType::Time,
        SqlType::Timestamp,
        SqlType::TimestampTz,
        SqlType::Interval,
        SqlType::Numeric(None),
        SqlType::RegClass,
        SqlType::Uuid,
        SqlType::Jsonb,
    ];

    /// Returns the type for a PostgreSQL OID, if it is one Tessera supports.
    pub fn from_oid(oid: u32) -> Option<SqlType> {
        let scalar = Self::SCALARS;
        if let Some(t) = scalar.iter().find(|t| t.oid() == oid) {
            return Some(t.clone());
        }
        scalar
            .iter()
            .filter(|t| !matches!(t, SqlType::Unknown | SqlType::RegClass))
            .map(|t| SqlType::Array(Box::new(t.clone())))
            .find(|t| t.oid() == oid)
    }

    /// Returns the size PostgreSQL reports for the type (-1 for variable length).
    pub fn type_len(&self) -> i16 {
        match self {
            SqlType::Bool => 1,
            SqlType::Int2 => 2,
            SqlType::Int4 | SqlType::Float4 | SqlType::Date | SqlType::Oid | SqlType::RegClass => 4,
            SqlType::Int8
            | SqlType::Float8
            | SqlType::Time
            | SqlType::Timestamp
            | SqlType::TimestampTz => 8,
            SqlType::Interval | SqlType::Uuid => 16,
            SqlType::Name => 64,
            SqlType::Unknown => -2,
            _ => -1,
        }
    }

    /// Returns the type modifier PostgreSQL reports (`atttypmod`), or -1.
    pub fn type_modifier(&self) -> i32 {
        match self {
            SqlType::Varchar(Some(n)) | SqlType::Char(n) => *n as i32 + 4,
            SqlType::Numeric(Some((p, s))) => (((*p << 16) | *s) + 4) as i32,
            _ => -1,
        }
    }

    /// Returns the type's family.
    pub fn family(&self) -> TypeFamily {
        match self {
            SqlType::Bool => TypeFamily::Bool,
            SqlType::Int2 | SqlType::Int4 | SqlType::Int8 | SqlType::Oid | SqlType::RegClass => {
                TypeFamily::Integer
            }
            SqlType::Float4 | SqlType::Float8 => TypeFamily::Float,
            SqlType::Numeric(_) => TypeFamily::Numeric,
            SqlType::Text | SqlType::Varchar(_) | SqlType::Char(_) | SqlType::Name => {
                TypeFamily::String
            }
            SqlType::Bytea => TypeFamily::Bytes,
            SqlType::Date | SqlType::Time | SqlType::Timestamp | SqlType::TimestampTz => {
                TypeFamily::DateTime
            }
            SqlType::Interval => TypeFamily::Interval,
            SqlType::Uuid => TypeFamily::Uuid,
            SqlType::Jsonb | SqlType::Json => TypeFamily::Json,
            SqlType::Array(_) | SqlType::Int2Vector | SqlType::OidVector => TypeFamily::Array,
            SqlType::Unknown => TypeFamily::Unknown,
        }
    }

    /// Returns true for numeric types (integers, floats, numeric).
    pub fn is_numeric(&self) -> bool {
        matches!(
            self.family(),
            TypeFamily::Integer | TypeFamily::Float | TypeFamily::Numeric
        )
    }

    /// Returns true for string types.
    pub fn is_string(&self) -> bool {
        self.family() == TypeFamily::String
    }

    /// Returns the element type of an array type.
    pub fn element(&self) -> Option<&SqlType> {
        static INT2: SqlType = SqlType::Int2;
        static OID: SqlType = SqlType::Oid;
        match self {
            SqlType::Array(e) => Some(e),
            SqlType::Int2Vector => Some(&INT2),
            SqlType::OidVector => Some(&OID),
            _ => None,
        }
    }

    /// Returns the type without modifiers (varchar(10) -> varchar), for comparisons
    /// of type identity.
    pub fn base(&self) -> SqlType {
        match self {
            SqlType::Varchar(_) => SqlType::Varchar(None),
            SqlType::Char(_) => SqlType::Char(1),
            SqlType::Numeric(_) => SqlType::Numeric(None),
            SqlType::Array(e) => SqlType::Array(Box::new(e.base())),
            t => t.clone(),
        }
    }

    /// Returns the PostgreSQL name of the type, as `format_type` would print it.
    pub fn pg_name(&self) -> String {
        match self {
            SqlType::Bool => "boolean".into(),
            SqlType::Int2 => "smallint".into(),
            SqlType::Int4 => "integer".into(),
            SqlType::Int8 => "bigint".into(),
            SqlType::Float4 => "real".into(),
            SqlType::Float8 => "double precision".into(),
            SqlType::Numeric(None) => "numeric".into(),
            SqlType::Numeric(Some((p, s))) => format!("numeric({p},{s})"),
            SqlType::Text => "text".into(),
            SqlType::Varchar(None) => "character varying".into(),
            SqlType::Varchar(Some(n)) => format!("character varying({n})"),
            SqlType::Char(n) => format!("character({n})"),
            SqlType::Bytea => "bytea".into(),
            SqlType::Date => "date".into(),
            SqlType::Time => "time without time zone".into(),
            SqlType::Timestamp => "timestamp without time zone".into(),
            SqlType::TimestampTz => "timestamp with time zone".into(),
            SqlType::Interval => "interval".into(),
            SqlType::Uuid => "uuid".into(),
            SqlType::Jsonb => "jsonb".into(),
            SqlType::Json => "json".into(),
            SqlType::Array(e) => format!("{}[]", e.pg_name()),
            SqlType::Oid => "oid".into(),
            SqlType::Name => "name".into(),
            SqlType::RegClass => "regclass".into(),
            SqlType::Int2Vector => "int2vector".into(),
            SqlType::OidVector => "oidvector".into(),
            SqlType::Unknown => "unknown".into(),
        }
    }

    /// Returns the short internal name (`int4`, `varchar`, ...), as in `pg_type.typname`.
    pub fn typname(&self) -> String {
        match self {
            SqlType::Bool => "bool".into(),
            SqlType::Int2 => "int2".into(),
            SqlType::Int4 => "int4".into(),
            SqlType::Int8 => "int8".into(),
            SqlType::Float4 => "float4".into(),
            SqlType::Float8 => "float8".into(),
            SqlType::Numeric(_) => "numeric".into(),
            SqlType::Text => "text".into(),
            SqlType::Varchar(_) => "varchar".into(),
            SqlType::Char(_) => "bpchar".into(),
            SqlType::Bytea => "bytea".into(),
            SqlType::Date => "date".into(),
            SqlType::Time => "time".into(),
            SqlType::Timestamp => "timestamp".into(),
            SqlType::TimestampTz => "timestamptz".into(),
            SqlType::Interval => "interval".into(),
            SqlType::Uuid => "uuid".into(),
            SqlType::Jsonb => "jsonb".into(),
            SqlType::Json => "json".into(),
            SqlType::Array(e) => format!("_{}", e.typname()),
            SqlType::Oid => "oid".into(),
            SqlType::Name => "name".into(),
            SqlType::RegClass => "regclass".into(),
            SqlType::Int2Vector => "int2vector".into(),
            SqlType::OidVector => "oidvector".into(),
            SqlType::Unknown => "unknown".into(),
        }
    }
}

impl fmt::Display for SqlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.pg_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oids_round_trip() {
        for t in [
            SqlType::Bool,
            SqlType::Int8,
            SqlType::Text,
            SqlType::Numeric(None),
            SqlType::Jsonb,
            SqlType::Array(Box::new(SqlType::Int4)),
            SqlType::Array(Box::new(SqlType::Text)),
        ] {
            assert_eq!(SqlType::from_oid(t.oid()), Some(t.clone()), "{t}");
        }
        assert_eq!(SqlType::from_oid(99999), None);
    }

    #[test]
    fn type_modifiers_match_postgres() {
        assert_eq!(SqlType::Varchar(Some(10)).type_modifier(), 14);
        assert_eq!(
            SqlType::Numeric(Some((10, 2))).type_modifier(),
            (10 << 16 | 2) + 4
        );
        assert_eq!(SqlType::Text.type_modifier(), -1);
    }
}
