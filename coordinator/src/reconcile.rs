//! Keeps nodes holding what the registry wants loaded.
//!
//! Whenever the registry changes, a node link comes up, or every couple of
//! seconds, the reconciler reads the registry, applies its routing to the
//! [`ModelTable`], and for each node that is up compares what the node holds
//! with the versions the registry wants loaded: missing versions are loaded
//! (the node fetches and verifies the artifact and warms the model up), and
//! versions of registry models no longer wanted are unloaded once they have
//! been unwanted for [`UNLOAD_GRACE`], so requests already routed to them
//! still finish.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use maas_protocol::{LoadModel, LoadedModel, NodeRequest, NodeResponse};
use maas_registry::placement::Placement;
use maas_registry::{ModelRecord, Registry};
use parking_lot::Mutex;
use tokio::sync::{watch, Notify};

use crate::models::ModelTable;
use crate::nodes::{NodeLink, NodeSet};

/// How long an unwanted version stays loaded.
pub const UNLOAD_GRACE: Duration = Duration::from_secs(10);

const TICK: Duration = Duration::from_secs(2);

/// The reconciler's state.
pub struct Reconciler {
    registry: Registry,
    table: Arc<ModelTable>,
    nodes: Arc<NodeSet>,
    placement: Option<watch::Receiver<Placement>>,
    wake: Arc<Notify>,
    unwanted_since: Mutex<HashMap<(String, String, u64), Instant>>,
}

impl Reconciler {
    /// A reconciler over `nodes`; `wake` is notified when a link comes up.
    /// With a `placement`, a node loads only the versions placed on it;
    /// without one, every node loads every version.
    pub fn new(
        registry: Registry,
        table: Arc<ModelTable>,
        nodes: Arc<NodeSet>,
        placement: Option<watch::Receiver<Placement>>,
        wake: Arc<Notify>,
    ) -> Arc<Reconciler> {
        Arc::new(Reconciler { registry, table, nodes, placement, wake, unwanted_since: Mutex::new(HashMap::new()) })
    }

    /// Runs reconciliation rounds until the process ends.
    pub fn spawn(self: Arc<Self>) {
        tokio::spawn(async move {
            let mut changes = self.registry.store().changes();
            loop {
                self.round().await;
                tokio::select! {
                    _ = changes.changed() => {}
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(TICK) => {}
                }
            }
        });
    }

    /// One round: registry to table, then every node that is up.
    pub async fn round(&self) {
        let records: Vec<ModelRecord> = match self.registry.list().await {
            Ok(stored) => stored.into_iter().map(|s| s.record).collect(),
            Err(error) => {
                tracing::warn!(%error, "could not read the registry; keeping the current routing");
                return;
            }
        };
        self.table.apply_registry(&records);
        for link in self.nodes.list().iter().filter(|l| l.is_up()) {
            if let Err(error) = self.reconcile_node(link, &records).await {
                tracing::warn!(node = %link.name, %error, "could not reconcile node");
            }
        }
    }

    async fn reconcile_node(&self, link: &Arc<NodeLink>, records: &[ModelRecord]) -> anyhow::Result<()> {
        let held = list_models(link).await?;
        let mut changed = false;
        let placement = self.placement.as_ref().map(|p| p.borrow().clone());
        let placed_here =
            |model: &str, version: u64| placement.as_ref().is_none_or(|p| p.places(model, version, &link.name));
        let to_load: Vec<(&ModelRecord, u64)> = records
            .iter()
            .flat_map(|r| r.versions_to_load().into_iter().map(move |v| (r, v)))
            .filter(|(record, version)| placed_here(&record.name, *version))
            .collect();
        let wanted: BTreeSet<(String, u64)> = to_load.iter().map(|(r, v)| (r.name.clone(), *v)).collect();
        for &(record, number) in &to_load {
            let version = &record.versions[&number];
            let holds = held.iter().any(|m| {
                m.name == record.name && m.version == number && m.sha256.as_deref() == Some(&version.artifact.sha256)
            });
            if holds {
                continue;
            }
            let request = NodeRequest::Load(LoadModel {
                model: record.name.clone(),
                version: number,
                config_json: serde_json::to_string(&version.config)?,
                sha256: version.artifact.sha256.clone(),
                size: version.artifact.size,
            });
            match link.command(&request).await? {
                NodeResponse::Done => {
                    tracing::info!(node = %link.name, model = %record.name, version = number, "loaded on node");
                    changed = true;
                }
                NodeResponse::Error(error) => {
                    tracing::warn!(node = %link.name, model = %record.name, version = number, %error, "node could not load")
                }
                other => anyhow::bail!("node answered a load with {other:?}"),
            }
        }
        let managed: BTreeSet<&str> = records.iter().map(|r| r.name.as_str()).collect();
        let now = Instant::now();
        for model in held.iter().filter(|m| managed.contains(m.name.as_str())) {
            let key = (link.name.clone(), model.name.clone(), model.version);
            if wanted.contains(&(model.name.clone(), model.version)) {
                self.unwanted_since.lock().remove(&key);
                continue;
            }
            let since = *self.unwanted_since.lock().entry(key.clone()).or_insert(now);
            if now.duration_since(since) < UNLOAD_GRACE {
                continue;
            }
            link.command(&NodeRequest::Unload { model: model.name.clone(), version: model.version }).await?;
            self.unwanted_since.lock().remove(&key);
            tracing::info!(node = %link.name, model = %model.name, version = model.version, "unloaded from node");
            changed = true;
        }
        // Another coordinator may have loaded or unloaded versions on this
        // node: record what it holds now in any case.
        let held = if changed { list_models(link).await? } else { held };
        self.table.attach(link, &held);
        Ok(())
    }
}

async fn list_models(link: &NodeLink) -> anyhow::Result<Vec<LoadedModel>> {
    match link.command(&NodeRequest::ListModels).await? {
        NodeResponse::Models(models) => Ok(models),
        other => anyhow::bail!("node answered ListModels with {other:?}"),
    }
}
