//! The whole request path in one process: HTTP front, batching, QUIC with
//! mutual TLS, the control session, LibTorch, and back, checked against
//! PyTorch's outputs.

use maas_sandbox::Sandbox;
use maas_tests::reference::Reference;
use maas_tests::requests::{assert_matches, json_body, post_json};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_crosses_every_plane_in_one_process() {
    let sandbox = Sandbox::start(&["mlp", "ranker"]).await.unwrap();

    // Both models answer what PyTorch computed, several rows at a time.
    for (model, version) in [("mlp", 2), ("ranker", 1)] {
        let reference = Reference::load(model, version).rows(0, 3);
        let url = sandbox.url(&format!("/v2/models/{model}/versions/{version}/infer"));
        let answer = post_json(&sandbox.client, &url, &json_body(&reference.inputs, None)).await.unwrap();
        let answer = answer.answer().unwrap();
        assert_eq!(answer.header["model_version"], json!(version.to_string()));
        assert_matches(&answer.outputs, &reference.outputs);
    }

    // The control session works: the coordinator shows the node's live status.
    let cluster: serde_json::Value = sandbox
        .client
        .get(sandbox.url("/v1/cluster"))
        .bearer_auth(maas_tests::cluster::ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(cluster["links"][0]["up"], json!(true), "{cluster:#}");
    assert!(cluster["links"][0]["status"]["in_flight"].is_u64(), "no live status over the session: {cluster:#}");

    // Coordinator and node share the process's one metrics recorder.
    let metrics = sandbox.client.get(sandbox.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("maas_inference_requests_total"), "{metrics}");
    assert!(metrics.contains("maas_node_batches_total"), "{metrics}");
}
