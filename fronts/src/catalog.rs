//! What both fronts (HTTP and gRPC) tell about models: the repository
//! index with each version's state, loading and unloading, and the
//! versions of a model.

use actix_web::web;
use serde::Serialize;

use crate::state::AppState;
use maas_serving::error::ServeResult;
use maas_tenancy::Caller;

/// One version in the repository index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IndexEntry {
    /// Model name.
    pub name: String,
    /// Version number, as text.
    pub version: String,
    /// `READY`, `LOADING` or `UNAVAILABLE`.
    pub state: &'static str,
    /// Why it is not ready, if it is not.
    pub reason: &'static str,
}

/// Every registry version with its state.
pub async fn repository_index(state: &AppState, caller: &Caller) -> ServeResult<Vec<IndexEntry>> {
    let table = state.inference.table();
    let mut entries = Vec::new();
    for stored in state.registry.list().await? {
        let record = stored.record;
        if !caller.sees(&record.name) {
            continue;
        }
        let to_load = record.versions_to_load();
        for version in record.versions.keys() {
            let ready = table.resolve(&record.name, Some(&version.to_string())).is_ok_and(|m| m.shared.is_ready());
            let (state_name, reason) = match (record.loaded, ready, to_load.contains(version)) {
                (false, _, _) => ("UNAVAILABLE", "unloaded"),
                (true, true, _) => ("READY", ""),
                (true, false, true) => ("LOADING", "waiting for a node to load it"),
                (true, false, false) => ("UNAVAILABLE", "not selected by the version policy"),
            };
            entries.push(IndexEntry {
                name: record.name.clone(),
                version: version.to_string(),
                state: state_name,
                reason,
            });
        }
    }
    Ok(entries)
}

/// Marks a model unloaded in the registry, or loaded once the versions it
/// would serve are ready (Triton's load answers when the model can serve
/// or failed to load), and applies it here.
pub async fn set_loaded(state: web::Data<AppState>, model: &str, loaded: bool) -> ServeResult<()> {
    let record = state.registry.get(model).await?.record;
    if !loaded || record.loaded {
        state.registry.set_loaded(model, loaded).await?;
        state.model_changed(model).await;
        return Ok(());
    }
    let name = model.to_string();
    crate::rollout::move_when_ready(state, name.clone(), record.versions_served(), move |state| async move {
        state.registry.set_loaded(&name, true).await
    })
    .await
}

/// The versions of `name` this coordinator serves.
pub fn versions_of(state: &AppState, name: &str) -> Vec<String> {
    state
        .inference
        .table()
        .all()
        .iter()
        .filter(|v| v.shared.name == name)
        .map(|v| v.shared.version.to_string())
        .collect()
}
