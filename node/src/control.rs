//! The node's host actor: control commands from coordinators.
//!
//! The actor is in the process group `maas_transport::control::host_group`
//! of this node, which coordinators see over their control sessions. It
//! answers list, load, check, unload, status and drain. Each command runs
//! in its own task, so a long load never delays a status query.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use maas_protocol::{CommandResult, LoadModel, LoadedModel, NodeError, NodeStatus, UnloadModel};
use maas_registry::ArtifactRef;
use maas_transport::control::{self, ControlMessage};
use maas_transport::wire::Wire;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use ractor_cluster::NodeServerMessage;
use tokio::sync::Notify;

use crate::fetch::Fetcher;
use crate::repository::ModelSource;
use crate::runtime::{ModelHost, Reservation};

/// What control commands act on.
pub struct Control {
    host: Arc<ModelHost>,
    fetcher: Fetcher,
    in_flight: Arc<AtomicUsize>,
    memory_bytes: u64,
    draining: AtomicBool,
    drain_requested: Notify,
}

impl Control {
    /// Commands over `host`, fetching artifacts with `fetcher`.
    pub fn new(host: Arc<ModelHost>, fetcher: Fetcher, in_flight: Arc<AtomicUsize>, memory_bytes: u64) -> Arc<Control> {
        Arc::new(Control {
            host,
            fetcher,
            in_flight,
            memory_bytes,
            draining: AtomicBool::new(false),
            drain_requested: Notify::new(),
        })
    }

    /// Resolves when a coordinator has asked this node to drain.
    pub async fn drain_requested(&self) {
        self.drain_requested.notified().await
    }

    /// Marks the node as leaving (also on SIGTERM), for status reports.
    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// The versions this node holds.
    pub fn list(&self) -> Vec<LoadedModel> {
        self.host.list()
    }

    /// Unloads a version; batches already queued still run.
    pub fn unload(&self, unload: UnloadModel) -> CommandResult {
        self.host.unload(&unload.model, unload.version);
        Ok(())
    }

    /// Starts leaving the cluster.
    pub fn drain(&self) -> CommandResult {
        tracing::info!("a coordinator asked this node to drain");
        self.set_draining();
        self.drain_requested.notify_one();
        Ok(())
    }

    /// The node's live load.
    pub fn status(&self) -> NodeStatus {
        NodeStatus {
            in_flight: self.in_flight.load(Ordering::Acquire) as u64,
            draining: self.draining.load(Ordering::Acquire),
            memory_bytes: self.memory_bytes,
            memory_used_bytes: self.host.memory_used_bytes(),
            models: self.host.loads(),
            cached_artifacts: self.fetcher.cached(),
            refused: self.host.refused(),
        }
    }

    /// Fetches and loads (or, for a check, trial-loads) a version.
    pub async fn load_version(&self, load: LoadModel, trial_only: bool) -> CommandResult {
        let LoadModel { model, version, config, sha256, size, memory_bytes, memory_measured } = load;
        let failed = |message: String| NodeError::LoadFailed { model: model.clone(), version, message };
        config.check().map_err(failed)?;
        if config.name != model {
            return Err(failed(format!("the configuration names model '{}'", config.name)));
        }
        let artifact = ArtifactRef { sha256, size };
        let path = self.fetcher.fetch(&model, version, &artifact).await?;
        let source = ModelSource { config, version, path, sha256: Some(artifact.sha256) };
        let result = if trial_only {
            self.host.check(source).await
        } else {
            let reservation = Reservation { bytes: memory_bytes, measured: memory_measured };
            self.host.load(source, (memory_bytes > 0).then_some(reservation)).await
        };
        match &result {
            Ok(()) => tracing::info!(model, version, trial_only, "model version loaded"),
            Err(error) => tracing::warn!(model, version, %error, "model version failed to load"),
        }
        result
    }
}

/// The actor coordinators talk to.
struct HostActor {
    group: String,
}

impl Actor for HostActor {
    type Msg = ControlMessage;
    type State = Arc<Control>;
    type Arguments = Arc<Control>;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        control: Arc<Control>,
    ) -> Result<Arc<Control>, ActorProcessingErr> {
        ractor::pg::join(self.group.clone(), vec![myself.get_cell()]);
        Ok(control)
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        control: &mut Arc<Control>,
    ) -> Result<(), ActorProcessingErr> {
        let control = control.clone();
        // Each command in its own task: a long load never delays a status.
        tokio::spawn(async move {
            let trial_only = matches!(message, ControlMessage::Check(..));
            // A caller that gave up has dropped its port; nothing to do then.
            match message {
                ControlMessage::ListModels(reply) => {
                    let _ = reply.send(Wire::new(control.list()));
                }
                ControlMessage::Load(load, reply) | ControlMessage::Check(load, reply) => {
                    let result = match received(load) {
                        Ok(load) => control.load_version(load, trial_only).await,
                        Err(error) => Err(error),
                    };
                    let _ = reply.send(Wire::new(result));
                }
                ControlMessage::Unload(unload, reply) => {
                    let _ = reply.send(Wire::new(received(unload).and_then(|unload| control.unload(unload))));
                }
                ControlMessage::Status(reply) => {
                    let _ = reply.send(Wire::new(control.status()));
                }
                ControlMessage::Drain(reply) => {
                    let _ = reply.send(Wire::new(control.drain()));
                }
            }
        });
        Ok(())
    }
}

/// A command's argument, or the error that answers a damaged one.
fn received<T>(value: Wire<T>) -> Result<T, NodeError> {
    value.into_inner().map_err(|message| NodeError::InvalidInput { message })
}

/// Starts the node's control-plane server and its host actor.
pub async fn start(name: &str, control: Arc<Control>) -> anyhow::Result<ActorRef<NodeServerMessage>> {
    let server = control::start_server(name).await?;
    let actor = HostActor { group: control::host_group(name) };
    // Unnamed: coordinators find it through its process group, and a name
    // would collide with the proxy a coordinator in the same process (the
    // test sandbox) registers under the remote actor's name.
    Actor::spawn(None, actor, control).await.map_err(|e| anyhow::anyhow!("starting the host actor: {e}"))?;
    Ok(server)
}
