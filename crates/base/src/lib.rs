//! Vocabulary shared by every layer of Tessera: identities, timestamps, a clock and the size limits
//! that every layer enforces the same way.
//!
//! This crate sits at the bottom of the workspace and depends on nothing. It holds only what
//! two or more layers must agree on; anything owned by one layer lives in that layer.

mod clock;
mod ids;
mod limits;
mod timestamp;

pub use clock::{Clock, ManualClock, SystemClock};
pub use ids::{IndexId, TableId, TenantId};
pub use limits::{MAX_KEY_LEN, MAX_VALUE_LEN};
pub use timestamp::Timestamp;
