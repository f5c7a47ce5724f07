//! A load step on one model whose replicas follow load: light traffic, then
//! many clients at once, then light traffic again, then none. Reports the
//! p99 latency of each phase, how long after the step the leader placed a
//! second replica (and how long until the replicas were gone again after
//! the traffic stopped: scale to zero).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use parking_lot::Mutex;
use serde_json::{json, Value};

/// What the benchmark is given.
pub struct StepSettings {
    /// Coordinator base URL.
    pub url: String,
    /// Admin token.
    pub token: String,
    /// TorchScript MLP (input `[-1, 64]` FP32, output `[-1, 10]`).
    pub artifact: std::path::PathBuf,
    /// Clients in the step (one before and after).
    pub clients: usize,
    /// Seconds of each phase.
    pub seconds: f64,
    /// Longest wait for the replicas to go after the traffic stops.
    pub zero_within: Duration,
}

const MODEL: &str = "step";

/// Runs the phases and prints their figures as Markdown.
pub async fn run(settings: StepSettings) -> Result<()> {
    let client = reqwest::Client::builder().pool_max_idle_per_host(256).timeout(Duration::from_secs(60)).build()?;
    let bytes = std::fs::read(&settings.artifact)?;
    let stored: Value = admin(&settings, client.put(format!("{}/v1/artifacts", settings.url)).body(bytes)).await?;
    let sha256 = stored["sha256"].as_str().context("sha256 of the artifact")?;
    let config = json!({
        "name": MODEL, "max_batch_size": 8, "max_queue_delay_us": 200,
        "replicas": {"min": 0, "max": 2, "target_in_flight": 4},
        "inputs": [{"name": "INPUT__0", "datatype": "FP32", "shape": [-1, 64]}],
        "outputs": [{"name": "OUTPUT__0", "datatype": "FP32", "shape": [-1, 10]}],
    });
    let body = json!({"config": config, "artifact": {"sha256": sha256}, "source": "bench step"});
    admin(&settings, client.post(format!("{}/v1/models/{MODEL}/versions", settings.url)).json(&body)).await?;
    let phase = Duration::from_secs_f64(settings.seconds);
    let before = drive(&client, &settings.url, 1, phase).await?;
    let step_started = Instant::now();
    let watcher = {
        let (client, url, token) = (client.clone(), settings.url.clone(), settings.token.clone());
        tokio::spawn(async move { until_replicas(&client, &url, &token, |n| n >= 2, phase * 2).await })
    };
    let during = drive(&client, &settings.url, settings.clients, phase).await?;
    let grown = watcher.await?;
    let after = drive(&client, &settings.url, 1, phase).await?;
    let stopped = Instant::now();
    let zero = until_replicas(&client, &settings.url, &settings.token, |n| n == 0, settings.zero_within).await;
    println!("| phase | clients | requests | p50 (ms) | p99 (ms) | failed |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, clients, outcome) in [("before", 1, &before), ("step", settings.clients, &during), ("after", 1, &after)]
    {
        println!(
            "| {name} | {clients} | {} | {:.1} | {:.1} | {} |",
            outcome.latencies.len(),
            percentile(&outcome.latencies, 0.50),
            percentile(&outcome.latencies, 0.99),
            outcome.failures
        );
    }
    println!();
    match grown {
        Some(at) => println!("second replica placed {:.1} s after the step began", (at - step_started).as_secs_f64()),
        None => println!("no second replica was placed during the step"),
    }
    match zero {
        Some(at) => println!("no replica left {:.1} s after the traffic stopped", (at - stopped).as_secs_f64()),
        None => println!("replicas still placed {} s after the traffic stopped", settings.zero_within.as_secs()),
    }
    Ok(())
}

async fn admin(settings: &StepSettings, request: reqwest::RequestBuilder) -> Result<Value> {
    let response = request.bearer_auth(&settings.token).send().await?;
    let status = response.status();
    let body = response.bytes().await?;
    if !status.is_success() {
        bail!("status {status}: {}", String::from_utf8_lossy(&body));
    }
    Ok(serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// Latencies of answered requests, and the number that failed.
#[derive(Default)]
struct Outcome {
    latencies: Vec<Duration>,
    failures: usize,
}

/// `clients` closed-loop clients for `length`.
async fn drive(client: &reqwest::Client, url: &str, clients: usize, length: Duration) -> Result<Outcome> {
    let outcome = Arc::new(Mutex::new(Outcome::default()));
    let stop_at = Instant::now() + length;
    let row: Vec<f32> = (0..64).map(|i| (i as f32 / 64.0) - 0.5).collect();
    let body = json!({"inputs": [{"name": "INPUT__0", "datatype": "FP32", "shape": [1, 64], "data": row}]});
    let tasks = (0..clients).map(|_| {
        let (client, outcome, body) = (client.clone(), outcome.clone(), body.clone());
        let url = format!("{url}/v2/models/{MODEL}/infer");
        tokio::spawn(async move {
            while Instant::now() < stop_at {
                let sent = Instant::now();
                let answered = match client.post(&url).json(&body).send().await {
                    Ok(response) if response.status().is_success() => response.bytes().await.is_ok(),
                    _ => false,
                };
                let mut outcome = outcome.lock();
                match answered {
                    true => outcome.latencies.push(sent.elapsed()),
                    false => outcome.failures += 1,
                }
            }
        })
    });
    futures_util::future::join_all(tasks).await;
    let mut outcome = std::mem::take(&mut *outcome.lock());
    outcome.latencies.sort();
    Ok(outcome)
}

fn percentile(sorted: &[Duration], q: f64) -> f64 {
    match sorted.is_empty() {
        true => f64::NAN,
        false => sorted[((sorted.len() - 1) as f64 * q) as usize].as_secs_f64() * 1000.0,
    }
}

/// When the placement first gave the model a replica count `wanted`
/// accepts, polling four times a second for at most `within`.
async fn until_replicas(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    wanted: impl Fn(usize) -> bool,
    within: Duration,
) -> Option<Instant> {
    let give_up = Instant::now() + within;
    while Instant::now() < give_up {
        let view = client.get(format!("{url}/v1/cluster")).bearer_auth(token).send().await.ok()?;
        let view: Value = view.json().await.ok()?;
        let assignment = &view["placement"]["assignments"][format!("{MODEL}/1")];
        let replicas = assignment["nodes"].as_array().map_or(0, Vec::len);
        if wanted(replicas) {
            return Some(Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    None
}
