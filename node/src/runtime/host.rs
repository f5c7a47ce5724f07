//! The model versions a node holds and their instance queues.
//!
//! Versions come and go at run time: [`ModelHost::load`] starts a version's
//! instances and returns once all are warm, [`ModelHost::unload`] closes its
//! queue (batches already queued still run, then the threads end), and
//! [`ModelHost::check`] loads one throw-away instance as a trial.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use maas_protocol::frame::ValidatedBatch;
use maas_protocol::{
    BatchReply, GenerateEvent, GenerateRequest, LoadedModel, ModelConfig, ModelLoad, NodeError, Platform,
};
use parking_lot::{Mutex, RwLock};
use tch::Device;
use tokio::sync::{mpsc, oneshot};

use super::instance::{self, InstanceSpec, Job};
use super::load_gate::LoadGate;
use super::refused::RefusedLoads;
use crate::decoder::worker::{self, DecoderHandle, DecoderSetup};
use crate::metrics;
use crate::repository::ModelSource;

struct LoadedVersion {
    config: Arc<ModelConfig>,
    /// Batches for its instances; a decoder has none.
    queue: Option<flume::Sender<Job>>,
    /// A decoder's thread.
    decoder: Option<DecoderHandle>,
    instances: u32,
    sha256: Option<String>,
    /// Counted against the budget.
    memory_bytes: u64,
    /// What its load was measured to take (0: not measured).
    measured_bytes: u64,
}

/// Most generations one decoder keeps waiting for room; past it a new one
/// is refused as overloaded (the node's QUIC streams are shared with
/// tensor batches).
const MAX_WAITING_GENERATIONS: usize = 256;

/// The memory of `versions`, in bytes.
fn memory_of(versions: &HashMap<(String, u64), LoadedVersion>) -> u64 {
    versions.values().map(|v| v.memory_bytes).sum()
}

/// How versions are loaded on this node.
#[derive(Debug, Clone)]
pub struct HostSettings {
    /// Device for models whose configuration names none.
    pub device: Device,
    /// Overrides each model's instance count.
    pub instances: Option<u32>,
    /// Batches queued per version before `Overloaded`.
    pub queue_capacity: usize,
    /// Load-testing mode: run no model, answer zeros after this long.
    pub simulate: Option<std::time::Duration>,
    /// Memory offered to models, in bytes; no load takes the node past it.
    pub memory_budget: u64,
    /// Loads that may run side by side.
    pub parallel_loads: usize,
}

/// Every loaded model version, keyed by name and version.
pub struct ModelHost {
    versions: RwLock<HashMap<(String, u64), LoadedVersion>>,
    settings: HostSettings,
    /// Who may load when.
    gate: LoadGate,
    /// Bytes reserved by loads under way.
    reserved: Mutex<u64>,
    /// Loads refused for memory once measured, with what they measured.
    refused: Mutex<RefusedLoads>,
    /// Unloaded decoders still finishing their sequences, with the memory
    /// they hold until they end.
    draining: Mutex<Vec<(u64, Arc<std::sync::atomic::AtomicBool>)>>,
}

/// What placement reserved for a version on this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reservation {
    /// Bytes counted against the budget until the load is measured.
    pub bytes: u64,
    /// Whether the figure was measured (on some node): the load need not
    /// run alone to be measured again.
    pub measured: bool,
}

/// Bytes of the budget held for a load under way, given back on drop.
struct Held<'a> {
    reserved: &'a Mutex<u64>,
    bytes: u64,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        *self.reserved.lock() -= self.bytes;
    }
}

fn load_failed(source: &ModelSource, message: String) -> NodeError {
    // LibTorch appends a C++ stack trace to its errors; keep the message.
    let message = match message.find("\nException raised from") {
        Some(end) => message[..end].to_string(),
        None => message,
    };
    NodeError::LoadFailed { model: source.config.name.clone(), version: source.version, message }
}

impl ModelHost {
    /// An empty host.
    pub fn new(settings: HostSettings) -> Arc<ModelHost> {
        Arc::new(ModelHost {
            versions: RwLock::new(HashMap::new()),
            gate: LoadGate::new(settings.parallel_loads),
            settings,
            reserved: Mutex::new(0),
            refused: Mutex::new(RefusedLoads::default()),
            draining: Mutex::new(Vec::new()),
        })
    }

    fn device_for(&self, source: &ModelSource) -> Result<Device, NodeError> {
        match &source.config.device {
            Some(flag) => maas_torch::resolve_device(flag).map_err(|e| load_failed(source, e.to_string())),
            None => Ok(self.settings.device),
        }
    }

    /// Loads a version with all its instances and waits until they are
    /// warm, counting what placement reserved for it (`reservation`; the
    /// configured figure or three times the artifact when `None`) against
    /// the memory budget until the load is measured. Loading a version
    /// already held from the same artifact does nothing. A load with no
    /// measured reservation runs alone, so that it is measured alone;
    /// others run side by side, and count their reservation unless they
    /// happened to run alone.
    pub async fn load(&self, source: ModelSource, reservation: Option<Reservation>) -> Result<(), NodeError> {
        let key = (source.config.name.clone(), source.version);
        let to_measure = !reservation.is_some_and(|r| r.measured);
        let turn = self.gate.enter(key.clone(), to_measure).await;
        if let Some(existing) = self.versions.read().get(&key) {
            return if existing.sha256 == source.sha256 {
                Ok(())
            } else {
                Err(load_failed(&source, "a different artifact is already loaded under this version".into()))
            };
        }
        let artifact_bytes = std::fs::metadata(&source.path).map(|m| m.len()).unwrap_or(0);
        let reserved = reservation.map_or_else(|| source.config.memory_needed(None, artifact_bytes), |r| r.bytes);
        let held = self.reserve(&source, reserved)?;
        let device = self.device_for(&source)?;
        let before = maas_process::allocated_bytes();
        let (queue, decoder, instances) = match source.config.platform {
            Platform::PytorchDecoder => (None, Some(self.start_decoder(&source, device).await?), 1),
            _ => {
                let (queue, instances) = self.start_instances(&source, device).await?;
                (Some(queue), None, instances)
            }
        };
        // Loading and warm-up leave large temporaries free; give them back
        // before measuring what the instances keep.
        maas_process::release_free_memory();
        let measured = match (before, maas_process::allocated_bytes()) {
            // Weights at least are held; the rest is the allocator's count,
            // which other models' batches running meanwhile can blur.
            (Some(before), Some(after)) if device == Device::Cpu && turn.ran_alone() => {
                Some(after.saturating_sub(before).max(artifact_bytes))
            }
            _ => None,
        };
        let memory_bytes = match measured {
            Some(measured) => source.config.memory_needed(Some(measured), artifact_bytes),
            None => reserved,
        };
        let mut versions = self.versions.write();
        // Dropping `queue` on failure stops the instances.
        let under_way = *self.reserved.lock();
        if let Err(error) = self.check_room(&versions, under_way, &source, (memory_bytes, reserved), "took") {
            self.refused.lock().note(key, memory_bytes);
            return Err(error);
        }
        tracing::info!(
            model = %source.config.name, version = source.version, memory_bytes, measured_bytes = measured,
            "version loaded"
        );
        self.refused.lock().forget(&key);
        versions.entry(key).or_insert(LoadedVersion {
            config: Arc::new(source.config.clone()),
            queue,
            decoder,
            instances,
            sha256: source.sha256.clone(),
            memory_bytes,
            measured_bytes: measured.unwrap_or(0),
        });
        drop(held);
        metrics::set_loaded_models(versions.len(), memory_of(&versions));
        Ok(())
    }

    /// Holds `bytes` of the budget for a load under way, or refuses it.
    /// The check and the reservation happen under one lock, so that loads
    /// side by side cannot both take the last free bytes.
    fn reserve(&self, source: &ModelSource, bytes: u64) -> Result<Held<'_>, NodeError> {
        let versions = self.versions.read();
        let mut under_way = self.reserved.lock();
        self.check_room(&versions, *under_way, source, (bytes, 0), "needs")?;
        *under_way += bytes;
        Ok(Held { reserved: &self.reserved, bytes })
    }

    /// Refuses a version of `bytes` when it would take the node past its
    /// budget, counting what `versions` hold and what loads `under_way`
    /// reserved (`own` of which are the version's own reservation).
    fn check_room(
        &self,
        versions: &HashMap<(String, u64), LoadedVersion>,
        under_way: u64,
        source: &ModelSource,
        (bytes, own): (u64, u64),
        verb: &str,
    ) -> Result<(), NodeError> {
        let used =
            memory_of(versions).saturating_add(self.draining_bytes()).saturating_add(under_way).saturating_sub(own);
        let budget = self.settings.memory_budget;
        if used.saturating_add(bytes) <= budget {
            return Ok(());
        }
        Err(load_failed(
            source,
            format!(
                "not enough memory: it {verb} {bytes} bytes and {} of the node's {budget}-byte budget are free",
                budget.saturating_sub(used)
            ),
        ))
    }

    /// Starts a version's instances and waits until all are warm.
    async fn start_instances(
        &self,
        source: &ModelSource,
        device: Device,
    ) -> Result<(flume::Sender<Job>, u32), NodeError> {
        let config = Arc::new(source.config.clone());
        let instances = self.settings.instances.unwrap_or(config.instance_count).max(1);
        let (queue, jobs) = flume::bounded(self.settings.queue_capacity);
        let mut pending = Vec::new();
        for index in 0..instances {
            let (loaded, ready) = oneshot::channel();
            let spec = InstanceSpec {
                config: config.clone(),
                version: source.version,
                path: source.path.clone(),
                device,
                index,
                simulate: self.settings.simulate,
            };
            instance::spawn(spec, jobs.clone(), loaded).map_err(|e| load_failed(source, e.to_string()))?;
            pending.push(ready);
        }
        drop(jobs);
        for ready in pending {
            let loaded =
                ready.await.map_err(|_| load_failed(source, "an instance thread ended while loading".into()))?;
            // On failure, dropping `queue` stops the instances that did load.
            loaded.map_err(|e| load_failed(source, format!("{e:#}")))?;
        }
        Ok((queue, instances))
    }

    /// Starts a decoder's thread and waits until its model is warm.
    async fn start_decoder(&self, source: &ModelSource, device: Device) -> Result<DecoderHandle, NodeError> {
        let (loaded, ready) = oneshot::channel();
        let handle = worker::spawn(self.decoder_setup(source, device)?, loaded)
            .map_err(|e| load_failed(source, format!("{e:#}")))?;
        ready
            .await
            .map_err(|_| load_failed(source, "the decoder thread ended while loading".into()))?
            .map_err(|e| load_failed(source, format!("{e:#}")))?;
        Ok(handle)
    }

    fn decoder_setup(&self, source: &ModelSource, device: Device) -> Result<DecoderSetup, NodeError> {
        let spec = source.config.decoder.clone().ok_or_else(|| load_failed(source, "it has no decoder spec".into()))?;
        let max_running = source.config.max_batch_size.max(1) as usize;
        Ok(DecoderSetup {
            model: source.config.name.clone(),
            version: source.version,
            path: source.path.clone(),
            spec,
            device,
            max_running,
            // Each waiting generation holds a QUIC stream of the node's.
            max_waiting: (self.settings.queue_capacity.max(1) * max_running).min(MAX_WAITING_GENERATIONS),
        })
    }

    /// Starts a generation on a loaded decoder; its events arrive on the
    /// returned channel, and dropping the channel cancels it.
    pub fn generate(&self, request: GenerateRequest) -> Result<mpsc::UnboundedReceiver<GenerateEvent>, NodeError> {
        let versions = self.versions.read();
        let key = (request.model.clone(), request.version);
        let Some(loaded) = versions.get(&key) else {
            return Err(NodeError::ModelNotLoaded { model: key.0, version: key.1 });
        };
        let Some(decoder) = &loaded.decoder else {
            return Err(NodeError::InvalidInput {
                message: format!("model '{}' version {} is not a decoder; send it tensors", key.0, key.1),
            });
        };
        decoder.generate(request)
    }

    /// Loads one instance of a version, warms it up and drops it.
    pub async fn check(&self, source: ModelSource) -> Result<(), NodeError> {
        let device = self.device_for(&source)?;
        if source.config.platform == Platform::PytorchDecoder {
            let setup = self.decoder_setup(&source, device)?;
            let _turn = self.gate.enter((source.config.name.clone(), source.version), true).await;
            let result = tokio::task::spawn_blocking(move || worker::load_and_warm(&setup).map(drop))
                .await
                .map_err(|e| load_failed(&source, format!("the trial load panicked: {e}")))?;
            maas_process::release_free_memory();
            return result.map_err(|e| load_failed(&source, format!("{e:#}")));
        }
        let spec = InstanceSpec {
            config: Arc::new(source.config.clone()),
            version: source.version,
            path: source.path.clone(),
            device,
            index: 0,
            simulate: self.settings.simulate,
        };
        let _turn = self.gate.enter((source.config.name.clone(), source.version), true).await;
        let result = tokio::task::spawn_blocking(move || instance::trial(&spec))
            .await
            .map_err(|e| load_failed(&source, format!("the trial load panicked: {e}")))?;
        maas_process::release_free_memory();
        result.map_err(|e| load_failed(&source, format!("{e:#}")))
    }

    /// Memory held by unloaded decoders still finishing their sequences.
    fn draining_bytes(&self) -> u64 {
        let mut draining = self.draining.lock();
        draining.retain(|(_, alive)| alive.load(std::sync::atomic::Ordering::Acquire));
        draining.iter().map(|(bytes, _)| bytes).sum()
    }

    /// Unloads a version; returns whether it was loaded.
    pub fn unload(&self, model: &str, version: u64) -> bool {
        let mut versions = self.versions.write();
        let removed = versions.remove(&(model.to_string(), version));
        if let Some(decoder) = removed.as_ref().and_then(|v| v.decoder.as_ref().map(|d| (v.memory_bytes, d))) {
            // Its sequences still run to their end: their memory stays
            // counted until the thread is gone.
            self.draining.lock().push((decoder.0, decoder.1.alive.clone()));
        }
        let removed = removed.is_some();
        metrics::set_loaded_models(versions.len(), memory_of(&versions));
        if removed {
            tracing::info!(model, version, "unloaded");
        }
        removed
    }

    /// Queues a batch for the version it names; the future yields its answer
    /// (an error answer if the instance stops before answering).
    pub fn submit(&self, batch: ValidatedBatch) -> Result<impl Future<Output = BatchReply>, NodeError> {
        let (model, version) = (batch.batch().model.as_str().to_owned(), batch.batch().version.to_native());
        let versions = self.versions.read();
        let Some(loaded) = versions.get(&(model.clone(), version)) else {
            return Err(NodeError::ModelNotLoaded { model, version });
        };
        let Some(queue) = &loaded.queue else {
            return Err(NodeError::InvalidInput {
                message: format!(
                    "model '{model}' version {version} is a decoder; it takes text on its generate stream"
                ),
            });
        };
        let (reply, answer) = oneshot::channel();
        let job = Job { batch, enqueued: Instant::now(), reply };
        if let Err(error) = queue.try_send(job) {
            return Err(match error {
                flume::TrySendError::Full(_) => NodeError::Overloaded,
                flume::TrySendError::Disconnected(_) => NodeError::Internal {
                    message: format!("every instance of model '{model}' version {version} has stopped"),
                },
            });
        }
        Ok(async move {
            answer.await.unwrap_or_else(|_| {
                BatchReply::Failed(NodeError::Internal {
                    message: format!("model '{model}' version {version}: its instance stopped mid-batch"),
                })
            })
        })
    }

    /// Each loaded version's queue depth and instances.
    pub fn loads(&self) -> Vec<ModelLoad> {
        let mut loads: Vec<ModelLoad> = self
            .versions
            .read()
            .iter()
            .map(|((name, version), loaded)| ModelLoad {
                name: name.clone(),
                version: *version,
                queued: loaded.queue.as_ref().map_or(0, |q| q.len()) as u64,
                instances: loaded.instances,
                memory_bytes: loaded.memory_bytes,
                measured_bytes: loaded.measured_bytes,
            })
            .collect();
        loads.sort_by(|a, b| (&a.name, a.version).cmp(&(&b.name, b.version)));
        loads
    }

    /// The versions whose last load was undone for memory once measured,
    /// with what it measured, so that placement can make room next time.
    pub fn refused(&self) -> Vec<ModelLoad> {
        self.refused.lock().list()
    }

    /// Memory the loaded versions hold, in bytes, as counted against the budget.
    pub fn memory_used_bytes(&self) -> u64 {
        memory_of(&self.versions.read()).saturating_add(self.draining_bytes())
    }

    /// The loaded versions, for a coordinator's `ListModels` command.
    pub fn list(&self) -> Vec<LoadedModel> {
        let mut models: Vec<LoadedModel> = self
            .versions
            .read()
            .iter()
            .map(|((name, version), loaded)| LoadedModel {
                name: name.clone(),
                version: *version,
                config: loaded.config.as_ref().clone(),
                instances: loaded.instances,
                ready: true,
                sha256: loaded.sha256.clone(),
                memory_bytes: loaded.memory_bytes,
            })
            .collect();
        models.sort_by(|a, b| (&a.name, a.version).cmp(&(&b.name, b.version)));
        models
    }
}
