//! Usage metering across real processes: two tenants' requests, rows,
//! errors and tensor bytes come out of `GET /v1/usage` exactly as sent,
//! each tenant's key reads its own use only, Prometheus carries them with
//! a tenant label, and the counts survive a coordinator killed after its
//! last flush.

use std::time::Duration;

use maas_tests::admin::{self, deploy_example, wait_ready};
use maas_tests::cluster::{metric_sum, ADMIN_TOKEN};
use maas_tests::requests::json_body;
use maas_tests::wait::wait_until;
use maas_tests::{Cluster, NodeSpec, Reference};
use serde_json::{json, Value};

async fn create_key(cluster: &Cluster, tenant: &str) -> String {
    let spec = json!({"tenant": tenant, "role": "inference", "scope": ["*"]});
    admin::create_key(cluster, &spec).await.unwrap().key
}

async fn infer(cluster: &Cluster, key: &str, body: &Value) -> u16 {
    let url = cluster.url("/v2/models/clf/infer");
    cluster.client.post(url).bearer_auth(key).json(body).send().await.unwrap().status().as_u16()
}

async fn usage(cluster: &Cluster, token: &str, tenant: Option<&str>) -> (u16, Value) {
    let mut url = cluster.url("/v1/usage");
    if let Some(tenant) = tenant {
        url.push_str(&format!("?tenant={tenant}"));
    }
    let response = cluster.client.get(url).bearer_auth(token).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// `(requests, rows, errors, bytes_in)` of `tenant` in a report.
fn counts(report: &Value, tenant: &str) -> (u64, u64, u64, u64) {
    let lines: Vec<&Value> = report["usage"].as_array().unwrap().iter().filter(|l| l["tenant"] == tenant).collect();
    assert_eq!(lines.len(), 1, "one line for {tenant} on clf version 1: {report}");
    let line = lines[0];
    assert_eq!((line["model"].as_str(), line["version"].as_u64()), (Some("clf"), Some(1)));
    let field = |name: &str| line[name].as_u64().unwrap();
    (field("requests"), field("rows"), field("errors"), field("bytes_in"))
}

async fn flushes(cluster: &Cluster) -> f64 {
    metric_sum(&cluster.coordinator_metrics().await.unwrap(), "maas_usage_flushes_total", &[])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_per_tenant_is_exact_and_survives_a_restart() {
    let mut cluster = Cluster::builder()
        .with_etcd()
        .nodes(vec![NodeSpec::bare("node-0")])
        .coordinator_args(&["--usage-flush-ms", "200"])
        .start()
        .await
        .unwrap();
    deploy_example(&cluster, "mlp", 1, "clf").await.unwrap();
    wait_ready(&cluster, "clf").await.unwrap();
    let (a, b) = (create_key(&cluster, "tenant-a").await, create_key(&cluster, "tenant-b").await);
    let reference = Reference::load("mlp", 1);
    let body = |rows: usize| json_body(&reference.rows(0, rows).inputs, None);
    let row_bytes = 4 * reference.rows(0, 1).inputs.iter().map(|t| t.data.len() as u64).sum::<u64>();

    for _ in 0..7 {
        assert_eq!(infer(&cluster, &a, &body(1)).await, 200);
    }
    for _ in 0..3 {
        assert_eq!(infer(&cluster, &a, &body(4)).await, 200);
    }
    for _ in 0..5 {
        assert_eq!(infer(&cluster, &b, &body(2)).await, 200);
    }
    let mut bad = body(1);
    bad["inputs"][0]["shape"] = json!([1, 3]);
    assert_eq!(infer(&cluster, &b, &bad).await, 400);
    let expected_a = (10, 19, 0, 19 * row_bytes);
    let expected_b = (6, 10, 1, 10 * row_bytes);

    // Counted at once (unflushed counts included), each tenant apart.
    let (_, all) = usage(&cluster, ADMIN_TOKEN, None).await;
    assert_eq!(counts(&all, "tenant-a"), expected_a);
    assert_eq!(counts(&all, "tenant-b"), expected_b);
    assert!(all["usage"]
        .as_array()
        .unwrap()
        .iter()
        .all(|l| l["compute_us"].as_u64().unwrap() > 0 || l["tenant"] != "tenant-a"));
    let (status, own) = usage(&cluster, &a, None).await;
    assert_eq!(status, 200);
    assert_eq!(own["usage"].as_array().unwrap().len(), 1, "a tenant's key sees its own use only: {own}");
    assert_eq!(counts(&own, "tenant-a"), expected_a);
    assert_eq!(usage(&cluster, &a, Some("tenant-b")).await.0, 403);

    // Stored, and in Prometheus with the tenant label, after two flushes.
    let before = flushes(&cluster).await;
    wait_until("two usage flushes", Duration::from_secs(10), async || flushes(&cluster).await >= before + 2.0)
        .await
        .unwrap();
    let metrics = cluster.coordinator_metrics().await.unwrap();
    assert_eq!(metric_sum(&metrics, "maas_usage_requests_total", &[("tenant", "tenant-a")]), 10.0);
    assert_eq!(metric_sum(&metrics, "maas_usage_rows_total", &[("tenant", "tenant-b")]), 10.0);
    assert_eq!(metric_sum(&metrics, "maas_usage_errors_total", &[("tenant", "tenant-b")]), 1.0);

    // A coordinator killed (no chance to flush on the way out) and started
    // again reads the same use back.
    cluster.restart_coordinator().await.unwrap();
    let (_, again) = usage(&cluster, ADMIN_TOKEN, None).await;
    assert_eq!(counts(&again, "tenant-a"), expected_a);
    assert_eq!(counts(&again, "tenant-b"), expected_b);
    // And keeps counting on top of it.
    wait_ready(&cluster, "clf").await.unwrap();
    assert_eq!(infer(&cluster, &b, &body(3)).await, 200);
    let (_, more) = usage(&cluster, ADMIN_TOKEN, Some("tenant-b")).await;
    assert_eq!(counts(&more, "tenant-b"), (7, 13, 1, 13 * row_bytes));
}
