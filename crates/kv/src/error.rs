//! Errors of the key-value layer.

/// An error from a key-value request.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The MVCC command failed (a conflict, a lock, a limit, or storage).
    #[error(transparent)]
    Mvcc(#[from] mvcc::Error),
    /// The timestamp oracle could not hand out a timestamp.
    #[error("timestamp oracle unavailable: {0}")]
    Tso(String),
    /// A one-phase commit found a key it read being written by a command in flight.
    #[error(
        "read conflict on key {}: a concurrent commit is writing it",
        codec::layout::pretty(key)
    )]
    ReadInFlight { key: Vec<u8> },
    /// The request's keys are not all in one range.
    #[error("request spans more than one range: {0}")]
    CrossRange(String),
    /// The service is shutting down.
    #[error("the key-value service is shutting down")]
    Shutdown,
}

impl Error {
    /// Returns true if retrying the whole transaction may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Mvcc(e) => e.is_retryable(),
            Error::ReadInFlight { .. } => true,
            _ => false,
        }
    }
}

impl From<storage::Error> for Error {
    fn from(e: storage::Error) -> Self {
        Error::Mvcc(mvcc::Error::Storage(e))
    }
}

/// The result of a key-value request.
pub type Result<T> = std::result::Result<T, Error>;
