//! The HTTP front: the Open Inference Protocol v2 with Triton's binary
//! tensor and model configuration extensions, plus `/metrics`.
//!
//! Every route, with the access it needs, is declared once in [`routes`]
//! (and described for users in `docs/openapi.yaml`, checked against it).
//! The management API (`/v1/...`) and Triton's repository extension are in
//! [`admin`]; alerts, feedback and evaluation in [`monitoring`]; the web
//! console's page and live stream in [`console`]. Every error
//! body is `{"error": "<message>"}`. The state handlers reach is the
//! front-neutral [`AppState`] (`crate::state`).

mod admin;
mod body;
pub(crate) mod codec;
mod console;
mod error;
mod generate;
mod health;
mod infer;
mod model;
mod monitoring;
mod monitoring_views;
pub mod routes;
mod usage;

use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use anyhow::Context;

pub use crate::state::AppState;
use maas_serving::error::ServeError;

use crate::tls::FrontTls;

/// Starts the HTTP server on `addr` with `workers` threads.
pub fn serve(
    addr: SocketAddr,
    workers: usize,
    state: Arc<AppState>,
    tls: Option<&FrontTls>,
) -> anyhow::Result<actix_web::dev::Server> {
    // actix counts connections per worker.
    let per_worker = (state.max_connections / workers.max(1)).max(1);
    let data = web::Data::from(state);
    let server = HttpServer::new(move || {
        App::new().app_data(data.clone()).configure(routes::register).default_service(web::to(unknown_route))
    })
    .workers(workers.max(1))
    .backlog(4096)
    .max_connection_rate(1024)
    .max_connections(per_worker)
    .disable_signals();
    let server = match tls {
        Some(tls) => {
            server.bind_rustls_0_23(addr, tls.rustls_config()?).with_context(|| format!("binding HTTPS on {addr}"))?
        }
        None => server.bind(addr).with_context(|| format!("binding HTTP on {addr}"))?,
    };
    Ok(server.run())
}

/// `GET /metrics`: Prometheus text.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    maas_serving::metrics::record_process_memory();
    HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(state.prometheus.render())
}

async fn unknown_route(request: HttpRequest) -> HttpResponse {
    error::response(&ServeError::RouteNotFound(format!("no route for {} {}", request.method(), request.path())))
}
