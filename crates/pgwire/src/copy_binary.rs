//! PostgreSQL's binary COPY format: an 11-byte signature, a flags word and a header
//! extension, then tuples (a 16-bit field count, each field a 32-bit length, -1 for NULL,
//! and its binary value), ended by a field count of -1.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use sql::{Error, ErrorKind, SqlType, Value};

use crate::binary;

const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";

fn bad(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::BadCopyFileFormat, msg)
}

/// Decodes a binary COPY stream that arrives in arbitrary CopyData pieces.
#[derive(Default)]
pub struct Reader {
    buf: BytesMut,
    header_done: bool,
    ended: bool,
}

impl Reader {
    /// Adds `data` and returns the complete rows it finishes.
    pub fn feed(&mut self, data: &[u8], types: &[SqlType]) -> Result<Vec<Vec<Value>>, Error> {
        if self.ended {
            return if data.is_empty() {
                Ok(vec![])
            } else {
                Err(bad("data after the binary COPY trailer"))
            };
        }
        self.buf.extend_from_slice(data);
        let mut rows = Vec::new();
        if !self.header_done {
            if self.buf.len() < SIGNATURE.len() + 8 {
                return Ok(rows);
            }
            if &self.buf[..SIGNATURE.len()] != SIGNATURE {
                return Err(bad("COPY file signature not recognized"));
            }
            let flags = u32::from_be_bytes(self.buf[11..15].try_into().expect("4 bytes"));
            if flags & (1 << 16) != 0 {
                return Err(bad("invalid COPY file header (WITH OIDS)"));
            }
            if flags >> 16 != 0 {
                return Err(bad("unrecognized critical flags in COPY file header"));
            }
            let ext = u32::from_be_bytes(self.buf[15..19].try_into().expect("4 bytes")) as usize;
            if self.buf.len() < 19 + ext {
                return Ok(rows);
            }
            self.buf.advance(19 + ext);
            self.header_done = true;
        }
        while let Some(row) = self.next_row(types)? {
            rows.push(row);
        }
        Ok(rows)
    }

    /// Checks the stream ended properly (called at CopyDone).
    pub fn finish(&self) -> Result<(), Error> {
        if !self.buf.is_empty() || !self.header_done {
            return Err(bad("unexpected EOF in COPY data"));
        }
        Ok(())
    }

    fn next_row(&mut self, types: &[SqlType]) -> Result<Option<Vec<Value>>, Error> {
        if self.ended || self.buf.len() < 2 {
            return Ok(None);
        }
        let count = i16::from_be_bytes([self.buf[0], self.buf[1]]);
        if count == -1 {
            self.buf.advance(2);
            self.ended = true;
            if !self.buf.is_empty() {
                return Err(bad("data after the binary COPY trailer"));
            }
            return Ok(None);
        }
        if usize::try_from(count).ok() != Some(types.len()) {
            return Err(bad(format!(
                "row field count is {count}, expected {}",
                types.len()
            )));
        }
        // Find the row's end first, so a partial row waits for more data.
        let mut at = 2;
        for _ in 0..types.len() {
            let Some(len) = self.buf.get(at..at + 4) else {
                return Ok(None);
            };
            let len = i32::from_be_bytes(len.try_into().expect("4 bytes"));
            at += 4;
            if len >= 0 {
                at += len as usize;
            } else if len != -1 {
                return Err(bad(format!("invalid field length {len}")));
            }
        }
        if self.buf.len() < at {
            return Ok(None);
        }
        let mut row = self.buf.split_to(at).freeze();
        row.advance(2);
        let mut out = Vec::with_capacity(types.len());
        for ty in types {
            let len = row.get_i32();
            if len == -1 {
                out.push(Value::Null);
            } else {
                let v = row.split_to(len as usize);
                out.push(binary::decode(&v, ty)?);
            }
        }
        Ok(Some(out))
    }
}

/// Encodes rows as one binary COPY stream, a CopyData payload per piece.
pub fn write(types: &[SqlType], rows: &[Vec<Value>]) -> Result<Vec<Bytes>, Error> {
    let mut pieces = Vec::with_capacity(rows.len() + 2);
    let mut head = BytesMut::new();
    head.put_slice(SIGNATURE);
    head.put_u32(0);
    head.put_u32(0);
    pieces.push(head.freeze());
    for r in rows {
        let mut b = BytesMut::new();
        b.put_i16(types.len() as i16);
        for (v, ty) in r.iter().zip(types) {
            binary::put_value(v, ty, &mut b)?;
        }
        pieces.push(b.freeze());
    }
    pieces.push(Bytes::from_static(&[0xff, 0xff]));
    Ok(pieces)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_in_any_pieces() {
        let types = vec![SqlType::Int4, SqlType::Text, SqlType::Bool];
        let rows = vec![
            vec![Value::Int(1), Value::Text("a\tb".into()), Value::Bool(true)],
            vec![Value::Int(-7), Value::Null, Value::Bool(false)],
        ];
        let stream: Vec<u8> = write(&types, &rows).unwrap().concat();
        for piece in [1, 3, 7, stream.len()] {
            let mut r = Reader::default();
            let mut got = Vec::new();
            for chunk in stream.chunks(piece) {
                got.extend(r.feed(chunk, &types).unwrap());
            }
            r.finish().unwrap();
            assert_eq!(got, rows, "piece size {piece}");
        }
    }

    #[test]
    fn rejects_bad_signature_count_and_truncation() {
        let types = vec![SqlType::Int4];
        let mut r = Reader::default();
        assert!(
            r.feed(b"PGCOPX\n\xff\r\n\0\0\0\0\0\0\0\0\0", &types)
                .is_err()
        );
        let stream: Vec<u8> = write(&types, &[vec![Value::Int(5)]]).unwrap().concat();
        let mut r = Reader::default();
        assert!(r.feed(&stream, &[SqlType::Int4, SqlType::Int4]).is_err());
        let mut r = Reader::default();
        r.feed(&stream[..stream.len() - 4], &types).unwrap();
        assert!(r.finish().is_err());
    }
}
