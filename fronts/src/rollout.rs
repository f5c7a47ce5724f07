//! Rollouts that wait for readiness. Before an alias or the split moves to
//! a version, or an unloaded model is loaded (Triton's repository load), the version is staged in the registry, so that placement and
//! the reconciler load it like the versions it is about to replace; the move
//! waits until this coordinator has it ready (warm) on as many replicas as
//! its `replicas.min` asks, then happens in one registry write, so every
//! request routed after it reaches a ready version. A version loaded on
//! demand needs no replica first; an external engine's, one URL that
//! answers. One that is not ready within
//! [`READY_WITHIN`] is unstaged and the alias or split stays where it was.
//!
//! The wait and the move run in a task of their own: a client that stops
//! waiting neither cancels the move nor leaves the version staged.

use std::future::Future;
use std::time::{Duration, Instant};

use actix_web::web;
use maas_registry::RegistryResult;
use maas_serving::{ServeError, ServeResult};

use crate::state::AppState;

/// The longest a move waits for its target to be ready.
pub const READY_WITHIN: Duration = Duration::from_secs(120);

/// How often readiness is looked at.
const POLL: Duration = Duration::from_millis(100);

/// Makes `versions` of `model` ready, then runs `make_move` with the
/// state; answers what the move answers.
pub async fn move_when_ready<T, F, Fut>(
    state: web::Data<AppState>,
    model: String,
    versions: Vec<u64>,
    make_move: F,
) -> ServeResult<T>
where
    T: Send + 'static,
    F: FnOnce(web::Data<AppState>) -> Fut + Send + 'static,
    Fut: Future<Output = RegistryResult<T>> + Send,
{
    let task = tokio::spawn(async move {
        let staged = stage_unready(&state, &model, &versions).await?;
        let moved = match wait_ready(&state, &model, &versions).await {
            Ok(()) => make_move(state.clone()).await.map_err(ServeError::from),
            Err(error) => Err(error),
        };
        if moved.is_err() {
            unstage(&state, &model, &staged).await;
        }
        state.model_changed(&model).await;
        moved
    });
    task.await.map_err(|error| ServeError::Internal(format!("the rollout task failed: {error}")))?
}

/// Stages the versions not ready yet; returns them.
async fn stage_unready(state: &AppState, model: &str, versions: &[u64]) -> ServeResult<Vec<u64>> {
    let mut staged = Vec::new();
    for &version in versions {
        if shortfall(state, model, version).is_none() {
            continue;
        }
        state.registry.stage(model, version, true).await?;
        staged.push(version);
    }
    if !staged.is_empty() {
        tracing::info!(%model, versions = ?staged, "staged for a rollout; waiting until ready");
        state.model_changed(model).await;
    }
    Ok(staged)
}

/// Unstages what a rollout that did not happen staged.
async fn unstage(state: &AppState, model: &str, staged: &[u64]) {
    for &version in staged {
        if let Err(error) = state.registry.stage(model, version, false).await {
            tracing::warn!(%model, version, %error, "could not unstage a version");
        }
    }
}

/// Waits until every one of `versions` is ready, or says which is not.
async fn wait_ready(state: &AppState, model: &str, versions: &[u64]) -> ServeResult<()> {
    let started = Instant::now();
    loop {
        let missing: Vec<String> = versions.iter().filter_map(|&v| shortfall(state, model, v)).collect();
        if missing.is_empty() {
            return Ok(());
        }
        if started.elapsed() >= READY_WITHIN {
            return Err(ServeError::Unavailable(format!(
                "nothing moved: {} within {} s",
                missing.join("; "),
                READY_WITHIN.as_secs()
            )));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Why `version` of `model` cannot take traffic yet, or `None` once it can.
pub(crate) fn shortfall(state: &AppState, model: &str, version: u64) -> Option<String> {
    let Some(found) = state.inference.table().entry(model, version) else {
        return Some(format!("version {version} of model '{model}' is not loaded yet"));
    };
    if found.shared.config.platform == maas_protocol::Platform::Pipeline {
        // A pipeline's steps are models of their own, with their own rollouts.
        return None;
    }
    if found.shared.engine.is_some() {
        // An external engine's version is ready while one of its URLs answers.
        return (!found.shared.is_ready())
            .then(|| format!("no URL of the engine of version {version} of model '{model}' answers"));
    }
    let min = found.shared.config.replicas.min as usize;
    let ready = found.shared.replicas.ready_count();
    (ready < min).then(|| format!("version {version} of model '{model}' is ready on {ready} of {min} replicas"))
}
