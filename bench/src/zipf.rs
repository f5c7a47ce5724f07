//! Many models, few nodes: publishes `models` versions loaded on demand
//! (`replicas.min: 0`), each on one of the MLP artifacts in a folder (of
//! varied sizes), then drives closed-loop traffic whose model is drawn from
//! a Zipf distribution, for a bounded time. Reports what a MaaS operator
//! asks of a model cache: hit rate, cold-start latency, hot and cold p99,
//! requests/s, evictions, peak memory per node against its budget, and
//! failed requests.
//!
//! Cold requests are counted by the coordinator
//! (`maas_cold_start_duration_seconds`); the client cannot tell which of
//! its requests were cold, so the slowest that many are taken as the cold
//! ones (a cold load costs tens to hundreds of milliseconds, a hot answer
//! about one), and the rest as hot.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures_util::StreamExt;
use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

/// What to run.
pub struct ZipfSettings {
    /// Coordinator base URL.
    pub url: String,
    /// Admin token (publishing, metrics, cluster view).
    pub token: String,
    /// Folder of `*.pt` MLP artifacts (input `[-1, 64]` FP32, output `[-1, 10]`).
    pub artifacts: PathBuf,
    /// Versions to publish and call.
    pub models: usize,
    /// Zipf exponent.
    pub exponent: f64,
    /// Concurrent clients.
    pub clients: usize,
    /// Seconds of traffic.
    pub seconds: f64,
    /// The cluster's other coordinators, whose evictions count too.
    pub other_coordinators: Vec<String>,
}

/// Runs the benchmark and prints its figures as Markdown.
pub async fn run(settings: ZipfSettings) -> Result<()> {
    let client = reqwest::Client::builder().pool_max_idle_per_host(256).timeout(Duration::from_secs(120)).build()?;
    let admin = Admin { client: client.clone(), url: settings.url.clone(), token: settings.token.clone() };
    let names = publish_all(&admin, &settings.artifacts, settings.models).await?;
    let weights = zipf_weights(names.len(), settings.exponent);
    let coordinators: Vec<Admin> = std::iter::once(settings.url.clone())
        .chain(settings.other_coordinators.iter().cloned())
        .map(|url| Admin { url, ..admin.clone() })
        .collect();
    let evictions_before = evictions(&coordinators).await?;
    let before = admin.metrics().await?;
    let peaks = Arc::new(Mutex::new(BTreeMap::<String, (u64, u64)>::new()));
    let watching = tokio::spawn(watch_memory(admin.clone(), peaks.clone()));
    let outcome = drive(&client, &settings, &names, &weights).await;
    watching.abort();
    let after = admin.metrics().await?;
    let cold = counter(&after, "maas_cold_start_duration_seconds_count")
        - counter(&before, "maas_cold_start_duration_seconds_count");
    let evictions = evictions(&coordinators).await? - evictions_before;
    report(&settings, &outcome, cold as usize, evictions as u64, &peaks.lock());
    Ok(())
}

/// Evictions counted by all of `coordinators` (the leader counts them).
async fn evictions(coordinators: &[Admin]) -> Result<f64> {
    let mut total = 0.0;
    for coordinator in coordinators {
        total += counter(&coordinator.metrics().await?, "maas_evictions_total");
    }
    Ok(total)
}

/// The admin API, as the benchmark uses it.
#[derive(Clone)]
struct Admin {
    client: reqwest::Client,
    url: String,
    token: String,
}

impl Admin {
    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Value> {
        let response = request.bearer_auth(&self.token).send().await?;
        let status = response.status();
        let body = response.bytes().await?;
        if !status.is_success() {
            bail!("status {status}: {}", String::from_utf8_lossy(&body));
        }
        Ok(serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    async fn metrics(&self) -> Result<String> {
        let response = self.client.get(format!("{}/metrics", self.url)).bearer_auth(&self.token).send().await?;
        Ok(response.text().await?)
    }
}

/// Uploads the artifacts and publishes `models` versions over them, in
/// turn (`z0000` on the first artifact, `z0001` on the second, ...); a
/// model published by an earlier run is kept. Returns the model names.
async fn publish_all(admin: &Admin, folder: &Path, models: usize) -> Result<Vec<String>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(folder)
        .with_context(|| format!("reading {}", folder.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|e| e == "pt"))
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("no .pt artifacts in {}", folder.display());
    }
    let mut digests = Vec::new();
    for file in &files {
        let bytes = std::fs::read(file)?;
        let stored = admin.send(admin.client.put(format!("{}/v1/artifacts", admin.url)).body(bytes)).await?;
        digests.push(stored["sha256"].as_str().context("sha256 in the upload's answer")?.to_string());
    }
    let started = Instant::now();
    let names: Vec<String> = (0..models).map(|i| format!("z{i:04}")).collect();
    let published = futures_util::stream::iter(names.iter().enumerate())
        .map(|(index, name)| {
            let sha256 = digests[index % digests.len()].clone();
            async move {
                let exists = admin.send(admin.client.get(format!("{}/v1/models/{name}", admin.url))).await.is_ok();
                if exists {
                    return Ok(());
                }
                let config = json!({
                    "name": name, "max_batch_size": 8, "max_queue_delay_us": 200,
                    "replicas": {"min": 0, "max": 1},
                    "inputs": [{"name": "INPUT__0", "datatype": "FP32", "shape": [-1, 64]}],
                    "outputs": [{"name": "OUTPUT__0", "datatype": "FP32", "shape": [-1, 10]}],
                });
                let body = json!({"config": config, "artifact": {"sha256": sha256}, "source": "bench zipf"});
                let url = format!("{}/v1/models/{name}/versions", admin.url);
                admin.send(admin.client.post(url).json(&body)).await.map(drop)
            }
        })
        .buffer_unordered(4)
        .collect::<Vec<Result<()>>>()
        .await;
    published.into_iter().collect::<Result<Vec<()>>>()?;
    eprintln!("{models} versions published on {} artifacts in {:.0} s", files.len(), started.elapsed().as_secs_f64());
    Ok(names)
}

/// The cumulative Zipf distribution over `n` ranks: rank `k` (from 1) has
/// weight `1 / k^exponent`.
fn zipf_weights(n: usize, exponent: f64) -> Vec<f64> {
    let mut cumulative = Vec::with_capacity(n);
    let mut sum = 0.0;
    for rank in 1..=n {
        sum += 1.0 / (rank as f64).powf(exponent);
        cumulative.push(sum);
    }
    cumulative.iter().map(|c| c / sum).collect()
}

/// What the clients saw.
#[derive(Default)]
struct Outcome {
    latencies: Vec<Duration>,
    failures: Vec<String>,
    elapsed: Duration,
    distinct: usize,
}

/// Runs the clients until the time is up; each draws its model by rank
/// (ranks are shuffled over the names, so popularity and size are apart).
async fn drive(client: &reqwest::Client, settings: &ZipfSettings, names: &[String], weights: &[f64]) -> Outcome {
    let mut order: Vec<usize> = (0..names.len()).collect();
    let mut shuffler = StdRng::seed_from_u64(7);
    for i in (1..order.len()).rev() {
        order.swap(i, shuffler.random_range(0..=i));
    }
    let order = Arc::new(order);
    let stop_at = Instant::now() + Duration::from_secs_f64(settings.seconds);
    let started = Instant::now();
    let outcome = Arc::new(Mutex::new(Outcome::default()));
    let called = Arc::new(Mutex::new(std::collections::BTreeSet::new()));
    let clients = (0..settings.clients).map(|index| {
        let (client, order, outcome, called) = (client.clone(), order.clone(), outcome.clone(), called.clone());
        let (url, weights, names) = (settings.url.clone(), weights.to_vec(), names.to_vec());
        tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(index as u64 + 1);
            let row: Vec<f32> = (0..64).map(|_| rng.random_range(-1.0..1.0)).collect();
            let body = json!({"inputs": [{"name": "INPUT__0", "datatype": "FP32", "shape": [1, 64], "data": row}]});
            while Instant::now() < stop_at {
                let draw: f64 = rng.random();
                let rank = weights.partition_point(|c| *c < draw).min(names.len() - 1);
                let name = &names[order[rank]];
                called.lock().insert(order[rank]);
                let sent = Instant::now();
                let answer = client.post(format!("{url}/v2/models/{name}/infer")).json(&body).send().await;
                let failure = match answer {
                    Ok(response) if response.status().is_success() => {
                        response.bytes().await.err().map(|e| e.to_string())
                    }
                    Ok(response) => Some(format!("{name}: status {}", response.status())),
                    Err(error) => Some(format!("{name}: {error}")),
                };
                let mut outcome = outcome.lock();
                match failure {
                    None => outcome.latencies.push(sent.elapsed()),
                    Some(failure) => outcome.failures.push(failure),
                }
            }
        })
    });
    futures_util::future::join_all(clients).await;
    let mut outcome = std::mem::take(&mut *outcome.lock());
    outcome.elapsed = started.elapsed();
    outcome.distinct = called.lock().len();
    outcome
}

/// Follows each node's memory in use and budget, keeping the peak.
async fn watch_memory(admin: Admin, peaks: Arc<Mutex<BTreeMap<String, (u64, u64)>>>) {
    loop {
        if let Ok(view) = admin.send(admin.client.get(format!("{}/v1/cluster", admin.url))).await {
            for link in view["links"].as_array().into_iter().flatten() {
                let (Some(name), Some(status)) = (link["name"].as_str(), link.get("status")) else { continue };
                let used = status["memory_used_bytes"].as_u64().unwrap_or(0);
                let budget = status["memory_bytes"].as_u64().unwrap_or(0);
                let mut peaks = peaks.lock();
                let peak = peaks.entry(name.to_string()).or_default();
                *peak = (peak.0.max(used), budget);
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The sum of a counter's series in a Prometheus text page.
fn counter(page: &str, name: &str) -> f64 {
    page.lines()
        .filter(|line| line.starts_with(name) && line[name.len()..].starts_with([' ', '{']))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn quantile(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index].as_secs_f64() * 1000.0
}

fn report(
    settings: &ZipfSettings,
    outcome: &Outcome,
    cold: usize,
    evictions: u64,
    peaks: &BTreeMap<String, (u64, u64)>,
) {
    let mut latencies = outcome.latencies.clone();
    latencies.sort();
    let answered = latencies.len();
    let cold = cold.min(answered);
    let (hot, cold_ones) = latencies.split_at(answered - cold);
    let mib = |bytes: u64| bytes as f64 / (1u64 << 20) as f64;
    println!(
        "| models | exponent | clients | seconds | requests | req/s | hit rate | cold starts | cold p50 (ms) | cold p99 (ms) | hot p99 (ms) | all p99 (ms) | evictions | failed | models called |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {} | {} | {} | {:.0} | {answered} | {:.0} | {:.1} % | {cold} | {:.0} | {:.0} | {:.1} | {:.1} | {evictions} | {} | {} |",
        settings.models,
        settings.exponent,
        settings.clients,
        outcome.elapsed.as_secs_f64(),
        answered as f64 / outcome.elapsed.as_secs_f64(),
        100.0 * (1.0 - cold as f64 / answered.max(1) as f64),
        quantile(cold_ones, 0.5),
        quantile(cold_ones, 0.99),
        quantile(hot, 0.99),
        quantile(&latencies, 0.99),
        outcome.failures.len(),
        outcome.distinct,
    );
    println!();
    println!("| node | peak memory in use (MiB) | budget (MiB) |");
    println!("|---|---:|---:|");
    for (node, (peak, budget)) in peaks {
        println!("| {node} | {:.0} | {:.0} |", mib(*peak), mib(*budget));
    }
    for failure in outcome.failures.iter().take(10) {
        eprintln!("failed: {failure}");
    }
}
