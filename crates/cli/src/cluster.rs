//! `tessera start`, `tessera init` and `tessera node`: a cluster of processes.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use server::process::{self, ClusterServer, ClusterServerConfig};

use crate::{BoxError, say, wait_for_signal};

#[derive(clap::Args)]
pub struct StartArgs {
    /// The store directory (created if missing).
    #[arg(long, default_value = "tessera-data", env = "TESSERA_STORE")]
    store: PathBuf,
    /// Address of the node-to-node RPC listener.
    #[arg(long, default_value = "127.0.0.1:26357", env = "TESSERA_LISTEN_ADDR")]
    listen_addr: SocketAddr,
    /// Address other nodes reach this node at (default: the listen address).
    #[arg(long, env = "TESSERA_ADVERTISE_ADDR")]
    advertise_addr: Option<String>,
    /// Address of the PostgreSQL-protocol listener.
    #[arg(long, default_value = "127.0.0.1:26257", env = "TESSERA_SQL_ADDR")]
    sql_addr: SocketAddr,
    /// Address of the HTTP API (health, readiness, metrics, status).
    #[arg(long, default_value = "127.0.0.1:8080", env = "TESSERA_HTTP_ADDR")]
    http_addr: SocketAddr,
    /// RPC addresses of nodes of the cluster to join, comma-separated. Without it, the
    /// node waits for `tessera init`.
    #[arg(long, value_delimiter = ',', env = "TESSERA_JOIN")]
    join: Vec<String>,
    /// How long an empty node keeps trying to join before it gives up, in seconds.
    #[arg(long, default_value_t = 300)]
    join_timeout: u64,
    /// Most client connections accepted at once.
    #[arg(long, default_value_t = 500)]
    max_connections: usize,
    /// A range larger than this many MiB splits in two (0: ranges never split by size).
    #[arg(long, default_value_t = 64, env = "TESSERA_RANGE_MAX_MIB")]
    range_max_mib: u64,
}

#[derive(clap::Args)]
pub struct InitArgs {
    /// RPC address of a started node with an empty store.
    #[arg(long, default_value = "127.0.0.1:26357")]
    host: String,
    /// Replicas per range: odd, 1 to 7.
    #[arg(long, default_value_t = 3)]
    replication: u32,
    /// How many ranges the cluster starts with (the system ranges, then one per table
    /// id from 100 on; default 17).
    #[arg(long)]
    ranges: Option<u64>,
}

#[derive(clap::Subcommand)]
pub enum NodeCommand {
    /// List the cluster's nodes as one node knows them.
    Ls(HostArgs),
    /// Show one node: its identity and the replicas it holds.
    Status(HostArgs),
    /// List the cluster's ranges as the meta range records them (JSON).
    Ranges(HostArgs),
}

#[derive(clap::Args)]
pub struct HostArgs {
    /// RPC address of a node.
    #[arg(long, default_value = "127.0.0.1:26357")]
    host: String,
}

pub async fn start(args: StartArgs) -> Result<ExitCode, BoxError> {
    let mut config = ClusterServerConfig::new(&args.store);
    config.listen_addr = args.listen_addr;
    config.advertise_addr = args.advertise_addr;
    config.sql_addr = args.sql_addr;
    config.http_addr = args.http_addr;
    config.join = args.join.into_iter().filter(|j| !j.is_empty()).collect();
    config.join_timeout = Duration::from_secs(args.join_timeout);
    config.pg.max_connections = args.max_connections;
    config.range_max_bytes = args.range_max_mib << 20;
    let server = ClusterServer::start(config).await?;
    let store = std::fs::canonicalize(&args.store).unwrap_or(args.store);
    let who = match server.node().ident() {
        Some(i) => format!("node {} of cluster {}", i.node_id, i.cluster_id),
        None => "not part of a cluster yet: run `tessera init --host <this node>`".into(),
    };
    say(&format!(
        "Tessera {} ({who})\n  rpc:    {}\n  sql:    postgresql://root@{}/postgres?sslmode=disable\n  http:   http://{}\n  store:  {}\n",
        env!("CARGO_PKG_VERSION"),
        server.rpc_addr(),
        server.sql_addr(),
        server.http_addr(),
        store.display()
    ));
    wait_for_signal().await?;
    say("shutting down\n");
    server.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

pub async fn init(args: InitArgs) -> Result<ExitCode, BoxError> {
    let reply = process::init_cluster(&args.host, args.replication, args.ranges).await?;
    say(&format!(
        "cluster {} initialized: node {} at {}, {} replicas per range\n",
        reply.cluster_id, reply.node_id, args.host, args.replication
    ));
    Ok(ExitCode::SUCCESS)
}

pub async fn node(cmd: NodeCommand) -> Result<ExitCode, BoxError> {
    match cmd {
        NodeCommand::Ls(a) => {
            let s = process::node_status(&a.host).await?;
            if s.cluster_id.is_empty() {
                return Err(format!("{}: the node is not part of a cluster yet", a.host).into());
            }
            let mut out = format!(
                "cluster {}\n{:>4}  {:<22} {:<22} {:<22} {}\n",
                s.cluster_id, "id", "address", "sql", "http", "live"
            );
            for n in &s.nodes {
                out.push_str(&format!(
                    "{:>4}  {:<22} {:<22} {:<22} {}\n",
                    n.id,
                    n.addr,
                    n.sql_addr,
                    n.http_addr,
                    s.live.contains(&n.id)
                ));
            }
            say(&out);
        }
        NodeCommand::Status(a) => {
            let s = process::node_status(&a.host).await?;
            let text = serde_json::to_string_pretty(&process::status_json(&s))?;
            say(&format!("{text}\n"));
        }
        NodeCommand::Ranges(a) => {
            let ranges = process::ranges_json(&a.host).await?;
            say(&format!("{}\n", serde_json::to_string_pretty(&ranges)?));
        }
    }
    Ok(ExitCode::SUCCESS)
}
