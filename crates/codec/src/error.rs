//! Errors from decoding bytes that do not hold what the caller expects.

/// A decoding error. Encoding never fails.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The input ended in the middle of a value.
    #[error("truncated key: input ended while decoding {what}")]
    Truncated { what: &'static str },
    /// A type tag was not the one expected at this position.
    #[error("invalid key: expected {expected}, found tag byte {found:#04x}")]
    UnexpectedTag { expected: &'static str, found: u8 },
    /// An escape sequence in a byte string was malformed.
    #[error("invalid key: malformed escape byte {found:#04x} in a byte string")]
    BadEscape { found: u8 },
    /// A decoded string was not valid UTF-8.
    #[error("invalid key: string is not valid UTF-8")]
    InvalidUtf8,
    /// Bytes were left over after the last expected value.
    #[error("invalid key: {left} unexpected trailing bytes")]
    TrailingBytes { left: usize },
}

/// The result of a decoding step.
pub type Result<T> = std::result::Result<T, Error>;
