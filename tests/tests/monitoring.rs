//! Monitoring against a real cluster: statistics and metrics that agree
//! with a counted load, a latency alert raised by a slowdown and cleared by
//! recovery, drift alerts from shifted inputs, and evaluation from feedback.

use std::time::{Duration, Instant};

use maas_tests::cli::{maas, ok};
use maas_tests::cluster::{metric_sum, ADMIN_TOKEN};
use maas_tests::reference::JsonTensor;
use maas_tests::requests::{json_body, post_json};
use maas_tests::{Cluster, NodeSpec, Reference};
use serde_json::{json, Value};

async fn get(cluster: &Cluster, path: &str) -> Value {
    let response = cluster.client.get(cluster.url(path)).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
    assert!(response.status().is_success(), "{path}: {}", response.status());
    response.json().await.unwrap()
}

/// A single-row FP32 input `INPUT__0` of `width` values.
fn row(width: usize, values: impl Fn(usize) -> f64) -> Vec<JsonTensor> {
    vec![JsonTensor { name: "INPUT__0".into(), datatype: "FP32".into(), shape: vec![1, width as i64], data: (0..width).map(|i| json!(values(i))).collect() }]
}

/// splitmix64: a well-mixed 64-bit hash.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e3779b97f4a7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d049bb133111eb);
    x ^ (x >> 31)
}

/// A deterministic standard normal value for `seed` (Box-Muller).
fn normal(seed: u64) -> f64 {
    let uniform = |x: u64| ((mix(x) >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    let (u, v) = (uniform(seed.wrapping_mul(2)), uniform(seed.wrapping_mul(2) + 1));
    (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statistics_and_metrics_agree_with_a_counted_load() {
    let cluster = Cluster::builder().nodes(vec![NodeSpec::new("node-0", &["mlp"])]).start().await.unwrap();
    let reference = Reference::load("mlp", 1);
    let (clients, per_client) = (8usize, 40usize);
    let tasks: Vec<_> = (0..clients)
        .map(|client| {
            let http = cluster.client.clone();
            let url = cluster.url("/v2/models/mlp/versions/1/infer");
            let reference = reference.clone();
            tokio::spawn(async move {
                for i in 0..per_client {
                    let single = reference.rows((client * per_client + i) % 64, 1);
                    post_json(&http, &url, &json_body(&single.inputs, None)).await.unwrap().answer().unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let bad = json_body(&row(3, |_| 0.0), None);
    for _ in 0..5 {
        let answer = post_json(&cluster.client, &cluster.url("/v2/models/mlp/versions/1/infer"), &bad).await.unwrap();
        assert_eq!(answer.status, 400);
    }
    let sent = (clients * per_client) as u64;

    let stats = get(&cluster, "/v2/models/mlp/versions/1/stats").await;
    let version = &stats["model_stats"][0];
    assert_eq!(stats["model_stats"].as_array().unwrap().len(), 1, "{stats:#}");
    assert_eq!(version["name"], "mlp");
    assert_eq!(version["version"], "1");
    let inference = &version["inference_stats"];
    assert_eq!(inference["success"]["count"], sent, "{version:#}");
    assert_eq!(inference["fail"]["count"], 5);
    assert_eq!(inference["queue"]["count"], sent);
    assert_eq!(version["inference_count"], sent);
    let batches = version["batch_stats"].as_array().unwrap();
    let rows: u64 = batches.iter().map(|b| b["batch_size"].as_u64().unwrap() * b["compute_infer"]["count"].as_u64().unwrap()).sum();
    let executions: u64 = batches.iter().map(|b| b["compute_infer"]["count"].as_u64().unwrap()).sum();
    assert_eq!(rows, sent, "batch sizes times their counts add up to the rows");
    assert_eq!(version["execution_count"], executions);
    assert!(executions < sent, "some batches held more than one request ({executions} batches for {sent} rows)");
    let all = get(&cluster, "/v2/models/stats").await;
    assert!(all["model_stats"].as_array().unwrap().iter().any(|s| s["name"] == "mlp"));

    // Prometheus agrees with the statistics (the load gauges are set once a second).
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let metrics = cluster.client.get(cluster.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let labels = [("model", "mlp"), ("version", "1")];
    let ok = [("model", "mlp"), ("version", "1"), ("outcome", "ok")];
    assert_eq!(metric_sum(&metrics, "maas_inference_requests_total", &ok), sent as f64);
    assert_eq!(metric_sum(&metrics, "maas_inference_requests_total", &[("model", "mlp"), ("outcome", "invalid")]), 5.0);
    assert_eq!(metric_sum(&metrics, "maas_inference_rows_total", &labels), sent as f64);
    assert_eq!(metric_sum(&metrics, "maas_inference_batch_size_count", &labels), executions as f64);
    assert_eq!(metric_sum(&metrics, "maas_inference_batch_size_sum", &labels), sent as f64);
    assert_eq!(metric_sum(&metrics, "maas_inference_request_duration_seconds_count", &labels), sent as f64);
    assert!(metrics.contains("maas_inference_in_flight{"), "in-flight gauge missing");
    assert!(metrics.contains("maas_inference_queued{"), "queued gauge missing");

    let unknown = cluster.client.get(cluster.url("/v2/models/nope/stats")).send().await.unwrap();
    assert_eq!(unknown.status().as_u16(), 404);
}

/// Sends single-row requests to `sleepy` from 4 clients for `length`; the
/// first element sets the model's extra work.
async fn sleepy_load(cluster: &Cluster, rounds: u32, length: Duration) {
    let started = Instant::now();
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let http = cluster.client.clone();
            let url = cluster.url("/v2/models/sleepy/infer");
            tokio::spawn(async move {
                let body = json_body(&[JsonTensor { name: "INPUT__0".into(), datatype: "FP32".into(), shape: vec![1, 4], data: vec![json!(rounds), json!(0.5), json!(0.25), json!(1.0)] }], None);
                let mut sent = 0;
                while started.elapsed() < length && sent < 100_000 {
                    let answer = post_json(&http, &url, &body).await.unwrap().answer().unwrap();
                    assert_eq!(answer.outputs[0].data[0], json!(f64::from(rounds) * 2.0));
                    sent += 1;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}

fn latency_alert(alerts: &Value, list: &str) -> Option<Value> {
    alerts[list].as_array()?.iter().find(|a| a["kind"] == "latency" && a["model"] == "sleepy").cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slowdown_raises_a_latency_alert_that_clears() {
    let cluster = Cluster::builder().nodes(vec![NodeSpec::new("node-0", &["sleepy"])]).start().await.unwrap();
    // Normal load long enough for the detector's 20-second warm-up.
    sleepy_load(&cluster, 0, Duration::from_secs(24)).await;
    assert_eq!(latency_alert(&get(&cluster, "/v1/alerts").await, "active"), None, "an alert under normal load");

    // The model becomes slow: the alert comes within 30 seconds.
    let slow_from = Instant::now();
    let load = sleepy_load(&cluster, 60, Duration::from_secs(30));
    let watch = async {
        loop {
            if let Some(alert) = latency_alert(&get(&cluster, "/v1/alerts").await, "active") {
                return (slow_from.elapsed(), alert);
            }
            assert!(slow_from.elapsed() < Duration::from_secs(30), "no latency alert within 30 s of the slowdown");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    };
    let ((raised_after, alert), ()) = tokio::join!(watch, load);
    eprintln!("latency alert after {raised_after:?}: {alert}");
    assert_eq!(alert["version"], 1);
    assert!(alert["observed"].as_f64().unwrap() > 2.0 * alert["baseline"].as_f64().unwrap(), "{alert}");
    let metrics = cluster.client.get(cluster.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert_eq!(metric_sum(&metrics, "maas_alert_active", &[("kind", "latency"), ("model", "sleepy")]), 1.0);

    // Back to normal: the alert clears and moves to the history.
    sleepy_load(&cluster, 0, Duration::from_secs(10)).await;
    let alerts = get(&cluster, "/v1/alerts").await;
    assert_eq!(latency_alert(&alerts, "active"), None, "the alert did not clear: {alerts:#}");
    let cleared = latency_alert(&alerts, "recent").expect("the cleared alert is in the history");
    assert!(cleared["cleared"].as_f64().unwrap() >= cleared["since"].as_f64().unwrap());
}

fn drift_alert(alerts: &Value) -> Option<Value> {
    alerts["active"].as_array()?.iter().find(|a| a["kind"] == "drift" && a["model"] == "mlp").cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_alerts_and_evaluation_from_feedback() {
    let cluster = Cluster::builder()
        .nodes(vec![NodeSpec::new("node-0", &["mlp", "sleepy"])])
        .coordinator_args(&["--drift-sample-every", "1", "--drift-rows", "400"])
        .start()
        .await
        .unwrap();
    let url = cluster.url("/v2/models/mlp/versions/1/infer");
    let mut seed = 0u64;
    let mut send = async |shift: f64, count: usize, ids: bool| -> Vec<usize> {
        let mut classes = Vec::new();
        for i in 0..count {
            seed += 1;
            let base = seed * 1000;
            let inputs = row(256, |j| normal(base + j as u64) + shift);
            let id = ids.then(|| format!("r{i}"));
            let answer = post_json(&cluster.client, &url, &json_body(&inputs, id.as_deref())).await.unwrap().answer().unwrap();
            let scores: Vec<f64> = answer.outputs[0].data.iter().map(|v| v.as_f64().unwrap()).collect();
            classes.push(scores.iter().enumerate().fold(0, |best, (k, v)| if *v > scores[best] { k } else { best }));
        }
        classes
    };
    // Reference profile, then the same distribution again: no drift.
    let predicted = send(0.0, 400, true).await;
    send(0.0, 400, false).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(drift_alert(&get(&cluster, "/v1/alerts").await), None, "drift alert without drift");
    // Every feature moves by two standard deviations.
    send(2.0, 400, false).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let alert = drift_alert(&get(&cluster, "/v1/alerts").await).expect("no drift alert after the shift");
    assert_eq!(alert["input"], "INPUT__0");
    assert!(alert["observed"].as_f64().unwrap() > 0.25, "{alert}");
    let metrics = cluster.client.get(cluster.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metric_sum(&metrics, "maas_input_drift_score", &[("model", "mlp"), ("input", "INPUT__0")]) > 0.25);
    // And back.
    send(0.0, 400, false).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(drift_alert(&get(&cluster, "/v1/alerts").await), None, "the drift alert did not clear");

    // Feedback: right for even ids, wrong for odd ones, plus an unknown id.
    let mut labels: Vec<Value> = predicted
        .iter()
        .take(100)
        .enumerate()
        .map(|(i, class)| json!({"id": format!("r{i}"), "label": if i % 2 == 0 { *class } else { (class + 1) % 10 }}))
        .collect();
    labels.push(json!({"id": "never-sent", "label": 1}));
    let answer = cluster.client.post(cluster.url("/v1/models/mlp/feedback")).json(&json!({"feedback": labels})).send().await.unwrap();
    assert_eq!(answer.status().as_u16(), 200);
    let outcome: Value = answer.json().await.unwrap();
    assert_eq!(outcome, json!({"joined": 100, "unknown": 1, "expired": 0, "mismatched": 0}));
    let again = cluster.client.post(cluster.url("/v1/models/mlp/feedback")).json(&json!({"id": "r0", "label": 3})).send().await.unwrap();
    assert_eq!(again.json::<Value>().await.unwrap()["unknown"], 1, "an id is joined once");
    let evaluation = get(&cluster, "/v1/models/mlp/evaluation").await;
    assert_eq!(evaluation["task"], "classification");
    let v1 = &evaluation["versions"][0];
    assert_eq!(v1["version"], 1);
    assert_eq!(v1["samples"], 100);
    assert_eq!(v1["accuracy"], 0.5);
    for metric in ["precision", "recall", "f1"] {
        let value = v1[metric].as_f64().unwrap();
        assert!(value > 0.0 && value < 1.0, "{metric} = {value}");
    }
    assert_eq!(evaluation["feedback"]["unknown"], 2);

    // A regressor: truth one above every prediction.
    let sleepy = cluster.url("/v2/models/sleepy/infer");
    for i in 0..20 {
        let x = f64::from(i) / 40.0;
        let body = json_body(&[JsonTensor { name: "INPUT__0".into(), datatype: "FP32".into(), shape: vec![1, 4], data: vec![json!(x), json!(0.0), json!(0.0), json!(0.0)] }], Some(&format!("s{i}")));
        post_json(&cluster.client, &sleepy, &body).await.unwrap().answer().unwrap();
        let truth = 2.0 * (x as f32) as f64 + 1.0;
        cluster.client.post(cluster.url("/v1/models/sleepy/feedback")).json(&json!({"id": format!("s{i}"), "label": truth})).send().await.unwrap();
    }
    let evaluation = get(&cluster, "/v1/models/sleepy/evaluation").await;
    assert_eq!(evaluation["task"], "regression");
    let v1 = &evaluation["versions"][0];
    assert_eq!(v1["samples"], 20);
    assert!((v1["mae"].as_f64().unwrap() - 1.0).abs() < 1e-6, "{v1}");
    assert!((v1["rmse"].as_f64().unwrap() - 1.0).abs() < 1e-6, "{v1}");

    // The same through the command line.
    let table = ok(maas(&cluster, ADMIN_TOKEN, &["eval", "mlp"]));
    let row = table.lines().find(|l| l.starts_with('1')).unwrap_or_else(|| panic!("no version row:\n{table}"));
    assert!(row.split_whitespace().collect::<Vec<_>>()[..3] == ["1", "100", "0.5000"], "{table}");
    let top = ok(maas(&cluster, ADMIN_TOKEN, &["top", "--once"]));
    assert!(top.lines().any(|l| l.starts_with("mlp ") || l.starts_with("mlp\t") || l.split_whitespace().next() == Some("mlp")), "{top}");
    let alerts = ok(maas(&cluster, ADMIN_TOKEN, &["alerts"]));
    assert!(alerts.contains("no active alert") && alerts.contains("recently cleared") && alerts.contains("drift"), "{alerts}");

    let bad = cluster.client.post(cluster.url("/v1/models/mlp/feedback")).json(&json!({"id": "x"})).send().await.unwrap();
    assert_eq!(bad.status().as_u16(), 400);
    let none = cluster.client.get(cluster.url("/v1/models/cnn/evaluation")).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
    assert_eq!(none.status().as_u16(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_slow_request_can_be_followed_to_its_node() {
    let mut spec = NodeSpec::new("node-0", &["sleepy"]);
    spec.log = Some("info,maas_node=debug".into());
    let cluster = Cluster::builder().nodes(vec![spec]).coordinator_args(&["--slow-request-ms", "15"]).start().await.unwrap();
    let slow = json_body(
        &[JsonTensor { name: "INPUT__0".into(), datatype: "FP32".into(), shape: vec![1, 4], data: vec![json!(80), json!(0), json!(0), json!(0)] }],
        Some("follow-me-42"),
    );
    let answer = post_json(&cluster.client, &cluster.url("/v2/models/sleepy/infer"), &slow).await.unwrap().answer().unwrap();
    assert_eq!(answer.header["id"], "follow-me-42");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let coordinator_log = std::fs::read_to_string(&cluster.coordinator.as_ref().unwrap().log).unwrap();
    let line = coordinator_log
        .lines()
        .find(|l| l.contains("slow request") && l.contains("follow-me-42"))
        .unwrap_or_else(|| panic!("no slow-request line for the request in:\n{coordinator_log}"));
    assert!(line.contains("node=node-0") || line.contains("node=\"node-0\""), "{line}");
    let batch_id: String = line
        .split_whitespace()
        .find_map(|field| field.strip_prefix("batch_id="))
        .expect("the line names the batch")
        .to_string();
    let node_log = std::fs::read_to_string(&cluster.nodes[0].process.log).unwrap();
    let node_line = node_log
        .lines()
        .find(|l| l.contains("batch run") && l.contains(&format!("batch_id={batch_id} ")))
        .unwrap_or_else(|| panic!("the node did not log batch {batch_id}:\n{node_log}"));
    assert!(node_line.contains("follow-me-42"), "{node_line}");
}
