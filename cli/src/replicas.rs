//! The replicas part of `maas status`: in cluster mode, each placed
//! version's nodes against the replicas wanted, its memory, and why the
//! count is what it is (the last scaling decision, or why too few fit).

use anyhow::Result;
use serde_json::Value;

use crate::client::Client;
use crate::output::table;

/// Prints the placement's table, if the coordinator runs a cluster and
/// the caller may see it.
pub async fn print_replicas(client: &Client) -> Result<()> {
    let Ok(view) = client.get_as::<Value>("/v1/cluster").await else { return Ok(()) };
    let Some(assignments) = view["placement"]["assignments"].as_object() else { return Ok(()) };
    let rows: Vec<Vec<String>> = assignments
        .iter()
        .map(|(version, assignment)| {
            let nodes: Vec<&str> =
                assignment["nodes"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            let why = assignment["unplaceable"].as_str().or(assignment["scaling"].as_str()).unwrap_or_default();
            vec![
                version.clone(),
                format!("{}/{}", nodes.len(), assignment["wanted"].as_u64().unwrap_or(0)),
                nodes.join(","),
                format!("{:.1} MiB", assignment["memory_bytes"].as_u64().unwrap_or(0) as f64 / (1u64 << 20) as f64),
                why.to_string(),
            ]
        })
        .collect();
    println!();
    table(&["PLACED", "REPLICAS", "NODES", "MEMORY", "WHY"], &rows);
    Ok(())
}
