//! The messages a coordinator and a node exchange.
//!
//! Each QUIC data stream carries exactly one [`NodeRequest::Infer`] from the
//! coordinator and one [`NodeResponse`] back, each in one [`crate::frame`].
//! The other requests (list, load, check, unload, status, drain) are
//! control commands: they travel as the same frames inside messages to the
//! node's host actor over the cluster's control session.

use crate::Tensor;

/// What a coordinator asks of a node.
#[derive(Debug, Clone, PartialEq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub enum NodeRequest {
    /// Run one batch.
    Infer(InferBatch),
    /// List the model versions this node has loaded.
    ListModels,
    /// Fetch a version's artifact, load its instances and warm them up.
    Load(LoadModel),
    /// Load one instance of a version, run its warm-up, and drop it: a
    /// trial that the artifact is TorchScript matching its configuration.
    Check(LoadModel),
    /// Unload a version; batches already queued still run.
    Unload {
        /// Model name.
        model: String,
        /// Version.
        version: u64,
    },
    /// Report live load: requests in flight, queues, memory.
    Status,
    /// Leave the cluster: deregister, finish what is in flight, exit.
    Drain,
}

impl NodeRequest {
    /// Whether this is a control command rather than a batch.
    pub fn is_control(&self) -> bool {
        !matches!(self, NodeRequest::Infer(_))
    }
}

/// A model version to load and where its artifact is.
#[derive(Debug, Clone, PartialEq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct LoadModel {
    /// Model name.
    pub model: String,
    /// Version.
    pub version: u64,
    /// The [`crate::ModelConfig`] as JSON.
    pub config_json: String,
    /// sha256 of the TorchScript file, lowercase hex.
    pub sha256: String,
    /// Its size in bytes.
    pub size: u64,
}

/// Rows of one or more client requests for one model version, concatenated
/// along the batch dimension.
#[derive(Debug, Clone, PartialEq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct InferBatch {
    /// The coordinator's number for this batch, echoed in logs.
    pub batch_id: u64,
    /// Model name.
    pub model: String,
    /// Model version.
    pub version: u64,
    /// One tensor per model input, in the configuration's order.
    pub inputs: Vec<Tensor>,
    /// Rows each client request contributes, in order; they sum to the
    /// batch dimension. Lets the node isolate a request that makes the
    /// model fail from the others in its batch.
    pub request_rows: Vec<u32>,
    /// Each request's id as its client gave it (empty when it gave none),
    /// echoed in the node's logs so one request can be followed.
    pub request_ids: Vec<String>,
}

/// What a node answers.
#[derive(Debug, Clone, PartialEq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub enum NodeResponse {
    /// The result of an [`NodeRequest::Infer`].
    Infer(BatchResult),
    /// The answer to [`NodeRequest::ListModels`].
    Models(Vec<LoadedModel>),
    /// The answer to [`NodeRequest::Status`].
    Status(NodeStatus),
    /// A [`NodeRequest::Load`], [`NodeRequest::Check`],
    /// [`NodeRequest::Unload`] or [`NodeRequest::Drain`] succeeded.
    Done,
    /// The request could not be handled at all.
    Error(NodeError),
}

/// A batch's outputs and where its time went.
#[derive(Debug, Clone, PartialEq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct BatchResult {
    /// Echo of [`InferBatch::batch_id`].
    pub batch_id: u64,
    /// Nanoseconds the batch waited on the node for a free model instance.
    pub queue_ns: u64,
    /// Nanoseconds spent building input tensors.
    pub compute_input_ns: u64,
    /// Nanoseconds spent in the model's forward.
    pub compute_infer_ns: u64,
    /// Nanoseconds spent copying outputs back.
    pub compute_output_ns: u64,
    /// The outputs.
    pub outcome: BatchOutcome,
}

/// Outputs of a whole batch, or of each request when the batch failed.
#[derive(Debug, Clone, PartialEq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub enum BatchOutcome {
    /// One tensor per model output, covering every row of the batch.
    Whole(Vec<Tensor>),
    /// The batch as a whole failed; each request was then run alone, and
    /// this holds one outcome per entry of [`InferBatch::request_rows`].
    PerRequest(Vec<RequestOutcome>),
}

/// The outcome of one request run on its own.
#[derive(Debug, Clone, PartialEq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub enum RequestOutcome {
    /// The request's outputs.
    Ok(Vec<Tensor>),
    /// Why it failed.
    Err(NodeError),
}

/// A node's live load, as its host actor reports it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct NodeStatus {
    /// Batches being answered right now.
    pub in_flight: u64,
    /// Whether the node is leaving the cluster.
    pub draining: bool,
    /// Memory the node offers for models, in bytes.
    pub memory_bytes: u64,
    /// Memory its loaded versions are estimated to use, in bytes.
    pub memory_used_bytes: u64,
    /// Each loaded version's queue.
    pub models: Vec<ModelLoad>,
    /// sha256 digests of the artifacts in the node's local cache.
    pub cached_artifacts: Vec<String>,
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
}

/// A model version a node holds.
#[derive(Debug, Clone, PartialEq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct LoadedModel {
    /// Model name.
    pub name: String,
    /// Version number.
    pub version: u64,
    /// The [`crate::ModelConfig`] as JSON.
    pub config_json: String,
    /// Instances running, each on its own thread.
    pub instances: u32,
    /// Whether the model is loaded and warmed up.
    pub ready: bool,
    /// sha256 of its artifact, when it came from the artifact store.
    pub sha256: Option<String>,
}

/// Why a node could not run a batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub enum NodeError {
    /// The node does not hold this model version.
    #[error("model '{model}' version {version} is not loaded on this node")]
    ModelNotLoaded {
        /// Model name.
        model: String,
        /// Version number.
        version: u64,
    },
    /// A tensor did not match the model's configuration.
    #[error("{message}")]
    InvalidInput {
        /// What was wrong, naming the tensor.
        message: String,
    },
    /// The model's forward raised.
    #[error("model '{model}' failed: {message}")]
    ModelFailed {
        /// Model name.
        model: String,
        /// LibTorch's message.
        message: String,
    },
    /// The node's queue for the model is full.
    #[error("node is overloaded")]
    Overloaded,
    /// A version could not be loaded: its artifact is missing or fails
    /// verification, it is not TorchScript, or its warm-up failed.
    #[error("model '{model}' version {version} could not be loaded: {message}")]
    LoadFailed {
        /// Model name.
        model: String,
        /// Version.
        version: u64,
        /// Why.
        message: String,
    },
    /// Anything else; a bug or a broken node.
    #[error("internal node error: {message}")]
    Internal {
        /// What happened.
        message: String,
    },
}
