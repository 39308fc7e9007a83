//! Transaction errors.

/// An error from a transaction.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The key-value layer failed; [`Error::is_retryable`] tells a conflict from a fault.
    #[error(transparent)]
    Kv(#[from] kv::Error),
    /// A lock of another, live transaction did not go away in time.
    #[error(
        "lock wait timeout on key {}: transaction {holder} still holds it",
        codec::layout::pretty(key)
    )]
    LockWaitTimeout {
        key: Vec<u8>,
        holder: base::Timestamp,
    },
    /// The transaction waited for a lock in a cycle of transactions each waiting for the
    /// next, and was chosen to break it (the youngest on the cycle gives up).
    #[error(
        "deadlock detected: waiting for key {} held by transaction {holder}, which waits (through others) for this one",
        codec::layout::pretty(key)
    )]
    Deadlock {
        key: Vec<u8>,
        holder: base::Timestamp,
    },
    /// The transaction ran longer than GC keeps history for its snapshot.
    #[error(
        "transaction too old: it has run {age_ms} ms, and versions it may read are kept only {limit_ms} ms (the GC TTL less a margin)"
    )]
    TxnTooOld { age_ms: u64, limit_ms: u64 },
    /// An empty key.
    #[error("empty key: keys must have at least one byte")]
    EmptyKey,
    /// A key is longer than the limit.
    #[error("key of {len} bytes is larger than the limit of {max} bytes")]
    KeyTooLarge { len: usize, max: usize },
    /// A value is longer than the limit.
    #[error("value of {len} bytes is larger than the limit of {max} bytes")]
    ValueTooLarge { len: usize, max: usize },
    /// The transaction's buffered writes exceed the limit.
    #[error("transaction too large: {bytes} bytes of writes, the limit is {max}")]
    TxnTooLarge { bytes: usize, max: usize },
    /// The transaction was already committed or rolled back.
    #[error("transaction is already finished")]
    Finished,
    /// A response did not match its request: a bug.
    #[error("internal error: {0}")]
    Internal(String),
}

/// What kind of failure an [`Error`] is, for layers that must not look inside the layers
/// below (SQL maps these to SQLSTATEs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// A conflict with another transaction; retrying the whole transaction may succeed.
    Conflict,
    /// Waiting for another transaction's lock timed out.
    LockTimeout,
    /// A key, value or transaction over its size limit.
    Limit,
    /// The transaction was already finished.
    Finished,
    /// The storage engine failed (I/O, a full disk, corruption).
    Storage,
    /// A write was sent but whether it took effect is unknown.
    Ambiguous,
    /// The data could not be reached (no quorum, no leaseholder in time).
    Unavailable,
    /// The key-value service does not support what was asked.
    Unsupported,
    /// Anything else: a bug or an unavailable service.
    Internal,
}

impl Error {
    /// Classifies the error.
    pub fn class(&self) -> ErrorClass {
        match self {
            Error::LockWaitTimeout { .. } => ErrorClass::LockTimeout,
            e if e.is_retryable() => ErrorClass::Conflict,
            Error::EmptyKey
            | Error::KeyTooLarge { .. }
            | Error::ValueTooLarge { .. }
            | Error::TxnTooLarge { .. } => ErrorClass::Limit,
            Error::Finished => ErrorClass::Finished,
            Error::Kv(kv::Error::Mvcc(mvcc::Error::Storage(_))) => ErrorClass::Storage,
            Error::Kv(kv::Error::Mvcc(
                mvcc::Error::KeyTooLarge { .. } | mvcc::Error::ValueTooLarge { .. },
            )) => ErrorClass::Limit,
            Error::Kv(kv::Error::Ambiguous(_)) => ErrorClass::Ambiguous,
            Error::Kv(kv::Error::Unsupported(_)) => ErrorClass::Unsupported,
            Error::Kv(e) if e.is_routing() || matches!(e, kv::Error::Unavailable { .. }) => {
                ErrorClass::Unavailable
            }
            _ => ErrorClass::Internal,
        }
    }

    /// Returns true if the transaction failed because of a conflict with another one and
    /// retrying it from the start may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Kv(e) => e.is_retryable(),
            Error::LockWaitTimeout { .. } | Error::Deadlock { .. } | Error::TxnTooOld { .. } => {
                true
            }
            _ => false,
        }
    }
}

impl From<mvcc::Error> for Error {
    fn from(e: mvcc::Error) -> Self {
        Error::Kv(kv::Error::Mvcc(e))
    }
}

/// The result of a transaction operation.
pub type Result<T> = std::result::Result<T, Error>;
