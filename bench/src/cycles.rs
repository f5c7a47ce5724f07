//! Load → infer → unload, over and over, through the real serving path: a
//! few models loaded on demand (one artifact), called in turn on a node
//! with room for one of them (each declares `memory_bytes`), so that every
//! call loads its model and evicts the one before. Every tenth cycle also
//! offers an artifact that cannot load (its trial load fails on the node).
//! The node's heap and resident memory are read from its `/metrics` after
//! the warm-up cycles and every hundred: a load/unload cycle that leaks
//! shows as drift.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

/// What the benchmark is given.
pub struct CycleSettings {
    /// Coordinator base URL.
    pub url: String,
    /// Admin token.
    pub token: String,
    /// The node's `/metrics` URL.
    pub node_metrics: String,
    /// MLP (input `[-1, 64]` FP32, output `[-1, 10]`) in `platform`'s format.
    pub artifact: std::path::PathBuf,
    /// The artifact's format, as configs name it.
    pub platform: String,
    /// Cycles to run.
    pub cycles: usize,
    /// Cycles before the first memory reading.
    pub warm_up: usize,
    /// Models called in turn.
    pub models: usize,
    /// Memory each declares, in bytes (more than half the node's budget
    /// left beside its repository's models, so that one fits at a time).
    pub memory_bytes: u64,
}

/// One memory reading of the node.
struct Reading {
    cycle: usize,
    heap: f64,
    resident: f64,
    loaded: f64,
}

/// Runs the cycles and prints the node's memory as Markdown.
pub async fn run(settings: CycleSettings) -> Result<()> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(120)).build()?;
    let admin = |request: reqwest::RequestBuilder| {
        let token = settings.token.clone();
        async move {
            let response = request.bearer_auth(token).send().await?;
            let status = response.status();
            let body = response.bytes().await?;
            anyhow::Ok((status, serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null)))
        }
    };
    let upload = |bytes: Vec<u8>| admin(client.put(format!("{}/v1/artifacts", settings.url)).body(bytes));
    let (_, stored) = upload(std::fs::read(&settings.artifact)?).await?;
    let sha256 = stored["sha256"].as_str().context("sha256 of the artifact")?.to_string();
    let (_, garbage) = upload(b"not a TorchScript archive".repeat(1000)).await?;
    let garbage = garbage["sha256"].as_str().context("sha256 of the garbage")?.to_string();
    let config = |name: &str| {
        json!({
            "name": name, "platform": settings.platform, "max_batch_size": 8, "replicas": {"min": 0, "max": 1},
            "memory_bytes": settings.memory_bytes,
            "inputs": [{"name": "INPUT__0", "datatype": "FP32", "shape": [-1, 64]}],
            "outputs": [{"name": "OUTPUT__0", "datatype": "FP32", "shape": [-1, 10]}],
        })
    };
    let publish = |name: String, sha256: String| {
        let body = json!({"config": config(&name), "artifact": {"sha256": sha256}, "source": "bench cycles"});
        admin(client.post(format!("{}/v1/models/{name}/versions", settings.url)).json(&body))
    };
    let row: Vec<f32> = (0..64).map(|i| (i as f32 / 64.0) - 0.5).collect();
    let body = json!({"inputs": [{"name": "INPUT__0", "datatype": "FP32", "shape": [1, 64], "data": row}]});
    let mut readings = Vec::new();
    let (mut refused, mut cycle_times) = (0, Vec::new());
    let started = Instant::now();
    let names: Vec<String> = (0..settings.models.max(2)).map(|i| format!("cycle{i}")).collect();
    for name in &names {
        let (status, answer) = publish(name.clone(), sha256.clone()).await?;
        if !status.is_success() {
            bail!("publishing {name}: {status} {answer}");
        }
    }
    for cycle in 1..=settings.cycles {
        let name = &names[cycle % names.len()];
        let sent = Instant::now();
        let response = client.post(format!("{}/v2/models/{name}/infer", settings.url)).json(&body).send().await?;
        let status = response.status();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() || answer["outputs"][0]["data"].as_array().map(Vec::len) != Some(10) {
            bail!("cycle {cycle}: {status} {answer}");
        }
        cycle_times.push(sent.elapsed());
        if cycle % 10 == 0 {
            let (status, _) = publish("cycle-broken".into(), garbage.clone()).await?;
            if status.is_success() {
                bail!("an artifact that cannot load was accepted");
            }
            refused += 1;
        }
        if cycle == settings.warm_up || cycle == settings.cycles || cycle % 100 == 0 {
            readings.push(read_node(&client, &settings.node_metrics, cycle).await?);
        }
    }
    cycle_times.sort();
    println!(
        "{} cycles in {:.0} s ({refused} corrupt artifacts refused); load and first answer p50 {:.0} ms, p99 {:.0} ms",
        settings.cycles,
        started.elapsed().as_secs_f64(),
        cycle_times[cycle_times.len() / 2].as_secs_f64() * 1000.0,
        cycle_times[cycle_times.len() * 99 / 100].as_secs_f64() * 1000.0,
    );
    println!();
    println!("| cycle | node heap (MiB) | node resident (MiB) | versions loaded |");
    println!("|---:|---:|---:|---:|");
    for r in &readings {
        println!("| {} | {:.1} | {:.1} | {} |", r.cycle, r.heap / 1048576.0, r.resident / 1048576.0, r.loaded);
    }
    let base = readings.iter().find(|r| r.cycle >= settings.warm_up).context("no reading after the warm-up")?;
    let last = readings.last().expect("read at the end");
    println!();
    println!(
        "drift from cycle {} to {}: heap {:+.2} %, resident {:+.2} %",
        base.cycle,
        last.cycle,
        (last.heap - base.heap) / base.heap * 100.0,
        (last.resident - base.resident) / base.resident * 100.0
    );
    Ok(())
}

async fn read_node(client: &reqwest::Client, url: &str, cycle: usize) -> Result<Reading> {
    let text = client.get(url).send().await?.text().await?;
    let gauge = |name: &str| {
        text.lines()
            .find(|line| line.split_whitespace().next() == Some(name))
            .and_then(|line| line.split_whitespace().nth(1)?.parse::<f64>().ok())
            .with_context(|| format!("{name} in the node's metrics"))
    };
    Ok(Reading {
        cycle,
        heap: gauge("maas_node_heap_bytes")?,
        resident: gauge("maas_node_resident_bytes")?,
        loaded: gauge("maas_node_models_loaded")?,
    })
}
