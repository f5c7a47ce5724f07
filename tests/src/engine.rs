//! An external LLM engine for the tests: `transformers serve` (Hugging
//! Face's OpenAI-compatible server) on loopback, serving a tiny GPT-2 with
//! random weights that `tests/fixtures/tiny_llm.py` builds locally.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use crate::cluster::{free_tcp_port, workspace_root, Process};
use crate::wait::wait_until;

/// Builds the tiny GPT-2 into `dir`.
pub fn build_tiny_llm(dir: &Path) -> Result<()> {
    build_tiny_model(dir, "gpt2")
}

/// Builds the tiny Llama (grouped-query attention, rotary positions) into
/// `dir`.
pub fn build_tiny_llama(dir: &Path) -> Result<()> {
    build_tiny_model(dir, "llama")
}

fn build_tiny_model(dir: &Path, arch: &str) -> Result<()> {
    let output = Command::new(workspace_root().join(".venv/bin/python"))
        .arg(workspace_root().join("tests/fixtures/tiny_llm.py"))
        .arg(dir)
        .args(["--arch", arch])
        .output()
        .context("running tests/fixtures/tiny_llm.py")?;
    if !output.status.success() {
        bail!("tiny_llm.py failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(())
}

/// A running engine, killed when dropped.
pub struct Engine {
    process: Process,
    /// Its base URL, `http://127.0.0.1:PORT`.
    pub url: String,
    /// The model name it serves (the folder it loaded).
    pub model: String,
}

impl Engine {
    /// Starts `transformers serve` on the model in `model_dir`, logging to
    /// `log`, and waits until it answers.
    pub async fn start(model_dir: &Path, log: PathBuf) -> Result<Engine> {
        let port = free_tcp_port();
        let model = model_dir.display().to_string();
        let mut command = Command::new(workspace_root().join(".venv/bin/transformers"));
        command
            .args(["serve", &model, "--host", "127.0.0.1", "--port", &port.to_string(), "--device", "cpu"])
            .env("HF_HUB_OFFLINE", "1")
            .env("OMP_NUM_THREADS", "1");
        let process = Process::spawn(&mut command, log)?;
        let engine = Engine { process, url: format!("http://127.0.0.1:{port}"), model };
        let client = reqwest::Client::new();
        let health = format!("{}/health", engine.url);
        wait_until("the engine answers /health", Duration::from_secs(180), async || {
            client.get(&health).send().await.is_ok_and(|r| r.status().is_success())
        })
        .await
        .with_context(|| format!("the engine did not start: {}", engine.process.log_tail()))?;
        Ok(engine)
    }

    /// Kills the engine at once.
    pub fn kill(&mut self) {
        self.process.kill();
    }
}

/// A TLS front (`tests/fixtures/tls_proxy.py`) before a plain HTTP server on
/// loopback, killed when dropped.
pub struct TlsFront {
    _process: Process,
    /// Its base URL, `https://127.0.0.1:PORT`.
    pub url: String,
}

impl TlsFront {
    /// Serves `cert` and `key` (PEM) on a free port, passing the bytes to
    /// `target_port`; waits until it accepts connections.
    pub async fn start(target_port: u16, cert: &Path, key: &Path, log: PathBuf) -> Result<TlsFront> {
        let port = free_tcp_port();
        let mut command = Command::new(workspace_root().join(".venv/bin/python"));
        command
            .arg(workspace_root().join("tests/fixtures/tls_proxy.py"))
            .args([port.to_string(), target_port.to_string()])
            .args([cert, key]);
        let process = Process::spawn(&mut command, log)?;
        wait_until("the TLS front accepts connections", Duration::from_secs(20), async || {
            tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok()
        })
        .await
        .with_context(|| format!("the TLS front did not start: {}", process.log_tail()))?;
        Ok(TlsFront { _process: process, url: format!("https://127.0.0.1:{port}") })
    }
}

/// A greedy chat completion request for `model`.
pub fn chat(model: &str, stream: bool, max_tokens: u32) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "Tell me about the sea."}],
           "max_tokens": max_tokens, "temperature": 0, "stream": stream})
}

/// The `data:` payloads of a server-sent event stream.
pub fn events(text: &str) -> Vec<String> {
    text.split("\n\n").filter_map(|e| e.strip_prefix("data: ")).map(str::to_string).collect()
}

/// The text of a streamed chat or completion, from its chunks.
pub fn streamed_text(payloads: &[String]) -> String {
    payloads
        .iter()
        .filter(|p| *p != "[DONE]")
        .map(|p| serde_json::from_str::<Value>(p).unwrap())
        .flat_map(|chunk| chunk["choices"].as_array().cloned().unwrap_or_default())
        .map(|choice| choice["delta"]["content"].as_str().or(choice["text"].as_str()).unwrap_or_default().to_string())
        .collect()
}
