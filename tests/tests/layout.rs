//! The shape of the workspace, checked from its sources: one crate per
//! plane, no module of a crate importing one that imports it back, a
//! coordinator binary that only wires the planes together, no crate grown
//! past a size one person can hold, and node and coordinator sharing
//! nothing but the protocol crates.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The largest crate, in lines of code outside unit tests.
const MAX_CRATE_LINES: usize = 4_000;
/// The coordinator binary is wiring.
const MAX_COORDINATOR_LINES: usize = 1_500;

/// Crates on the coordinator's side, which a node must not link.
const COORDINATOR_SIDE: &[&str] =
    &["maas-coordinator", "maas-serving", "maas-control", "maas-fronts", "maas-pipeline", "maas-llm"];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ sits in the workspace").to_path_buf()
}

/// Every workspace member's folder, from the root manifest.
fn members() -> Vec<String> {
    let manifest = fs::read_to_string(workspace().join("Cargo.toml")).unwrap();
    let list = manifest.split("members = [").nth(1).and_then(|rest| rest.split(']').next()).unwrap();
    list.split(',').map(|m| m.trim().trim_matches('"').to_string()).filter(|m| !m.is_empty()).collect()
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// A source file without its unit tests (the `#[cfg(test)] mod tests`
/// block, which sits at the end of a file by convention) and comments.
fn code_lines(text: &str) -> Vec<&str> {
    let end = text.find("#[cfg(test)]\nmod tests").unwrap_or(text.len());
    text[..end].lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with("//")).collect()
}

/// The top-level module a file of `src` belongs to (`None` for the root).
fn top_module(src: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src).unwrap();
    let first = relative.components().next()?.as_os_str().to_string_lossy().trim_end_matches(".rs").to_string();
    (!matches!(first.as_str(), "lib" | "main")).then_some(first)
}

/// Which top-level modules each top-level module of `src` imports.
fn module_imports(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in rust_files(src) {
        let Some(module) = top_module(src, &file) else { continue };
        let text = fs::read_to_string(&file).unwrap();
        let imports = graph.entry(module.clone()).or_default();
        for line in code_lines(&text) {
            for (index, _) in line.match_indices("crate::") {
                let name: String =
                    line[index + 7..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                if !name.is_empty() && name != module {
                    imports.insert(name);
                }
            }
        }
    }
    graph
}

/// A cycle in `graph`, if there is one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|p| p == node) {
            let mut cycle = path[start..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

/// The `maas-*` crates a member's manifest depends on (dev-dependencies too).
fn maas_dependencies(member: &str) -> BTreeSet<String> {
    let manifest = fs::read_to_string(workspace().join(member).join("Cargo.toml")).unwrap();
    manifest
        .lines()
        .filter_map(|line| line.split(['.', ' ', '=']).next())
        .filter(|name| name.starts_with("maas-"))
        .map(str::to_string)
        .collect()
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    for member in members() {
        let src = workspace().join(&member).join("src");
        if let Some(cycle) = find_cycle(&module_imports(&src)) {
            panic!("{member}: modules import each other in a circle: {}", cycle.join(" → "));
        }
    }
}

#[test]
fn the_cycle_finder_finds_cycles() {
    let graph = |edges: &[(&str, &str)]| {
        let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (from, to) in edges {
            graph.entry(from.to_string()).or_default().insert(to.to_string());
        }
        graph
    };
    assert_eq!(find_cycle(&graph(&[("a", "b"), ("b", "c"), ("a", "c")])), None);
    let cycle = find_cycle(&graph(&[("a", "b"), ("b", "c"), ("c", "a")])).unwrap();
    assert_eq!(cycle.first(), cycle.last());
    assert_eq!(cycle.len(), 4);
}

#[test]
fn crates_stay_small_and_the_coordinator_binary_is_wiring() {
    let mut sizes = BTreeMap::new();
    for member in members() {
        let src = workspace().join(&member).join("src");
        let lines: usize =
            rust_files(&src).iter().map(|file| code_lines(&fs::read_to_string(file).unwrap()).len()).sum();
        sizes.insert(member, lines);
    }
    for (member, lines) in &sizes {
        assert!(*lines <= MAX_CRATE_LINES, "{member} has {lines} lines of code; split it (limit {MAX_CRATE_LINES})");
    }
    let coordinator = sizes["coordinator"];
    assert!(
        coordinator <= MAX_COORDINATOR_LINES,
        "the coordinator binary has {coordinator} lines; its planes belong in their crates"
    );
}

#[test]
fn node_and_coordinator_share_only_the_common_crates() {
    let node = maas_dependencies("node");
    for crate_name in COORDINATOR_SIDE {
        assert!(!node.contains(*crate_name), "the node links {crate_name}");
    }
    for member in ["coordinator", "serving", "control", "fronts"] {
        assert!(!maas_dependencies(member).contains("maas-node"), "{member} links the node");
    }
    // The serving plane reaches nodes only through its Replica trait.
    let serving = maas_dependencies("serving");
    for crate_name in ["maas-transport", "maas-control", "maas-fronts"] {
        assert!(!serving.contains(crate_name), "serving links {crate_name}");
    }
}
