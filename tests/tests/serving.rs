//! Every example model answers with PyTorch's outputs, through JSON and
//! binary tensors, and the metadata routes describe it as Triton would.

use maas_tests::requests::{assert_matches, binary_body, json_body, post_binary, post_json};
use maas_tests::{Cluster, Reference};
use serde_json::{json, Value};

const MODELS: &[(&str, u64)] =
    &[("mlp", 1), ("mlp", 2), ("cnn", 1), ("ranker", 1), ("faulty", 1), ("dtypes", 1), ("sleepy", 1)];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_model_matches_pytorch() {
    let cluster = Cluster::builder().start().await.unwrap();
    for &(model, version) in MODELS {
        let reference = Reference::load(model, version);
        let url = cluster.url(&format!("/v2/models/{model}/versions/{version}/infer"));

        // The whole reference batch as JSON, with an id to echo.
        let answer = post_json(&cluster.client, &url, &json_body(&reference.inputs, Some("req-42")))
            .await
            .unwrap()
            .answer()
            .unwrap_or_else(|e| panic!("{model} v{version} JSON: {e}"));
        assert_eq!(answer.header["model_name"], json!(model));
        assert_eq!(answer.header["model_version"], json!(version.to_string()));
        assert_eq!(answer.header["id"], json!("req-42"));
        assert_matches(&answer.outputs, &reference.outputs);

        // Binary inputs, binary outputs.
        let (body, json_len) = binary_body(&reference.inputs, true);
        let raw = post_binary(&cluster.client, &url, body, json_len).await.unwrap();
        assert!(raw.json_len.is_some(), "{model}: binary answer lacks its header length");
        let answer = raw.answer().unwrap_or_else(|e| panic!("{model} v{version} binary: {e}"));
        assert!(answer.header["outputs"][0].get("data").is_none());
        assert_matches(&answer.outputs, &reference.outputs);

        // Binary inputs, JSON outputs.
        let (body, json_len) = binary_body(&reference.inputs, false);
        let raw = post_binary(&cluster.client, &url, body, json_len).await.unwrap();
        assert!(raw.json_len.is_none());
        assert_matches(&raw.answer().unwrap().outputs, &reference.outputs);

        // Single rows.
        for row in [0, reference.batch_rows() - 1] {
            let single = reference.rows(row, 1);
            let answer = post_json(&cluster.client, &url, &json_body(&single.inputs, None)).await.unwrap();
            assert_matches(&answer.answer().unwrap().outputs, &single.outputs);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_and_output_selection() {
    let cluster =
        Cluster::builder().nodes(vec![maas_tests::NodeSpec::new("node-0", &["mlp", "ranker"])]).start().await.unwrap();

    // Without a version, the newest ready version answers.
    let v2 = Reference::load("mlp", 2).rows(0, 3);
    let answer = post_json(&cluster.client, &cluster.url("/v2/models/mlp/infer"), &json_body(&v2.inputs, None))
        .await
        .unwrap()
        .answer()
        .unwrap();
    assert_eq!(answer.header["model_version"], json!("2"));
    assert_matches(&answer.outputs, &v2.outputs);

    // Asking for one output, in binary, while the other stays out.
    let reference = Reference::load("ranker", 1).rows(2, 4);
    let mut body = json_body(&reference.inputs, None);
    body["outputs"] = json!([{"name": "label", "parameters": {"binary_data": true}}]);
    let answer = post_json(&cluster.client, &cluster.url("/v2/models/ranker/infer"), &body).await.unwrap();
    assert!(answer.json_len.is_some());
    assert_matches(&answer.answer().unwrap().outputs, &reference.outputs[1..]);

    // An empty outputs list asks for every output, as Triton answers it.
    body["outputs"] = json!([]);
    let answer = post_json(&cluster.client, &cluster.url("/v2/models/ranker/infer"), &body).await.unwrap();
    assert_matches(&answer.answer().unwrap().outputs, &reference.outputs);

    // Both outputs, scores as JSON and label binary.
    body["outputs"] = json!([{"name": "scores"}, {"name": "label", "parameters": {"binary_data": true}}]);
    let answer = post_json(&cluster.client, &cluster.url("/v2/models/ranker/infer"), &body).await.unwrap();
    assert_matches(&answer.answer().unwrap().outputs, &reference.outputs);
}

async fn get(cluster: &Cluster, path: &str) -> (u16, Value) {
    let response = cluster.client.get(cluster.url(path)).send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_metadata() {
    let cluster =
        Cluster::builder().nodes(vec![maas_tests::NodeSpec::new("node-0", &["mlp", "ranker"])]).start().await.unwrap();
    // The Open Inference Protocol's REST bodies, which KServe's client reads.
    assert_eq!(get(&cluster, "/v2/health/live").await, (200, json!({"live": true})));
    assert_eq!(get(&cluster, "/v2/health/ready").await, (200, json!({"ready": true})));
    // HEAD answers like GET, without a body (load balancers probe this way).
    for path in ["/v2/health/ready", "/v2/models/mlp/ready", "/v2"] {
        let response = cluster.client.head(cluster.url(path)).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200, "HEAD {path}");
        assert!(response.bytes().await.unwrap().is_empty(), "HEAD {path} sent a body");
    }
    let missing = cluster.client.head(cluster.url("/v2/models/cnn/ready")).send().await.unwrap();
    assert_eq!(missing.status().as_u16(), 404);

    let (status, server) = get(&cluster, "/v2").await;
    assert_eq!(status, 200);
    assert_eq!(server["name"], json!("maas"));
    assert!(server["extensions"].as_array().unwrap().contains(&json!("binary_tensor_data")));

    let (status, mlp) = get(&cluster, "/v2/models/mlp").await;
    assert_eq!(status, 200);
    assert_eq!(mlp["versions"], json!(["1", "2"]));
    assert_eq!(mlp["inputs"], json!([{"name": "INPUT__0", "datatype": "FP32", "shape": [-1, 256]}]));
    assert_eq!(mlp["outputs"], json!([{"name": "OUTPUT__0", "datatype": "FP32", "shape": [-1, 10]}]));
    let (status, v1) = get(&cluster, "/v2/models/mlp/versions/1").await;
    assert_eq!((status, v1["versions"].clone()), (200, json!(["1"])));

    let (status, ranker) = get(&cluster, "/v2/models/ranker/config").await;
    assert_eq!(status, 200);
    assert_eq!(ranker["max_batch_size"], json!(32));
    assert_eq!(ranker["input"][0]["data_type"], json!("TYPE_INT64"));
    assert_eq!(ranker["input"][0]["dims"], json!([8]));
    assert_eq!(ranker["output"][1]["dims"], json!([]));

    assert_eq!(get(&cluster, "/v2/models/mlp/ready").await, (200, json!({"name": "mlp", "ready": true})));
    assert_eq!(get(&cluster, "/v2/models/mlp/versions/2/ready").await, (200, json!({"name": "mlp", "ready": true})));
    let (status, body) = get(&cluster, "/v2/models/cnn/ready").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"], json!("Request for unknown model: 'cnn' is not found"));
    let (status, body) = get(&cluster, "/v2/models/mlp/versions/7").await;
    assert_eq!(status, 404);
    assert!(body["error"].as_str().unwrap().contains("'mlp' version 7"));
    let (status, body) = get(&cluster, "/v2/no/such/route").await;
    assert_eq!(status, 404);
    assert!(body["error"].as_str().unwrap().contains("no route"));

    let metrics = cluster.coordinator_metrics().await.unwrap();
    assert!(metrics.contains("maas_node_link_up{node=\"node-0\"} 1"), "{metrics}");
}
