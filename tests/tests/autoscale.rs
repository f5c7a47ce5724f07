//! Replicas that follow load, in cluster mode with real etcd: a version
//! with `replicas: {min: 1, max: 2}` gets its second replica while a load
//! step keeps its requests in flight above the target, and gives it back
//! after the cool-down once the load is gone; `maas status` shows each
//! decision with its reason, and no request fails.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use maas_tests::admin::{call, example_artifact, example_config, publish, upload};
use maas_tests::cli::{maas, ok};
use maas_tests::cluster::ADMIN_TOKEN;
use maas_tests::requests::{assert_matches, json_body, post_json};
use maas_tests::wait::wait_until;
use maas_tests::{Cluster, NodeSpec, Reference};
use reqwest::Method;
use serde_json::{json, Value};

const CLIENTS: usize = 16;

/// The stored placement's assignment of `hot` version 1.
async fn assignment(cluster: &Cluster) -> Value {
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
    view["placement"]["assignments"]["hot/1"].clone()
}

fn node_count(assignment: &Value) -> usize {
    assignment["nodes"].as_array().map_or(0, Vec::len)
}

/// Calls `hot` in a loop until `stop`, checking every answer.
async fn client_loop(cluster: Arc<Cluster>, stop: Arc<AtomicBool>, answered: Arc<AtomicUsize>, client: usize) {
    let reference = Reference::load("mlp", 1);
    let url = cluster.url("/v2/models/hot/infer");
    let mut row = client;
    while !stop.load(Ordering::Relaxed) {
        let rows = reference.rows(row % 16, 1);
        let sent = post_json(&cluster.client, &url, &json_body(&rows.inputs, None)).await;
        let answer = sent.unwrap_or_else(|e| panic!("client {client} could not reach the coordinator: {e:#}")).answer();
        assert_matches(&answer.unwrap_or_else(|e| panic!("client {client}: {e}")).outputs, &rows.outputs);
        answered.fetch_add(1, Ordering::Relaxed);
        row += CLIENTS;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_grow_under_a_load_step_and_shrink_after_it() {
    let cluster = Cluster::builder()
        .with_membership()
        .nodes(vec![NodeSpec::bare("node-0"), NodeSpec::bare("node-1")])
        .coordinator_args(&["--scale-up-seconds", "1", "--scale-down-seconds", "3"])
        .start()
        .await
        .unwrap();
    let cluster = Arc::new(cluster);
    let sha = upload(&cluster, example_artifact("mlp", 1)).await.unwrap();
    let mut config = example_config("mlp", "hot");
    config["replicas"] = json!({"min": 1, "max": 2, "target_in_flight": 2});
    publish(&cluster, "hot", &config, &sha).await.unwrap().ok().unwrap();
    wait_until("one replica", Duration::from_secs(30), async || node_count(&assignment(&cluster).await) == 1)
        .await
        .unwrap();

    // The load step: 16 requests in flight against a target of 2 per replica.
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| tokio::spawn(client_loop(cluster.clone(), stop.clone(), answered.clone(), client)))
        .collect();
    wait_until("a second replica", Duration::from_secs(30), async || node_count(&assignment(&cluster).await) == 2)
        .await
        .unwrap();
    let grown = assignment(&cluster).await;
    assert_eq!(grown["wanted"], json!(2));
    let reason = grown["scaling"].as_str().unwrap().to_string();
    assert!(reason.starts_with("added a replica"), "{reason}");
    let status = ok(tokio::task::block_in_place(|| maas(&cluster, ADMIN_TOKEN, &["status"])));
    println!("{status}");
    assert!(status.lines().any(|l| l.starts_with("hot/1") && l.contains("2/2") && l.contains("added a replica")));
    // The model's description says the same, for its owners (and the console).
    let described = call(&cluster, Method::GET, "/v1/models/hot", None, None).await.unwrap().ok().unwrap();
    let state = &described["versions"][0]["state"];
    assert_eq!(state["wanted_replicas"], 2, "{state}");
    assert_eq!(state["placed_on"].as_array().map(Vec::len), Some(2), "{state}");
    assert!(state["scaling"].as_str().is_some_and(|s| s.starts_with("added a replica")), "{state}");
    // Both replicas answer for a while.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }
    println!("{} requests answered, none failed; {reason}", answered.load(Ordering::Relaxed));

    // Idle now: after the cool-down it goes back to one replica.
    wait_until("back to one replica", Duration::from_secs(30), async || node_count(&assignment(&cluster).await) == 1)
        .await
        .unwrap();
    let shrunk = assignment(&cluster).await;
    assert_eq!(shrunk["wanted"], json!(1));
    assert!(shrunk["scaling"].as_str().unwrap().starts_with("removed a replica"), "{shrunk:#}");
    // And still answers.
    let reference = Reference::load("mlp", 1);
    let rows = reference.rows(0, 2);
    let answer = post_json(&cluster.client, &cluster.url("/v2/models/hot/infer"), &json_body(&rows.inputs, None))
        .await
        .unwrap()
        .answer()
        .unwrap();
    assert_matches(&answer.outputs, &rows.outputs);
}
