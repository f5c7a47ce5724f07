//! The control plane's vocabulary: what a coordinator asks of a node's host
//! actor over the control session, and what the node answers.
//!
//! The messages themselves are `maas_transport::control::ControlMessage`:
//! one variant per command, each with a reply port of its own answer type,
//! so a command can only be answered with what it asks for. Tensors never
//! travel here.

use crate::{ModelConfig, NodeError};

/// A model version to load (or to trial-load) and where its artifact is.
#[derive(Debug, Clone, PartialEq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct LoadModel {
    /// Model name.
    pub model: String,
    /// Version.
    pub version: u64,
    /// Its configuration.
    pub config: ModelConfig,
    /// sha256 of the TorchScript file, lowercase hex.
    pub sha256: String,
    /// Its size in bytes.
    pub size: u64,
    /// Memory placement reserved for it on this node, in bytes: the node
    /// refuses the load when that much is not free within its budget.
    pub memory_bytes: u64,
    /// Whether `memory_bytes` was measured (on some node): such a load may
    /// run beside others, where an unmeasured one runs alone to be measured.
    pub memory_measured: bool,
}

/// A model version to unload; batches already queued for it still run.
#[derive(Debug, Clone, PartialEq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct UnloadModel {
    /// Model name.
    pub model: String,
    /// Version.
    pub version: u64,
}

/// What a command that changes the node answers: done, or why not.
pub type CommandResult = Result<(), NodeError>;

/// A node's live load, as its host actor reports it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct NodeStatus {
    /// Batches being answered right now.
    pub in_flight: u64,
    /// Whether the node is leaving the cluster.
    pub draining: bool,
    /// Memory the node offers for models, in bytes.
    pub memory_bytes: u64,
    /// Memory its loaded versions hold, in bytes: each one's measured
    /// figure (or its configured one, if larger).
    pub memory_used_bytes: u64,
    /// Each loaded version's queue.
    pub models: Vec<ModelLoad>,
    /// sha256 digests of the artifacts in the node's local cache.
    pub cached_artifacts: Vec<String>,
    /// Versions whose last load the node undid because, once measured, it
    /// did not fit the budget, each with what it measured.
    pub refused: Vec<ModelLoad>,
}

/// One loaded version's queue on a node.
#[derive(Debug, Clone, PartialEq, serde::Serialize, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct ModelLoad {
    /// Model name.
    pub name: String,
    /// Version number.
    pub version: u64,
    /// Batches waiting for a free instance.
    pub queued: u64,
    /// Instances running.
    pub instances: u32,
    /// Memory it holds, as counted against the node's budget, in bytes.
    pub memory_bytes: u64,
    /// Memory its load and warm-up were measured to take, in bytes (zero
    /// when not measured).
    pub measured_bytes: u64,
}

/// A model version a node holds.
#[derive(Debug, Clone, PartialEq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct LoadedModel {
    /// Model name.
    pub name: String,
    /// Version number.
    pub version: u64,
    /// Its configuration.
    pub config: ModelConfig,
    /// Instances running, each on its own thread.
    pub instances: u32,
    /// Whether the model is loaded and warmed up.
    pub ready: bool,
    /// sha256 of its artifact, when it came from the artifact store.
    pub sha256: Option<String>,
    /// Memory it holds, as counted against the node's budget, in bytes.
    pub memory_bytes: u64,
}
