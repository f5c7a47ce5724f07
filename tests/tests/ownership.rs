//! Monitoring data belongs to the tenant it came from, across real
//! processes: feedback joins only the predictions of the tenant that sends
//! it (another tenant's ids are unknown to it and cannot replace its
//! predictions), and a version's drift reference is built from its owner's
//! requests only, so another tenant's traffic sent first cannot decide what
//! normal is.

use std::time::Duration;

use maas_tests::admin::{self, example_config};
use maas_tests::cluster::models_dir;
use maas_tests::requests::json_body;
use maas_tests::synthetic::{normal, row};
use maas_tests::{Cluster, NodeSpec};
use reqwest::Method;
use serde_json::{json, Value};

struct Client<'a> {
    cluster: &'a Cluster,
    token: String,
}

impl Client<'_> {
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self.cluster.client.request(method, self.cluster.url(path)).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
    }

    /// Sends `count` rows with feature 0 shifted by `shift`, each with id
    /// `<prefix><i>`.
    async fn send(&self, seed: &mut u64, shift: f64, count: usize, prefix: &str) {
        for i in 0..count {
            *seed += 1;
            let base = *seed * 1000;
            let inputs = row(256, |j| normal(base + j as u64) + if j == 0 { shift } else { 0.0 });
            let id = format!("{prefix}{i}");
            let (status, body) =
                self.call(Method::POST, "/v2/models/m-1/infer", Some(json_body(&inputs, Some(&id)))).await;
            assert_eq!(status, 200, "{body}");
        }
    }
}

async fn key<'a>(cluster: &'a Cluster, tenant: &str, role: &str) -> Client<'a> {
    let spec = json!({"tenant": tenant, "role": role, "scope": ["m-*"]});
    Client { cluster, token: admin::create_key(cluster, &spec).await.unwrap().key }
}

/// Whether a drift alert says the reference is team-b's shifted traffic: a
/// shift of two standard deviations scores far above 1, where sampling
/// noise between two samples of one distribution stays well below.
fn has_drift_alert(alerts: &Value) -> bool {
    alerts["active"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["kind"] == "drift" && a["model"] == "m-1" && a["observed"].as_f64().unwrap_or(f64::MAX) > 1.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feedback_and_drift_references_belong_to_their_tenant() {
    let cluster = Cluster::builder()
        .nodes(vec![NodeSpec::bare("node-0")])
        .coordinator_args(&["--drift-sample-every", "1", "--drift-rows", "200"])
        .start()
        .await
        .unwrap();
    let deployer = key(&cluster, "team-a", "deployer").await;
    let owner = key(&cluster, "team-a", "inference").await;
    let other = key(&cluster, "team-b", "inference").await;

    // team-a's deployer publishes m-1: the version is team-a's.
    let artifact = std::fs::read(models_dir().join("mlp/1/model.pt")).unwrap();
    let upload = cluster.client.put(cluster.url("/v1/artifacts")).bearer_auth(&deployer.token).body(artifact);
    let stored: Value = upload.send().await.unwrap().json().await.unwrap();
    let publish = json!({"config": example_config("mlp", "m-1"), "artifact": {"sha256": stored["sha256"]}});
    let (status, body) = deployer.call(Method::POST, "/v1/models/m-1/versions", Some(publish)).await;
    assert_eq!(status, 201, "{body}");
    let (_, detail) = deployer.call(Method::GET, "/v1/models/m-1", None).await;
    assert_eq!(detail["versions"][0]["lineage"]["owner"], "team-a", "{detail}");
    maas_tests::admin::wait_ready(&cluster, "m-1").await.unwrap();

    // team-b sends first, shifted by two standard deviations: not a reference.
    let mut seed = 0;
    other.send(&mut seed, 2.0, 200, "b").await;
    // team-a's own traffic builds the reference, then the same again.
    owner.send(&mut seed, 0.0, 200, "a").await;
    owner.send(&mut seed, 0.0, 200, "again").await;
    // The once-a-second check runs at least once: no alert may come of it.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, alerts) = deployer.call(Method::GET, "/v1/alerts", None).await;
    assert!(!has_drift_alert(&alerts), "team-b's traffic became the reference: {alerts}");

    // Feedback: team-b cannot label team-a's requests, nor replace them by
    // reusing their ids.
    other.send(&mut seed, 0.0, 1, "a").await; // team-b's own request "a0"
    let (_, decoy) = other.call(Method::POST, "/v1/models/m-1/feedback", Some(json!({"id": "a1", "label": 3}))).await;
    assert_eq!((decoy["joined"].as_u64(), decoy["unknown"].as_u64()), (Some(0), Some(1)), "{decoy}");
    let labels: Vec<Value> = (0..5).map(|i| json!({"id": format!("a{i}"), "label": 1})).collect();
    let (status, joined) = owner.call(Method::POST, "/v1/models/m-1/feedback", Some(json!({"feedback": labels}))).await;
    assert_eq!(status, 200, "{joined}");
    assert_eq!(joined["joined"], 5, "team-a's predictions, a0 included, join team-a's labels: {joined}");
    // team-b's own "a0" is still its own to label.
    let (_, own) = other.call(Method::POST, "/v1/models/m-1/feedback", Some(json!({"id": "a0", "label": 1}))).await;
    assert_eq!(own["joined"], 1, "{own}");
}
