//! Cluster mode with real etcd, two coordinators and three nodes: placement
//! spreads replicas, a lost node's replicas move, a lost leader is
//! replaced, and a model too large for any node is reported unplaceable.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use maas_tests::admin::{call, example_artifact, example_config, publish, upload, wait_ready};
use maas_tests::requests::{assert_matches, json_body, post_json};
use maas_tests::wait::wait_until;
use maas_tests::{Cluster, NodeSpec, Reference};
use reqwest::Method;
use serde_json::{json, Value};
use sha2::Digest;

const MODELS: [&str; 3] = ["alpha", "beta", "gamma"];

/// Each test runs a whole cluster with 32 clients or more: one at a time,
/// so a 2-core machine does not starve their leases and keep-alives.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn deploy(cluster: &Cluster, name: &str, replicas: u32, memory_bytes: u64) {
    let sha = upload(cluster, example_artifact("mlp", 1)).await.unwrap();
    let mut config = example_config("mlp", name);
    config["replicas"] = json!({"min": replicas, "max": replicas});
    config["memory_bytes"] = json!(memory_bytes);
    publish(cluster, name, &config, &sha).await.unwrap().ok().unwrap();
}

async fn cluster_view(cluster: &Cluster, base: &str) -> Value {
    let response = cluster
        .client
        .get(format!("{base}/v1/cluster"))
        .bearer_auth(maas_tests::cluster::ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    response.json().await.unwrap()
}

fn placed_nodes(view: &Value, model: &str) -> Vec<String> {
    view["placement"]["assignments"][format!("{model}/1")]["nodes"]
        .as_array()
        .map(|nodes| nodes.iter().map(|n| n.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

async fn serve_check(cluster: &Cluster, base: &str, model: &str) {
    let single = Reference::load("mlp", 1).rows(7, 1);
    let answer =
        post_json(&cluster.client, &format!("{base}/v2/models/{model}/infer"), &json_body(&single.inputs, None))
            .await
            .unwrap()
            .answer()
            .unwrap_or_else(|e| panic!("{model} through {base}: {e}"));
    assert_matches(&answer.outputs, &single.outputs);
}

fn start_clients(
    cluster: &Cluster,
    base: &str,
    model: &str,
    stop: Arc<AtomicBool>,
    failures: Arc<AtomicUsize>,
) -> Vec<tokio::task::JoinHandle<usize>> {
    let reference = Reference::load("mlp", 1);
    (0..32)
        .map(|client| {
            let http = cluster.client.clone();
            let url = format!("{base}/v2/models/{model}/infer");
            let reference = reference.clone();
            let stop = stop.clone();
            let failures = failures.clone();
            tokio::spawn(async move {
                let mut sent = 0;
                let mut row = client;
                while !stop.load(Ordering::Relaxed) && sent < 100_000 {
                    row = (row + 3) % 64;
                    let single = reference.rows(row, 1);
                    let raw = post_json(&http, &url, &json_body(&single.inputs, None)).await.unwrap();
                    match raw.answer() {
                        Ok(answer) => assert_matches(&answer.outputs, &single.outputs),
                        Err(error) => {
                            eprintln!("request failed: {error}");
                            failures.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    sent += 1;
                }
                sent
            })
        })
        .collect()
}

async fn three_node_cluster() -> (Cluster, maas_tests::cluster::Process, String) {
    let cluster = Cluster::builder()
        .nodes(vec![NodeSpec::bare("node-0"), NodeSpec::bare("node-1"), NodeSpec::bare("node-2")])
        .with_membership()
        .start()
        .await
        .unwrap();
    let (second, second_url) = cluster.start_another_coordinator("coordinator-b").await.unwrap();
    (cluster, second, second_url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_spread_and_move_off_a_lost_node() {
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
    let (mut cluster, _second, second_url) = three_node_cluster().await;
    let first_url = cluster.url("");
    for model in MODELS {
        deploy(&cluster, model, 2, 100 << 20).await;
    }
    for model in MODELS {
        wait_ready(&cluster, model).await.unwrap();
    }
    let view = cluster_view(&cluster, &first_url).await;
    let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
    for model in MODELS {
        let nodes = placed_nodes(&view, model);
        assert_eq!(nodes.len(), 2, "{model}: {view}");
        for node in nodes {
            *per_node.entry(node).or_default() += 1;
        }
    }
    assert_eq!(per_node.values().copied().collect::<Vec<_>>(), vec![2, 2, 2], "replicas are not spread: {per_node:?}");
    for base in [&first_url, &second_url] {
        for model in MODELS {
            wait_until("readiness through both coordinators", Duration::from_secs(30), async || {
                cluster
                    .client
                    .get(format!("{base}/v2/models/{model}/ready"))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
            })
            .await
            .unwrap();
            serve_check(&cluster, base, model).await;
        }
    }

    // Kill a node holding alpha while 32 clients use alpha.
    let victim = placed_nodes(&view, "alpha")[0].clone();
    let victim_index = cluster.nodes.iter().position(|n| n.spec.name == victim).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicUsize::new(0));
    let clients = start_clients(&cluster, &first_url, "alpha", stop.clone(), failures.clone());
    // The load runs for a moment first, so the kill lands on busy clients.
    tokio::time::sleep(Duration::from_millis(500)).await;
    cluster.kill_node(victim_index);
    let killed = Instant::now();
    let moved = wait_until("re-placement of alpha", Duration::from_secs(30), async || {
        let view = cluster_view(&cluster, &first_url).await;
        let nodes = placed_nodes(&view, "alpha");
        nodes.len() == 2 && !nodes.contains(&victim)
    })
    .await
    .unwrap();
    wait_until("two ready replicas of alpha", Duration::from_secs(30), async || {
        ready_replicas(&cluster, "alpha").await == 2
    })
    .await
    .unwrap();
    let ready_again = killed.elapsed();
    // And a moment more on the new placement before the clients stop.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut sent = 0;
    for client in clients {
        sent += client.await.unwrap();
    }
    eprintln!(
        "node {victim} killed: placement moved in {moved:?}, two replicas ready after {ready_again:?}; {sent} requests"
    );
    assert_eq!(failures.load(Ordering::Relaxed), 0, "requests failed while a node died");
    assert!(moved < Duration::from_secs(2 + 5), "placement took {moved:?}, lease TTL is 2 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leader_takes_over() {
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
    let (mut cluster, second, second_url) = three_node_cluster().await;
    let first_url = cluster.url("");
    deploy(&cluster, "alpha", 2, 100 << 20).await;
    wait_ready(&cluster, "alpha").await.unwrap();
    let leads = |view: &Value| view["leader"] == json!(true);
    let first_leads = leads(&cluster_view(&cluster, &first_url).await);
    let second_leads = leads(&cluster_view(&cluster, &second_url).await);
    assert!(first_leads ^ second_leads, "exactly one coordinator leads");

    // Kill the leader; clients of the survivor see no error.
    let (mut leader, survivor_url) = if first_leads {
        (cluster.coordinator.take().unwrap(), second_url.clone())
    } else {
        (second, first_url.clone())
    };
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicUsize::new(0));
    let clients = start_clients(&cluster, &survivor_url, "alpha", stop.clone(), failures.clone());
    // The load runs for a moment first, so the leader dies under it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    leader.kill();
    let took_over = wait_until("a new leader", Duration::from_secs(20), async || {
        leads(&cluster_view(&cluster, &survivor_url).await)
    })
    .await
    .unwrap();
    eprintln!("leader killed: the survivor leads after {took_over:?} (lease TTL 3 s)");
    assert!(took_over < Duration::from_secs(3 + 3), "a new leader took {took_over:?}");

    // A placement change made after the failover takes effect.
    let response = cluster
        .client
        .put(format!("{survivor_url}/v1/artifacts"))
        .bearer_auth(maas_tests::cluster::ADMIN_TOKEN)
        .body(example_artifact("mlp", 2))
        .send()
        .await
        .unwrap();
    let sha: Value = response.json().await.unwrap();
    let mut config = example_config("mlp", "delta");
    config["replicas"] = json!({"min": 2, "max": 2});
    let body = serde_json::to_vec(&json!({"config": config, "artifact": {"sha256": sha["sha256"]}})).unwrap();
    let published = cluster
        .client
        .post(format!("{survivor_url}/v1/models/delta/versions"))
        .bearer_auth(maas_tests::cluster::ADMIN_TOKEN)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(published.status().as_u16(), 201);
    wait_until("delta placed and ready", Duration::from_secs(30), async || {
        cluster
            .client
            .get(format!("{survivor_url}/v2/models/delta/ready"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    })
    .await
    .unwrap();
    let view = cluster_view(&cluster, &survivor_url).await;
    assert_eq!(placed_nodes(&view, "delta").len(), 2, "{view}");
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }
    assert_eq!(failures.load(Ordering::Relaxed), 0, "clients of the surviving coordinator saw errors");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_too_large_is_unplaceable() {
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
    let (cluster, _second, _) = three_node_cluster().await;
    deploy(&cluster, "alpha", 1, 100 << 20).await;
    deploy(&cluster, "huge", 1, 1 << 40).await;
    wait_ready(&cluster, "alpha").await.unwrap();
    let first_url = cluster.url("");
    wait_until("huge reported unplaceable", Duration::from_secs(10), async || {
        let view = cluster_view(&cluster, &first_url).await;
        view["placement"]["assignments"]["huge/1"]["unplaceable"]
            .as_str()
            .is_some_and(|reason| reason.contains("needs 1099511627776 bytes"))
    })
    .await
    .unwrap();
    let ready = cluster.client.get(cluster.url("/v2/models/huge/ready")).send().await.unwrap();
    assert_ne!(ready.status().as_u16(), 200);
    serve_check(&cluster, &first_url, "alpha").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn impostors_and_strangers_cannot_join() {
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
    let mut cluster = Cluster::builder().nodes(vec![NodeSpec::bare("node-0")]).with_membership().start().await.unwrap();
    let scratch = maas_tests::cluster::TempDir::new("identities");
    // node-1 presents node-0's certificate from the cluster's CA.
    let impostor = scratch.path().join("impostor");
    std::fs::create_dir_all(&impostor).unwrap();
    std::fs::copy(cluster.certs.join("ca.pem"), impostor.join("ca.pem")).unwrap();
    std::fs::copy(cluster.certs.join("node-0.pem"), impostor.join("node-1.pem")).unwrap();
    std::fs::copy(cluster.certs.join("node-0.key"), impostor.join("node-1.key")).unwrap();
    cluster.add_node(NodeSpec::with_certs("node-1", impostor)).await.unwrap();
    // node-2 has a certificate for its own name from another CA.
    let stranger = scratch.path().join("stranger");
    maas_tests::cluster::make_certs(&stranger, &["node-2"]).unwrap();
    cluster.add_node(NodeSpec::with_certs("node-2", stranger)).await.unwrap();

    deploy(&cluster, "alpha", 3, 100 << 20).await;
    wait_ready(&cluster, "alpha").await.unwrap();
    let base = cluster.url("");
    wait_until("both refused nodes registered", Duration::from_secs(10), async || {
        cluster_view(&cluster, &base).await["members"].as_array().is_some_and(|m| m.len() == 3)
    })
    .await
    .unwrap();
    // Time for placement to use the refused nodes if it were going to; the
    // checks below show it does not.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let view = cluster_view(&cluster, &base).await;
    assert_eq!(placed_nodes(&view, "alpha"), vec!["node-0".to_string()], "{view}");
    let reason = view["placement"]["assignments"]["alpha/1"]["unplaceable"].as_str().unwrap_or_default();
    assert!(reason.contains("only 1 of 3"), "{view}");
    for link in view["links"].as_array().unwrap() {
        let admitted = link["name"] == json!("node-0");
        assert_eq!(link["up"], json!(admitted), "{link}");
    }
    serve_check(&cluster, &base, "alpha").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_one_of_three_etcd_members_is_survived() {
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
    let mut cluster = Cluster::builder()
        .nodes(vec![NodeSpec::bare("node-0"), NodeSpec::bare("node-1")])
        .with_membership()
        .with_three_etcd_members()
        .start()
        .await
        .unwrap();
    deploy(&cluster, "alpha", 2, 100 << 20).await;
    wait_ready(&cluster, "alpha").await.unwrap();
    let base = cluster.url("");
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicUsize::new(0));
    let clients = start_clients(&cluster, &base, "alpha", stop.clone(), failures.clone());
    // The load runs before, and for a while after, the member dies; the
    // deployment below is then made with it down.
    tokio::time::sleep(Duration::from_millis(300)).await;
    cluster.etcd[0].kill();
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Deployments still work, and are placed.
    deploy(&cluster, "beta", 2, 100 << 20).await;
    wait_ready(&cluster, "beta").await.unwrap();
    wait_until("beta on two nodes", Duration::from_secs(20), async || {
        placed_nodes(&cluster_view(&cluster, &base).await, "beta").len() == 2
    })
    .await
    .unwrap();
    serve_check(&cluster, &base, "beta").await;
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }
    assert_eq!(failures.load(Ordering::Relaxed), 0, "requests failed while an etcd member was down");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_restart_of_every_node_fails_no_request() {
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
    let (mut cluster, _second, _) = three_node_cluster().await;
    let base = cluster.url("");
    deploy_with_two_ready_replicas(&cluster, &["alpha", "beta"]).await;
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicUsize::new(0));
    let mut clients = start_clients(&cluster, &base, "alpha", stop.clone(), failures.clone());
    clients.extend(start_clients(&cluster, &base, "beta", stop.clone(), failures.clone()));
    for index in 0..cluster.nodes.len() {
        // Paces the restarts: the load runs a moment between them.
        tokio::time::sleep(Duration::from_millis(300)).await;
        cluster.nodes[index].process.terminate(Duration::from_secs(30)).unwrap();
        cluster.restart_node(index).await.unwrap();
        for model in ["alpha", "beta"] {
            wait_until("two ready replicas after a restart", Duration::from_secs(30), async || {
                ready_replicas(&cluster, model).await == 2
            })
            .await
            .unwrap();
        }
    }
    stop.store(true, Ordering::Relaxed);
    let mut sent = 0;
    for client in clients {
        sent += client.await.unwrap();
    }
    eprintln!("rolling restart of 3 nodes: {sent} requests");
    assert_eq!(failures.load(Ordering::Relaxed), 0, "requests failed during the rolling restart");
}

/// Deploys each model with 2 replicas and waits until both are ready.
async fn deploy_with_two_ready_replicas(cluster: &Cluster, models: &[&str]) {
    for model in models {
        deploy(cluster, model, 2, 100 << 20).await;
        wait_ready(cluster, model).await.unwrap();
    }
    for model in models {
        wait_until("two ready replicas", Duration::from_secs(30), async || ready_replicas(cluster, model).await == 2)
            .await
            .unwrap();
    }
}

/// Ready replicas of a model's first version, as the first coordinator reports them.
async fn ready_replicas(cluster: &Cluster, model: &str) -> u64 {
    let described = call(cluster, Method::GET, &format!("/v1/models/{model}"), None, None).await.unwrap().body;
    described["versions"][0]["ready_replicas"].as_u64().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_node_is_routed_around_and_rejoins() {
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
    use maas_tests::proxy::{tcp_relay, udp_relay, Partition};
    let mut cluster = Cluster::builder()
        .nodes(vec![NodeSpec::bare("node-0"), NodeSpec::bare("node-1")])
        .with_membership()
        .start()
        .await
        .unwrap();
    // node-2 reaches etcd, and is reached by coordinators, only through relays.
    let partition = Partition::default();
    let etcd_addr: std::net::SocketAddr = cluster.etcd[0].endpoint.trim_start_matches("http://").parse().unwrap();
    let etcd_relay = tcp_relay(etcd_addr, partition.clone()).await.unwrap();
    let quic_port = maas_tests::cluster::free_udp_port();
    let quic_relay = udp_relay(([127, 0, 0, 1], quic_port).into(), partition.clone()).await.unwrap();
    let mut spec = NodeSpec::bare("node-2");
    spec.etcd_endpoints = Some(format!("http://{etcd_relay}"));
    spec.quic_port = Some(quic_port);
    spec.args = vec!["--advertise-addr".into(), quic_relay.to_string()];
    cluster.add_node(spec).await.unwrap();

    deploy(&cluster, "alpha", 3, 100 << 20).await;
    wait_until("three replicas", Duration::from_secs(30), async || ready_replicas(&cluster, "alpha").await == 3)
        .await
        .unwrap();
    let base = cluster.url("");
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicUsize::new(0));
    let clients = start_clients(&cluster, &base, "alpha", stop.clone(), failures.clone());
    // The load runs for a moment first, so the partition lands on busy clients.
    tokio::time::sleep(Duration::from_millis(500)).await;

    partition.cut();
    let gone = wait_until("node-2 dropped", Duration::from_secs(20), async || {
        let view = cluster_view(&cluster, &base).await;
        let member = view["members"].as_array().unwrap().iter().any(|m| m["name"] == json!("node-2"));
        let linked = view["links"].as_array().unwrap().iter().any(|l| l["name"] == json!("node-2"));
        !member && !linked
    })
    .await
    .unwrap();
    // The load runs a moment with node-2 gone before the partition heals.
    tokio::time::sleep(Duration::from_millis(500)).await;
    partition.heal();
    let back = wait_until("node-2 rejoined with its replica", Duration::from_secs(30), async || {
        ready_replicas(&cluster, "alpha").await == 3
    })
    .await
    .unwrap();
    // And a moment more with node-2 back before the clients stop.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut sent = 0;
    for client in clients {
        sent += client.await.unwrap();
    }
    eprintln!(
        "partition: node-2 dropped after {gone:?}, back with its replica {back:?} after healing; {sent} requests"
    );
    assert_eq!(failures.load(Ordering::Relaxed), 0, "requests failed during the partition");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_plane_reports_live_load_and_drains_a_node() {
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
    let (mut cluster, _second, second_url) = three_node_cluster().await;
    let base = cluster.url("");
    deploy_with_two_ready_replicas(&cluster, &["alpha", "beta"]).await;

    // Live status from every node's host actor, through either coordinator,
    // agrees with the placement.
    for url in [&base, &second_url] {
        let view = cluster_view(&cluster, url).await;
        let links = view["links"].as_array().unwrap();
        assert_eq!(links.len(), 3, "{view:#}");
        for link in links {
            let name = link["name"].as_str().unwrap();
            let status = &link["status"];
            assert_eq!(status["draining"], json!(false), "{link:#}");
            assert_eq!(status["memory_bytes"], json!(8u64 << 30), "{link:#}");
            let held: Vec<String> = status["models"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| {
                    assert!(m["instances"].as_u64().unwrap() >= 1);
                    format!("{}/{}", m["name"].as_str().unwrap(), m["version"])
                })
                .collect();
            let placed: Vec<String> = ["alpha", "beta"]
                .iter()
                .filter(|m| placed_nodes(&view, m).iter().any(|n| n == name))
                .map(|m| format!("{m}/1"))
                .collect();
            assert_eq!(held, placed, "node {name} holds what placement gave it");
            assert_eq!(status["memory_used_bytes"], json!(placed.len() as u64 * (100 << 20)), "{link:#}");
        }
    }

    // Drain a node holding alpha while 32 clients use alpha.
    let view = cluster_view(&cluster, &base).await;
    let leaving = placed_nodes(&view, "alpha")[0].clone();
    let index = cluster.nodes.iter().position(|n| n.spec.name == leaving).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicUsize::new(0));
    let clients = start_clients(&cluster, &base, "alpha", stop.clone(), failures.clone());
    // The load runs for a moment first, so the drain lands on busy clients.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let drained =
        call(&cluster, Method::POST, &format!("/v1/cluster/nodes/{leaving}/drain"), None, None).await.unwrap();
    assert_eq!(drained.status, 202, "{:?}", drained.body);
    let exited = wait_until("the drained node to exit", Duration::from_secs(30), async || {
        cluster.nodes[index].process.has_exited()
    })
    .await
    .unwrap();
    let moved = wait_until("replicas moved off the drained node", Duration::from_secs(30), async || {
        let view = cluster_view(&cluster, &base).await;
        ["alpha", "beta"].iter().all(|m| {
            let nodes = placed_nodes(&view, m);
            nodes.len() == 2 && !nodes.contains(&leaving)
        })
    })
    .await
    .unwrap();
    for model in ["alpha", "beta"] {
        wait_until("two ready replicas after the drain", Duration::from_secs(30), async || {
            ready_replicas(&cluster, model).await == 2
        })
        .await
        .unwrap();
    }
    // And a moment more on the new placement before the clients stop.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut sent = 0;
    for client in clients {
        sent += client.await.unwrap();
    }
    eprintln!("drain of {leaving}: exited after {exited:?}, replicas re-placed within {moved:?} more, {sent} requests");
    assert_eq!(failures.load(Ordering::Relaxed), 0, "requests failed during the drain");

    let unknown = call(&cluster, Method::POST, "/v1/cluster/nodes/no-such-node/drain", None, None).await.unwrap();
    assert_eq!(unknown.status, 404, "{:?}", unknown.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placement_prefers_a_node_holding_the_artifact() {
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
    let (cluster, _second, _) = three_node_cluster().await;
    // A first model takes node-0 (the trial load before publishing also
    // runs there, so node-0 caches every artifact deployed here).
    let sha = upload(&cluster, example_artifact("cnn", 1)).await.unwrap();
    let mut config = example_config("cnn", "filler");
    config["replicas"] = json!({"min": 1, "max": 1});
    publish(&cluster, "filler", &config, &sha).await.unwrap().ok().unwrap();
    wait_ready(&cluster, "filler").await.unwrap();
    // node-2 already has the next artifact in its cache (as if it had
    // served it before); node-1 and node-2 are otherwise equal, so without
    // the cache the replica would go to node-1, the first by name.
    let bytes = example_artifact("mlp", 1);
    let digest = hex::encode(sha2::Sha256::digest(&bytes));
    let cache = cluster.node_data_dir("node-2").join("artifacts");
    std::fs::create_dir_all(&cache).unwrap();
    std::fs::write(cache.join(format!("{digest}.pt")), &bytes).unwrap();
    let view = cluster_view(&cluster, &cluster.url("")).await;
    assert_eq!(placed_nodes(&view, "filler"), vec!["node-0".to_string()], "{:#}", view["placement"]);
    let node_2 = view["links"].as_array().unwrap().iter().find(|l| l["name"] == "node-2").unwrap().clone();
    assert_eq!(node_2["status"]["cached_artifacts"], json!([digest]), "{node_2:#}");

    deploy(&cluster, "alpha", 1, 100 << 20).await;
    wait_ready(&cluster, "alpha").await.unwrap();
    let view = cluster_view(&cluster, &cluster.url("")).await;
    assert_eq!(placed_nodes(&view, "alpha"), vec!["node-2".to_string()], "{:#}", view["placement"]);
    serve_check(&cluster, &cluster.url(""), "alpha").await;
}
