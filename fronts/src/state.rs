//! The application state both fronts and the management API share: the
//! inference path, the registry and artifact store, keys, node links and
//! the cluster view. Neither front owns it, so neither imports the other.

use std::sync::Arc;

use maas_registry::{ArtifactStore, Registry};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::{watch, Notify};

use maas_control::leader::ClusterView;
use maas_control::nodes::NodeSet;
use maas_serving::infer::Inference;
use maas_tenancy::Gate;

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
    /// Open connections each front holds at most.
    pub max_connections: usize,
    /// The model registry.
    pub registry: Registry,
    /// Where uploaded artifacts go.
    pub artifacts: ArtifactStore,
    /// Who a bearer token is: the admin and shared tokens, tenants' keys.
    pub gate: Gate,
    /// Links to the nodes.
    pub nodes: Arc<NodeSet>,
    /// Membership, placement and leadership, in cluster mode.
    pub cluster: Option<ClusterView>,
    /// The live coordinators' names, with etcd.
    pub coordinators: Option<watch::Receiver<Vec<String>>>,
    /// The etcd client, with etcd (for its health on the cluster view).
    pub etcd: Option<maas_registry::etcd_client::Client>,
    /// Wakes the reconciler.
    pub reconcile: Arc<Notify>,
    /// The engines of generative versions.
    pub generation: Arc<maas_llm::Generation>,
}

impl AppState {
    /// After a write of `model`'s record: applies its routing here before
    /// the write is acknowledged, and asks the reconciler for a round.
    pub async fn model_changed(&self, model: &str) {
        match self.registry.get(model).await {
            Ok(stored) => {
                self.inference.table().apply_record(&stored.record);
                self.reconcile.notify_one();
            }
            // Gone, or unreadable: read everything.
            Err(_) => self.registry_changed().await,
        }
    }

    /// Applies the whole registry after a write of this coordinator's own.
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
