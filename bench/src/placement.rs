//! How placement time grows with model versions × nodes: the leader's pure
//! `plan` run on synthetic records and nodes, from nothing and again over
//! its own result (the steady state, where the leader re-plans every second).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Result;
use maas_cluster::placement::{self, Observed, Placement};
use maas_cluster::NodeInfo;
use maas_protocol::ModelConfig;
use maas_registry::{ArtifactRef, Lineage, ModelRecord, VersionRecord};

/// One measured grid point.
pub struct PlacementPoint {
    /// Model versions placed (one per model).
    pub versions: usize,
    /// Live nodes.
    pub nodes: usize,
    /// Replicas placed in all.
    pub replicas: usize,
    /// Median time of a plan from an empty placement.
    pub first: Duration,
    /// Median time of a plan over the previous result.
    pub steady: Duration,
}

fn records(versions: usize) -> Result<Vec<ModelRecord>> {
    (0..versions)
        .map(|i| {
            let name = format!("m{i:04}");
            let config: ModelConfig = serde_json::from_value(serde_json::json!({
                "name": name, "max_batch_size": 8, "memory_bytes": (1 + i % 7) * (64 << 20),
                "replicas": {"min": 2, "max": 2},
                "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}],
                "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 4]}],
            }))?;
            let mut record = ModelRecord::new(&name);
            let artifact = ArtifactRef { sha256: format!("{:064x}", i), size: 1 << 20 };
            record.versions.insert(
                1,
                VersionRecord { version: 1, config, artifact, lineage: Lineage::default(), engine_key: None },
            );
            record.next_version = 2;
            Ok(record)
        })
        .collect()
}

fn nodes(count: usize) -> BTreeMap<String, NodeInfo> {
    (0..count)
        .map(|i| {
            let name = format!("node-{i:03}");
            let info = NodeInfo {
                name: name.clone(),
                quic_addr: format!("10.0.0.{i}:7100"),
                device: "cpu".into(),
                memory_bytes: 64 << 30,
            };
            (name, info)
        })
        .collect()
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Times `plan` for every (versions, nodes) pair, `rounds` times each.
pub fn measure(grid: &[(usize, usize)], rounds: usize) -> Result<Vec<PlacementPoint>> {
    let observed = Observed::default();
    let mut points = Vec::new();
    for &(versions, node_count) in grid {
        let records = records(versions)?;
        let nodes = nodes(node_count);
        let (mut first, mut steady) = (Vec::new(), Vec::new());
        let mut replicas = 0;
        for _ in 0..rounds.max(1) {
            let started = Instant::now();
            let assignments = placement::plan(&records, &nodes, &Placement::default(), &observed);
            first.push(started.elapsed());
            replicas = assignments.values().map(|a| a.nodes.len()).sum();
            let current = Placement { assignments, ..Placement::default() };
            let started = Instant::now();
            let again = placement::plan(&records, &nodes, &current, &observed);
            steady.push(started.elapsed());
            anyhow::ensure!(again == current.assignments, "a steady re-plan moved replicas");
        }
        points.push(PlacementPoint {
            versions,
            nodes: node_count,
            replicas,
            first: median(first),
            steady: median(steady),
        });
    }
    Ok(points)
}

/// The results as a Markdown table.
pub fn table(points: &[PlacementPoint]) -> String {
    let mut out = String::from(
        "| versions | nodes | replicas placed | first plan (ms) | steady re-plan (ms) |\n|---:|---:|---:|---:|---:|\n",
    );
    for p in points {
        out.push_str(&format!(
            "| {} | {} | {} | {:.3} | {:.3} |\n",
            p.versions,
            p.nodes,
            p.replicas,
            p.first.as_secs_f64() * 1e3,
            p.steady.as_secs_f64() * 1e3
        ));
    }
    out
}
