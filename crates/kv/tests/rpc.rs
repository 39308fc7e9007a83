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
    let commit = Arc::new(GroupCommit::new(Arc::new(MemoryEngine::new())));
    serve(commit, join, |_| {}).await
}

/// Starts a node on `commit` that joins the nodes at `join`, its settings changed by `set`.
async fn serve(
    commit: Arc<GroupCommit<MemoryEngine>>,
    join: Vec<String>,
    set: impl FnOnce(&mut NodeConfig),
) -> (Arc<ClusterNode<MemoryEngine>>, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let mut config = NodeConfig::new(addr.clone());
    config.join = join;
    set(&mut config);
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

/// The replicated records of a store whose key contains `marker`.
fn records_with(commit: &GroupCommit<MemoryEngine>, marker: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    use storage::{Keyspace, ReadView};
    let mut out = Vec::new();
    for ks in [Keyspace::Mvcc, Keyspace::Locks, Keyspace::Latest] {
        for kv in commit.engine().scan(
            ks,
            std::ops::Bound::Unbounded,
            std::ops::Bound::Unbounded,
            false,
        ) {
            let (k, v) = kv.unwrap();
            if k.windows(marker.len()).any(|w| w == marker) {
                out.push((k, v));
            }
        }
    }
    out
}

/// A node that joins after the range's log was purged gets the range (several MiB) as a
/// snapshot streamed over gRPC in many pieces, spooled to its store's directory, and
/// installed whole; no spool file is left on either side.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joining_node_gets_a_range_of_megabytes_by_streamed_snapshot() {
    use kv::KvService;
    use kv::tso::TimestampOracle;
    let spool = tempfile::tempdir().unwrap();
    let dir = |n: &str| spool.path().join(n);
    let (c1, c2) = (
        Arc::new(GroupCommit::new(Arc::new(MemoryEngine::new()))),
        Arc::new(GroupCommit::new(Arc::new(MemoryEngine::new()))),
    );
    let small_log = |d: std::path::PathBuf| {
        move |c: &mut NodeConfig| {
            c.snapshot_after_logs = 5;
            c.spool_dir = Some(d);
        }
    };
    let (first, first_addr) = serve(c1.clone(), Vec::new(), small_log(dir("n1"))).await;
    first.init(3, Vec::new()).await.unwrap();
    let kv = first.kv().unwrap();
    let tso = first.tso().unwrap();
    // 40 rows of 100 KiB: about 4 MiB, 4 pieces or more, and far more entries than the
    // log keeps.
    let key = |i: u32| format!("\x05snapshot-row-{i:03}").into_bytes();
    for i in 0..40u32 {
        let start_ts = tso.timestamp().await.unwrap();
        kv.send(Request::OnePhaseCommit {
            mutations: vec![mvcc::Mutation::Put {
                key: key(i),
                value: vec![i as u8; 100 << 10],
            }],
            reads: Default::default(),
            start_ts,
            deadline: None,
            reserved: None,
        })
        .await
        .unwrap();
    }
    let range = first
        .store()
        .unwrap()
        .replicas()
        .into_iter()
        .find(|r| r.desc().span.contains(&key(0)))
        .unwrap()
        .desc()
        .id;
    // The log node 2 would need is gone: only a snapshot can bring it the rows.
    let leader = first.store().unwrap().get(range).unwrap();
    let purged = async {
        use openraft::async_runtime::WatchReceiver;
        loop {
            let m = leader.raft().metrics().borrow_watched().clone();
            if m.purged.is_some_and(|p| p.index > 10) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(20), purged)
        .await
        .expect("the range's log was never purged");

    let (second, _) = serve(c2.clone(), vec![first_addr], small_log(dir("n2"))).await;
    second.join().await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let want = records_with(&c1, b"snapshot-row-");
        let snapshot = second.store().and_then(|s| s.get(range)).and_then(|r| {
            use openraft::async_runtime::WatchReceiver;
            r.raft().metrics().borrow_watched().snapshot
        });
        if snapshot.is_some() && records_with(&c2, b"snapshot-row-") == want {
            assert!(want.len() >= 40, "{} records", want.len());
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "node 2 did not get range {range} by snapshot (snapshot {snapshot:?})"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    for n in ["n1", "n2"] {
        let left: Vec<_> = std::fs::read_dir(dir(n))
            .map(|d| d.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "spool files left on {n}: {left:?}");
    }
    second.shutdown().await;
    first.shutdown().await;
}
