//! A decoder run natively by maas nodes: a tiny GPT-2 with random weights
//! (`tests/fixtures/tiny_llm.py`) exported with its key/value cache
//! (`scripts/export_decoder.py`), its `tokenizer.json` uploaded as an
//! artifact and its chat template in the version's config. Greedy text
//! through every front (Triton's generate and generate_stream, OpenAI's
//! completions and chat, whole and streamed) equals Hugging Face
//! `generate` on the same model; 16 concurrent streams each equal their
//! own reference while their steps are batched; a client that goes away
//! frees its cache on the node; stop strings cut the text; a prompt longer
//! than the context is a 400. A tiny Llama (rotary positions, grouped-query
//! attention, so its cache holds fewer heads than it attends with) exported
//! by the same helper generates what Hugging Face generates too, alone and
//! in concurrent batched streams; sampling repeats with its seed; and
//! prompts that suddenly take far
//! longer to prefill raise a latency alert on its time to first token.

use std::path::Path;
use std::time::Duration;

use futures_util::StreamExt;
use maas_tests::admin::{call, create_key, wait_ready};
use maas_tests::cli::{maas, ok};
use maas_tests::cluster::{metric_sum, workspace_root, NodeSpec, TempDir, ADMIN_TOKEN};
use maas_tests::engine::{build_tiny_llama, build_tiny_llm};
use maas_tests::python;
use maas_tests::wait::wait_until;
use maas_tests::Cluster;
use reqwest::Method;
use serde_json::{json, Value};

const MODEL: &str = "tiny-gpt";
const NEW_TOKENS: usize = 32;
const CHAT: &str = "Tell me about the sea.";

/// Hugging Face's greedy continuation of each prompt (and of the chat, its
/// template applied), as token counts and decoded text.
const REFERENCE: &str = r#"
import json, sys, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
model = AutoModelForCausalLM.from_pretrained(sys.argv[1]).eval()
tokenizer = AutoTokenizer.from_pretrained(sys.argv[1])
new_tokens = int(sys.argv[2])
prompts = json.loads(sys.argv[3])
def greedy(ids):
    with torch.no_grad():
        out = model.generate(torch.tensor([ids]), max_new_tokens=new_tokens, do_sample=False,
                             pad_token_id=model.config.eos_token_id)[0, len(ids):].tolist()
    return {"prompt_tokens": len(ids), "tokens": len(out), "text": tokenizer.decode(out, skip_special_tokens=True)}
chat_ids = tokenizer.apply_chat_template([{"role": "user", "content": sys.argv[4]}], add_generation_prompt=True)
if not isinstance(chat_ids, list):
    chat_ids = chat_ids["input_ids"]
print(json.dumps({"prompts": [greedy(tokenizer(p)["input_ids"]) for p in prompts], "chat": greedy(chat_ids)}))
"#;

/// Prompts of different lengths.
fn prompts() -> Vec<String> {
    let words = ["sea", "wind", "ships", "rain", "the", "light", "stone", "river"];
    (0..16).map(|i| (0..=i * 3).map(|j| words[(i + j) % words.len()]).collect::<Vec<_>>().join(" ")).collect()
}

/// The `data:` payloads of a server-sent event stream.
fn events(text: &str) -> Vec<String> {
    text.split("\n\n").filter_map(|e| e.strip_prefix("data: ")).map(str::to_string).collect()
}

/// The text of a streamed answer, in any of the three shapes.
fn streamed_text(text: &str) -> String {
    events(text)
        .iter()
        .filter(|p| *p != "[DONE]")
        .map(|p| serde_json::from_str::<Value>(p).unwrap_or_else(|_| panic!("not JSON: {p}")))
        .map(|chunk| {
            if let Some(piece) = chunk["text_output"].as_str() {
                return piece.to_string();
            }
            let choices = chunk["choices"].as_array().cloned().unwrap_or_default();
            choices
                .iter()
                .map(|c| c["delta"]["content"].as_str().or(c["text"].as_str()).unwrap_or_default().to_string())
                .collect()
        })
        .collect()
}

async fn post(client: &reqwest::Client, url: &str, key: &str, body: &Value) -> (u16, String) {
    let response = client.post(url).bearer_auth(key).json(body).send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// Streams the first `count` prompts to `model` at once: each equals its
/// own reference, and the node stepped several sequences together.
async fn concurrent_streams_equal_their_references(
    cluster: &Cluster,
    client: &reqwest::Client,
    key: &str,
    model: &str,
    count: usize,
    reference: &Value,
) {
    let streams = prompts().into_iter().enumerate().take(count).map(|(index, prompt)| {
        let (client, url, key) = (client.clone(), cluster.url("/v1/completions"), key.to_string());
        async move {
            let body = json!({"model": model, "prompt": prompt, "max_tokens": NEW_TOKENS, "temperature": 0,
                              "stream": true});
            (index, post(&client, &url, &key, &body).await)
        }
    });
    for (index, (status, text)) in futures_util::future::join_all(streams).await {
        assert_eq!(status, 200, "{text}");
        assert_eq!(streamed_text(&text), reference["prompts"][index]["text"].as_str().unwrap(), "stream {index}");
    }
    let stats =
        call(cluster, Method::GET, &format!("/v2/models/{model}/stats"), None, None).await.unwrap().ok().unwrap();
    let steps = stats["model_stats"][0]["batch_stats"].as_array().cloned().unwrap_or_default();
    let largest = steps.iter().filter_map(|s| s["batch_size"].as_u64()).max().unwrap_or(0);
    assert!(largest > 1, "no step batched more than one sequence: {steps:?}");
}

/// Builds a tiny model with `build` and exports it as a decoder; returns
/// its folder and Hugging Face's references.
fn export(dir: &Path, build: fn(&Path) -> anyhow::Result<()>) -> (std::path::PathBuf, Value) {
    let hf = dir.join("hf");
    build(&hf).unwrap();
    let exported = dir.join("decoder");
    let script = workspace_root().join("scripts/export_decoder.py");
    python::run(&[script.to_str().unwrap(), hf.to_str().unwrap(), exported.to_str().unwrap()]);
    let prompts = serde_json::to_string(&prompts()).unwrap();
    let printed = python::run(&["-c", REFERENCE, hf.to_str().unwrap(), &NEW_TOKENS.to_string(), &prompts, CHAT]);
    (exported, serde_json::from_str(printed.trim()).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_native_decoder_generates_what_hugging_face_generates_through_every_front() {
    let dir = TempDir::new("native-decoder");
    let (exported, reference) = export(dir.path(), build_tiny_llm);
    let cluster = Cluster::builder().nodes(vec![NodeSpec::bare("decoder-node")]).start().await.unwrap();
    let client = reqwest::Client::new();

    // Publish with the CLI: model.pt and tokenizer.json as artifacts, the
    // spec and the chat template in the config.
    let published = ok(maas(
        &cluster,
        ADMIN_TOKEN,
        &["decoder", MODEL, "--dir", exported.to_str().unwrap(), "--cache-bytes", &(32u64 << 20).to_string()],
    ));
    assert!(published.contains(&format!("decoder published: {MODEL} version 1")), "{published}");
    wait_ready(&cluster, MODEL).await.unwrap();
    let key =
        create_key(&cluster, &json!({"tenant": "readers", "role": "inference", "scope": [MODEL]})).await.unwrap().key;

    // One prompt through every front, whole and streamed.
    let first = &prompts()[3];
    let expected = reference["prompts"][3]["text"].as_str().unwrap();
    assert!(!expected.is_empty());
    let greedy = json!({"max_tokens": NEW_TOKENS, "temperature": 0});
    let generate = json!({"text_input": first, "parameters": greedy});
    let (status, text) = post(&client, &cluster.url(&format!("/v2/models/{MODEL}/generate")), &key, &generate).await;
    assert_eq!(status, 200, "{text}");
    let answer: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(answer["text_output"], expected, "generate");
    assert_eq!(answer["model_version"], "1");
    let (status, text) =
        post(&client, &cluster.url(&format!("/v2/models/{MODEL}/generate_stream")), &key, &generate).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(streamed_text(&text), expected, "generate_stream");

    let completion = json!({"model": MODEL, "prompt": first, "max_tokens": NEW_TOKENS, "temperature": 0});
    let (status, text) = post(&client, &cluster.url("/v1/completions"), &key, &completion).await;
    assert_eq!(status, 200, "{text}");
    let answer: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(answer["choices"][0]["text"], expected, "completions");
    assert_eq!(answer["model"], MODEL);
    assert_eq!(answer["choices"][0]["finish_reason"], "length");
    assert_eq!(answer["usage"]["completion_tokens"], NEW_TOKENS);
    assert_eq!(answer["usage"]["prompt_tokens"], reference["prompts"][3]["prompt_tokens"]);
    let mut streamed = completion.clone();
    streamed["stream"] = json!(true);
    streamed["stream_options"] = json!({"include_usage": true});
    let (status, text) = post(&client, &cluster.url("/v1/completions"), &key, &streamed).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(streamed_text(&text), expected, "streamed completions");
    assert_eq!(events(&text).last().map(String::as_str), Some("[DONE]"));
    assert!(text.contains(&format!("\"completion_tokens\":{NEW_TOKENS}")), "{text}");

    let chat_expected = reference["chat"]["text"].as_str().unwrap();
    let chat = json!({"model": MODEL, "messages": [{"role": "user", "content": CHAT}],
                      "max_tokens": NEW_TOKENS, "temperature": 0});
    let (status, text) = post(&client, &cluster.url("/v1/chat/completions"), &key, &chat).await;
    assert_eq!(status, 200, "{text}");
    let answer: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(answer["choices"][0]["message"]["content"], chat_expected, "chat");
    assert_eq!(answer["usage"]["prompt_tokens"], reference["chat"]["prompt_tokens"]);
    let mut chat_stream = chat.clone();
    chat_stream["stream"] = json!(true);
    let (status, text) = post(&client, &cluster.url("/v1/chat/completions"), &key, &chat_stream).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(streamed_text(&text), chat_expected, "streamed chat");

    // Sixteen streams at once, prompts of different lengths: each equals
    // its own reference, and the node stepped several sequences together.
    concurrent_streams_equal_their_references(&cluster, &client, &key, MODEL, 16, &reference).await;

    // A stop string cuts the text where it appears.
    let stop: String = expected.chars().skip(6).take(3).collect();
    let cut = &expected[..expected.find(&stop).unwrap()];
    let mut stopped = completion.clone();
    stopped["stop"] = json!([stop]);
    let (status, text) = post(&client, &cluster.url("/v1/completions"), &key, &stopped).await;
    assert_eq!(status, 200, "{text}");
    let answer: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(answer["choices"][0]["text"], cut);
    assert_eq!(answer["choices"][0]["finish_reason"], "stop");

    // A prompt past the context, or a prompt and max_tokens past it: 400.
    let long = "sea ".repeat(3000);
    let (status, text) =
        post(&client, &cluster.url("/v1/completions"), &key, &json!({"model": MODEL, "prompt": long})).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("context"), "{text}");
    let (status, text) = post(
        &client,
        &cluster.url("/v1/completions"),
        &key,
        &json!({"model": MODEL, "prompt": "sea", "max_tokens": 100000}),
    )
    .await;
    assert_eq!(status, 400, "{text}");

    // A client that goes away mid-stream frees its cache on the node.
    let node_metrics = format!("http://{}/metrics", cluster.nodes[0].metrics_addr);
    let cache = |text: &str| metric_sum(text, "maas_node_decoder_cache_reserved_bytes", &[("model", MODEL)]);
    let long_stream = json!({"model": MODEL, "prompt": "sea", "max_tokens": 1500, "temperature": 0, "stream": true});
    let response =
        client.post(cluster.url("/v1/completions")).bearer_auth(&key).json(&long_stream).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.bytes_stream();
    let _ = body.next().await;
    let _ = body.next().await;
    let held = cache(&client.get(&node_metrics).send().await.unwrap().text().await.unwrap());
    assert!(held > 0.0, "no cache is reserved while a sequence runs");
    drop(body);
    wait_until("the cache to be freed", Duration::from_secs(10), async || {
        let text = client.get(&node_metrics).send().await.unwrap().text().await.unwrap();
        cache(&text) == 0.0
    })
    .await
    .unwrap();

    // A chat template is a program the coordinator runs: a deployer's key
    // may not publish one.
    let described = call(&cluster, Method::GET, &format!("/v1/models/{MODEL}"), None, None).await.unwrap();
    let version = &described.body["versions"][0];
    let deployer =
        create_key(&cluster, &json!({"tenant": "ops", "role": "deployer", "scope": [MODEL]})).await.unwrap().key;
    let again = json!({"config": version["config"], "artifact": {"sha256": version["artifact"]["sha256"]}});
    let path = format!("/v1/models/{MODEL}/versions");
    let refused = call(&cluster, Method::POST, &path, Some(serde_json::to_vec(&again).unwrap()), Some(&deployer));
    let refused = refused.await.unwrap();
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.body.to_string().contains("chat template"), "{}", refused.body);

    // Tensors to a decoder are a clear 400.
    let (status, text) =
        post(&client, &cluster.url(&format!("/v2/models/{MODEL}/infer")), &key, &json!({"inputs": []})).await;
    assert_eq!(status, 400, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_llama_style_decoder_generates_what_hugging_face_generates() {
    const LLAMA: &str = "tiny-llama";
    let dir = TempDir::new("native-llama");
    let (exported, reference) = export(dir.path(), build_tiny_llama);
    let description: Value =
        serde_json::from_str(&std::fs::read_to_string(exported.join("decoder.json")).unwrap()).unwrap();
    assert_eq!(description["architecture"], "llama");
    assert_eq!(description["heads"], 2, "the cache holds the key/value heads: {description}");
    let cluster = Cluster::builder().nodes(vec![NodeSpec::bare("llama-node")]).start().await.unwrap();
    let client = reqwest::Client::new();
    let published = ok(maas(
        &cluster,
        ADMIN_TOKEN,
        &["decoder", LLAMA, "--dir", exported.to_str().unwrap(), "--cache-bytes", &(32u64 << 20).to_string()],
    ));
    assert!(published.contains(&format!("decoder published: {LLAMA} version 1")), "{published}");
    wait_ready(&cluster, LLAMA).await.unwrap();
    let key =
        create_key(&cluster, &json!({"tenant": "readers", "role": "inference", "scope": [LLAMA]})).await.unwrap().key;

    let greedy = json!({"max_tokens": NEW_TOKENS, "temperature": 0});
    let generate = json!({"text_input": prompts()[5], "parameters": greedy});
    let (status, text) = post(&client, &cluster.url(&format!("/v2/models/{LLAMA}/generate")), &key, &generate).await;
    assert_eq!(status, 200, "{text}");
    let answer: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(answer["text_output"], reference["prompts"][5]["text"], "generate");

    let chat = json!({"model": LLAMA, "messages": [{"role": "user", "content": CHAT}],
                      "max_tokens": NEW_TOKENS, "temperature": 0, "stream": true});
    let (status, text) = post(&client, &cluster.url("/v1/chat/completions"), &key, &chat).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(streamed_text(&text), reference["chat"]["text"].as_str().unwrap(), "streamed chat");

    // Concurrent streams of different lengths, padded into shared steps.
    concurrent_streams_equal_their_references(&cluster, &client, &key, LLAMA, 8, &reference).await;

    // Sampling: a seed repeats its text, another seed draws another, and
    // top_k 1 is greedy whatever the temperature.
    let sampled = |seed: u64, top_k: u32| {
        json!({"model": LLAMA, "prompt": prompts()[5], "max_tokens": NEW_TOKENS, "temperature": 1.0,
               "top_p": 0.9, "top_k": top_k, "seed": seed})
    };
    let mut texts = Vec::new();
    for body in [sampled(7, 0), sampled(7, 0), sampled(8, 0), sampled(9, 1)] {
        let (status, text) = post(&client, &cluster.url("/v1/completions"), &key, &body).await;
        assert_eq!(status, 200, "{text}");
        let answer: Value = serde_json::from_str(&text).unwrap();
        texts.push(answer["choices"][0]["text"].as_str().unwrap().to_string());
    }
    assert_eq!(texts[0], texts[1], "the same seed drew different text");
    assert_ne!(texts[0], texts[2], "two seeds drew the same text");
    assert_ne!(texts[0], reference["prompts"][5]["text"].as_str().unwrap(), "sampling gave the greedy text");
    assert_eq!(texts[3], reference["prompts"][5]["text"].as_str().unwrap(), "top_k 1 is not greedy");

    // The latency detector watches time to first token: after its warm-up
    // on short prompts, prompts that take far longer to prefill raise a
    // latency alert on the model.
    let load = |prompt: String, seconds: u64| {
        let (client, url, key) = (client.clone(), cluster.url("/v1/completions"), key.clone());
        async move {
            let body = json!({"model": LLAMA, "prompt": prompt, "max_tokens": 1, "temperature": 0});
            let until = std::time::Instant::now() + Duration::from_secs(seconds);
            while std::time::Instant::now() < until {
                let (status, text) = post(&client, &url, &key, &body).await;
                assert_eq!(status, 200, "{text}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    futures_util::future::join(load("the sea".into(), 23), load("the wind".into(), 23)).await;
    let alerts = call(&cluster, Method::GET, "/v1/alerts", None, None).await.unwrap().ok().unwrap();
    assert!(alerts["active"].as_array().unwrap().is_empty(), "alerts under normal load: {alerts}");
    let slow = async {
        futures_util::future::join(load(" the".repeat(1900), 30), load(" the".repeat(1800), 30)).await;
    };
    let watch = wait_until("a latency alert on the decoder", Duration::from_secs(30), async || {
        let alerts = call(&cluster, Method::GET, "/v1/alerts", None, None).await.unwrap().ok().unwrap();
        let active = alerts["active"].as_array().cloned().unwrap_or_default();
        active.iter().any(|a| a["kind"] == "latency" && a["model"] == LLAMA)
    });
    tokio::select! {
        raised = watch => { raised.unwrap(); }
        () = slow => panic!("no latency alert while prompts took far longer to prefill"),
    }
}
