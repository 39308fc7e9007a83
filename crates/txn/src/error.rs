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

impl Error {
    /// Returns true if the transaction failed because of a conflict with another one and
    /// retrying it from the start may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Kv(e) => e.is_retryable(),
            Error::LockWaitTimeout { .. } => true,
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
