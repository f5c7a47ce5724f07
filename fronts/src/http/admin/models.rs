//! Listing, describing, publishing and deleting model versions.

use crate::http::error::HttpResult;
use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::{web, HttpRequest, HttpResponse};
use maas_protocol::{LoadModel, ModelConfig, NodeRequest, NodeResponse};
use maas_registry::{Lineage, ModelRecord};
use serde::Deserialize;
use serde_json::{json, Value};

use super::parse_json;
use crate::state::AppState;
use maas_serving::error::{ServeError, ServeResult};

fn path_param<'a>(request: &'a HttpRequest, name: &str) -> &'a str {
    request.match_info().get(name).unwrap_or_default()
}

fn summary(state: &AppState, record: &ModelRecord) -> Value {
    let table = state.inference.table();
    let ready: Vec<u64> = record
        .versions
        .keys()
        .copied()
        .filter(|&v| table.resolve(&record.name, Some(&v.to_string())).is_ok_and(|m| m.shared.is_ready()))
        .collect();
    json!({
        "name": record.name,
        "versions": record.versions.keys().collect::<Vec<_>>(),
        "ready_versions": ready,
        "aliases": record.aliases.iter().map(|(name, a)| (name.clone(), a.version)).collect::<BTreeMap<_, _>>(),
        "split": record.split,
        "loaded": record.loaded,
    })
}

/// `GET /v1/models`.
pub async fn list(state: web::Data<AppState>) -> HttpResult {
    let records = state.registry.list().await?;
    let models: Vec<Value> = records.iter().map(|s| summary(&state, &s.record)).collect();
    Ok(HttpResponse::Ok().json(json!({ "models": models })))
}

/// `GET /v1/models/{m}`.
pub async fn describe(state: web::Data<AppState>, request: HttpRequest) -> HttpResult {
    let stored = state.registry.get(path_param(&request, "model")).await?;
    let record = &stored.record;
    let mut body = summary(&state, record);
    let table = state.inference.table();
    body["aliases"] = json!(record.aliases);
    body["revision"] = json!(stored.revision);
    body["versions"] = record
        .versions
        .values()
        .map(|v| {
            let replicas = table
                .resolve(&record.name, Some(&v.version.to_string()))
                .map(|m| m.shared.replicas.ready_count())
                .unwrap_or(0);
            json!({
                "version": v.version,
                "config": v.config,
                "artifact": v.artifact,
                "lineage": v.lineage,
                "ready_replicas": replicas,
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(body))
}

#[derive(Deserialize)]
struct PublishBody {
    config: ModelConfig,
    artifact: ArtifactName,
    source: Option<String>,
    parent: Option<u64>,
}

#[derive(Deserialize)]
struct ArtifactName {
    sha256: String,
}

/// `POST /v1/models/{m}/versions`: checks the artifact on a node, then publishes.
pub async fn publish(state: web::Data<AppState>, request: HttpRequest, body: web::Bytes) -> HttpResult {
    let model = path_param(&request, "model").to_string();
    let body: PublishBody = parse_json(&body)?;
    if body.config.name != model {
        return Err(ServeError::InvalidRequest(format!(
            "the configuration names model '{}' but the path says '{model}'",
            body.config.name
        ))
        .into());
    }
    body.config.check().map_err(ServeError::InvalidRequest)?;
    let artifact = state.artifacts.describe(&body.artifact.sha256).await?.ok_or_else(|| {
        ServeError::InvalidRequest(format!(
            "artifact {} is not in the store; upload it first (PUT /v1/artifacts)",
            body.artifact.sha256
        ))
    })?;
    trial_load(&state, &body.config, &artifact).await?;
    let uploaded_by = request.headers().get("X-Maas-User").and_then(|v| v.to_str().ok()).unwrap_or("admin").to_string();
    let lineage = Lineage {
        uploaded_by,
        uploaded_at: SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
        source: body.source,
        parent: body.parent,
    };
    let version = state.registry.publish_version(body.config, artifact.clone(), lineage).await?;
    state.registry_changed().await;
    tracing::info!(model, version, sha256 = %artifact.sha256, "version published");
    Ok(HttpResponse::Created().json(json!({ "model": model, "version": version, "sha256": artifact.sha256 })))
}

/// Loads the version once on a node that is up: the artifact must be
/// TorchScript and its warm-up forward must accept the configured shapes.
async fn trial_load(state: &AppState, config: &ModelConfig, artifact: &maas_registry::ArtifactRef) -> ServeResult<()> {
    let links = state.nodes.list();
    let link =
        links.iter().filter(|l| l.is_up()).min_by_key(|l| l.outstanding()).ok_or_else(|| {
            ServeError::Unavailable("no node is up to check the model on; start a node and retry".into())
        })?;
    let request = NodeRequest::Check(LoadModel {
        model: config.name.clone(),
        version: 0,
        config_json: serde_json::to_string(config).map_err(|e| ServeError::Internal(e.to_string()))?,
        sha256: artifact.sha256.clone(),
        size: artifact.size,
    });
    match link.command(&request).await {
        Ok(NodeResponse::Done) => Ok(()),
        Ok(NodeResponse::Error(error)) => {
            Err(ServeError::InvalidRequest(format!("the model failed its trial load: {error}")))
        }
        Ok(other) => Err(ServeError::Internal(format!("node answered a check with {other:?}"))),
        Err(error) => Err(ServeError::Unavailable(format!("could not check the model: {error}"))),
    }
}

/// `DELETE /v1/models/{m}/versions/{v}`.
pub async fn delete_version(state: web::Data<AppState>, request: HttpRequest) -> HttpResult {
    let model = path_param(&request, "model");
    let version: u64 = path_param(&request, "version")
        .parse()
        .map_err(|_| ServeError::InvalidRequest("the version must be a number".into()))?;
    state.registry.delete_version(model, version).await?;
    state.registry_changed().await;
    Ok(HttpResponse::Ok().json(json!({ "model": model, "deleted_version": version })))
}
