//! Size limits for user keys and values.
//!
//! They are enforced where data enters the system (the transaction layer and the storage
//! engine), so that an oversized write fails with a clear error instead of being cut short
//! or stalling replication later on. Storage-level keys carry some framing (escaping and a
//! timestamp suffix in MVCC), so the storage engine allows a margin above these.

/// Longest user key, in bytes (after order-preserving encoding).
pub const MAX_KEY_LEN: usize = 16 * 1024;

/// Longest user value, in bytes.
pub const MAX_VALUE_LEN: usize = 16 * 1024 * 1024;
