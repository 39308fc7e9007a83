//! A client of a cluster of processes from outside it: the transactional key-value API
//! over the nodes' gRPC service, with the same router as a node (`DistKv`) and timestamps
//! from the meta range's leaseholder. Benchmarks and tools use it; it holds no replica.
//!
//! It starts knowing one range (the whole key space, the meta range's id) and learns the
//! others from the nodes' `KeyOutsideRange` answers, as a node's router does after a split.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use base::Timestamp;

use super::{GrpcTransport, NodeDirectory, describe, initial_ranges};
use crate::error::{Error, Result};
use crate::replica::Store;
use crate::router::{DistKv, RouterConfig};
use crate::rpc::pb;
use crate::rpc::peers::Peers;
use crate::tso::TimestampOracle;

/// How long a timestamp request keeps trying the nodes.
const TSO_DEADLINE: Duration = Duration::from_secs(10);

/// A connection to a cluster of processes.
pub struct RemoteClient {
    kv: Arc<DistKv>,
    tso: Arc<RemoteTso>,
}

impl RemoteClient {
    /// Connects through the first of `addrs` (node RPC addresses) that answers.
    pub async fn connect(addrs: &[String]) -> std::result::Result<Self, String> {
        let mut last = String::from("no address given");
        for addr in addrs {
            let mut client = crate::rpc::client(addr)?;
            let reply = match client.status(pb::StatusRequest { header: None }).await {
                Ok(r) => r.into_inner(),
                Err(s) => {
                    last = format!("{addr}: {}", describe(&s));
                    continue;
                }
            };
            if reply.cluster_id.is_empty() {
                last = format!("{addr}: the node is not part of a cluster yet");
                continue;
            }
            let peers = Peers::default();
            peers.set_header(&reply.cluster_id, 0);
            for n in reply.nodes {
                peers.learn(n);
            }
            let directory = Arc::new(NodeDirectory::new(initial_ranges(&[]), peers.clone()));
            let transport = Arc::new(GrpcTransport::<storage::MemoryEngine> {
                me: 0,
                store: Arc::new(Store::new(0, peers.stats().clone())),
                peers: peers.clone(),
            });
            return Ok(RemoteClient {
                kv: Arc::new(DistKv::new(directory, transport, RouterConfig::default())),
                tso: Arc::new(RemoteTso {
                    peers,
                    hint: Mutex::new(None),
                }),
            });
        }
        Err(format!("cannot reach the cluster: {last}"))
    }

    /// Returns the key-value service.
    pub fn kv(&self) -> Arc<DistKv> {
        self.kv.clone()
    }

    /// Returns the cluster's timestamp oracle.
    pub fn tso(&self) -> Arc<dyn TimestampOracle> {
        self.tso.clone()
    }
}

/// Timestamps from the meta range's leaseholder, found by asking the nodes.
struct RemoteTso {
    peers: Peers,
    /// The node that answered last.
    hint: Mutex<Option<u64>>,
}

#[async_trait]
impl TimestampOracle for RemoteTso {
    async fn timestamps(&self, count: u32) -> Result<Timestamp> {
        let started = tokio::time::Instant::now();
        loop {
            let hint = *self.hint.lock().unwrap_or_else(|e| e.into_inner());
            let mut nodes: Vec<u64> = hint.into_iter().collect();
            nodes.extend(
                self.peers
                    .book()
                    .iter()
                    .map(|n| n.id)
                    .filter(|&n| Some(n) != hint),
            );
            let mut last = None;
            for node in nodes {
                match super::tso::ask(&self.peers, node, count).await {
                    Ok(ts) => {
                        *self.hint.lock().unwrap_or_else(|e| e.into_inner()) = Some(node);
                        return Ok(ts);
                    }
                    Err(e) if e.is_routing() => last = Some(e),
                    Err(e) => return Err(e),
                }
            }
            if started.elapsed() >= TSO_DEADLINE {
                return Err(Error::Tso(format!(
                    "no node handed out timestamps in {TSO_DEADLINE:?} (last: {last:?})"
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
