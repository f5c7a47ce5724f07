//! The node's host actor: control commands from coordinators.
//!
//! The actor is in the process group `maas_transport::control::host_group`
//! of this node, which coordinators see over their control sessions. It
//! answers list, load, check, unload, status and drain. Each command runs
//! in its own task, so a long load never delays a status query.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use maas_protocol::{LoadModel, ModelConfig, NodeError, NodeRequest, NodeResponse, NodeStatus};
use maas_registry::ArtifactRef;
use maas_transport::control::{self, ControlMessage};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use ractor_cluster::NodeServerMessage;
use tokio::sync::Notify;

use crate::fetch::Fetcher;
use crate::repository::ModelSource;
use crate::runtime::ModelHost;

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

    /// Answers one command.
    pub async fn answer(&self, request: NodeRequest) -> NodeResponse {
        match request {
            NodeRequest::ListModels => NodeResponse::Models(self.host.list()),
            NodeRequest::Load(load) => self.load_version(load, false).await,
            NodeRequest::Check(load) => self.load_version(load, true).await,
            NodeRequest::Unload { model, version } => {
                self.host.unload(&model, version);
                NodeResponse::Done
            }
            NodeRequest::Status => NodeResponse::Status(self.status()),
            NodeRequest::Drain => {
                tracing::info!("a coordinator asked this node to drain");
                self.set_draining();
                self.drain_requested.notify_one();
                NodeResponse::Done
            }
            NodeRequest::Infer(_) => NodeResponse::Error(NodeError::InvalidInput {
                message: "batches go on data streams, not over the control session".into(),
            }),
        }
    }

    fn status(&self) -> NodeStatus {
        NodeStatus {
            in_flight: self.in_flight.load(Ordering::Acquire) as u64,
            draining: self.draining.load(Ordering::Acquire),
            memory_bytes: self.memory_bytes,
            memory_used_bytes: self.host.memory_used_bytes(),
            models: self.host.loads(),
            cached_artifacts: self.fetcher.cached(),
        }
    }

    /// Fetches and loads (or, for a check, trial-loads) a version.
    async fn load_version(&self, load: LoadModel, trial_only: bool) -> NodeResponse {
        let LoadModel { model, version, config_json, sha256, size } = load;
        let failed = |message: String| NodeError::LoadFailed { model: model.clone(), version, message };
        let config: ModelConfig = match serde_json::from_str(&config_json) {
            Ok(config) => config,
            Err(error) => return NodeResponse::Error(failed(format!("invalid configuration: {error}"))),
        };
        if let Err(error) = config.check() {
            return NodeResponse::Error(failed(error));
        }
        if config.name != model {
            return NodeResponse::Error(failed(format!("the configuration names model '{}'", config.name)));
        }
        let artifact = ArtifactRef { sha256, size };
        let path = match self.fetcher.fetch(&model, version, &artifact).await {
            Ok(path) => path,
            Err(error) => return NodeResponse::Error(error),
        };
        let source = ModelSource { config, version, path, sha256: Some(artifact.sha256) };
        let result = if trial_only { self.host.check(source).await } else { self.host.load(source).await };
        match result {
            Ok(()) => {
                tracing::info!(model, version, trial_only, "model version loaded");
                NodeResponse::Done
            }
            Err(error) => {
                tracing::warn!(model, version, %error, "model version failed to load");
                NodeResponse::Error(error)
            }
        }
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
        let ControlMessage::Call(bytes, reply) = message;
        let control = control.clone();
        tokio::spawn(async move {
            let response = match control::decode_request(&bytes) {
                Ok(request) => control.answer(request).await,
                Err(error) => {
                    NodeResponse::Error(NodeError::InvalidInput { message: format!("bad control frame: {error}") })
                }
            };
            match control::encode_response(&response) {
                Ok(encoded) => {
                    // The caller may have given up; nothing to do then.
                    let _ = reply.send(encoded);
                }
                Err(error) => tracing::error!(%error, "could not encode a control answer"),
            }
        });
        Ok(())
    }
}

/// Starts the node's control-plane server and its host actor.
pub async fn start(name: &str, control: Arc<Control>) -> anyhow::Result<ActorRef<NodeServerMessage>> {
    let server = control::start_server(name).await?;
    let actor = HostActor { group: control::host_group(name) };
    Actor::spawn(Some(format!("maas.host.{name}")), actor, control)
        .await
        .map_err(|e| anyhow::anyhow!("starting the host actor: {e}"))?;
    Ok(server)
}
