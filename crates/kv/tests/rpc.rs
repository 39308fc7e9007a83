//! The node-to-node RPC of a cluster node: requests travel and answer over gRPC, and a
//! message from another cluster, for another node, or with an undecodable body is
//! refused without touching anything.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use base::{SystemClock, Timestamp};
use kv::node::{ClusterNode, NodeConfig, NodeService};
use kv::rpc::{self, pb};
use kv::{Request, Response};
use storage::{GroupCommit, MemoryEngine};

async fn serve_node() -> (Arc<ClusterNode<MemoryEngine>>, String) {
    serve_node_joining(Vec::new()).await
}

/// Starts a node that joins the nodes at `join` (none: it waits for init).
async fn serve_node_joining(join: Vec<String>) -> (Arc<ClusterNode<MemoryEngine>>, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let commit = Arc::new(GroupCommit::new(Arc::new(MemoryEngine::new())));
    let mut config = NodeConfig::new(addr.clone());
    config.join = join;
    let node = ClusterNode::open(commit, config, Arc::new(SystemClock))
        .await
        .unwrap();
    let service = NodeService::server(node.clone());
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    (node, addr)
}

fn get(key: &[u8]) -> Vec<u8> {
    rpc::encode(&Request::Get {
        keys: vec![key.to_vec()],
        ts: Timestamp::new(u64::MAX / 2),
        txn: None,
    })
}

#[tokio::test]
async fn members_are_served_and_strangers_refused() {
    let (node, addr) = serve_node().await;
    let mut client = rpc::client(&addr).unwrap();

    // Before init, the node serves no member.
    let header = |cluster: &str, to: u64| pb::Header {
        cluster_id: cluster.into(),
        from_node: 7,
        to_node: to,
    };
    let err = client
        .kv(pb::KvRequest {
            header: Some(header("", 0)),
            range: 1,
            body: get(b"\x02k"),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err}");
    assert!(err.message().contains("not part of a cluster"), "{err}");

    let ident = node.init(1, Vec::new()).await.unwrap();
    assert_eq!(ident.node_id, 1);
    let err = node.init(1, Vec::new()).await.unwrap_err();
    assert!(err.to_string().contains("already initialized"), "{err}");

    // A member's request is served.
    let reply = client
        .kv(pb::KvRequest {
            header: Some(header(&ident.cluster_id, 1)),
            range: 1,
            body: get(b"\x02k"),
        })
        .await
        .unwrap()
        .into_inner();
    let answer: kv::Result<Response> = rpc::decode_result(&reply.body, 1);
    assert_eq!(answer.unwrap(), Response::Values(vec![None]));

    // Another cluster's messages are refused, Raft and key-value alike.
    let err = client
        .kv(pb::KvRequest {
            header: Some(header("another-cluster", 1)),
            range: 1,
            body: get(b"\x02k"),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err}");
    assert!(err.message().contains("another-cluster"), "{err}");
    let err = client
        .raft(pb::RaftBatch {
            header: Some(header("another-cluster", 1)),
            messages: vec![pb::RaftMessage {
                range: 1,
                kind: 2,
                body: vec![1, 2, 3],
            }],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err}");

    // Snapshots: another cluster's stream is refused before a byte is kept; a member's
    // damaged stream is refused once received, and installs nothing.
    let span = node.store().unwrap().get(1).unwrap().desc().span;
    let snapshot_stream = |cluster: &str, data: Vec<u8>| {
        type Tc = raft::TypeConfig;
        let meta = rpc::encode(&(
            openraft::Vote::<openraft::type_config::alias::LeaderIdOf<Tc>>::new(1, 1),
            openraft::type_config::alias::SnapshotMetaOf::<Tc>::default(),
            span.clone(),
        ));
        let first = pb::SnapshotChunk {
            header: Some(header(cluster, 1)),
            range: 1,
            meta,
            data: Vec::new(),
        };
        let rest = pb::SnapshotChunk {
            header: None,
            range: 1,
            meta: Vec::new(),
            data,
        };
        futures::stream::iter([first, rest])
    };
    let err = client
        .snapshot(snapshot_stream("another-cluster", vec![0; 64]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err}");
    let reply = client
        .snapshot(snapshot_stream(
            &ident.cluster_id,
            vec![9, 0, 0, 0, 1, 2, 3, 4, 5],
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(reply.error.contains("refused"), "{reply:?}");

    // A message meant for another node (a stale address) is refused.
    let err = client
        .kv(pb::KvRequest {
            header: Some(header(&ident.cluster_id, 5)),
            range: 1,
            body: get(b"\x02k"),
        })
        .await
        .unwrap_err();
    assert!(err.message().contains("stale address"), "{err}");

    // Undecodable bodies get an error answer, and the replica keeps serving.
    let reply = client
        .kv(pb::KvRequest {
            header: Some(header(&ident.cluster_id, 1)),
            range: 1,
            body: vec![1, 0xff, 0xff, 0xff],
        })
        .await
        .unwrap()
        .into_inner();
    let answer: kv::Result<Response> = rpc::decode_result(&reply.body, 1);
    let err = answer.unwrap_err();
    assert!(err.to_string().contains("undecodable"), "{err}");
    let replies = client
        .raft(pb::RaftBatch {
            header: Some(header(&ident.cluster_id, 1)),
            messages: vec![pb::RaftMessage {
                range: 1,
                kind: 1,
                body: vec![1, 0xff],
            }],
        })
        .await
        .unwrap()
        .into_inner()
        .replies;
    assert!(!replies[0].error.is_empty(), "{replies:?}");
    let kv = node.kv().unwrap();
    let answer = kv::KvService::send(
        kv.as_ref(),
        Request::Get {
            keys: vec![b"\x02k".to_vec()],
            ts: Timestamp::new(u64::MAX / 2),
            txn: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(answer, Response::Values(vec![None]));
    node.shutdown().await;
}

/// A node that does not lead the meta range takes its timestamps from the one that does;
/// concurrent callers share calls, and every caller still gets its own block of
/// consecutive timestamps, disjoint from everyone else's and from the leader's own.
#[tokio::test]
async fn timestamps_from_another_node_are_unique_under_concurrency() {
    use kv::tso::TimestampOracle;
    let (first, first_addr) = serve_node().await;
    first.init(1, Vec::new()).await.unwrap();
    let (second, _) = serve_node_joining(vec![first_addr]).await;
    second.join().await.unwrap();
    let remote = second.tso().unwrap();
    let local = first.tso().unwrap();
    let mut calls = Vec::new();
    for i in 0..200u32 {
        let tso: Arc<dyn TimestampOracle> = if i % 5 == 0 {
            local.clone()
        } else {
            remote.clone()
        };
        let count = 1 + i % 4;
        calls.push(tokio::spawn(async move {
            (tso.timestamps(count).await.unwrap().get(), count)
        }));
    }
    let mut taken = Vec::new();
    for c in calls {
        let (first_ts, count) = c.await.unwrap();
        taken.extend((0..u64::from(count)).map(|k| first_ts + k));
    }
    let n = taken.len();
    taken.sort_unstable();
    taken.dedup();
    assert_eq!(taken.len(), n, "a timestamp was handed out twice");
    // And later ones are above all of them.
    let after = remote.timestamp().await.unwrap().get();
    assert!(after > *taken.last().unwrap());
}

/// Under steady load from many callers on a node that forwards to the oracle, every caller
/// keeps getting answers: none is kept making calls for the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_timestamp_callers_are_all_served_under_steady_load() {
    use kv::tso::TimestampOracle;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let (first, first_addr) = serve_node().await;
    first.init(1, Vec::new()).await.unwrap();
    let (second, _) = serve_node_joining(vec![first_addr]).await;
    second.join().await.unwrap();
    let tso = second.tso().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let served: Vec<Arc<AtomicU64>> = (0..16).map(|_| Arc::default()).collect();
    let callers: Vec<_> = served
        .iter()
        .map(|count| {
            let (tso, stop, count) = (tso.clone(), stop.clone(), count.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    tso.timestamp().await.unwrap();
                    count.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    // Read while the load still runs: a caller stuck serving the others would show 0.
    let counts: Vec<u64> = served.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    stop.store(true, Ordering::Relaxed);
    for c in callers {
        c.await.unwrap();
    }
    assert!(counts.iter().all(|&c| c > 0), "callers served: {counts:?}");
}
