//! Snapshot files: a range's records at one applied point, spooled to disk so that neither
//! the leader sending a snapshot nor the follower receiving it holds the range in memory,
//! and so that a follower that stops while installing one finishes it when it restarts.
//!
//! A file is a sequence of frames, each `u32 LE length | u32 LE CRC-32 of the body | body`.
//! Bodies are postcard-encoded [`Frame`]s: a `Header` with the range's span first, then
//! `Records` chunks of about [`CHUNK_BYTES`], then an `End` with the number of records, so a
//! truncated file is caught as surely as a flipped bit. The leader streams a file's bytes
//! as they are; the follower spools them into a file of its own
//! ([`SnapshotReceiver`]) and checks every frame before Raft is given the snapshot.

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use mvcc::Span;
use serde::{Deserialize, Serialize};

use crate::{decode, encode};

/// About how many bytes of keys and values one frame of records holds.
pub const CHUNK_BYTES: usize = 1 << 20;
/// A frame longer than this is corrupt (it exceeds one record of the largest value).
const MAX_FRAME: u32 = 300 << 20;
/// The pieces a file is streamed in.
const PIECE_BYTES: usize = 1 << 20;

/// A replicated record: keyspace index, key, value.
pub(crate) type Record = (u8, Vec<u8>, Vec<u8>);

#[derive(Serialize, Deserialize)]
enum Frame {
    Header { version: u8, span: Span },
    Records(Vec<Record>),
    End { records: u64 },
}

const VERSION: u8 = 1;

/// Names files uniquely within a process (with its id, across processes).
static NEXT: AtomicU64 = AtomicU64::new(0);

fn new_path(dir: &Path, range: u64, what: &str) -> io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    Ok(dir.join(format!("r{range}-{}-{n}.{what}.snap", std::process::id())))
}

/// The directory snapshot files go to when a state machine is given none.
pub fn default_spool_dir() -> PathBuf {
    std::env::temp_dir().join("tessera-snapshots")
}

/// Writes frames to a file.
struct FrameWriter {
    out: BufWriter<File>,
    bytes: u64,
}

impl FrameWriter {
    fn frame(&mut self, frame: &Frame) -> io::Result<()> {
        let body = encode(frame)?;
        let len = u32::try_from(body.len())
            .ok()
            .filter(|&l| l <= MAX_FRAME)
            .ok_or_else(|| io::Error::other(format!("snapshot frame of {} bytes", body.len())))?;
        self.out.write_all(&len.to_le_bytes())?;
        self.out.write_all(&crc32fast::hash(&body).to_le_bytes())?;
        self.out.write_all(&body)?;
        self.bytes += 8 + body.len() as u64;
        Ok(())
    }
}

/// Reads and checks the frames of a file.
struct FrameReader {
    input: BufReader<File>,
    path: PathBuf,
}

impl FrameReader {
    fn open(path: &Path) -> io::Result<Self> {
        Ok(FrameReader {
            input: BufReader::new(File::open(path)?),
            path: path.to_path_buf(),
        })
    }

    fn corrupt(&self, detail: impl std::fmt::Display) -> io::Error {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("snapshot file {}: {detail}", self.path.display()),
        )
    }

    fn next(&mut self) -> io::Result<Frame> {
        let mut head = [0u8; 8];
        self.input
            .read_exact(&mut head)
            .map_err(|e| self.corrupt(format!("truncated ({e})")))?;
        let len = u32::from_le_bytes(head[..4].try_into().expect("4 bytes"));
        let crc = u32::from_le_bytes(head[4..].try_into().expect("4 bytes"));
        if len > MAX_FRAME {
            return Err(self.corrupt(format!("a frame claims {len} bytes")));
        }
        let mut body = vec![0u8; len as usize];
        self.input
            .read_exact(&mut body)
            .map_err(|e| self.corrupt(format!("truncated ({e})")))?;
        if crc32fast::hash(&body) != crc {
            return Err(self.corrupt("checksum mismatch"));
        }
        decode(&body).map_err(|e| self.corrupt(e))
    }

    fn header(&mut self) -> io::Result<Span> {
        match self.next()? {
            Frame::Header { version, span } if version == VERSION => Ok(span),
            Frame::Header { version, .. } => Err(self.corrupt(format!("version {version}"))),
            _ => Err(self.corrupt("no header")),
        }
    }
}

/// Writes a snapshot file record by record.
pub(crate) struct SnapshotWriter {
    w: FrameWriter,
    file: SnapshotFile,
    chunk: Vec<Record>,
    chunk_bytes: usize,
    count: u64,
}

impl SnapshotWriter {
    /// Starts a snapshot of range `range`, holding the records of `span`, in `dir`.
    pub(crate) fn create(dir: &Path, range: u64, span: Span) -> io::Result<Self> {
        let path = new_path(dir, range, "out")?;
        // Removes the file if writing it fails.
        let file = SnapshotFile {
            path: Some(path.clone()),
            span: span.clone(),
            bytes: 0,
            keep: false,
        };
        let mut w = FrameWriter {
            out: BufWriter::new(File::create(&path)?),
            bytes: 0,
        };
        w.frame(&Frame::Header {
            version: VERSION,
            span,
        })?;
        Ok(SnapshotWriter {
            w,
            file,
            chunk: Vec::new(),
            chunk_bytes: 0,
            count: 0,
        })
    }

    pub(crate) fn push(&mut self, record: Record) -> io::Result<()> {
        self.chunk_bytes += record.1.len() + record.2.len();
        self.chunk.push(record);
        self.count += 1;
        if self.chunk_bytes >= CHUNK_BYTES {
            self.w
                .frame(&Frame::Records(std::mem::take(&mut self.chunk)))?;
            self.chunk_bytes = 0;
        }
        Ok(())
    }

    pub(crate) fn finish(mut self) -> io::Result<SnapshotFile> {
        if !self.chunk.is_empty() {
            self.w
                .frame(&Frame::Records(std::mem::take(&mut self.chunk)))?;
        }
        self.w.frame(&Frame::End {
            records: self.count,
        })?;
        self.w.out.flush()?;
        self.file.bytes = self.w.bytes;
        Ok(self.file)
    }
}

/// A snapshot's contents: a file, removed when this is dropped unless it is being
/// installed ([`SnapshotFile::keep`]). A snapshot Raft keeps only the metadata of (one
/// just built) has no file.
#[derive(Debug, Default)]
pub struct SnapshotFile {
    path: Option<PathBuf>,
    span: Span,
    bytes: u64,
    keep: bool,
}

impl SnapshotFile {
    /// A snapshot without contents (built only to purge the log up to it).
    pub(crate) fn none() -> Self {
        Self::default()
    }

    /// Opens the file at `path` and checks every frame of it.
    pub fn open(path: &Path) -> io::Result<Self> {
        let mut r = FrameReader::open(path)?;
        let span = r.header()?;
        let mut count = 0u64;
        loop {
            match r.next()? {
                Frame::Records(rs) => count += rs.len() as u64,
                Frame::End { records } if records == count => break,
                Frame::End { records } => {
                    return Err(r.corrupt(format!("{count} records, the end says {records}")));
                }
                Frame::Header { .. } => return Err(r.corrupt("a second header")),
            }
        }
        let bytes = std::fs::metadata(path)?.len();
        Ok(SnapshotFile {
            path: Some(path.to_path_buf()),
            span,
            bytes,
            keep: false,
        })
    }

    /// The keys the snapshot holds.
    pub fn span(&self) -> &Span {
        &self.span
    }

    /// The file's size.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub(crate) fn path(&self) -> io::Result<&Path> {
        self.path
            .as_deref()
            .ok_or_else(|| io::Error::other("the snapshot has no contents (built, not taken)"))
    }

    /// Keeps the file when this is dropped (an install that must be finished from it).
    pub(crate) fn keep(&mut self) {
        self.keep = true;
    }

    /// Calls `f` with each chunk of records, in order.
    pub(crate) fn for_each_chunk(
        &self,
        mut f: impl FnMut(Vec<Record>) -> io::Result<()>,
    ) -> io::Result<()> {
        let mut r = FrameReader::open(self.path()?)?;
        r.header()?;
        loop {
            match r.next()? {
                Frame::Records(rs) => f(rs)?,
                Frame::End { .. } => return Ok(()),
                Frame::Header { .. } => return Err(r.corrupt("a second header")),
            }
        }
    }

    /// Returns the file's bytes in pieces, to stream it.
    pub fn pieces(&self) -> io::Result<Pieces> {
        Ok(Pieces {
            file: File::open(self.path()?)?,
            done: false,
        })
    }

    /// Removes the file now.
    pub(crate) fn remove(mut self) {
        self.keep = false;
    }
}

impl Drop for SnapshotFile {
    fn drop(&mut self) {
        if let Some(p) = &self.path
            && !self.keep
            && let Err(e) = std::fs::remove_file(p)
            && e.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(path = %p.display(), "could not remove a snapshot file: {e}");
        }
    }
}

/// The bytes of a snapshot file, piece by piece.
pub struct Pieces {
    file: File,
    done: bool,
}

impl Iterator for Pieces {
    type Item = io::Result<Vec<u8>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let mut buf = vec![0u8; PIECE_BYTES];
        let mut filled = 0;
        while filled < buf.len() {
            match self.file.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
        if filled < buf.len() {
            self.done = true;
        }
        if filled == 0 {
            return None;
        }
        buf.truncate(filled);
        Some(Ok(buf))
    }
}

/// A snapshot being received: its bytes go to a file as they arrive.
pub struct SnapshotReceiver {
    out: BufWriter<File>,
    path: PathBuf,
    bytes: u64,
    finished: bool,
}

impl SnapshotReceiver {
    /// Starts receiving a snapshot of range `range` into a new file in `dir`.
    pub fn create(dir: &Path, range: u64) -> io::Result<Self> {
        let path = new_path(dir, range, "in")?;
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)?;
        Ok(SnapshotReceiver {
            out: BufWriter::new(file),
            path,
            bytes: 0,
            finished: false,
        })
    }

    /// Appends `piece`. A snapshot larger than `limit` bytes is refused.
    pub fn write(&mut self, piece: &[u8], limit: u64) -> io::Result<()> {
        self.bytes += piece.len() as u64;
        if self.bytes > limit {
            return Err(io::Error::other(format!(
                "snapshot larger than {limit} bytes"
            )));
        }
        self.out.write_all(piece)
    }

    /// Makes the file durable (an install interrupted by a crash is finished from it),
    /// then checks every frame of it.
    pub fn finish(mut self) -> io::Result<SnapshotFile> {
        self.out.flush()?;
        self.out.get_ref().sync_all()?;
        if let Some(dir) = self.path.parent() {
            File::open(dir)?.sync_all()?;
        }
        self.finished = true;
        match SnapshotFile::open(&self.path) {
            Ok(f) => Ok(f),
            Err(e) => {
                let _ = std::fs::remove_file(&self.path);
                Err(e)
            }
        }
    }
}

impl Drop for SnapshotReceiver {
    fn drop(&mut self) {
        if !self.finished {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(n: usize, value_len: usize) -> Vec<Record> {
        (0..n)
            .map(|i| {
                (
                    1u8,
                    format!("key{i:06}").into_bytes(),
                    vec![i as u8; value_len],
                )
            })
            .collect()
    }

    fn write(dir: &Path, span: Span, rs: &[Record]) -> SnapshotFile {
        let mut w = SnapshotWriter::create(dir, 7, span).unwrap();
        for r in rs {
            w.push(r.clone()).unwrap();
        }
        w.finish().unwrap()
    }

    fn copy(file: &SnapshotFile, dir: &Path) -> io::Result<SnapshotFile> {
        let mut rx = SnapshotReceiver::create(dir, 7)?;
        for p in file.pieces()? {
            rx.write(&p?, u64::MAX)?;
        }
        rx.finish()
    }

    #[test]
    fn a_snapshot_file_streams_and_reads_back_in_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let span = Span::new(b"a".to_vec(), b"z".to_vec());
        let rs = records(3_000, 1_000);
        let file = write(dir.path(), span.clone(), &rs);
        assert!(file.bytes() > 3_000_000);
        let got = copy(&file, dir.path()).unwrap();
        assert_eq!(got.span(), &span);
        let mut back = Vec::new();
        let mut chunks = 0;
        got.for_each_chunk(|c| {
            chunks += 1;
            back.extend(c);
            Ok(())
        })
        .unwrap();
        assert!(chunks >= 3, "{chunks} chunks");
        assert_eq!(back, rs);
        let (a, b) = (
            file.path().unwrap().to_owned(),
            got.path().unwrap().to_owned(),
        );
        drop((file, got));
        assert!(!a.exists() && !b.exists(), "files left behind");
    }

    #[test]
    fn a_damaged_or_truncated_snapshot_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(dir.path(), Span::default(), &records(500, 5_000));
        let bytes = std::fs::read(file.path().unwrap()).unwrap();
        for (what, damaged) in [
            ("flipped", {
                let mut b = bytes.clone();
                b[bytes.len() / 2] ^= 0x40;
                b
            }),
            ("truncated", bytes[..bytes.len() - 20].to_vec()),
            // The end frame (a 3-byte body) is missing.
            ("without its end", bytes[..bytes.len() - 11].to_vec()),
        ] {
            let mut rx = SnapshotReceiver::create(dir.path(), 7).unwrap();
            rx.write(&damaged, u64::MAX).unwrap();
            let err = rx.finish().unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{what}: {err}");
        }
        let mut rx = SnapshotReceiver::create(dir.path(), 7).unwrap();
        assert!(rx.write(&bytes, 1_000).is_err(), "over the limit");
        drop(rx);
        drop(file);
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(left.is_empty(), "files left behind: {left:?}");
    }
}
