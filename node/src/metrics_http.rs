//! The node's Prometheus endpoint: `GET /metrics`.

use std::net::SocketAddr;

use actix_web::{web, App, HttpResponse, HttpServer};
use anyhow::Context;
use metrics_exporter_prometheus::PrometheusHandle;

/// Serves `/metrics` on `addr` until the process ends.
pub fn serve(addr: SocketAddr, handle: PrometheusHandle) -> anyhow::Result<actix_web::dev::Server> {
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
        loop {
            tick.tick().await;
            upkeep.run_upkeep();
        }
    });
    let server = HttpServer::new(move || {
        let handle = handle.clone();
        App::new().route(
            "/metrics",
            web::get().to(move || {
                let body = handle.render();
                async move { HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(body) }
            }),
        )
    })
    .workers(1)
    .disable_signals()
    .bind(addr)
    .with_context(|| format!("binding the metrics endpoint on {addr}"))?
    .run();
    Ok(server)
}
