//! The PostgreSQL wire protocol (v3) over [`sql::Session`]s.
//!
//! pgwire provides the message types; this crate frames and validates the byte stream
//! ([`codec`]), runs each connection's protocol state machine (startup, simple and extended
//! query, COPY in text, CSV and binary ([`copy_binary`]), cancel), and encodes values in text and binary ([`binary`]).

pub mod binary;
pub mod codec;
mod conn;
pub mod copy_binary;
mod server;
pub mod sqlstate;

pub use server::{PgConfig, PgServer, Shared, stopped};
