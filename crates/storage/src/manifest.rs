//! The store manifest: a small text file that identifies a directory as a Tessera store and
//! records the formats it was written with.
//!
//! ```text
//! tessera-store
//! format-version = 2
//! key-layout-version = 1
//! ```
//!
//! It is written once, atomically (temporary file, fsync, rename, fsync of the directory),
//! when the store is created, and checked every time it is opened: a store written by a
//! newer format is refused before anything else touches it. Unknown `name = value` lines
//! are kept for later fields (a cluster id, say) and ignored by older readers.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Version of the on-disk format written by this code: the keyspaces and how records in
/// them are framed. Bump it when old binaries must not open new stores.
///
/// - 1: the first format.
/// - 2: adds the `latest` keyspace (MVCC's newest-version index); a format-1 store lacks it,
///   so its data would read as missing, and it is refused.
pub const STORE_FORMAT_VERSION: u32 = 2;

/// The oldest store format this binary reads.
pub const OLDEST_READABLE_FORMAT: u32 = 2;

/// Name of the manifest file inside a store directory.
pub(crate) const MANIFEST_FILE: &str = "TESSERA_STORE";

const MAGIC: &str = "tessera-store";

/// The parsed manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Manifest {
    pub format_version: u32,
    pub key_layout_version: u32,
}

impl Manifest {
    pub(crate) fn current() -> Manifest {
        Manifest {
            format_version: STORE_FORMAT_VERSION,
            key_layout_version: codec::layout::KEY_LAYOUT_VERSION,
        }
    }

    fn render(&self) -> String {
        format!(
            "{MAGIC}\nformat-version = {}\nkey-layout-version = {}\n",
            self.format_version, self.key_layout_version
        )
    }

    fn parse(path: &Path, text: &str) -> Result<Manifest> {
        let not_a_store = |detail: String| Error::NotAStore {
            path: path.to_path_buf(),
            detail,
        };
        let mut lines = text.lines();
        if lines.next() != Some(MAGIC) {
            return Err(not_a_store(format!(
                "{MANIFEST_FILE} does not start with '{MAGIC}'"
            )));
        }
        let (mut format, mut layout) = (None, None);
        for line in lines.filter(|l| !l.trim().is_empty()) {
            let (name, value) = line.split_once('=').ok_or_else(|| {
                not_a_store(format!("malformed line in {MANIFEST_FILE}: {line:?}"))
            })?;
            let parse = |v: &str| {
                v.trim().parse::<u32>().map_err(|_| {
                    not_a_store(format!("malformed line in {MANIFEST_FILE}: {line:?}"))
                })
            };
            match name.trim() {
                "format-version" => format = Some(parse(value)?),
                "key-layout-version" => layout = Some(parse(value)?),
                _ => {}
            }
        }
        Ok(Manifest {
            format_version: format
                .ok_or_else(|| not_a_store(format!("{MANIFEST_FILE} has no format-version")))?,
            key_layout_version: layout
                .ok_or_else(|| not_a_store(format!("{MANIFEST_FILE} has no key-layout-version")))?,
        })
    }
}

/// Checks the manifest of an existing store, or creates one in an empty (or missing)
/// directory. Refuses a directory that holds other files, and a store of a newer format.
pub(crate) fn open_or_create(dir: &Path) -> Result<Manifest> {
    let io = |op| move |e| Error::io(op, e);
    fs::create_dir_all(dir).map_err(io("creating the store directory"))?;
    let path = dir.join(MANIFEST_FILE);
    match fs::read_to_string(&path) {
        Ok(text) => {
            let m = Manifest::parse(dir, &text)?;
            if m.format_version > STORE_FORMAT_VERSION {
                return Err(Error::NewerFormat {
                    path: dir.to_path_buf(),
                    found: m.format_version,
                    supported: STORE_FORMAT_VERSION,
                });
            }
            if m.format_version < OLDEST_READABLE_FORMAT {
                return Err(Error::OlderFormat {
                    path: dir.to_path_buf(),
                    found: m.format_version,
                    oldest: OLDEST_READABLE_FORMAT,
                });
            }
            if m.key_layout_version > codec::layout::KEY_LAYOUT_VERSION {
                return Err(Error::NewerFormat {
                    path: dir.to_path_buf(),
                    found: m.key_layout_version,
                    supported: codec::layout::KEY_LAYOUT_VERSION,
                });
            }
            Ok(m)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut entries = fs::read_dir(dir).map_err(io("listing the store directory"))?;
            if let Some(entry) = entries.next() {
                let name = entry
                    .map_err(io("listing the store directory"))?
                    .file_name();
                return Err(Error::NotAStore {
                    path: dir.to_path_buf(),
                    detail: format!(
                        "the directory is not empty (found {name:?}) and has no {MANIFEST_FILE}"
                    ),
                });
            }
            let m = Manifest::current();
            write_atomically(&path, m.render().as_bytes())?;
            Ok(m)
        }
        Err(e) => Err(Error::io("reading the store manifest", e)),
    }
}

/// Writes a file so that after a crash it either holds `data` or does not exist.
fn write_atomically(path: &Path, data: &[u8]) -> Result<()> {
    let io = |op| move |e| Error::io(op, e);
    let tmp: PathBuf = path.with_extension("tmp");
    let mut f = fs::File::create(&tmp).map_err(io("creating the store manifest"))?;
    f.write_all(data)
        .map_err(io("writing the store manifest"))?;
    f.sync_all().map_err(io("syncing the store manifest"))?;
    fs::rename(&tmp, path).map_err(io("renaming the store manifest"))?;
    if let Some(dir) = path.parent() {
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io("syncing the store directory"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_then_accepts_its_own_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("s");
        assert_eq!(open_or_create(&store).unwrap(), Manifest::current());
        assert_eq!(open_or_create(&store).unwrap(), Manifest::current());
    }

    #[test]
    fn refuses_a_newer_format() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join(MANIFEST_FILE),
            "tessera-store\nformat-version = 9\nkey-layout-version = 1\ncluster-id = x\n",
        )
        .unwrap();
        let err = open_or_create(dir.path()).unwrap_err();
        assert!(
            matches!(
                err,
                Error::NewerFormat {
                    found: 9,
                    supported: STORE_FORMAT_VERSION,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("format version 9"), "{err}");
    }

    #[test]
    fn refuses_a_format_too_old_to_read() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join(MANIFEST_FILE),
            "tessera-store\nformat-version = 1\nkey-layout-version = 1\n",
        )
        .unwrap();
        let err = open_or_create(dir.path()).unwrap_err();
        assert!(matches!(err, Error::OlderFormat { found: 1, .. }), "{err}");
        assert!(err.to_string().contains("older than the oldest"), "{err}");
    }

    #[test]
    fn refuses_foreign_directories() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("notes.txt"), "hello").unwrap();
        let err = open_or_create(dir.path()).unwrap_err();
        assert!(err.to_string().contains("not a Tessera store"), "{err}");

        fs::write(dir.path().join(MANIFEST_FILE), "something else\n").unwrap();
        let err = open_or_create(dir.path()).unwrap_err();
        assert!(err.to_string().contains("does not start with"), "{err}");

        fs::write(
            dir.path().join(MANIFEST_FILE),
            "tessera-store\nformat-version = x\n",
        )
        .unwrap();
        let err = open_or_create(dir.path()).unwrap_err();
        assert!(err.to_string().contains("malformed line"), "{err}");
    }
}
