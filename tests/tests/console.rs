//! The web console in a real browser: headless Chromium driven by Selenium
//! (`tests/python/console_browser.py`) signs in, reads live numbers that
//! equal the statistics API's, watches a chart move under load, moves an
//! alias with a confirmation (the next answer comes from the new version),
//! checks contrast, keyboard focus and a narrow screen, and finds no
//! action buttons for a viewer key, whose action calls the API refuses.
//! Each version's state shows with its reason, and a rollout waiting for a
//! version that wants two replicas on a one-node cluster shows its
//! progress.
//! Screenshots of each view go to `.maas/console-screenshots`.

use maas_tests::admin::{
    call, create_key, deploy_example, example_artifact, example_config, publish, set_alias, upload,
};
use maas_tests::cluster::{workspace_root, ADMIN_TOKEN};
use maas_tests::requests::{json_body, post_json};
use maas_tests::{python, Cluster, NodeSpec, Reference};
use reqwest::Method;
use serde_json::json;

/// Requests the test sends to version 1 before the browser looks.
const COUNTED: usize = 17;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_shows_the_cluster_live_and_acts_for_keys_that_may() {
    let cluster = Cluster::builder().with_membership().nodes(vec![NodeSpec::bare("node-0")]).start().await.unwrap();
    let first = deploy_example(&cluster, "mlp", 1, "scorer").await.unwrap();
    let second = deploy_example(&cluster, "mlp", 2, "scorer").await.unwrap();
    assert_eq!((first, second), (1, 2));
    set_alias(&cluster, "scorer", "production", 1).await.unwrap().ok().unwrap();
    maas_tests::admin::wait_ready(&cluster, "scorer/versions/2").await.unwrap();

    let reference = Reference::load("mlp", 1);
    let url = cluster.url("/v2/models/scorer/versions/1/infer");
    for row in 0..COUNTED {
        let body = json_body(&reference.rows(row % 16, 1).inputs, None);
        post_json(&cluster.client, &url, &body).await.unwrap().answer().unwrap();
    }

    // Version 3 wants two replicas and the cluster has one node: an alias
    // moved to it waits (up to the rollout's limit), and says how far it is.
    let sha = upload(&cluster, example_artifact("mlp", 1)).await.unwrap();
    let mut config = example_config("mlp", "scorer");
    config["replicas"] = json!({"min": 2, "max": 2});
    publish(&cluster, "scorer", &config, &sha).await.unwrap().ok().unwrap();
    let waiting_move = {
        let body = serde_json::to_vec(&json!({"version": 3})).unwrap();
        let (url, client) = (cluster.url("/v1/models/scorer/aliases/canary"), cluster.client.clone());
        tokio::spawn(async move { client.put(url).bearer_auth(ADMIN_TOKEN).body(body).send().await })
    };
    let detail = maas_tests::wait::wait_for("version 3's rollout", std::time::Duration::from_secs(30), async || {
        let detail = call(&cluster, Method::GET, "/v1/models/scorer", None, None).await.ok()?.ok().ok()?;
        detail["versions"][2]["state"]["rollout"].is_string().then_some(detail)
    })
    .await
    .unwrap();
    let first_state = &detail["versions"][0]["state"];
    assert_eq!(first_state["state"], "ready", "{first_state}");
    assert!(first_state["reason"].as_str().unwrap().contains("ready on 1 replica"), "{first_state}");
    let third_state = &detail["versions"][2]["state"];
    assert_eq!(third_state["wanted_replicas"], 2, "{third_state}");
    assert!(third_state["rollout"].as_str().unwrap().contains("of 2 replicas"), "{third_state}");
    let listed = call(&cluster, Method::GET, "/v1/models", None, None).await.unwrap().ok().unwrap();
    let states = &listed["models"][0]["states"];
    assert!(states.as_array().unwrap().iter().any(|s| s["version"] == 3 && s["rollout"].is_string()), "{states}");

    let viewer = create_key(&cluster, &json!({"tenant": "ops", "role": "viewer", "scope": ["scorer"]})).await.unwrap();
    let shots = workspace_root().join(".maas/console-screenshots");
    let script = workspace_root().join("tests/python/console_browser.py");
    let printed = python::run(&[
        script.to_str().unwrap(),
        &cluster.url(""),
        ADMIN_TOKEN,
        &viewer.key,
        "scorer",
        shots.to_str().unwrap(),
    ]);
    eprintln!("{printed}\nscreenshots in {}", shots.display());
    waiting_move.abort();
    assert!(printed.contains(&format!("console {COUNTED}, statistics API {COUNTED}")), "{printed}");
    assert!(printed.contains("next answer from version 2"), "{printed}");
    assert!(printed.contains("viewer: no action buttons"), "{printed}");
    assert!(printed.contains("version 3 rollout shown"), "{printed}");
    for view in ["models", "model", "confirm", "cluster", "alerts", "model-narrow", "model-viewer"] {
        let shot = shots.join(format!("{view}.png"));
        assert!(std::fs::metadata(&shot).map(|m| m.len() > 1000).unwrap_or(false), "no screenshot {}", shot.display());
    }

    // The alias moved in the registry, not only on the page.
    let detail = call(&cluster, Method::GET, "/v1/models/scorer", None, None).await.unwrap().ok().unwrap();
    assert_eq!(detail["aliases"]["production"]["version"], 2, "{detail}");

    // The viewer's key is refused every action by the API itself.
    let key = Some(viewer.key.as_str());
    let alias = serde_json::to_vec(&json!({"version": 1})).unwrap();
    let split = serde_json::to_vec(&json!({"split": [{"version": 1, "weight": 1}]})).unwrap();
    for (method, path, body) in [
        (Method::PUT, "/v1/models/scorer/aliases/production", Some(alias)),
        (Method::POST, "/v1/models/scorer/aliases/production/rollback", None),
        (Method::PUT, "/v1/models/scorer/split", Some(split)),
        (Method::POST, "/v1/cluster/nodes/node-0/drain", None),
        (Method::GET, "/v1/cluster", None),
    ] {
        let answer = call(&cluster, method.clone(), path, body, key).await.unwrap();
        assert_eq!(answer.status, 403, "{method} {path} as a viewer: {}", answer.body);
    }
    let whoami = call(&cluster, Method::GET, "/v1/whoami", None, key).await.unwrap().ok().unwrap();
    assert_eq!(
        whoami,
        json!({"tenant": "ops", "role": "viewer", "scope": ["scorer"],
                              "may_deploy": false, "may_administer": false})
    );
}
