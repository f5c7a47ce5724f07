//! Model management end to end, with a real etcd: versions published
//! through the management API, aliases moved under load, rollback, traffic
//! splits, and everything surviving a restart of every process.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use maas_tests::admin::{call, deploy_example, describe, set_alias, set_split, wait_ready};
use maas_tests::requests::{assert_matches, json_body, post_json};
use maas_tests::wait::wait_until;
use maas_tests::{Cluster, NodeSpec, Reference};
use serde_json::json;

struct Answer {
    sent: Instant,
    version: u64,
}

/// 32 clients sending single rows to `clf` until `stop`; every answer must
/// be a success matching the reference of the version that answered.
fn start_clients(cluster: &Cluster, stop: Arc<AtomicBool>) -> Vec<tokio::task::JoinHandle<Vec<Answer>>> {
    let references = Arc::new([Reference::load("mlp", 1), Reference::load("mlp", 2)]);
    (0..32)
        .map(|client| {
            let http = cluster.client.clone();
            let url = cluster.url("/v2/models/clf/infer");
            let references = references.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut answers = Vec::new();
                let mut row = client;
                while !stop.load(Ordering::Relaxed) && answers.len() < 50_000 {
                    row = (row + 5) % 64;
                    let inputs = references[0].rows(row, 1).inputs;
                    let sent = Instant::now();
                    let raw = post_json(&http, &url, &json_body(&inputs, None)).await.unwrap();
                    let answer = raw.answer().unwrap_or_else(|e| panic!("a request failed during the update: {e}"));
                    let version: u64 = answer.header["model_version"].as_str().unwrap().parse().unwrap();
                    // The reference inputs of both versions are the same rows.
                    assert_matches(&answer.outputs, &references[version as usize - 1].rows(row, 1).outputs);
                    answers.push(Answer { sent, version });
                }
                answers
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alias_moves_and_rollback_under_load() {
    let cluster = Cluster::builder().nodes(vec![NodeSpec::bare("node-0")]).with_etcd().start().await.unwrap();
    assert_eq!(deploy_example(&cluster, "mlp", 1, "clf").await.unwrap(), 1);
    set_alias(&cluster, "clf", "production", 1).await.unwrap().ok().unwrap();
    wait_ready(&cluster, "clf").await.unwrap();
    assert_eq!(deploy_example(&cluster, "mlp", 2, "clf").await.unwrap(), 2);
    wait_ready(&cluster, "clf/versions/2").await.unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let clients = start_clients(&cluster, stop.clone());
    // The sleeps are the load's time on each version: v1, then v2 after the
    // move, then v1 again after the rollback.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let move_started = Instant::now();
    set_alias(&cluster, "clf", "production", 2).await.unwrap().ok().unwrap();
    let moved = Instant::now();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let rollback_started = Instant::now();
    let rolled = call(&cluster, reqwest::Method::POST, "/v1/models/clf/aliases/production/rollback", None, None)
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!((rolled["from"].as_u64(), rolled["version"].as_u64()), (Some(2), Some(1)));
    let rolled_back = Instant::now();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut answers = Vec::new();
    for client in clients {
        answers.extend(client.await.unwrap());
    }

    let versions_between = |from: Instant, to: Instant| -> Vec<u64> {
        answers.iter().filter(|a| a.sent >= from && a.sent < to).map(|a| a.version).collect()
    };
    let before = versions_between(Instant::now() - Duration::from_secs(3600), move_started);
    let during_v2 = versions_between(moved, rollback_started);
    let after = versions_between(rolled_back, Instant::now());
    assert!(!before.is_empty() && !during_v2.is_empty() && !after.is_empty());
    assert!(before.iter().all(|&v| v == 1), "answers before the move came from {before:?}");
    assert!(during_v2.iter().all(|&v| v == 2), "after the move some answers came from v1");
    assert!(after.iter().all(|&v| v == 1), "after the rollback some answers came from v2");

    // model@alias and explicit versions route as named.
    let single = Reference::load("mlp", 2).rows(3, 1);
    set_alias(&cluster, "clf", "canary", 2).await.unwrap().ok().unwrap();
    let answer =
        post_json(&cluster.client, &cluster.url("/v2/models/clf@canary/infer"), &json_body(&single.inputs, None))
            .await
            .unwrap()
            .answer()
            .unwrap();
    assert_eq!(answer.header["model_version"], json!("2"));
    assert_matches(&answer.outputs, &single.outputs);
    let missing =
        post_json(&cluster.client, &cluster.url("/v2/models/clf@nope/infer"), &json_body(&single.inputs, None))
            .await
            .unwrap();
    assert_eq!(missing.status, 404);
    assert!(missing.error().contains("no alias 'nope'"), "{}", missing.error());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_split_and_restart() {
    let mut cluster = Cluster::builder().nodes(vec![NodeSpec::bare("node-0")]).with_etcd().start().await.unwrap();
    deploy_example(&cluster, "mlp", 1, "clf").await.unwrap();
    deploy_example(&cluster, "mlp", 2, "clf").await.unwrap();
    set_alias(&cluster, "clf", "production", 1).await.unwrap().ok().unwrap();
    set_split(&cluster, "clf", &[(1, 90), (2, 10)]).await.unwrap().ok().unwrap();
    wait_ready(&cluster, "clf/versions/1").await.unwrap();
    wait_ready(&cluster, "clf/versions/2").await.unwrap();

    let share_of_v2 = |cluster: &Cluster| {
        let http = cluster.client.clone();
        let url = cluster.url("/v2/models/clf/infer");
        async move {
            let reference = Reference::load("mlp", 1);
            let mut twos = 0usize;
            let total = 2000;
            for chunk in 0..(total / 50) {
                let calls: Vec<_> = (0..50)
                    .map(|i| {
                        let inputs = reference.rows((chunk + i) % 64, 1).inputs;
                        let http = http.clone();
                        let url = url.clone();
                        tokio::spawn(async move { post_json(&http, &url, &json_body(&inputs, None)).await.unwrap() })
                    })
                    .collect();
                for call in calls {
                    let answer = call.await.unwrap().answer().unwrap();
                    if answer.header["model_version"] == json!("2") {
                        twos += 1;
                    }
                }
            }
            twos as f64 / total as f64
        }
    };
    let share = share_of_v2(&cluster).await;
    assert!((0.07..=0.13).contains(&share), "v2 received {:.1}% of requests", share * 100.0);

    // Restart every process: the registry, aliases and split persist in etcd.
    let before = describe(&cluster, "clf").await.unwrap().ok().unwrap();
    cluster.restart_nodes().await.unwrap();
    cluster.restart_coordinator().await.unwrap();
    wait_ready(&cluster, "clf/versions/1").await.unwrap();
    wait_ready(&cluster, "clf/versions/2").await.unwrap();
    let after = describe(&cluster, "clf").await.unwrap().ok().unwrap();
    for field in ["versions", "aliases", "split", "loaded"] {
        let strip = |v: &serde_json::Value| {
            let mut v = v[field].clone();
            if let Some(list) = v.as_array_mut() {
                for entry in list {
                    if let Some(object) = entry.as_object_mut() {
                        object.remove("ready_replicas");
                    }
                }
            }
            v
        };
        assert_eq!(strip(&before), strip(&after), "{field} changed across the restart");
    }
    let share = share_of_v2(&cluster).await;
    assert!((0.07..=0.13).contains(&share), "after the restart v2 received {:.1}%", share * 100.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_coordinator_sees_changes_within_a_second() {
    let cluster = Cluster::builder().nodes(vec![NodeSpec::bare("node-0")]).with_etcd().start().await.unwrap();
    let (_second, second_url) = cluster.start_another_coordinator("coordinator-b").await.unwrap();
    deploy_example(&cluster, "mlp", 1, "clf").await.unwrap();
    deploy_example(&cluster, "mlp", 2, "clf").await.unwrap();
    set_alias(&cluster, "clf", "production", 1).await.unwrap().ok().unwrap();
    wait_ready(&cluster, "clf/versions/1").await.unwrap();

    let row = Reference::load("mlp", 1).rows(4, 1);
    let body = json_body(&row.inputs, None);
    let version_at_b = || async {
        let answer = post_json(&cluster.client, &format!("{second_url}/v2/models/clf/infer"), &body).await.unwrap();
        answer.answer().ok().map(|a| a.header["model_version"].as_str().unwrap().to_string())
    };
    // The second coordinator serves the version the first one published.
    wait_until("the second coordinator to serve clf", Duration::from_secs(30), async || {
        version_at_b().await.as_deref() == Some("1")
    })
    .await
    .unwrap();
    for (alias_target, expected) in [(2, "2"), (1, "1")] {
        set_alias(&cluster, "clf", "production", alias_target).await.unwrap().ok().unwrap();
        let what = format!("the second coordinator to route to version {expected} (1 s at most)");
        wait_until(&what, Duration::from_secs(1), async || version_at_b().await.as_deref() == Some(expected))
            .await
            .unwrap();
    }
}
