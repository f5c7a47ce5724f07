//! The models the coordinator can serve, their versions and replicas.
//!
//! Versions appear when a node that holds them connects: the node link
//! reports the node's loaded models and [`ModelTable::attach`] records the
//! node as a replica of each, starting a batcher for versions seen for the
//! first time. A version is ready while at least one replica's link is up.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use maas_protocol::{LoadedModel, ModelConfig};
use parking_lot::RwLock;

use crate::batcher::{self, state::BatchPolicy, BatcherHandle};
use crate::error::{ServeError, ServeResult};
use crate::nodes::NodeLink;

/// A node holding a version, and how many batches it may run at once.
#[derive(Clone)]
pub struct Replica {
    /// The node's link.
    pub link: Arc<NodeLink>,
    /// Batches of this version it may have in flight.
    pub slots: usize,
}

/// The replicas of one version.
#[derive(Default)]
pub struct ReplicaSet {
    replicas: RwLock<Vec<Replica>>,
}

impl ReplicaSet {
    /// Batches the version may have in flight over all replicas that are up.
    pub fn capacity(&self) -> usize {
        self.replicas.read().iter().filter(|r| r.link.is_up()).map(|r| r.slots).sum()
    }

    /// The up replica with the fewest outstanding batches, skipping `tried`.
    pub fn least_outstanding(&self, tried: &[Arc<NodeLink>]) -> Option<Arc<NodeLink>> {
        self.replicas
            .read()
            .iter()
            .filter(|r| r.link.is_up() && !tried.iter().any(|t| Arc::ptr_eq(t, &r.link)))
            .min_by_key(|r| r.link.outstanding())
            .map(|r| r.link.clone())
    }

    fn set(&self, link: &Arc<NodeLink>, slots: Option<usize>) {
        let mut replicas = self.replicas.write();
        replicas.retain(|r| !Arc::ptr_eq(&r.link, link));
        if let Some(slots) = slots {
            replicas.push(Replica { link: link.clone(), slots });
        }
    }
}

/// What a version's batcher and dispatcher share.
pub struct VersionShared {
    /// Model name.
    pub name: String,
    /// Version number.
    pub version: u64,
    /// The version as a metric label.
    pub version_label: String,
    /// Its configuration.
    pub config: Arc<ModelConfig>,
    /// Nodes holding it.
    pub replicas: ReplicaSet,
    /// Largest frame sent to a node.
    pub max_frame_bytes: usize,
}

impl VersionShared {
    /// The error for a request that finds no replica up.
    pub fn no_replica_error(&self) -> ServeError {
        ServeError::Unavailable(format!(
            "model '{}' version {} has no ready replica",
            self.name, self.version
        ))
    }

    /// Whether a replica is up.
    pub fn is_ready(&self) -> bool {
        self.replicas.capacity() > 0
    }
}

/// A servable version: its shared state and its batcher.
pub struct ModelVersion {
    /// State shared with the batcher.
    pub shared: Arc<VersionShared>,
    /// Where requests go.
    pub batcher: BatcherHandle,
}

/// Batching settings applied to every version.
#[derive(Debug, Clone)]
pub struct TableSettings {
    /// Requests queued per version.
    pub max_queue: usize,
    /// Batches in flight per model instance.
    pub batches_per_instance: usize,
    /// Largest frame sent to a node.
    pub max_frame_bytes: usize,
}

/// Every known model version, by name then version.
pub struct ModelTable {
    models: RwLock<BTreeMap<String, BTreeMap<u64, Arc<ModelVersion>>>>,
    settings: TableSettings,
}

impl ModelTable {
    /// An empty table.
    pub fn new(settings: TableSettings) -> Self {
        ModelTable { models: RwLock::new(BTreeMap::new()), settings }
    }

    /// Finds the version a request names: an explicit version, or the
    /// newest ready one (the newest at all when none is ready).
    pub fn resolve(&self, model: &str, version: Option<&str>) -> ServeResult<Arc<ModelVersion>> {
        let models = self.models.read();
        let versions = models
            .get(model)
            .ok_or_else(|| ServeError::ModelNotFound { model: model.to_string() })?;
        let not_found = || ServeError::VersionNotFound {
            model: model.to_string(),
            version: version.unwrap_or_default().to_string(),
        };
        match version {
            Some(text) => {
                let number: u64 = text.parse().map_err(|_| not_found())?;
                versions.get(&number).cloned().ok_or_else(not_found)
            }
            None => versions
                .values()
                .rev()
                .find(|v| v.shared.is_ready())
                .or_else(|| versions.values().next_back())
                .cloned()
                .ok_or_else(not_found),
        }
    }

    /// Every version of every model, ordered.
    pub fn all(&self) -> Vec<Arc<ModelVersion>> {
        self.models.read().values().flat_map(|versions| versions.values().cloned()).collect()
    }

    /// Whether any version can serve.
    pub fn any_ready(&self) -> bool {
        self.models.read().values().flat_map(|v| v.values()).any(|v| v.shared.is_ready())
    }

    /// Records exactly `loaded` as what `link`'s node holds.
    pub fn attach(&self, link: &Arc<NodeLink>, loaded: &[LoadedModel]) {
        let mut models = self.models.write();
        for versions in models.values() {
            for version in versions.values() {
                version.shared.replicas.set(link, None);
            }
        }
        for model in loaded.iter().filter(|m| m.ready) {
            let config: ModelConfig = match serde_json::from_str(&model.config_json) {
                Ok(config) => config,
                Err(error) => {
                    tracing::warn!(node = %link.name, model = %model.name, %error, "node sent an unreadable config; skipped");
                    continue;
                }
            };
            if let Err(error) = config.check() {
                tracing::warn!(node = %link.name, model = %model.name, %error, "node sent an invalid config; skipped");
                continue;
            }
            let versions = models.entry(model.name.clone()).or_default();
            let entry = versions
                .entry(model.version)
                .or_insert_with(|| self.new_version(model.name.clone(), model.version, config.clone()));
            if *entry.shared.config != config {
                tracing::warn!(
                    node = %link.name, model = %model.name, version = model.version,
                    "node's config differs from the one first seen; the first one is kept"
                );
            }
            let slots = model.instances.max(1) as usize * self.settings.batches_per_instance.max(1);
            entry.shared.replicas.set(link, Some(slots));
        }
    }

    fn new_version(&self, name: String, version: u64, config: ModelConfig) -> Arc<ModelVersion> {
        let policy = BatchPolicy {
            max_batch_rows: config.max_batch_size,
            max_delay: Duration::from_micros(config.max_queue_delay_us),
            max_queue: self.settings.max_queue,
        };
        let shared = Arc::new(VersionShared {
            name,
            version,
            version_label: version.to_string(),
            config: Arc::new(config),
            replicas: ReplicaSet::default(),
            max_frame_bytes: self.settings.max_frame_bytes,
        });
        let batcher = batcher::spawn(shared.clone(), policy);
        Arc::new(ModelVersion { shared, batcher })
    }
}
