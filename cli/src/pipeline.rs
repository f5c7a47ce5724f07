//! `maas pipeline`: publishing a pipeline's configuration as a model's next
//! version. A processor's artifact (a tokenizer's `tokenizer.json`, a post
//! step's labels) may be given as a file path, relative to the
//! configuration's folder: it is uploaded and replaced by its digest.

use std::path::Path;

use anyhow::{Context, Result};
use maas_api::{PublishRequest, Published};
use maas_protocol::ModelConfig;
use reqwest::Method;
use serde_json::{json, Value};

use crate::client::Client;

/// Uploads the files the pipeline in `config_path` names and publishes it
/// as `name`'s next version.
pub async fn publish(client: &Client, name: &str, config_path: &Path, show: bool) -> Result<Published> {
    let text = std::fs::read_to_string(config_path).with_context(|| format!("reading {}", config_path.display()))?;
    let mut document: Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", config_path.display()))?;
    document["name"] = json!(name);
    let folder = config_path.parent().unwrap_or(Path::new("."));
    let steps = document["pipeline"]["steps"].as_array_mut().context("the configuration has no pipeline.steps")?;
    for step in steps {
        for (processor, field) in [("tokenizer", "tokenizer"), ("post", "labels")] {
            let Some(named) = step[processor][field].as_str() else { continue };
            if named.len() == 64 && named.bytes().all(|b| b.is_ascii_hexdigit()) {
                continue;
            }
            let uploaded = client.upload(&folder.join(named), show).await?;
            step[processor][field] = json!(uploaded.sha256);
        }
    }
    let config: ModelConfig = serde_json::from_value(document)
        .with_context(|| format!("{} is not a pipeline configuration", config_path.display()))?;
    let request = PublishRequest {
        config,
        artifact: None,
        engine_key: None,
        source: Some(config_path.display().to_string()),
        parent: None,
    };
    client.send_as(Method::POST, &format!("/v1/models/{name}/versions"), &request).await
}
