//! Registry errors.

/// Why a registry operation failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum RegistryError {
    /// Another writer changed the model first; nothing was written.
    #[error("model '{model}' was changed by another writer; reload it and try again")]
    Conflict {
        /// Model name.
        model: String,
    },
    /// No such model, version or alias.
    #[error("{0}")]
    NotFound(String),
    /// The operation is not allowed in the record's state, or its input is invalid.
    #[error("{0}")]
    Invalid(String),
    /// The store itself failed (etcd unreachable, disk full, ...).
    #[error("registry store failed: {0}")]
    Backend(String),
}

/// Result of registry operations.
pub type RegistryResult<T> = Result<T, RegistryError>;
