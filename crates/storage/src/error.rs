//! Storage errors.
//!
//! An error names what went wrong in terms an operator can act on: which limit a key broke,
//! which file is corrupt, that the disk is full. [`Error::is_fatal`] separates errors after
//! which the engine must not be written again (a failed sync may have lost data that the
//! page cache had already dropped) from errors that reject one request and change nothing.

use std::path::PathBuf;

/// An error from the storage engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A key is empty; the engine stores only non-empty keys. Nothing was written.
    #[error("empty key: the storage engine does not store empty keys")]
    EmptyKey,
    /// A key is longer than the engine accepts. Nothing was written.
    #[error("key of {len} bytes is larger than the limit of {max} bytes")]
    KeyTooLarge { len: usize, max: usize },
    /// A value is longer than the engine accepts. Nothing was written.
    #[error("value of {len} bytes is larger than the limit of {max} bytes")]
    ValueTooLarge { len: usize, max: usize },
    /// The disk has no space left.
    #[error("disk full: no space left on device during {op}")]
    DiskFull { op: &'static str },
    /// Another I/O error.
    #[error("I/O error during {op}: {source}")]
    Io {
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// Stored data failed a checksum or could not be decoded.
    #[error("corrupt store: {detail}")]
    Corruption { detail: String },
    /// The store was written by a newer version of Tessera.
    #[error(
        "store at {path} has format version {found}, newer than the {supported} this binary \
         supports; upgrade the binary"
    )]
    NewerFormat {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    /// The store was written by an older version of Tessera whose format this binary no
    /// longer reads (there is no in-place upgrade before 1.0).
    #[error(
        "store at {path} has format version {found}, older than the oldest this binary reads \
         ({oldest}); export it with the binary that wrote it (COPY ... TO STDOUT) and load it \
         into a new store"
    )]
    OlderFormat {
        path: PathBuf,
        found: u32,
        oldest: u32,
    },
    /// The directory holds something other than a Tessera store.
    #[error("{path} is not a Tessera store: {detail}")]
    NotAStore { path: PathBuf, detail: String },
    /// Another process has the store open.
    #[error("store at {path} is locked by another process")]
    Locked { path: PathBuf },
    /// An earlier write or sync failed, so the engine refuses further writes: what the disk
    /// holds can no longer be trusted to match what was acknowledged. Restart to recover.
    #[error("storage engine refuses writes after an earlier failure ({cause}); restart the node")]
    Poisoned { cause: String },
}

impl Error {
    /// Returns true if the engine must not be written again after this error.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            Error::DiskFull { .. }
                | Error::Io { .. }
                | Error::Corruption { .. }
                | Error::Poisoned { .. }
        )
    }

    /// Classifies an I/O error, recognising a full disk.
    pub fn io(op: &'static str, source: std::io::Error) -> Error {
        if source.kind() == std::io::ErrorKind::StorageFull {
            Error::DiskFull { op }
        } else {
            Error::Io { op, source }
        }
    }

    /// Translates an error of the fjall engine met during `op` on the store at `path`.
    pub(crate) fn from_fjall(op: &'static str, path: &std::path::Path, e: fjall::Error) -> Error {
        use fjall::LsmError;
        let corrupt = |what: String| Error::Corruption {
            detail: format!("{what} (during {op}, store {})", path.display()),
        };
        match e {
            fjall::Error::Io(source) | fjall::Error::Storage(LsmError::Io(source)) => {
                Error::io(op, source)
            }
            fjall::Error::Storage(LsmError::ChecksumMismatch { .. }) => {
                corrupt("a data block failed its checksum".to_string())
            }
            fjall::Error::Storage(LsmError::Unrecoverable) => {
                corrupt("a table file is missing, truncated or unreadable".to_string())
            }
            fjall::Error::Storage(inner) => corrupt(format!("a data file is damaged: {inner:?}")),
            fjall::Error::JournalRecovery(inner) => {
                corrupt(format!("a journal record is damaged: {inner:?}"))
            }
            fjall::Error::InvalidVersion(v) => corrupt(format!(
                "the data directory has an unknown format version {v:?}"
            )),
            fjall::Error::Poisoned => Error::Poisoned {
                cause: "an earlier journal write or flush failed".to_string(),
            },
            other => corrupt(format!("{other:?}")),
        }
    }
}

/// The result of a storage operation.
pub type Result<T> = std::result::Result<T, Error>;
