//! Listing, describing, publishing and deleting model versions.

use crate::http::error::HttpResult;
use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::{web, HttpRequest, HttpResponse};
use maas_api::{
    AliasState, Artifact, Lineage, ListedModel, ModelDetail, ModelList, ModelSummary, PublishRequest, Published,
    SplitEntry, VersionDeleted, VersionDetail,
};
use maas_protocol::{LoadModel, ModelConfig};
use maas_registry::ModelRecord;

use super::parse_json;
use super::version_state::{sees_nodes, served_states, version_state};
use crate::state::AppState;
use maas_serving::error::{ServeError, ServeResult};

fn path_param<'a>(request: &'a HttpRequest, name: &str) -> &'a str {
    request.match_info().get(name).unwrap_or_default()
}

/// The versions of `record` with a replica ready on this coordinator.
fn ready_versions(state: &AppState, record: &ModelRecord) -> Vec<u64> {
    let table = state.inference.table();
    record
        .versions
        .keys()
        .copied()
        .filter(|&v| table.resolve(&record.name, Some(&v.to_string())).is_ok_and(|m| m.shared.is_ready()))
        .collect()
}

fn split_of(record: &ModelRecord) -> Vec<SplitEntry> {
    record.split.iter().map(|s| SplitEntry { version: s.version, weight: s.weight }).collect()
}

fn summary(state: &AppState, record: &ModelRecord, show_nodes: bool) -> ModelSummary {
    ModelSummary {
        name: record.name.clone(),
        versions: record.versions.keys().copied().collect(),
        ready_versions: ready_versions(state, record),
        aliases: record.aliases.iter().map(|(name, a)| (name.clone(), a.version)).collect::<BTreeMap<_, _>>(),
        split: split_of(record),
        loaded: record.loaded,
        states: served_states(state, record, show_nodes),
    }
}

/// A model as OpenAI's list shows it.
fn listed(record: &ModelRecord) -> ListedModel {
    let latest = record.latest();
    ListedModel {
        id: record.name.clone(),
        object: "model".into(),
        created: latest.map_or(0, |v| v.lineage.uploaded_at),
        owned_by: latest.and_then(|v| v.lineage.owner.clone()).unwrap_or_else(|| "maas".into()),
    }
}

/// `GET /v1/models`.
pub async fn list(state: web::Data<AppState>, request: HttpRequest) -> HttpResult {
    let caller = crate::http::routes::caller(&request)?;
    let records = state.registry.list().await?;
    let seen: Vec<&ModelRecord> = records.iter().map(|s| &s.record).filter(|r| caller.sees(&r.name)).collect();
    let data = seen.iter().map(|record| listed(record)).collect();
    // The registry's detail (versions, aliases, split) is for keys that
    // may view it; any caller may list the names its scope reaches.
    let models = match caller.permit(maas_tenancy::Action::View, None) {
        Ok(()) => seen.iter().map(|record| summary(&state, record, sees_nodes(&caller))).collect(),
        Err(_) => Vec::new(),
    };
    Ok(HttpResponse::Ok().json(ModelList { object: "list".into(), data, models }))
}

/// `GET /v1/models/{m}`.
pub async fn describe(state: web::Data<AppState>, request: HttpRequest) -> HttpResult {
    let show_nodes = sees_nodes(&crate::http::routes::caller(&request)?);
    let stored = state.registry.get(path_param(&request, "model")).await?;
    let record = &stored.record;
    let table = state.inference.table();
    let versions = record
        .versions
        .values()
        .map(|v| VersionDetail {
            version: v.version,
            config: v.config.clone(),
            artifact: Artifact { sha256: v.artifact.sha256.clone(), size: v.artifact.size },
            lineage: Lineage {
                uploaded_by: v.lineage.uploaded_by.clone(),
                uploaded_at: v.lineage.uploaded_at,
                source: v.lineage.source.clone(),
                parent: v.lineage.parent,
                owner: v.lineage.owner.clone(),
            },
            ready_replicas: table
                .resolve(&record.name, Some(&v.version.to_string()))
                .map(|m| m.shared.replicas.ready_count() as u64)
                .unwrap_or(0),
            state: version_state(&state, record, v.version, show_nodes),
        })
        .collect();
    Ok(HttpResponse::Ok().json(ModelDetail {
        name: record.name.clone(),
        revision: stored.revision,
        versions,
        ready_versions: ready_versions(&state, record),
        aliases: record
            .aliases
            .iter()
            .map(|(name, a)| (name.clone(), AliasState { version: a.version, history: a.history.clone() }))
            .collect(),
        split: split_of(record),
        loaded: record.loaded,
    }))
}

/// `POST /v1/models/{m}/versions`: checks the artifact on a node, then publishes.
pub async fn publish(state: web::Data<AppState>, request: HttpRequest, body: web::Bytes) -> HttpResult {
    let model = path_param(&request, "model").to_string();
    let body: PublishRequest = parse_json(&body)?;
    if body.config.name != model {
        return Err(ServeError::InvalidRequest(format!(
            "the configuration names model '{}' but the path says '{model}'",
            body.config.name
        ))
        .into());
    }
    body.config.check().map_err(ServeError::InvalidRequest)?;
    let caller = crate::http::routes::caller(&request)?;
    if body.config.platform == maas_protocol::Platform::TorchAoti && caller.role() != maas_tenancy::Role::Admin {
        // A package holds a shared library the node loads and runs as it is.
        return Err(ServeError::Forbidden(
            "an AOTInductor package (platform torch_aoti) is native code that nodes run as it is; only an admin key              may publish one"
                .into(),
        )
        .into());
    }
    if state.inference.table().served_from_repository(&model) {
        // One name, one owner: the registry's reconciler would unload the
        // repository's versions, and the nodes would keep the name for theirs.
        return Err(ServeError::Conflict(format!(
            "model '{model}' is served from a node's model repository; publish under another name, or take it \
             out of the repository (--model-repository) first"
        ))
        .into());
    }
    let uploaded_by = request.headers().get("X-Maas-User").and_then(|v| v.to_str().ok()).unwrap_or("admin").to_string();
    let owner = caller.key().map(|key| key.tenant.clone());
    let lineage = maas_registry::Lineage {
        uploaded_by,
        uploaded_at: SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
        source: body.source,
        parent: body.parent,
        owner,
    };
    if body.config.platform == maas_protocol::Platform::OpenaiEngine {
        if caller.role() != maas_tenancy::Role::Admin {
            // The coordinator sends requests, and the engine's credential,
            // to the URLs a version names: only the operator chooses them.
            return Err(ServeError::Forbidden(
                "an external engine's version (platform openai_engine) makes the coordinator send requests to the \
                 URLs it names; only an admin key may publish one"
                    .into(),
            )
            .into());
        }
        return publish_engine(&state, body.config, body.engine_key, lineage).await;
    }
    if body.config.platform == maas_protocol::Platform::Pipeline {
        if body.artifact.is_some() || body.engine_key.is_some() {
            return Err(ServeError::InvalidRequest(
                "a pipeline version has no artifact or engine key: its steps name what they use".into(),
            )
            .into());
        }
        return super::pipeline::publish_pipeline(&state, &caller, body.config, lineage).await;
    }
    if body.engine_key.is_some() {
        return Err(ServeError::InvalidRequest("'engine_key' is for openai_engine versions only".into()).into());
    }
    let name = body.artifact.ok_or_else(|| {
        ServeError::InvalidRequest("'artifact' is required: upload the model first (PUT /v1/artifacts)".into())
    })?;
    let artifact = state.artifacts.describe(&name.sha256).await?.ok_or_else(|| {
        ServeError::InvalidRequest(format!(
            "artifact {} is not in the store; upload it first (PUT /v1/artifacts)",
            name.sha256
        ))
    })?;
    if let Some(decoder) = &body.config.decoder {
        if decoder.chat_template.is_some() && caller.role() != maas_tenancy::Role::Admin {
            // A template is a program the coordinator runs for every chat.
            return Err(ServeError::Forbidden(
                "a chat template is a program every coordinator runs on each chat request; only an admin key may \
                 publish a decoder with one"
                    .into(),
            )
            .into());
        }
        // The coordinator tokenizes with it: it must be there before any request.
        if state.artifacts.describe(&decoder.tokenizer).await?.is_none() {
            return Err(ServeError::InvalidRequest(format!(
                "the decoder's tokenizer artifact {} is not in the store; upload its tokenizer.json first",
                decoder.tokenizer
            ))
            .into());
        }
    }
    trial_load(&state, &body.config, &artifact).await?;
    let version = state.registry.publish_version(body.config, artifact.clone(), lineage).await?;
    state.model_changed(&model).await;
    tracing::info!(model, version, sha256 = %artifact.sha256, "version published");
    Ok(HttpResponse::Created().json(Published { model, version, sha256: artifact.sha256 }))
}

/// Publishes a version an external engine serves, once one of its URLs
/// answers (the trial of an engine: no node loads anything).
async fn publish_engine(
    state: &AppState,
    config: ModelConfig,
    engine_key: Option<String>,
    lineage: maas_registry::Lineage,
) -> HttpResult {
    let model = config.name.clone();
    let endpoint = config.engine.clone().ok_or_else(|| ServeError::InvalidRequest("'engine' is required".into()))?;
    let printable = |key: &String| key.bytes().all(|b| b.is_ascii_graphic());
    if engine_key.as_ref().is_some_and(|key| key.is_empty() || key.len() > 4096 || !printable(key)) {
        return Err(
            ServeError::InvalidRequest("'engine_key' must be 1 to 4096 printable ASCII characters".into()).into()
        );
    }
    let engine_key = engine_key.map(maas_registry::EngineKey::new);
    if let Err(why) = state.generation.probe(&model, &endpoint, engine_key.clone()).await {
        return Err(ServeError::InvalidRequest(format!(
            "no URL of the engine answers /health or /v1/models ({}): {why}",
            endpoint.urls.join(", ")
        ))
        .into());
    }
    let version = state.registry.publish_engine_version(config, engine_key, lineage).await?;
    state.model_changed(&model).await;
    let sha256 = state.registry.get(&model).await?.record.versions.get(&version).map(|v| v.artifact.sha256.clone());
    tracing::info!(model, version, urls = ?endpoint.urls, "engine version published");
    Ok(HttpResponse::Created().json(Published { model, version, sha256: sha256.unwrap_or_default() }))
}

/// Loads the version once on a node that is up: the artifact must be
/// TorchScript and its warm-up forward must accept the configured shapes.
async fn trial_load(state: &AppState, config: &ModelConfig, artifact: &maas_registry::ArtifactRef) -> ServeResult<()> {
    let links = state.nodes.list();
    let link =
        links.iter().filter(|l| l.is_up()).min_by_key(|l| l.outstanding()).ok_or_else(|| {
            ServeError::Unavailable("no node is up to check the model on; start a node and retry".into())
        })?;
    let load = LoadModel {
        model: config.name.clone(),
        version: 0,
        config: config.clone(),
        sha256: artifact.sha256.clone(),
        size: artifact.size,
        memory_bytes: 0,
        memory_measured: false,
    };
    match link.check(load).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(ServeError::InvalidRequest(format!("the model failed its trial load: {error}"))),
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
    state.model_changed(model).await;
    Ok(HttpResponse::Ok().json(VersionDeleted { model: model.to_string(), deleted_version: version }))
}
