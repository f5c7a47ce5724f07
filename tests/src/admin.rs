//! Calls to the management API with the test admin token.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use crate::cluster::{models_dir, Cluster, ADMIN_TOKEN};
use crate::wait::wait_until;

/// A management answer: status and JSON body.
#[derive(Debug)]
pub struct AdminAnswer {
    /// Status code.
    pub status: u16,
    /// Body as JSON (Null when empty).
    pub body: Value,
}

impl AdminAnswer {
    /// The body of a 2xx answer, or an error with the answer.
    pub fn ok(self) -> Result<Value> {
        if !(200..300).contains(&self.status) {
            bail!("status {}: {}", self.status, self.body);
        }
        Ok(self.body)
    }

    /// The `error` message.
    pub fn error(&self) -> String {
        self.body["error"].as_str().unwrap_or_default().to_string()
    }
}

/// Sends a management request; `token` defaults to the admin token.
pub async fn call(
    cluster: &Cluster,
    method: reqwest::Method,
    path: &str,
    body: Option<Vec<u8>>,
    token: Option<&str>,
) -> Result<AdminAnswer> {
    let mut request = cluster.client.request(method, cluster.url(path));
    if let Some(token) = token.or(Some(ADMIN_TOKEN)).filter(|t| !t.is_empty()) {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.body(body);
    }
    let response = request.send().await.with_context(|| format!("calling {path}"))?;
    let status = response.status().as_u16();
    let text = response.text().await?;
    Ok(AdminAnswer { status, body: serde_json::from_str(&text).unwrap_or(Value::Null) })
}

/// A key the management API issued: the secret and its id.
pub struct IssuedKey {
    /// The key, to send as a bearer token.
    pub key: String,
    /// Its id, to revoke it by.
    pub id: String,
}

/// Creates a key as `spec` says (`{tenant, role, scope, limits?, priority?}`)
/// through the coordinator at `base`, with the admin token.
pub async fn create_key_at(client: &reqwest::Client, base: &str, spec: &Value) -> Result<IssuedKey> {
    let response = client
        .post(format!("{base}/v1/keys"))
        .bearer_auth(ADMIN_TOKEN)
        .json(spec)
        .send()
        .await
        .context("creating a key")?;
    let status = response.status().as_u16();
    let body: Value = response.json().await.context("the key creation answer")?;
    if status != 201 {
        bail!("creating a key answered {status}: {body}");
    }
    let key = body["key"].as_str().context("no key in the answer")?.to_string();
    let id = body["info"]["id"].as_str().context("no id in the answer")?.to_string();
    anyhow::ensure!(key.starts_with(&format!("maas_{id}_")), "the key {key} does not carry its id {id}");
    Ok(IssuedKey { key, id })
}

/// Creates a key as `spec` says through the cluster's coordinator.
pub async fn create_key(cluster: &Cluster, spec: &Value) -> Result<IssuedKey> {
    create_key_at(&cluster.client, &cluster.url(""), spec).await
}

/// Uploads a file and returns its sha256.
pub async fn upload(cluster: &Cluster, bytes: Vec<u8>) -> Result<String> {
    let body = call(cluster, reqwest::Method::PUT, "/v1/artifacts", Some(bytes), None).await?.ok()?;
    Ok(body["sha256"].as_str().context("sha256 in the answer")?.to_string())
}

/// The example configuration of `example`, renamed to `name`.
pub fn example_config(example: &str, name: &str) -> Value {
    let path = models_dir().join(example).join("config.json");
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("example config")).expect("JSON");
    config["name"] = json!(name);
    // Versions deployed through the registry follow the default policy
    // (the newest, plus any alias or split), whatever the example serves.
    if let Some(fields) = config.as_object_mut() {
        fields.remove("version_policy");
    }
    config
}

/// The TorchScript file of an example version.
pub fn example_artifact(example: &str, version: u64) -> Vec<u8> {
    std::fs::read(models_dir().join(example).join(version.to_string()).join("model.pt")).expect("example model file")
}

/// Publishes a version from a config and an uploaded artifact.
pub async fn publish(cluster: &Cluster, name: &str, config: &Value, sha256: &str) -> Result<AdminAnswer> {
    let body = json!({"config": config, "artifact": {"sha256": sha256}, "source": "tests"});
    call(cluster, reqwest::Method::POST, &format!("/v1/models/{name}/versions"), Some(serde_json::to_vec(&body)?), None)
        .await
}

/// Uploads an example version under `name` and publishes it; returns its version number.
pub async fn deploy_example(cluster: &Cluster, example: &str, example_version: u64, name: &str) -> Result<u64> {
    let sha = upload(cluster, example_artifact(example, example_version)).await?;
    let body = publish(cluster, name, &example_config(example, name), &sha).await?.ok()?;
    body["version"].as_u64().context("version in the answer")
}

/// Points an alias at a version.
pub async fn set_alias(cluster: &Cluster, model: &str, alias: &str, version: u64) -> Result<AdminAnswer> {
    let body = serde_json::to_vec(&json!({"version": version}))?;
    call(cluster, reqwest::Method::PUT, &format!("/v1/models/{model}/aliases/{alias}"), Some(body), None).await
}

/// Sets a model's traffic split: `(version, weight)` pairs.
pub async fn set_split(cluster: &Cluster, model: &str, split: &[(u64, u32)]) -> Result<AdminAnswer> {
    let entries: Vec<Value> =
        split.iter().map(|(version, weight)| json!({"version": version, "weight": weight})).collect();
    let body = serde_json::to_vec(&json!({ "split": entries }))?;
    call(cluster, reqwest::Method::PUT, &format!("/v1/models/{model}/split"), Some(body), None).await
}

/// The registry's description of a model.
pub async fn describe(cluster: &Cluster, model: &str) -> Result<AdminAnswer> {
    call(cluster, reqwest::Method::GET, &format!("/v1/models/{model}"), None, None).await
}

/// Waits until `model` (a name, `name@alias`, or with `/versions/N`) is ready.
pub async fn wait_ready(cluster: &Cluster, model_path: &str) -> Result<()> {
    let url = cluster.url(&format!("/v2/models/{model_path}/ready"));
    wait_until(&format!("{model_path} to become ready"), Duration::from_secs(60), async || {
        cluster.client.get(&url).bearer_auth(ADMIN_TOKEN).send().await.is_ok_and(|r| r.status().is_success())
    })
    .await?;
    Ok(())
}
