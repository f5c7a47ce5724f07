//! The HTTP front: the Open Inference Protocol v2 with Triton's binary
//! tensor and model configuration extensions, plus `/metrics`.
//!
//! ```text
//! GET  /v2/health/live | /v2/health/ready       health
//! GET  /v2                                      server metadata
//! GET  /v2/models/{m}[/versions/{v}]            model metadata
//! GET  /v2/models/{m}[/versions/{v}]/ready      model readiness
//! GET  /v2/models/{m}[/versions/{v}]/config     model configuration (Triton's JSON form)
//! POST /v2/models/{m}[/versions/{v}]/infer      inference, JSON or binary tensors
//! GET  /v2/models[/{m}[/versions/{v}]]/stats     statistics (Triton's extension)
//! GET  /metrics                                 Prometheus text
//! ```
//!
//! The management API (`/v1/...`) and Triton's repository extension are in
//! [`admin`]; alerts, feedback and evaluation in [`monitoring`]. Every error body is `{"error": "<message>"}`.

mod admin;
mod body;
mod codec;
mod error;
pub mod health;
mod infer;
mod model;
mod monitoring;
pub mod routes;

use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use anyhow::Context;
use metrics_exporter_prometheus::PrometheusHandle;

use maas_registry::{ArtifactStore, Registry};
use tokio::sync::Notify;

use crate::auth::Tokens;
use crate::cluster::ClusterView;
use crate::error::ServeError;
use crate::infer::Inference;
use crate::nodes::NodeSet;

/// What every handler can reach.
pub struct AppState {
    /// The inference path.
    pub inference: Inference,
    /// Prometheus renderer.
    pub prometheus: PrometheusHandle,
    /// Largest request body.
    pub max_body_bytes: usize,
    /// Largest model upload.
    pub max_upload_bytes: u64,
    /// The model registry.
    pub registry: Registry,
    /// Where uploaded artifacts go.
    pub artifacts: ArtifactStore,
    /// Accepted tokens.
    pub tokens: Tokens,
    /// Links to the nodes.
    pub nodes: Arc<NodeSet>,
    /// Membership, placement and leadership, in cluster mode.
    pub cluster: Option<ClusterView>,
    /// Wakes the reconciler.
    pub reconcile: Arc<Notify>,
}

impl AppState {
    /// After a registry write: applies the registry's routing here before
    /// the write is acknowledged, and asks the reconciler for a round.
    pub async fn registry_changed(&self) {
        match self.registry.list().await {
            Ok(stored) => {
                let records: Vec<_> = stored.into_iter().map(|s| s.record).collect();
                self.inference.table().apply_registry(&records);
            }
            Err(error) => tracing::warn!(%error, "could not reread the registry after a write"),
        }
        self.reconcile.notify_one();
    }
}

/// Starts the HTTP server on `addr` with `workers` threads.
pub fn serve(addr: SocketAddr, workers: usize, state: Arc<AppState>) -> anyhow::Result<actix_web::dev::Server> {
    let data = web::Data::from(state);
    let server = HttpServer::new(move || {
        App::new().app_data(data.clone()).configure(routes::register).default_service(web::to(unknown_route))
    })
    .workers(workers.max(1))
    .backlog(4096)
    .max_connection_rate(1024)
    .disable_signals()
    .bind(addr)
    .with_context(|| format!("binding HTTP on {addr}"))?
    .run();
    Ok(server)
}

/// `GET /metrics`: Prometheus text.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(state.prometheus.render())
}

async fn unknown_route(request: HttpRequest) -> HttpResponse {
    error::response(&ServeError::RouteNotFound(format!("no route for {} {}", request.method(), request.path())))
}
