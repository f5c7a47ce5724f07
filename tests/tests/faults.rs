//! Node failures under load: a killed node's batches are retried on another
//! replica or fail fast, no request waits past its timeout, and a node that
//! comes back is served again without restarting the coordinator.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use maas_tests::cluster::metric_sum;
use maas_tests::requests::{assert_matches, json_body, post_json};
use maas_tests::wait::wait_until;
use maas_tests::{Cluster, NodeSpec, Reference};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(3);
/// Time allowed past a request's timeout for the answer to travel back.
const SLACK: Duration = Duration::from_millis(750);

struct Outcome {
    status: u16,
    sent: Instant,
    elapsed: Duration,
}

/// Sends single-row requests from `clients` tasks until `stop` is set;
/// checks each success against the reference as it arrives.
fn start_load(cluster: &Cluster, clients: usize, stop: Arc<AtomicBool>) -> Vec<tokio::task::JoinHandle<Vec<Outcome>>> {
    let reference = Reference::load("mlp", 1);
    (0..clients)
        .map(|client_index| {
            let client = cluster.client.clone();
            let url = cluster.url("/v2/models/mlp/versions/1/infer");
            let reference = reference.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut outcomes = Vec::new();
                let mut row = client_index;
                while !stop.load(Ordering::Relaxed) && outcomes.len() < 100_000 {
                    row = (row + 7) % reference.batch_rows();
                    let single = reference.rows(row, 1);
                    let mut body = json_body(&single.inputs, None);
                    body["parameters"] = json!({"timeout": TIMEOUT.as_micros() as u64});
                    let sent = Instant::now();
                    let answer = post_json(&client, &url, &body).await.expect("the coordinator always answers");
                    let elapsed = sent.elapsed();
                    if answer.status == 200 {
                        assert_matches(&answer.answer().unwrap().outputs, &single.outputs);
                    } else {
                        assert!(
                            matches!(answer.status, 503 | 504),
                            "status {} during a node failure: {}",
                            answer.status,
                            answer.error()
                        );
                    }
                    outcomes.push(Outcome { status: answer.status, sent, elapsed });
                }
                outcomes
            })
        })
        .collect()
}

async fn finish_load(handles: Vec<tokio::task::JoinHandle<Vec<Outcome>>>) -> Vec<Outcome> {
    let mut all = Vec::new();
    for handle in handles {
        all.extend(handle.await.unwrap());
    }
    all
}

async fn wait_link(cluster: &Cluster, node: &str, up: bool) {
    let what = format!("the link to {node} to go {}", if up { "up" } else { "down" });
    wait_until(&what, Duration::from_secs(30), async || {
        let metrics = cluster.coordinator_metrics().await.unwrap();
        metric_sum(&metrics, "maas_node_link_up", &[("node", node)]) == if up { 1.0 } else { 0.0 }
    })
    .await
    .unwrap();
}

fn assert_none_waited_past_timeout(outcomes: &[Outcome]) {
    let slowest = outcomes.iter().map(|o| o.elapsed).max().unwrap_or_default();
    assert!(slowest <= TIMEOUT + SLACK, "a request waited {slowest:?}, past its timeout of {TIMEOUT:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_replica_fails_over_and_returns() {
    let mut cluster = Cluster::builder()
        .nodes(vec![NodeSpec::new("node-0", &["mlp"]), NodeSpec::new("node-1", &["mlp"])])
        .start()
        .await
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let load = start_load(&cluster, 16, stop.clone());

    // The sleeps here are the load's time in each state: both replicas,
    // node-1 alone, both again, and node-0 alone; each state change is
    // waited for.
    tokio::time::sleep(Duration::from_millis(500)).await;
    cluster.kill_node(0);
    let first_kill = Instant::now();
    wait_link(&cluster, "node-0", false).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    cluster.restart_node(0).await.unwrap();
    wait_link(&cluster, "node-0", true).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Now the other replica dies: only the node that came back can serve.
    cluster.kill_node(1);
    let second_kill = Instant::now();
    wait_link(&cluster, "node-1", false).await;
    let node_one_gone = Instant::now();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    stop.store(true, Ordering::Relaxed);
    let outcomes = finish_load(load).await;

    assert_none_waited_past_timeout(&outcomes);
    let ok_after = |at: Instant| outcomes.iter().filter(|o| o.status == 200 && o.sent > at).count();
    assert!(ok_after(first_kill) > 0, "nothing was served after the first kill");
    assert!(ok_after(second_kill) > 0, "nothing was served after the second kill");
    assert!(ok_after(node_one_gone) > 0, "the restarted node served nothing once it was the only replica");
    let failed_while_one_replica_was_up = outcomes.iter().filter(|o| o.status != 200 && o.sent > node_one_gone).count();
    assert_eq!(failed_while_one_replica_was_up, 0, "requests failed although a replica was up");
    let metrics = cluster.coordinator_metrics().await.unwrap();
    assert!(
        metric_sum(&metrics, "maas_inference_batch_retries_total", &[("model", "mlp")]) > 0.0,
        "no batch was retried"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_replica_killed_fails_fast_then_resumes() {
    let mut cluster = Cluster::builder().nodes(vec![NodeSpec::new("node-0", &["mlp"])]).start().await.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let load = start_load(&cluster, 8, stop.clone());
    // The load runs a moment before the kill, and for a while after the
    // loss is seen, to show that the requests then sent fail fast.
    tokio::time::sleep(Duration::from_millis(300)).await;
    cluster.kill_node(0);
    wait_link(&cluster, "node-0", false).await;
    let detected = Instant::now();
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let outcomes = finish_load(load).await;
    assert_none_waited_past_timeout(&outcomes);
    let after_detection: Vec<&Outcome> = outcomes.iter().filter(|o| o.sent > detected).collect();
    assert!(!after_detection.is_empty());
    assert!(after_detection.iter().all(|o| o.status == 503), "requests after the loss must get 503");
    let slowest = after_detection.iter().map(|o| o.elapsed).max().unwrap();
    assert!(slowest < Duration::from_millis(500), "a request to a lost model took {slowest:?} to fail");

    let single = Reference::load("mlp", 1).rows(9, 1);
    let url = cluster.url("/v2/models/mlp/versions/1/infer");
    let answer = post_json(&cluster.client, &url, &json_body(&single.inputs, None)).await.unwrap();
    assert_eq!(answer.status, 503);
    assert!(answer.error().contains("no ready replica"), "{}", answer.error());
    let ready = cluster.client.get(cluster.url("/v2/health/ready")).send().await.unwrap();
    assert_eq!(ready.status().as_u16(), 503, "the coordinator claims readiness with no node");
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["ready"], serde_json::json!(false), "{body}");

    cluster.restart_node(0).await.unwrap();
    cluster.wait_node_serving(0).await.unwrap();
    let answer = post_json(&cluster.client, &url, &json_body(&single.inputs, None)).await.unwrap();
    assert_matches(&answer.answer().unwrap().outputs, &single.outputs);
}
