//! The SQL shell: line editing and history (rustyline), multi-line statements, `\d`-style
//! meta commands, aligned results and timing, over the PostgreSQL protocol.

use std::process::ExitCode;
use std::time::Instant;

use rustyline::DefaultEditor;
use rustyline::error::ReadlineError;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

use crate::BoxError;

#[derive(clap::Args)]
pub struct ShellArgs {
    /// Connection URL.
    #[arg(
        long,
        default_value = "postgresql://root@127.0.0.1:26257/postgres",
        env = "TESSERA_URL"
    )]
    pub url: String,
    /// Run these statements (each may hold several) and exit; the exit status is 1 if one fails.
    #[arg(short = 'e', long = "execute")]
    pub execute: Vec<String>,
    /// Print how long each statement took.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub timing: bool,
}

pub async fn run(args: ShellArgs) -> Result<ExitCode, BoxError> {
    let client = connect(&args.url).await?;
    if !args.execute.is_empty() {
        let mut ok = true;
        for sql in &args.execute {
            ok &= Shell::new(client.client(), false).run_input(sql).await;
        }
        return Ok(if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    let mut shell = Shell::new(client.client(), args.timing);
    shell.interactive().await?;
    Ok(ExitCode::SUCCESS)
}

/// A client connection whose driver task prints notices.
pub struct Conn {
    client: std::sync::Arc<Client>,
}

impl Conn {
    /// Returns a handle on the client.
    pub fn client(&self) -> std::sync::Arc<Client> {
        self.client.clone()
    }
}

pub async fn connect(url: &str) -> Result<Conn, BoxError> {
    let (client, mut connection) = tokio_postgres::connect(url, NoTls)
        .await
        .map_err(|e| format!("cannot connect to {url}: {e}"))?;
    tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(tokio_postgres::AsyncMessage::Notice(n))) => {
                    eprintln!("{}:  {}", n.severity(), n.message())
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    eprintln!("connection error: {e}");
                    break;
                }
                None => break,
            }
        }
    });
    Ok(Conn {
        client: std::sync::Arc::new(client),
    })
}

pub struct Shell {
    client: std::sync::Arc<Client>,
    timing: bool,
}

const HELP: &str = "\
Statements end with a semicolon and may span lines.
Meta commands:
  \\l              list databases
  \\dn             list schemas
  \\dt             list tables
  \\d              list tables, views and sequences
  \\d NAME         describe a table, view or index
  \\di             list indexes
  \\du             list roles
  \\timing [on|off] show how long statements take
  \\? or help      this help
  \\q or quit      exit";

impl Shell {
    pub fn new(client: std::sync::Arc<Client>, timing: bool) -> Shell {
        Shell { client, timing }
    }

    async fn interactive(&mut self) -> Result<(), BoxError> {
        let mut editor = DefaultEditor::new()?;
        let history =
            std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".tessera_history"));
        if let Some(h) = &history {
            let _ = editor.load_history(h);
        }
        println!("Tessera SQL shell. Type \\? for help, \\q to quit.");
        let mut buffer = String::new();
        loop {
            let prompt = if buffer.is_empty() {
                "tessera> "
            } else {
                "      -> "
            };
            let line = match editor.readline(prompt) {
                Ok(l) => l,
                Err(ReadlineError::Interrupted) => {
                    buffer.clear();
                    continue;
                }
                Err(ReadlineError::Eof) => break,
                Err(e) => return Err(e.into()),
            };
            let trimmed = line.trim();
            if buffer.is_empty()
                && (trimmed.starts_with('\\') || matches!(trimmed, "quit" | "exit" | "help"))
            {
                let _ = editor.add_history_entry(trimmed);
                if !self.meta(trimmed).await {
                    break;
                }
                continue;
            }
            if !buffer.is_empty() {
                buffer.push('\n');
            }
            buffer.push_str(&line);
            if statement_complete(&buffer) {
                let _ = editor.add_history_entry(buffer.as_str());
                let sql = std::mem::take(&mut buffer);
                self.run_input(&sql).await;
            }
        }
        if let Some(h) = &history {
            let _ = editor.save_history(h);
        }
        Ok(())
    }

    /// Runs a meta command; returns false to quit.
    async fn meta(&mut self, cmd: &str) -> bool {
        let mut parts = cmd.split_whitespace();
        let name = parts.next().unwrap_or_default();
        let arg = parts.next();
        let query = match (name, arg) {
            ("\\q" | "quit" | "exit", _) => return false,
            ("\\?" | "help", _) => {
                println!("{HELP}");
                return true;
            }
            ("\\timing", a) => {
                self.timing = match a {
                    Some("on") => true,
                    Some("off") => false,
                    _ => !self.timing,
                };
                println!("Timing is {}.", if self.timing { "on" } else { "off" });
                return true;
            }
            ("\\l", _) => "SELECT datname AS \"Name\", 'UTF8' AS \"Encoding\" FROM pg_catalog.pg_database ORDER BY 1".to_string(),
            ("\\dn", _) => "SELECT nspname AS \"Name\" FROM pg_catalog.pg_namespace \
                 WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema' ORDER BY 1"
                .to_string(),
            ("\\dt", _) => "SELECT schemaname AS \"Schema\", tablename AS \"Name\", 'table' AS \"Type\" \
                 FROM pg_catalog.pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2"
                .to_string(),
            ("\\di", _) => "SELECT schemaname AS \"Schema\", indexname AS \"Name\", tablename AS \"Table\" \
                 FROM pg_catalog.pg_indexes WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2"
                .to_string(),
            ("\\du", _) => "SELECT rolname AS \"Role name\", CASE WHEN rolsuper THEN 'Superuser' ELSE '' END AS \"Attributes\" \
                 FROM pg_catalog.pg_roles ORDER BY 1"
                .to_string(),
            ("\\d", None) => "SELECT table_schema AS \"Schema\", table_name AS \"Name\", \
                 CASE table_type WHEN 'BASE TABLE' THEN 'table' WHEN 'VIEW' THEN 'view' ELSE lower(table_type) END AS \"Type\" \
                 FROM information_schema.tables WHERE table_schema NOT IN ('pg_catalog', 'information_schema') \
                 UNION ALL SELECT sequence_schema, sequence_name, 'sequence' FROM information_schema.sequences ORDER BY 1, 2"
                .to_string(),
            ("\\d", Some(table)) => {
                let t = table.replace('\'', "''");
                let ok = self
                    .run_input(&format!(
                        "SELECT column_name AS \"Column\", data_type AS \"Type\", \
                         CASE is_nullable WHEN 'NO' THEN 'not null' ELSE '' END AS \"Nullable\", \
                         coalesce(column_default, '') AS \"Default\" \
                         FROM information_schema.columns WHERE table_name = '{t}' ORDER BY ordinal_position"
                    ))
                    .await;
                if ok {
                    self.run_input(&format!(
                        "SELECT indexname AS \"Index\", indexdef AS \"Definition\" FROM pg_catalog.pg_indexes \
                         WHERE tablename = '{t}' ORDER BY 1"
                    ))
                    .await;
                }
                return true;
            }
            _ => {
                eprintln!("invalid command {name}; try \\? for help");
                return true;
            }
        };
        self.run_input(&query).await;
        true
    }

    /// Runs SQL text (one or more statements) and prints the results; false on error.
    pub async fn run_input(&mut self, sql: &str) -> bool {
        let start = Instant::now();
        let result = self.client.simple_query(sql).await;
        let elapsed = start.elapsed();
        let ok = match result {
            Ok(messages) => {
                print_messages(&messages);
                true
            }
            Err(e) => {
                print_error(&e, sql);
                false
            }
        };
        if self.timing {
            println!("Time: {:.3} ms", elapsed.as_secs_f64() * 1000.0);
        }
        ok
    }
}

/// True if the buffer ends with a semicolon outside quotes and comments.
fn statement_complete(buf: &str) -> bool {
    let mut in_single = false;
    let mut in_double = false;
    let mut last_significant = None;
    let mut chars = buf.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' if !in_double => in_single = !in_single,
            '"' if !in_single => in_double = !in_double,
            '-' if !in_single && !in_double && chars.peek() == Some(&'-') => {
                for n in chars.by_ref() {
                    if n == '\n' {
                        break;
                    }
                }
                continue;
            }
            _ => {}
        }
        if !c.is_whitespace() {
            last_significant = Some((c, in_single || in_double));
        }
    }
    matches!(last_significant, Some((';', false)))
}

fn print_messages(messages: &[SimpleQueryMessage]) {
    let mut header: Option<Vec<String>> = None;
    let mut rows: Vec<Vec<String>> = Vec::new();
    for m in messages {
        match m {
            SimpleQueryMessage::RowDescription(cols) => {
                header = Some(cols.iter().map(|c| c.name().to_string()).collect());
                rows.clear();
            }
            SimpleQueryMessage::Row(r) => {
                if header.is_none() {
                    header = Some(r.columns().iter().map(|c| c.name().to_string()).collect());
                }
                rows.push(
                    (0..r.len())
                        .map(|i| r.get(i).unwrap_or("NULL").to_string())
                        .collect(),
                );
            }
            SimpleQueryMessage::CommandComplete(n) => {
                match header.take() {
                    Some(h) => print_table(&h, &rows),
                    None if *n > 0 => println!("OK, {n} row{}", if *n == 1 { "" } else { "s" }),
                    None => println!("OK"),
                }
                rows.clear();
            }
            _ => {}
        }
    }
}

fn print_table(header: &[String], rows: &[Vec<String>]) {
    let width = |s: &str| s.chars().count();
    let mut widths: Vec<usize> = header.iter().map(|h| width(h)).collect();
    for r in rows {
        for (i, v) in r.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(v.lines().map(width).max().unwrap_or(0));
            }
        }
    }
    let line: Vec<String> = header
        .iter()
        .zip(&widths)
        .map(|(h, w)| format!(" {h:^w$} "))
        .collect();
    println!("{}", line.join("|"));
    let sep: Vec<String> = widths.iter().map(|w| "-".repeat(w + 2)).collect();
    println!("{}", sep.join("+"));
    for r in rows {
        let cells: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(v, w)| format!(" {v:<w$} "))
            .collect();
        println!("{}", cells.join("|"));
    }
    println!(
        "({} row{})",
        rows.len(),
        if rows.len() == 1 { "" } else { "s" }
    );
}

fn print_error(e: &tokio_postgres::Error, sql: &str) {
    match e.as_db_error() {
        Some(db) => {
            eprintln!("{}:  {}", db.severity(), db.message());
            if let Some(tokio_postgres::error::ErrorPosition::Original(pos)) = db.position() {
                // Show the line with a caret under the character.
                let pos = *pos as usize;
                let mut seen = 0;
                for (n, line) in sql.lines().enumerate() {
                    let len = line.chars().count() + 1;
                    if pos <= seen + len {
                        let prefix = format!("LINE {}: ", n + 1);
                        eprintln!("{prefix}{line}");
                        eprintln!(
                            "{}^",
                            " ".repeat(prefix.len() + pos.saturating_sub(seen + 1))
                        );
                        break;
                    }
                    seen += len;
                }
            }
            if let Some(d) = db.detail() {
                eprintln!("DETAIL:  {d}");
            }
            if let Some(h) = db.hint() {
                eprintln!("HINT:  {h}");
            }
            eprintln!("SQLSTATE: {}", db.code().code());
        }
        None => eprintln!("error: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::statement_complete;

    #[test]
    fn statements_end_at_a_semicolon_outside_quotes() {
        assert!(statement_complete("SELECT 1;"));
        assert!(statement_complete("SELECT 1;  "));
        assert!(!statement_complete("SELECT ';"));
        assert!(!statement_complete("SELECT 1"));
        assert!(statement_complete("SELECT 'a;b';"));
        assert!(!statement_complete("SELECT 1 -- done;"));
        assert!(statement_complete("SELECT 1; -- trailing comment"));
    }
}
