//! The gRPC front (Triton's GRPCInferenceService) against a real cluster,
//! with a client generated from the same proto: every method, outputs
//! equal to PyTorch's for every example model, 256 requests in flight on
//! one stream, the HTTP front's errors with matching codes and messages,
//! and deadlines that take a request out of its queue.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use maas_grpc::inference::model_infer_request::{InferInputTensor, InferRequestedOutputTensor};
use maas_grpc::inference::*;
use maas_tests::admin::{deploy_example, wait_ready};
use maas_tests::grpc::{client, outputs, raw_request, with_admin};
use maas_tests::reference::JsonTensor;
use maas_tests::requests::{assert_matches, json_body, post_json};
use maas_tests::{Cluster, NodeSpec, Reference};
use serde_json::json;
use tonic::Code;

const MODELS: &[(&str, u64)] =
    &[("mlp", 1), ("mlp", 2), ("cnn", 1), ("ranker", 1), ("faulty", 1), ("dtypes", 1), ("sleepy", 1)];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_method_and_model_over_grpc() {
    let cluster = Cluster::builder().start().await.unwrap();
    let mut grpc = client(&cluster).await;
    assert!(grpc.server_live(ServerLiveRequest {}).await.unwrap().into_inner().live);
    assert!(grpc.server_ready(ServerReadyRequest {}).await.unwrap().into_inner().ready);
    let metadata = grpc.server_metadata(ServerMetadataRequest {}).await.unwrap().into_inner();
    assert_eq!(metadata.name, "maas");
    assert!(metadata.extensions.iter().any(|e| e == "binary_tensor_data"));

    // Raw contents, every example model and version, against PyTorch.
    for &(model, version) in MODELS {
        let reference = Reference::load(model, version);
        let request = raw_request(model, &version.to_string(), &reference.inputs, &format!("{model}-{version}"));
        let response =
            grpc.model_infer(request).await.unwrap_or_else(|e| panic!("{model} {version}: {e}")).into_inner();
        assert_eq!(response.model_name, model);
        assert_eq!(response.model_version, version.to_string());
        assert_eq!(response.id, format!("{model}-{version}"));
        assert_matches(&outputs(&response), &reference.outputs);
    }

    // Typed contents and a chosen output.
    let ranker = Reference::load("ranker", 1).rows(0, 3);
    let typed = ModelInferRequest {
        model_name: "ranker".into(),
        inputs: vec![
            InferInputTensor {
                name: "ids".into(),
                datatype: "INT64".into(),
                shape: ranker.inputs[0].shape.clone(),
                contents: Some(InferTensorContents {
                    int64_contents: ranker.inputs[0].data.iter().map(|v| v.as_i64().unwrap()).collect(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            InferInputTensor {
                name: "features".into(),
                datatype: "FP32".into(),
                shape: ranker.inputs[1].shape.clone(),
                contents: Some(InferTensorContents {
                    fp32_contents: ranker.inputs[1].data.iter().map(|v| v.as_f64().unwrap() as f32).collect(),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ],
        outputs: vec![InferRequestedOutputTensor { name: "label".into(), ..Default::default() }],
        ..Default::default()
    };
    let response = grpc.model_infer(typed).await.unwrap().into_inner();
    assert_eq!(response.outputs.len(), 1);
    assert_matches(&outputs(&response), &ranker.outputs[1..]);

    // Model metadata, readiness, configuration.
    let mlp = grpc
        .model_metadata(ModelMetadataRequest { name: "mlp".into(), version: String::new() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(mlp.versions, vec!["1".to_string(), "2".to_string()]);
    assert_eq!(mlp.inputs[0].name, "INPUT__0");
    assert_eq!(mlp.inputs[0].shape, vec![-1, 256]);
    assert!(
        grpc.model_ready(ModelReadyRequest { name: "mlp".into(), version: "2".into() })
            .await
            .unwrap()
            .into_inner()
            .ready
    );
    let config = grpc
        .model_config(ModelConfigRequest { name: "mlp".into(), version: String::new() })
        .await
        .unwrap()
        .into_inner()
        .config
        .unwrap();
    assert_eq!(config.max_batch_size, 64);
    assert_eq!(config.input[0].dims, vec![256]);
    assert_eq!(config.input[0].data_type, DataType::TypeFp32 as i32);

    // Statistics count what was sent.
    let stats = grpc
        .model_statistics(ModelStatisticsRequest { name: "ranker".into(), version: "1".into() })
        .await
        .unwrap()
        .into_inner();
    let ranker_stats = &stats.model_stats[0];
    assert_eq!(ranker_stats.name, "ranker");
    assert_eq!(ranker_stats.inference_stats.as_ref().unwrap().success.as_ref().unwrap().count, 2);
    assert_eq!(ranker_stats.inference_count, Reference::load("ranker", 1).batch_rows() as u64 + 3);

    // Shared memory is not supported, and says so.
    let refused = grpc.system_shared_memory_status(SystemSharedMemoryStatusRequest::default()).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unimplemented);
    assert!(refused.message().contains("shared-memory"), "{}", refused.message());
    let refused = grpc.cuda_shared_memory_register(CudaSharedMemoryRegisterRequest::default()).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unimplemented);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repository_methods_need_the_admin_token_and_work() {
    let cluster = Cluster::builder().nodes(vec![NodeSpec::bare("node-0")]).start().await.unwrap();
    deploy_example(&cluster, "mlp", 1, "clf").await.unwrap();
    wait_ready(&cluster, "clf").await.unwrap();
    let mut grpc = client(&cluster).await;
    let denied = grpc.repository_index(RepositoryIndexRequest::default()).await.unwrap_err();
    assert_eq!(denied.code(), Code::Unauthenticated);
    let index = grpc.repository_index(with_admin(RepositoryIndexRequest::default())).await.unwrap().into_inner();
    assert_eq!(index.models.len(), 1);
    assert_eq!((index.models[0].name.as_str(), index.models[0].state.as_str()), ("clf", "READY"));

    let unload = RepositoryModelUnloadRequest { model_name: "clf".into(), ..Default::default() };
    grpc.repository_model_unload(with_admin(unload)).await.unwrap();
    let index = grpc
        .repository_index(with_admin(RepositoryIndexRequest { ready: true, ..Default::default() }))
        .await
        .unwrap()
        .into_inner();
    assert!(index.models.is_empty(), "an unloaded model is listed as ready");
    let row = Reference::load("mlp", 1).rows(0, 1);
    let refused = grpc.model_infer(raw_request("clf", "", &row.inputs, "")).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable);
    assert!(refused.message().contains("is unloaded"), "{}", refused.message());

    let load = RepositoryModelLoadRequest { model_name: "clf".into(), ..Default::default() };
    grpc.repository_model_load(with_admin(load)).await.unwrap();
    wait_ready(&cluster, "clf").await.unwrap();
    let answer = grpc.model_infer(raw_request("clf", "", &row.inputs, "")).await.unwrap().into_inner();
    assert_matches(&outputs(&answer), &row.outputs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_with_256_requests_in_flight_answers_each_by_id() {
    let cluster = Cluster::builder().nodes(vec![NodeSpec::new("node-0", &["mlp"])]).start().await.unwrap();
    let mut grpc = client(&cluster).await;
    let reference = Reference::load("mlp", 1);
    let (sender, receiver) = tokio::sync::mpsc::channel(512);
    let mut expected = HashMap::new();
    for i in 0..256usize {
        let row = reference.rows(i % 64, 1);
        let id = format!("stream-{i}");
        sender.send(raw_request("mlp", "1", &row.inputs, &id)).await.unwrap();
        expected.insert(id, row.outputs);
    }
    // One bad request in the middle fails alone, with its id.
    let mut bad = raw_request("mlp", "1", &reference.rows(0, 1).inputs, "stream-bad");
    bad.inputs[0].shape = vec![1, 3];
    sender.send(bad).await.unwrap();
    let requests = futures_util::stream::unfold(receiver, |mut r| async move { r.recv().await.map(|x| (x, r)) });
    let mut answers = grpc.model_stream_infer(requests).await.unwrap().into_inner();
    drop(sender);
    let mut seen = 0;
    let mut failed = Vec::new();
    while seen + failed.len() < 257 {
        let answer = tokio::time::timeout(Duration::from_secs(30), answers.message())
            .await
            .expect("stream stalled")
            .unwrap()
            .expect("stream ended early");
        let response = answer.infer_response.unwrap();
        if !answer.error_message.is_empty() {
            failed.push((response.id, answer.error_message));
            continue;
        }
        let want = expected.remove(&response.id).unwrap_or_else(|| panic!("unknown or repeated id {}", response.id));
        assert_matches(&outputs(&response), &want);
        seen += 1;
    }
    assert_eq!(seen, 256);
    assert!(expected.is_empty());
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].0, "stream-bad");
    assert!(failed[0].1.contains("INPUT__0"), "{}", failed[0].1);
}

/// The gRPC code the HTTP front's status maps to.
fn code_for(http_status: u16) -> Code {
    match http_status {
        400 => Code::InvalidArgument,
        401 => Code::Unauthenticated,
        404 => Code::NotFound,
        409 => Code::Aborted,
        413 | 429 => Code::ResourceExhausted,
        503 => Code::Unavailable,
        504 => Code::DeadlineExceeded,
        _ => Code::Internal,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_get_the_http_fronts_errors_as_grpc_codes() {
    let cluster = Cluster::builder().nodes(vec![NodeSpec::new("node-0", &["mlp", "faulty"])]).start().await.unwrap();
    let mut grpc = client(&cluster).await;
    let row = Reference::load("mlp", 1).rows(0, 1);
    let tensor = |name: &str, datatype: &str, shape: Vec<i64>, data: Vec<serde_json::Value>| JsonTensor {
        name: name.into(),
        datatype: datatype.into(),
        shape,
        data,
    };
    let cases: Vec<(&str, &str, &str, Vec<JsonTensor>)> = vec![
        ("unknown model", "nope", "", row.inputs.clone()),
        ("unknown version", "mlp", "9", row.inputs.clone()),
        ("wrong shape", "mlp", "", vec![tensor("INPUT__0", "FP32", vec![1, 3], vec![json!(0.0); 3])]),
        ("unknown input", "mlp", "", vec![tensor("INPUT__9", "FP32", vec![1, 256], vec![json!(0.0); 256])]),
        ("wrong datatype", "mlp", "", vec![tensor("INPUT__0", "INT32", vec![1, 256], vec![json!(0); 256])]),
        ("missing input", "mlp", "", vec![]),
        ("too many rows", "mlp", "", vec![tensor("INPUT__0", "FP32", vec![65, 256], vec![json!(0.0); 65 * 256])]),
        ("model raises", "faulty", "", vec![tensor("INPUT__0", "FP32", vec![1, 4], vec![json!(-1.0); 4])]),
    ];
    for (what, model, version, inputs) in cases {
        let path = match version {
            "" => format!("/v2/models/{model}/infer"),
            v => format!("/v2/models/{model}/versions/{v}/infer"),
        };
        let http = post_json(&cluster.client, &cluster.url(&path), &json_body(&inputs, None)).await.unwrap();
        assert!(http.status >= 400, "{what}: HTTP accepted it");
        let error = grpc.model_infer(raw_request(model, version, &inputs, "")).await.unwrap_err();
        assert_eq!(error.code(), code_for(http.status), "{what}: {}", error.message());
        assert_eq!(error.message(), http.error(), "{what}: the two fronts disagree");
    }

    // Faults only gRPC can make: raw contents that disagree with the shape.
    let mut short = raw_request("mlp", "", &row.inputs, "");
    short.raw_input_contents[0] = short.raw_input_contents[0].slice(..100);
    let error = grpc.model_infer(short).await.unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    assert!(error.message().contains("INPUT__0"), "{}", error.message());
    let mut doubled = raw_request("mlp", "", &row.inputs, "");
    doubled.raw_input_contents.push(vec![0u8; 4].into());
    let error = grpc.model_infer(doubled).await.unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    assert!(error.message().contains("raw_input_contents"), "{}", error.message());
    let typed_wrong_count = ModelInferRequest {
        model_name: "mlp".into(),
        inputs: vec![InferInputTensor {
            name: "INPUT__0".into(),
            datatype: "FP32".into(),
            shape: vec![1, 256],
            contents: Some(InferTensorContents { fp32_contents: vec![0.0; 10], ..Default::default() }),
            ..Default::default()
        }],
        ..Default::default()
    };
    let error = grpc.model_infer(typed_wrong_count).await.unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    assert!(error.message().contains("10 elements"), "{}", error.message());
    // The node is unharmed.
    let fine = grpc.model_infer(raw_request("mlp", "1", &row.inputs, "")).await.unwrap().into_inner();
    assert_matches(&outputs(&fine), &row.outputs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_request_leaves_the_queue() {
    let cluster = Cluster::builder().nodes(vec![NodeSpec::new("node-0", &["sleepy"])]).start().await.unwrap();
    let grpc = client(&cluster).await;
    let slow = |i: usize| {
        let input = JsonTensor {
            name: "INPUT__0".into(),
            datatype: "FP32".into(),
            shape: vec![1, 4],
            data: vec![json!(150), json!(i), json!(0), json!(0)],
        };
        raw_request("sleepy", "", &[input], &format!("slow-{i}"))
    };
    // One instance, two batches in flight: two slow requests fill every slot.
    let mut running = Vec::new();
    for i in 0..2 {
        let mut grpc = grpc.clone();
        let request = slow(i);
        running.push(tokio::spawn(async move { grpc.model_infer(request).await }));
        // Lets each slow request reach the coordinator before the next one.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut grpc_short = grpc.clone();
    let mut request = tonic::Request::new(slow(9));
    request.set_timeout(Duration::from_millis(30));
    let sent = Instant::now();
    let error = grpc_short.model_infer(request).await.unwrap_err();
    let waited = sent.elapsed();
    assert!(matches!(error.code(), Code::DeadlineExceeded | Code::Cancelled), "{error:?}");
    assert!(waited < Duration::from_millis(60), "the deadline was not honoured: {waited:?}");
    for task in running {
        task.await.unwrap().unwrap();
    }
    // Time for the expired request to run too if it had stayed queued (a
    // batch of 150 rounds takes well under this): the count below shows it
    // did not.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut grpc = grpc.clone();
    let stats = grpc
        .model_statistics(ModelStatisticsRequest { name: "sleepy".into(), version: String::new() })
        .await
        .unwrap()
        .into_inner();
    let sleepy = &stats.model_stats[0];
    assert_eq!(sleepy.inference_count, 2, "the expired request still ran");
    let inference = sleepy.inference_stats.as_ref().unwrap();
    assert_eq!(inference.fail.as_ref().unwrap().count, 1, "the expired request is counted as failed");
}

/// A name repeated in `outputs` used to encode the output again for each
/// repetition (a 525 KB request returned 155 MB), and an id of any length
/// travelled with its batch and was kept for an hour. Both fronts refuse
/// them now, with the same 400 / INVALID_ARGUMENT and message, and an id
/// at the limit still works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_names_and_oversized_ids_are_refused_on_both_fronts() {
    let cluster = Cluster::builder().nodes(vec![NodeSpec::new("node-0", &["mlp"])]).start().await.unwrap();
    let mut grpc = client(&cluster).await;
    let row = Reference::load("mlp", 1).rows(0, 1);
    let url = cluster.url("/v2/models/mlp/versions/1/infer");
    let longest_id = "i".repeat(256);
    let too_long_id = "i".repeat(257);

    let mut repeated_output = json_body(&row.inputs, None);
    repeated_output["outputs"] = json!(vec![json!({"name": "OUTPUT__0"}); 300]);
    let mut grpc_repeated_output = raw_request("mlp", "1", &row.inputs, "");
    grpc_repeated_output.outputs =
        vec![InferRequestedOutputTensor { name: "OUTPUT__0".into(), ..Default::default() }; 300];
    let doubled_inputs = [row.inputs.clone(), row.inputs.clone()].concat();
    let cases = [
        ("repeated output", repeated_output, grpc_repeated_output, "output 'OUTPUT__0' is requested more than once"),
        (
            "repeated input",
            json_body(&doubled_inputs, None),
            raw_request("mlp", "1", &doubled_inputs, ""),
            "input 'INPUT__0' for model 'mlp' is given more than once",
        ),
        (
            "id too long",
            json_body(&row.inputs, Some(&too_long_id)),
            raw_request("mlp", "1", &row.inputs, &too_long_id),
            "the request id has 257 bytes; at most 256 are accepted",
        ),
    ];
    for (what, http_body, grpc_request, message) in cases {
        let http = post_json(&cluster.client, &url, &http_body).await.unwrap();
        assert_eq!(http.status, 400, "{what}: {}", http.error());
        assert_eq!(http.error(), message, "{what}");
        let error = grpc.model_infer(grpc_request).await.unwrap_err();
        assert_eq!((error.code(), error.message()), (Code::InvalidArgument, message), "{what}");
    }

    let http = post_json(&cluster.client, &url, &json_body(&row.inputs, Some(&longest_id))).await.unwrap();
    assert_matches(&http.answer().unwrap().outputs, &row.outputs);
    let answer = grpc.model_infer(raw_request("mlp", "1", &row.inputs, &longest_id)).await.unwrap().into_inner();
    assert_eq!(answer.id, longest_id);
    assert_matches(&outputs(&answer), &row.outputs);
}
