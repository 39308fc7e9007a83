//! Scalar functions: name resolution, result types and evaluation.

use std::sync::Arc;

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike, Utc};
use regex::{Regex, RegexBuilder};
use rust_decimal::Decimal;
use rust_decimal::prelude::{FromPrimitive, ToPrimitive};

use crate::catalog::Catalog;
use crate::error::{Error, ErrorKind, Result};
use crate::expr::Expr;
use crate::textio;
use crate::types::{SqlType, TypeFamily};
use crate::value::{Interval, Value, decimal_to_f64};

/// What functions may read about the session.
#[derive(Clone, Debug)]
pub struct SessionInfo {
    pub user: String,
    pub database: String,
    /// The transaction's start time (now(), current_timestamp).
    pub txn_time: DateTime<Utc>,
    pub statement_time: DateTime<Utc>,
    pub backend_pid: i32,
    pub catalog: Arc<Catalog>,
    pub db_id: u64,
    pub settings: Arc<Vec<(String, String)>>,
    /// Changes made by `set_config(name, value, is_local)`, applied by the session after
    /// the statement.
    pub setting_changes: Arc<std::sync::Mutex<Vec<(String, String, bool)>>>,
}

impl SessionInfo {
    /// Returns the session's schema search path.
    pub fn search_path(&self) -> Vec<String> {
        let setting = self
            .settings
            .iter()
            .find(|(k, _)| k == "search_path")
            .map_or("public", |(_, v)| v.as_str());
        crate::binder::parse_search_path(setting, &self.user)
    }
}

macro_rules! funcs {
    ($($variant:ident => $($name:literal)|+),* $(,)?) => {
        /// A scalar function.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Func { $($variant),* }

        impl Func {
            /// Looks a function up by (lower-case, unqualified) name.
            pub fn by_name(name: &str) -> Option<Func> {
                match name {
                    $($($name)|+ => Some(Func::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

funcs! {
    Length => "length" | "char_length" | "character_length",
    OctetLength => "octet_length",
    Lower => "lower",
    Upper => "upper",
    Initcap => "initcap",
    Substr => "substr" | "substring",
    Strpos => "strpos" | "position",
    Btrim => "btrim" | "trim",
    Ltrim => "ltrim",
    Rtrim => "rtrim",
    Lpad => "lpad",
    Rpad => "rpad",
    Replace => "replace",
    Repeat => "repeat",
    Reverse => "reverse",
    Left => "left",
    Right => "right",
    SplitPart => "split_part",
    Concat => "concat",
    ConcatWs => "concat_ws",
    Md5 => "md5",
    Encode => "encode",
    Decode => "decode",
    Format => "format",
    WidthBucket => "width_bucket",
    ToHex => "to_hex",
    Ascii => "ascii",
    Chr => "chr",
    StartsWith => "starts_with",
    QuoteIdent => "quote_ident",
    QuoteLiteral => "quote_literal",
    RegexpReplace => "regexp_replace",
    Translate => "translate",
    Abs => "abs",
    Ceil => "ceil" | "ceiling",
    Floor => "floor",
    Round => "round",
    Trunc => "trunc",
    Sqrt => "sqrt",
    Cbrt => "cbrt",
    Power => "power" | "pow",
    Exp => "exp",
    Ln => "ln",
    Log => "log" | "log10",
    Mod => "mod",
    Sign => "sign",
    Pi => "pi",
    Random => "random",
    Degrees => "degrees",
    Radians => "radians",
    Sin => "sin",
    Cos => "cos",
    Tan => "tan",
    Asin => "asin",
    Acos => "acos",
    Atan => "atan",
    Atan2 => "atan2",
    Div => "div",
    Gcd => "gcd",
    Lcm => "lcm",
    Coalesce => "coalesce",
    Nullif => "nullif",
    Greatest => "greatest",
    Least => "least",
    Now => "now" | "current_timestamp" | "transaction_timestamp" | "localtimestamp",
    StatementTimestamp => "statement_timestamp" | "clock_timestamp",
    CurrentDate => "current_date",
    CurrentTime => "current_time" | "localtime",
    DateTrunc => "date_trunc",
    DatePart => "date_part" | "extract",
    Age => "age",
    MakeDate => "make_date",
    MakeTimestamp => "make_timestamp",
    ToTimestamp => "to_timestamp",
    ToChar => "to_char",
    JsonbTypeof => "jsonb_typeof" | "json_typeof",
    JsonbArrayLength => "jsonb_array_length" | "json_array_length",
    JsonbBuildObject => "jsonb_build_object" | "json_build_object",
    JsonbBuildArray => "jsonb_build_array" | "json_build_array",
    ToJsonb => "to_jsonb" | "to_json",
    JsonbExtractPath => "jsonb_extract_path" | "json_extract_path",
    JsonbExtractPathText => "jsonb_extract_path_text" | "json_extract_path_text",
    JsonbPretty => "jsonb_pretty",
    ArrayLength => "array_length",
    Cardinality => "cardinality",
    ArrayAppend => "array_append",
    ArrayPrepend => "array_prepend",
    ArrayCat => "array_cat",
    ArrayPosition => "array_position",
    ArrayRemove => "array_remove",
    ArrayToString => "array_to_string",
    StringToArray => "string_to_array",
    ArrayUpper => "array_upper",
    ArrayLower => "array_lower",
    Version => "version",
    CurrentDatabase => "current_database" | "current_catalog",
    CurrentSchema => "current_schema",
    CurrentSchemas => "current_schemas",
    CurrentUser => "current_user" | "session_user" | "user" | "current_role",
    BackendPid => "pg_backend_pid",
    GenRandomUuid => "gen_random_uuid" | "uuid_generate_v4",
    CurrentSetting => "current_setting",
    SetConfig => "set_config",
    FormatType => "format_type",
    ToRegtype => "to_regtype",
    PgGetUserById => "pg_get_userbyid",
    PgTableIsVisible => "pg_table_is_visible" | "pg_type_is_visible" | "pg_function_is_visible" | "pg_collation_is_visible" | "pg_opclass_is_visible" | "pg_operator_is_visible" | "pg_ts_config_is_visible" | "pg_conversion_is_visible" | "pg_statistics_obj_is_visible",
    PgGetExpr => "pg_get_expr",
    PgGetIndexDef => "pg_get_indexdef",
    PgGetConstraintDef => "pg_get_constraintdef",
    ObjDescription => "obj_description" | "col_description" | "shobj_description",
    PgEncodingToChar => "pg_encoding_to_char",
    HasPrivilege => "has_table_privilege" | "has_schema_privilege" | "has_database_privilege" | "has_column_privilege" | "pg_has_role",
    PgGetSerialSequence => "pg_get_serial_sequence",
    PgIsInRecovery => "pg_is_in_recovery",
    PgRelationIsPublishable => "pg_relation_is_publishable",
    PgPartitionAncestors => "pg_partition_ancestors" | "pg_partition_root",
    PgRelationSize => "pg_relation_size" | "pg_total_relation_size" | "pg_table_size" | "pg_indexes_size" | "pg_database_size",
    PgSizePretty => "pg_size_pretty",
    PgGetViewDef => "pg_get_viewdef",
    PgTablespaceLocation => "pg_tablespace_location",
    TxidCurrent => "txid_current" | "pg_current_xact_id",
    PgPostmasterStartTime => "pg_postmaster_start_time",
    PgGetPartKeyDef => "pg_get_partkeydef" | "pg_get_statisticsobjdef_columns" | "pg_get_function_result" | "pg_get_function_arguments" | "pg_get_function_identity_arguments" | "pg_get_triggerdef" | "pg_get_ruledef",
}

impl Func {
    /// Returns true for functions whose result may differ between calls with the same
    /// arguments within a statement.
    pub fn is_volatile(self) -> bool {
        matches!(
            self,
            Func::Random | Func::GenRandomUuid | Func::StatementTimestamp | Func::SetConfig
        )
    }
}

fn wrong_args(name: &str, types: &[SqlType]) -> Error {
    let list: Vec<String> = types.iter().map(SqlType::pg_name).collect();
    Error::new(ErrorKind::UndefinedFunction, format!("function {name}({}) does not exist", list.join(", ")))
        .with_hint("No function matches the given name and argument types. You might need to add explicit type casts.")
}

/// Resolves a call: returns the result type and the types the arguments must be cast to.
/// Arguments of unknown type (string literals, parameters) are given the expected type.
pub fn resolve(func: Func, name: &str, args: &[SqlType]) -> Result<(SqlType, Vec<SqlType>)> {
    use SqlType as T;
    let n = args.len();
    let text = || vec![T::Text; n];
    let bad = || wrong_args(name, args);
    let numeric_arg = |t: &SqlType| {
        if t.family() == TypeFamily::Unknown {
            T::Float8
        } else {
            t.clone()
        }
    };
    let check_n = |lo: usize, hi: usize| if n < lo || n > hi { Err(bad()) } else { Ok(()) };
    Ok(match func {
        Func::Length | Func::OctetLength | Func::Ascii => {
            check_n(1, 1)?;
            if args[0].family() == TypeFamily::Bytes {
                (T::Int4, vec![T::Bytea])
            } else {
                (T::Int4, text())
            }
        }
        Func::Md5 if n == 1 && args[0].family() == TypeFamily::Bytes => (T::Text, vec![T::Bytea]),
        Func::Encode => {
            check_n(2, 2)?;
            (T::Text, vec![T::Bytea, T::Text])
        }
        Func::Decode => {
            check_n(2, 2)?;
            (T::Bytea, vec![T::Text, T::Text])
        }
        // A text first argument (the format or the separator), then any values.
        Func::Format | Func::ConcatWs => {
            if n == 0 {
                return Err(bad());
            }
            let mut a: Vec<SqlType> = args
                .iter()
                .map(|t| if *t == T::Unknown { T::Text } else { t.clone() })
                .collect();
            a[0] = T::Text;
            (T::Text, a)
        }
        Func::WidthBucket => {
            check_n(4, 4)?;
            let t = if args[..3].iter().all(|t| t.family() == TypeFamily::Float) {
                T::Float8
            } else {
                T::Numeric(None)
            };
            (T::Int4, vec![t.clone(), t.clone(), t, T::Int4])
        }
        Func::Lower
        | Func::Upper
        | Func::Initcap
        | Func::Reverse
        | Func::Md5
        | Func::QuoteIdent
        | Func::QuoteLiteral => {
            check_n(1, 1)?;
            (T::Text, text())
        }
        Func::Substr => {
            check_n(2, 3)?;
            let bytes = args[0].family() == TypeFamily::Bytes;
            let mut a = vec![if bytes { T::Bytea } else { T::Text }, T::Int4];
            if n == 3 {
                a.push(T::Int4);
            }
            (if bytes { T::Bytea } else { T::Text }, a)
        }
        Func::Strpos | Func::StartsWith => {
            check_n(2, 2)?;
            (
                if func == Func::Strpos {
                    T::Int4
                } else {
                    T::Bool
                },
                text(),
            )
        }
        Func::Btrim | Func::Ltrim | Func::Rtrim => {
            check_n(1, 2)?;
            (T::Text, text())
        }
        Func::Lpad | Func::Rpad => {
            check_n(2, 3)?;
            let mut a = vec![T::Text, T::Int4];
            if n == 3 {
                a.push(T::Text);
            }
            (T::Text, a)
        }
        Func::Replace | Func::Translate => {
            check_n(3, 3)?;
            (T::Text, text())
        }
        Func::RegexpReplace => {
            check_n(3, 4)?;
            (T::Text, text())
        }
        Func::Repeat | Func::Left | Func::Right => {
            check_n(2, 2)?;
            (T::Text, vec![T::Text, T::Int4])
        }
        Func::SplitPart => {
            check_n(3, 3)?;
            (T::Text, vec![T::Text, T::Text, T::Int4])
        }
        Func::Concat => (
            T::Text,
            args.iter()
                .map(|t| if *t == T::Unknown { T::Text } else { t.clone() })
                .collect(),
        ),
        Func::ToHex => {
            check_n(1, 1)?;
            (T::Text, vec![T::Int8])
        }
        Func::Chr => {
            check_n(1, 1)?;
            (T::Text, vec![T::Int4])
        }
        Func::Abs | Func::Ceil | Func::Floor | Func::Sign => {
            check_n(1, 1)?;
            let t = numeric_arg(&args[0]);
            if !t.is_numeric() {
                return Err(bad());
            }
            let result = match (func, &t) {
                (Func::Ceil | Func::Floor, t) if t.family() == TypeFamily::Integer => T::Float8,
                (_, T::Numeric(_)) => T::Numeric(None),
                _ => t.clone(),
            };
            let result = if matches!(func, Func::Ceil | Func::Floor)
                && result == T::Float8
                && args[0].family() == TypeFamily::Integer
            {
                T::Float8
            } else {
                result
            };
            (result, vec![t])
        }
        Func::Round | Func::Trunc => {
            check_n(1, 2)?;
            let t = numeric_arg(&args[0]);
            if !t.is_numeric() {
                return Err(bad());
            }
            if n == 2 {
                (T::Numeric(None), vec![T::Numeric(None), T::Int4])
            } else if t.family() == TypeFamily::Numeric {
                (T::Numeric(None), vec![t])
            } else {
                (T::Float8, vec![T::Float8])
            }
        }
        Func::Sqrt
        | Func::Cbrt
        | Func::Exp
        | Func::Ln
        | Func::Degrees
        | Func::Radians
        | Func::Sin
        | Func::Cos
        | Func::Tan
        | Func::Asin
        | Func::Acos
        | Func::Atan => {
            check_n(1, 1)?;
            if args[0].family() == TypeFamily::Numeric
                && matches!(func, Func::Sqrt | Func::Exp | Func::Ln)
            {
                (T::Numeric(None), vec![T::Numeric(None)])
            } else {
                (T::Float8, vec![T::Float8])
            }
        }
        Func::Log => {
            check_n(1, 2)?;
            // log(b, x) exists only for numerics.
            if n == 2 || args.iter().any(|t| t.family() == TypeFamily::Numeric) {
                (T::Numeric(None), vec![T::Numeric(None); n])
            } else {
                (T::Float8, vec![T::Float8; n])
            }
        }
        Func::Power | Func::Atan2 => {
            check_n(2, 2)?;
            if func == Func::Power
                && args.iter().any(|t| t.family() == TypeFamily::Numeric)
                && !args.iter().any(|t| t.family() == TypeFamily::Float)
            {
                (T::Numeric(None), vec![T::Numeric(None); 2])
            } else {
                (T::Float8, vec![T::Float8; 2])
            }
        }
        Func::Mod | Func::Div | Func::Gcd | Func::Lcm => {
            check_n(2, 2)?;
            let t = crate::ops::numeric_common(&numeric_arg(&args[0]), &numeric_arg(&args[1]));
            let t = if t.family() == TypeFamily::Float {
                T::Numeric(None)
            } else {
                t
            };
            (t.clone(), vec![t.clone(), t])
        }
        Func::Pi => {
            check_n(0, 0)?;
            (T::Float8, vec![])
        }
        Func::Random => {
            check_n(0, 0)?;
            (T::Float8, vec![])
        }
        Func::Coalesce | Func::Greatest | Func::Least => {
            if n == 0 {
                return Err(bad());
            }
            let t = common_type(args).ok_or_else(|| {
                Error::new(
                    ErrorKind::DatatypeMismatch,
                    format!("{} types cannot be matched", name.to_uppercase()),
                )
            })?;
            (t.clone(), vec![t; n])
        }
        Func::Nullif => {
            check_n(2, 2)?;
            let t = common_type(args).ok_or_else(bad)?;
            (t.clone(), vec![t; 2])
        }
        Func::Now | Func::StatementTimestamp => (T::TimestampTz, vec![]),
        Func::CurrentDate => (T::Date, vec![]),
        Func::CurrentTime => (T::Time, vec![]),
        Func::DateTrunc => {
            check_n(2, 2)?;
            let t = match &args[1] {
                T::Unknown | T::Text => T::TimestampTz,
                T::Date => T::Timestamp,
                t => t.clone(),
            };
            (t.clone(), vec![T::Text, t])
        }
        Func::DatePart => {
            check_n(2, 2)?;
            let t = if args[1] == T::Unknown {
                T::TimestampTz
            } else {
                args[1].clone()
            };
            (T::Float8, vec![T::Text, t])
        }
        Func::Age => {
            check_n(1, 2)?;
            let t = if args[0] == T::Timestamp {
                T::Timestamp
            } else {
                T::TimestampTz
            };
            (T::Interval, vec![t; n])
        }
        Func::MakeDate => {
            check_n(3, 3)?;
            (T::Date, vec![T::Int4; 3])
        }
        Func::MakeTimestamp => {
            check_n(6, 6)?;
            (
                T::Timestamp,
                vec![T::Int4, T::Int4, T::Int4, T::Int4, T::Int4, T::Float8],
            )
        }
        Func::ToTimestamp => {
            check_n(1, 1)?;
            (T::TimestampTz, vec![T::Float8])
        }
        Func::ToChar => {
            check_n(2, 2)?;
            let t = if args[0] == T::Unknown {
                T::TimestampTz
            } else {
                args[0].clone()
            };
            (T::Text, vec![t, T::Text])
        }
        Func::JsonbTypeof | Func::JsonbPretty => {
            check_n(1, 1)?;
            (T::Text, vec![T::Jsonb])
        }
        Func::JsonbArrayLength => {
            check_n(1, 1)?;
            (T::Int4, vec![T::Jsonb])
        }
        Func::JsonbBuildObject | Func::JsonbBuildArray => (
            T::Jsonb,
            args.iter()
                .map(|t| if *t == T::Unknown { T::Text } else { t.clone() })
                .collect(),
        ),
        Func::ToJsonb => {
            check_n(1, 1)?;
            (
                T::Jsonb,
                vec![if args[0] == T::Unknown {
                    T::Text
                } else {
                    args[0].clone()
                }],
            )
        }
        Func::JsonbExtractPath | Func::JsonbExtractPathText => {
            if n == 0 {
                return Err(bad());
            }
            let mut a = vec![T::Text; n];
            a[0] = T::Jsonb;
            (
                if func == Func::JsonbExtractPath {
                    T::Jsonb
                } else {
                    T::Text
                },
                a,
            )
        }
        Func::ArrayLength | Func::ArrayUpper | Func::ArrayLower => {
            check_n(2, 2)?;
            (T::Int4, vec![args[0].clone(), T::Int4])
        }
        Func::Cardinality => {
            check_n(1, 1)?;
            (T::Int4, vec![args[0].clone()])
        }
        Func::ArrayAppend | Func::ArrayRemove | Func::ArrayPosition => {
            check_n(2, 2)?;
            let arr = args[0].clone();
            let elem = arr.element().cloned().ok_or_else(bad)?;
            let ret = if func == Func::ArrayPosition {
                T::Int4
            } else {
                arr.clone()
            };
            (ret, vec![arr, elem])
        }
        Func::ArrayPrepend => {
            check_n(2, 2)?;
            let arr = args[1].clone();
            let elem = arr.element().cloned().ok_or_else(bad)?;
            (arr.clone(), vec![elem, arr])
        }
        Func::ArrayCat => {
            check_n(2, 2)?;
            (args[0].clone(), vec![args[0].clone(), args[0].clone()])
        }
        Func::ArrayToString => {
            check_n(2, 3)?;
            let mut a = vec![args[0].clone(), T::Text];
            if n == 3 {
                a.push(T::Text);
            }
            (T::Text, a)
        }
        Func::StringToArray => {
            check_n(2, 3)?;
            (T::Array(Box::new(T::Text)), text())
        }
        Func::Version | Func::CurrentDatabase | Func::CurrentSchema | Func::CurrentUser => {
            (T::Text, vec![])
        }
        Func::CurrentSchemas => (T::Array(Box::new(T::Name)), vec![T::Bool; n]),
        Func::BackendPid => (T::Int4, vec![]),
        Func::GenRandomUuid => (T::Uuid, vec![]),
        Func::CurrentSetting => {
            check_n(1, 2)?;
            let mut a = vec![T::Text];
            if n == 2 {
                a.push(T::Bool);
            }
            (T::Text, a)
        }
        Func::FormatType => (T::Text, vec![T::Oid, T::Int4][..n.min(2)].to_vec()),
        Func::ToRegtype => (T::Oid, vec![T::Text]),
        Func::PgGetUserById => (T::Name, vec![T::Oid]),
        Func::PgTableIsVisible => (T::Bool, vec![T::Oid]),
        Func::PgGetExpr => (
            T::Text,
            args.iter()
                .map(|t| if *t == T::Unknown { T::Text } else { t.clone() })
                .collect(),
        ),
        Func::PgGetIndexDef | Func::PgGetConstraintDef | Func::PgGetViewDef => (
            T::Text,
            args.iter()
                .map(|t| if *t == T::Unknown { T::Oid } else { t.clone() })
                .collect(),
        ),
        Func::ObjDescription => (
            T::Text,
            args.iter()
                .map(|t| if *t == T::Unknown { T::Text } else { t.clone() })
                .collect(),
        ),
        Func::PgEncodingToChar => (T::Name, vec![T::Int4]),
        Func::HasPrivilege => (
            T::Bool,
            args.iter()
                .map(|t| if *t == T::Unknown { T::Text } else { t.clone() })
                .collect(),
        ),
        Func::PgGetSerialSequence => (T::Text, vec![T::Text, T::Text]),
        Func::PgIsInRecovery => (T::Bool, vec![]),
        Func::SetConfig => {
            check_n(3, 3)?;
            (T::Text, vec![T::Text, T::Text, T::Bool])
        }
        Func::PgRelationIsPublishable => (T::Bool, vec![T::Oid]),
        // Set-returning in PostgreSQL; a table that is not partitioned is its own only ancestor.
        Func::PgPartitionAncestors => (T::RegClass, vec![T::RegClass]),
        Func::PgRelationSize => (
            T::Int8,
            args.iter()
                .map(|t| if *t == T::Unknown { T::Oid } else { t.clone() })
                .collect(),
        ),
        Func::PgSizePretty => (T::Text, vec![T::Int8]),
        Func::PgTablespaceLocation => (T::Text, vec![T::Oid]),
        Func::TxidCurrent => (T::Int8, vec![]),
        Func::PgPostmasterStartTime => (T::TimestampTz, vec![]),
        Func::PgGetPartKeyDef => (T::Text, vec![T::Oid]),
    })
}

/// Returns the type that values of all `types` can be converted to (for COALESCE, CASE,
/// UNION...), or `None` if they do not mix.
pub fn common_type(types: &[SqlType]) -> Option<SqlType> {
    let mut known = types.iter().filter(|t| **t != SqlType::Unknown);
    let Some(first) = known.next() else {
        return Some(SqlType::Text);
    };
    let mut acc = first.clone();
    for t in known {
        if *t == acc || t.base() == acc.base() {
            if let (SqlType::Varchar(_), SqlType::Varchar(_))
            | (SqlType::Char(_), _)
            | (_, SqlType::Char(_)) = (&acc, t)
                && acc.base() != t.base()
            {
                acc = SqlType::Text;
            }
            continue;
        }
        acc = match (acc.family(), t.family()) {
            (a, b) if a == b && a == TypeFamily::String => SqlType::Text,
            (
                TypeFamily::Integer | TypeFamily::Float | TypeFamily::Numeric,
                TypeFamily::Integer | TypeFamily::Float | TypeFamily::Numeric,
            ) => crate::ops::numeric_common(&acc, t),
            (TypeFamily::DateTime, TypeFamily::DateTime) => {
                if matches!(acc, SqlType::TimestampTz) || matches!(t, SqlType::TimestampTz) {
                    SqlType::TimestampTz
                } else if matches!(acc, SqlType::Time) || matches!(t, SqlType::Time) {
                    return None;
                } else {
                    SqlType::Timestamp
                }
            }
            (TypeFamily::Json, TypeFamily::Json) => SqlType::Jsonb,
            _ => return None,
        };
    }
    Some(acc)
}

fn text_arg(v: &Value) -> &str {
    match v {
        Value::Text(s) => s,
        _ => "",
    }
}

fn int_arg(v: &Value) -> i64 {
    match v {
        Value::Int(i) => *i,
        Value::Float(f) => *f as i64,
        Value::Numeric(d) => d.to_i64().unwrap_or(0),
        _ => 0,
    }
}

fn float_arg(v: &Value) -> f64 {
    match v {
        Value::Int(i) => *i as f64,
        Value::Float(f) => *f,
        Value::Numeric(d) => decimal_to_f64(d),
        _ => f64::NAN,
    }
}

fn dec_arg(v: &Value) -> Decimal {
    match v {
        Value::Int(i) => Decimal::from(*i),
        Value::Numeric(d) => *d,
        Value::Float(f) => Decimal::from_f64(*f).unwrap_or_default(),
        _ => Decimal::ZERO,
    }
}

fn invalid_arg(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidParameterValue, msg)
}

/// Calls a function on evaluated arguments. `exprs` are the argument expressions (for
/// their types); `ty` is the resolved result type.
pub fn call(
    func: Func,
    args: Vec<Value>,
    exprs: &[Expr],
    ty: &SqlType,
    s: &SessionInfo,
) -> Result<Value> {
    // NULL in, NULL out, for every function that is not explicitly NULL-aware.
    let null_aware = matches!(
        func,
        Func::Coalesce
            | Func::Greatest
            | Func::Least
            | Func::Nullif
            | Func::Concat
            | Func::ConcatWs
            | Func::Format
            | Func::JsonbBuildObject
            | Func::JsonbBuildArray
            | Func::ArrayAppend
            | Func::ArrayPrepend
            | Func::ArrayCat
            | Func::ArrayRemove
            | Func::ArrayPosition
            | Func::ArrayToString
            | Func::ObjDescription
            | Func::FormatType
            | Func::CurrentSetting
            | Func::ToJsonb
    );
    if !null_aware && args.iter().any(Value::is_null) {
        return Ok(Value::Null);
    }
    let a = &args;
    Ok(match func {
        Func::Length => match &a[0] {
            Value::Bytes(b) => Value::Int(b.len() as i64),
            v => Value::Int(text_arg(v).chars().count() as i64),
        },
        Func::OctetLength => match &a[0] {
            Value::Bytes(b) => Value::Int(b.len() as i64),
            v => Value::Int(text_arg(v).len() as i64),
        },
        Func::Lower => Value::Text(text_arg(&a[0]).to_lowercase()),
        Func::Upper => Value::Text(text_arg(&a[0]).to_uppercase()),
        Func::Initcap => {
            let mut out = String::new();
            let mut start = true;
            for c in text_arg(&a[0]).chars() {
                if c.is_alphanumeric() {
                    if start {
                        out.extend(c.to_uppercase());
                    } else {
                        out.extend(c.to_lowercase());
                    }
                    start = false;
                } else {
                    out.push(c);
                    start = true;
                }
            }
            Value::Text(out)
        }
        Func::Substr => {
            let chars: Vec<char> = text_arg(&a[0]).chars().collect();
            let start = int_arg(&a[1]);
            let (from, to) = if a.len() == 3 {
                let len = int_arg(&a[2]);
                if len < 0 {
                    return Err(Error::new(
                        ErrorKind::SubstringError,
                        "negative substring length not allowed",
                    ));
                }
                (start, start.saturating_add(len))
            } else {
                (start, i64::MAX)
            };
            let from = (from.max(1) - 1) as usize;
            if let Value::Bytes(b) = &a[0] {
                let to = (to.max(1) - 1).min(b.len() as i64) as usize;
                return Ok(Value::Bytes(if from < to {
                    b[from..to].to_vec()
                } else {
                    Vec::new()
                }));
            }
            let to = (to.max(1) - 1).min(chars.len() as i64) as usize;
            Value::Text(if from < to {
                chars[from..to].iter().collect()
            } else {
                String::new()
            })
        }
        Func::Strpos => {
            let (h, n) = (text_arg(&a[0]), text_arg(&a[1]));
            Value::Int(
                h.find(n)
                    .map_or(0, |byte| h[..byte].chars().count() as i64 + 1),
            )
        }
        Func::Btrim | Func::Ltrim | Func::Rtrim => {
            let s = text_arg(&a[0]);
            let set: Vec<char> = if a.len() == 2 {
                text_arg(&a[1]).chars().collect()
            } else {
                vec![' ']
            };
            let t = match func {
                Func::Btrim => s.trim_matches(set.as_slice()),
                Func::Ltrim => s.trim_start_matches(set.as_slice()),
                _ => s.trim_end_matches(set.as_slice()),
            };
            Value::Text(t.to_string())
        }
        Func::Lpad | Func::Rpad => {
            let s: Vec<char> = text_arg(&a[0]).chars().collect();
            let len = int_arg(&a[1]).max(0) as usize;
            let fill: Vec<char> = if a.len() == 3 {
                text_arg(&a[2]).chars().collect()
            } else {
                vec![' ']
            };
            if s.len() >= len || fill.is_empty() {
                Value::Text(s[..len.min(s.len())].iter().collect())
            } else {
                let pad: String = fill.iter().cycle().take(len - s.len()).collect();
                let body: String = s.iter().collect();
                Value::Text(if func == Func::Lpad {
                    pad + &body
                } else {
                    body + &pad
                })
            }
        }
        Func::Replace => {
            let from = text_arg(&a[1]);
            if from.is_empty() {
                a[0].clone()
            } else {
                Value::Text(text_arg(&a[0]).replace(from, text_arg(&a[2])))
            }
        }
        Func::Translate => {
            let from: Vec<char> = text_arg(&a[1]).chars().collect();
            let to: Vec<char> = text_arg(&a[2]).chars().collect();
            Value::Text(
                text_arg(&a[0])
                    .chars()
                    .filter_map(|c| match from.iter().position(|f| *f == c) {
                        Some(i) => to.get(i).copied(),
                        None => Some(c),
                    })
                    .collect(),
            )
        }
        Func::RegexpReplace => {
            let flags = if a.len() == 4 {
                text_arg(&a[3]).to_string()
            } else {
                String::new()
            };
            let re = compile_regex(text_arg(&a[1]), flags.contains('i'))?;
            let repl = text_arg(&a[2]).replace("\\&", "${0}");
            let repl = regex::Regex::new(r"\\(\d)").map_or(repl.clone(), |r| {
                r.replace_all(&repl, "$${$1}").into_owned()
            });
            let s = text_arg(&a[0]);
            Value::Text(
                if flags.contains('g') {
                    re.replace_all(s, repl.as_str())
                } else {
                    re.replace(s, repl.as_str())
                }
                .into_owned(),
            )
        }
        Func::Repeat => Value::Text(text_arg(&a[0]).repeat(int_arg(&a[1]).max(0) as usize)),
        Func::Reverse => Value::Text(text_arg(&a[0]).chars().rev().collect()),
        Func::Left | Func::Right => {
            let chars: Vec<char> = text_arg(&a[0]).chars().collect();
            let n = int_arg(&a[1]);
            let len = chars.len() as i64;
            let k = if n >= 0 { n.min(len) } else { (len + n).max(0) } as usize;
            Value::Text(if func == Func::Left {
                chars[..k].iter().collect()
            } else {
                chars[chars.len() - k..].iter().collect()
            })
        }
        Func::SplitPart => {
            let n = int_arg(&a[2]);
            if n == 0 {
                return Err(invalid_arg("field position must not be zero"));
            }
            let parts: Vec<&str> = if text_arg(&a[1]).is_empty() {
                vec![text_arg(&a[0])]
            } else {
                text_arg(&a[0]).split(text_arg(&a[1])).collect()
            };
            let idx = if n > 0 { n - 1 } else { parts.len() as i64 + n };
            Value::Text(
                usize::try_from(idx)
                    .ok()
                    .and_then(|i| parts.get(i))
                    .map_or(String::new(), |s| s.to_string()),
            )
        }
        Func::Concat => Value::Text(
            a.iter()
                .zip(exprs)
                .filter_map(|(v, e)| textio::to_text(v, &e.ty()))
                .collect::<Vec<_>>()
                .concat(),
        ),
        Func::ConcatWs => {
            let Value::Text(sep) = &a[0] else {
                return Ok(Value::Null);
            };
            let parts: Vec<String> = a[1..]
                .iter()
                .zip(&exprs[1..])
                .filter_map(|(v, e)| textio::to_text(v, &e.ty()))
                .collect();
            Value::Text(parts.join(sep))
        }
        Func::Md5 => match &a[0] {
            Value::Bytes(b) => Value::Text(md5_hex(b)),
            v => Value::Text(md5_hex(text_arg(v).as_bytes())),
        },
        Func::Encode => {
            let Value::Bytes(b) = &a[0] else {
                return Ok(Value::Null);
            };
            Value::Text(match text_arg(&a[1]).to_ascii_lowercase().as_str() {
                "hex" => hex::encode(b),
                "base64" => {
                    use base64::Engine;
                    // PostgreSQL wraps base64 output at 76 characters.
                    let s = base64::engine::general_purpose::STANDARD.encode(b);
                    s.as_bytes()
                        .chunks(76)
                        .map(|c| String::from_utf8_lossy(c).into_owned())
                        .collect::<Vec<_>>()
                        .join("\n")
                }
                "escape" => bytea_escape(b),
                other => return Err(invalid_arg(format!("unrecognized encoding: \"{other}\""))),
            })
        }
        Func::Decode => {
            let s = text_arg(&a[0]);
            Value::Bytes(match text_arg(&a[1]).to_ascii_lowercase().as_str() {
                "hex" => hex::decode(s.trim())
                    .map_err(|e| invalid_arg(format!("invalid hexadecimal data: {e}")))?,
                "base64" => {
                    use base64::Engine;
                    let clean: String = s.chars().filter(|c| !c.is_whitespace()).collect();
                    base64::engine::general_purpose::STANDARD
                        .decode(clean)
                        .map_err(|e| invalid_arg(format!("invalid base64 data: {e}")))?
                }
                "escape" => textio::from_text(s, &SqlType::Bytea).map(|v| match v {
                    Value::Bytes(b) => b,
                    _ => Vec::new(),
                })?,
                other => return Err(invalid_arg(format!("unrecognized encoding: \"{other}\""))),
            })
        }
        Func::Format => match &a[0] {
            Value::Null => Value::Null,
            f => Value::Text(format_sql(text_arg(f), &a[1..], &exprs[1..])?),
        },
        Func::WidthBucket => {
            let (x, lo, hi) = (float_arg(&a[0]), float_arg(&a[1]), float_arg(&a[2]));
            let count = int_arg(&a[3]);
            if count <= 0 {
                return Err(Error::new(
                    ErrorKind::InvalidArgumentForWidthBucket,
                    "count must be greater than zero",
                ));
            }
            if lo == hi {
                return Err(Error::new(
                    ErrorKind::InvalidArgumentForWidthBucket,
                    "lower bound cannot equal upper bound",
                ));
            }
            let b = if lo < hi {
                if x < lo {
                    0
                } else if x >= hi {
                    count + 1
                } else {
                    ((x - lo) / (hi - lo) * count as f64).floor() as i64 + 1
                }
            } else if x > lo {
                0
            } else if x <= hi {
                count + 1
            } else {
                ((lo - x) / (lo - hi) * count as f64).floor() as i64 + 1
            };
            Value::Int(b)
        }
        Func::ToHex => Value::Text(format!("{:x}", int_arg(&a[0]))),
        Func::Ascii => Value::Int(text_arg(&a[0]).chars().next().map_or(0, |c| c as i64)),
        Func::Chr => {
            let c = char::from_u32(int_arg(&a[0]) as u32)
                .ok_or_else(|| invalid_arg("requested character too large for encoding"))?;
            Value::Text(c.to_string())
        }
        Func::StartsWith => Value::Bool(text_arg(&a[0]).starts_with(text_arg(&a[1]))),
        Func::QuoteIdent => Value::Text(quote_ident(text_arg(&a[0]))),
        Func::QuoteLiteral => Value::Text(quote_literal(text_arg(&a[0]))),
        Func::Abs => match &a[0] {
            Value::Int(i) => {
                let v = i.checked_abs().ok_or_else(|| {
                    Error::new(ErrorKind::NumericOutOfRange, "integer out of range")
                })?;
                crate::cast::check_int_range(v, ty).map_err(|_| {
                    Error::new(
                        ErrorKind::NumericOutOfRange,
                        format!("{} out of range", ty.pg_name()),
                    )
                })?;
                Value::Int(v)
            }
            Value::Float(f) => Value::Float(f.abs()),
            Value::Numeric(d) => Value::Numeric(d.abs()),
            _ => Value::Null,
        },
        Func::Ceil | Func::Floor => match &a[0] {
            Value::Numeric(d) => {
                let mut r = if func == Func::Ceil {
                    d.ceil()
                } else {
                    d.floor()
                };
                r.rescale(0);
                Value::Numeric(r)
            }
            Value::Int(i) if ty.family() == TypeFamily::Integer => Value::Int(*i),
            v => {
                let f = float_arg(v);
                Value::Float(if func == Func::Ceil {
                    f.ceil()
                } else {
                    f.floor()
                })
            }
        },
        Func::Sign => match &a[0] {
            Value::Int(i) => Value::Int(i.signum()),
            Value::Numeric(d) => Value::Numeric(if d.is_zero() {
                Decimal::ZERO
            } else if d.is_sign_negative() {
                Decimal::NEGATIVE_ONE
            } else {
                Decimal::ONE
            }),
            v => {
                let f = float_arg(v);
                Value::Float(if f == 0.0 { 0.0 } else { f.signum() })
            }
        },
        Func::Round | Func::Trunc => {
            if a.len() == 2 || matches!(a[0], Value::Numeric(_)) {
                let d = dec_arg(&a[0]);
                let places = if a.len() == 2 { int_arg(&a[1]) } else { 0 };
                let r = if places >= 0 {
                    let p = places.min(28) as u32;
                    let mut r = if func == Func::Round {
                        d.round_dp_with_strategy(
                            p,
                            rust_decimal::RoundingStrategy::MidpointAwayFromZero,
                        )
                    } else {
                        d.trunc_with_scale(p)
                    };
                    // The result has exactly `places` decimals, as in PostgreSQL.
                    if r.scale() < p {
                        r.rescale(p);
                    }
                    r
                } else {
                    let f = Decimal::from(10i64.pow((-places).min(18) as u32));
                    let q = d / f;
                    let q = if func == Func::Round {
                        q.round_dp_with_strategy(
                            0,
                            rust_decimal::RoundingStrategy::MidpointAwayFromZero,
                        )
                    } else {
                        q.trunc()
                    };
                    q * f
                };
                Value::Numeric(r)
            } else {
                let f = float_arg(&a[0]);
                Value::Float(if func == Func::Round {
                    f.round_ties_even()
                } else {
                    f.trunc()
                })
            }
        }
        Func::Sqrt
        | Func::Cbrt
        | Func::Exp
        | Func::Ln
        | Func::Log
        | Func::Degrees
        | Func::Radians
        | Func::Sin
        | Func::Cos
        | Func::Tan
        | Func::Asin
        | Func::Acos
        | Func::Atan => {
            if ty.family() == TypeFamily::Numeric {
                return numeric_math(func, a);
            }
            let x = float_arg(&a[0]);
            let v = match func {
                Func::Sqrt => {
                    if x < 0.0 {
                        return Err(Error::new(
                            ErrorKind::InvalidArgumentForPower,
                            "cannot take square root of a negative number",
                        ));
                    }
                    x.sqrt()
                }
                Func::Cbrt => x.cbrt(),
                Func::Exp => x.exp(),
                Func::Ln | Func::Log => {
                    if a.len() == 2 {
                        float_arg(&a[1]).ln() / x.ln()
                    } else {
                        if x == 0.0 {
                            return Err(Error::new(
                                ErrorKind::InvalidArgumentForLog,
                                "cannot take logarithm of zero",
                            ));
                        }
                        if x < 0.0 {
                            return Err(Error::new(
                                ErrorKind::InvalidArgumentForLog,
                                "cannot take logarithm of a negative number",
                            ));
                        }
                        if func == Func::Ln { x.ln() } else { x.log10() }
                    }
                }
                Func::Degrees => x.to_degrees(),
                Func::Radians => x.to_radians(),
                Func::Sin => x.sin(),
                Func::Cos => x.cos(),
                Func::Tan => x.tan(),
                Func::Asin => x.asin(),
                Func::Acos => x.acos(),
                _ => x.atan(),
            };
            if v.is_infinite() && x.is_finite() {
                return Err(Error::new(
                    ErrorKind::NumericOutOfRange,
                    "value out of range: overflow",
                ));
            }
            Value::Float(v)
        }
        Func::Power => {
            if ty.family() == TypeFamily::Numeric {
                return crate::ops::binary(
                    crate::ops::BinOp::Pow,
                    a[0].clone(),
                    a[1].clone(),
                    &SqlType::Numeric(None),
                    &SqlType::Numeric(None),
                    ty,
                );
            }
            crate::ops::binary(
                crate::ops::BinOp::Pow,
                Value::Float(float_arg(&a[0])),
                Value::Float(float_arg(&a[1])),
                &SqlType::Float8,
                &SqlType::Float8,
                &SqlType::Float8,
            )?
        }
        Func::Atan2 => Value::Float(float_arg(&a[0]).atan2(float_arg(&a[1]))),
        Func::Mod => crate::ops::binary(
            crate::ops::BinOp::Mod,
            a[0].clone(),
            a[1].clone(),
            ty,
            ty,
            ty,
        )?,
        Func::Div => {
            let q = crate::ops::binary(
                crate::ops::BinOp::Div,
                a[0].clone(),
                a[1].clone(),
                ty,
                ty,
                ty,
            )?;
            match q {
                Value::Numeric(d) => Value::Numeric(d.trunc()),
                v => v,
            }
        }
        Func::Gcd | Func::Lcm => {
            let (x, y) = (int_arg(&a[0]).unsigned_abs(), int_arg(&a[1]).unsigned_abs());
            let g = gcd(x, y);
            let v = if func == Func::Gcd {
                g
            } else {
                x.checked_div(g).map_or(0, |q| q * y)
            };
            Value::Int(v as i64)
        }
        Func::Pi => Value::Float(std::f64::consts::PI),
        Func::Random => Value::Float(random_f64()),
        Func::Coalesce => a
            .iter()
            .find(|v| !v.is_null())
            .cloned()
            .unwrap_or(Value::Null),
        Func::Nullif => {
            if a[0].not_distinct(&a[1]) && !a[0].is_null() {
                Value::Null
            } else {
                a[0].clone()
            }
        }
        Func::Greatest | Func::Least => {
            let mut best: Option<&Value> = None;
            for v in a.iter().filter(|v| !v.is_null()) {
                best = match best {
                    None => Some(v),
                    Some(b) => {
                        let better = v.sort_cmp(b);
                        let take = if func == Func::Greatest {
                            better.is_gt()
                        } else {
                            better.is_lt()
                        };
                        Some(if take { v } else { b })
                    }
                };
            }
            best.cloned().unwrap_or(Value::Null)
        }
        Func::Now => Value::TimestampTz(s.txn_time),
        Func::StatementTimestamp => Value::TimestampTz(Utc::now()),
        Func::CurrentDate => Value::Date(s.txn_time.date_naive()),
        Func::CurrentTime => Value::Time(s.txn_time.time()),
        Func::DateTrunc => date_trunc(text_arg(&a[0]), &a[1])?,
        Func::DatePart => Value::Float(date_part(text_arg(&a[0]), &a[1])?),
        Func::Age => {
            let to_naive = |v: &Value| match v {
                Value::Timestamp(t) => *t,
                Value::TimestampTz(t) => t.naive_utc(),
                _ => NaiveDateTime::default(),
            };
            let (x, y) = if a.len() == 2 {
                (to_naive(&a[0]), to_naive(&a[1]))
            } else {
                (
                    s.txn_time.date_naive().and_time(NaiveTime::MIN),
                    to_naive(&a[0]),
                )
            };
            Value::Interval(age(x, y))
        }
        Func::MakeDate => Value::Date(
            NaiveDate::from_ymd_opt(
                int_arg(&a[0]) as i32,
                int_arg(&a[1]) as u32,
                int_arg(&a[2]) as u32,
            )
            .ok_or_else(|| {
                Error::new(ErrorKind::DatetimeOverflow, "date field value out of range")
            })?,
        ),
        Func::MakeTimestamp => {
            let d = NaiveDate::from_ymd_opt(
                int_arg(&a[0]) as i32,
                int_arg(&a[1]) as u32,
                int_arg(&a[2]) as u32,
            )
            .ok_or_else(|| {
                Error::new(ErrorKind::DatetimeOverflow, "date field value out of range")
            })?;
            let secs = float_arg(&a[5]);
            let t = NaiveTime::from_hms_micro_opt(
                int_arg(&a[3]) as u32,
                int_arg(&a[4]) as u32,
                secs.trunc() as u32,
                (secs.fract() * 1e6).round() as u32,
            )
            .ok_or_else(|| {
                Error::new(ErrorKind::DatetimeOverflow, "time field value out of range")
            })?;
            Value::Timestamp(d.and_time(t))
        }
        Func::ToTimestamp => {
            let secs = float_arg(&a[0]);
            let micros = (secs * 1e6).round() as i64;
            Value::TimestampTz(
                DateTime::from_timestamp_micros(micros).ok_or_else(|| {
                    Error::new(ErrorKind::DatetimeOverflow, "timestamp out of range")
                })?,
            )
        }
        Func::ToChar => Value::Text(to_char(&a[0], text_arg(&a[1]))?),
        Func::JsonbTypeof => match &a[0] {
            Value::Json(j) => Value::Text(
                match j.as_ref() {
                    serde_json::Value::Null => "null",
                    serde_json::Value::Bool(_) => "boolean",
                    serde_json::Value::Number(_) => "number",
                    serde_json::Value::String(_) => "string",
                    serde_json::Value::Array(_) => "array",
                    serde_json::Value::Object(_) => "object",
                }
                .into(),
            ),
            _ => Value::Null,
        },
        Func::JsonbArrayLength => match &a[0] {
            Value::Json(j) => match j.as_ref() {
                serde_json::Value::Array(items) => Value::Int(items.len() as i64),
                _ => return Err(invalid_arg("cannot get array length of a non-array")),
            },
            _ => Value::Null,
        },
        Func::JsonbPretty => match &a[0] {
            Value::Json(j) => {
                Value::Text(serde_json::to_string_pretty(j.as_ref()).unwrap_or_default())
            }
            _ => Value::Null,
        },
        Func::JsonbBuildObject => {
            if !a.len().is_multiple_of(2) {
                return Err(invalid_arg(
                    "argument list must have even number of elements",
                ));
            }
            let mut m = serde_json::Map::new();
            for (i, pair) in a.chunks(2).enumerate() {
                let key = textio::to_text(&pair[0], &exprs[2 * i].ty())
                    .ok_or_else(|| invalid_arg("argument 1: key must not be null"))?;
                m.insert(key, to_json(&pair[1], &exprs[2 * i + 1].ty()));
            }
            Value::Json(Box::new(serde_json::Value::Object(m)))
        }
        Func::JsonbBuildArray => Value::Json(Box::new(serde_json::Value::Array(
            a.iter()
                .zip(exprs)
                .map(|(v, e)| to_json(v, &e.ty()))
                .collect(),
        ))),
        Func::ToJsonb => {
            if a[0].is_null() {
                Value::Null
            } else {
                Value::Json(Box::new(to_json(&a[0], &exprs[0].ty())))
            }
        }
        Func::JsonbExtractPath | Func::JsonbExtractPathText => {
            let Value::Json(j) = &a[0] else {
                return Ok(Value::Null);
            };
            let mut cur: &serde_json::Value = j;
            for k in &a[1..] {
                let key = text_arg(k);
                let next = match cur {
                    serde_json::Value::Object(m) => m.get(key),
                    serde_json::Value::Array(items) => {
                        key.parse::<usize>().ok().and_then(|i| items.get(i))
                    }
                    _ => None,
                };
                match next {
                    Some(n) => cur = n,
                    None => return Ok(Value::Null),
                }
            }
            if func == Func::JsonbExtractPath {
                Value::Json(Box::new(cur.clone()))
            } else {
                crate::json::as_text(cur).map_or(Value::Null, Value::Text)
            }
        }
        Func::ArrayLength | Func::ArrayUpper => match &a[0] {
            Value::Array(items) if int_arg(&a[1]) == 1 && !items.is_empty() => {
                Value::Int(items.len() as i64)
            }
            _ => Value::Null,
        },
        Func::ArrayLower => match &a[0] {
            Value::Array(items) if int_arg(&a[1]) == 1 && !items.is_empty() => Value::Int(1),
            _ => Value::Null,
        },
        Func::Cardinality => match &a[0] {
            Value::Array(items) => Value::Int(items.len() as i64),
            _ => Value::Null,
        },
        Func::ArrayAppend => match (&a[0], &a[1]) {
            (Value::Array(items), x) => {
                let mut v = items.clone();
                v.push(x.clone());
                Value::Array(v)
            }
            (Value::Null, x) => Value::Array(vec![x.clone()]),
            _ => Value::Null,
        },
        Func::ArrayPrepend => match (&a[0], &a[1]) {
            (x, Value::Array(items)) => {
                let mut v = vec![x.clone()];
                v.extend(items.iter().cloned());
                Value::Array(v)
            }
            (x, Value::Null) => Value::Array(vec![x.clone()]),
            _ => Value::Null,
        },
        Func::ArrayCat => match (&a[0], &a[1]) {
            (Value::Array(x), Value::Array(y)) => {
                Value::Array(x.iter().chain(y).cloned().collect())
            }
            (Value::Null, y) => y.clone(),
            (x, Value::Null) => x.clone(),
            _ => Value::Null,
        },
        Func::ArrayRemove => match &a[0] {
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .filter(|x| !x.not_distinct(&a[1]))
                    .cloned()
                    .collect(),
            ),
            _ => Value::Null,
        },
        Func::ArrayPosition => match &a[0] {
            Value::Array(items) => items
                .iter()
                .position(|x| x.not_distinct(&a[1]))
                .map_or(Value::Null, |i| Value::Int(i as i64 + 1)),
            _ => Value::Null,
        },
        Func::ArrayToString => match &a[0] {
            Value::Array(items) => {
                let Value::Text(sep) = &a[1] else {
                    return Ok(Value::Null);
                };
                let elem = exprs[0].ty().element().cloned().unwrap_or(SqlType::Text);
                let null_as = a.get(2).and_then(|v| {
                    if let Value::Text(s) = v {
                        Some(s.clone())
                    } else {
                        None
                    }
                });
                let parts: Vec<String> = items
                    .iter()
                    .filter_map(|x| match textio::to_text(x, &elem) {
                        Some(s) => Some(s),
                        None => null_as.clone(),
                    })
                    .collect();
                Value::Text(parts.join(sep))
            }
            _ => Value::Null,
        },
        Func::StringToArray => {
            let (s, sep) = (text_arg(&a[0]), text_arg(&a[1]));
            let null_str = a.get(2).map(text_arg);
            let parts: Vec<Value> = if s.is_empty() {
                vec![]
            } else if sep.is_empty() {
                vec![Value::Text(s.to_string())]
            } else {
                s.split(sep)
                    .map(|p| {
                        if Some(p) == null_str {
                            Value::Null
                        } else {
                            Value::Text(p.to_string())
                        }
                    })
                    .collect()
            };
            Value::Array(parts)
        }
        Func::Version => Value::Text(format!(
            "PostgreSQL 15.0 (Tessera {}) on x86_64-pc-linux-gnu, compiled by rustc, 64-bit",
            env!("CARGO_PKG_VERSION")
        )),
        Func::CurrentDatabase => Value::Text(s.database.clone()),
        Func::CurrentSchema => Value::Text("public".into()),
        Func::CurrentSchemas => {
            let include_implicit = a.first().and_then(Value::as_bool).unwrap_or(false);
            let mut v = Vec::new();
            if include_implicit {
                v.push(Value::Text("pg_catalog".into()));
            }
            v.push(Value::Text("public".into()));
            Value::Array(v)
        }
        Func::CurrentUser => Value::Text(s.user.clone()),
        Func::BackendPid => Value::Int(i64::from(s.backend_pid)),
        Func::GenRandomUuid => {
            let mut u = random_u128();
            u = (u & !(0xF000u128 << 64)) | (0x4000u128 << 64); // version 4
            u = (u & !(0xC000u128 << 48)) | (0x8000u128 << 48); // variant 10
            Value::Uuid(u)
        }
        Func::CurrentSetting => {
            let name = text_arg(&a[0]).to_ascii_lowercase();
            match s.settings.iter().find(|(k, _)| *k == name) {
                Some((_, v)) => Value::Text(v.clone()),
                None if a.get(1).and_then(Value::as_bool) == Some(true) => Value::Null,
                None => {
                    return Err(Error::new(
                        ErrorKind::UndefinedObject,
                        format!("unrecognized configuration parameter \"{name}\""),
                    ));
                }
            }
        }
        Func::FormatType => {
            let Value::Int(oid) = &a[0] else {
                return Ok(Value::Null);
            };
            let typmod = a.get(1).map_or(-1, int_arg);
            match SqlType::from_oid(*oid as u32) {
                Some(t) => Value::Text(with_typmod(t, typmod).pg_name()),
                None => Value::Text("???".into()),
            }
        }
        Func::ToRegtype => match &a[0] {
            Value::Text(name) => {
                SqlType::from_name(name).map_or(Value::Null, |t| Value::Int(i64::from(t.oid())))
            }
            _ => Value::Null,
        },
        Func::PgGetUserById => Value::Text(s.user.clone()),
        Func::PgTableIsVisible => Value::Bool(true),
        Func::PgGetExpr => a[0].clone(),
        Func::PgGetIndexDef | Func::PgGetConstraintDef | Func::PgGetViewDef => {
            crate::pg_catalog::object_definition(func, int_arg(&a[0]) as u64, s)
                .map_or(Value::Null, Value::Text)
        }
        Func::ObjDescription => Value::Null,
        Func::PgEncodingToChar => Value::Text("UTF8".into()),
        Func::HasPrivilege => Value::Bool(true),
        Func::PgGetSerialSequence => {
            crate::pg_catalog::serial_sequence(text_arg(&a[0]), text_arg(&a[1]), s)
                .map_or(Value::Null, Value::Text)
        }
        Func::PgIsInRecovery | Func::PgRelationIsPublishable => Value::Bool(false),
        Func::SetConfig => {
            let (name, value) = (text_arg(&a[0]).to_string(), text_arg(&a[1]).to_string());
            let local = a[2].as_bool() == Some(true);
            s.setting_changes
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((name, value.clone(), local));
            Value::Text(value)
        }
        Func::PgPartitionAncestors => a[0].clone(),
        Func::PgRelationSize => Value::Int(0),
        Func::PgSizePretty => {
            let b = int_arg(&a[0]);
            Value::Text(if b < 10 * 1024 {
                format!("{b} bytes")
            } else if b < 10 * 1024 * 1024 {
                format!("{} kB", (b + 512) / 1024)
            } else if b < 10 * 1024 * 1024 * 1024 {
                format!("{} MB", (b + 512 * 1024) / (1024 * 1024))
            } else {
                format!("{} GB", (b + 512 * 1024 * 1024) / (1024 * 1024 * 1024))
            })
        }
        Func::PgTablespaceLocation => Value::Text(String::new()),
        Func::TxidCurrent => Value::Int(s.txn_time.timestamp_micros()),
        Func::PgPostmasterStartTime => Value::TimestampTz(s.txn_time),
        Func::PgGetPartKeyDef => Value::Null,
    })
}

fn with_typmod(t: SqlType, typmod: i64) -> SqlType {
    if typmod < 0 {
        return t;
    }
    match t {
        SqlType::Varchar(_) => SqlType::Varchar(Some((typmod - 4) as u32)),
        SqlType::Char(_) => SqlType::Char((typmod - 4) as u32),
        SqlType::Numeric(_) => {
            let m = (typmod - 4) as u32;
            SqlType::Numeric(Some((m >> 16, m & 0xffff)))
        }
        t => t,
    }
}

fn numeric_math(func: Func, a: &[Value]) -> Result<Value> {
    use rust_decimal::MathematicalOps;
    let x = dec_arg(&a[0]);
    let err = || {
        Error::new(
            ErrorKind::InvalidParameterValue,
            "cannot compute the function for this argument",
        )
    };
    Ok(Value::Numeric(match func {
        Func::Sqrt => {
            if x.is_sign_negative() && !x.is_zero() {
                return Err(Error::new(
                    ErrorKind::InvalidArgumentForPower,
                    "cannot take square root of a negative number",
                ));
            }
            // PostgreSQL's sqrt scale: 16 significant digits, at least the input's scale.
            let (weight, _) = crate::ops::base10000_lead(&x);
            let sweight = (weight + 1) * 4 / 2 - 1;
            let rscale = (16 - sweight).max(i64::from(x.scale())).clamp(0, 28) as u32;
            let mut r = x.sqrt().ok_or_else(err)?.round_dp(rscale);
            if r.scale() < rscale {
                r.rescale(rscale);
            }
            r
        }
        Func::Exp => x.checked_exp().ok_or_else(err)?.round_dp(16),
        Func::Ln => {
            if x <= Decimal::ZERO {
                return Err(Error::new(
                    ErrorKind::InvalidArgumentForLog,
                    "cannot take logarithm of a non-positive number",
                ));
            }
            x.ln().round_dp(16)
        }
        Func::Log => {
            if a.len() == 2 {
                let y = dec_arg(&a[1]);
                (y.ln() / x.ln()).round_dp(16)
            } else {
                if x <= Decimal::ZERO {
                    return Err(Error::new(
                        ErrorKind::InvalidArgumentForLog,
                        "cannot take logarithm of a non-positive number",
                    ));
                }
                x.log10().round_dp(16)
            }
        }
        _ => return Err(Error::internal(format!("numeric {func:?}"))),
    }))
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Converts a SQL value to JSON (to_jsonb, jsonb_build_object).
pub fn to_json(v: &Value, ty: &SqlType) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Value::Null => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Int(i) => J::from(*i),
        Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
        Value::Numeric(d) => serde_json::from_str(&d.to_string()).unwrap_or(J::Null),
        Value::Json(j) => j.as_ref().clone(),
        Value::Array(items) => {
            let elem = ty.element().cloned().unwrap_or(SqlType::Text);
            J::Array(items.iter().map(|x| to_json(x, &elem)).collect())
        }
        other => J::String(textio::to_text(other, ty).unwrap_or_default()),
    }
}

/// `format()`: `%s` (text, NULL as empty), `%I` (identifier), `%L` (literal, NULL as NULL),
/// `%%`, and explicit positions `%n$s`.
fn format_sql(fmt: &str, args: &[Value], exprs: &[Expr]) -> Result<String> {
    let mut out = String::new();
    let mut chars = fmt.chars().peekable();
    let mut next = 0usize;
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = String::new();
        while let Some(&d) = chars.peek() {
            if d.is_ascii_digit() || d == '$' {
                spec.push(d);
                chars.next();
            } else {
                break;
            }
        }
        let kind = chars
            .next()
            .ok_or_else(|| invalid_arg("unterminated format() type specifier"))?;
        if kind == '%' && spec.is_empty() {
            out.push('%');
            continue;
        }
        let idx = match spec.strip_suffix('$') {
            Some(n) => n
                .parse::<usize>()
                .map_err(|_| invalid_arg("invalid format() position"))?
                .checked_sub(1)
                .ok_or_else(|| {
                    invalid_arg("format specifies argument 0, but arguments are numbered from 1")
                })?,
            None if spec.is_empty() => next,
            None => return Err(Error::unsupported("format() width specifiers")),
        };
        next = idx + 1;
        let v = args
            .get(idx)
            .ok_or_else(|| invalid_arg("too few arguments for format()"))?;
        let ty = exprs.get(idx).map_or(SqlType::Text, Expr::ty);
        let text = textio::to_text(v, &ty);
        match kind {
            's' => out.push_str(text.as_deref().unwrap_or("")),
            'I' => {
                let t = text.ok_or_else(|| {
                    Error::new(
                        ErrorKind::NullValueNotAllowed,
                        "null values cannot be formatted as an SQL identifier",
                    )
                })?;
                out.push_str(&quote_ident(&t));
            }
            'L' => match text {
                None => out.push_str("NULL"),
                Some(t) => out.push_str(&quote_literal(&t)),
            },
            other => {
                return Err(invalid_arg(format!(
                    "unrecognized format() type specifier \"{other}\""
                )));
            }
        }
    }
    Ok(out)
}

/// Quotes an identifier when it is not a plain lower-case name, as `quote_ident` does.
pub(crate) fn quote_ident(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !s.starts_with(|c: char| c.is_ascii_digit());
    if plain {
        s.to_string()
    } else {
        format!("\"{}\"", s.replace('"', "\"\""))
    }
}

fn quote_literal(s: &str) -> String {
    if s.contains('\\') {
        format!("E'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
    } else {
        format!("'{}'", s.replace('\'', "''"))
    }
}

/// bytea's "escape" text form: printable ASCII as is, backslash doubled, other bytes as
/// `\ooo` octal.
fn bytea_escape(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len());
    for &byte in b {
        match byte {
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(byte as char),
            _ => s.push_str(&format!("\\{byte:03o}")),
        }
    }
    s
}

fn md5_hex(data: &[u8]) -> String {
    format!("{:x}", md5::compute(data))
}

fn random_u128() -> u128 {
    rand::random()
}

fn random_f64() -> f64 {
    rand::random()
}

fn to_naive(v: &Value) -> Result<NaiveDateTime> {
    Ok(match v {
        Value::Timestamp(t) => *t,
        Value::TimestampTz(t) => t.naive_utc(),
        Value::Date(d) => d.and_time(NaiveTime::MIN),
        Value::Time(t) => NaiveDate::default().and_time(*t),
        other => return Err(Error::internal(format!("not a timestamp: {other:?}"))),
    })
}

fn date_trunc(unit: &str, v: &Value) -> Result<Value> {
    if let Value::Interval(_) = v {
        return Err(Error::unsupported("date_trunc on intervals"));
    }
    let t = to_naive(v)?;
    let d = t.date();
    let trunc = match unit.to_ascii_lowercase().as_str() {
        "microseconds" => t,
        "milliseconds" => t
            .with_nanosecond(t.nanosecond() / 1_000_000 * 1_000_000)
            .unwrap_or(t),
        "second" => t.with_nanosecond(0).unwrap_or(t),
        "minute" => d.and_hms_opt(t.hour(), t.minute(), 0).unwrap_or(t),
        "hour" => d.and_hms_opt(t.hour(), 0, 0).unwrap_or(t),
        "day" => d.and_time(NaiveTime::MIN),
        "week" => (d - chrono::Duration::days(i64::from(d.weekday().num_days_from_monday())))
            .and_time(NaiveTime::MIN),
        "month" => d.with_day(1).unwrap_or(d).and_time(NaiveTime::MIN),
        "quarter" => NaiveDate::from_ymd_opt(d.year(), (d.month0() / 3) * 3 + 1, 1)
            .unwrap_or(d)
            .and_time(NaiveTime::MIN),
        "year" => NaiveDate::from_ymd_opt(d.year(), 1, 1)
            .unwrap_or(d)
            .and_time(NaiveTime::MIN),
        "decade" => NaiveDate::from_ymd_opt(d.year() - d.year().rem_euclid(10), 1, 1)
            .unwrap_or(d)
            .and_time(NaiveTime::MIN),
        "century" => NaiveDate::from_ymd_opt((d.year() - 1) / 100 * 100 + 1, 1, 1)
            .unwrap_or(d)
            .and_time(NaiveTime::MIN),
        other => {
            return Err(invalid_arg(format!(
                "unit \"{other}\" not recognized for type timestamp"
            )));
        }
    };
    Ok(match v {
        Value::TimestampTz(_) => Value::TimestampTz(trunc.and_utc()),
        _ => Value::Timestamp(trunc),
    })
}

/// `date_part(unit, value)` / `EXTRACT(unit FROM value)`.
pub fn date_part(unit: &str, v: &Value) -> Result<f64> {
    let unit = unit.to_ascii_lowercase();
    if let Value::Interval(i) = v {
        return Ok(match unit.as_str() {
            "year" | "years" => f64::from(i.months / 12),
            "month" | "months" | "mon" => f64::from(i.months % 12),
            "day" | "days" => f64::from(i.days),
            "hour" | "hours" => (i.micros / 3_600_000_000) as f64,
            "minute" | "minutes" => (i.micros % 3_600_000_000 / 60_000_000) as f64,
            "second" | "seconds" => (i.micros % 60_000_000) as f64 / 1e6,
            "epoch" => i.sort_key() as f64 / 1e6,
            other => {
                return Err(invalid_arg(format!(
                    "unit \"{other}\" not recognized for type interval"
                )));
            }
        });
    }
    let t = to_naive(v)?;
    let d = t.date();
    Ok(match unit.as_str() {
        "year" | "years" => f64::from(d.year()),
        "month" | "months" | "mon" => f64::from(d.month()),
        "day" | "days" => f64::from(d.day()),
        "hour" | "hours" => f64::from(t.hour()),
        "minute" | "minutes" => f64::from(t.minute()),
        "second" | "seconds" => f64::from(t.second()) + f64::from(t.nanosecond()) / 1e9,
        "millisecond" | "milliseconds" => {
            f64::from(t.second()) * 1e3 + f64::from(t.nanosecond()) / 1e6
        }
        "microsecond" | "microseconds" => {
            f64::from(t.second()) * 1e6 + f64::from(t.nanosecond() / 1000)
        }
        "dow" => f64::from(d.weekday().num_days_from_sunday()),
        "isodow" => f64::from(d.weekday().number_from_monday()),
        "doy" => f64::from(d.ordinal()),
        "week" => f64::from(d.iso_week().week()),
        "quarter" => f64::from(d.month0() / 3 + 1),
        "decade" => f64::from(d.year().div_euclid(10)),
        "century" => f64::from((d.year() - 1) / 100 + 1),
        "epoch" => t.and_utc().timestamp_micros() as f64 / 1e6,
        other => {
            return Err(invalid_arg(format!(
                "unit \"{other}\" not recognized for type timestamp"
            )));
        }
    })
}

fn age(x: NaiveDateTime, y: NaiveDateTime) -> Interval {
    let (neg, a, b) = if x >= y { (false, x, y) } else { (true, y, x) };
    let mut months = (a.year() - b.year()) * 12 + a.month() as i32 - b.month() as i32;
    let mut rest = a.time() - b.time();
    let mut days = a.day() as i32 - b.day() as i32;
    if rest < chrono::Duration::zero() {
        rest += chrono::Duration::days(1);
        days -= 1;
    }
    if days < 0 {
        months -= 1;
        let prev = b.date().with_day(1).unwrap_or(b.date());
        let dim = (prev + chrono::Months::new(1) - prev).num_days() as i32;
        days += dim;
    }
    let iv = Interval {
        months,
        days,
        micros: rest.num_microseconds().unwrap_or(0),
    };
    if neg {
        Interval {
            months: -iv.months,
            days: -iv.days,
            micros: -iv.micros,
        }
    } else {
        iv
    }
}

fn to_char(v: &Value, fmt: &str) -> Result<String> {
    let t = match v {
        Value::Int(_) | Value::Float(_) | Value::Numeric(_) => {
            return Ok(textio::to_text(v, &v.natural_type()).unwrap_or_default());
        }
        other => to_naive(other)?,
    };
    // The common template patterns; others pass through unchanged.
    let patterns: [(&str, String); 14] = [
        ("YYYY", format!("{:04}", t.year())),
        ("MM", format!("{:02}", t.month())),
        ("DD", format!("{:02}", t.day())),
        ("HH24", format!("{:02}", t.hour())),
        (
            "HH12",
            format!(
                "{:02}",
                if t.hour() % 12 == 0 {
                    12
                } else {
                    t.hour() % 12
                }
            ),
        ),
        (
            "HH",
            format!(
                "{:02}",
                if t.hour() % 12 == 0 {
                    12
                } else {
                    t.hour() % 12
                }
            ),
        ),
        ("MI", format!("{:02}", t.minute())),
        ("SS", format!("{:02}", t.second())),
        ("MS", format!("{:03}", t.nanosecond() / 1_000_000)),
        ("US", format!("{:06}", t.nanosecond() / 1000)),
        ("YY", format!("{:02}", t.year() % 100)),
        ("Mon", t.format("%b").to_string()),
        ("Dy", t.format("%a").to_string()),
        (
            "AM",
            if t.hour() < 12 {
                "AM".into()
            } else {
                "PM".into()
            },
        ),
    ];
    let mut out = String::new();
    let mut rest = fmt;
    'outer: while !rest.is_empty() {
        for (p, val) in &patterns {
            if let Some(r) = rest.strip_prefix(p) {
                out.push_str(val);
                rest = r;
                continue 'outer;
            }
        }
        let c = rest.chars().next().unwrap_or(' ');
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    Ok(out)
}

/// SQL LIKE matching with an escape character.
pub fn like(s: &str, pattern: &str, escape: Option<char>, case_insensitive: bool) -> Result<bool> {
    let (s, pattern) = if case_insensitive {
        (s.to_lowercase(), pattern.to_lowercase())
    } else {
        (s.to_string(), pattern.to_string())
    };
    // Compile to tokens: literal chars, '_' (any one), '%' (any run).
    let mut tokens = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if Some(c) == escape {
            match chars.next() {
                Some(n) => tokens.push(Some(n)),
                None => {
                    return Err(Error::new(
                        ErrorKind::InvalidEscapeSequence,
                        "LIKE pattern must not end with escape character",
                    ));
                }
            }
        } else if c == '%' {
            tokens.push(None);
        } else if c == '_' {
            tokens.push(Some('\u{0}'));
        } else {
            tokens.push(Some(c));
        }
    }
    let text: Vec<char> = s.chars().collect();
    // Iterative matching with backtracking on the last '%'.
    let (mut ti, mut pi) = (0usize, 0usize);
    let (mut star, mut mark) = (None::<usize>, 0usize);
    while ti < text.len() {
        match tokens.get(pi) {
            Some(Some('\u{0}')) => {
                ti += 1;
                pi += 1;
            }
            Some(Some(c)) if *c == text[ti] => {
                ti += 1;
                pi += 1;
            }
            Some(None) => {
                star = Some(pi);
                mark = ti;
                pi += 1;
            }
            _ => match star {
                Some(sp) => {
                    pi = sp + 1;
                    mark += 1;
                    ti = mark;
                }
                None => return Ok(false),
            },
        }
    }
    while let Some(None) = tokens.get(pi) {
        pi += 1;
    }
    Ok(pi == tokens.len())
}

/// Compiles a POSIX-style regular expression (as far as Rust's regex syntax agrees).
pub fn compile_regex(p: &str, case_insensitive: bool) -> Result<Regex> {
    RegexBuilder::new(p)
        .case_insensitive(case_insensitive)
        .size_limit(1 << 22)
        .build()
        .map_err(|e| {
            Error::new(
                ErrorKind::InvalidRegularExpression,
                format!("invalid regular expression: {e}"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns() {
        assert!(like("hello", "h%o", Some('\\'), false).unwrap());
        assert!(like("hello", "h_llo", Some('\\'), false).unwrap());
        assert!(!like("hello", "h_lo", Some('\\'), false).unwrap());
        assert!(like("50%", "50\\%", Some('\\'), false).unwrap());
        assert!(like("HeLLo", "hello", Some('\\'), true).unwrap());
        assert!(like("", "%", Some('\\'), false).unwrap());
        assert!(like("abcabc", "%bc", Some('\\'), false).unwrap());
        assert!(like("a", "a\\", Some('\\'), false).is_err());
    }

    #[test]
    fn md5_matches_known_vectors() {
        assert_eq!(md5_hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(md5_hex(b"hello"), "5d41402abc4b2a76b9719d911017c592");
    }

    #[test]
    fn common_types() {
        assert_eq!(
            common_type(&[SqlType::Int4, SqlType::Int8]),
            Some(SqlType::Int8)
        );
        assert_eq!(
            common_type(&[SqlType::Unknown, SqlType::Int4]),
            Some(SqlType::Int4)
        );
        assert_eq!(common_type(&[SqlType::Int4, SqlType::Text]), None);
        assert_eq!(common_type(&[SqlType::Unknown]), Some(SqlType::Text));
    }
}
