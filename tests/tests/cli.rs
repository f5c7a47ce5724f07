//! The `maas` command line drives deployment and management end to end.

use maas_tests::admin::wait_ready;
use maas_tests::cli::{maas, ok};
use maas_tests::cluster::{models_dir, ADMIN_TOKEN};
use maas_tests::requests::{json_body, post_json};
use maas_tests::{Cluster, NodeSpec, Reference};
use serde_json::Value;

async fn answering_version(cluster: &Cluster) -> String {
    let row = Reference::load("mlp", 1).rows(0, 1);
    let answer = post_json(&cluster.client, &cluster.url("/v2/models/clf/infer"), &json_body(&row.inputs, None))
        .await
        .unwrap()
        .answer()
        .unwrap();
    answer.header["model_version"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_manages_a_model() {
    let cluster = Cluster::builder().nodes(vec![NodeSpec::bare("node-0")]).with_etcd().start().await.unwrap();
    let models = models_dir();
    let config = models.join("mlp/config.json");
    let config = config.to_str().unwrap();
    for version in ["1", "2"] {
        let file = models.join(format!("mlp/{version}/model.pt"));
        let out = ok(maas(
            &cluster,
            ADMIN_TOKEN,
            &[
                "deploy",
                "clf",
                "--model",
                file.to_str().unwrap(),
                "--config",
                config,
                "--alias",
                "production",
                "--json",
            ],
        ));
        let published: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(published["version"].as_u64().unwrap().to_string(), version);
        assert_eq!(published["alias"], "production");
    }
    wait_ready(&cluster, "clf").await.unwrap();
    assert_eq!(answering_version(&cluster).await, "2");

    let listed: Value = serde_json::from_str(&ok(maas(&cluster, ADMIN_TOKEN, &["models", "--json"]))).unwrap();
    assert_eq!(listed["models"][0]["name"], "clf");
    assert_eq!(listed["models"][0]["versions"], serde_json::json!([1, 2]));
    let table = ok(maas(&cluster, ADMIN_TOKEN, &["models"]));
    assert!(table.starts_with("MODEL") && table.contains("production=2"), "{table}");

    let out = ok(maas(&cluster, ADMIN_TOKEN, &["rollback", "clf", "production"]));
    assert!(out.contains("version 2 -> 1"), "{out}");
    wait_ready(&cluster, "clf").await.unwrap();
    assert_eq!(answering_version(&cluster).await, "1");
    let out = ok(maas(&cluster, ADMIN_TOKEN, &["alias", "clf", "production", "2"]));
    assert!(out.contains("clf@production -> version 2"), "{out}");
    assert_eq!(answering_version(&cluster).await, "2");

    let out = ok(maas(&cluster, ADMIN_TOKEN, &["traffic", "clf", "1=50", "2=50"]));
    assert!(out.contains("1=50 2=50"), "{out}");
    let described = ok(maas(&cluster, ADMIN_TOKEN, &["describe", "clf"]));
    assert!(described.contains("split: 1=50 2=50") && described.contains("VERSION"), "{described}");
    ok(maas(&cluster, ADMIN_TOKEN, &["traffic", "clf", "--clear"]));

    let refused = maas(&cluster, ADMIN_TOKEN, &["delete", "clf", "2"]);
    assert!(!refused.ok);
    assert!(refused.stderr.contains("used by alias 'production'"), "{}", refused.stderr);
    let out = ok(maas(&cluster, ADMIN_TOKEN, &["alias", "clf", "canary", "1"]));
    assert!(out.contains("clf@canary -> version 1"), "{out}");
    ok(maas(&cluster, ADMIN_TOKEN, &["alias", "clf", "canary", "--delete"]));

    let status = ok(maas(&cluster, ADMIN_TOKEN, &["status"]));
    assert!(status.contains("ready") && status.contains("READY"), "{status}");

    let nodes = ok(maas(&cluster, ADMIN_TOKEN, &["nodes"]));
    let row = nodes.lines().find(|l| l.starts_with("node-0")).unwrap_or_else(|| panic!("no node-0 row:\n{nodes}"));
    assert!(row.contains(" up ") && row.contains("serving") && row.contains("GiB"), "{nodes}");
    let refused = maas(&cluster, ADMIN_TOKEN, &["drain", "node-9"]);
    assert!(!refused.ok && refused.stderr.contains("no node 'node-9'"), "{}", refused.stderr);

    let denied = maas(&cluster, "not-the-admin-token-at-all", &["models"]);
    assert!(!denied.ok);
    assert!(denied.stderr.contains("the token was refused"), "{}", denied.stderr);
}
