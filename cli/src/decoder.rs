//! `maas decoder`: publishing a decoder exported by
//! `scripts/export_decoder.py` as a model's next version. Its `model.pt`
//! and `tokenizer.json` are uploaded as artifacts; the config carries the
//! shape from `decoder.json`, the tokenizer's digest and the chat template
//! from `tokenizer_config.json`.

use std::path::Path;

use anyhow::{Context, Result};
use maas_api::{ArtifactName, PublishRequest, Published};
use maas_protocol::ModelConfig;
use reqwest::Method;
use serde_json::{json, Value};

use crate::client::Client;

/// How a decoder version is served.
pub struct DecoderOptions {
    /// Most sequences stepped together.
    pub max_batch_size: u32,
    /// Bytes the sequences' caches may take on one replica.
    pub cache_bytes: Option<u64>,
}

fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))
}

/// Uploads the export in `dir` and publishes it as `name`'s next version.
pub async fn publish(
    client: &Client,
    name: &str,
    dir: &Path,
    options: &DecoderOptions,
    show: bool,
) -> Result<Published> {
    let mut spec = read_json(&dir.join("decoder.json"))?;
    let template = match dir.join("tokenizer_config.json") {
        path if path.exists() => read_json(&path)?.get("chat_template").cloned().unwrap_or(Value::Null),
        _ => Value::Null,
    };
    let tokenizer = client.upload(&dir.join("tokenizer.json"), show).await?;
    let model = client.upload(&dir.join("model.pt"), show).await?;
    spec["tokenizer"] = json!(tokenizer.sha256);
    if template.is_string() {
        spec["chat_template"] = template;
    }
    if let Some(bytes) = options.cache_bytes {
        spec["cache_bytes"] = json!(bytes);
    }
    let config: ModelConfig = serde_json::from_value(json!({
        "name": name, "platform": "pytorch_decoder", "max_batch_size": options.max_batch_size, "decoder": spec,
    }))
    .with_context(|| format!("{} is not a decoder description", dir.join("decoder.json").display()))?;
    let request = PublishRequest {
        config,
        artifact: Some(ArtifactName { sha256: model.sha256 }),
        engine_key: None,
        source: Some(dir.display().to_string()),
        parent: None,
    };
    client.send_as(Method::POST, &format!("/v1/models/{name}/versions"), &request).await
}
