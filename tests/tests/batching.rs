//! Dynamic batching: concurrent single-row requests share batches yet each
//! gets exactly its own row back, and a flood past the queue bound gets
//! 503s while the coordinator's memory stays bounded.

use maas_tests::cluster::metric_sum;
use maas_tests::requests::{assert_matches, binary_body, json_body, post_binary, post_json};
use maas_tests::{Cluster, NodeSpec, Reference};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_rows_are_batched_without_cross_talk() {
    let cluster = Cluster::builder().nodes(vec![NodeSpec::new("node-0", &["mlp"])]).start().await.unwrap();
    let reference = Reference::load("mlp", 1);
    assert_eq!(reference.batch_rows(), 64);
    let url = cluster.url("/v2/models/mlp/versions/1/infer");
    for round in 0..10 {
        let calls: Vec<_> = (0..64)
            .map(|row| {
                let client = cluster.client.clone();
                let url = url.clone();
                let single = reference.rows(row, 1);
                tokio::spawn(async move {
                    let answer = if (row + round) % 2 == 0 {
                        post_json(&client, &url, &json_body(&single.inputs, None)).await
                    } else {
                        let (body, json_len) = binary_body(&single.inputs, true);
                        post_binary(&client, &url, body, json_len).await
                    };
                    (row, single, answer.unwrap())
                })
            })
            .collect();
        for call in calls {
            let (row, single, answer) = call.await.unwrap();
            let outputs = answer.answer().unwrap_or_else(|e| panic!("row {row}: {e}")).outputs;
            assert_matches(&outputs, &single.outputs);
        }
    }
    let metrics = cluster.coordinator_metrics().await.unwrap();
    let labels = [("model", "mlp"), ("version", "1")];
    let batches = metric_sum(&metrics, "maas_inference_batch_size_count", &labels);
    let rows = metric_sum(&metrics, "maas_inference_batch_size_sum", &labels);
    let single_row_batches = metric_sum(&metrics, "maas_inference_batch_size_bucket", &[("model", "mlp"), ("le", "1")]);
    assert_eq!(rows, 640.0, "every row is counted once");
    assert!(batches < rows, "{batches} batches for {rows} rows: no batch held more than one row");
    assert!(single_row_batches < batches, "every batch had one row");
    assert_eq!(metric_sum(&metrics, "maas_inference_requests_total", &[("model", "mlp"), ("outcome", "ok")]), 640.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_past_the_queue_bound_gets_503s() {
    let cluster = Cluster::builder()
        .nodes(vec![NodeSpec::new("node-0", &["cnn"])])
        .coordinator_args(&["--max-queue", "8", "--batches-per-instance", "1"])
        .start()
        .await
        .unwrap();
    let reference = Reference::load("cnn", 1);
    let url = cluster.url("/v2/models/cnn/infer");
    let rss_before = cluster.coordinator().rss_kib().expect("coordinator RSS");
    let mut overloaded = 0;
    let mut served = 0;
    for _wave in 0..4 {
        let calls: Vec<_> = (0..256)
            .map(|i| {
                let client = cluster.client.clone();
                let url = url.clone();
                let single = reference.rows(i % reference.batch_rows(), 1);
                tokio::spawn(async move {
                    let (body, json_len) = binary_body(&single.inputs, true);
                    (single, post_binary(&client, &url, body, json_len).await.unwrap())
                })
            })
            .collect();
        for call in calls {
            let (single, answer) = call.await.unwrap();
            match answer.status {
                200 => {
                    assert_matches(&answer.answer().unwrap().outputs, &single.outputs);
                    served += 1;
                }
                503 => {
                    assert!(answer.error().contains("overloaded"), "{}", answer.error());
                    assert_eq!(answer.retry_after.as_deref(), Some("1"));
                    overloaded += 1;
                }
                other => panic!("unexpected status {other}: {}", answer.error()),
            }
        }
    }
    assert!(overloaded > 0, "no request was refused: the queue is not bounded");
    assert!(served > 0, "nothing was served during the flood");
    let rss_after = cluster.coordinator().rss_kib().expect("coordinator RSS");
    assert!(
        rss_after < rss_before + 128 * 1024,
        "coordinator grew from {rss_before} KiB to {rss_after} KiB during the flood"
    );
    let metrics = cluster.coordinator_metrics().await.unwrap();
    assert_eq!(
        metric_sum(&metrics, "maas_inference_requests_total", &[("model", "cnn"), ("outcome", "overloaded")]),
        overloaded as f64
    );

    // The flood is over: requests are served again.
    let single = reference.rows(3, 1);
    let answer = post_json(&cluster.client, &url, &json_body(&single.inputs, None)).await.unwrap();
    assert_matches(&answer.answer().unwrap().outputs, &single.outputs);
}
