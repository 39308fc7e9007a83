//! Framing: splits the byte stream into messages and decodes each one on its own.
//!
//! pgwire's message decoders read from whatever buffer they are handed and may panic on a
//! body shorter than its fields. Here each frame is cut out first (so a decoder never sees
//! the next message), decoded inside `catch_unwind`, and must be consumed exactly; anything
//! else is a protocol violation that ends the connection with FATAL 08P01, as PostgreSQL
//! does. Text in Query and Parse must be valid UTF-8 (pgwire would replace bad bytes).

use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};

use bytes::{Buf, BytesMut};
use pgwire_crate::messages::{
    DecodeContext, PgWireBackendMessage, PgWireFrontendMessage, ProtocolVersion,
};
use tokio_util::codec::{Decoder, Encoder};

/// Largest message accepted (PostgreSQL's limit: 1 GiB minus one byte).
pub const MAX_MESSAGE_LEN: usize = 0x3FFF_FFFF;
/// Largest startup packet (PostgreSQL's limit is 10,000 bytes).
pub const MAX_STARTUP_LEN: usize = 10_000;

const SSL_REQUEST: i32 = 80_877_103;
const GSSENC_REQUEST: i32 = 80_877_104;

/// A decoded frontend message, or one of the negotiation requests answered with one byte.
#[derive(Debug)]
pub enum Frontend {
    SslRequest,
    GssEncRequest,
    Message(PgWireFrontendMessage),
    /// A well-framed Query or Parse whose text is not valid UTF-8 (an ERROR, not FATAL).
    InvalidUtf8 {
        kind: u8,
    },
}

/// A fatal framing or decoding error.
#[derive(Debug)]
pub enum WireError {
    Io(io::Error),
    Protocol(String),
}

impl From<io::Error> for WireError {
    fn from(e: io::Error) -> Self {
        WireError::Io(e)
    }
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WireError::Io(e) => write!(f, "{e}"),
            WireError::Protocol(m) => f.write_str(m),
        }
    }
}

/// The server side codec.
pub struct WireCodec {
    startup: bool,
}

impl Default for WireCodec {
    fn default() -> Self {
        Self::new()
    }
}

impl WireCodec {
    /// Returns a codec expecting a startup packet first.
    pub fn new() -> Self {
        WireCodec { startup: true }
    }

    /// Switches to regular messages once the startup packet has been handled.
    pub fn startup_done(&mut self) {
        self.startup = false;
    }

    fn decode_startup(&mut self, src: &mut BytesMut) -> Result<Option<Frontend>, WireError> {
        if src.len() < 4 {
            return Ok(None);
        }
        let len = (&src[..4]).get_i32();
        if !(8..=MAX_STARTUP_LEN as i32).contains(&len) {
            return Err(WireError::Protocol(format!(
                "invalid length of startup packet: {len}"
            )));
        }
        if src.len() < 8 {
            return Ok(None);
        }
        let code = (&src[4..8]).get_i32();
        if src.len() < len as usize {
            return Ok(None);
        }
        if code == SSL_REQUEST || code == GSSENC_REQUEST {
            if len != 8 {
                return Err(WireError::Protocol(
                    "invalid length of SSL or GSSAPI request".into(),
                ));
            }
            src.advance(8);
            return Ok(Some(if code == SSL_REQUEST {
                Frontend::SslRequest
            } else {
                Frontend::GssEncRequest
            }));
        }
        let mut frame = src.split_to(len as usize);
        let mut ctx = DecodeContext::new(ProtocolVersion::PROTOCOL3_0);
        ctx.awaiting_frontend_ssl = false;
        ctx.awaiting_frontend_startup = true;
        decode_frame(&mut frame, &ctx).map(|m| Some(Frontend::Message(m)))
    }
}

fn decode_frame(
    frame: &mut BytesMut,
    ctx: &DecodeContext,
) -> Result<PgWireFrontendMessage, WireError> {
    let decoded = catch_unwind(AssertUnwindSafe(|| {
        PgWireFrontendMessage::decode(frame, ctx)
    }));
    match decoded {
        Ok(Ok(Some(m))) if frame.is_empty() => Ok(m),
        Ok(Ok(Some(_))) => Err(WireError::Protocol(
            "invalid message format: length does not match the contents".into(),
        )),
        Ok(Ok(None)) => Err(WireError::Protocol(
            "invalid message format: message is truncated".into(),
        )),
        Ok(Err(e)) => Err(WireError::Protocol(format!("invalid message: {e}"))),
        Err(_) => Err(WireError::Protocol(
            "invalid message format: message is shorter than its fields".into(),
        )),
    }
}

impl Decoder for WireCodec {
    type Item = Frontend;
    type Error = WireError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frontend>, WireError> {
        if self.startup {
            return self.decode_startup(src);
        }
        if src.len() < 5 {
            return Ok(None);
        }
        let kind = src[0];
        let len = (&src[1..5]).get_i32();
        if len < 4 || len as usize > MAX_MESSAGE_LEN {
            return Err(WireError::Protocol(format!(
                "invalid message length {len} for message type \"{}\"",
                kind as char
            )));
        }
        let total = 1 + len as usize;
        if src.len() < total {
            src.reserve(total - src.len());
            return Ok(None);
        }
        let mut frame = src.split_to(total);
        if matches!(kind, b'Q' | b'P') && !text_is_utf8(kind, &frame[5..]) {
            return Ok(Some(Frontend::InvalidUtf8 { kind }));
        }
        let mut ctx = DecodeContext::new(ProtocolVersion::PROTOCOL3_0);
        ctx.awaiting_frontend_ssl = false;
        ctx.awaiting_frontend_startup = false;
        decode_frame(&mut frame, &ctx).map(|m| Some(Frontend::Message(m)))
    }
}

/// Checks the text of a Query (its whole body) or a Parse (the statement name and the query,
/// the first two NUL-terminated strings; the parameter type OIDs after them are binary).
fn text_is_utf8(kind: u8, body: &[u8]) -> bool {
    let text = if kind == b'P' {
        let mut nuls = body
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == 0)
            .map(|(i, _)| i);
        let _ = nuls.next();
        match nuls.next() {
            Some(end) => &body[..end],
            None => body,
        }
    } else {
        body
    };
    std::str::from_utf8(text).is_ok()
}

/// What the server writes: a protocol message or a raw negotiation byte.
pub enum Backend {
    Message(PgWireBackendMessage),
    Byte(u8),
}

impl Encoder<Backend> for WireCodec {
    type Error = io::Error;

    fn encode(&mut self, item: Backend, dst: &mut BytesMut) -> Result<(), io::Error> {
        match item {
            Backend::Message(m) => m.encode(dst).map_err(|e| io::Error::other(e.to_string())),
            Backend::Byte(b) => {
                dst.extend_from_slice(&[b]);
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use bytes::BufMut;

    fn ready() -> WireCodec {
        let mut c = WireCodec::new();
        c.startup_done();
        c
    }

    #[test]
    fn decodes_a_query_split_across_reads() {
        let mut c = ready();
        let mut buf = BytesMut::new();
        buf.put_u8(b'Q');
        buf.put_i32(4 + 9);
        buf.put_slice(b"SELECT 1");
        let tail = buf.split_off(7);
        assert!(c.decode(&mut buf).unwrap().is_none());
        buf.unsplit(tail);
        buf.put_u8(0);
        match c.decode(&mut buf).unwrap() {
            Some(Frontend::Message(PgWireFrontendMessage::Query(q))) => {
                assert_eq!(q.query, "SELECT 1")
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(buf.is_empty());
    }

    #[test]
    fn a_bind_shorter_than_its_fields_is_a_protocol_error() {
        let mut c = ready();
        let mut buf = BytesMut::new();
        buf.put_u8(b'B');
        buf.put_i32(4 + 3);
        buf.put_slice(b"\0\0\x01"); // portal, statement, then half of a u16
        assert!(matches!(c.decode(&mut buf), Err(WireError::Protocol(_))));
    }

    #[test]
    fn bad_lengths_are_protocol_errors() {
        let mut c = ready();
        let mut buf = BytesMut::new();
        buf.put_u8(b'Q');
        buf.put_i32(2);
        assert!(matches!(c.decode(&mut buf), Err(WireError::Protocol(_))));
        let mut buf = BytesMut::new();
        buf.put_u8(b'Z');
        buf.put_i32(4);
        assert!(matches!(c.decode(&mut buf), Err(WireError::Protocol(_))));
        // A Sync that claims a body: the body is left over after decoding.
        let mut buf = BytesMut::new();
        buf.put_u8(b'S');
        buf.put_i32(8);
        buf.put_i32(0);
        assert!(matches!(c.decode(&mut buf), Err(WireError::Protocol(_))));
    }

    #[test]
    fn invalid_utf8_in_a_query_is_reported() {
        let mut c = ready();
        let mut buf = BytesMut::new();
        buf.put_u8(b'Q');
        buf.put_i32(4 + 4);
        buf.put_slice(b"\xff\xfe1\0");
        assert!(matches!(
            c.decode(&mut buf).unwrap(),
            Some(Frontend::InvalidUtf8 { kind: b'Q' })
        ));
    }

    #[test]
    fn parse_with_binary_type_oids_is_not_invalid_utf8() {
        let mut c = ready();
        let mut body = BytesMut::new();
        body.put_slice(b"\0SELECT $1\0");
        body.put_i16(1);
        body.put_u32(701); // 0x000002BD: not UTF-8 as bytes
        let mut buf = BytesMut::new();
        buf.put_u8(b'P');
        buf.put_i32(4 + body.len() as i32);
        buf.put_slice(&body);
        match c.decode(&mut buf).unwrap() {
            Some(Frontend::Message(PgWireFrontendMessage::Parse(p))) => {
                assert_eq!(p.type_oids, vec![701])
            }
            other => panic!("unexpected {other:?}"),
        }
        let mut buf = BytesMut::new();
        buf.put_u8(b'P');
        buf.put_i32(4 + 6);
        buf.put_slice(b"\0\xc3(\0\0\0");
        assert!(matches!(
            c.decode(&mut buf).unwrap(),
            Some(Frontend::InvalidUtf8 { kind: b'P' })
        ));
    }

    #[test]
    fn startup_and_ssl_request() {
        let mut c = WireCodec::new();
        let mut buf = BytesMut::new();
        buf.put_i32(8);
        buf.put_i32(SSL_REQUEST);
        assert!(matches!(
            c.decode(&mut buf).unwrap(),
            Some(Frontend::SslRequest)
        ));
        let mut body = BytesMut::new();
        body.put_i32(196_608);
        body.put_slice(b"user\0alice\0database\0db\0\0");
        buf.put_i32(4 + body.len() as i32);
        buf.put_slice(&body);
        match c.decode(&mut buf).unwrap() {
            Some(Frontend::Message(PgWireFrontendMessage::Startup(s))) => {
                assert_eq!(s.parameters.get("user").map(String::as_str), Some("alice"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
