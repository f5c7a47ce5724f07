//! Models as people export them today: one module converted by
//! `scripts/convert.py` to TorchScript, an AOTInductor package and ONNX,
//! each checked there against eager PyTorch, then published as three
//! versions of one model and answered through HTTP and gRPC within the
//! tolerance the conversion checked.

use std::path::Path;
use std::process::Command;

use maas_tests::admin::{publish, upload, wait_ready};
use maas_tests::cluster::{workspace_root, TempDir};
use maas_tests::grpc::{client, outputs, raw_request};
use maas_tests::requests::{assert_close, json_body, post_json};
use maas_tests::{Cluster, NodeSpec, Reference};
use serde_json::Value;

/// The tolerance `scripts/convert.py` holds FP32 exports to by default.
const ATOL: f64 = 1e-4;
const RTOL: f64 = 1e-4;

/// (artifact, config draft, platform) per format.
const FORMATS: &[(&str, &str, &str)] = &[
    ("model.pt", "config.json", "pytorch_libtorch"),
    ("model.pt2", "config.aoti.json", "torch_aoti"),
    ("model.onnx", "config.onnx.json", "onnxruntime_onnx"),
];

/// Runs the conversion helper; panics with its output when it fails.
/// Conversions run one at a time: two AOTInductor compiles of the same
/// module share an entry of inductor's cache, and one can read the other's
/// half-written files.
fn convert(out: &Path, args: &[&str]) {
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let output = Command::new(workspace_root().join(".venv/bin/python"))
        .current_dir(workspace_root())
        .args(["scripts/convert.py", "--path", "tests/fixtures", "--formats", "torchscript,aoti,onnx", "--out"])
        .arg(out)
        .args(args)
        .output()
        .expect("running scripts/convert.py");
    let shown = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "conversion failed:\n{shown}");
    // Its table: one line per format with the errors it measured.
    for (artifact, _, _) in FORMATS {
        assert!(shown.lines().any(|line| line.contains(&format!(" {artifact} "))), "{shown}");
    }
    println!("{shown}");
}

/// Deploys each format of the converted model with `maas deploy` as a
/// version of `name` (1, 2, 3 in [`FORMATS`] order; the drafts are named
/// after the folder, which is `name`) and waits until each is ready.
async fn publish_formats(cluster: &Cluster, name: &str, dir: &Path) {
    for (index, (artifact, config, platform)) in FORMATS.iter().enumerate() {
        let draft: Value = serde_json::from_str(&std::fs::read_to_string(dir.join(config)).unwrap()).unwrap();
        assert_eq!(draft["platform"], *platform, "the draft names its platform");
        deploy(cluster, name, &dir.join(artifact), &dir.join(config));
        wait_ready(cluster, &format!("{name}/versions/{}", index + 1)).await.unwrap();
    }
}

/// `maas deploy NAME --model ARTIFACT --config CONFIG`, which must succeed.
fn deploy(cluster: &Cluster, name: &str, artifact: &Path, config: &Path) {
    let (artifact, config) = (artifact.to_str().unwrap(), config.to_str().unwrap());
    let run = maas_tests::cli::maas(
        cluster,
        maas_tests::cluster::ADMIN_TOKEN,
        &["deploy", name, "--model", artifact, "--config", config, "--source", "tests"],
    );
    assert!(run.ok, "maas deploy {name} {artifact}: {}{}", run.stdout, run.stderr);
}

/// Asks every version for the reference through HTTP JSON and gRPC and
/// checks the answers and each version's reported platform.
async fn check_formats(cluster: &Cluster, name: &str, reference: &Reference) {
    let mut grpc = client(cluster).await;
    for (index, (_, _, platform)) in FORMATS.iter().enumerate() {
        let version = (index + 1).to_string();
        let url = cluster.url(&format!("/v2/models/{name}/versions/{version}/infer"));
        let answer = post_json(&cluster.client, &url, &json_body(&reference.inputs, None)).await.unwrap();
        let answer = answer.answer().unwrap_or_else(|e| panic!("{platform} over HTTP: {e}"));
        assert_close(&answer.outputs, &reference.outputs, ATOL, RTOL);

        let request = raw_request(name, &version, &reference.inputs, platform);
        let response = grpc.model_infer(request).await.unwrap_or_else(|e| panic!("{platform} over gRPC: {e}"));
        assert_close(&outputs(&response.into_inner()), &reference.outputs, ATOL, RTOL);

        let config_path = format!("/v2/models/{name}/versions/{version}/config");
        let config = maas_tests::admin::call(cluster, reqwest::Method::GET, &config_path, None, None)
            .await
            .unwrap()
            .ok()
            .unwrap();
        assert_eq!(config["platform"], *platform, "{config}");
    }
}

/// TinyNet converted into `out/tiny` in every format, and a cluster of one
/// node without models.
async fn tiny_on_a_cluster(out: &TempDir) -> (std::path::PathBuf, Cluster) {
    let dir = out.path().join("tiny");
    convert(&dir, &["--module", "convert_example:TinyNet", "--input", "x:float32:4,8", "--max-batch-size", "16"]);
    let cluster = Cluster::builder().nodes(vec![NodeSpec::bare("node-0")]).start().await.unwrap();
    (dir, cluster)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_module_in_three_formats_answers_like_eager_pytorch() {
    let out = TempDir::new("formats");
    let (dir, cluster) = tiny_on_a_cluster(&out).await;
    publish_formats(&cluster, "tiny", &dir).await;
    check_formats(&cluster, "tiny", &Reference::read(&dir.join("reference.json"))).await;
}

/// A torchvision ResNet-18 (on 64×64 images, which its adaptive pooling
/// takes) and a two-layer BERT classifier over token ids and a mask, both
/// with random weights, in every format on one node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resnet_and_bert_in_three_formats_answer_like_eager_pytorch() {
    let out = TempDir::new("architectures");
    let (resnet, bert) = (out.path().join("resnet"), out.path().join("bert"));
    convert(
        &resnet,
        &["--module", "architectures:resnet18", "--input", "image:float32:2,3,64,64", "--max-batch-size", "4"],
    );
    convert(
        &bert,
        &[
            "--module",
            "architectures:bert_classifier",
            "--input",
            "input_ids:int64:2,16:1000",
            "--input",
            "attention_mask:int64:2,16:2",
            "--max-batch-size",
            "8",
            "--half",
            "fp16",
        ],
    );
    let cluster = Cluster::builder().nodes(vec![NodeSpec::bare("node-0")]).start().await.unwrap();
    publish_formats(&cluster, "resnet", &resnet).await;
    publish_formats(&cluster, "bert", &bert).await;
    check_formats(&cluster, "resnet", &Reference::read(&resnet.join("reference.json"))).await;
    let reference = Reference::read(&bert.join("reference.json"));
    check_formats(&cluster, "bert", &reference).await;

    // The FP16 variant, as version 4: FP16 logits within half precision of
    // the FP32 module's.
    deploy(&cluster, "bert", &bert.join("model.fp16.pt"), &bert.join("config.torchscript.fp16.json"));
    wait_ready(&cluster, "bert/versions/4").await.unwrap();
    let url = cluster.url("/v2/models/bert/versions/4/infer");
    let answer = post_json(&cluster.client, &url, &json_body(&reference.inputs, None)).await.unwrap().answer().unwrap();
    let mut expected = reference.outputs.clone();
    expected.iter_mut().for_each(|output| output.datatype = "FP16".into());
    assert_close(&answer.outputs, &expected, 1e-2, 1e-2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_format_is_refused_with_the_reason_and_only_an_admin_publishes_native_code() {
    let out = TempDir::new("formats-mismatch");
    let (dir, cluster) = tiny_on_a_cluster(&out).await;
    // An AOTInductor package is native code: a deployer's key may publish
    // the ONNX format of a model, not its package.
    let deployer = maas_tests::admin::create_key(
        &cluster,
        &serde_json::json!({"tenant": "team-a", "role": "deployer", "scope": ["tiny-*"]}),
    )
    .await
    .unwrap()
    .key;
    for (artifact, config, status) in [("model.pt2", "config.aoti.json", 403), ("model.onnx", "config.onnx.json", 201)]
    {
        let sha = upload(&cluster, std::fs::read(dir.join(artifact)).unwrap()).await.unwrap();
        let mut config: Value = serde_json::from_str(&std::fs::read_to_string(dir.join(config)).unwrap()).unwrap();
        config["name"] = "tiny-team".into();
        let body = serde_json::json!({"config": config, "artifact": {"sha256": sha}});
        let answer = maas_tests::admin::call(
            &cluster,
            reqwest::Method::POST,
            "/v1/models/tiny-team/versions",
            Some(serde_json::to_vec(&body).unwrap()),
            Some(&deployer),
        )
        .await
        .unwrap();
        assert_eq!(answer.status, status, "{artifact}: {}", answer.body);
        if status == 403 {
            assert!(answer.error().contains("only an admin key"), "{}", answer.body);
        }
    }

    // Corrupt artifacts: a package cut in half, an ONNX file of noise.
    let package = std::fs::read(dir.join("model.pt2")).unwrap();
    let noise: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    for (bytes, config, expected) in [
        (package[..package.len() / 2].to_vec(), "config.aoti.json", "AOTInductor package"),
        (noise, "config.onnx.json", "ONNX model"),
    ] {
        let sha = upload(&cluster, bytes).await.unwrap();
        let mut config: Value = serde_json::from_str(&std::fs::read_to_string(dir.join(config)).unwrap()).unwrap();
        config["name"] = "corrupt".into();
        let refused = publish(&cluster, "corrupt", &config, &sha).await.unwrap();
        assert_eq!(refused.status, 400, "{}", refused.body);
        assert!(refused.error().contains(expected), "{}", refused.body);
    }
    let registry = maas_tests::admin::describe(&cluster, "corrupt").await.unwrap();
    assert_eq!(registry.status, 404, "nothing was published: {}", registry.body);

    // TorchScript bytes published as an AOTInductor package, and as ONNX.
    let sha = upload(&cluster, std::fs::read(dir.join("model.pt")).unwrap()).await.unwrap();
    for (config, expected) in [("config.aoti.json", "AOTInductor package"), ("config.onnx.json", "ONNX model")] {
        let mut config: Value = serde_json::from_str(&std::fs::read_to_string(dir.join(config)).unwrap()).unwrap();
        config["name"] = "mislabelled".into();
        let refused = publish(&cluster, "mislabelled", &config, &sha).await.unwrap();
        let error = refused.error();
        assert!(error.contains(expected), "{error}");
    }
}

/// The class a classifier's answer picks.
fn argmax(output: &maas_tests::reference::JsonTensor) -> usize {
    let scores: Vec<f64> = output.data.iter().map(|v| v.as_f64().unwrap()).collect();
    (0..scores.len()).max_by(|&a, &b| scores[a].total_cmp(&scores[b])).unwrap()
}

/// A canary from TorchScript to the AOTInductor package of the same
/// module: a split sends requests to both formats, feedback joins the
/// truth to each answer, and the evaluation scores both versions side by
/// side (equal, as the formats compute the same function).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_from_torchscript_to_aotinductor_is_evaluated_beside_it() {
    let out = TempDir::new("formats-canary");
    let (dir, cluster) = tiny_on_a_cluster(&out).await;
    publish_formats(&cluster, "tiny", &dir).await;
    maas_tests::admin::set_split(&cluster, "tiny", &[(1, 1), (2, 1)]).await.unwrap().ok().unwrap();

    let mut served_by = [0usize; 3];
    let mut feedback = Vec::new();
    for i in 0..120u32 {
        let row: Vec<f64> = (0..8).map(|j| f64::from((i * 7 + j * 13) % 17) / 8.0 - 1.0).collect();
        let input = serde_json::json!([{"name": "x", "datatype": "FP32", "shape": [1, 8], "data": row}]);
        let id = format!("canary-{i}");
        let split_answer = post_json(
            &cluster.client,
            &cluster.url("/v2/models/tiny/infer"),
            &serde_json::json!({"id": id, "inputs": input}),
        )
        .await
        .unwrap()
        .answer()
        .unwrap();
        let version: usize = split_answer.header["model_version"].as_str().unwrap().parse().unwrap();
        assert!(version == 1 || version == 2, "the split sends to versions 1 and 2, not {version}");
        served_by[version] += 1;
        // The truth: what TorchScript (version 1) says of the same input.
        let truth = post_json(
            &cluster.client,
            &cluster.url("/v2/models/tiny/versions/1/infer"),
            &serde_json::json!({"inputs": input}),
        )
        .await
        .unwrap()
        .answer()
        .unwrap();
        assert_eq!(argmax(&split_answer.outputs[0]), argmax(&truth.outputs[0]), "request {i} on version {version}");
        feedback.push(serde_json::json!({"id": id, "label": argmax(&truth.outputs[0])}));
    }
    assert!(served_by[1] >= 20 && served_by[2] >= 20, "an even split: {served_by:?}");

    // Sent by the same caller as the requests: feedback joins only a
    // caller's own predictions.
    let joined: Value = cluster
        .client
        .post(cluster.url("/v1/models/tiny/feedback"))
        .json(&serde_json::json!({"feedback": feedback}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(joined["joined"], 120, "{joined}");
    let evaluation = maas_tests::admin::call(&cluster, reqwest::Method::GET, "/v1/models/tiny/evaluation", None, None)
        .await
        .unwrap()
        .ok()
        .unwrap();
    for version in [1, 2] {
        let scores = evaluation["versions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["version"] == version)
            .unwrap_or_else(|| panic!("version {version} is evaluated: {evaluation}"));
        assert_eq!(scores["samples"], served_by[version as usize], "{scores}");
        assert_eq!(scores["accuracy"], 1.0, "{scores}");
    }
}
