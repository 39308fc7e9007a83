//! Order-preserving encodings of the values a key can hold.
//!
//! Every value is written as a tag byte followed by a payload, and the bytes compare in the
//! same order as the values. Encodings are self-delimiting (no encoding is a prefix of
//! another), so a composite key is just the concatenation of its columns' encodings and it
//! sorts column by column.
//!
//! ```text
//!  tag          payload                          value
//!  0x00         -                                NULL, sorted first
//!  0x10 / 0x11  -                                false / true
//!  0x12         bytes, 0x00 -> 0x00 0xFF, end 0x00 0x01   byte string or UTF-8 text
//!  0x13         8 bytes, sign-flipped IEEE 754   float (-0 = 0, one NaN above +inf)
//!  0x77..0x7F   0..8 low bytes of the value      negative integer (more bytes = smaller)
//!  0x80..0x88   0..8 significant bytes, BE       zero or positive integer
//!  0xFF         -                                NULL, sorted last
//! ```
//!
//! A descending column is encoded as above and then every byte is inverted, which reverses
//! the order because the encodings are prefix-free. The NULL markers are written after the
//! inversion, so `Nulls::First` and `Nulls::Last` mean what they say in either direction;
//! no other tag ever starts with 0x00 or 0xFF, inverted or not, so a decoder recognises a
//! NULL without knowing the direction.
//!
//! Small integers stay small (0 is one byte, 1..=255 two) and rarely contain 0x00, which
//! matters because MVCC escapes 0x00 once more when it frames a key with a timestamp.

use crate::error::{Error, Result};

/// Sort direction of one key column.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Direction {
    #[default]
    Asc,
    Desc,
}

impl Direction {
    fn mask(self) -> u8 {
        match self {
            Direction::Asc => 0x00,
            Direction::Desc => 0xFF,
        }
    }
}

/// Where NULLs sort in a key column, in the column's own order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Nulls {
    First,
    Last,
}

/// Tag bytes, in the ascending encoding.
pub mod tag {
    pub const NULL_FIRST: u8 = 0x00;
    pub const FALSE: u8 = 0x10;
    pub const TRUE: u8 = 0x11;
    pub const BYTES: u8 = 0x12;
    pub const FLOAT: u8 = 0x13;
    /// Tag of the most negative integers (eight payload bytes).
    pub const INT_NEG_8: u8 = 0x77;
    /// Tag of -1 (no payload bytes).
    pub const INT_NEG_0: u8 = 0x7F;
    /// Tag of 0 (no payload bytes).
    pub const INT_ZERO: u8 = 0x80;
    /// Tag of the largest integers (eight payload bytes).
    pub const INT_POS_8: u8 = 0x88;
    pub const NULL_LAST: u8 = 0xFF;
}

const ESCAPE: u8 = 0x00;
const ESCAPED_ZERO: u8 = 0xFF;
const TERMINATOR: u8 = 0x01;

/// Appends a NULL marker.
pub fn put_null(buf: &mut Vec<u8>, nulls: Nulls) {
    buf.push(match nulls {
        Nulls::First => tag::NULL_FIRST,
        Nulls::Last => tag::NULL_LAST,
    });
}

/// Appends a boolean.
pub fn put_bool(buf: &mut Vec<u8>, v: bool, dir: Direction) {
    buf.push(if v { tag::TRUE } else { tag::FALSE } ^ dir.mask());
}

/// Appends an unsigned integer. It shares the encoding of non-negative `i64`s.
pub fn put_u64(buf: &mut Vec<u8>, v: u64, dir: Direction) {
    let n = significant_bytes(v);
    let mask = dir.mask();
    buf.push((tag::INT_ZERO + n as u8) ^ mask);
    buf.extend(v.to_be_bytes()[8 - n..].iter().map(|b| b ^ mask));
}

/// Appends a signed integer.
pub fn put_i64(buf: &mut Vec<u8>, v: i64, dir: Direction) {
    if v >= 0 {
        return put_u64(buf, v as u64, dir);
    }
    // For a negative value, !v is its distance below -1; the fewer bytes that needs, the
    // larger the value, and within one length the low bytes of v itself sort correctly.
    let n = significant_bytes(!v as u64);
    let mask = dir.mask();
    buf.push((tag::INT_NEG_0 - n as u8) ^ mask);
    buf.extend((v as u64).to_be_bytes()[8 - n..].iter().map(|b| b ^ mask));
}

/// Appends a float. -0.0 encodes as 0.0 and every NaN as one NaN that sorts above +inf,
/// as in PostgreSQL.
pub fn put_f64(buf: &mut Vec<u8>, v: f64, dir: Direction) {
    let bits = if v.is_nan() {
        0x7FF8_0000_0000_0000
    } else if v == 0.0 {
        0
    } else {
        v.to_bits()
    };
    let ordered = if bits >> 63 == 1 {
        !bits
    } else {
        bits | 1 << 63
    };
    let mask = dir.mask();
    buf.push(tag::FLOAT ^ mask);
    buf.extend(ordered.to_be_bytes().iter().map(|b| b ^ mask));
}

/// Appends a byte string.
pub fn put_bytes(buf: &mut Vec<u8>, v: &[u8], dir: Direction) {
    let start = buf.len();
    buf.push(tag::BYTES);
    put_escaped(buf, v);
    invert_from(buf, start, dir);
}

/// Appends a UTF-8 string; it sorts by its bytes, which is code point order.
pub fn put_str(buf: &mut Vec<u8>, v: &str, dir: Direction) {
    put_bytes(buf, v.as_bytes(), dir);
}

/// Appends `v` escaped and terminated, with no tag: 0x00 becomes 0x00 0xFF and the end is
/// marked by 0x00 0x01. The result sorts like `v` and no escaped string is a prefix of
/// another, so anything appended after it (such as an MVCC timestamp) sorts within it.
pub fn put_escaped(buf: &mut Vec<u8>, v: &[u8]) {
    buf.reserve(v.len() + 2);
    for chunk in v.split_inclusive(|&b| b == ESCAPE) {
        buf.extend_from_slice(chunk);
        if chunk.last() == Some(&ESCAPE) {
            buf.push(ESCAPED_ZERO);
        }
    }
    buf.push(ESCAPE);
    buf.push(TERMINATOR);
}

/// Decodes an escaped string written by [`put_escaped`] at the start of `input`. Returns
/// the string and the number of input bytes it took.
pub fn get_escaped(input: &[u8]) -> Result<(Vec<u8>, usize)> {
    let mut d = Decoder::new(input);
    let v = d.escaped(Direction::Asc)?;
    Ok((v, input.len() - d.remaining().len()))
}

/// Returns the smallest key greater than every key that starts with `prefix`, or `None`
/// when no such key exists (the prefix is empty or all 0xFF).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let last = prefix.iter().rposition(|&b| b != 0xFF)?;
    let mut end = prefix[..=last].to_vec();
    end[last] += 1;
    Some(end)
}

fn significant_bytes(v: u64) -> usize {
    (64 - v.leading_zeros() as usize).div_ceil(8)
}

fn invert_from(buf: &mut [u8], start: usize, dir: Direction) {
    if dir == Direction::Desc {
        buf[start..].iter_mut().for_each(|b| *b = !*b);
    }
}

/// Reads values back from an encoded key, one column at a time. The caller knows each
/// column's type and direction (from the schema) and calls the matching method.
#[derive(Clone, Debug)]
pub struct Decoder<'a> {
    rest: &'a [u8],
}

impl<'a> Decoder<'a> {
    /// Starts decoding at the beginning of `input`.
    pub fn new(input: &'a [u8]) -> Self {
        Decoder { rest: input }
    }

    /// Returns the bytes not decoded yet.
    pub fn remaining(&self) -> &'a [u8] {
        self.rest
    }

    /// Returns true when every byte has been decoded.
    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// Fails unless every byte has been decoded.
    pub fn finish(self) -> Result<()> {
        match self.rest.len() {
            0 => Ok(()),
            left => Err(Error::TrailingBytes { left }),
        }
    }

    /// Returns the next raw byte without consuming it.
    pub fn peek(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    /// Consumes a NULL marker if the next value is NULL, and says whether it was.
    pub fn null(&mut self) -> Result<bool> {
        match self.peek() {
            Some(tag::NULL_FIRST | tag::NULL_LAST) => {
                self.rest = &self.rest[1..];
                Ok(true)
            }
            Some(_) => Ok(false),
            None => Err(Error::Truncated { what: "a value" }),
        }
    }

    /// Decodes a boolean.
    pub fn bool(&mut self, dir: Direction) -> Result<bool> {
        match self.byte(dir, "a boolean")? {
            tag::FALSE => Ok(false),
            tag::TRUE => Ok(true),
            found => Err(Error::UnexpectedTag {
                expected: "a boolean",
                found,
            }),
        }
    }

    /// Decodes an unsigned integer.
    pub fn u64(&mut self, dir: Direction) -> Result<u64> {
        match self.byte(dir, "an integer")? {
            t @ tag::INT_ZERO..=tag::INT_POS_8 => {
                self.be_bytes(usize::from(t - tag::INT_ZERO), dir)
            }
            found => Err(Error::UnexpectedTag {
                expected: "an unsigned integer",
                found,
            }),
        }
    }

    /// Decodes a signed integer.
    pub fn i64(&mut self, dir: Direction) -> Result<i64> {
        match self.byte(dir, "an integer")? {
            t @ tag::INT_ZERO..=tag::INT_POS_8 => {
                let v = self.be_bytes(usize::from(t - tag::INT_ZERO), dir)?;
                i64::try_from(v).map_err(|_| Error::UnexpectedTag {
                    expected: "a signed integer",
                    found: t,
                })
            }
            t @ tag::INT_NEG_8..=tag::INT_NEG_0 => {
                let n = usize::from(tag::INT_NEG_0 - t);
                let low = self.be_bytes(n, dir)?;
                let high = if n == 8 { 0 } else { u64::MAX << (8 * n) };
                Ok((high | low) as i64)
            }
            found => Err(Error::UnexpectedTag {
                expected: "a signed integer",
                found,
            }),
        }
    }

    /// Decodes a float.
    pub fn f64(&mut self, dir: Direction) -> Result<f64> {
        match self.byte(dir, "a float")? {
            tag::FLOAT => {
                let ordered = self.be_bytes(8, dir)?;
                let bits = if ordered >> 63 == 1 {
                    ordered & !(1 << 63)
                } else {
                    !ordered
                };
                Ok(f64::from_bits(bits))
            }
            found => Err(Error::UnexpectedTag {
                expected: "a float",
                found,
            }),
        }
    }

    /// Decodes a byte string.
    pub fn bytes(&mut self, dir: Direction) -> Result<Vec<u8>> {
        match self.byte(dir, "a byte string")? {
            tag::BYTES => self.escaped(dir),
            found => Err(Error::UnexpectedTag {
                expected: "a byte string",
                found,
            }),
        }
    }

    /// Decodes a UTF-8 string.
    pub fn string(&mut self, dir: Direction) -> Result<String> {
        String::from_utf8(self.bytes(dir)?).map_err(|_| Error::InvalidUtf8)
    }

    fn escaped(&mut self, dir: Direction) -> Result<Vec<u8>> {
        let mask = dir.mask();
        let mut out = Vec::new();
        let mut i = 0;
        loop {
            let b = *self.rest.get(i).ok_or(Error::Truncated {
                what: "a byte string",
            })? ^ mask;
            if b != ESCAPE {
                out.push(b);
                i += 1;
                continue;
            }
            let next = *self.rest.get(i + 1).ok_or(Error::Truncated {
                what: "a byte string",
            })? ^ mask;
            match next {
                ESCAPED_ZERO => out.push(0),
                TERMINATOR => {
                    self.rest = &self.rest[i + 2..];
                    return Ok(out);
                }
                found => return Err(Error::BadEscape { found }),
            }
            i += 2;
        }
    }

    fn byte(&mut self, dir: Direction, what: &'static str) -> Result<u8> {
        let (&b, rest) = self.rest.split_first().ok_or(Error::Truncated { what })?;
        self.rest = rest;
        Ok(b ^ dir.mask())
    }

    fn be_bytes(&mut self, n: usize, dir: Direction) -> Result<u64> {
        if self.rest.len() < n {
            return Err(Error::Truncated { what: "an integer" });
        }
        let (head, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(head
            .iter()
            .fold(0u64, |acc, &b| acc << 8 | u64::from(b ^ dir.mask())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn enc<T: ?Sized>(put: fn(&mut Vec<u8>, &T, Direction), v: &T, dir: Direction) -> Vec<u8> {
        let mut buf = Vec::new();
        put(&mut buf, v, dir);
        buf
    }

    fn i(v: &i64, dir: Direction) -> Vec<u8> {
        enc(|b, v, d| put_i64(b, *v, d), v, dir)
    }

    fn f(v: &f64, dir: Direction) -> Vec<u8> {
        enc(|b, v, d| put_f64(b, *v, d), v, dir)
    }

    fn s(v: &[u8], dir: Direction) -> Vec<u8> {
        enc(put_bytes, v, dir)
    }

    #[test]
    fn small_integers_are_short() {
        assert_eq!(i(&0, Direction::Asc), vec![0x80]);
        assert_eq!(i(&1, Direction::Asc), vec![0x81, 0x01]);
        assert_eq!(i(&-1, Direction::Asc), vec![0x7F]);
        assert_eq!(i(&-2, Direction::Asc), vec![0x7E, 0xFE]);
        assert_eq!(i(&i64::MIN, Direction::Asc).len(), 9);
    }

    #[test]
    fn integer_edges_round_trip_in_order() {
        let values = [
            i64::MIN,
            i64::MIN + 1,
            -65537,
            -65536,
            -257,
            -256,
            -255,
            -2,
            -1,
            0,
            1,
            255,
            256,
            65535,
            i64::MAX - 1,
            i64::MAX,
        ];
        for dir in [Direction::Asc, Direction::Desc] {
            let encoded: Vec<_> = values.iter().map(|v| i(v, dir)).collect();
            for (v, e) in values.iter().zip(&encoded) {
                let mut d = Decoder::new(e);
                assert_eq!(d.i64(dir).unwrap(), *v);
                d.finish().unwrap();
            }
            let mut sorted = encoded.clone();
            sorted.sort();
            if dir == Direction::Desc {
                sorted.reverse();
            }
            assert_eq!(sorted, encoded, "{dir:?}");
        }
    }

    #[test]
    fn float_specials() {
        assert_eq!(f(&-0.0, Direction::Asc), f(&0.0, Direction::Asc));
        assert!(f(&f64::INFINITY, Direction::Asc) < f(&f64::NAN, Direction::Asc));
        assert!(f(&f64::NEG_INFINITY, Direction::Asc) < f(&f64::MIN, Direction::Asc));
        let nan = Decoder::new(&f(&f64::NAN, Direction::Asc))
            .f64(Direction::Asc)
            .unwrap();
        assert!(nan.is_nan());
    }

    #[test]
    fn strings_with_zero_bytes_sort_correctly() {
        let a = s(b"a", Direction::Asc);
        let a0 = s(b"a\0", Direction::Asc);
        let ab = s(b"ab", Direction::Asc);
        assert!(a < a0 && a0 < ab);
        assert_eq!(Decoder::new(&a0).bytes(Direction::Asc).unwrap(), b"a\0");
    }

    #[test]
    fn nulls_sort_where_asked_in_both_directions() {
        for dir in [Direction::Asc, Direction::Desc] {
            let mut first = Vec::new();
            put_null(&mut first, Nulls::First);
            let mut last = Vec::new();
            put_null(&mut last, Nulls::Last);
            for v in [i64::MIN, 0, i64::MAX] {
                assert!(first < i(&v, dir) && i(&v, dir) < last);
            }
            for v in [&b""[..], b"\0", b"\xff\xff"] {
                assert!(first < s(v, dir) && s(v, dir) < last);
            }
            let mut d = Decoder::new(&first);
            assert!(d.null().unwrap());
            let e = i(&5, dir);
            assert!(!Decoder::new(&e).null().unwrap());
        }
    }

    #[test]
    fn decode_errors_are_precise() {
        assert_eq!(
            Decoder::new(&[0x82, 0x01]).i64(Direction::Asc),
            Err(Error::Truncated { what: "an integer" })
        );
        assert_eq!(
            Decoder::new(&[0x12, b'a']).bytes(Direction::Asc),
            Err(Error::Truncated {
                what: "a byte string"
            })
        );
        assert_eq!(
            Decoder::new(&[0x12, 0x00, 0x05]).bytes(Direction::Asc),
            Err(Error::BadEscape { found: 0x05 })
        );
        assert_eq!(
            Decoder::new(&[0x13]).i64(Direction::Asc),
            Err(Error::UnexpectedTag {
                expected: "a signed integer",
                found: 0x13
            })
        );
        assert_eq!(
            Decoder::new(&[0x12, 0xC3, 0x28, 0x00, 0x01]).string(Direction::Asc),
            Err(Error::InvalidUtf8)
        );
        assert_eq!(
            Decoder::new(&[0x80, 0x80]).finish(),
            Err(Error::TrailingBytes { left: 2 })
        );
    }

    #[test]
    fn prefix_end_skips_trailing_ff() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(b"a\xff\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff"), None);
        assert_eq!(prefix_end(b""), None);
    }

    /// One key column of any type, for property tests of composite keys.
    #[derive(Clone, Debug, PartialEq, PartialOrd)]
    enum Col {
        Null,
        Bool(bool),
        Int(i64),
        Float(f64),
        Bytes(Vec<u8>),
    }

    fn col() -> impl Strategy<Value = Col> {
        prop_oneof![
            Just(Col::Null),
            any::<bool>().prop_map(Col::Bool),
            any::<i64>().prop_map(Col::Int),
            (-1e300f64..1e300).prop_map(Col::Float),
            proptest::collection::vec(
                prop_oneof![Just(0u8), Just(1), Just(0xFF), any::<u8>()],
                0..6
            )
            .prop_map(Col::Bytes),
        ]
    }

    fn put_col(buf: &mut Vec<u8>, c: &Col, dir: Direction, nulls: Nulls) {
        match c {
            Col::Null => put_null(buf, nulls),
            Col::Bool(v) => put_bool(buf, *v, dir),
            Col::Int(v) => put_i64(buf, *v, dir),
            Col::Float(v) => put_f64(buf, *v, dir),
            Col::Bytes(v) => put_bytes(buf, v, dir),
        }
    }

    fn get_col(d: &mut Decoder<'_>, like: &Col, dir: Direction) -> Col {
        if d.null().unwrap() {
            return Col::Null;
        }
        match like {
            Col::Null => unreachable!("a NULL column decodes above"),
            Col::Bool(_) => Col::Bool(d.bool(dir).unwrap()),
            Col::Int(_) => Col::Int(d.i64(dir).unwrap()),
            Col::Float(_) => Col::Float(d.f64(dir).unwrap()),
            Col::Bytes(_) => Col::Bytes(d.bytes(dir).unwrap()),
        }
    }

    /// Compares two values of one column the way the key order must: NULL placement from
    /// `nulls`, then the value order, reversed for a descending column.
    fn cmp_col(a: &Col, b: &Col, dir: Direction, nulls: Nulls) -> std::cmp::Ordering {
        use std::cmp::Ordering::*;
        match (a, b) {
            (Col::Null, Col::Null) => Equal,
            (Col::Null, _) => {
                if nulls == Nulls::First {
                    Less
                } else {
                    Greater
                }
            }
            (_, Col::Null) => {
                if nulls == Nulls::First {
                    Greater
                } else {
                    Less
                }
            }
            _ => {
                let o = a.partial_cmp(b).unwrap();
                if dir == Direction::Desc {
                    o.reverse()
                } else {
                    o
                }
            }
        }
    }

    fn same_type(a: &Col, b: &Col) -> bool {
        matches!(a, Col::Null)
            || matches!(b, Col::Null)
            || std::mem::discriminant(a) == std::mem::discriminant(b)
    }

    proptest! {
        #[test]
        fn integers_round_trip_and_keep_order(a: i64, b: i64, desc: bool) {
            let dir = if desc { Direction::Desc } else { Direction::Asc };
            let (ea, eb) = (i(&a, dir), i(&b, dir));
            prop_assert_eq!(Decoder::new(&ea).i64(dir).unwrap(), a);
            let expected = if desc { b.cmp(&a) } else { a.cmp(&b) };
            prop_assert_eq!(ea.cmp(&eb), expected);
        }

        #[test]
        fn unsigned_round_trip_and_keep_order(a: u64, b: u64) {
            let (mut ea, mut eb) = (Vec::new(), Vec::new());
            put_u64(&mut ea, a, Direction::Asc);
            put_u64(&mut eb, b, Direction::Asc);
            prop_assert_eq!(Decoder::new(&ea).u64(Direction::Asc).unwrap(), a);
            prop_assert_eq!(ea.cmp(&eb), a.cmp(&b));
        }

        #[test]
        fn floats_round_trip_and_keep_order(a: f64, b: f64) {
            prop_assume!(!a.is_nan() && !b.is_nan());
            let (ea, eb) = (f(&a, Direction::Asc), f(&b, Direction::Asc));
            let back = Decoder::new(&ea).f64(Direction::Asc).unwrap();
            prop_assert!(back == a);
            prop_assert_eq!(ea.cmp(&eb), a.partial_cmp(&b).unwrap());
        }

        #[test]
        fn bytes_round_trip_and_keep_order(a: Vec<u8>, b: Vec<u8>, desc: bool) {
            let dir = if desc { Direction::Desc } else { Direction::Asc };
            let (ea, eb) = (s(&a, dir), s(&b, dir));
            prop_assert_eq!(Decoder::new(&ea).bytes(dir).unwrap(), a.clone());
            let expected = if desc { b.cmp(&a) } else { a.cmp(&b) };
            prop_assert_eq!(ea.cmp(&eb), expected);
        }

        #[test]
        fn escaped_round_trips_and_frames(a: Vec<u8>, b: Vec<u8>, ts_a: u64, ts_b: u64) {
            let (mut ea, mut eb) = (Vec::new(), Vec::new());
            put_escaped(&mut ea, &a);
            put_escaped(&mut eb, &b);
            let (back, used) = get_escaped(&ea).unwrap();
            prop_assert_eq!(&back, &a);
            prop_assert_eq!(used, ea.len());
            // Anything appended after the escaped string sorts within the string's place.
            ea.extend_from_slice(&ts_a.to_be_bytes());
            eb.extend_from_slice(&ts_b.to_be_bytes());
            prop_assert_eq!(ea.cmp(&eb), a.cmp(&b).then(ts_a.cmp(&ts_b)));
        }

        #[test]
        fn composite_keys_sort_column_by_column(
            schema in proptest::collection::vec((any::<bool>(), any::<bool>()), 1..4),
            a in proptest::collection::vec(col(), 4),
            b in proptest::collection::vec(col(), 4),
        ) {
            let cols: Vec<(Direction, Nulls)> = schema
                .iter()
                .map(|&(desc, nf)| (
                    if desc { Direction::Desc } else { Direction::Asc },
                    if nf { Nulls::First } else { Nulls::Last },
                ))
                .collect();
            // Give both keys the same column types, as a schema would.
            let b: Vec<Col> = a.iter().zip(b).map(|(x, y)| if same_type(x, &y) { y } else { x.clone() }).collect();
            let (mut ea, mut eb) = (Vec::new(), Vec::new());
            let mut expected = std::cmp::Ordering::Equal;
            for (i, &(dir, nulls)) in cols.iter().enumerate() {
                put_col(&mut ea, &a[i], dir, nulls);
                put_col(&mut eb, &b[i], dir, nulls);
                expected = expected.then(cmp_col(&a[i], &b[i], dir, nulls));
            }
            prop_assert_eq!(ea.cmp(&eb), expected);
            let mut d = Decoder::new(&ea);
            for (i, &(dir, _)) in cols.iter().enumerate() {
                let like = if matches!(a[i], Col::Null) { &b[i] } else { &a[i] };
                let got = get_col(&mut d, if matches!(like, Col::Null) { &Col::Int(0) } else { like }, dir);
                prop_assert_eq!(&got, &a[i]);
            }
            prop_assert!(d.finish().is_ok());
        }
    }
}
