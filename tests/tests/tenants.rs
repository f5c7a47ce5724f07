//! Tenants' API keys across two coordinators sharing one etcd, inference
//! closed to callers without a key: a key reaches only the models of its
//! scope and does only what its role allows, on both fronts; a key revoked
//! through one coordinator is refused by both within a second; a key's rate
//! limit holds for the whole cluster, answered with 429 and Retry-After
//! (gRPC RESOURCE_EXHAUSTED) past it; a tenant's limit, set with the CLI,
//! is shared by all its keys on both coordinators.

use std::time::{Duration, Instant};

use maas_grpc::inference::*;
use maas_grpc::GrpcInferenceServiceClient;
use maas_tests::admin::{create_key_at, deploy_example, wait_ready};
use maas_tests::cli::{maas, ok};
use maas_tests::cluster::{metric_sum, ADMIN_TOKEN};
use maas_tests::grpc::raw_request;
use maas_tests::reference::JsonTensor;
use maas_tests::requests::{assert_matches, json_body};
use maas_tests::wait::wait_until;
use maas_tests::{Cluster, NodeSpec, Reference};
use reqwest::Method;
use serde_json::{json, Value};
use tonic::Code;

/// One answer: status, body, Retry-After.
struct Answer {
    status: u16,
    body: Value,
    retry_after: Option<String>,
}

async fn call(
    client: &reqwest::Client,
    method: Method,
    url: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Answer {
    let mut request = client.request(method, url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.unwrap_or_else(|e| panic!("{url}: {e}"));
    let status = response.status().as_u16();
    let retry_after = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
    let text = response.text().await.unwrap();
    Answer { status, body: serde_json::from_str(&text).unwrap_or(Value::Null), retry_after }
}

/// Creates a key through the coordinator at `base`; returns (key, id).
async fn create_key(client: &reqwest::Client, base: &str, spec: Value) -> (String, String) {
    let issued = create_key_at(client, base, &spec).await.unwrap();
    (issued.key, issued.id)
}

/// Two coordinators on one etcd over one node, keys required, models
/// `a-1` and `b-1`; returns the cluster, the second coordinator and its URL.
async fn two_coordinators() -> (Cluster, maas_tests::cluster::Process, String) {
    let cluster = Cluster::builder()
        .with_etcd()
        .nodes(vec![NodeSpec::bare("node-0")])
        .coordinator_args(&["--require-keys"])
        .start()
        .await
        .unwrap();
    for name in ["a-1", "b-1"] {
        deploy_example(&cluster, "mlp", 1, name).await.unwrap();
        wait_ready(&cluster, name).await.unwrap();
    }
    let (second, url) = cluster.start_another_coordinator("coordinator-2").await.unwrap();
    let ready = format!("{url}/v2/models/a-1/ready");
    wait_until("the second coordinator to serve a-1", Duration::from_secs(60), async || {
        call(&cluster.client, Method::GET, &ready, Some(ADMIN_TOKEN), None).await.status == 200
    })
    .await
    .unwrap();
    (cluster, second, url)
}

fn infer_body() -> (Value, Reference) {
    let reference = Reference::load("mlp", 1);
    let row = reference.rows(0, 1);
    (json_body(&row.inputs, None), reference)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_reach_their_scope_and_role_and_die_everywhere_when_revoked() {
    let (cluster, _second, second) = two_coordinators().await;
    let first = cluster.url("");
    let client = &cluster.client;
    let (inference, inference_id) =
        create_key(client, &first, json!({"tenant": "team-a", "role": "inference", "scope": ["a-*"]})).await;
    let (viewer, _) = create_key(client, &first, json!({"tenant": "team-a", "role": "viewer", "scope": ["a-*"]})).await;
    let (deployer, _) =
        create_key(client, &second, json!({"tenant": "team-a", "role": "deployer", "scope": ["a-*"]})).await;
    let (body, reference) = infer_body();
    let expected = reference.rows(0, 1);

    for base in [&first, &second] {
        let infer = |model: &str| format!("{base}/v2/models/{model}/infer");
        let answer = call(client, Method::POST, &infer("a-1"), Some(&inference), Some(&body)).await;
        assert_eq!(answer.status, 200, "{base}: {}", answer.body);
        let outputs: Vec<JsonTensor> =
            answer.body["outputs"].as_array().unwrap().iter().map(|o| JsonTensor::from_json(o).unwrap()).collect();
        assert_matches(&outputs, &expected.outputs);
        let refused = call(client, Method::POST, &infer("b-1"), Some(&inference), Some(&body)).await;
        assert_eq!(refused.status, 403, "{base}: {}", refused.body);
        assert!(refused.body["error"].as_str().unwrap().contains("'b-1'"), "{}", refused.body);
        let anonymous = call(client, Method::POST, &infer("a-1"), None, Some(&body)).await;
        assert_eq!(anonymous.status, 401, "keys are required: {}", anonymous.body);
        let unknown = format!("maas_{}_{}", "0".repeat(12), "0".repeat(64));
        assert_eq!(call(client, Method::POST, &infer("a-1"), Some(&unknown), Some(&body)).await.status, 401);
        // A viewer reads its models and nothing else, and cannot infer.
        assert_eq!(call(client, Method::POST, &infer("a-1"), Some(&viewer), Some(&body)).await.status, 403);
        let models = call(client, Method::GET, &format!("{base}/v1/models"), Some(&viewer), None).await;
        assert_eq!(models.status, 200);
        let names: Vec<_> = models.body["models"].as_array().unwrap().iter().map(|m| m["name"].clone()).collect();
        assert_eq!(names, vec![json!("a-1")], "the list shows the viewer's scope only");
        let stats = call(client, Method::GET, &format!("{base}/v2/models/stats"), Some(&viewer), None).await;
        assert!(stats.body["model_stats"].as_array().unwrap().iter().all(|s| s["name"] == "a-1"), "{}", stats.body);
        assert_eq!(call(client, Method::GET, &format!("{base}/v1/models/a-1"), Some(&viewer), None).await.status, 200);
        assert_eq!(call(client, Method::GET, &format!("{base}/v1/models/b-1"), Some(&viewer), None).await.status, 403);
        assert_eq!(call(client, Method::GET, &format!("{base}/v2/models/b-1"), Some(&viewer), None).await.status, 403);
        let publish = json!({"config": {}, "artifact": {"sha256": "0".repeat(64)}});
        let versions = format!("{base}/v1/models/a-1/versions");
        let deploy = call(client, Method::POST, &versions, Some(&viewer), Some(&publish)).await;
        assert_eq!(deploy.status, 403, "a viewer cannot deploy: {}", deploy.body);
        // A deployer moves aliases within its scope only; keys are the admin's.
        let alias = json!({"version": 1});
        let set = |model: &str| format!("{base}/v1/models/{model}/aliases/stable");
        assert_eq!(call(client, Method::PUT, &set("a-1"), Some(&deployer), Some(&alias)).await.status, 200);
        assert_eq!(call(client, Method::PUT, &set("b-1"), Some(&deployer), Some(&alias)).await.status, 403);
        assert_eq!(call(client, Method::GET, &format!("{base}/v1/keys"), Some(&deployer), None).await.status, 403);
        assert_eq!(call(client, Method::GET, &format!("{base}/v1/cluster"), Some(&deployer), None).await.status, 403);
    }

    // gRPC: the same key, the same scope.
    let mut grpc = GrpcInferenceServiceClient::connect(format!("http://{}", cluster.grpc_addr)).await.unwrap();
    let grpc_request = |model: &str, key: &str| {
        let mut request = tonic::Request::new(raw_request(model, "", &reference.rows(0, 1).inputs, ""));
        request.metadata_mut().insert("authorization", format!("Bearer {key}").parse().unwrap());
        request
    };
    grpc.model_infer(grpc_request("a-1", &inference)).await.expect("a-1 over gRPC");
    assert_eq!(grpc.model_infer(grpc_request("b-1", &inference)).await.unwrap_err().code(), Code::PermissionDenied);
    let mut metadata = tonic::Request::new(ModelMetadataRequest { name: "b-1".into(), version: String::new() });
    metadata.metadata_mut().insert("authorization", format!("Bearer {inference}").parse().unwrap());
    assert_eq!(grpc.model_metadata(metadata).await.unwrap_err().code(), Code::PermissionDenied);

    // Keys are listed without secrets; a revoked key dies on both within 1 s.
    let listed = call(client, Method::GET, &format!("{second}/v1/keys"), Some(ADMIN_TOKEN), None).await;
    assert_eq!(listed.body["keys"].as_array().unwrap().len(), 3, "{}", listed.body);
    let text = listed.body.to_string();
    assert!(!text.contains(&inference[20..]) && !text.contains("hash"), "a listing shows secrets: {text}");
    let revoked =
        call(client, Method::DELETE, &format!("{second}/v1/keys/{inference_id}"), Some(ADMIN_TOKEN), None).await;
    assert_eq!(revoked.status, 200, "{}", revoked.body);
    let since = Instant::now();
    for base in [&second, &first] {
        let url = format!("{base}/v2/models/a-1/infer");
        loop {
            let status = call(client, Method::POST, &url, Some(&inference), Some(&body)).await.status;
            if status == 401 {
                break;
            }
            assert_eq!(status, 200);
            assert!(
                since.elapsed() < Duration::from_secs(1),
                "{base} still accepts a key revoked {:?} ago",
                since.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    println!("a revoked key was refused by both coordinators after {:?}", since.elapsed());
    let again = call(client, Method::DELETE, &format!("{first}/v1/keys/{inference_id}"), Some(ADMIN_TOKEN), None).await;
    assert_eq!(again.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_holds_for_the_cluster() {
    let (cluster, _second, second) = two_coordinators().await;
    let first = cluster.url("");
    let client = &cluster.client;
    // Both coordinators know they share the rate.
    for base in [&first, &second] {
        let metrics = format!("{base}/metrics");
        wait_until("both coordinators to count two", Duration::from_secs(10), async || {
            let text = client.get(&metrics).send().await.unwrap().text().await.unwrap();
            metric_sum(&text, "maas_coordinators_live", &[]) == 2.0
        })
        .await
        .unwrap();
    }
    const RATE: f64 = 20.0;
    const BURST: f64 = 2.0;
    let limits = json!({"requests_per_second": RATE, "requests_burst": BURST});
    let (key, _) =
        create_key(client, &first, json!({"tenant": "team-r", "role": "inference", "scope": ["*"], "limits": limits}))
            .await;
    let (body, _) = infer_body();
    let window = Duration::from_secs(4);
    let started = Instant::now();
    let (mut served, mut limited, mut sent) = (0u32, 0u32, 0u32);
    while started.elapsed() < window && sent < 20_000 {
        let base = if sent % 2 == 0 { &first } else { &second };
        let answer = call(client, Method::POST, &format!("{base}/v2/models/a-1/infer"), Some(&key), Some(&body)).await;
        sent += 1;
        match answer.status {
            200 => served += 1,
            429 => {
                limited += 1;
                let retry: u64 = answer.retry_after.as_deref().expect("a 429 says when to retry").parse().unwrap();
                assert!((1..=2).contains(&retry), "Retry-After {retry}");
                assert!(answer.body["error"].as_str().unwrap().contains("requests/s"), "{}", answer.body);
            }
            other => panic!("unexpected status {other}: {}", answer.body),
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let rate = (served as f64 - BURST) / seconds;
    println!("{sent} requests in {seconds:.2} s: {served} served ({rate:.1}/s past the burst), {limited} limited");
    assert!(limited > 0, "the client never went over its limit");
    assert!((RATE * 0.8..=RATE * 1.2).contains(&rate), "served {rate:.1}/s, limit {RATE}/s");
    // Refusals are counted per tenant.
    let metrics = client.get(format!("{first}/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metric_sum(&metrics, "maas_rate_limited_total", &[("tenant", "team-r")]) > 0.0);

    // gRPC says RESOURCE_EXHAUSTED past the limit.
    let mut grpc = GrpcInferenceServiceClient::connect(format!("http://{}", cluster.grpc_addr)).await.unwrap();
    let mut exhausted = false;
    for _ in 0..50 {
        let mut request = tonic::Request::new(ModelInferRequest { model_name: "a-1".into(), ..Default::default() });
        request.metadata_mut().insert("authorization", format!("Bearer {key}").parse().unwrap());
        if let Err(status) = grpc.model_infer(request).await {
            if status.code() == Code::ResourceExhausted {
                exhausted = true;
                break;
            }
        }
    }
    assert!(exhausted, "gRPC never answered RESOURCE_EXHAUSTED past the limit");
}

/// Sends requests for `window`, alternating `keys` and coordinators, and
/// returns (served, limited); every 429 must name `limit_text`.
async fn drive(
    client: &reqwest::Client,
    bases: [&str; 2],
    keys: [&str; 2],
    window: Duration,
    limit_text: &str,
) -> (u32, u32) {
    let (body, _) = infer_body();
    let started = Instant::now();
    let (mut served, mut limited, mut sent) = (0u32, 0u32, 0usize);
    while started.elapsed() < window && sent < 20_000 {
        let base = bases[sent % 2];
        let key = keys[(sent / 2) % 2];
        let answer = call(client, Method::POST, &format!("{base}/v2/models/a-1/infer"), Some(key), Some(&body)).await;
        sent += 1;
        match answer.status {
            200 => served += 1,
            429 => {
                limited += 1;
                assert!(answer.retry_after.is_some(), "a 429 says when to retry");
                let message = answer.body["error"].as_str().unwrap();
                assert!(message.contains(limit_text), "{message}");
            }
            other => panic!("unexpected status {other}: {}", answer.body),
        }
    }
    (served, limited)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_limit_is_shared_by_its_keys_across_the_cluster() {
    let (cluster, _second, second) = two_coordinators().await;
    let first = cluster.url("");
    let client = &cluster.client;
    let scope = |tenant: &str| json!({"tenant": tenant, "role": "inference", "scope": ["*"]});
    let (key_a, _) = create_key(client, &first, scope("team-s")).await;
    let (key_b, _) = create_key(client, &second, scope("team-s")).await;
    let (outsider, _) = create_key(client, &first, scope("team-t")).await;
    for base in [&first, &second] {
        let metrics = format!("{base}/metrics");
        wait_until("both coordinators to count two", Duration::from_secs(10), async || {
            let text = client.get(&metrics).send().await.unwrap().text().await.unwrap();
            metric_sum(&text, "maas_coordinators_live", &[]) == 2.0
        })
        .await
        .unwrap();
    }

    // The CLI sets the tenant's limit through the first coordinator; the
    // second applies it from its watch.
    const RATE: f64 = 10.0;
    const BURST: f64 = 2.0;
    let out = ok(maas(
        &cluster,
        ADMIN_TOKEN,
        &["tenants", "limit", "team-s", "--requests-per-second", "10", "--requests-burst", "2"],
    ));
    assert!(out.contains("team-s") && out.contains("10 req/s"), "{out}");
    let listed = format!("{second}/v1/tenants");
    wait_until("the second coordinator to know the limit", Duration::from_secs(2), async || {
        let answer = call(client, Method::GET, &listed, Some(ADMIN_TOKEN), None).await;
        answer.body["tenants"].as_array().is_some_and(|tenants| {
            tenants
                .iter()
                .any(|t| t["tenant"] == "team-s" && t["limits"]["requests_per_second"] == RATE && t["keys"] == 2)
        })
    })
    .await
    .unwrap();
    let viewer_try = call(client, Method::GET, &listed, Some(&key_a), None).await;
    assert_eq!(viewer_try.status, 403, "only an admin sees tenants: {}", viewer_try.body);

    // Two keys, two coordinators, one rate between them.
    let window = Duration::from_secs(4);
    let started = Instant::now();
    let (served, limited) = drive(client, [&first, &second], [&key_a, &key_b], window, "tenant 'team-s'").await;
    let seconds = started.elapsed().as_secs_f64();
    let rate = (served as f64 - BURST) / seconds;
    println!("tenant team-s: {served} served ({rate:.1}/s past the burst), {limited} limited in {seconds:.2} s");
    assert!(limited > 0, "the tenant never went over its limit");
    assert!((RATE * 0.8..=RATE * 1.2).contains(&rate), "served {rate:.1}/s, tenant limit {RATE}/s");

    // Another tenant is not held by team-s's limit.
    let (served, limited) =
        drive(client, [&first, &second], [&outsider, &outsider], Duration::from_millis(500), "-").await;
    assert!(served > 0 && limited == 0, "another tenant was limited: {served} served, {limited} limited");

    // Cleared, the tenant is unlimited again on both coordinators.
    let out = ok(maas(&cluster, ADMIN_TOKEN, &["tenants", "unlimit", "team-s"]));
    assert!(out.contains("team-s: -"), "{out}");
    wait_until("the second coordinator to drop the limit", Duration::from_secs(2), async || {
        let answer = call(client, Method::GET, &listed, Some(ADMIN_TOKEN), None).await;
        answer.body["tenants"].as_array().is_some_and(|tenants| {
            tenants.iter().any(|t| t["tenant"] == "team-s" && t["limits"]["requests_per_second"].is_null())
        })
    })
    .await
    .unwrap();
    let (served, limited) = drive(client, [&first, &second], [&key_a, &key_b], Duration::from_millis(500), "-").await;
    assert!(limited == 0 && served as f64 > RATE, "still limited after unlimit: {served} served, {limited} limited");
    let again = maas(&cluster, ADMIN_TOKEN, &["tenants", "unlimit", "team-s"]);
    assert!(!again.ok && again.stderr.contains("no limits"), "{}", again.stderr);
    let table = ok(maas(&cluster, ADMIN_TOKEN, &["tenants", "list"]));
    assert!(table.starts_with("TENANT") && table.contains("team-t"), "{table}");
}
