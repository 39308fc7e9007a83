//! Node-to-node RPC on gRPC (tonic): the generated service, the encoding of the bodies it
//! carries, and the clients a node keeps for its peers.
//!
//! Every message between members carries the cluster id ([`pb::Header`]); a node refuses
//! one from another cluster. Bodies are postcard-encoded Rust types behind a format byte
//! ([`encode`], [`decode`]), so a body from an incompatible version is refused, never
//! misread.

pub mod peers;

use std::time::Duration;

use base::Timestamp;
use mvcc::LockInfo;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::Error;

/// The generated gRPC code.
#[allow(clippy::all, clippy::pedantic, missing_docs, unused_qualifications)]
pub mod pb {
    tonic::include_proto!("tessera.node.v1");
}

/// The format version of every body.
const BODY_FORMAT_V1: u8 = 1;

/// The largest message a node sends or accepts (snapshots of a range travel in one).
pub const MAX_MESSAGE_BYTES: usize = 512 << 20;

/// How long a client waits for a connection to a peer.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Encodes a body.
pub fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    let mut out = vec![BODY_FORMAT_V1];
    // Serializing our own types into a Vec cannot fail.
    out.extend(postcard::to_allocvec(v).unwrap_or_default());
    out
}

/// Decodes a body, refusing an unknown format.
pub fn decode<T: DeserializeOwned>(b: &[u8]) -> Result<T, String> {
    match b.split_first() {
        Some((&BODY_FORMAT_V1, rest)) => {
            postcard::from_bytes(rest).map_err(|e| format!("undecodable message body: {e}"))
        }
        Some((v, _)) => Err(format!(
            "message body has format {v}, this node understands {BODY_FORMAT_V1}"
        )),
        None => Err("empty message body".into()),
    }
}

/// A key-value error as it travels between nodes.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum WireError {
    KeyIsLocked(LockInfo),
    WriteConflict {
        key: Vec<u8>,
        start_ts: Timestamp,
        conflict_start_ts: Timestamp,
        conflict_commit_ts: Timestamp,
    },
    ReadConflict {
        key: Vec<u8>,
        read_ts: Timestamp,
        conflict_ts: Timestamp,
        commit_ts: Timestamp,
    },
    ReadLocked {
        key: Vec<u8>,
        lock_ts: Timestamp,
        commit_ts: Timestamp,
    },
    TxnAborted {
        key: Vec<u8>,
        start_ts: Timestamp,
    },
    AlreadyCommitted {
        start_ts: Timestamp,
        commit_ts: Timestamp,
    },
    InvalidCommitTs {
        commit_ts: Timestamp,
        lock_ts: Timestamp,
    },
    KeyTooLarge {
        len: usize,
        max: usize,
    },
    ValueTooLarge {
        len: usize,
        max: usize,
    },
    Corrupt {
        key: Vec<u8>,
        detail: String,
    },
    Storage(String),
    Tso(String),
    ReadInFlight {
        key: Vec<u8>,
    },
    CrossRange(String),
    DeadlinePassed {
        commit_ts: Timestamp,
        deadline: Timestamp,
    },
    Shutdown,
    NotLeaseholder {
        range: u64,
        node: u64,
        leader: Option<u64>,
    },
    RangeNotFound {
        range: u64,
        node: u64,
    },
    KeyOutsideRange {
        range: u64,
        key: Vec<u8>,
        owner: Option<crate::api::RangeDesc>,
    },
    NodeUnreachable {
        node: u64,
        detail: String,
    },
    Unavailable {
        range: u64,
        detail: String,
    },
    Ambiguous(String),
    Unsupported(String),
}

impl From<Error> for WireError {
    fn from(e: Error) -> Self {
        use mvcc::Error as M;
        match e {
            Error::Mvcc(m) => match m {
                M::KeyIsLocked(l) => WireError::KeyIsLocked(*l),
                M::WriteConflict {
                    key,
                    start_ts,
                    conflict_start_ts,
                    conflict_commit_ts,
                } => WireError::WriteConflict {
                    key,
                    start_ts,
                    conflict_start_ts,
                    conflict_commit_ts,
                },
                M::ReadConflict {
                    key,
                    read_ts,
                    conflict_ts,
                    commit_ts,
                } => WireError::ReadConflict {
                    key,
                    read_ts,
                    conflict_ts,
                    commit_ts,
                },
                M::ReadLocked {
                    key,
                    lock_ts,
                    commit_ts,
                } => WireError::ReadLocked {
                    key,
                    lock_ts,
                    commit_ts,
                },
                M::TxnAborted { key, start_ts } => WireError::TxnAborted { key, start_ts },
                M::AlreadyCommitted {
                    start_ts,
                    commit_ts,
                } => WireError::AlreadyCommitted {
                    start_ts,
                    commit_ts,
                },
                M::InvalidCommitTs { commit_ts, lock_ts } => {
                    WireError::InvalidCommitTs { commit_ts, lock_ts }
                }
                M::KeyTooLarge { len, max } => WireError::KeyTooLarge { len, max },
                M::ValueTooLarge { len, max } => WireError::ValueTooLarge { len, max },
                M::Corrupt { key, detail } => WireError::Corrupt { key, detail },
                M::Storage(s) => WireError::Storage(s.to_string()),
            },
            Error::Tso(s) => WireError::Tso(s),
            Error::ReadInFlight { key } => WireError::ReadInFlight { key },
            Error::CrossRange(s) => WireError::CrossRange(s),
            Error::DeadlinePassed {
                commit_ts,
                deadline,
            } => WireError::DeadlinePassed {
                commit_ts,
                deadline,
            },
            Error::Shutdown => WireError::Shutdown,
            Error::NotLeaseholder {
                range,
                node,
                leader,
            } => WireError::NotLeaseholder {
                range,
                node,
                leader,
            },
            Error::RangeNotFound { range, node } => WireError::RangeNotFound { range, node },
            Error::KeyOutsideRange { range, key, owner } => {
                WireError::KeyOutsideRange { range, key, owner }
            }
            Error::NodeUnreachable { node, detail } => WireError::NodeUnreachable { node, detail },
            Error::Unavailable { range, detail } => WireError::Unavailable { range, detail },
            Error::Ambiguous(s) => WireError::Ambiguous(s),
            Error::Unsupported(s) => WireError::Unsupported(s),
        }
    }
}

impl From<WireError> for Error {
    fn from(e: WireError) -> Self {
        use mvcc::Error as M;
        let m = |e: M| Error::Mvcc(e);
        match e {
            WireError::KeyIsLocked(l) => m(M::KeyIsLocked(Box::new(l))),
            WireError::WriteConflict {
                key,
                start_ts,
                conflict_start_ts,
                conflict_commit_ts,
            } => m(M::WriteConflict {
                key,
                start_ts,
                conflict_start_ts,
                conflict_commit_ts,
            }),
            WireError::ReadConflict {
                key,
                read_ts,
                conflict_ts,
                commit_ts,
            } => m(M::ReadConflict {
                key,
                read_ts,
                conflict_ts,
                commit_ts,
            }),
            WireError::ReadLocked {
                key,
                lock_ts,
                commit_ts,
            } => m(M::ReadLocked {
                key,
                lock_ts,
                commit_ts,
            }),
            WireError::TxnAborted { key, start_ts } => m(M::TxnAborted { key, start_ts }),
            WireError::AlreadyCommitted {
                start_ts,
                commit_ts,
            } => m(M::AlreadyCommitted {
                start_ts,
                commit_ts,
            }),
            WireError::InvalidCommitTs { commit_ts, lock_ts } => {
                m(M::InvalidCommitTs { commit_ts, lock_ts })
            }
            WireError::KeyTooLarge { len, max } => m(M::KeyTooLarge { len, max }),
            WireError::ValueTooLarge { len, max } => m(M::ValueTooLarge { len, max }),
            WireError::Corrupt { key, detail } => m(M::Corrupt { key, detail }),
            WireError::Storage(detail) => m(M::Storage(storage::Error::Io {
                op: "a request on another node",
                source: std::io::Error::other(detail),
            })),
            WireError::Tso(s) => Error::Tso(s),
            WireError::ReadInFlight { key } => Error::ReadInFlight { key },
            WireError::CrossRange(s) => Error::CrossRange(s),
            WireError::DeadlinePassed {
                commit_ts,
                deadline,
            } => Error::DeadlinePassed {
                commit_ts,
                deadline,
            },
            WireError::Shutdown => Error::Shutdown,
            WireError::NotLeaseholder {
                range,
                node,
                leader,
            } => Error::NotLeaseholder {
                range,
                node,
                leader,
            },
            WireError::RangeNotFound { range, node } => Error::RangeNotFound { range, node },
            WireError::KeyOutsideRange { range, key, owner } => {
                Error::KeyOutsideRange { range, key, owner }
            }
            WireError::NodeUnreachable { node, detail } => Error::NodeUnreachable { node, detail },
            WireError::Unavailable { range, detail } => Error::Unavailable { range, detail },
            WireError::Ambiguous(s) => Error::Ambiguous(s),
            WireError::Unsupported(s) => Error::Unsupported(s),
        }
    }
}

/// Encodes a key-value result.
pub fn encode_result<T: Serialize>(r: crate::Result<T>) -> Vec<u8> {
    encode(&r.map_err(WireError::from))
}

/// Decodes a key-value result; an undecodable body is an error of node `from`.
pub fn decode_result<T: DeserializeOwned>(b: &[u8], from: u64) -> crate::Result<T> {
    let r: Result<T, WireError> =
        decode(b).map_err(|detail| Error::NodeUnreachable { node: from, detail })?;
    r.map_err(Error::from)
}

/// Returns true if some error in `status`'s chain of causes satisfies `pred`.
fn any_cause(
    status: &tonic::Status,
    pred: impl Fn(&(dyn std::error::Error + 'static)) -> bool,
) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(status);
    while let Some(e) = source {
        if pred(e) {
            return true;
        }
        source = e.source();
    }
    false
}

/// Returns true if a call failed because nothing listens at the peer's address (its
/// process is gone or restarting): a surer sign of a dead node than a slow answer.
pub fn refused(status: &tonic::Status) -> bool {
    any_cause(status, |e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused)
            || e.to_string().contains("Connection refused")
    })
}

/// Returns true if a failed call never reached the peer: no connection could be made, so
/// the request was not sent and retrying it elsewhere is safe even if it is not
/// idempotent.
pub fn never_sent(status: &tonic::Status) -> bool {
    any_cause(status, |e| {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::TimedOut
            )
        {
            return true;
        }
        let text = e.to_string();
        text.contains("tcp connect error") || text.contains("error trying to connect")
    })
}

/// Returns a lazily connecting channel to `addr` (`host:port`).
pub fn channel(addr: &str) -> Result<tonic::transport::Channel, String> {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| format!("bad address {addr:?}: {e}"))?
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(2))
        .keep_alive_timeout(Duration::from_secs(2));
    Ok(endpoint.connect_lazy())
}

/// Returns a client of the node at `addr`.
pub fn client(
    addr: &str,
) -> Result<pb::node_client::NodeClient<tonic::transport::Channel>, String> {
    Ok(pb::node_client::NodeClient::new(channel(addr)?)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_survive_the_wire() {
        let e = Error::NotLeaseholder {
            range: 3,
            node: 2,
            leader: Some(1),
        };
        let back: crate::Result<()> = decode_result(&encode_result::<()>(Err(e)), 2);
        assert!(
            matches!(
                back,
                Err(Error::NotLeaseholder {
                    range: 3,
                    node: 2,
                    leader: Some(1)
                })
            ),
            "{back:?}"
        );
        let conflict = Error::Mvcc(mvcc::Error::WriteConflict {
            key: b"k".to_vec(),
            start_ts: Timestamp::new(5),
            conflict_start_ts: Timestamp::new(6),
            conflict_commit_ts: Timestamp::new(7),
        });
        let back: crate::Result<()> = decode_result(&encode_result::<()>(Err(conflict)), 2);
        let back = back.unwrap_err();
        assert!(back.is_retryable(), "{back}");
        assert!(back.to_string().contains("write conflict"), "{back}");
    }

    #[test]
    fn a_body_of_another_format_is_refused() {
        let mut body = encode(&7u64);
        assert_eq!(decode::<u64>(&body), Ok(7));
        body[0] = 9;
        let err = decode::<u64>(&body).unwrap_err();
        assert!(err.contains("format 9"), "{err}");
        assert!(decode::<u64>(&[]).is_err());
    }
}
