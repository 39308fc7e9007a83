//! The layering rule: a crate depends only on crates below it. The order is the order of
//! our crates in `[workspace.dependencies]` of the workspace Cargo.toml, bottom first.

#![allow(clippy::unwrap_used)]

use std::path::Path;

/// Returns the names of the crates under `section` of a Cargo.toml (`[dependencies]` keys).
fn section_keys(toml: &str, section: &str) -> Vec<String> {
    let mut in_section = false;
    let mut keys = Vec::new();
    for line in toml.lines().map(str::trim) {
        if line.starts_with('[') {
            in_section = line == section;
            continue;
        }
        if !in_section || line.is_empty() || line.starts_with('#') {
            continue;
        }
        let key = line.split(['=', '.']).next().unwrap().trim();
        keys.push(key.to_string());
    }
    keys
}

#[test]
fn no_crate_depends_on_a_crate_above_it() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let workspace = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    // Our crates, in layer order: the workspace dependencies with a path.
    let layers: Vec<(String, String)> = workspace
        .lines()
        .filter(|l| l.contains("path = \"crates/"))
        .map(|l| {
            let name = l.split('=').next().unwrap().trim().to_string();
            let dir = l
                .split("path = \"crates/")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap()
                .to_string();
            (name, dir)
        })
        .collect();
    assert!(layers.len() >= 8, "found the layer list: {layers:?}");
    let mut dirs: Vec<String> = std::fs::read_dir(root.join("crates"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    dirs.sort();
    for d in &dirs {
        assert!(
            layers.iter().any(|(_, dir)| dir == d),
            "crates/{d} is missing from the layer list"
        );
    }
    for (pos, (name, dir)) in layers.iter().enumerate() {
        let toml =
            std::fs::read_to_string(root.join("crates").join(dir).join("Cargo.toml")).unwrap();
        for dep in section_keys(&toml, "[dependencies]") {
            if let Some(dep_pos) = layers.iter().position(|(n, _)| *n == dep) {
                assert!(
                    dep_pos < pos,
                    "crate {name} depends on {dep}, which is not below it in the layer order"
                );
            }
        }
    }
}
