//! SQL errors.
//!
//! An error has a [`ErrorKind`] that says what class of problem it is, a message in
//! PostgreSQL's wording where one exists, and optionally a detail, a hint and a position
//! (1-based character offset into the statement). The wire layer maps the kind to a
//! SQLSTATE; nothing here knows SQLSTATE codes.

use std::fmt;

/// The class of an error, as a PostgreSQL client would distinguish it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    Syntax,
    UndefinedTable,
    UndefinedColumn,
    UndefinedFunction,
    UndefinedObject,
    UndefinedDatabase,
    UndefinedSchema,
    UndefinedParameter,
    DuplicateTable,
    DuplicateColumn,
    DuplicateObject,
    DuplicateDatabase,
    DuplicateSchema,
    AmbiguousColumn,
    DatatypeMismatch,
    CannotCoerce,
    InvalidTextRepresentation,
    InvalidBinaryRepresentation,
    BadCopyFileFormat,
    CharacterNotInRepertoire,
    ProtocolViolation,
    InvalidArgumentForWidthBucket,
    NullValueNotAllowed,
    WrongObjectType,
    GeneratedAlways,
    SequenceLimitExceeded,
    InvalidArgumentForPower,
    InvalidArgumentForLog,
    SubstringError,
    InvalidLimit,
    InvalidOffset,
    DuplicateAlias,
    InvalidCursorName,
    InvalidStatementName,
    DuplicateCursor,
    DuplicatePreparedStatement,
    InvalidDatetimeFormat,
    DatetimeOverflow,
    NumericOutOfRange,
    DivisionByZero,
    StringDataRightTruncation,
    InvalidParameterValue,
    InvalidColumnReference,
    GroupingError,
    WindowingError,
    UniqueViolation,
    NotNullViolation,
    CheckViolation,
    ForeignKeyViolation,
    InvalidForeignKey,
    CardinalityViolation,
    ProgramLimitExceeded,
    FeatureNotSupported,
    InvalidTransactionState,
    InFailedTransaction,
    NoActiveTransaction,
    ActiveTransaction,
    InvalidSavepoint,
    ReadOnlyTransaction,
    SerializationFailure,
    LockNotAvailable,
    InvalidName,
    DependentObjectsStillExist,
    InvalidTableDefinition,
    ObjectNotInPrerequisiteState,
    QueryCanceled,
    InvalidEscapeSequence,
    InvalidRegularExpression,
    ArraySubscript,
    Io,
    /// A write's outcome is unknown (40003).
    StatementCompletionUnknown,
    /// The data is unreachable now (a range without a quorum): 58000.
    Unavailable,
    Internal,
}

/// An error from parsing, planning or executing a statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
    /// 1-based character position in the statement text.
    pub position: Option<usize>,
}

impl Error {
    /// Returns an error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error {
            kind,
            message: message.into(),
            detail: None,
            hint: None,
            position: None,
        }
    }

    /// Adds a detail line.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Error {
        self.detail = Some(detail.into());
        self
    }

    /// Adds a hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Error {
        self.hint = Some(hint.into());
        self
    }

    /// Sets the position, unless one is already set.
    pub fn at(mut self, position: Option<usize>) -> Error {
        if self.position.is_none() {
            self.position = position;
        }
        self
    }

    /// Returns a "feature not supported" error naming the feature.
    pub fn unsupported(feature: impl fmt::Display) -> Error {
        Error::new(
            ErrorKind::FeatureNotSupported,
            format!("{feature} is not supported"),
        )
    }

    /// Returns an internal error (a bug).
    pub fn internal(message: impl fmt::Display) -> Error {
        Error::new(ErrorKind::Internal, format!("internal error: {message}"))
    }

    /// Returns true if the whole transaction may succeed when retried.
    pub fn is_retryable(&self) -> bool {
        matches!(self.kind, ErrorKind::SerializationFailure)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl From<txn::Error> for Error {
    fn from(e: txn::Error) -> Self {
        use txn::ErrorClass as C;
        match e.class() {
            C::Conflict => Error::new(
                ErrorKind::SerializationFailure,
                format!("could not serialize access due to concurrent update: {e}"),
            )
            .with_hint("The transaction might succeed if retried."),
            C::LockTimeout => Error::new(ErrorKind::LockNotAvailable, e.to_string()),
            C::Limit => Error::new(ErrorKind::ProgramLimitExceeded, e.to_string()),
            C::Finished => Error::new(ErrorKind::InvalidTransactionState, e.to_string()),
            C::Storage => Error::new(ErrorKind::Io, e.to_string()),
            C::Ambiguous => Error::new(ErrorKind::StatementCompletionUnknown, e.to_string())
                .with_hint("The transaction may or may not have committed; check before retrying."),
            C::Unavailable => Error::new(ErrorKind::Unavailable, e.to_string()),
            C::Unsupported => Error::new(ErrorKind::FeatureNotSupported, e.to_string()),
            C::Internal => Error::new(ErrorKind::Internal, e.to_string()),
        }
    }
}

/// The result of a SQL operation.
pub type Result<T> = std::result::Result<T, Error>;

/// Returns an error of `kind` formatted like `format!`.
#[macro_export]
macro_rules! sql_err {
    ($kind:ident, $($arg:tt)*) => {
        $crate::Error::new($crate::ErrorKind::$kind, format!($($arg)*))
    };
}
