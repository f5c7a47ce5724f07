//! The set of model versions a node holds and their instance queues.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use maas_protocol::frame::Payload;
use maas_protocol::{LoadedModel, ModelConfig, NodeError, NodeResponse};
use tch::Device;
use tokio::sync::oneshot;

use super::instance::{self, InstanceSpec, Job};
use crate::config::NodeConfig;
use crate::metrics;
use crate::repository::ModelSource;

struct LoadedVersion {
    config: Arc<ModelConfig>,
    queue: flume::Sender<Job>,
    instances: u32,
}

/// Every loaded model version, keyed by name and version.
pub struct ModelHost {
    versions: HashMap<(String, u64), LoadedVersion>,
}

impl ModelHost {
    /// Loads every source with its instances and waits until all are warm.
    pub async fn load(sources: Vec<ModelSource>, device: Device, node: &NodeConfig) -> Result<Arc<ModelHost>> {
        let mut versions = HashMap::new();
        let mut pending = Vec::new();
        for source in sources {
            let config = Arc::new(source.config);
            let instances = node.instances.unwrap_or(config.instance_count).max(1);
            let (queue, jobs) = flume::bounded(node.queue_capacity);
            for index in 0..instances {
                let (loaded, ready) = oneshot::channel();
                let spec = InstanceSpec {
                    config: config.clone(),
                    version: source.version,
                    path: source.path.clone(),
                    device,
                    index,
                };
                instance::spawn(spec, jobs.clone(), loaded)?;
                pending.push((config.name.clone(), source.version, ready));
            }
            versions.insert((config.name.clone(), source.version), LoadedVersion { config, queue, instances });
        }
        for (model, version, ready) in pending {
            ready
                .await
                .context("an instance thread ended while loading; this is a bug")?
                .with_context(|| format!("loading model '{model}' version {version}"))?;
        }
        metrics::set_loaded_models(versions.len());
        Ok(Arc::new(ModelHost { versions }))
    }

    /// Queues a batch for `model` / `version`; the receiver yields its answer.
    pub fn submit(&self, model: &str, version: u64, payload: Payload) -> Result<oneshot::Receiver<NodeResponse>, NodeError> {
        let loaded = self
            .versions
            .get(&(model.to_string(), version))
            .ok_or_else(|| NodeError::ModelNotLoaded { model: model.to_string(), version })?;
        let (reply, answer) = oneshot::channel();
        let job = Job { payload, enqueued: Instant::now(), reply };
        loaded.queue.try_send(job).map_err(|error| match error {
            flume::TrySendError::Full(_) => NodeError::Overloaded,
            flume::TrySendError::Disconnected(_) => NodeError::Internal {
                message: format!("every instance of model '{model}' version {version} has stopped"),
            },
        })?;
        Ok(answer)
    }

    /// The loaded versions, for a coordinator's `ListModels`.
    pub fn list(&self) -> Vec<LoadedModel> {
        let mut models: Vec<LoadedModel> = self
            .versions
            .iter()
            .map(|((name, version), loaded)| LoadedModel {
                name: name.clone(),
                version: *version,
                config_json: serde_json::to_string(loaded.config.as_ref())
                    .expect("a ModelConfig always serializes; this is a bug"),
                instances: loaded.instances,
                ready: true,
            })
            .collect();
        models.sort_by(|a, b| (&a.name, a.version).cmp(&(&b.name, b.version)));
        models
    }
}
