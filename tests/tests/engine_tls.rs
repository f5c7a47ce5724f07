//! An engine behind HTTPS: `transformers serve` behind a TLS front whose
//! certificate a private CA signed, which the coordinator is told to trust
//! (`--engine-ca`), answers chat completions through maas, whole and
//! streamed, exactly as it answers directly. The same engine behind a
//! certificate from another CA is refused at publishing with the TLS
//! error, never spoken to.

use maas_tests::admin::{call, create_key};
use maas_tests::cluster::{make_role_certs, TempDir};
use maas_tests::engine::{build_tiny_llm, chat, events, streamed_text, Engine, TlsFront};
use maas_tests::Cluster;
use reqwest::Method;
use serde_json::{json, Value};

const MODEL: &str = "secure-chat";

async fn publish_engine(cluster: &Cluster, model: &str, url: &str, engine_model: &str) -> (u16, Value) {
    let body = json!({"config": {"name": model, "platform": "openai_engine",
                                 "engine": {"urls": [url], "model": engine_model}}});
    let path = format!("/v1/models/{model}/versions");
    let answer = call(cluster, Method::POST, &path, Some(serde_json::to_vec(&body).unwrap()), None).await.unwrap();
    (answer.status, answer.body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_behind_https_is_served_and_one_with_an_untrusted_certificate_refused() {
    let dir = TempDir::new("engine-tls");
    let model_dir = dir.path().join("tiny-llm");
    build_tiny_llm(&model_dir).unwrap();
    let engine = Engine::start(&model_dir, dir.path().join("engine.log")).await.unwrap();
    let port: u16 = engine.url.rsplit(':').next().unwrap().parse().unwrap();
    // Two CAs, each signing a server certificate for 127.0.0.1.
    let (trusted, other) = (dir.path().join("trusted"), dir.path().join("other"));
    make_role_certs(&trusted, "front", &["engine"]).unwrap();
    make_role_certs(&other, "front", &["engine"]).unwrap();
    let front =
        TlsFront::start(port, &trusted.join("engine.pem"), &trusted.join("engine.key"), dir.path().join("front.log"))
            .await
            .unwrap();
    let impostor =
        TlsFront::start(port, &other.join("engine.pem"), &other.join("engine.key"), dir.path().join("impostor.log"))
            .await
            .unwrap();
    let ca = trusted.join("ca.pem");
    let cluster = Cluster::builder()
        .nodes(vec![])
        .coordinator_args(&["--engine-ca", ca.to_str().unwrap()])
        .start()
        .await
        .unwrap();

    // A certificate the coordinator does not trust: refused, saying why.
    let (status, body) = publish_engine(&cluster, "impostor", &impostor.url, &engine.model).await;
    assert_eq!(status, 400, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(error.contains("TLS failed") && error.contains("certificate"), "{error}");

    // The trusted one is published, and answers as the engine does.
    let (status, body) = publish_engine(&cluster, MODEL, &front.url, &engine.model).await;
    assert_eq!(status, 201, "{body}");
    let key =
        create_key(&cluster, &json!({"tenant": "writers", "role": "inference", "scope": [MODEL]})).await.unwrap().key;
    let client = reqwest::Client::new();
    let direct: Value = client
        .post(format!("{}/v1/chat/completions", engine.url))
        .json(&chat(&engine.model, false, 16))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let expected = direct["choices"][0]["message"]["content"].as_str().unwrap().to_string();
    assert!(!expected.is_empty());
    let answer = client.post(cluster.url("/v1/chat/completions")).bearer_auth(&key).json(&chat(MODEL, false, 16));
    let answer = answer.send().await.unwrap();
    assert_eq!(answer.status(), 200);
    let answer: Value = answer.json().await.unwrap();
    assert_eq!(answer["choices"][0]["message"]["content"], expected.as_str(), "{answer}");
    assert_eq!(answer["model"], MODEL);
    let streamed = client.post(cluster.url("/v1/chat/completions")).bearer_auth(&key).json(&chat(MODEL, true, 16));
    let streamed = streamed.send().await.unwrap();
    assert_eq!(streamed.status(), 200);
    assert_eq!(streamed_text(&events(&streamed.text().await.unwrap())), expected, "streamed");
}
