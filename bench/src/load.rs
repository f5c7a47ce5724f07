//! Closed-loop load: N clients, each sending its next request as soon as
//! the previous one is answered, over HTTP (JSON or binary tensors) or gRPC
//! (unary calls, or one bidirectional stream per client; see the `grpc` module).

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use hdrhistogram::Histogram;
use serde_json::{json, Value};

/// How request tensors travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Encoding {
    /// JSON `data` arrays in, JSON out.
    Json,
    /// Binary tensor extension in and out.
    Binary,
    /// gRPC `ModelInfer`, raw tensor contents.
    Grpc,
    /// gRPC `ModelStreamInfer`, one stream per client.
    GrpcStream,
    /// Straight to a node over QUIC, no coordinator (`--node`).
    Quic,
}

/// A model to load, with prebuilt request bodies of `rows` rows each.
pub struct Target {
    infer_url: String,
    /// Model name.
    pub model: String,
    /// Its input's name.
    pub input: String,
    /// Rows in each request.
    pub rows: usize,
    /// The shape of one request's input (batch dimension `rows`).
    pub row_shape: Vec<i64>,
    /// The inputs requests carry, as little-endian FP32 bytes; empty for a
    /// model with other inputs, which only the HTTP encodings drive.
    pub raw_inputs: Vec<Vec<u8>>,
    json_bodies: Vec<Vec<u8>>,
    binary_bodies: Vec<(Vec<u8>, usize)>,
}

const DISTINCT_ROWS: usize = 64;

impl Target {
    /// Reads the model's metadata and prepares requests of `rows` rows: for
    /// every encoding when it has one FP32 input, else (several inputs,
    /// integer ones) for the HTTP encodings.
    pub async fn discover(base: &str, model: &str, rows: usize) -> Result<Target> {
        let answer = load_client(1)?
            .get(format!("{base}/v2/models/{model}"))
            .send()
            .await
            .with_context(|| format!("is a coordinator running at {base}?"))?;
        let status = answer.status();
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            bail!("reading model {model}'s metadata: {status} (set MAAS_BENCH_TOKEN to a key that may use it)");
        }
        let metadata: Value =
            answer.error_for_status().with_context(|| format!("reading model {model}'s metadata"))?.json().await?;
        let inputs = metadata["inputs"].as_array().context("model metadata has no inputs")?;
        if inputs.len() != 1 || inputs[0]["datatype"] != "FP32" {
            return Self::with_any_inputs(base, model, rows, inputs);
        }
        let name = inputs[0]["name"].as_str().context("input name")?.to_string();
        let shape: Vec<i64> = serde_json::from_value(inputs[0]["shape"].clone())?;
        let row_shape: Vec<i64> = std::iter::once(rows as i64).chain(shape[1..].iter().copied()).collect();
        let row_len: usize = rows * shape[1..].iter().product::<i64>() as usize;
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) as f32
        };
        let mut json_bodies = Vec::new();
        let mut binary_bodies = Vec::new();
        let mut raw_inputs = Vec::new();
        for _ in 0..DISTINCT_ROWS {
            let row: Vec<f32> = (0..row_len).map(|_| next()).collect();
            json_bodies.push(serde_json::to_vec(&json!({
                "inputs": [{"name": name, "shape": row_shape, "datatype": "FP32", "data": row}],
            }))?);
            let mut body = serde_json::to_vec(&json!({
                "inputs": [{"name": name, "shape": row_shape, "datatype": "FP32",
                            "parameters": {"binary_data_size": row_len * 4}}],
                "parameters": {"binary_data_output": true},
            }))?;
            let json_len = body.len();
            let raw: Vec<u8> = row.iter().flat_map(|v| v.to_le_bytes()).collect();
            body.extend_from_slice(&raw);
            binary_bodies.push((body, json_len));
            raw_inputs.push(raw);
        }
        Ok(Target {
            infer_url: format!("{base}/v2/models/{model}/infer"),
            model: model.into(),
            input: name,
            rows,
            row_shape,
            raw_inputs,
            json_bodies,
            binary_bodies,
        })
    }
}

impl Target {
    /// Requests for a model with several inputs or integer ones, for the
    /// HTTP encodings: FP32 inputs get values in [-1, 1), integer ones 0 or
    /// 1 (valid token ids and attention masks alike).
    fn with_any_inputs(base: &str, model: &str, rows: usize, inputs: &[Value]) -> Result<Target> {
        let mut json_bodies = Vec::new();
        let mut binary_bodies = Vec::new();
        let mut first_shape = Vec::new();
        for variant in 0..DISTINCT_ROWS {
            let (mut json_inputs, mut binary_inputs, mut raw) = (Vec::new(), Vec::new(), Vec::new());
            for (index, input) in inputs.iter().enumerate() {
                let name = input["name"].as_str().context("input name")?;
                let datatype = input["datatype"].as_str().context("input datatype")?;
                let shape: Vec<i64> = serde_json::from_value(input["shape"].clone())?;
                let shape: Vec<i64> =
                    std::iter::once(rows as i64).chain(shape[1..].iter().map(|&d| d.max(1))).collect();
                let count = shape.iter().product::<i64>() as usize;
                let seed = variant * 31 + index * 7;
                let (data, bytes): (Vec<Value>, Vec<u8>) = match datatype {
                    "FP32" => {
                        let values: Vec<f32> =
                            (0..count).map(|i| ((i * 7919 + seed) % 2000) as f32 / 1000.0 - 1.0).collect();
                        (
                            values.iter().map(|&v| json!(v)).collect(),
                            values.iter().flat_map(|v| v.to_le_bytes()).collect(),
                        )
                    }
                    "INT64" => {
                        let values: Vec<i64> = (0..count).map(|i| ((i + seed) % 2) as i64).collect();
                        (
                            values.iter().map(|&v| json!(v)).collect(),
                            values.iter().flat_map(|v| v.to_le_bytes()).collect(),
                        )
                    }
                    "INT32" => {
                        let values: Vec<i32> = (0..count).map(|i| ((i + seed) % 2) as i32).collect();
                        (
                            values.iter().map(|&v| json!(v)).collect(),
                            values.iter().flat_map(|v| v.to_le_bytes()).collect(),
                        )
                    }
                    other => bail!("the load generator does not fill {other} inputs ({model} input '{name}')"),
                };
                json_inputs.push(json!({"name": name, "shape": shape, "datatype": datatype, "data": data}));
                binary_inputs.push(json!({"name": name, "shape": shape, "datatype": datatype,
                                          "parameters": {"binary_data_size": bytes.len()}}));
                raw.extend_from_slice(&bytes);
                if index == 0 {
                    first_shape = shape;
                }
            }
            json_bodies.push(serde_json::to_vec(&json!({"inputs": json_inputs}))?);
            let mut body =
                serde_json::to_vec(&json!({"inputs": binary_inputs, "parameters": {"binary_data_output": true}}))?;
            let json_len = body.len();
            body.extend_from_slice(&raw);
            binary_bodies.push((body, json_len));
        }
        Ok(Target {
            infer_url: format!("{base}/v2/models/{model}/infer"),
            model: model.into(),
            input: inputs.first().and_then(|i| i["name"].as_str()).unwrap_or_default().to_string(),
            rows,
            row_shape: first_shape,
            raw_inputs: Vec::new(),
            json_bodies,
            binary_bodies,
        })
    }

    /// The inference URL.
    pub fn infer_url(&self) -> &str {
        &self.infer_url
    }

    /// The `index`-th prebuilt binary body and its JSON header length.
    pub fn binary_body(&self, index: usize) -> (Vec<u8>, usize) {
        let (body, json_len) = &self.binary_bodies[index % self.binary_bodies.len()];
        (body.clone(), *json_len)
    }
}

/// One measured point.
pub struct LoadPoint {
    /// Model.
    pub model: String,
    /// Rows in each request.
    pub rows_per_request: usize,
    /// Encoding used.
    pub encoding: Encoding,
    /// Concurrent clients.
    pub concurrency: usize,
    /// Successful requests in the measured window.
    pub requests: u64,
    /// Failed requests in the measured window.
    pub errors: u64,
    /// Measured window.
    pub window: Duration,
    /// Latencies in microseconds.
    pub latency_us: Histogram<u64>,
}

impl LoadPoint {
    /// Successful requests per second.
    pub fn requests_per_second(&self) -> f64 {
        self.requests as f64 / self.window.as_secs_f64()
    }

    /// Rows of successful requests per second.
    pub fn rows_per_second(&self) -> f64 {
        self.requests_per_second() * self.rows_per_request as f64
    }

    /// A latency quantile.
    pub fn quantile(&self, q: f64) -> Duration {
        Duration::from_micros(self.latency_us.value_at_quantile(q))
    }
}

/// Runs `concurrency` clients for `warmup + window` and measures the window.
pub async fn closed_loop(
    target: &Target,
    encoding: Encoding,
    concurrency: usize,
    warmup: Duration,
    window: Duration,
) -> Result<LoadPoint> {
    let client = load_client(concurrency)?;
    let started = Instant::now();
    let measure_from = started + warmup;
    let stop_at = measure_from + window;
    let mut tasks = Vec::new();
    for worker in 0..concurrency {
        let client = client.clone();
        let url = target.infer_url.clone();
        let bodies: Vec<(Vec<u8>, Option<usize>)> = match encoding {
            Encoding::Json => target.json_bodies.iter().map(|b| (b.clone(), None)).collect(),
            Encoding::Binary => target.binary_bodies.iter().map(|(b, l)| (b.clone(), Some(*l))).collect(),
            Encoding::Grpc | Encoding::GrpcStream | Encoding::Quic => {
                bail!("gRPC and QUIC load run through their own modules")
            }
        };
        tasks.push(tokio::spawn(async move {
            let mut counts: ClientCounts = (latency_histogram(), 0, 0);
            let mut index = worker;
            while Instant::now() < stop_at {
                index = (index + 1) % bodies.len();
                let (body, json_len) = &bodies[index];
                let mut request = client.post(&url).body(body.clone());
                if let Some(len) = json_len {
                    request = request.header("Inference-Header-Content-Length", len.to_string());
                }
                let sent = Instant::now();
                let success = match request.send().await {
                    Ok(response) => response.status().is_success() && response.bytes().await.is_ok(),
                    Err(_) => false,
                };
                count(&mut counts, sent, success, measure_from, stop_at);
            }
            counts
        }));
    }
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await?);
    }
    LoadPoint::merge(target, encoding, concurrency, window, results)
}

/// One client's latencies, successes and failures in the measured window.
pub type ClientCounts = (Histogram<u64>, u64, u64);

/// A new, empty latency histogram in microseconds (1 µs to 60 s).
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

/// Counts one request if it was sent inside the measured window.
pub fn count(counts: &mut ClientCounts, sent: Instant, success: bool, measure_from: Instant, stop_at: Instant) {
    if sent >= measure_from && sent < stop_at {
        if success {
            counts.1 += 1;
            let _ = counts.0.record(sent.elapsed().as_micros().max(1) as u64);
        } else {
            counts.2 += 1;
        }
    }
}

impl LoadPoint {
    /// Adds up the clients of one point.
    pub fn merge(
        target: &Target,
        encoding: Encoding,
        concurrency: usize,
        window: Duration,
        clients: Vec<ClientCounts>,
    ) -> Result<LoadPoint> {
        let mut latency_us = latency_histogram();
        let (mut requests, mut errors) = (0, 0);
        for (histogram, ok, failed) in clients {
            latency_us.add(histogram)?;
            requests += ok;
            errors += failed;
        }
        Ok(LoadPoint {
            model: target.model.clone(),
            rows_per_request: target.rows,
            encoding,
            concurrency,
            requests,
            errors,
            window,
            latency_us,
        })
    }
}

/// The HTTP load's client. With `MAAS_BENCH_TOKEN` set, every request
/// carries it as a bearer token, for clusters that require keys for
/// inference (the variable keeps it off the command line).
pub fn load_client(concurrency: usize) -> Result<reqwest::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(token) = std::env::var("MAAS_BENCH_TOKEN").ok().filter(|t| !t.trim().is_empty()) {
        let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {}", token.trim()))
            .context("MAAS_BENCH_TOKEN is not a valid header value")?;
        value.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    Ok(reqwest::Client::builder().pool_max_idle_per_host(concurrency).default_headers(headers).build()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_for_several_integer_inputs_carry_each_input_whole() {
        let inputs = vec![
            json!({"name": "input_ids", "datatype": "INT64", "shape": [-1, 16]}),
            json!({"name": "attention_mask", "datatype": "INT64", "shape": [-1, 16]}),
        ];
        let target = Target::with_any_inputs("http://x", "bert", 2, &inputs).unwrap();
        assert!(target.raw_inputs.is_empty(), "only the HTTP encodings drive it");
        let (body, json_len) = target.binary_body(3);
        let header: Value = serde_json::from_slice(&body[..json_len]).unwrap();
        let sizes: Vec<u64> = header["inputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["parameters"]["binary_data_size"].as_u64().unwrap())
            .collect();
        assert_eq!(sizes, vec![2 * 16 * 8, 2 * 16 * 8]);
        assert_eq!(body.len() - json_len, 2 * 2 * 16 * 8);
        let json: Value = serde_json::from_slice(&target.json_bodies[0]).unwrap();
        let ids = json["inputs"][0]["data"].as_array().unwrap();
        assert_eq!(ids.len(), 32);
        assert!(ids.iter().all(|v| v.as_i64().is_some_and(|v| v == 0 || v == 1)));
        assert!(Target::with_any_inputs(
            "http://x",
            "m",
            1,
            &[json!({"name": "s", "datatype": "BYTES", "shape": [-1, 1]})]
        )
        .is_err());
    }
}
