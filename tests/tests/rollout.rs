//! Rollouts that wait for readiness, in cluster mode with real etcd: while
//! 32 clients call `model@production`, `maas deploy --alias production`
//! publishes a new version, shows the rollout's progress, and moves the
//! alias only once the version is loaded and warm. No request fails, each
//! answer is the one its version computes, and the answers switch from the
//! old version to the new at one instant.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use maas_tests::admin::{deploy_example, set_alias};
use maas_tests::cli::{maas, ok};
use maas_tests::cluster::{models_dir, ADMIN_TOKEN};
use maas_tests::requests::{assert_matches, json_body, post_json};
use maas_tests::{Cluster, NodeSpec, Reference};

const CLIENTS: usize = 32;

/// One answered request.
struct Answer {
    sent: Instant,
    received: Instant,
    version: u64,
}

/// Calls `url` in a loop until `stop`, checking every answer against the
/// reference of the version that gave it; returns the answers in order.
async fn client_loop(cluster: Arc<Cluster>, url: String, stop: Arc<AtomicBool>, client: usize) -> Vec<Answer> {
    let references = [Reference::load("mlp", 1), Reference::load("mlp", 2)];
    let mut answers = Vec::new();
    let mut row = client;
    while !stop.load(Ordering::Relaxed) {
        let rows = references[0].rows(row % 16, 1);
        let sent = Instant::now();
        let answer = post_json(&cluster.client, &url, &json_body(&rows.inputs, None)).await.unwrap().answer();
        let received = Instant::now();
        let answer = answer.unwrap_or_else(|error| panic!("client {client}: a request failed: {error}"));
        let version: u64 = answer.header["model_version"].as_str().unwrap().parse().unwrap();
        let expected = references[version as usize - 1].rows(row % 16, 1);
        assert_matches(&answer.outputs, &expected.outputs);
        answers.push(Answer { sent, received, version });
        row += CLIENTS;
    }
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploying_under_load_moves_the_alias_only_once_the_new_version_is_ready() {
    let cluster = Cluster::builder().with_membership().nodes(vec![NodeSpec::bare("node-0")]).start().await.unwrap();
    let cluster = Arc::new(cluster);
    let first = deploy_example(&cluster, "mlp", 1, "ranker").await.unwrap();
    set_alias(&cluster, "ranker", "production", first).await.unwrap().ok().unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let url = cluster.url("/v2/models/ranker@production/infer");
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| tokio::spawn(client_loop(cluster.clone(), url.clone(), stop.clone(), client)))
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;

    let deploying = cluster.clone();
    let output = tokio::task::spawn_blocking(move || {
        let (model, config) = (models_dir().join("mlp/2/model.pt"), models_dir().join("mlp/config.json"));
        let (model, config) = (model.to_str().unwrap().to_string(), config.to_str().unwrap().to_string());
        let args = ["deploy", "ranker", "--model", &model, "--config", &config, "--alias", "production"];
        ok(maas(&deploying, ADMIN_TOKEN, &args))
    })
    .await
    .unwrap();
    println!("{output}");
    let lines: Vec<&str> = output.lines().collect();
    let position =
        |start: &str| lines.iter().position(|l| l.starts_with(start)).unwrap_or_else(|| panic!("no '{start}'"));
    assert!(position("uploaded: sha256") < position("checked and published: ranker version 2"));
    let (published, ready) =
        (position("checked and published"), position("ready; alias production moved to version 2"));
    assert!(published < ready);
    // Progress is shown at once, then as it changes.
    let progress = ["waiting for placement", "loading on 1 node(s): node-0"];
    assert!(lines[published + 1..ready].iter().any(|l| progress.contains(l)), "no progress shown");

    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for client in clients {
        let answers = client.await.unwrap();
        let versions: Vec<u64> = answers.iter().map(|a| a.version).collect();
        assert!(versions.windows(2).all(|w| w[0] <= w[1]), "a client went back to the old version: {versions:?}");
        all.extend(answers);
    }
    let switched = all.iter().filter(|a| a.version == 2).map(|a| a.received).min().expect("no answer from version 2");
    let late_old = all.iter().filter(|a| a.version == 1 && a.sent > switched).count();
    assert_eq!(late_old, 0, "requests sent after the first answer of version 2 got version 1");
    let old = all.iter().filter(|a| a.version == 1).count();
    println!("{} answers, {old} from version 1, none failed", all.len());
    assert!(old > CLIENTS, "the load ran before the deploy");
}
