//! Readiness that tells the truth while the cluster changes under load, in
//! cluster mode with real etcd: clients call a model with two replicas and
//! a dozen versions loaded on demand (more than the two nodes have room
//! for, so they are evicted and loaded again all the time), while a
//! seeded random schedule kills and restarts nodes, publishes new versions
//! (each loaded on first use while the old one is dropped) and offers an
//! artifact that fails to load. Every request is answered, and answered
//! equal to PyTorch: no request is routed to a replica that is not ready,
//! and one version's load, eviction or failure never disturbs another's.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use maas_tests::admin::{example_artifact, example_config, publish, upload};
use maas_tests::requests::{assert_matches, json_body, post_json};
use maas_tests::{Cluster, NodeSpec, Reference};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

/// Versions loaded on demand.
const ON_DEMAND: usize = 12;
/// Memory each version declares.
const REPLICA_BYTES: u64 = 8 << 20;
/// Replicas each node has room for: the steady model's and four more.
const ROOM_PER_NODE: u64 = 5;
const CLIENTS: usize = 4;
/// Changes made while the clients run.
const CHANGES: usize = 10;

/// What the clients saw.
#[derive(Default)]
struct Seen {
    answered: AtomicU64,
    failures: Mutex<Vec<String>>,
}

/// Calls a random model until `stop`: `steady` (the CNN) half the time, else
/// one of the MLPs loaded on demand, checking every answer against PyTorch.
async fn client(http: reqwest::Client, base: String, seed: u64, stop: Arc<AtomicBool>, seen: Arc<Seen>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let (cnn, mlp) = (Reference::load("cnn", 1), Reference::load("mlp", 1));
    while !stop.load(Ordering::Relaxed) {
        let (name, reference) = match rng.random_bool(0.5) {
            true => ("steady".to_string(), &cnn),
            false => (format!("d{:02}", rng.random_range(0..ON_DEMAND)), &mlp),
        };
        let rows = reference.rows(rng.random_range(0..reference.batch_rows() - 1), 1);
        let url = format!("{base}/v2/models/{name}/infer");
        let started = Instant::now();
        match post_json(&http, &url, &json_body(&rows.inputs, None)).await.and_then(|a| a.answer()) {
            Ok(answer) => {
                assert_matches(&answer.outputs, &rows.outputs);
                seen.answered.fetch_add(1, Ordering::Relaxed);
            }
            Err(error) => seen
                .failures
                .lock()
                .unwrap()
                .push(format!("{name} after {:.1} s: {error}", started.elapsed().as_secs_f64())),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_reach_only_ready_replicas_while_nodes_die_and_versions_come_and_go() {
    let seed = std::env::var("MAAS_READINESS_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(7);
    println!("seed {seed} (set MAAS_READINESS_SEED to replay another)");
    let budget = ROOM_PER_NODE * REPLICA_BYTES;
    let node =
        |name: &str| NodeSpec { args: vec!["--memory-bytes".into(), budget.to_string()], ..NodeSpec::bare(name) };
    let cluster =
        Cluster::builder().with_membership().nodes(vec![node("node-0"), node("node-1")]).start().await.unwrap();
    let mut cluster = cluster;
    let cnn_sha = upload(&cluster, example_artifact("cnn", 1)).await.unwrap();
    let mlp_sha = upload(&cluster, example_artifact("mlp", 1)).await.unwrap();
    let mut steady = example_config("cnn", "steady");
    steady["replicas"] = json!({"min": 2, "max": 2});
    steady["memory_bytes"] = json!(REPLICA_BYTES);
    publish(&cluster, "steady", &steady, &cnn_sha).await.unwrap().ok().unwrap();
    let on_demand = |name: &str| {
        let mut config = example_config("mlp", name);
        config["replicas"] = json!({"min": 0, "max": 1});
        config["memory_bytes"] = json!(REPLICA_BYTES);
        config
    };
    for index in 0..ON_DEMAND {
        let name = format!("d{index:02}");
        publish(&cluster, &name, &on_demand(&name), &mlp_sha).await.unwrap().ok().unwrap();
    }
    maas_tests::admin::wait_ready(&cluster, "steady").await.unwrap();

    let (stop, seen) = (Arc::new(AtomicBool::new(false)), Arc::new(Seen::default()));
    let clients: Vec<_> = (0..CLIENTS as u64)
        .map(|n| {
            tokio::spawn(client(cluster.client.clone(), cluster.url(""), seed * 100 + n, stop.clone(), seen.clone()))
        })
        .collect();
    let mut rng = StdRng::seed_from_u64(seed);
    let garbage = upload(&cluster, b"not a TorchScript archive".repeat(100)).await.unwrap();
    for change in 0..CHANGES {
        tokio::time::sleep(Duration::from_millis(rng.random_range(500..1500))).await;
        match rng.random_range(0..3) {
            0 => {
                let index = rng.random_range(0..2);
                println!("change {change}: kill node-{index} and start it again");
                cluster.kill_node(index);
                tokio::time::sleep(Duration::from_millis(rng.random_range(200..2000))).await;
                cluster.restart_node(index).await.unwrap();
            }
            1 => {
                let name = format!("d{:02}", rng.random_range(0..ON_DEMAND));
                let answer = publish(&cluster, &name, &on_demand(&name), &mlp_sha).await.unwrap().ok().unwrap();
                println!("change {change}: {name} version {} published", answer["version"]);
            }
            _ => {
                let refused = publish(&cluster, "broken", &on_demand("broken"), &garbage).await.unwrap();
                println!("change {change}: an artifact that cannot load was offered: {}", refused.error());
                assert!(refused.ok().is_err(), "a model that cannot load was accepted");
            }
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }
    let answered = seen.answered.load(Ordering::Relaxed);
    let failures = seen.failures.lock().unwrap().clone();
    println!("{answered} requests answered, {} failed", failures.len());
    assert!(failures.is_empty(), "{} requests failed: {failures:#?}", failures.len());
    assert!(answered > 100, "the clients hardly ran: {answered} answers");
}
