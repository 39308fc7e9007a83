//! Transactions: the API the SQL layer uses to read and write keys.
//!
//! ```text
//!  TxnClient::begin ── start_ts from the oracle
//!     │
//!  Transaction: get / batch_get / scan   read at start_ts, own writes merged in, reads tracked
//!               put / delete             buffered in memory until commit
//!               lock_for_update          pessimistic locks, read at a fresh for_update_ts
//!               savepoint / rollback_to  undo of buffered writes
//!     │
//!  commit ── all keys and reads in one range? ── OnePhaseCommit (the range picks commit_ts)
//!     │                                   else ── Prewrite per range, commit_ts from the oracle,
//!     │                                           ValidateReads per range, Commit primary,
//!     │                                           Commit secondaries (in the background)
//!     └── serializable: each read is validated against commit_ts
//! ```
//!
//! Transactions are serializable (strictly so): a read-write transaction takes effect at its
//! commit timestamp, and read validation checks that everything it read is still current
//! there; a read-only transaction takes effect at its start timestamp and needs no check.
//! Conflicts surface as errors for which [`Error::is_retryable`] is true; the caller
//! retries the whole transaction.
//!
//! A read that meets another transaction's lock asks the lock's primary for the
//! transaction's fate and resolves the lock, or waits (with backoff, up to a timeout) while
//! that transaction is alive.
//!
//! Everything below the transaction goes through [`kv::KvService`], one request per range,
//! so the single-node service and a distributed one are interchangeable.

mod client;
mod error;
mod resolve;
mod transaction;
mod writes;

pub use client::{GcReport, TxnClient, TxnConfig};
pub use error::{Error, ErrorClass, Result};
pub use mvcc::{ScanOutcome, Span};
pub use transaction::{CommitStop, Savepoint, Transaction};
