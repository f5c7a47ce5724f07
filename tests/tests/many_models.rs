//! Far more versions loaded on demand than the nodes can hold, in cluster
//! mode with real etcd: 200 published versions with `replicas.min: 0` on
//! two nodes with room for ten each. A request to every one of them is
//! answered correctly, the nodes stay within their memory budgets the whole
//! time, the leader evicts the least recently used versions to make room,
//! and no request fails. Idle, the 200 versions cost the coordinator little
//! memory.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use maas_tests::admin::{example_artifact, example_config, publish, upload};
use maas_tests::cluster::{metric_sum, ADMIN_TOKEN};
use maas_tests::requests::{assert_matches, json_body, post_json};
use maas_tests::{Cluster, NodeSpec, Reference};
use serde_json::{json, Value};

const MODELS: usize = 200;
/// Replicas each node has room for.
const ROOM_PER_NODE: u64 = 10;
/// Memory each version declares; measured, the small MLP takes less.
const REPLICA_BYTES: u64 = 8 << 20;
/// Requests (each to a different version) in flight at once.
const CLIENTS: usize = 8;

/// What the nodes reported at their fullest.
#[derive(Default)]
struct Peaks {
    memory_used_bytes: AtomicU64,
    loaded: AtomicU64,
    over_budget: AtomicBool,
}

/// Reads every node's status once a fifth of a second until `stop`.
async fn watch_nodes(cluster: Arc<Cluster>, peaks: Arc<Peaks>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
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
        for node in view["links"].as_array().into_iter().flatten() {
            let Some(status) = node.get("status") else { continue };
            let (used, budget) =
                (status["memory_used_bytes"].as_u64().unwrap(), status["memory_bytes"].as_u64().unwrap());
            if used > budget {
                peaks.over_budget.store(true, Ordering::Relaxed);
                eprintln!("over budget: {node:#}");
            }
            peaks.memory_used_bytes.fetch_max(used, Ordering::Relaxed);
            peaks.loaded.fetch_max(status["models"].as_array().unwrap().len() as u64, Ordering::Relaxed);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_versions_on_demand_share_nodes_with_room_for_twenty() {
    let budget = ROOM_PER_NODE * REPLICA_BYTES;
    let node =
        |name: &str| NodeSpec { args: vec!["--memory-bytes".into(), budget.to_string()], ..NodeSpec::bare(name) };
    let cluster =
        Cluster::builder().with_membership().nodes(vec![node("node-0"), node("node-1")]).start().await.unwrap();
    let cluster = Arc::new(cluster);
    let sha = upload(&cluster, example_artifact("mlp", 1)).await.unwrap();
    let names: Vec<String> = (0..MODELS).map(|i| format!("m{i:03}")).collect();
    let rss_before = cluster.coordinator().rss_kib().unwrap();
    let published = std::time::Instant::now();
    futures_util::stream::iter(&names)
        .map(|name| {
            let (cluster, sha) = (cluster.clone(), sha.clone());
            async move {
                let mut config = example_config("mlp", name);
                config["replicas"] = json!({"min": 0, "max": 1});
                config["memory_bytes"] = json!(REPLICA_BYTES);
                publish(&cluster, name, &config, &sha).await.unwrap().ok().unwrap();
            }
        })
        .buffer_unordered(4)
        .collect::<Vec<()>>()
        .await;
    println!("published {MODELS} versions in {:.1} s", published.elapsed().as_secs_f64());
    // Idle versions cost the coordinator little: no histograms until traffic.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss_idle = cluster.coordinator().rss_kib().unwrap();
    let per_version_kib = rss_idle.saturating_sub(rss_before) as f64 / MODELS as f64;
    println!("coordinator RSS {rss_before} KiB before, {rss_idle} KiB with {MODELS} idle versions: {per_version_kib:.1} KiB each");
    assert!(per_version_kib < 100.0, "an idle version costs the coordinator {per_version_kib:.1} KiB");

    let peaks = Arc::new(Peaks::default());
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = tokio::spawn(watch_nodes(cluster.clone(), peaks.clone(), stop.clone()));
    let reference = Reference::load("mlp", 1);
    let started = std::time::Instant::now();
    let failures: Vec<String> = futures_util::stream::iter(names.iter().enumerate())
        .map(|(index, name)| {
            let rows = reference.rows(index % 16, 2);
            let url = cluster.url(&format!("/v2/models/{name}/infer"));
            let client = cluster.client.clone();
            async move {
                match post_json(&client, &url, &json_body(&rows.inputs, None)).await.unwrap().answer() {
                    Ok(answer) => {
                        assert_matches(&answer.outputs, &rows.outputs);
                        None
                    }
                    Err(error) => Some(format!("{name}: {error}")),
                }
            }
        })
        .buffer_unordered(CLIENTS)
        .filter_map(|failure| async move { failure })
        .collect()
        .await;
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    watcher.await.unwrap();
    assert!(failures.is_empty(), "{} requests failed: {failures:?}", failures.len());
    println!(
        "{MODELS} cold versions answered in {:.1} s ({:.0} ms each, {CLIENTS} at a time)",
        elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1000.0 / MODELS as f64
    );

    let peak_used = peaks.memory_used_bytes.load(Ordering::Relaxed);
    let peak_loaded = peaks.loaded.load(Ordering::Relaxed);
    println!("peak per node: {peak_loaded} versions, {peak_used} of {budget} bytes");
    assert!(!peaks.over_budget.load(Ordering::Relaxed), "a node went over its budget");
    assert!(peak_loaded <= ROOM_PER_NODE, "a node held {peak_loaded} versions");
    assert!(peak_loaded >= ROOM_PER_NODE / 2, "the nodes were never close to full: {peak_loaded}");

    let metrics = cluster.coordinator_metrics().await.unwrap();
    let for_room = metric_sum(&metrics, "maas_evictions_total", &[("reason", "memory")]);
    let for_idleness = metric_sum(&metrics, "maas_evictions_total", &[("reason", "idle")]);
    println!("evictions for room: {for_room}, for idleness: {for_idleness}");
    assert!(for_room >= (MODELS as u64 - 2 * ROOM_PER_NODE) as f64, "too few evictions: {for_room}");
    assert_eq!(for_idleness, 0.0, "every version was used within the idle time");
    let cold_starts = metric_sum(&metrics, "maas_cold_start_duration_seconds_count", &[]);
    assert_eq!(cold_starts, MODELS as f64, "every version's first request was a cold start");
}
