//! A registry of many models: publishes MODELS versions loaded on demand
//! (one small artifact, so nothing is loaded until called), then reports
//! how long publishing took, how long listing the registry takes, and the
//! coordinators' last reconcile round and the leader's last placement round
//! at that size (`maas_reconcile_round_seconds`, `maas_placement_round_seconds`),
//! and what the versions cost each coordinator's memory (heap in use and
//! resident size, before and after).

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures_util::StreamExt;
use serde_json::{json, Value};

/// What the benchmark is given.
pub struct RegistrySettings {
    /// Coordinator base URLs (the first publishes and lists).
    pub urls: Vec<String>,
    /// Admin token.
    pub token: String,
    /// TorchScript MLP (input `[-1, 64]` FP32, output `[-1, 10]`).
    pub artifact: std::path::PathBuf,
    /// Versions to publish.
    pub models: usize,
    /// Publishes in flight at once.
    pub parallel: usize,
}

/// Runs the benchmark and prints its figures as Markdown.
pub async fn run(settings: RegistrySettings) -> Result<()> {
    let client = reqwest::Client::builder().pool_max_idle_per_host(64).timeout(Duration::from_secs(120)).build()?;
    let url = settings.urls.first().context("a coordinator URL")?.clone();
    let send = |request: reqwest::RequestBuilder| {
        let token = settings.token.clone();
        async move {
            let response = request.bearer_auth(token).send().await?;
            let status = response.status();
            let body = response.bytes().await?;
            if !status.is_success() {
                bail!("status {status}: {}", String::from_utf8_lossy(&body));
            }
            anyhow::Ok(serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null))
        }
    };
    let mut before = Vec::new();
    for coordinator in &settings.urls {
        before.push(Gauges::read(&client, coordinator, &settings.token).await?);
    }
    let stored = send(client.put(format!("{url}/v1/artifacts")).body(std::fs::read(&settings.artifact)?)).await?;
    let sha256 = stored["sha256"].as_str().context("sha256 of the artifact")?.to_string();
    let started = Instant::now();
    let published: Vec<Result<Value>> = futures_util::stream::iter(0..settings.models)
        .map(|index| {
            let name = format!("r{index:05}");
            let config = json!({
                "name": name, "max_batch_size": 8, "replicas": {"min": 0, "max": 1},
                "inputs": [{"name": "INPUT__0", "datatype": "FP32", "shape": [-1, 64]}],
                "outputs": [{"name": "OUTPUT__0", "datatype": "FP32", "shape": [-1, 10]}],
            });
            let body = json!({"config": config, "artifact": {"sha256": sha256}, "source": "bench registry"});
            send(client.post(format!("{url}/v1/models/{name}/versions")).json(&body))
        })
        .buffer_unordered(settings.parallel.max(1))
        .collect()
        .await;
    let publish_time = started.elapsed();
    let failed = published.iter().filter(|p| p.is_err()).count();
    if let Some(Err(error)) = published.iter().find(|p| p.is_err()) {
        eprintln!("first failed publish: {error:#}");
    }
    // Let every coordinator apply the registry, the leader place it, and
    // both give back the memory their rounds freed.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let mut listings = Vec::new();
    let mut listed = 0;
    for _ in 0..5 {
        let asked = Instant::now();
        let models = send(client.get(format!("{url}/v1/models"))).await?;
        listings.push(asked.elapsed());
        listed = models.as_array().or_else(|| models["models"].as_array()).map_or(0, Vec::len);
    }
    listings.sort();
    let mut after = Vec::new();
    for coordinator in &settings.urls {
        after.push(Gauges::read(&client, coordinator, &settings.token).await?);
    }
    println!(
        "| models | published in (s) | publishes/s | failed | listed | list (ms) | coordinator | reconcile round (ms) | placement round (ms) |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---|---:|---:|");
    let shown = |value: Option<f64>| value.map_or("-".to_string(), |s| format!("{:.1}", s * 1000.0));
    for (coordinator, gauges) in settings.urls.iter().zip(&after) {
        println!(
            "| {} | {:.0} | {:.0} | {failed} | {listed} | {:.0} | {coordinator} | {} | {} |",
            settings.models,
            publish_time.as_secs_f64(),
            settings.models as f64 / publish_time.as_secs_f64(),
            listings[listings.len() / 2].as_secs_f64() * 1000.0,
            shown(gauges.get("maas_reconcile_round_seconds")),
            shown(gauges.get("maas_placement_round_seconds")),
        );
    }
    println!();
    println!("| coordinator | heap before (MiB) | heap after (MiB) | heap per version (KiB) | RSS before (MiB) | RSS after (MiB) | RSS per version (KiB) |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for ((coordinator, before), after) in settings.urls.iter().zip(&before).zip(&after) {
        let mib = |value: Option<f64>| value.map_or("-".to_string(), |b| format!("{:.0}", b / (1 << 20) as f64));
        let per_version = |name: &str| match (before.get(name), after.get(name)) {
            (Some(b), Some(a)) => format!("{:.1}", (a - b) / 1024.0 / settings.models.max(1) as f64),
            _ => "-".to_string(),
        };
        const HEAP: &str = "maas_coordinator_heap_bytes";
        const RESIDENT: &str = "maas_coordinator_resident_bytes";
        println!(
            "| {coordinator} | {} | {} | {} | {} | {} | {} |",
            mib(before.get(HEAP)),
            mib(after.get(HEAP)),
            per_version(HEAP),
            mib(before.get(RESIDENT)),
            mib(after.get(RESIDENT)),
            per_version(RESIDENT),
        );
    }
    Ok(())
}

/// A coordinator's unlabelled gauges, from its `/metrics`.
struct Gauges(String);

impl Gauges {
    async fn read(client: &reqwest::Client, coordinator: &str, token: &str) -> Result<Gauges> {
        let response = client.get(format!("{coordinator}/metrics")).bearer_auth(token).send().await?;
        Ok(Gauges(response.error_for_status()?.text().await?))
    }

    fn get(&self, name: &str) -> Option<f64> {
        self.0
            .lines()
            .find(|line| line.split_whitespace().next() == Some(name))
            .and_then(|line| line.split_whitespace().nth(1)?.parse::<f64>().ok())
    }
}
