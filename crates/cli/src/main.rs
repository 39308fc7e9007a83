//! `tessera`: one binary for every role.
//!
//! - `tessera start-single-node`: a node with a store in `./tessera-data`, SQL and HTTP on
//!   loopback;
//! - `tessera start --join ...`: a node of a cluster; `tessera init` bootstraps the cluster
//!   once; `tessera node ls` / `tessera node status` show its nodes and replicas;
//! - `tessera sql`: an interactive SQL shell (or `-e` to run statements);
//! - `tessera demo`: a temporary node with a sample database, then the shell.

mod cluster;
mod demo;
mod shell;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use server::{Server, ServerConfig};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "tessera",
    version,
    about = "Tessera: a distributed SQL database that speaks PostgreSQL"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a single-node server until SIGINT or SIGTERM.
    StartSingleNode(StartArgs),
    /// Run a node of a cluster until SIGINT or SIGTERM (it joins through --join, or
    /// waits for `tessera init`).
    Start(cluster::StartArgs),
    /// Bootstrap a new cluster on a started node (once per cluster).
    Init(cluster::InitArgs),
    /// Show a cluster's nodes and one node's replicas.
    #[command(subcommand)]
    Node(cluster::NodeCommand),
    /// Open a SQL shell on a running server (or run statements with -e).
    Sql(shell::ShellArgs),
    /// Start a temporary node with a sample database and open a shell on it.
    Demo(demo::DemoArgs),
}

#[derive(clap::Args)]
struct StartArgs {
    /// The store directory (created if missing).
    #[arg(long, default_value = "tessera-data", env = "TESSERA_STORE")]
    store: PathBuf,
    /// Address of the PostgreSQL-protocol listener.
    #[arg(long, default_value = "127.0.0.1:26257", env = "TESSERA_LISTEN_ADDR")]
    listen_addr: SocketAddr,
    /// Address of the HTTP API (health, readiness, metrics).
    #[arg(long, default_value = "127.0.0.1:8080", env = "TESSERA_HTTP_ADDR")]
    http_addr: SocketAddr,
    /// Most client connections accepted at once.
    #[arg(long, default_value_t = 500)]
    max_connections: usize,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("TESSERA_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,fjall=warn,lsm_tree=warn,openraft=warn")
    });
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::StartSingleNode(args) => start(args).await,
            Command::Start(args) => cluster::start(args).await,
            Command::Init(args) => cluster::init(args).await,
            Command::Node(cmd) => cluster::node(cmd).await,
            Command::Sql(args) => shell::run(args).await,
            Command::Demo(args) => demo::run(args).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

async fn start(args: StartArgs) -> Result<ExitCode, BoxError> {
    let mut config = ServerConfig::new(&args.store);
    config.sql_addr = args.listen_addr;
    config.http_addr = args.http_addr;
    config.pg.max_connections = args.max_connections;
    let server = Server::start(config).await?;
    let store = std::fs::canonicalize(&args.store).unwrap_or(args.store);
    // The banner goes to stdout, which may be closed (a supervisor, a pipe): write
    // errors are ignored rather than panicking a running server.
    let banner = format!(
        "Tessera {} (single node)\n  sql:    postgresql://root@{}/postgres?sslmode=disable\n  psql:   psql -h {} -p {} -U root postgres\n  http:   http://{}\n  store:  {}\n",
        env!("CARGO_PKG_VERSION"),
        server.sql_addr(),
        server.sql_addr().ip(),
        server.sql_addr().port(),
        server.http_addr(),
        store.display()
    );
    say(&banner);
    wait_for_signal().await?;
    say("shutting down\n");
    server.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// Writes to stdout, ignoring a closed or broken stdout.
pub(crate) fn say(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// Waits for SIGINT or SIGTERM.
pub(crate) async fn wait_for_signal() -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}
