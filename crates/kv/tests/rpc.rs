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
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let commit = Arc::new(GroupCommit::new(Arc::new(MemoryEngine::new())));
    let node = ClusterNode::open(commit, NodeConfig::new(addr.clone()), Arc::new(SystemClock))
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

    let ident = node.init(1).await.unwrap();
    assert_eq!(ident.node_id, 1);
    let err = node.init(1).await.unwrap_err();
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
