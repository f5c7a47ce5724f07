//! Pipelines: raw inputs in, answers out. A text pipeline (a tokenizer made
//! with the `tokenizers` Python package, a small BERT on a node, softmax and
//! the top label) answers through tritonclient over HTTP JSON, HTTP binary
//! and gRPC exactly as the same steps run in Python
//! (`tests/python/pipeline_clients.py`); bad input gets a 400 naming its
//! step while the other requests of the same moment succeed; publishing
//! checks what the steps name.

use std::path::Path;
use std::process::Command;

use maas_tests::admin::{call, create_key, publish, upload, wait_ready};
use maas_tests::cluster::{workspace_root, NodeSpec, TempDir, ADMIN_TOKEN};
use maas_tests::python;
use maas_tests::Cluster;
use reqwest::Method;
use serde_json::{json, Value};

/// Makes the fixture of `kind` in `dir`.
fn fixture(kind: &str, dir: &Path) {
    let script = workspace_root().join("tests/fixtures/pipelines.py");
    python::run(&[script.to_str().unwrap(), kind, dir.to_str().unwrap()]);
}

/// Uploads the fixture's model and publishes it as `name`.
async fn publish_model(cluster: &Cluster, dir: &Path, name: &str) {
    let sha = upload(cluster, std::fs::read(dir.join("model.pt")).unwrap()).await.unwrap();
    let mut config: Value = serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
    config["name"] = json!(name);
    publish(cluster, name, &config, &sha).await.unwrap().ok().unwrap();
    wait_ready(cluster, name).await.unwrap();
}

async fn publish_pipeline(cluster: &Cluster, config: &Value, token: Option<&str>) -> (u16, Value) {
    let name = config["name"].as_str().unwrap();
    let body = serde_json::to_vec(&json!({"config": config})).unwrap();
    let answer = call(cluster, Method::POST, &format!("/v1/models/{name}/versions"), Some(body), token).await.unwrap();
    (answer.status, answer.body)
}

fn text_pipeline(name: &str, tokenizer: &str, labels: &str, truncation: bool) -> Value {
    json!({
        "name": name, "platform": "pipeline", "max_batch_size": 16,
        "inputs": [{"name": "TEXT", "datatype": "BYTES", "shape": [-1, 1]}],
        "outputs": [{"name": "LABEL", "datatype": "BYTES", "shape": [-1, 1]},
                    {"name": "SCORE", "datatype": "FP32", "shape": [-1, 1]}],
        "pipeline": {"steps": [
            {"name": "tokenize", "tokenizer": {"tokenizer": tokenizer, "max_length": 16, "truncation": truncation},
             "input_map": {"text": "TEXT"}, "output_map": {"input_ids": "ids", "attention_mask": "mask"}},
            {"name": "classify", "model": {"model": "bert"},
             "input_map": {"input_ids": "ids", "attention_mask": "mask"}, "output_map": {"logits": "logits"}},
            {"name": "label", "post": {"softmax": true, "top_k": 1, "labels": labels},
             "input_map": {"scores": "logits"}, "output_map": {"top_labels": "LABEL", "top_scores": "SCORE"}}
        ]}
    })
}

/// A JSON request of `texts`, one per row.
fn texts_body(texts: &[&str]) -> Value {
    json!({"inputs": [{"name": "TEXT", "datatype": "BYTES", "shape": [texts.len(), 1], "data": texts}]})
}

async fn infer(cluster: &Cluster, model: &str, body: &Value) -> (u16, Value) {
    let url = cluster.url(&format!("/v2/models/{model}/infer"));
    let response = cluster.client.post(url).bearer_auth(ADMIN_TOKEN).json(body).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_pipeline_answers_as_python_does_and_refuses_bad_input_by_step() {
    let dir = TempDir::new("pipeline-text");
    fixture("text", dir.path());
    let cluster = Cluster::builder().nodes(vec![NodeSpec::bare("node-0")]).start().await.unwrap();
    publish_model(&cluster, dir.path(), "bert").await;
    let tokenizer = upload(&cluster, std::fs::read(dir.path().join("tokenizer.json")).unwrap()).await.unwrap();
    let labels = upload(&cluster, std::fs::read(dir.path().join("labels.txt")).unwrap()).await.unwrap();

    // Publishing checks what the steps name.
    let (status, body) =
        publish_pipeline(&cluster, &text_pipeline("sentiment", &"0".repeat(64), &labels, true), None).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("is not in the store"), "{body}");
    let mut wrong_input = text_pipeline("sentiment", &tokenizer, &labels, true);
    wrong_input["pipeline"]["steps"][1]["input_map"] = json!({"input_ids": "ids", "token_type_ids": "mask"});
    let (status, body) = publish_pipeline(&cluster, &wrong_input, None).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("step 'classify'"), "{body}");
    let outsider = create_key(&cluster, &json!({"tenant": "other", "role": "deployer", "scope": ["sentiment*"]}))
        .await
        .unwrap()
        .key;
    let (status, body) =
        publish_pipeline(&cluster, &text_pipeline("sentiment", &tokenizer, &labels, true), Some(&outsider)).await;
    assert_eq!(status, 403, "a key that cannot call bert published a pipeline calling it: {body}");

    let (status, body) = publish_pipeline(&cluster, &text_pipeline("sentiment", &tokenizer, &labels, true), None).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) =
        publish_pipeline(&cluster, &text_pipeline("sentiment-strict", &tokenizer, &labels, false), None).await;
    assert_eq!(status, 201, "{body}");
    wait_ready(&cluster, "sentiment").await.unwrap();

    // tritonclient over HTTP JSON, HTTP binary and gRPC, against Python.
    let script = workspace_root().join("tests/python/pipeline_clients.py");
    let printed = python::run(&[
        script.to_str().unwrap(),
        "text",
        &cluster.http_addr.to_string(),
        &cluster.grpc_addr.to_string(),
        dir.path().to_str().unwrap(),
        "sentiment",
        ADMIN_TOKEN,
    ]);
    assert_eq!(printed.matches(" labels equal, scores within 1e-5").count(), 3, "{printed}");
    let reference: Value = serde_json::from_str(printed.lines().last().unwrap()).unwrap();

    // A key must reach the pipeline's models as well as the pipeline.
    let pipeline_only =
        create_key(&cluster, &json!({"tenant": "readers", "role": "inference", "scope": ["sentiment"]})).await.unwrap();
    let both = create_key(&cluster, &json!({"tenant": "readers", "role": "inference", "scope": ["sentiment", "bert"]}))
        .await
        .unwrap();
    let url = cluster.url("/v2/models/sentiment/infer");
    for (key, expected) in [(&pipeline_only.key, 403), (&both.key, 200)] {
        let response = cluster.client.post(&url).bearer_auth(key).json(&texts_body(&["ok"])).send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        assert_eq!(status, expected, "{text}");
        assert!(status == 200 || text.contains("pipeline step 'classify'"), "{text}");
    }

    // A text longer than 16 tokens: cut by the pipeline that cuts (the
    // Python reference cut it too), refused by the one that does not.
    let long = "Prices went up this month while the quality of the food went down sharply, and the delivery was \
                late again and nobody answered my messages, which is awful.";
    let (status, body) = infer(&cluster, "sentiment", &texts_body(&[long])).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["outputs"][0]["data"][0], reference["labels"][3]);
    let (status, body) = infer(&cluster, "sentiment-strict", &texts_body(&[long])).await;
    assert_eq!(status, 400, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(error.contains("pipeline step 'tokenize'") && error.contains("more than the 16"), "{error}");

    // A wrong input type is refused before any step; bad text fails its own
    // request only, while good requests sent at the same moment succeed.
    let numbers = json!({"inputs": [{"name": "TEXT", "datatype": "FP32", "shape": [1, 1], "data": [1.0]}]});
    let (status, body) = infer(&cluster, "sentiment", &numbers).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("unexpected datatype FP32"), "{body}");
    let not_utf8 = bad_text_body();
    let requests = (0..12).map(|i| {
        let cluster = &cluster;
        let not_utf8 = not_utf8.clone();
        async move {
            if i % 4 == 0 {
                let url = cluster.url("/v2/models/sentiment/infer");
                let response = cluster
                    .client
                    .post(url)
                    .bearer_auth(ADMIN_TOKEN)
                    .header("Inference-Header-Content-Length", not_utf8.1.to_string())
                    .body(not_utf8.0)
                    .send()
                    .await
                    .unwrap();
                (i, response.status().as_u16(), response.text().await.unwrap())
            } else {
                let (status, body) = infer(cluster, "sentiment", &texts_body(&["neither good nor bad", "ok"])).await;
                (i, status, body.to_string())
            }
        }
    });
    for (i, status, body) in futures_util::future::join_all(requests).await {
        if i % 4 == 0 {
            assert_eq!(status, 400, "{body}");
            assert!(body.contains("pipeline step 'tokenize'") && body.contains("not UTF-8"), "{body}");
        } else {
            assert_eq!(status, 200, "{body}");
            let answer: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(answer["outputs"][0]["data"], json!([reference["labels"][2], reference["labels"][4]]));
        }
    }

    // The pipeline and its model step are each counted as requests.
    let stats = call(&cluster, Method::GET, "/v2/models/bert/stats", None, None).await.unwrap().ok().unwrap();
    let bert = stats["model_stats"][0]["inference_stats"]["success"]["count"].as_u64().unwrap();
    assert!(bert >= 3 + 1 + 9, "bert answered {bert} requests");
}

/// A binary request whose one text is not UTF-8; returns the body and its
/// JSON length.
fn bad_text_body() -> (Vec<u8>, usize) {
    let element: &[u8] = &[0xff, 0xfe, b'x'];
    let header = json!({"inputs": [{"name": "TEXT", "datatype": "BYTES", "shape": [1, 1],
                                     "parameters": {"binary_data_size": 4 + element.len()}}]});
    let mut body = serde_json::to_vec(&header).unwrap();
    let json_len = body.len();
    body.extend_from_slice(&(element.len() as u32).to_le_bytes());
    body.extend_from_slice(element);
    (body, json_len)
}

fn image_pipeline(labels: &str) -> Value {
    json!({
        "name": "classify-image", "platform": "pipeline", "max_batch_size": 8,
        "inputs": [{"name": "IMAGE", "datatype": "BYTES", "shape": [-1, 1]}],
        "outputs": [{"name": "LABELS", "datatype": "BYTES", "shape": [-1, 5]},
                    {"name": "SCORES", "datatype": "FP32", "shape": [-1, 5]},
                    {"name": "PIXELS", "datatype": "FP32", "shape": [-1, 3, 224, 224]}],
        "pipeline": {"steps": [
            {"name": "decode", "image": {"resize": 256, "crop": 224},
             "input_map": {"image": "IMAGE"}, "output_map": {"pixels": "PIXELS"}},
            {"name": "classify", "model": {"model": "resnet"},
             "input_map": {"pixels": "PIXELS"}, "output_map": {"logits": "logits"}},
            {"name": "top5", "post": {"softmax": true, "top_k": 5, "labels": labels},
             "input_map": {"scores": "logits"}, "output_map": {"top_labels": "LABELS", "top_scores": "SCORES"}}
        ]}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_pipeline_answers_as_torchvision_within_its_tolerance() {
    let dir = TempDir::new("pipeline-image");
    fixture("image", dir.path());
    let cluster = Cluster::builder().nodes(vec![NodeSpec::bare("node-0")]).start().await.unwrap();
    publish_model(&cluster, dir.path(), "resnet").await;
    let labels = upload(&cluster, std::fs::read(dir.path().join("labels.txt")).unwrap()).await.unwrap();
    let (status, body) = publish_pipeline(&cluster, &image_pipeline(&labels), None).await;
    assert_eq!(status, 201, "{body}");

    let script = workspace_root().join("tests/python/pipeline_clients.py");
    let printed = python::run(&[
        script.to_str().unwrap(),
        "image",
        &cluster.http_addr.to_string(),
        &cluster.grpc_addr.to_string(),
        dir.path().to_str().unwrap(),
        "classify-image",
        ADMIN_TOKEN,
    ]);
    println!("{printed}");
    assert_eq!(printed.matches("top-1 equal, top-5 within").count(), 2, "{printed}");

    // A bad image fails its own request with a 400 naming the step; a good
    // one sent with it succeeds.
    let good = std::fs::read(dir.path().join("image0.jpg")).unwrap();
    // A JPEG's first bytes, then zeros: its format is known, its data not.
    let mut cut = good[..20].to_vec();
    cut.extend_from_slice(&[0u8; 500]);
    let send = |image: Vec<u8>| {
        let cluster = &cluster;
        async move {
            let header = json!({"inputs": [{"name": "IMAGE", "datatype": "BYTES", "shape": [1, 1],
                                            "parameters": {"binary_data_size": 4 + image.len()}}],
                                "outputs": [{"name": "LABELS"}]});
            let mut body = serde_json::to_vec(&header).unwrap();
            let json_len = body.len();
            body.extend_from_slice(&(image.len() as u32).to_le_bytes());
            body.extend_from_slice(&image);
            let response = cluster
                .client
                .post(cluster.url("/v2/models/classify-image/infer"))
                .bearer_auth(ADMIN_TOKEN)
                .header("Inference-Header-Content-Length", json_len.to_string())
                .body(body)
                .send()
                .await
                .unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    let (bad, fine, garbage) = tokio::join!(send(cut), send(good), send(b"GIF89a not a picture".to_vec()));
    assert_eq!(bad.0, 400, "{}", bad.1);
    assert!(bad.1.contains("pipeline step 'decode'"), "{}", bad.1);
    assert_eq!(garbage.0, 400, "{}", garbage.1);
    assert!(garbage.1.contains("pipeline step 'decode'"), "{}", garbage.1);
    assert_eq!(fine.0, 200, "{}", fine.1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_larger_than_any_node_is_served_as_stages_on_several_nodes() {
    let dir = TempDir::new("pipeline-split");
    // Nodes of 26 MB each; the stack of blocks needs 34 MB (its 17 MB of
    // weights and what a load takes beside them). The cut aims at 24 MB per
    // stage: the load's measured cost can be a little above the script's
    // estimate (twice the weights).
    let budget = "24000000";
    let node_memory = "26000000";
    let node =
        |name: &str| NodeSpec { args: vec!["--memory-bytes".into(), node_memory.into()], ..NodeSpec::bare(name) };
    let cluster = Cluster::builder()
        .with_membership()
        .nodes(vec![node("node-0"), node("node-1"), node("node-2")])
        .start()
        .await
        .unwrap();
    let script = workspace_root().join("scripts/split_model.py");
    let out = dir.path().join("deep");
    let output = Command::new(workspace_root().join(".venv/bin/python"))
        .args([script.to_str().unwrap(), "--module", "architectures:block_stack", "--path"])
        .arg(workspace_root().join("tests/fixtures"))
        .args(["--input", "x:float32:2,1024", "--name", "deep", "--node-memory", budget, "--micro-batch-rows", "4"])
        .arg("--out")
        .arg(&out)
        .args(["--deploy", "--maas"])
        .arg(maas_tests::cluster::binary("maas"))
        .env("MAAS_URL", cluster.url(""))
        .env("MAAS_ADMIN_TOKEN", ADMIN_TOKEN)
        .output()
        .unwrap();
    let printed = format!("{}\n{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{printed}");
    assert!(printed.contains("2 stages") && printed.contains("pipeline published: deep version 1"), "{printed}");
    for stage in ["deep-stage0", "deep-stage1"] {
        wait_ready(&cluster, stage).await.unwrap();
    }

    // The stages sit on different nodes: none has room for both.
    let view = call(&cluster, Method::GET, "/v1/cluster", None, None).await.unwrap().ok().unwrap();
    let holders = |model: &str| -> Vec<String> {
        view["placement"]["assignments"][format!("{model}/1")]["nodes"]
            .as_array()
            .map(|nodes| nodes.iter().filter_map(|n| n.as_str().map(str::to_string)).collect())
            .unwrap_or_default()
    };
    let (first, second) = (holders("deep-stage0"), holders("deep-stage1"));
    assert!(!first.is_empty() && !second.is_empty(), "{view:#}");
    assert!(first.iter().all(|n| !second.contains(n)), "stages share a node: {first:?} {second:?}");

    // The pipeline answers as the unsplit module, in micro-batches of 4.
    let reference = maas_tests::Reference::read(&out.join("reference.json"));
    let body = maas_tests::requests::json_body(&reference.inputs, None);
    let answer = maas_tests::requests::post_json(&cluster.client, &cluster.url("/v2/models/deep/infer"), &body)
        .await
        .unwrap()
        .answer()
        .unwrap();
    maas_tests::requests::assert_close(&answer.outputs, &reference.outputs, 1e-4, 1e-4);

    // The node holding the second stage dies under load: requests fail
    // with a 503 naming the step (as the README says) until placement has
    // loaded the stage on the spare node, then every request succeeds.
    let mut cluster = cluster;
    let victim = second[0].clone();
    let victim_index = cluster.nodes.iter().position(|n| n.spec.name == victim).unwrap();
    cluster.kill_node(victim_index);
    let killed = std::time::Instant::now();
    let url = cluster.url("/v2/models/deep/infer");
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    let mut last_error = String::new();
    let recovered = loop {
        assert!(killed.elapsed() < std::time::Duration::from_secs(60), "no recovery: {statuses:?} {last_error}");
        let answer = maas_tests::requests::post_json(&cluster.client, &url, &body).await.unwrap();
        *statuses.entry(answer.status).or_default() += 1;
        if answer.status == 200 {
            maas_tests::requests::assert_close(&answer.answer().unwrap().outputs, &reference.outputs, 1e-4, 1e-4);
            break killed.elapsed();
        }
        last_error = answer.error();
        assert_eq!(answer.status, 503, "{last_error}");
        assert!(last_error.contains("pipeline step 'stage1'"), "{last_error}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    println!("stage 1's node killed: served again after {recovered:?}; statuses {statuses:?}; {last_error}");
    for _ in 0..10 {
        let answer = maas_tests::requests::post_json(&cluster.client, &url, &body).await.unwrap();
        assert_eq!(answer.status, 200, "{}", answer.error());
    }

    // The unsplit module fits no node: placement says why.
    let sha = upload(&cluster, std::fs::read(out.join("whole/model.pt")).unwrap()).await.unwrap();
    let mut whole: Value = serde_json::from_slice(&std::fs::read(out.join("whole/config.json")).unwrap()).unwrap();
    whole["name"] = json!("deep-whole");
    let published = publish(&cluster, "deep-whole", &whole, &sha).await.unwrap();
    assert_eq!(published.status, 201, "{:?}", published.body);
    maas_tests::wait::wait_until("deep-whole reported unplaceable", std::time::Duration::from_secs(10), async || {
        let view = call(&cluster, Method::GET, "/v1/cluster", None, None).await.unwrap().body;
        view["placement"]["assignments"]["deep-whole/1"]["unplaceable"].as_str().is_some_and(|r| r.contains("needs"))
    })
    .await
    .unwrap();
}
