//! Byte encodings whose order is the order of the values they encode, and the layout of
//! Tessera's key space.
//!
//! Everything Tessera stores lives in one sorted key space. A range is a contiguous span of
//! it and a scan is one seek followed by a walk, so keys must compare, byte by byte, in the
//! order of the values they encode: that is what [`key`] provides, for every type a primary
//! key or an index can hold, ascending or descending, with NULLs first or last. [`layout`]
//! divides the key space between the system, range-local data and tenants' tables.
//!
//! Encodings here are persisted: changing one is a format change (see
//! [`layout::KEY_LAYOUT_VERSION`]).

mod error;
pub mod key;
pub mod layout;

pub use error::{Error, Result};
pub use key::{Decoder, Direction, Nulls};
