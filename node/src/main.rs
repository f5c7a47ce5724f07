//! `maas-node`: a worker node holding LibTorch model instances and serving
//! batches to coordinators over QUIC with mutual TLS.

mod config;
mod control;
mod drain;
mod fetch;
mod membership;
mod metrics;
mod metrics_http;
mod repository;
mod runtime;
mod server;

use anyhow::Context;
use clap::Parser;

use crate::config::NodeConfig;

fn main() -> anyhow::Result<()> {
    let config = NodeConfig::parse();
    maas_process::init_logging();
    // Before any other torch call: thread pools and the allocator.
    maas_torch::prepare_process(config.inter_op_threads, config.intra_op_threads);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.io_threads)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(run(config))
}

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

async fn run(config: NodeConfig) -> anyhow::Result<()> {
    let prometheus = metrics::install()?;
    let device = maas_torch::resolve_device(&config.device)?;
    let host = runtime::ModelHost::new(runtime::HostSettings {
        device,
        instances: config.instances,
        queue_capacity: config.queue_capacity,
        simulate: config.simulate_compute_us.map(std::time::Duration::from_micros),
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
            host.load(source).await?;
        }
    }
    let store = config.artifact_store.as_deref().map(maas_registry::ArtifactStore::open).transpose()?;
    let fetcher = fetch::Fetcher::new(store, config.data_dir())?;
    let metrics_server = metrics_http::serve(config.metrics_addr, prometheus)?;
    let quic = server::QuicServer::bind(&config, host.clone())?;
    let control = control::Control::new(host.clone(), fetcher, quic.in_flight(), config.memory_bytes);
    metrics::set_memory_offered(config.memory_bytes);
    spawn_load_gauges(host, quic.in_flight());
    let control_server = control::start(&config.name, control.clone()).await?;
    let registration = match config.etcd_endpoints.is_empty() {
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
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        result = serving => return result.context("QUIC server task")?,
        result = metrics_server => return result.context("metrics server"),
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
        _ = control.drain_requested() => {}
    }
    control.set_draining();
    drain::leave(registration, in_flight, std::time::Duration::from_secs(config.drain_seconds)).await;
    Ok(())
}
