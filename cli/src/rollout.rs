//! `maas deploy --alias`: moving the alias to the new version, with the
//! rollout's progress shown while the coordinator waits for the version to
//! be ready (placed, loaded and warm on enough nodes) before it moves.

use std::time::{Duration, Instant};

use anyhow::Result;
use maas_api::{AliasRequest, AliasSet};
use reqwest::Method;
use serde_json::Value;

use crate::client::Client;

/// How often progress is looked at.
const EVERY: Duration = Duration::from_millis(250);

/// Moves `alias` of `name` to `version`; returns once it has moved (or the
/// coordinator gave up), printing each change of progress when `show`.
pub async fn move_alias(client: &Client, name: &str, alias: &str, version: u64, show: bool) -> Result<AliasSet> {
    let path = format!("/v1/models/{name}/aliases/{alias}");
    let started = Instant::now();
    let request = AliasRequest { version };
    let moved = client.send_as::<AliasSet>(Method::PUT, &path, &request);
    tokio::pin!(moved);
    let mut shown = String::new();
    let mut every = tokio::time::interval(EVERY);
    loop {
        tokio::select! {
            result = &mut moved => {
                let set = result?;
                if show {
                    let seconds = started.elapsed().as_secs_f64();
                    println!("ready; alias {alias} moved to version {version} ({seconds:.1} s)");
                }
                return Ok(set);
            }
            _ = every.tick(), if show => {
                if let Some(line) = progress(client, name, version).await {
                    if line != shown {
                        println!("{line}");
                        shown = line;
                    }
                }
            }
        }
    }
}

/// Where the version stands, from the cluster's placement.
async fn progress(client: &Client, name: &str, version: u64) -> Option<String> {
    let view: Value = client.get_as("/v1/cluster").await.ok()?;
    let placement = view.get("placement").filter(|p| !p.is_null());
    let Some(placement) = placement else { return Some("loading on every node".to_string()) };
    let assignment = &placement["assignments"][format!("{name}/{version}")];
    let nodes: Vec<&str> = assignment["nodes"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    Some(match (nodes.is_empty(), assignment["unplaceable"].as_str()) {
        (true, Some(reason)) => format!("waiting for room: {reason}"),
        (true, None) => "waiting for placement".to_string(),
        (false, _) => format!("loading on {} node(s): {}", nodes.len(), nodes.join(", ")),
    })
}
