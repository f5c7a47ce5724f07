//! The benchmark harness run against a real cluster: `maas-bench suite`
//! measures the raw ceiling, closed and open loop, writes its report, and
//! what it says it sent is what the coordinator counted, rows included.

use std::process::Command;

use maas_tests::cluster::{binary, models_dir, TempDir};
use maas_tests::{Cluster, NodeSpec};
use serde_json::Value;

/// Sums the coordinator's series that start with `prefix` and contain `label`.
async fn counter(cluster: &Cluster, prefix: &str, label: &str) -> f64 {
    let text = cluster.client.get(cluster.url("/metrics")).send().await.unwrap().text().await.unwrap();
    text.lines()
        .filter(|line| line.starts_with(prefix) && line.contains(label))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

const REQUESTS_OK: (&str, &str) = ("maas_inference_requests_total{model=\"mlp\"", "outcome=\"ok\"");
const ROWS: (&str, &str) = ("maas_inference_rows_total{model=\"mlp\"", "}");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suite_reports_what_the_coordinator_served() {
    let cluster = Cluster::builder().nodes(vec![NodeSpec::new("node-0", &["mlp"])]).start().await.unwrap();
    let report = TempDir::new("bench-report");
    let requests_before = counter(&cluster, REQUESTS_OK.0, REQUESTS_OK.1).await;
    let rows_before = counter(&cluster, ROWS.0, ROWS.1).await;

    let torchscript = models_dir().join("mlp/1/model.pt");
    let output = Command::new(binary("maas-bench"))
        .args(["suite", "--url", &cluster.url(""), "--model", "mlp", "--rows", "4"])
        .args(["--encoding", "json,binary", "--concurrency", "1,2", "--seconds", "0.5", "--warmup", "0.2"])
        .args(["--rates", "200", "--batch", "1,4", "--raw-seconds", "0.2", "--row-shape", "256"])
        .arg("--torchscript")
        .arg(&torchscript)
        .arg("--report-dir")
        .arg(report.path())
        .output()
        .expect("running maas-bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "maas-bench failed: {}\n{stdout}", String::from_utf8_lossy(&output.stderr));

    let results: Value = serde_json::from_slice(&std::fs::read(report.path().join("results.json")).unwrap()).unwrap();
    // The ceiling: raw LibTorch at each batch size asked for.
    let raw = results["raw"].as_array().unwrap();
    assert_eq!(raw.iter().map(|p| p["batch"].as_i64().unwrap()).collect::<Vec<_>>(), vec![1, 4]);
    assert!(raw.iter().all(|p| p["rows_per_second"].as_f64().unwrap() > 0.0));
    // Closed loop: every encoding at every concurrency, four rows a request.
    let closed = results["closed_loop"].as_array().unwrap();
    assert_eq!(closed.len(), 4, "{closed:?}");
    for point in closed {
        assert_eq!(point["errors"], 0, "{point}");
        assert_eq!(point["rows_per_request"], 4, "{point}");
        let requests = point["requests_per_second"].as_f64().unwrap();
        assert!(requests > 0.0, "{point}");
        assert!((point["rows_per_second"].as_f64().unwrap() - 4.0 * requests).abs() < 1e-6, "{point}");
        assert!(point["latency"]["p50_ms"].as_f64().unwrap() <= point["latency"]["p99_ms"].as_f64().unwrap());
    }
    // Open loop at 200/s for half a second: roughly a hundred served.
    let open = &results["open_loop"][0];
    assert_eq!(open["errors"], 0, "{open}");
    assert!(open["served_per_second"].as_f64().unwrap() > 100.0, "{open}");
    for file in ["report.md", "latency.svg"] {
        assert!(report.path().join(file).exists(), "{file} was not written");
    }
    assert!(stdout.contains("| mlp | binary | 4 | 2 |"), "{stdout}");

    // Every request the harness sent (warm-ups included) carried four rows,
    // and the coordinator counted each of them.
    let requests = counter(&cluster, REQUESTS_OK.0, REQUESTS_OK.1).await - requests_before;
    let rows = counter(&cluster, ROWS.0, ROWS.1).await - rows_before;
    assert!(requests > 0.0);
    assert_eq!(rows, 4.0 * requests, "rows counted {rows} for {requests} requests");
}
