//! SQLSTATE codes for error kinds, and ErrorResponse construction.

use pgwire_crate::error::ErrorInfo;
use sql::{Error, ErrorKind};

/// Returns the SQLSTATE a PostgreSQL client expects for `kind`.
pub fn code(kind: ErrorKind) -> &'static str {
    use ErrorKind as K;
    match kind {
        K::Syntax => "42601",
        K::UndefinedTable => "42P01",
        K::UndefinedColumn => "42703",
        K::UndefinedFunction => "42883",
        K::UndefinedObject => "42704",
        K::UndefinedDatabase => "3D000",
        K::UndefinedSchema => "3F000",
        K::UndefinedParameter => "42P02",
        K::DuplicateTable => "42P07",
        K::DuplicateColumn => "42701",
        K::DuplicateObject => "42710",
        K::DuplicateDatabase => "42P04",
        K::DuplicateSchema => "42P06",
        K::AmbiguousColumn => "42702",
        K::DatatypeMismatch => "42804",
        K::CannotCoerce => "42846",
        K::InvalidTextRepresentation => "22P02",
        K::InvalidBinaryRepresentation => "22P03",
        K::BadCopyFileFormat => "22P04",
        K::CharacterNotInRepertoire => "22021",
        K::ProtocolViolation => "08P01",
        K::InvalidArgumentForWidthBucket => "2201G",
        K::NullValueNotAllowed => "22004",
        K::WrongObjectType => "42809",
        K::GeneratedAlways => "428C9",
        K::SequenceLimitExceeded => "2200H",
        K::InvalidArgumentForPower => "2201F",
        K::InvalidArgumentForLog => "2201E",
        K::SubstringError => "22011",
        K::InvalidLimit => "2201W",
        K::InvalidOffset => "2201X",
        K::DuplicateAlias => "42712",
        K::InvalidCursorName => "34000",
        K::InvalidStatementName => "26000",
        K::DuplicateCursor => "42P03",
        K::DuplicatePreparedStatement => "42P05",
        K::InvalidDatetimeFormat => "22007",
        K::DatetimeOverflow => "22008",
        K::NumericOutOfRange => "22003",
        K::DivisionByZero => "22012",
        K::StringDataRightTruncation => "22001",
        K::InvalidParameterValue => "22023",
        K::InvalidColumnReference => "42P10",
        K::GroupingError => "42803",
        K::WindowingError => "42P20",
        K::UniqueViolation => "23505",
        K::NotNullViolation => "23502",
        K::CheckViolation => "23514",
        K::ForeignKeyViolation => "23503",
        K::InvalidForeignKey => "42830",
        K::CardinalityViolation => "21000",
        K::ProgramLimitExceeded => "54000",
        K::FeatureNotSupported => "0A000",
        K::InvalidTransactionState => "25000",
        K::InFailedTransaction => "25P02",
        K::NoActiveTransaction => "25P01",
        K::ActiveTransaction => "25001",
        K::InvalidSavepoint => "3B001",
        K::ReadOnlyTransaction => "25006",
        K::SerializationFailure => "40001",
        K::LockNotAvailable => "55P03",
        K::InvalidName => "42602",
        K::DependentObjectsStillExist => "2BP01",
        K::InvalidTableDefinition => "42P16",
        K::ObjectNotInPrerequisiteState => "55000",
        K::QueryCanceled => "57014",
        K::InvalidEscapeSequence => "22025",
        K::InvalidRegularExpression => "2201B",
        K::ArraySubscript => "2202E",
        K::Io => "58030",
        K::StatementCompletionUnknown => "40003",
        K::Unavailable => "58000",
        K::Internal => "XX000",
    }
}

/// Builds the ErrorResponse fields for `e`, with severity ERROR.
pub fn error_info(e: &Error) -> ErrorInfo {
    let mut info = ErrorInfo::new("ERROR".into(), code(e.kind).into(), e.message.clone());
    info.detail = e.detail.clone();
    info.hint = e.hint.clone();
    info.position = e.position.map(|p| p.to_string());
    info
}

/// Builds a FATAL error (the connection ends after it).
pub fn fatal(code: &str, message: impl Into<String>) -> ErrorInfo {
    ErrorInfo::new("FATAL".into(), code.into(), message.into())
}

/// Builds a NOTICE.
pub fn notice(message: impl Into<String>) -> ErrorInfo {
    ErrorInfo::new("NOTICE".into(), "00000".into(), message.into())
}
