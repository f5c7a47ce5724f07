//! A registry of many models: publishes MODELS versions loaded on demand
//! (one small artifact, so nothing is loaded until called), then reports
//! how long publishing took, how long listing the registry takes, and the
//! coordinators' last reconcile round and the leader's last placement round
//! at that size (`maas_reconcile_round_seconds`, `maas_placement_round_seconds`).

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
    // Let every coordinator apply the registry and the leader place it.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let mut listings = Vec::new();
    let mut listed = 0;
    for _ in 0..5 {
        let asked = Instant::now();
        let models = send(client.get(format!("{url}/v1/models"))).await?;
        listings.push(asked.elapsed());
        listed = models.as_array().or_else(|| models["models"].as_array()).map_or(0, Vec::len);
    }
    listings.sort();
    println!(
        "| models | published in (s) | publishes/s | failed | listed | list (ms) | coordinator | reconcile round (ms) | placement round (ms) |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---|---:|---:|");
    for coordinator in &settings.urls {
        let metrics = client.get(format!("{coordinator}/metrics")).bearer_auth(&settings.token).send().await?;
        let metrics = metrics.text().await?;
        let gauge = |name: &str| {
            metrics
                .lines()
                .find(|line| line.split_whitespace().next() == Some(name))
                .and_then(|line| line.split_whitespace().nth(1)?.parse::<f64>().ok())
        };
        let shown = |value: Option<f64>| value.map_or("-".to_string(), |s| format!("{:.1}", s * 1000.0));
        println!(
            "| {} | {:.0} | {:.0} | {failed} | {listed} | {:.0} | {coordinator} | {} | {} |",
            settings.models,
            publish_time.as_secs_f64(),
            settings.models as f64 / publish_time.as_secs_f64(),
            listings[listings.len() / 2].as_secs_f64() * 1000.0,
            shown(gauge("maas_reconcile_round_seconds")),
            shown(gauge("maas_placement_round_seconds")),
        );
    }
    Ok(())
}
