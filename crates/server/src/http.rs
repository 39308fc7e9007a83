//! The HTTP API: health and readiness probes, Prometheus metrics, node status.

use std::fmt::Display;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use serde::Serialize;

use crate::service::Status;

pub(crate) struct HttpState {
    pub status: Arc<Status>,
    pub started: Instant,
}

pub(crate) fn router(state: Arc<HttpState>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .route("/api/v1/node", get(node))
        .with_state(state)
}

async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

/// Ready when a transaction can run end to end.
async fn ready(State(s): State<Arc<HttpState>>) -> Response {
    let Some(txn) = s.status.txn.get() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({
                "status": "unavailable",
                "error": "the node has not joined a cluster yet",
            })),
        )
            .into_response();
    };
    let probe = async {
        let mut t = txn.begin().await?;
        t.get(b"\x02readiness-probe").await?;
        t.commit().await
    };
    match tokio::time::timeout(std::time::Duration::from_secs(2), probe).await {
        Ok(Ok(_)) => (
            StatusCode::OK,
            Json(serde_json::json!({ "status": "ready" })),
        )
            .into_response(),
        Ok(Err(e)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({ "status": "unavailable", "error": e.to_string() })),
        )
            .into_response(),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({ "status": "unavailable", "error": "timed out" })),
        )
            .into_response(),
    }
}

#[derive(Serialize)]
struct NodeInfo {
    version: &'static str,
    sql_address: String,
    http_address: String,
    store: String,
    uptime_seconds: u64,
    /// For a node of a cluster: its identity, peers and replicas.
    #[serde(skip_serializing_if = "Option::is_none")]
    cluster: Option<serde_json::Value>,
}

async fn node(State(s): State<Arc<HttpState>>) -> Json<NodeInfo> {
    Json(NodeInfo {
        version: env!("CARGO_PKG_VERSION"),
        sql_address: s.status.sql_addr.to_string(),
        http_address: s.status.http_addr.to_string(),
        store: s.status.store.display().to_string(),
        uptime_seconds: s.started.elapsed().as_secs(),
        cluster: s
            .status
            .cluster
            .as_ref()
            .map(|c| crate::process::status_json(&c.status())),
    })
}

/// Writes one metric in Prometheus' text format.
fn write_metric(out: &mut String, name: &str, kind: &str, help: &str, value: impl Display) {
    out.push_str(&format!(
        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
    ));
}

/// Writes a counter with one sample per value of `label`: `kinds[i]` counted `counts[i]`.
fn write_counters(
    out: &mut String,
    name: &str,
    help: &str,
    label: &str,
    kinds: &[&str],
    counts: &[u64],
) {
    out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} counter\n"));
    for (kind, n) in kinds.iter().zip(counts) {
        out.push_str(&format!("{name}{{{label}=\"{kind}\"}} {n}\n"));
    }
}

/// The counters of a cluster node's key-value and Raft layers.
fn cluster_metrics(out: &mut String, c: &kv::stats::StatsSnapshot) {
    write_counters(
        out,
        "tessera_kv_requests_total",
        "Key-value requests executed by this node's replicas, by kind.",
        "kind",
        &kv::stats::REQUEST_KINDS,
        &c.requests,
    );
    write_counters(
        out,
        "tessera_raft_messages_sent_total",
        "Raft messages sent to other nodes, by kind.",
        "kind",
        &kv::stats::RAFT_KINDS,
        &c.raft_sent,
    );
    write_metric(
        out,
        "tessera_kv_remote_requests_total",
        "counter",
        "Key-value requests that came from other nodes.",
        c.remote_requests,
    );
    write_metric(
        out,
        "tessera_raft_calls_sent_total",
        "counter",
        "Calls to other nodes carrying Raft messages (messages to one node share a call).",
        c.raft_calls,
    );
    write_metric(
        out,
        "tessera_tso_requests_total",
        "counter",
        "Timestamp requests this node's oracle served for other nodes.",
        c.tso_requests,
    );
}

async fn metrics(State(s): State<Arc<HttpState>>) -> impl IntoResponse {
    let c = s.status.commit.stats();
    let mut out = String::new();
    write_metric(
        &mut out,
        "tessera_storage_durable_writes_total",
        "counter",
        "Write batches acknowledged after fsync.",
        c.writes as f64,
    );
    write_metric(
        &mut out,
        "tessera_storage_syncs_total",
        "counter",
        "fsyncs of the store journal.",
        c.syncs as f64,
    );
    write_metric(
        &mut out,
        "tessera_sql_connections",
        "gauge",
        "Open PostgreSQL-protocol connections.",
        s.status.pg.get().map_or(0, |p| p.connection_count()) as f64,
    );
    write_metric(
        &mut out,
        "tessera_uptime_seconds",
        "gauge",
        "Seconds since the node started.",
        s.started.elapsed().as_secs_f64(),
    );
    if let Some(node) = &s.status.cluster {
        cluster_metrics(&mut out, &node.peers().stats().snapshot());
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}
