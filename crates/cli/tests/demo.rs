//! `tessera demo` as the README shows it: a single node, and a three-node cluster in one
//! process, each loading the sample database, answering statements and deleting its
//! temporary store on exit.
#![allow(clippy::unwrap_used)]

use std::process::Command;

/// Runs `tessera demo` with `args` and the statements, and returns its standard output.
fn demo(args: &[&str], statements: &[&str]) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tessera"));
    cmd.arg("demo").args(args).env("TESSERA_LOG", "warn");
    for s in statements {
        cmd.args(["-e", s]);
    }
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "demo {args:?} failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = std::env::temp_dir().join(format!("tessera-demo-{pid}"));
    assert!(
        !dir.exists(),
        "the demo left its store behind at {}",
        dir.display()
    );
    stdout
}

#[test]
fn single_node_demo_answers_queries() {
    let out = demo(&[], &["SELECT count(*) FROM orders"]);
    assert!(out.contains("500"), "{out}");
}

#[test]
fn three_node_demo_serves_sql_on_every_node() {
    let out = demo(
        &["--nodes", "3"],
        &[
            "SELECT count(*) FROM orders",
            "SELECT city, count(*) FROM customers GROUP BY city ORDER BY city",
        ],
    );
    for node in 1..=3 {
        assert!(
            out.contains(&format!("node {node}: postgresql://")),
            "{out}"
        );
    }
    assert!(out.contains("replicated 3 ways"), "{out}");
    assert!(out.contains("500"), "{out}");
    // 100 customers over 5 cities: every city has 20.
    assert_eq!(out.matches("| 20").count(), 5, "{out}");
}

#[test]
fn a_node_count_outside_one_to_seven_is_refused() {
    let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["demo", "--nodes", "9", "-e", "SELECT 1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--nodes"), "{err}");
}
