//! Generative models through maas: a real OpenAI-compatible engine
//! (`transformers serve` with a tiny GPT-2 of random weights) registered as
//! versions of a model, reached through OpenAI's API (the OpenAI Python
//! client and plain HTTP, whole and streamed) and Triton's generate
//! extension, with a canary split between two engine versions rated by
//! their readers' feedback, a token
//! quota, usage counted in tokens, retries past a dead URL and clear errors
//! once the engine dies.

use std::process::Command;
use std::time::Duration;

use futures_util::StreamExt;
use maas_tests::admin::{call, create_key, set_split};
use maas_tests::cli::{maas, ok};
use maas_tests::cluster::{free_tcp_port, metric_sum, workspace_root, TempDir, ADMIN_TOKEN};
use maas_tests::engine::{build_tiny_llm, chat, events, streamed_text, Engine};
use maas_tests::Cluster;
use reqwest::Method;
use serde_json::{json, Value};

const MODEL: &str = "chat";
const ENGINE_SECRET: &str = "engine-secret-do-not-show";

/// Publishes a version of `model` that the engine at `urls` serves.
async fn publish_engine(cluster: &Cluster, model: &str, urls: &[&str], engine_model: &str) -> (u16, Value) {
    let body = json!({
        "config": {"name": model, "platform": "openai_engine", "engine": {"urls": urls, "model": engine_model}},
        "engine_key": ENGINE_SECRET,
    });
    let path = format!("/v1/models/{model}/versions");
    let answer = call(cluster, Method::POST, &path, Some(serde_json::to_vec(&body).unwrap()), None).await.unwrap();
    (answer.status, answer.body)
}

/// A POST with a bearer token; (status, maas-model-version header, body).
async fn post(client: &reqwest::Client, url: &str, token: &str, body: &Value) -> (u16, Option<u64>, String) {
    let response = client.post(url).bearer_auth(token).json(body).send().await.unwrap();
    let status = response.status().as_u16();
    let version = response.headers().get("maas-model-version").and_then(|v| v.to_str().ok()?.parse().ok());
    (status, version, response.text().await.unwrap())
}

/// Runs the OpenAI Python client against `base_url`: a streamed chat
/// completion; prints its text as JSON.
fn openai_client_stream(base_url: &str, key: &str, model: &str) -> String {
    let script = r#"
import json, sys
from openai import OpenAI
client = OpenAI(base_url=sys.argv[1], api_key=sys.argv[2])
stream = client.chat.completions.create(model=sys.argv[3], stream=True, temperature=0, max_tokens=16,
    messages=[{"role": "user", "content": "Tell me about the sea."}])
text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
models = [m.id for m in client.models.list()]
print(json.dumps({"text": text, "models": models}))
"#;
    let output = Command::new(workspace_root().join(".venv/bin/python"))
        .args(["-c", script, base_url, key, model])
        .output()
        .expect("running the OpenAI client");
    assert!(output.status.success(), "the OpenAI client failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_external_engine_serves_openai_and_triton_clients_through_maas() {
    let dir = TempDir::new("generation");
    let model_dir = dir.path().join("tiny-llm");
    build_tiny_llm(&model_dir).unwrap();
    let mut engine = Engine::start(&model_dir, dir.path().join("engine.log")).await.unwrap();
    let cluster = Cluster::builder().nodes(vec![]).start().await.unwrap();
    let client = reqwest::Client::new();

    // An engine that does not answer is refused at publishing.
    let dead = format!("http://127.0.0.1:{}", free_tcp_port());
    let (status, body) = publish_engine(&cluster, MODEL, &[&dead], &engine.model).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("no URL of the engine answers"), "{body}");

    // Only an admin key chooses where the coordinator sends requests; a
    // URL with a user, query or fragment is refused.
    let deployer =
        create_key(&cluster, &json!({"tenant": "ops", "role": "deployer", "scope": [MODEL]})).await.unwrap().key;
    let body = json!({"config": {"name": MODEL, "platform": "openai_engine", "engine": {"urls": [&engine.url]}}});
    let path = format!("/v1/models/{MODEL}/versions");
    let answer =
        call(&cluster, Method::POST, &path, Some(serde_json::to_vec(&body).unwrap()), Some(&deployer)).await.unwrap();
    assert_eq!(answer.status, 403, "{}", answer.body);
    let sneaky = format!("{}/v1/models?x=", engine.url);
    let (status, body) = publish_engine(&cluster, MODEL, &[&sneaky], &engine.model).await;
    assert_eq!(status, 400, "{body}");

    // Version 1, its credential never shown.
    let (status, body) = publish_engine(&cluster, MODEL, &[&engine.url], &engine.model).await;
    assert_eq!(status, 201, "{body}");
    let described = call(&cluster, Method::GET, &format!("/v1/models/{MODEL}"), None, None).await.unwrap();
    assert_eq!(described.status, 200);
    assert!(!described.body.to_string().contains(ENGINE_SECRET), "the engine's key is shown: {}", described.body);
    let key =
        create_key(&cluster, &json!({"tenant": "writers", "role": "inference", "scope": [MODEL]})).await.unwrap().key;

    // Whole: the answer and usage equal the engine's own, the model named as asked.
    let direct: Value = client
        .post(format!("{}/v1/chat/completions", engine.url))
        .json(&chat(&engine.model, false, 16))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (status, version, text) =
        post(&client, &cluster.url("/v1/chat/completions"), &key, &chat(MODEL, false, 16)).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(version, Some(1));
    let answer: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(answer["model"], MODEL);
    let expected = direct["choices"][0]["message"]["content"].as_str().unwrap().to_string();
    assert!(!expected.is_empty());
    assert_eq!(answer["choices"][0]["message"]["content"], expected.as_str());
    assert_eq!(answer["usage"]["prompt_tokens"], direct["usage"]["prompt_tokens"]);
    assert_eq!(answer["usage"]["completion_tokens"], direct["usage"]["completion_tokens"]);
    let (prompt_tokens, completion_tokens) =
        (answer["usage"]["prompt_tokens"].as_u64().unwrap(), answer["usage"]["completion_tokens"].as_u64().unwrap());
    assert!(prompt_tokens > 0 && completion_tokens > 0, "{answer}");

    // Streamed, through the OpenAI Python client: the same text.
    let printed = openai_client_stream(&cluster.url("/v1"), &key, MODEL);
    let printed: Value = serde_json::from_str(printed.trim()).unwrap();
    assert_eq!(printed["text"], expected.as_str());
    assert_eq!(printed["models"], json!([MODEL]), "the key's scope is what /v1/models lists");

    // Streamed with plain HTTP: chunks, then [DONE]; no usage chunk unless asked.
    let (status, _, text) = post(&client, &cluster.url("/v1/chat/completions"), &key, &chat(MODEL, true, 16)).await;
    assert_eq!(status, 200, "{text}");
    let payloads = events(&text);
    assert_eq!(payloads.last().map(String::as_str), Some("[DONE]"), "{text}");
    assert_eq!(streamed_text(&payloads), expected);
    assert!(!text.contains("\"usage\":{"), "a usage chunk nobody asked for: {text}");

    // Text completions and Triton's generate extension agree.
    let completion = json!({"model": MODEL, "prompt": "The sea is", "max_tokens": 12, "temperature": 0});
    let (status, _, text) = post(&client, &cluster.url("/v1/completions"), &key, &completion).await;
    assert_eq!(status, 200, "{text}");
    let completed = serde_json::from_str::<Value>(&text).unwrap()["choices"][0]["text"].as_str().unwrap().to_string();
    let generate = json!({"text_input": "The sea is", "parameters": {"max_tokens": 12, "temperature": 0}});
    let (status, _, text) = post(&client, &cluster.url(&format!("/v2/models/{MODEL}/generate")), &key, &generate).await;
    assert_eq!(status, 200, "{text}");
    let generated: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(generated["model_name"], MODEL);
    assert_eq!(generated["model_version"], "1");
    assert_eq!(generated["text_output"], completed.as_str());
    let (status, _, text) =
        post(&client, &cluster.url(&format!("/v2/models/{MODEL}/generate_stream")), &key, &generate).await;
    assert_eq!(status, 200, "{text}");
    let pieces: String = events(&text)
        .iter()
        .map(|p| serde_json::from_str::<Value>(p).unwrap()["text_output"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(pieces, completed);

    // A tensor request to a generative model, and a bad body, are 400s.
    let (status, _, text) =
        post(&client, &cluster.url(&format!("/v2/models/{MODEL}/infer")), &key, &json!({"inputs": []})).await;
    assert_eq!(status, 400, "{text}");
    let (status, _, text) =
        post(&client, &cluster.url("/v1/chat/completions"), &key, &json!({"model": MODEL, "messages": "hi"})).await;
    assert_eq!(status, 400, "{text}");
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap()["error"]["type"], "invalid_request_error");

    // Version 2, published with the CLI, lists a dead URL first: every
    // request is retried past it.
    let key_file = dir.path().join("engine.key");
    std::fs::write(&key_file, ENGINE_SECRET).unwrap();
    let published = ok(maas(
        &cluster,
        ADMIN_TOKEN,
        &[
            "engine",
            MODEL,
            "--url",
            &dead,
            "--url",
            &engine.url,
            "--engine-model",
            &engine.model,
            "--key-file",
            key_file.to_str().unwrap(),
        ],
    ));
    assert!(published.contains("version 2"), "{published}");
    // A canary: half the traffic to each version.
    let answer = set_split(&cluster, MODEL, &[(1, 1), (2, 1)]).await.unwrap();
    assert_eq!(answer.status, 200, "{}", answer.body);
    let mut served = [0u32; 3];
    let mut ratings = Vec::new();
    for _ in 0..24 {
        let (status, version, text) =
            post(&client, &cluster.url("/v1/chat/completions"), &key, &chat(MODEL, false, 4)).await;
        assert_eq!(status, 200, "{text}");
        let version = version.unwrap();
        served[version as usize] += 1;
        // Readers like version 1's answers and not version 2's.
        let id = serde_json::from_str::<Value>(&text).unwrap()["id"].as_str().unwrap().to_string();
        ratings.push(json!({"id": id, "label": if version == 1 { 1.0 } else { 0.0 }}));
    }
    assert!(served[1] >= 4 && served[2] >= 4, "the split served {served:?}");
    let feedback = serde_json::to_vec(&json!({"feedback": ratings})).unwrap();
    let joined = client
        .post(cluster.url(&format!("/v1/models/{MODEL}/feedback")))
        .bearer_auth(&key)
        .body(feedback)
        .send()
        .await
        .unwrap();
    let joined: Value = joined.json().await.unwrap();
    assert_eq!(joined["joined"], 24, "{joined}");
    let evaluation =
        call(&cluster, Method::GET, &format!("/v1/models/{MODEL}/evaluation"), None, None).await.unwrap().ok().unwrap();
    assert_eq!(evaluation["task"], "rating", "{evaluation}");
    let scores = evaluation["versions"].as_array().unwrap();
    let rating_of = |v: u64| scores.iter().find(|s| s["version"] == v).map(|s| s["mean_rating"].clone());
    assert_eq!(rating_of(1), Some(json!(1.0)), "{evaluation}");
    assert_eq!(rating_of(2), Some(json!(0.0)), "{evaluation}");

    // Usage and metrics count tokens.
    let metrics = cluster.coordinator_metrics().await.unwrap();
    let first_tokens = metric_sum(&metrics, "maas_generation_time_to_first_token_seconds_count", &[("model", MODEL)]);
    assert!(first_tokens >= 2.0, "time to first token counted {first_tokens} times");
    let prompt_counted = metric_sum(&metrics, "maas_generation_tokens_total", &[("model", MODEL), ("kind", "prompt")]);
    assert!(prompt_counted >= prompt_tokens as f64 * 2.0, "{prompt_counted}");

    // Triton's statistics carry the tokens and token times.
    let stats = call(&cluster, Method::GET, &format!("/v2/models/{MODEL}/versions/1/stats"), None, None).await.unwrap();
    let generation = &stats.ok().unwrap()["model_stats"][0]["generation_stats"];
    assert!(generation["completion_tokens"].as_u64().unwrap() >= completion_tokens, "{generation}");
    assert!(generation["time_to_first_token"]["count"].as_u64().unwrap() >= 1, "{generation}");
    assert!(generation["inter_token"]["count"].as_u64().unwrap() >= 1, "{generation}");

    // A tenant over its token quota gets 429 in OpenAI's shape.
    let limited = create_key(
        &cluster,
        &json!({"tenant": "thrifty", "role": "inference", "scope": [MODEL], "limits": {"tokens_per_minute": 40}}),
    )
    .await
    .unwrap()
    .key;
    let (status, _, text) =
        post(&client, &cluster.url("/v1/chat/completions"), &limited, &chat(MODEL, false, 32)).await;
    assert_eq!(status, 200, "the first request fits the bucket: {text}");
    let response = client
        .post(cluster.url("/v1/chat/completions"))
        .bearer_auth(&limited)
        .json(&chat(MODEL, false, 32))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 429);
    assert!(response.headers().get("retry-after").is_some());
    let refused: Value = response.json().await.unwrap();
    assert_eq!(refused["error"]["type"], "rate_limit_exceeded");
    assert!(refused["error"]["message"].as_str().unwrap().contains("tokens/minute"), "{refused}");

    // The engine dies in the middle of a stream: the client gets an error
    // event; a request after that gets a clear 503.
    set_split(&cluster, MODEL, &[(1, 1)]).await.unwrap().ok().unwrap();
    let response = client
        .post(cluster.url("/v1/chat/completions"))
        .bearer_auth(&key)
        .json(&chat(MODEL, true, 1500))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let mut body = response.bytes_stream();
    let first = body.next().await.unwrap().unwrap();
    assert!(first.starts_with(b"data: "), "{first:?}");
    engine.kill();
    let mut rest = Vec::new();
    let read_rest = async {
        while let Some(Ok(chunk)) = body.next().await {
            rest.extend_from_slice(&chunk);
        }
    };
    tokio::time::timeout(Duration::from_secs(30), read_rest).await.expect("the stream ended after the engine died");
    let rest = String::from_utf8_lossy(&rest);
    let last = events(&rest).pop().unwrap_or_default();
    assert!(last.contains("\"error\""), "no error event at the end of a broken stream: {rest}");
    let (status, _, text) = post(&client, &cluster.url("/v1/chat/completions"), &key, &chat(MODEL, false, 4)).await;
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("no URL of the engine"), "{text}");

    // Usage, per tenant, in tokens.
    let usage = call(&cluster, Method::GET, "/v1/usage?tenant=thrifty", None, None).await.unwrap().ok().unwrap();
    let rows = usage["usage"].as_array().cloned().unwrap_or_default();
    let completion: u64 = rows.iter().map(|r| r["completion_tokens"].as_u64().unwrap_or(0)).sum();
    assert_eq!(completion, 32, "the thrifty tenant's usage: {usage}");
}
