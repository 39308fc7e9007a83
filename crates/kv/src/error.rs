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
    /// A one-phase commit would have committed at or after the deadline its request set
    /// (a read the transaction made is only known valid before it); nothing was written,
    /// and the transaction can commit in two phases, validating that read instead.
    #[error("the commit timestamp {commit_ts} is not before the commit deadline {deadline}")]
    DeadlinePassed {
        commit_ts: base::Timestamp,
        deadline: base::Timestamp,
    },
    /// The service is shutting down.
    #[error("the key-value service is shutting down")]
    Shutdown,
    /// This replica may not serve the range now (it is not the leaseholder, or cannot
    /// prove it is); `leader` is the leaseholder it knows of.
    #[error("replica of range {range} on node {node} is not the leaseholder (leader: {leader:?})")]
    NotLeaseholder {
        range: u64,
        node: u64,
        leader: Option<u64>,
    },
    /// The node holds no replica of the range.
    #[error("node {node} holds no replica of range {range}")]
    RangeNotFound { range: u64, node: u64 },
    /// A key of the request is outside the range it was sent to (the range split, or
    /// the sender's directory is stale); `owner` is the range that holds the key, if the
    /// answering node knows it.
    #[error("key {} is outside range {range}", codec::layout::pretty(key))]
    KeyOutsideRange {
        range: u64,
        key: Vec<u8>,
        owner: Option<crate::api::RangeDesc>,
    },
    /// A node could not be reached.
    #[error("node {node} is unreachable: {detail}")]
    NodeUnreachable { node: u64, detail: String },
    /// No replica of a range answered before the retry deadline.
    #[error("range {range} is unavailable: {detail}")]
    Unavailable { range: u64, detail: String },
    /// A write was proposed but its outcome is unknown (the replica lost its leadership or
    /// stopped before the write was known to be applied): it may or may not have committed.
    #[error("result is ambiguous: {0}")]
    Ambiguous(String),
    /// The service does not support the request (a split of a single-node store).
    #[error("{0} is not supported")]
    Unsupported(String),
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

    /// Returns true if another replica (or the same one, later) may serve the request:
    /// the router retries these.
    pub fn is_routing(&self) -> bool {
        matches!(
            self,
            Error::NotLeaseholder { .. }
                | Error::RangeNotFound { .. }
                | Error::NodeUnreachable { .. }
        )
    }
}

impl From<storage::Error> for Error {
    fn from(e: storage::Error) -> Self {
        Error::Mvcc(mvcc::Error::Storage(e))
    }
}

impl From<std::io::Error> for Error {
    /// Reading a replica's Raft state: a decode failure is corruption, the rest I/O.
    fn from(e: std::io::Error) -> Self {
        let e = if e.kind() == std::io::ErrorKind::InvalidData {
            storage::Error::Corruption {
                detail: e.to_string(),
            }
        } else {
            storage::Error::Io {
                op: "reading raft state",
                source: e,
            }
        };
        Error::Mvcc(mvcc::Error::Storage(e))
    }
}

/// The result of a key-value request.
pub type Result<T> = std::result::Result<T, Error>;
