//! SQL: from statement text to results, over the transaction API.
//!
//! The pipeline is parse ([`parse`]) → bind ([`binder`], resolving names
//! against the [`catalog`] into a [`plan`]) → execute ([`executor`]), driven
//! per connection by a [`session::Session`].

pub mod binder;
pub mod cast;
pub mod catalog;
pub mod copy;
pub mod datetime;
pub mod ddl;
mod error;
pub mod executor;
pub mod expr;
pub mod functions;
pub mod json;
pub mod ops;
pub mod parse;
pub mod pg_catalog;
pub mod plan;
pub mod rowcodec;
pub mod sequences;
pub mod session;
pub mod textio;
pub mod types;
pub mod value;

pub use error::{Error, ErrorKind, Result};
pub use session::{Outcome, Session, SqlEngine, TxnStatus};
pub use types::SqlType;
pub use value::{Row, Value};
