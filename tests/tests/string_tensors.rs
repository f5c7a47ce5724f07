//! BYTES tensors on the wire to a node: an ONNX model taking and returning
//! string tensors (`tests/fixtures/string_model.py`) answers tritonclient
//! over HTTP JSON, HTTP binary and gRPC as onnxruntime does, with requests
//! of different string lengths batched together
//! (`tests/python/string_clients.py`); elements ONNX Runtime cannot hold
//! are refused with a 400 naming them while the rest of the batch is
//! answered; a pipeline passes strings to the model's node and back; and a
//! TorchScript model cannot be published with BYTES tensors.

use maas_tests::admin::{call, publish, upload, wait_ready};
use maas_tests::cluster::{workspace_root, NodeSpec, TempDir, ADMIN_TOKEN};
use maas_tests::{python, Cluster};
use reqwest::Method;
use serde_json::{json, Value};

async fn infer(cluster: &Cluster, model: &str, body: &Value) -> (u16, Value) {
    let url = cluster.url(&format!("/v2/models/{model}/infer"));
    let response = cluster.client.post(url).bearer_auth(ADMIN_TOKEN).json(body).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn words_body(words: &[[&str; 2]]) -> Value {
    let features: Vec<f32> = (0..words.len() * 4).map(|i| i as f32 - 3.0).collect();
    json!({"inputs": [
        {"name": "TEXT", "datatype": "BYTES", "shape": [words.len(), 2], "data": words},
        {"name": "FEATURES", "datatype": "FP32", "shape": [words.len(), 4], "data": features}
    ]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_onnx_model_takes_and_returns_strings_through_every_front() {
    let dir = TempDir::new("strings");
    let fixture = workspace_root().join("tests/fixtures/string_model.py");
    python::run(&[fixture.to_str().unwrap(), dir.path().to_str().unwrap()]);
    let cluster = Cluster::builder().nodes(vec![NodeSpec::bare("node-0")]).start().await.unwrap();
    let sha = upload(&cluster, std::fs::read(dir.path().join("model.onnx")).unwrap()).await.unwrap();
    let config: Value = serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).unwrap()).unwrap();

    // LibTorch has no strings: a TorchScript config with BYTES is refused.
    let mut torchscript = config.clone();
    torchscript["name"] = json!("strings-ts");
    torchscript["platform"] = json!("pytorch_libtorch");
    let refused = publish(&cluster, "strings-ts", &torchscript, &sha).await.unwrap();
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(refused.error().contains("is BYTES, which pytorch_libtorch models cannot take"), "{}", refused.body);

    publish(&cluster, "strings", &config, &sha).await.unwrap().ok().unwrap();
    wait_ready(&cluster, "strings").await.unwrap();

    // tritonclient over the three routes, batched, against onnxruntime.
    let script = workspace_root().join("tests/python/string_clients.py");
    let printed = python::run(&[
        script.to_str().unwrap(),
        &cluster.http_addr.to_string(),
        &cluster.grpc_addr.to_string(),
        dir.path().to_str().unwrap(),
        "strings",
        ADMIN_TOKEN,
    ]);
    assert!(printed.contains("12 requests over HTTP JSON, HTTP binary and gRPC equal to onnxruntime"), "{printed}");
    assert!(printed.contains("malformed elements refused"), "{printed}");

    // The batches held several requests each (the clients sent 12 at once).
    let stats = call(&cluster, Method::GET, "/v2/models/strings/stats", None, None).await.unwrap().ok().unwrap();
    let model = &stats["model_stats"][0];
    let (requests, batches) = (model["inference_count"].as_u64().unwrap(), model["execution_count"].as_u64().unwrap());
    assert!(requests >= 12 && batches < requests, "{requests} requests ran in {batches} batches");

    // JSON strings, exactly as sent; a NUL refused with the element named.
    let (status, body) = infer(&cluster, "strings", &words_body(&[["émeu", "nope"], ["", "ok"]])).await;
    assert_eq!(status, 200, "{body}");
    let outputs: Vec<&Value> = body["outputs"].as_array().unwrap().iter().collect();
    let output = |name: &str| outputs.iter().find(|o| o["name"] == name).unwrap().to_owned();
    assert_eq!(output("IDS")["data"], json!([2, -1, -1, 7]));
    assert_eq!(output("TAGGED")["data"], json!(["émeu ✓", "nope ✓", " ✓", "ok ✓"]));
    assert_eq!(output("TAGGED")["shape"], json!([2, 2]));
    assert_eq!(output("LABEL")["shape"], json!([2, 1]));
    let (status, body) = infer(&cluster, "strings", &words_body(&[["a\u{0}b", "ok"]])).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("input 'TEXT' for model 'strings': BYTES element 0 holds a NUL"));

    // A pipeline hands strings to the model's node and returns its strings.
    let pipeline = json!({
        "name": "tagger", "platform": "pipeline", "max_batch_size": 8,
        "inputs": [{"name": "WORDS", "datatype": "BYTES", "shape": [-1, 2]},
                   {"name": "X", "datatype": "FP32", "shape": [-1, 4]}],
        "outputs": [{"name": "OUT", "datatype": "BYTES", "shape": [-1, 2]}],
        "pipeline": {"steps": [
            {"name": "tag", "model": {"model": "strings"},
             "input_map": {"TEXT": "WORDS", "FEATURES": "X"}, "output_map": {"TAGGED": "OUT"}}
        ]}
    });
    let body = serde_json::to_vec(&json!({"config": pipeline})).unwrap();
    call(&cluster, Method::POST, "/v1/models/tagger/versions", Some(body), None).await.unwrap().ok().unwrap();
    wait_ready(&cluster, "tagger").await.unwrap();
    let request = json!({"inputs": [
        {"name": "WORDS", "datatype": "BYTES", "shape": [1, 2], "data": ["über", "fish"]},
        {"name": "X", "datatype": "FP32", "shape": [1, 4], "data": [0.0, 0.0, 0.0, 1.0]}
    ]});
    let (status, body) = infer(&cluster, "tagger", &request).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["outputs"][0]["data"], json!(["über ✓", "fish ✓"]));
}
