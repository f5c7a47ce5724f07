//! `maas-node`: a worker node holding LibTorch model instances and serving
//! batches to coordinators over QUIC with mutual TLS.

pub mod config;
mod control;
pub mod decoder;
mod drain;
mod fetch;
mod generate_stream;
mod membership;
mod metrics;
mod metrics_http;
mod repository;
mod runtime;
mod server;

use anyhow::Context;

pub use crate::config::NodeConfig;
pub use crate::runtime::{load_model, set_onnxruntime_library, warm_up, Backend};

/// Refreshes the load gauges once a second.
fn spawn_load_gauges(
    host: std::sync::Arc<runtime::ModelHost>,
    in_flight: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            interval.tick().await;
            metrics::set_load(in_flight.load(std::sync::atomic::Ordering::Relaxed), &host.loads());
        }
    });
}

/// Removes the unpacked AOTInductor packages that killed nodes left.
fn sweep_orphaned_packages() {
    let root = std::path::Path::new(runtime::PACKAGE_UNPACK_ROOT);
    let removed = runtime::sweep_orphaned_packages(root, runtime::PACKAGE_SWEEP_GRACE);
    if !removed.is_empty() {
        tracing::info!(folders = removed.len(), "removed AOTInductor package folders left by stopped nodes");
    }
}

/// Runs a node until `stop` resolves (a signal, in the binary) or a
/// coordinator asks it to drain; then it leaves the cluster and finishes
/// what it holds. The caller has set up logging and LibTorch's thread pools.
pub async fn run(config: NodeConfig, stop: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
    let prometheus = metrics::install()?;
    let device = maas_torch::resolve_device(&config.device)?;
    sweep_orphaned_packages();
    if let Some(library) = &config.onnxruntime_lib {
        runtime::set_onnxruntime_library(library.clone());
    }
    let host = runtime::ModelHost::new(runtime::HostSettings {
        device,
        instances: config.instances,
        queue_capacity: config.queue_capacity,
        simulate: config.simulate_compute_us.map(std::time::Duration::from_micros),
        memory_budget: config.memory_bytes,
        parallel_loads: config.parallel_loads,
    });
    if let Some(us) = config.simulate_compute_us {
        tracing::warn!(
            compute_us = us,
            "simulated compute: no model runs and every answer is zeros (load testing only)"
        );
    }
    if let Some(repository) = &config.model_repository {
        let sources = repository::scan(repository, &config.models)?;
        tracing::info!(node = %config.name, ?device, models = sources.len(), "loading the model repository");
        for source in sources {
            host.load(source, None).await?;
        }
    }
    let store = config.artifact_store.as_deref().map(maas_registry::ArtifactStore::open).transpose()?;
    let fetcher = fetch::Fetcher::new(store, config.data_dir())?;
    let metrics_server = metrics_http::serve(config.metrics_addr, prometheus, config.metrics_token.clone())?;
    let quic = server::QuicServer::bind(&config, host.clone())?;
    let control = control::Control::new(host.clone(), fetcher, quic.in_flight(), config.memory_bytes);
    metrics::set_memory_offered(config.memory_bytes);
    spawn_load_gauges(host, quic.in_flight());
    let control_server = control::start(&config.name, control.clone()).await?;
    let registration = match config.etcd.endpoints.is_empty() {
        true => None,
        false => Some(membership::register(&config, &quic, device).await?),
    };
    tracing::info!(
        node = %config.name,
        quic = %quic.local_addr()?,
        metrics = %config.metrics_addr,
        "node ready"
    );
    let in_flight = quic.in_flight();
    let serving = tokio::spawn(quic.serve(control_server));
    tokio::select! {
        result = serving => return result.context("QUIC server task")?,
        result = metrics_server => return result.context("metrics server"),
        _ = stop => {}
        _ = control.drain_requested() => {}
    }
    control.set_draining();
    drain::leave(registration, in_flight, std::time::Duration::from_secs(config.drain_seconds)).await;
    Ok(())
}
