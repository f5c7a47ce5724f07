//! `maas-coordinator`: the Open Inference Protocol v2 front of a maas
//! cluster. It batches requests per model version and dispatches them to
//! nodes over QUIC; see `docs/ARCHITECTURE.md` for a request's path.

pub mod config;

use std::sync::Arc;

use anyhow::Context;
use maas_transport::{TlsFiles, TransportSettings};

use maas_registry::{ArtifactStore, EmbeddedStore, EtcdStore, RecordStore, Registry};
use tokio::sync::Notify;

pub use crate::config::CoordinatorConfig;
use maas_control::nodes::{self, NodeSet};
use maas_control::{leader, reconcile};
use maas_fronts::{auth, grpc, http, state};
use maas_monitor::drift::DriftSettings;
use maas_monitor::{Monitor, MonitorSettings};
use maas_serving::models::{ModelTable, TableSettings};
use maas_serving::{infer, metrics};
use maas_tenancy::usage::{EtcdUsageStore, FileUsageStore, UsageMeter, UsageStore};
use maas_tenancy::{EtcdKeyStore, FileKeyStore, Gate, KeyBook, KeyStore};

/// Runs a coordinator until `stop` resolves (Ctrl-C, in the binary), then
/// stops its HTTP server gracefully. The caller has set up logging.
pub async fn run(config: CoordinatorConfig, stop: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
    maas_fronts::tls::install_default_provider();
    let prometheus = metrics::install()?;
    let monitor = Monitor::new(MonitorSettings {
        drift: DriftSettings {
            reference_rows: config.drift_rows.max(10),
            window_rows: config.drift_rows.max(10),
            min_window_rows: (config.drift_rows / 5).max(5),
            ..DriftSettings::default()
        },
        drift_threshold: config.drift_threshold,
        drift_sample_every: config.drift_sample_every,
        predictions_per_model: config.feedback_capacity,
        prediction_ttl: std::time::Duration::from_secs(config.feedback_ttl_seconds),
        evaluation_window: config.evaluation_window,
        enabled: !config.no_monitoring,
    });
    if !config.no_monitoring {
        monitor.spawn_ticker();
    }
    let table = Arc::new(ModelTable::new(
        TableSettings {
            max_queue: config.max_queue,
            batches_per_instance: config.batches_per_instance,
            max_frame_bytes: config.max_frame_bytes,
            slow_request: std::time::Duration::from_millis(config.slow_request_ms),
        },
        monitor,
    ));
    let (registry, etcd) = open_registry(&config).await?;
    let artifacts = ArtifactStore::open(&config.artifact_store())?;
    let gate = open_gate(&config, etcd.as_ref()).await?;
    let files = TlsFiles::in_dir(&config.cert_dir, &config.name);
    let endpoint = maas_transport::client_endpoint(&files, &TransportSettings::default())?;
    let link_up = Arc::new(Notify::new());
    let control = nodes::ControlPlane::start(&config.name).await?;
    let node_set = NodeSet::new(endpoint, control, table.clone(), link_up.clone(), config.max_frame_bytes);
    for node in &config.nodes {
        node_set.add(&node.name, node.addr);
    }
    let cluster = match etcd.clone() {
        Some(client) if config.nodes.is_empty() => {
            let settings = leader::ClusterSettings {
                name: config.name.clone(),
                prefix: config.etcd.prefix.clone(),
                lease_ttl: std::time::Duration::from_secs(config.lease_ttl_seconds),
                scaling: maas_cluster::scaling::ScalingSettings {
                    up_after: std::time::Duration::from_secs(config.scale_up_seconds),
                    down_after: std::time::Duration::from_secs(config.scale_down_seconds),
                },
            };
            tracing::info!("cluster mode: nodes from etcd membership, placement by the leader");
            maas_control::demand::spawn_demand_reporting(
                client.clone(),
                config.etcd.prefix.clone(),
                config.name.clone(),
                settings.lease_ttl,
                table.clone(),
                std::time::Duration::from_secs(config.idle_unload_seconds),
            );
            Some(leader::start(client, settings, registry.clone(), node_set.clone(), link_up.clone()).await)
        }
        _ => None,
    };
    let placement = cluster.as_ref().map(|c| c.placement.clone());
    reconcile::Reconciler::new(registry.clone(), table.clone(), node_set.clone(), placement, link_up.clone()).spawn();
    let usage = open_usage(&config, etcd.as_ref())?;
    let generation = Arc::new(
        maas_llm::Generation::new(
            maas_llm::GenerationSettings { first_byte: config.max_request_timeout(), ..Default::default() },
            Some(artifacts.clone()),
            config.engine_ca.as_deref(),
        )
        .map_err(anyhow::Error::msg)?,
    );
    generation.spawn_health_checks(table.clone());
    let coordinators =
        etcd.as_ref().map(|client| maas_cluster::watch_coordinators(client.clone(), config.etcd.prefix.clone()));
    let state = Arc::new(state::AppState {
        inference: infer::Inference::new(table, config.request_timeout(), config.max_request_timeout())
            .with_usage(usage.clone())
            .with_pipelines(Arc::new(maas_pipeline::Pipelines::new(Some(artifacts.clone())))),
        prometheus: prometheus.clone(),
        max_body_bytes: config.max_body_bytes,
        max_upload_bytes: config.max_upload_bytes,
        max_connections: config.max_connections,
        registry,
        artifacts,
        gate,
        nodes: node_set,
        cluster,
        coordinators: coordinators.clone(),
        etcd: etcd.clone(),
        reconcile: link_up,
        generation,
    });
    if let (Some(client), Some(coordinators)) = (&etcd, coordinators) {
        follow_coordinators(client, &config, state.clone(), coordinators);
    }
    let grpc = match config.grpc_addr()? {
        Some(addr) => {
            let state = state.clone();
            let tls = config.front_tls();
            tokio::spawn(async move { grpc::serve(addr, state, tls).await })
        }
        None => tokio::spawn(std::future::pending()),
    };
    let server = http::serve(config.http_addr, config.http_workers, state, config.front_tls().as_ref())?;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
        loop {
            tick.tick().await;
            prometheus.run_upkeep();
        }
    });
    tracing::info!(http = %config.http_addr, nodes = config.nodes.len(), "coordinator started");
    let handle = server.handle();
    tokio::select! {
        result = server => result.context("HTTP server"),
        result = grpc => result.context("gRPC server task")?,
        _ = stop => {
            tracing::info!("shutting down");
            handle.stop(true).await;
            if let Err(error) = usage.flush().await {
                tracing::warn!(%error, "could not store the last usage counts");
            }
            Ok(())
        }
    }
}

/// The gate of bearer tokens: the bootstrap admin token, the shared
/// inference token, and tenants' keys from etcd (or, without it, a file
/// beside the embedded registry).
async fn open_gate(
    config: &CoordinatorConfig,
    etcd: Option<&maas_registry::etcd_client::Client>,
) -> anyhow::Result<Gate> {
    let admin = auth::admin_token(
        config.admin_token.as_ref().map(|t| t.expose()),
        &config.admin_token_file.clone().unwrap_or_else(|| config.data_dir.join("admin.token")),
    )?;
    let store: Arc<dyn KeyStore> = match etcd {
        Some(client) => Arc::new(EtcdKeyStore::new(client.clone(), &config.etcd.prefix)),
        None => Arc::new(FileKeyStore::open(&config.data_dir.join("registry"))?),
    };
    let keys = KeyBook::open(store).await;
    let shared_inference = config.inference_token.as_ref().map(|t| t.expose().to_string());
    let metrics = config.metrics_token.as_ref().map(|t| t.expose().to_string());
    Ok(Gate::new(admin, shared_inference, !config.require_keys, keys).with_metrics_token(metrics))
}

/// The usage meter, storing into etcd (or, without it, a file beside the
/// embedded registry) every `--usage-flush-ms`.
fn open_usage(
    config: &CoordinatorConfig,
    etcd: Option<&maas_registry::etcd_client::Client>,
) -> anyhow::Result<Arc<UsageMeter>> {
    let store: Arc<dyn UsageStore> = match etcd {
        Some(client) => Arc::new(EtcdUsageStore::new(client.clone(), &config.etcd.prefix)),
        None => Arc::new(FileUsageStore::open(&config.data_dir.join("registry"))?),
    };
    let meter = UsageMeter::new(&config.name, store);
    meter.spawn_flusher(std::time::Duration::from_millis(config.usage_flush_ms.max(100)));
    Ok(meter)
}

/// Registers this coordinator in etcd and splits each key's rates by the
/// number of live coordinators, so they hold for the whole cluster.
fn follow_coordinators(
    client: &maas_registry::etcd_client::Client,
    config: &CoordinatorConfig,
    state: Arc<state::AppState>,
    mut coordinators: tokio::sync::watch::Receiver<Vec<String>>,
) {
    let ttl = std::time::Duration::from_secs(config.lease_ttl_seconds);
    tokio::spawn(maas_cluster::keep_coordinator_registered(
        client.clone(),
        config.etcd.prefix.clone(),
        config.name.clone(),
        ttl,
    ));
    tokio::spawn(async move {
        loop {
            let live = coordinators.borrow_and_update().len().max(1);
            tracing::info!(coordinators = live, "each coordinator enforces 1/{live} of every key's rate");
            state.inference.limiter().set_coordinators(live);
            metrics::record_coordinators(live);
            if coordinators.changed().await.is_err() {
                return;
            }
        }
    });
}

/// The registry: etcd when endpoints are configured (with its client), else
/// a file in the data folder.
async fn open_registry(
    config: &CoordinatorConfig,
) -> anyhow::Result<(Registry, Option<maas_registry::etcd_client::Client>)> {
    if config.etcd.endpoints.is_empty() {
        let dir = config.data_dir.join("registry");
        tracing::info!(path = %dir.display(), "registry: embedded file");
        let store: Arc<dyn RecordStore> = Arc::new(EmbeddedStore::open(&dir)?);
        return Ok((Registry::new(store), None));
    }
    tracing::info!(endpoints = %config.etcd.endpoints.join(","), "registry: etcd");
    let client = config.etcd.connect().await?;
    let store = EtcdStore::open(client.clone(), &config.etcd.prefix);
    Ok((Registry::new(Arc::new(store)), Some(client)))
}
