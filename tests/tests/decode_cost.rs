//! A request the model would refuse costs no more than its own bytes: names,
//! datatypes and shapes are checked before data is decoded, over HTTP (a
//! 60 MiB JSON body of FP64 for an FP32 model) and gRPC (a 32 MiB message
//! of packed 1-byte UINT64 varints, which prost would turn into 256 MiB);
//! a model may set its own largest request; and the memory a burst of large
//! requests took is given back once they are answered.

use maas_grpc::inference::model_infer_request::InferInputTensor;
use maas_grpc::inference::{InferTensorContents, ModelInferRequest};
use maas_grpc::GrpcInferenceServiceClient;
use maas_tests::admin::{example_artifact, example_config, publish, upload, wait_ready};
use maas_tests::requests::{json_body, post_json};
use maas_tests::wait::wait_until;
use maas_tests::{Cluster, NodeSpec, Reference};
use serde_json::json;

const MIB: u64 = 1 << 20;

/// How much the coordinator's peak resident memory grew while `work` ran, in bytes.
async fn peak_growth<T>(cluster: &Cluster, work: impl std::future::Future<Output = T>) -> (T, u64) {
    let coordinator = cluster.coordinator.as_ref().unwrap();
    let before = coordinator.peak_rss_kib().unwrap();
    let result = work.await;
    let after = coordinator.peak_rss_kib().unwrap();
    (result, (after - before) * 1024)
}

/// A JSON body of `rows` rows of 256 FP64 values, which the FP32 model
/// `mlp` refuses once the body has arrived; two bytes per value.
fn fp64_body(rows: usize) -> String {
    let mut body = String::with_capacity(rows * 256 * 2 + 200);
    body.push_str(&format!(r#"{{"inputs":[{{"name":"INPUT__0","datatype":"FP64","shape":[{rows},256],"data":["#));
    for _ in 0..rows * 256 - 1 {
        body.push_str("1,");
    }
    body.push_str("1]}]}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_data_is_never_decoded() {
    let cluster = Cluster::builder()
        .nodes(vec![NodeSpec::new("node-0", &["mlp"])])
        .coordinator_args(&["--max-body-bytes", &(100 * MIB).to_string()])
        .start()
        .await
        .unwrap();

    // HTTP: 2 bytes of JSON per FP64 value, which would decode to 8.
    let body = fp64_body(120_000);
    let size = body.len() as u64;
    let url = cluster.url("/v2/models/mlp/infer");
    let send = cluster.client.post(&url).header("content-type", "application/json").body(body).send();
    let (answer, growth) = peak_growth(&cluster, send).await;
    let answer = answer.unwrap();
    assert_eq!(answer.status().as_u16(), 400);
    let text = answer.text().await.unwrap();
    assert!(text.contains("unexpected datatype FP64"), "{text}");
    assert!(growth < size * 2, "a {} MiB body refused for its datatype cost {} MiB", size / MIB, growth / MIB);

    // gRPC: 32 Mi one-byte varints for a UINT64 tensor the model does not take.
    let elements = 32 * MIB as usize;
    let request = ModelInferRequest {
        model_name: "mlp".into(),
        inputs: vec![InferInputTensor {
            name: "INPUT__0".into(),
            datatype: "UINT64".into(),
            shape: vec![(elements / 256) as i64, 256],
            contents: Some(InferTensorContents { uint64_contents: vec![1; elements], ..Default::default() }),
            ..Default::default()
        }],
        ..Default::default()
    };
    let size = prost::Message::encoded_len(&request) as u64;
    let mut client = GrpcInferenceServiceClient::connect(format!("http://{}", cluster.grpc_addr))
        .await
        .unwrap()
        .max_encoding_message_size(usize::MAX);
    let (answer, growth) = peak_growth(&cluster, client.model_infer(request)).await;
    let status = answer.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("unexpected datatype UINT64"), "{status:?}");
    assert!(growth < size * 5 / 2, "a {} MiB message refused for its datatype cost {} MiB", size / MIB, growth / MIB);

    // The model is still served.
    let rows = Reference::load("mlp", 1).rows(0, 2);
    post_json(&cluster.client, &url, &json_body(&rows.inputs, None)).await.unwrap().answer().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_sets_its_largest_request() {
    let cluster = Cluster::builder().nodes(vec![NodeSpec::bare("node-0")]).start().await.unwrap();
    let sha = upload(&cluster, example_artifact("mlp", 1)).await.unwrap();
    let mut config = example_config("mlp", "capped");
    config["max_request_bytes"] = json!(16 * 1024);
    publish(&cluster, "capped", &config, &sha).await.unwrap().ok().unwrap();
    wait_ready(&cluster, "capped").await.unwrap();
    let reference = Reference::load("mlp", 1);
    let url = cluster.url("/v2/models/capped/infer");

    let small = reference.rows(0, 1);
    post_json(&cluster.client, &url, &json_body(&small.inputs, None)).await.unwrap().answer().unwrap();
    let large = reference.rows(0, 32);
    let refused = post_json(&cluster.client, &url, &json_body(&large.inputs, None)).await.unwrap();
    assert_eq!(refused.status, 413, "{}", String::from_utf8_lossy(&refused.body));

    let mut client = GrpcInferenceServiceClient::connect(format!("http://{}", cluster.grpc_addr)).await.unwrap();
    let raw = |rows: usize| ModelInferRequest {
        model_name: "capped".into(),
        inputs: vec![InferInputTensor {
            name: "INPUT__0".into(),
            datatype: "FP32".into(),
            shape: vec![rows as i64, 256],
            ..Default::default()
        }],
        raw_input_contents: vec![vec![0u8; rows * 256 * 4].into()],
        ..Default::default()
    };
    client.model_infer(raw(1)).await.unwrap();
    let status = client.model_infer(raw(32)).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_taken_by_a_burst_of_large_requests_is_given_back() {
    let cluster = Cluster::builder()
        .nodes(vec![NodeSpec::new("node-0", &["mlp"])])
        .coordinator_args(&["--max-body-bytes", &(100 * MIB).to_string()])
        .start()
        .await
        .unwrap();
    let url = cluster.url("/v2/models/mlp/infer");
    let rows = Reference::load("mlp", 1).rows(0, 8);
    let small = json_body(&rows.inputs, None);
    for _ in 0..20 {
        post_json(&cluster.client, &url, &small).await.unwrap().answer().unwrap();
    }
    let coordinator = cluster.coordinator.as_ref().unwrap();
    let before = coordinator.rss_kib().unwrap() * 1024;

    // Four 40 MiB bodies at once, each held whole before it is refused.
    let body = bytes::Bytes::from(fp64_body(80_000));
    let sends = (0..4).map(|_| {
        let request = cluster.client.post(&url).header("content-type", "application/json").body(body.clone());
        async move { request.send().await.unwrap().status().as_u16() }
    });
    let statuses = futures_util::future::join_all(sends).await;
    assert_eq!(statuses, vec![400; 4]);
    let peak = coordinator.peak_rss_kib().unwrap() * 1024;
    assert!(
        peak > before + 100 * MIB,
        "the burst never took memory: {} MiB before, peak {} MiB",
        before / MIB,
        peak / MIB
    );

    // The coordinator keeps at most a bounded amount of it.
    let kept = || coordinator.rss_kib().unwrap() * 1024;
    let returned = wait_until("the burst's memory to be given back", std::time::Duration::from_secs(3), async || {
        kept() < before + 64 * MIB
    })
    .await;
    println!("coordinator RSS: {} MiB before, peak {} MiB, {} MiB after", before / MIB, peak / MIB, kept() / MIB);
    returned.unwrap();
    // And serves on.
    post_json(&cluster.client, &url, &small).await.unwrap().answer().unwrap();
}
