//! The management API refuses bad uploads and unauthorized callers with
//! clear errors and leaves the registry as it was.

use maas_tests::admin::{
    call, deploy_example, describe, example_artifact, example_config, publish, set_alias, upload, wait_ready,
};
use maas_tests::cluster::{ADMIN_TOKEN, INFERENCE_TOKEN};
use maas_tests::requests::{assert_matches, json_body, post};
use maas_tests::{ArtifactLocation, Cluster, NodeSpec, Reference};
use reqwest::Method;
use serde_json::{json, Value};

async fn snapshot(cluster: &Cluster) -> Value {
    describe(cluster, "clf").await.unwrap().ok().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_uploads_and_requests_leave_the_registry_unchanged() {
    let cluster = Cluster::builder()
        .nodes(vec![NodeSpec::bare("node-0")])
        .coordinator_args(&["--max-upload-bytes", "4000000"])
        .start()
        .await
        .unwrap();
    deploy_example(&cluster, "mlp", 1, "clf").await.unwrap();
    set_alias(&cluster, "clf", "production", 1).await.unwrap().ok().unwrap();
    wait_ready(&cluster, "clf").await.unwrap();
    let before = snapshot(&cluster).await;

    // An upload over the size limit.
    let answer = call(&cluster, Method::PUT, "/v1/artifacts", Some(vec![7u8; 5_000_000]), None).await.unwrap();
    assert_eq!(answer.status, 413);
    assert!(answer.error().contains("exceeds the limit of 4000000 bytes"), "{}", answer.error());

    // Not TorchScript: stored as bytes, refused at publication by the trial load.
    let junk = upload(&cluster, b"this is not a TorchScript file".to_vec()).await.unwrap();
    let answer = publish(&cluster, "clf", &example_config("mlp", "clf"), &junk).await.unwrap();
    assert_eq!(answer.status, 400, "{:?}", answer.body);
    assert!(answer.error().contains("failed its trial load"), "{}", answer.error());

    // A configuration whose input shape the model does not accept.
    let real = upload(&cluster, example_artifact("mlp", 2)).await.unwrap();
    let mut wrong = example_config("mlp", "clf");
    wrong["inputs"][0]["shape"] = json!([-1, 100]);
    let answer = publish(&cluster, "clf", &wrong, &real).await.unwrap();
    assert_eq!(answer.status, 400);
    assert!(answer.error().contains("warming up"), "{}", answer.error());

    // An upload whose digest is not the one announced.
    let announced = "0".repeat(64);
    let response = cluster
        .client
        .put(cluster.url("/v1/artifacts"))
        .bearer_auth(ADMIN_TOKEN)
        .header("X-Maas-Sha256", &announced)
        .body(example_artifact("cnn", 1))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let body: Value = response.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("digest mismatch"), "{body}");

    // An artifact altered in the store after upload: the node refuses it.
    let tampered = upload(&cluster, example_artifact("cnn", 1)).await.unwrap();
    let blob = std::path::Path::new(cluster.artifact_store()).join("blobs/sha256").join(&tampered);
    let mut bytes = std::fs::read(&blob).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&blob, bytes).unwrap();
    let answer = publish(&cluster, "clf", &example_config("cnn", "clf"), &tampered).await.unwrap();
    assert_eq!(answer.status, 400);
    assert!(answer.error().contains("failed verification"), "{}", answer.error());

    // Unknown aliases and versions.
    let answer = call(&cluster, Method::POST, "/v1/models/clf/aliases/nope/rollback", None, None).await.unwrap();
    assert_eq!(answer.status, 404);
    assert!(answer.error().contains("no alias 'nope'"), "{}", answer.error());
    let answer = set_alias(&cluster, "clf", "canary", 42).await.unwrap();
    assert_eq!(answer.status, 404);
    assert!(answer.error().contains("no version 42"), "{}", answer.error());
    let answer = call(&cluster, Method::DELETE, "/v1/models/clf/aliases/nope", None, None).await.unwrap();
    assert_eq!(answer.status, 404);

    // Deleting the version the production alias uses.
    let answer = call(&cluster, Method::DELETE, "/v1/models/clf/versions/1", None, None).await.unwrap();
    assert_eq!(answer.status, 400);
    assert!(answer.error().contains("used by alias 'production'"), "{}", answer.error());

    // A body that is not the expected JSON.
    let answer =
        call(&cluster, Method::PUT, "/v1/models/clf/split", Some(b"{\"split\": 3}".to_vec()), None).await.unwrap();
    assert_eq!(answer.status, 400);
    assert!(answer.error().contains("invalid request body"), "{}", answer.error());

    assert_eq!(snapshot(&cluster).await, before, "a refused operation changed the registry");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn management_needs_the_admin_token() {
    let cluster = Cluster::builder()
        .nodes(vec![NodeSpec::bare("node-0")])
        .coordinator_args(&["--inference-token", INFERENCE_TOKEN])
        .start()
        .await
        .unwrap();
    deploy_example(&cluster, "mlp", 1, "clf").await.unwrap();
    wait_ready(&cluster, "clf").await.unwrap();
    let before = snapshot(&cluster).await;

    let split = serde_json::to_vec(&json!({"split": [{"version": 1, "weight": 1}]})).unwrap();
    let alias = serde_json::to_vec(&json!({"version": 1})).unwrap();
    let publish_body =
        serde_json::to_vec(&json!({"config": example_config("mlp", "clf"), "artifact": {"sha256": "0".repeat(64)}}))
            .unwrap();
    let calls: Vec<(Method, &str, Option<Vec<u8>>)> = vec![
        (Method::PUT, "/v1/artifacts", Some(example_artifact("mlp", 2))),
        (Method::GET, "/v1/models/clf", None),
        (Method::POST, "/v1/models/clf/versions", Some(publish_body)),
        (Method::DELETE, "/v1/models/clf/versions/1", None),
        (Method::PUT, "/v1/models/clf/aliases/production", Some(alias)),
        (Method::DELETE, "/v1/models/clf/aliases/production", None),
        (Method::POST, "/v1/models/clf/aliases/production/rollback", None),
        (Method::PUT, "/v1/models/clf/split", Some(split)),
        (Method::POST, "/v2/repository/index", None),
        (Method::POST, "/v2/repository/models/clf/load", None),
        (Method::POST, "/v2/repository/models/clf/unload", None),
    ];
    for (method, path, body) in calls {
        for token in ["", "wrong-token-of-some-length"] {
            let answer = call(&cluster, method.clone(), path, body.clone(), Some(token)).await.unwrap();
            assert_eq!(answer.status, 401, "{method} {path} with token {token:?}: {:?}", answer.body);
            assert!(
                answer.error().contains("key or token") || answer.error().contains("not a known"),
                "{}",
                answer.error()
            );
        }
        // The inference token is known but has no role here.
        let answer = call(&cluster, method.clone(), path, body.clone(), Some(INFERENCE_TOKEN)).await.unwrap();
        assert_eq!(answer.status, 403, "{method} {path} with the inference token: {:?}", answer.body);
        assert!(answer.error().contains("role 'inference'"), "{}", answer.error());
    }
    assert_eq!(snapshot(&cluster).await, before, "an unauthorized call changed the registry");

    // The model list names the models (OpenAI's shape) to any key, and
    // keeps the registry's detail for keys that may view it.
    let listed = call(&cluster, Method::GET, "/v1/models", None, Some(INFERENCE_TOKEN)).await.unwrap().ok().unwrap();
    assert_eq!(listed["object"], "list");
    assert_eq!(listed["data"][0]["id"], "clf");
    assert_eq!(listed["models"], json!([]), "an inference token sees the registry's detail");
    let without = call(&cluster, Method::GET, "/v1/models", None, Some("")).await.unwrap();
    assert_eq!(without.status, 401);

    // Inference takes the inference token (or the admin token), nothing else.
    let row = Reference::load("mlp", 1).rows(0, 1);
    let body = serde_json::to_vec(&json_body(&row.inputs, None)).unwrap();
    let url = cluster.url("/v2/models/clf/infer");
    let without = post(&cluster.client, &url, body.clone(), &[]).await.unwrap();
    assert_eq!(without.status, 401);
    for token in [INFERENCE_TOKEN, ADMIN_TOKEN] {
        let with =
            post(&cluster.client, &url, body.clone(), &[("authorization", format!("Bearer {token}"))]).await.unwrap();
        assert_eq!(with.status, 200, "{}", String::from_utf8_lossy(&with.body));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repository_extension_loads_and_unloads() {
    let cluster = Cluster::builder().nodes(vec![NodeSpec::bare("node-0")]).start().await.unwrap();
    deploy_example(&cluster, "mlp", 1, "clf").await.unwrap();
    wait_ready(&cluster, "clf").await.unwrap();
    let index = call(&cluster, Method::POST, "/v2/repository/index", None, None).await.unwrap().ok().unwrap();
    assert_eq!(index, json!([{"name": "clf", "version": "1", "state": "READY", "reason": ""}]));

    call(&cluster, Method::POST, "/v2/repository/models/clf/unload", None, None).await.unwrap().ok().unwrap();
    let index = call(&cluster, Method::POST, "/v2/repository/index", None, None).await.unwrap().ok().unwrap();
    assert_eq!(index[0]["reason"], json!("unloaded"));
    let ready = cluster.client.get(cluster.url("/v2/models/clf/ready")).send().await.unwrap();
    assert_eq!(ready.status().as_u16(), 503, "an unloaded model claims readiness");
    let row = Reference::load("mlp", 1).rows(0, 1);
    let body = serde_json::to_vec(&json_body(&row.inputs, None)).unwrap();
    let refused = post(&cluster.client, &cluster.url("/v2/models/clf/infer"), body.clone(), &[]).await.unwrap();
    assert_eq!(refused.status, 503);
    assert!(refused.error().contains("is unloaded"), "{}", refused.error());
    // The load answers once the model can serve: no wait after it.
    call(&cluster, Method::POST, "/v2/repository/models/clf/load", None, None).await.unwrap().ok().unwrap();
    let ready = cluster.client.get(cluster.url("/v2/models/clf/ready")).send().await.unwrap();
    assert_eq!(ready.status().as_u16(), 200, "loaded, the model is ready at once");
    let answer = post(&cluster.client, &cluster.url("/v2/models/clf/infer"), body, &[]).await.unwrap();
    assert_matches(&answer.answer().unwrap().outputs, &row.outputs);
    let index = call(&cluster, Method::POST, "/v2/repository/index", None, None).await.unwrap().ok().unwrap();
    assert_eq!(index[0]["state"], json!("READY"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn artifacts_in_an_s3_bucket_are_uploaded_fetched_and_served() {
    let s3 = maas_registry::testsuite::S3Server::start("models").await.unwrap();
    let cluster = Cluster::builder()
        .nodes(vec![NodeSpec::bare("node-0")])
        .artifact_store(ArtifactLocation { url: "s3://models/prod".into(), env: s3.env() })
        .start()
        .await
        .unwrap();
    let version = deploy_example(&cluster, "cnn", 1, "vision").await.unwrap();
    wait_ready(&cluster, "vision").await.unwrap();
    let reference = Reference::load("cnn", 1).rows(0, 2);
    let body = serde_json::to_vec(&json_body(&reference.inputs, None)).unwrap();
    let answer = post(&cluster.client, &cluster.url("/v2/models/vision/infer"), body, &[]).await.unwrap();
    let answer = answer.answer().unwrap();
    assert_eq!(answer.header["model_version"], json!(version.to_string()));
    assert_matches(&answer.outputs, &reference.outputs);

    // The blob is in the bucket under the prefix, by its digest.
    let described = describe(&cluster, "vision").await.unwrap().ok().unwrap();
    let sha256 = described["versions"][0]["artifact"]["sha256"].as_str().unwrap().to_string();
    let stored = s3.object_size(&format!("prod/blobs/sha256/{sha256}")).await.unwrap();
    assert_eq!(
        stored,
        Some(std::fs::metadata(maas_tests::cluster::models_dir().join("cnn/1/model.pt")).unwrap().len())
    );
}
