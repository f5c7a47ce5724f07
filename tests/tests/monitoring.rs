//! Monitoring against a real cluster: statistics and metrics that agree
//! with a counted load, a latency alert raised by a slowdown and cleared by
//! recovery, drift alerts from shifted inputs, and evaluation from feedback.

use std::time::{Duration, Instant};

use maas_tests::cli::{maas, ok};
use maas_tests::cluster::{metric_sum, ADMIN_TOKEN};
use maas_tests::reference::JsonTensor;
use maas_tests::requests::{json_body, post_json};
use maas_tests::synthetic::{normal, row};
use maas_tests::wait::{wait_for, wait_until};
use maas_tests::{Cluster, NodeSpec, Reference};
use serde_json::{json, Value};

async fn get(cluster: &Cluster, path: &str) -> Value {
    let response = cluster.client.get(cluster.url(path)).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
    assert!(response.status().is_success(), "{path}: {}", response.status());
    response.json().await.unwrap()
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
    let rows: u64 =
        batches.iter().map(|b| b["batch_size"].as_u64().unwrap() * b["compute_infer"]["count"].as_u64().unwrap()).sum();
    let executions: u64 = batches.iter().map(|b| b["compute_infer"]["count"].as_u64().unwrap()).sum();
    assert_eq!(rows, sent, "batch sizes times their counts add up to the rows");
    assert_eq!(version["execution_count"], executions);
    assert!(executions < sent, "some batches held more than one request ({executions} batches for {sent} rows)");
    let all = get(&cluster, "/v2/models/stats").await;
    assert!(all["model_stats"].as_array().unwrap().iter().any(|s| s["name"] == "mlp"));

    // Prometheus agrees with the statistics (the load gauges are set once a
    // second: wait for them, and for the requests to be counted).
    let labels = [("model", "mlp"), ("version", "1")];
    let ok = [("model", "mlp"), ("version", "1"), ("outcome", "ok")];
    let metrics =
        wait_for("the load gauges and the counted requests in /metrics", Duration::from_secs(10), async || {
            let metrics = cluster.client.get(cluster.url("/metrics")).send().await.unwrap().text().await.unwrap();
            let shown = metrics.contains("maas_inference_in_flight{")
                && metrics.contains("maas_inference_queued{")
                && metric_sum(&metrics, "maas_inference_requests_total", &ok) >= sent as f64;
            shown.then_some(metrics)
        })
        .await
        .unwrap();
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
                let body = json_body(
                    &[JsonTensor {
                        name: "INPUT__0".into(),
                        datatype: "FP32".into(),
                        shape: vec![1, 4],
                        data: vec![json!(rounds), json!(0.5), json!(0.25), json!(1.0)],
                    }],
                    None,
                );
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

/// Sends single-row requests to `faulty` from 2 clients for `length`; a
/// `failing_share` of them carry a negative element, which makes the model raise.
async fn faulty_load(cluster: &Cluster, failing_share: f64, length: Duration) -> (u64, u64) {
    let started = Instant::now();
    let tasks: Vec<_> = (0..2)
        .map(|client| {
            let http = cluster.client.clone();
            let url = cluster.url("/v2/models/faulty/infer");
            tokio::spawn(async move {
                let (mut ok, mut failed) = (0u64, 0u64);
                let mut i = client as u64;
                while started.elapsed() < length && ok + failed < 100_000 {
                    i += 2;
                    let fails = ((i * 7919) % 1000) as f64 / 1000.0 < failing_share;
                    let first = if fails { -1.0 } else { 0.5 };
                    let body = json_body(
                        &[JsonTensor {
                            name: "INPUT__0".into(),
                            datatype: "FP32".into(),
                            shape: vec![1, 4],
                            data: vec![json!(first), json!(1.0), json!(2.0), json!(3.0)],
                        }],
                        None,
                    );
                    let answer = post_json(&http, &url, &body).await.unwrap();
                    match answer.answer() {
                        Ok(_) => ok += 1,
                        Err(_) => {
                            assert!(fails, "a request without a negative element failed");
                            failed += 1
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                (ok, failed)
            })
        })
        .collect();
    let mut totals = (0, 0);
    for task in tasks {
        let (ok, failed) = task.await.unwrap();
        totals = (totals.0 + ok, totals.1 + failed);
    }
    totals
}

fn alert_of(alerts: &Value, list: &str, kind: &str, model: &str) -> Option<Value> {
    alerts[list].as_array()?.iter().find(|a| a["kind"] == kind && a["model"] == model).cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowdowns_and_failures_raise_alerts_that_clear() {
    let cluster = Cluster::builder().nodes(vec![NodeSpec::new("node-0", &["sleepy", "faulty"])]).start().await.unwrap();
    // Normal load long enough for the detectors' 20-second warm-up.
    let warmup = Duration::from_secs(24);
    tokio::join!(sleepy_load(&cluster, 0, warmup), faulty_load(&cluster, 0.0, warmup));
    let alerts = get(&cluster, "/v1/alerts").await;
    assert!(alerts["active"].as_array().unwrap().is_empty(), "alerts under normal load: {alerts:#}");

    // sleepy becomes slow and 30% of faulty's requests start failing: both
    // alerts come within 30 seconds.
    let changed_at = Instant::now();
    let window = Duration::from_secs(30);
    let watch = async {
        let (mut latency, mut errors) = (None, None);
        let both = wait_until("the latency and error-rate alerts", window, async || {
            let alerts = get(&cluster, "/v1/alerts").await;
            if latency.is_none() {
                latency = alert_of(&alerts, "active", "latency", "sleepy").map(|a| (changed_at.elapsed(), a));
            }
            if errors.is_none() {
                errors = alert_of(&alerts, "active", "error_rate", "faulty").map(|a| (changed_at.elapsed(), a));
            }
            latency.is_some() && errors.is_some()
        })
        .await;
        if let Err(error) = both {
            panic!("{error}: latency {latency:?}, errors {errors:?}");
        }
        (latency.unwrap(), errors.unwrap())
    };
    let (((latency_after, latency), (errors_after, errors)), (), (_, failed)) =
        tokio::join!(watch, sleepy_load(&cluster, 60, window), faulty_load(&cluster, 0.3, window));
    eprintln!("latency alert after {latency_after:?}: {latency}");
    eprintln!("error-rate alert after {errors_after:?}: {errors}");
    assert!(failed > 0);
    assert_eq!(latency["version"], 1);
    assert!(latency["observed"].as_f64().unwrap() > 2.0 * latency["baseline"].as_f64().unwrap(), "{latency}");
    assert!(errors["observed"].as_f64().unwrap() > 0.1, "{errors}");
    let metrics = cluster.client.get(cluster.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert_eq!(metric_sum(&metrics, "maas_alert_active", &[("kind", "latency"), ("model", "sleepy")]), 1.0);
    assert_eq!(metric_sum(&metrics, "maas_alert_active", &[("kind", "error_rate"), ("model", "faulty")]), 1.0);

    // Back to normal: under calm load both alerts clear (within the
    // detectors' windows; a busy machine may need a few more seconds) and
    // move to the history.
    let calm = Duration::from_secs(10);
    tokio::join!(sleepy_load(&cluster, 0, calm), faulty_load(&cluster, 0.0, calm));
    // (faulty's inputs did change while a share was negative, so a drift
    // alert on it may still stand while its window slides back.)
    let cleared = wait_until("both alerts cleared", Duration::from_secs(30), async || {
        let alerts = get(&cluster, "/v1/alerts").await;
        let cleared = [("latency", "sleepy"), ("error_rate", "faulty")]
            .iter()
            .all(|(kind, model)| alert_of(&alerts, "active", kind, model).is_none());
        if !cleared {
            let more_calm = Duration::from_secs(2);
            tokio::join!(sleepy_load(&cluster, 0, more_calm), faulty_load(&cluster, 0.0, more_calm));
        }
        cleared
    })
    .await;
    let alerts = get(&cluster, "/v1/alerts").await;
    assert!(cleared.is_ok(), "the alerts did not clear under calm load: {alerts:#}");
    for (kind, model) in [("latency", "sleepy"), ("error_rate", "faulty")] {
        let cleared =
            alert_of(&alerts, "recent", kind, model).unwrap_or_else(|| panic!("no cleared {kind} alert: {alerts:#}"));
        assert!(cleared["cleared"].as_f64().unwrap() >= cleared["since"].as_f64().unwrap());
    }
}

/// Accuracy and macro precision, recall and F1 of (predicted, truth) pairs,
/// over the classes that appear in either, by plain counting.
fn macro_scores(pairs: &[(usize, usize)]) -> [f64; 4] {
    let mut classes: Vec<usize> = pairs.iter().flat_map(|(p, t)| [*p, *t]).collect();
    classes.sort();
    classes.dedup();
    let share = |a: usize, b: usize| if a + b == 0 { 0.0 } else { a as f64 / (a + b) as f64 };
    let (mut precision, mut recall, mut f1) = (0.0, 0.0, 0.0);
    for class in &classes {
        let tp = pairs.iter().filter(|(p, t)| p == class && t == class).count();
        let fp = pairs.iter().filter(|(p, t)| p == class && t != class).count();
        let fn_ = pairs.iter().filter(|(p, t)| p != class && t == class).count();
        let (p, r) = (share(tp, fp), share(tp, fn_));
        precision += p;
        recall += r;
        f1 += if p + r > 0.0 { 2.0 * p * r / (p + r) } else { 0.0 };
    }
    let k = classes.len() as f64;
    let accuracy = pairs.iter().filter(|(p, t)| p == t).count() as f64 / pairs.len() as f64;
    [accuracy, precision / k, recall / k, f1 / k]
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
    let mut seed = 0u64;
    // Sends `count` rows to `version` with feature 0 shifted by `shift`
    // standard deviations; ids `<prefix><i>` when a prefix is given.
    let mut send = async |version: u64, shift: f64, count: usize, ids: Option<&str>| -> Vec<usize> {
        let url = cluster.url(&format!("/v2/models/mlp/versions/{version}/infer"));
        let mut classes = Vec::new();
        for i in 0..count {
            seed += 1;
            let base = seed * 1000;
            let inputs = row(256, |j| normal(base + j as u64) + if j == 0 { shift } else { 0.0 });
            let id = ids.map(|prefix| format!("{prefix}{i}"));
            let answer =
                post_json(&cluster.client, &url, &json_body(&inputs, id.as_deref())).await.unwrap().answer().unwrap();
            let scores: Vec<f64> = answer.outputs[0].data.iter().map(|v| v.as_f64().unwrap()).collect();
            classes.push(scores.iter().enumerate().fold(0, |best, (k, v)| if *v > scores[best] { k } else { best }));
        }
        classes
    };
    // Reference profile, then the same distribution again: no drift.
    let predicted = send(1, 0.0, 400, Some("r")).await;
    send(1, 0.0, 400, None).await;
    // Long enough for the once-a-second check to run at least once: no
    // alert must come of it.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(drift_alert(&get(&cluster, "/v1/alerts").await), None, "drift alert without drift");
    // One feature moves by two standard deviations.
    send(1, 2.0, 400, None).await;
    let alert = wait_for("a drift alert after the shift", Duration::from_secs(10), async || {
        drift_alert(&get(&cluster, "/v1/alerts").await)
    })
    .await
    .unwrap();
    assert_eq!(alert["input"], "INPUT__0");
    assert!(alert["observed"].as_f64().unwrap() > 0.25, "{alert}");
    let metrics = cluster.client.get(cluster.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metric_sum(&metrics, "maas_input_drift_score", &[("model", "mlp"), ("input", "INPUT__0")]) > 0.25);
    // And back.
    send(1, 0.0, 400, None).await;
    wait_until("the drift alert to clear", Duration::from_secs(10), async || {
        drift_alert(&get(&cluster, "/v1/alerts").await).is_none()
    })
    .await
    .unwrap();

    // Feedback: the truth differs from the prediction for every third
    // request, plus an unknown id.
    let truth: Vec<usize> =
        predicted.iter().take(100).enumerate().map(|(i, c)| if i % 3 == 0 { (c + 1) % 10 } else { *c }).collect();
    let mut labels: Vec<Value> =
        truth.iter().enumerate().map(|(i, t)| json!({"id": format!("r{i}"), "label": t})).collect();
    labels.push(json!({"id": "never-sent", "label": 1}));
    let answer = cluster
        .client
        .post(cluster.url("/v1/models/mlp/feedback"))
        .json(&json!({"feedback": labels}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 200);
    let outcome: Value = answer.json().await.unwrap();
    assert_eq!(outcome, json!({"joined": 100, "unknown": 1, "expired": 0, "mismatched": 0}));
    let again = cluster
        .client
        .post(cluster.url("/v1/models/mlp/feedback"))
        .json(&json!({"id": "r0", "label": 3}))
        .send()
        .await
        .unwrap();
    assert_eq!(again.json::<Value>().await.unwrap()["unknown"], 1, "an id is joined once");
    let evaluation = get(&cluster, "/v1/models/mlp/evaluation").await;
    assert_eq!(evaluation["task"], "classification");
    let v1 = evaluation["versions"][0].clone();
    assert_eq!(v1["version"], 1);
    assert_eq!(v1["samples"], 100);
    let pairs: Vec<(usize, usize)> = predicted.iter().take(100).copied().zip(truth.iter().copied()).collect();
    let expected = macro_scores(&pairs);
    for (metric, value) in ["accuracy", "precision", "recall", "f1"].iter().zip(expected) {
        let got = v1[*metric].as_f64().unwrap();
        assert!((got - value).abs() < 1e-9, "{metric}: the endpoint says {got}, the test computes {value}");
    }
    assert_eq!(evaluation["feedback"]["unknown"], 2);

    // A canary (version 2) with worse outcomes shows worse figures.
    let canary = send(2, 0.0, 60, Some("canary-")).await;
    let canary_truth: Vec<usize> =
        canary.iter().enumerate().map(|(i, c)| if i % 2 == 0 { (c + 3) % 10 } else { *c }).collect();
    let labels: Vec<Value> =
        canary_truth.iter().enumerate().map(|(i, t)| json!({"id": format!("canary-{i}"), "label": t})).collect();
    cluster
        .client
        .post(cluster.url("/v1/models/mlp/feedback"))
        .json(&json!({"feedback": labels}))
        .send()
        .await
        .unwrap();
    let evaluation = get(&cluster, "/v1/models/mlp/evaluation").await;
    let v2 = evaluation["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["version"] == 2)
        .expect("the canary is evaluated")
        .clone();
    let canary_expected = macro_scores(&canary.iter().copied().zip(canary_truth.iter().copied()).collect::<Vec<_>>());
    assert!((v2["accuracy"].as_f64().unwrap() - canary_expected[0]).abs() < 1e-9, "{v2}");
    assert!((v2["f1"].as_f64().unwrap() - canary_expected[3]).abs() < 1e-9, "{v2}");
    for metric in ["accuracy", "f1"] {
        assert!(
            v2[metric].as_f64().unwrap() < v1[metric].as_f64().unwrap(),
            "{metric}: canary {v2} vs production {v1}"
        );
    }

    // A regressor: truth one above every prediction.
    let sleepy = cluster.url("/v2/models/sleepy/infer");
    for i in 0..20 {
        let x = f64::from(i) / 40.0;
        let body = json_body(
            &[JsonTensor {
                name: "INPUT__0".into(),
                datatype: "FP32".into(),
                shape: vec![1, 4],
                data: vec![json!(x), json!(0.0), json!(0.0), json!(0.0)],
            }],
            Some(&format!("s{i}")),
        );
        post_json(&cluster.client, &sleepy, &body).await.unwrap().answer().unwrap();
        let truth = 2.0 * (x as f32) as f64 + 1.0;
        cluster
            .client
            .post(cluster.url("/v1/models/sleepy/feedback"))
            .json(&json!({"id": format!("s{i}"), "label": truth}))
            .send()
            .await
            .unwrap();
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
    let accuracy = format!("{:.4}", expected[0]);
    assert!(row.split_whitespace().collect::<Vec<_>>()[..3] == ["1", "100", accuracy.as_str()], "{table}");
    let top = ok(maas(&cluster, ADMIN_TOKEN, &["top", "--once"]));
    assert!(
        top.lines()
            .any(|l| l.starts_with("mlp ") || l.starts_with("mlp\t") || l.split_whitespace().next() == Some("mlp")),
        "{top}"
    );
    let alerts = ok(maas(&cluster, ADMIN_TOKEN, &["alerts"]));
    assert!(
        alerts.contains("no active alert") && alerts.contains("recently cleared") && alerts.contains("drift"),
        "{alerts}"
    );

    let bad =
        cluster.client.post(cluster.url("/v1/models/mlp/feedback")).json(&json!({"id": "x"})).send().await.unwrap();
    assert_eq!(bad.status().as_u16(), 400);
    let none =
        cluster.client.get(cluster.url("/v1/models/cnn/evaluation")).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
    assert_eq!(none.status().as_u16(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_slow_request_can_be_followed_to_its_node() {
    let mut spec = NodeSpec::new("node-0", &["sleepy"]);
    spec.log = Some("info,maas_node=debug".into());
    let cluster =
        Cluster::builder().nodes(vec![spec]).coordinator_args(&["--slow-request-ms", "15"]).start().await.unwrap();
    let slow = json_body(
        &[JsonTensor {
            name: "INPUT__0".into(),
            datatype: "FP32".into(),
            shape: vec![1, 4],
            data: vec![json!(80), json!(0), json!(0), json!(0)],
        }],
        Some("follow-me-42"),
    );
    let answer =
        post_json(&cluster.client, &cluster.url("/v2/models/sleepy/infer"), &slow).await.unwrap().answer().unwrap();
    assert_eq!(answer.header["id"], "follow-me-42");
    let line = logged_line(&cluster.coordinator().log, &["slow request", "follow-me-42"]).await;
    assert!(line.contains("node=node-0") || line.contains("node=\"node-0\""), "{line}");
    let batch_id: String = line
        .split_whitespace()
        .find_map(|field| field.strip_prefix("batch_id="))
        .expect("the line names the batch")
        .to_string();
    let node_line = logged_line(&cluster.nodes[0].process.log, &["batch run", &format!("batch_id={batch_id} ")]).await;
    assert!(node_line.contains("follow-me-42"), "{node_line}");
}

/// The first line of the log at `path` that contains every one of `parts`,
/// once it has been written.
async fn logged_line(path: &std::path::Path, parts: &[&str]) -> String {
    let find = || {
        std::fs::read_to_string(path).unwrap().lines().find(|l| parts.iter().all(|p| l.contains(p))).map(str::to_string)
    };
    wait_for(&format!("a line with {parts:?} in {}", path.display()), Duration::from_secs(10), async || find())
        .await
        .unwrap_or_else(|error| panic!("{error}:\n{}", std::fs::read_to_string(path).unwrap()))
}
