//! Weaknesses a review found by attacking a running cluster, each closed
//! and kept closed: a client's timeout cannot hold a batch slot for as long
//! as it asks, a trickled body cannot hold a connection, the gRPC front
//! advertises a stream limit and holds a bounded number of connections, a
//! config cannot make a trial load build unbounded instances, a name a
//! node serves from its repository cannot be published over, and a node
//! never trusts a cached artifact that no longer matches its digest; and
//! `/metrics`, which names every model and tenant, can ask for a token, on
//! the coordinator and on nodes (which refuse to expose it beyond loopback
//! without one).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use maas_grpc::inference::ServerLiveRequest;
use maas_grpc::GrpcInferenceServiceClient;
use maas_tests::admin::{call, example_artifact, example_config, upload};
use maas_tests::{Cluster, NodeSpec};
use reqwest::Method;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_and_connections_are_bounded() {
    let cluster = Cluster::builder()
        .nodes(vec![NodeSpec::new("node-0", &["sleepy", "mlp"])])
        .coordinator_args(&["--request-timeout-ms", "20", "--max-request-timeout-ms", "40", "--max-connections", "8"])
        .start()
        .await
        .unwrap();

    // A timeout of an hour is cut to the server's 40 ms on a slow batch.
    let slow = json!({"inputs": [{"name": "INPUT__0", "shape": [1, 4], "datatype": "FP32", "data": [200.0, 0, 0, 0]}],
                      "parameters": {"timeout": 3_600_000_000u64}});
    let started = Instant::now();
    let answer = cluster.client.post(cluster.url("/v2/models/sleepy/infer")).json(&slow).send().await.unwrap();
    let (status, waited) = (answer.status().as_u16(), started.elapsed());
    assert_eq!(status, 504, "{}", answer.text().await.unwrap());
    assert!(waited < Duration::from_secs(3), "the request waited {waited:?}");

    // A body trickled a byte a second is cut off after the grace.
    let addr = cluster.http_addr;
    let trickled = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_millis(900))).unwrap();
        write!(stream, "POST /v2/models/mlp/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n").unwrap();
        let started = Instant::now();
        let mut answer = Vec::new();
        while started.elapsed() < Duration::from_secs(20) {
            if stream.write_all(b" ").is_err() {
                break;
            }
            let mut buf = [0u8; 4096];
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    answer.extend_from_slice(&buf[..n]);
                    break;
                }
                Err(_) => {}
            }
        }
        (String::from_utf8_lossy(&answer).into_owned(), started.elapsed())
    })
    .await
    .unwrap();
    assert!(trickled.0.contains("too slowly"), "after {:?}: {}", trickled.1, trickled.0);
    assert!(trickled.1 < Duration::from_secs(10), "the trickle held its connection for {:?}", trickled.1);

    // gRPC tells clients how many streams one connection may open.
    let grpc = cluster.grpc_addr;
    let advertised = tokio::task::spawn_blocking(move || max_concurrent_streams(grpc)).await.unwrap();
    assert_eq!(advertised, Some(256));

    // Eight connections held open leave a ninth client waiting; one closed
    // lets it in.
    let held: Vec<TcpStream> = (0..8).map(|_| TcpStream::connect(grpc).unwrap()).collect();
    let live = || async {
        let mut client = GrpcInferenceServiceClient::connect(format!("http://{grpc}")).await?;
        client.server_live(ServerLiveRequest {}).await?;
        anyhow::Ok(())
    };
    let waited = tokio::time::timeout(Duration::from_millis(1500), live()).await;
    assert!(waited.is_err(), "a ninth connection was served past the limit of eight");
    drop(held);
    tokio::time::timeout(Duration::from_secs(10), live()).await.expect("served once a place is free").unwrap();
}

/// The `SETTINGS_MAX_CONCURRENT_STREAMS` an HTTP/2 server at `addr` sends.
fn max_concurrent_streams(addr: std::net::SocketAddr) -> Option<u32> {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    stream.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").unwrap();
    stream.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).unwrap(); // an empty SETTINGS frame
    let mut header = [0u8; 9];
    stream.read_exact(&mut header).unwrap();
    assert_eq!(header[3], 4, "the server's first frame is SETTINGS");
    let length = u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize;
    let mut payload = vec![0u8; length];
    stream.read_exact(&mut payload).unwrap();
    payload
        .chunks_exact(6)
        .find(|entry| u16::from_be_bytes([entry[0], entry[1]]) == 3)
        .map(|entry| u32::from_be_bytes([entry[2], entry[3], entry[4], entry[5]]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_is_refused_when_it_would_cost_or_break_a_node() {
    let cluster = Cluster::builder().nodes(vec![NodeSpec::new("node-0", &["mlp"])]).start().await.unwrap();
    let sha = upload(&cluster, example_artifact("mlp", 1)).await.unwrap();
    let publish = async |name: &str, config: serde_json::Value| {
        let body = serde_json::to_vec(&json!({"config": config, "artifact": {"sha256": sha}})).unwrap();
        call(&cluster, Method::POST, &format!("/v1/models/{name}/versions"), Some(body), None).await
    };
    // Thousands of instances (each a thread and a copy) are refused.
    let mut greedy = example_config("mlp", "greedy");
    greedy["instance_count"] = json!(5000);
    let refused = publish("greedy", greedy).await.unwrap();
    assert_eq!(refused.status, 400, "{:?}", refused.body);
    assert!(refused.error().contains("instance_count"), "{}", refused.error());
    let mut warm = example_config("mlp", "warm");
    warm["warmup_batch_sizes"] = json!(vec![64; 1000]);
    assert_eq!(publish("warm", warm).await.unwrap().status, 400);
    // The node serves "mlp" from its repository: publishing over it is refused.
    let over = publish("mlp", example_config("mlp", "mlp")).await.unwrap();
    assert_eq!(over.status, 409, "{:?}", over.body);
    assert!(over.error().contains("model repository"), "{}", over.error());
    let ready = cluster.client.get(cluster.url("/v2/models/mlp/ready")).send().await.unwrap();
    assert_eq!(ready.status().as_u16(), 200, "the repository's mlp is still served");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_artifact_changed_on_disk_is_fetched_again() {
    let mut cluster = Cluster::builder().nodes(vec![NodeSpec::bare("node-0")]).start().await.unwrap();
    maas_tests::admin::deploy_example(&cluster, "mlp", 1, "clf").await.unwrap();
    maas_tests::admin::wait_ready(&cluster, "clf").await.unwrap();
    let sha = upload(&cluster, example_artifact("mlp", 1)).await.unwrap();
    let cached = cluster.node_data_dir("node-0").join("artifacts").join(format!("{sha}.pt"));
    assert!(cached.exists(), "the node cached {}", cached.display());
    // Someone swaps the cached file for another model; the node restarts.
    cluster.kill_node(0);
    std::fs::write(&cached, example_artifact("mlp", 2)).unwrap();
    cluster.restart_node(0).await.unwrap();
    let reference = maas_tests::Reference::load("mlp", 1).rows(0, 2);
    let body = maas_tests::requests::json_body(&reference.inputs, None);
    let url = cluster.url("/v2/models/clf/infer");
    // Until the coordinator's link to the new process is up, requests may
    // find the old one gone.
    let answer =
        maas_tests::wait::wait_for("clf to answer from the restarted node", Duration::from_secs(60), async || {
            maas_tests::requests::post_json(&cluster.client, &url, &body).await.ok()?.answer().ok()
        })
        .await
        .unwrap();
    maas_tests::requests::assert_matches(&answer.outputs, &reference.outputs);
    assert_eq!(std::fs::read(&cached).unwrap(), example_artifact("mlp", 1), "the cache holds the true artifact again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_ask_scrapers_for_a_token() {
    const SCRAPER: &str = "scrape-token-0123456789";
    let cluster = Cluster::builder()
        .nodes(vec![NodeSpec::new("node-0", &["mlp"])])
        .coordinator_args(&["--metrics-token", SCRAPER])
        .start()
        .await
        .unwrap();
    let url = cluster.url("/metrics");
    let scrape = async |token: Option<&str>| scrape(&cluster.client, &url, token).await;
    assert_eq!(scrape(None).await.0, 401);
    assert_eq!(scrape(Some("a-wrong-token-of-some-length")).await.0, 401);
    let (status, text) = scrape(Some(SCRAPER)).await;
    assert_eq!(status, 200);
    assert!(text.contains("maas_node_link_up"), "{text}");
    assert_eq!(scrape(Some(maas_tests::cluster::ADMIN_TOKEN)).await.0, 200, "an admin may scrape too");
    // Health stays open to load balancers.
    let live = cluster.client.get(cluster.url("/v2/health/live")).send().await.unwrap();
    assert_eq!(live.status().as_u16(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_metrics_ask_for_a_token_and_stay_on_loopback_without_one() {
    const SCRAPER: &str = "node-scrape-token-0123456789";
    let mut spec = NodeSpec::new("node-0", &["mlp"]);
    spec.args = vec!["--metrics-token".into(), SCRAPER.into()];
    let cluster = Cluster::builder().nodes(vec![spec]).start().await.unwrap();
    let url = format!("http://{}/metrics", cluster.nodes[0].metrics_addr);
    let scrape = async |token: Option<&str>| scrape(&cluster.client, &url, token).await;
    assert_eq!(scrape(None).await.0, 401);
    assert_eq!(scrape(Some("node-scrape-token-0123456780")).await.0, 401);
    let (status, text) = scrape(Some(SCRAPER)).await;
    assert_eq!(status, 200);
    assert!(text.contains("mlp"), "{text}");

    // Bound to every interface without a token, a node refuses to start.
    let exposed = format!("0.0.0.0:{}", maas_tests::cluster::free_tcp_port());
    let scratch = maas_tests::cluster::TempDir::new("exposed");
    let mut command = std::process::Command::new(maas_tests::cluster::binary("maas-node"));
    command
        .args(["--name", "node-0", "--metrics-addr", &exposed, "--device", "cpu"])
        .arg("--quic-addr")
        .arg(format!("127.0.0.1:{}", maas_tests::cluster::free_udp_port()))
        .arg("--cert-dir")
        .arg(&cluster.certs)
        .arg("--data-dir")
        .arg(scratch.path())
        .env_remove("MAAS_NODE_METRICS_TOKEN");
    let (exited, stderr) =
        tokio::task::spawn_blocking(move || maas_tests::cluster::run_until_exit(&mut command, Duration::from_secs(30)))
            .await
            .unwrap();
    assert!(exited.is_some_and(|status| !status.success()), "the exposed node kept running: {stderr}");
    assert!(stderr.contains("--metrics-token"), "{stderr}");
}

/// GETs `url` with `token` as the bearer, if any: the status and the body.
async fn scrape(client: &reqwest::Client, url: &str, token: Option<&str>) -> (u16, String) {
    let mut request = client.get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}
