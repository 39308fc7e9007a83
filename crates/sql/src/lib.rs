//! SQL: from statement text to results, over the transaction API.

pub mod cast;
pub mod datetime;
mod error;
pub mod json;
pub mod rowcodec;
pub mod textio;
pub mod types;
pub mod value;

pub use error::{Error, ErrorKind, Result};
pub use types::SqlType;
pub use value::{Row, Value};
