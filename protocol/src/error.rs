//! The typed errors a node reports, on either plane.

/// Why a node could not run a batch or a command.
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
