//! `tessera demo`: a throwaway node with a sample database, and a shell on it.

use std::process::ExitCode;

use server::{Server, ServerConfig};

use crate::BoxError;
use crate::shell::{self, Shell};

#[derive(clap::Args)]
pub struct DemoArgs {
    /// Run these statements against the demo database and exit instead of opening a shell.
    #[arg(short = 'e', long = "execute")]
    pub execute: Vec<String>,
    /// Address of the demo's PostgreSQL listener (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen_addr: std::net::SocketAddr,
    /// Run a cluster of this many nodes inside this process (each table a range of its
    /// own, replicated 3 ways over the nodes by Raft) instead of a single node.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=7))]
    pub nodes: u16,
}

/// The sample database: a small shop.
const SAMPLE: &str = "
CREATE TABLE customers (
    id INT PRIMARY KEY,
    name TEXT NOT NULL,
    email TEXT UNIQUE,
    city TEXT,
    joined DATE NOT NULL DEFAULT current_date
);
CREATE TABLE products (
    id INT PRIMARY KEY,
    name TEXT NOT NULL,
    price NUMERIC(10, 2) NOT NULL CHECK (price >= 0)
);
CREATE TABLE orders (
    id SERIAL PRIMARY KEY,
    customer_id INT NOT NULL REFERENCES customers (id),
    product_id INT NOT NULL REFERENCES products (id),
    quantity INT NOT NULL CHECK (quantity > 0),
    placed_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX orders_by_customer ON orders (customer_id);
INSERT INTO customers (id, name, email, city)
    SELECT i, 'customer ' || i, 'c' || i || '@example.com',
           (ARRAY['Lisbon', 'Oslo', 'Nairobi', 'Lima', 'Osaka'])[1 + i % 5]
    FROM generate_series(1, 100) AS g(i);
INSERT INTO products VALUES
    (1, 'tessera tile', 2.50), (2, 'grout', 7.25), (3, 'trowel', 12.00),
    (4, 'sponge', 1.10), (5, 'mosaic kit', 39.90);
INSERT INTO orders (customer_id, product_id, quantity)
    SELECT 1 + (i * 7) % 100, 1 + i % 5, 1 + i % 4 FROM generate_series(1, 500) AS g(i);
";

pub async fn run(args: DemoArgs) -> Result<ExitCode, BoxError> {
    if args.nodes > 1 {
        return run_cluster(args).await;
    }
    let dir = std::env::temp_dir().join(format!("tessera-demo-{}", std::process::id()));
    let mut config = ServerConfig::new(&dir);
    config.sql_addr = args.listen_addr;
    config.http_addr = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let server = Server::start(config).await?;
    let url = format!(
        "postgresql://root@{}/postgres?sslmode=disable",
        server.sql_addr()
    );
    let result = async {
        let conn = shell::connect(&url).await?;
        conn.client().batch_execute(SAMPLE).await.map_err(|e| format!("loading the sample database: {e}"))?;
        println!("Tessera demo: a temporary node with a sample shop database (customers, products, orders).");
        println!("  connect other clients with: {url}");
        println!("  http: http://{}", server.http_addr());
        println!("  the data is deleted when the shell exits.");
        shell_or_execute(&url, &conn, &args.execute).await
    }
    .await;
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// Loads the sample on `conn`, then opens a shell on `url` or runs `execute` there.
async fn shell_or_execute(
    url: &str,
    conn: &shell::Conn,
    execute: &[String],
) -> Result<ExitCode, BoxError> {
    if execute.is_empty() {
        shell::run(shell::ShellArgs {
            url: url.to_string(),
            execute: vec![],
            timing: true,
        })
        .await
    } else {
        let mut ok = true;
        for sql in execute {
            ok &= Shell::new(conn.client(), false).run_input(sql).await;
        }
        Ok(if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    }
}

/// `tessera demo --nodes N`: N nodes in this process, each serving SQL.
async fn run_cluster(args: DemoArgs) -> Result<ExitCode, BoxError> {
    use server::cluster::{SqlCluster, SqlClusterConfig, table_splits};

    let dir = std::env::temp_dir().join(format!("tessera-demo-{}", std::process::id()));
    let nodes = usize::from(args.nodes);
    let mut config = SqlClusterConfig::default();
    config.kv.replication = if nodes >= 3 { 3 } else { 1 };
    // Every table the sample creates (and the next few) starts in a range of its own.
    config.kv.split_keys = table_splits(100..140);
    let cluster = SqlCluster::open(&dir, nodes, config).await?;
    let url = cluster.url(1).ok_or("node 1 is not serving SQL")?;
    let result = async {
        let conn = shell::connect(&url).await?;
        conn.client().batch_execute(SAMPLE).await.map_err(|e| format!("loading the sample database: {e}"))?;
        println!(
            "Tessera demo: a {nodes}-node cluster in this process, {} ranges replicated {} ways by Raft,",
            cluster.kv().ranges().len(),
            cluster.kv().ranges()[0].replicas.len()
        );
        println!("with a sample shop database (customers, products, orders). Any node serves SQL:");
        for node in cluster.kv().nodes() {
            if let Some(u) = cluster.url(node) {
                println!("  node {node}: {u}");
            }
        }
        println!("  the shell is connected to node 1; the data is deleted when it exits.");
        shell_or_execute(&url, &conn, &args.execute).await
    }
    .await;
    cluster.shutdown().await;
    // The engines close when the cluster is dropped; only then is the directory removed.
    drop(cluster);
    let _ = std::fs::remove_dir_all(&dir);
    result
}
