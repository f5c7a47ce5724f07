//! Versions loaded on demand (`replicas.min: 0`), in cluster mode with real
//! etcd: a published version holds no node until requests come; its first
//! requests wait together for one load and are answered correctly; the
//! cold start is measured; once idle, its replica is given back, and the
//! next request loads it again.

use std::time::Duration;

use maas_tests::admin::{example_artifact, example_config, publish, upload};
use maas_tests::cluster::{metric_sum, ADMIN_TOKEN};
use maas_tests::requests::{assert_matches, json_body, post_json};
use maas_tests::wait::wait_until;
use maas_tests::{Cluster, NodeSpec, Reference};
use serde_json::{json, Value};

/// The nodes the stored placement gives `model` version 1.
async fn placed_nodes(cluster: &Cluster, model: &str) -> Vec<String> {
    let view: Value = cluster
        .client
        .get(cluster.url("/v1/cluster"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    view["placement"]["assignments"][format!("{model}/1")]["nodes"]
        .as_array()
        .map(|nodes| nodes.iter().map(|n| n.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

async fn is_ready(cluster: &Cluster, model: &str) -> bool {
    let url = cluster.url(&format!("/v2/models/{model}/ready"));
    cluster.client.get(url).send().await.unwrap().status().as_u16() == 200
}

/// Sends rows `first..first + count` one request each, all at once, and
/// checks every answer against PyTorch's.
async fn infer_concurrently(cluster: &Cluster, model: &str, first: usize, count: usize) {
    let reference = Reference::load("mlp", 1);
    let url = cluster.url(&format!("/v2/models/{model}/infer"));
    let requests = (first..first + count).map(|row| {
        let rows = reference.rows(row, 1);
        let (client, url) = (cluster.client.clone(), url.clone());
        async move {
            let answer = post_json(&client, &url, &json_body(&rows.inputs, None)).await.unwrap().answer();
            assert_matches(&answer.unwrap_or_else(|e| panic!("row {row}: {e}")).outputs, &rows.outputs);
        }
    });
    futures_util::future::join_all(requests).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_is_loaded_by_its_first_requests_and_given_back_when_idle() {
    let cluster = Cluster::builder()
        .with_membership()
        .nodes(vec![NodeSpec::bare("node-0")])
        .coordinator_args(&["--idle-unload-seconds", "2"])
        .start()
        .await
        .unwrap();
    let sha = upload(&cluster, example_artifact("mlp", 1)).await.unwrap();
    let mut config = example_config("mlp", "cold");
    config["replicas"] = json!({"min": 0, "max": 1});
    publish(&cluster, "cold", &config, &sha).await.unwrap().ok().unwrap();

    // Nobody asks: nothing is placed or loaded.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(placed_nodes(&cluster, "cold").await.is_empty(), "placed before any request");
    assert!(!is_ready(&cluster, "cold").await, "ready before any request");

    // Eight first requests at once wait for one load and are all answered.
    infer_concurrently(&cluster, "cold", 0, 8).await;
    assert_eq!(placed_nodes(&cluster, "cold").await, vec!["node-0".to_string()]);
    let metrics = cluster.coordinator_metrics().await.unwrap();
    let cold_starts = metric_sum(&metrics, "maas_cold_start_duration_seconds_count", &[("model", "cold")]);
    assert_eq!(cold_starts, 8.0, "every request that found no replica counts its cold start");
    let seconds = metric_sum(&metrics, "maas_cold_start_duration_seconds_sum", &[("model", "cold")]) / cold_starts;
    println!("cold start: {seconds:.3} s on average over 8 requests");
    // Warm now: more requests add no cold start.
    infer_concurrently(&cluster, "cold", 8, 4).await;
    let metrics = cluster.coordinator_metrics().await.unwrap();
    assert_eq!(metric_sum(&metrics, "maas_cold_start_duration_seconds_count", &[("model", "cold")]), 8.0);

    // Idle for its 2 s (and the reconciler's grace), its replica is given back.
    wait_until("the idle version to be unloaded", Duration::from_secs(40), async || !is_ready(&cluster, "cold").await)
        .await
        .unwrap();
    assert!(placed_nodes(&cluster, "cold").await.is_empty(), "still placed once idle");

    // The next request loads it again.
    infer_concurrently(&cluster, "cold", 12, 2).await;
    assert!(is_ready(&cluster, "cold").await);
}
