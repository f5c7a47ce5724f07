//! Bad requests get a 4xx naming the problem and lose nothing: the next
//! valid request succeeds, and a model that raises fails only its own
//! requests.

use maas_tests::cluster::metric_sum;
use maas_tests::requests::{assert_matches, binary_body, json_body, post, post_binary, post_json, HEADER_LENGTH};
use maas_tests::{Cluster, NodeSpec, Reference};
use serde_json::json;

async fn assert_still_serving(cluster: &Cluster) {
    let reference = Reference::load("mlp", 1).rows(5, 1);
    let answer = post_json(
        &cluster.client,
        &cluster.url("/v2/models/mlp/versions/1/infer"),
        &json_body(&reference.inputs, None),
    )
    .await
    .unwrap();
    assert_matches(&answer.answer().unwrap().outputs, &reference.outputs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_clear_errors() {
    let cluster = Cluster::builder()
        .nodes(vec![NodeSpec::new("node-0", &["mlp", "faulty"])])
        .coordinator_args(&["--max-body-bytes", "1048576"])
        .start()
        .await
        .unwrap();
    let url = cluster.url("/v2/models/mlp/versions/1/infer");
    let row = Reference::load("mlp", 1).rows(0, 1);
    let input = |shape: serde_json::Value, datatype: &str, data: serde_json::Value| json!({"inputs": [{"name": "INPUT__0", "shape": shape, "datatype": datatype, "data": data}]});
    let good_data = json!(row.inputs[0].data);

    let json_cases = [
        (
            "wrong shape",
            input(json!([1, 3]), "FP32", json!([1, 2, 3])),
            400,
            "unexpected shape for input 'INPUT__0' for model 'mlp'. Expected [-1,256], got [1,3]",
        ),
        (
            "element count",
            input(json!([1, 256]), "FP32", json!([1, 2, 3])),
            400,
            "input 'INPUT__0' has 3 elements, but its shape [1,256] needs 256",
        ),
        (
            "unknown input",
            json!({"inputs": [{"name": "WRONG", "shape": [1, 256], "datatype": "FP32", "data": good_data}]}),
            400,
            "unexpected inference input 'WRONG' for model 'mlp'",
        ),
        (
            "wrong datatype",
            input(json!([1, 256]), "INT64", json!(vec![1; 256])),
            400,
            "unexpected datatype INT64 for input 'INPUT__0' for model 'mlp'. Expected FP32",
        ),
        ("unknown datatype", input(json!([1, 256]), "FLOAT", good_data.clone()), 400, "invalid datatype 'FLOAT'"),
        (
            "batch too large",
            input(json!([65, 256]), "FP32", json!(vec![0.5; 65 * 256])),
            400,
            "exceeds the maximum batch size 64",
        ),
        ("missing input", json!({"inputs": []}), 400, "missing input 'INPUT__0' for model 'mlp'"),
        (
            "not a number",
            input(json!([1, 256]), "FP32", json!(vec!["x"; 256])),
            400,
            "element 0 of input 'INPUT__0' is not a valid FP32",
        ),
    ];
    for (case, body, status, message) in json_cases {
        let answer = post_json(&cluster.client, &url, &body).await.unwrap();
        assert_eq!(answer.status, status, "{case}: {}", answer.error());
        assert!(answer.error().contains(message), "{case}: {:?} lacks {message:?}", answer.error());
        assert_still_serving(&cluster).await;
    }

    // Invalid JSON.
    let answer = post(&cluster.client, &url, b"{\"inputs\": [".to_vec(), &[]).await.unwrap();
    assert_eq!(answer.status, 400);
    assert!(answer.error().contains("failed to parse the request JSON"), "{}", answer.error());
    assert_still_serving(&cluster).await;

    // A binary body cut short.
    let (mut body, json_len) = binary_body(&row.inputs, false);
    body.truncate(body.len() - 10);
    let answer = post_binary(&cluster.client, &url, body, json_len).await.unwrap();
    assert_eq!(answer.status, 400);
    assert!(
        answer.error().contains("truncated binary body: input 'INPUT__0' needs 1024 bytes, 1014 remain"),
        "{}",
        answer.error()
    );
    assert_still_serving(&cluster).await;

    // A header length past the end of the body.
    let (body, _) = binary_body(&row.inputs, false);
    let too_long = body.len() + 100;
    let answer = post_binary(&cluster.client, &url, body, too_long).await.unwrap();
    assert_eq!(answer.status, 400);
    assert!(answer.error().contains("is larger than the request body"), "{}", answer.error());
    assert_still_serving(&cluster).await;

    // A binary tensor whose size does not match its shape.
    let (mut body, json_len) = binary_body(&row.inputs, false);
    let header = String::from_utf8(body[..json_len].to_vec()).unwrap().replace("1024", "1020");
    body.splice(..json_len, header.bytes());
    body.truncate(body.len() - 4);
    let answer = post_binary(&cluster.client, &url, body, header.len()).await.unwrap();
    assert_eq!(answer.status, 400);
    assert!(
        answer.error().contains("has 1020 bytes of data, but shape [1,256] of FP32 needs 1024"),
        "{}",
        answer.error()
    );
    assert_still_serving(&cluster).await;

    // Unknown model and version.
    let answer = post_json(&cluster.client, &cluster.url("/v2/models/nope/infer"), &json!({})).await.unwrap();
    assert_eq!((answer.status, answer.error()), (404, "Request for unknown model: 'nope' is not found".to_string()));
    let answer =
        post_json(&cluster.client, &cluster.url("/v2/models/mlp/versions/99/infer"), &json_body(&row.inputs, None))
            .await
            .unwrap();
    assert_eq!(answer.status, 404);
    assert!(answer.error().contains("'mlp' version 99 is not found"), "{}", answer.error());

    // A body over the limit, declared and streamed.
    let answer = post(&cluster.client, &url, vec![b' '; 2 << 20], &[]).await.unwrap();
    assert_eq!(answer.status, 413);
    assert!(answer.error().contains("exceeds the limit of 1048576 bytes"), "{}", answer.error());
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = (0..40).map(|_| Ok(vec![b' '; 64 << 10])).collect();
    let streamed = cluster
        .client
        .post(&url)
        .header(HEADER_LENGTH, "10")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(chunks)))
        .send()
        .await;
    if let Ok(response) = streamed {
        assert_eq!(response.status().as_u16(), 413);
    }
    assert_still_serving(&cluster).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_model_fails_alone() {
    let cluster = Cluster::builder().nodes(vec![NodeSpec::new("node-0", &["mlp", "faulty"])]).start().await.unwrap();
    let url = cluster.url("/v2/models/faulty/infer");
    let bad =
        json!({"inputs": [{"name": "INPUT__0", "shape": [1, 4], "datatype": "FP32", "data": [1.0, -2.0, 3.0, 4.0]}]});
    let answer = post_json(&cluster.client, &url, &bad).await.unwrap();
    assert_eq!(answer.status, 500);
    assert!(answer.error().contains("model 'faulty' failed"), "{}", answer.error());
    assert!(answer.error().contains("negative input is not allowed"), "{}", answer.error());
    assert_still_serving(&cluster).await;

    // Good and bad requests at once: they share batches, yet every good
    // one gets its own outputs and every bad one its own error. Rounds go
    // on until the node reports a batch that failed only in part.
    let reference = Reference::load("faulty", 1);
    let node_metrics = format!("http://{}/metrics", cluster.nodes[0].metrics_addr);
    let partial_batches = || async {
        let text = cluster.client.get(&node_metrics).send().await.unwrap().text().await.unwrap();
        metric_sum(&text, "maas_node_batches_total", &[("model", "faulty"), ("outcome", "partial")])
    };
    for _round in 0..50 {
        let mut calls = Vec::new();
        for i in 0..16 {
            let client = cluster.client.clone();
            let url = url.clone();
            let good = reference.rows(i % reference.batch_rows(), 1);
            let bad = bad.clone();
            calls.push(tokio::spawn(async move {
                if i % 4 == 0 {
                    (i, None, post_json(&client, &url, &bad).await.unwrap())
                } else {
                    let body = json_body(&good.inputs, None);
                    (i, Some(good), post_json(&client, &url, &body).await.unwrap())
                }
            }));
        }
        for call in calls {
            let (i, good, answer) = call.await.unwrap();
            match good {
                Some(reference) => assert_matches(
                    &answer.answer().unwrap_or_else(|e| panic!("request {i}: {e}")).outputs,
                    &reference.outputs,
                ),
                None => {
                    assert_eq!(answer.status, 500, "request {i}");
                    assert!(answer.error().contains("negative input"), "{}", answer.error());
                }
            }
        }
        if partial_batches().await > 0.0 {
            break;
        }
    }
    assert!(partial_batches().await > 0.0, "no batch ever mixed good and bad requests");
    assert_still_serving(&cluster).await;
}
