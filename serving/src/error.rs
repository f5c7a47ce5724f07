//! The one error type of the serving path.
//!
//! Every failure a client can see is a [`ServeError`]. Its `Display` is the
//! message clients read; [`ServeError::http_status`] is the only place that
//! picks an HTTP status, and [`ServeError::outcome`] the bounded metric
//! label. The gRPC front maps it to a status code in its own module.

use std::time::Duration;

use maas_protocol::NodeError;

/// A request's failure, as the client sees it.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ServeError {
    /// No model of that name.
    #[error("Request for unknown model: '{model}' is not found")]
    ModelNotFound {
        /// Requested model.
        model: String,
    },
    /// No route matches the path and method.
    #[error("{0}")]
    RouteNotFound(String),
    /// The model exists but not that version.
    #[error("Request for unknown model: '{model}' version {version} is not found")]
    VersionNotFound {
        /// Requested model.
        model: String,
        /// Requested version, as given.
        version: String,
    },
    /// The request is malformed or does not match the model.
    #[error("{0}")]
    InvalidRequest(String),
    /// The body is larger than the configured limit.
    #[error("request body of {size} bytes exceeds the limit of {limit} bytes")]
    PayloadTooLarge {
        /// Bytes sent (or declared).
        size: usize,
        /// Configured maximum.
        limit: usize,
    },
    /// The version's queue is full.
    #[error("model '{model}' version {version} is overloaded: its queue is full, retry later")]
    Overloaded {
        /// Model name.
        model: String,
        /// Version.
        version: u64,
    },
    /// No replica can take the request now.
    #[error("{0}")]
    Unavailable(String),
    /// The request's deadline passed before it was answered.
    #[error("request to model '{model}' version {version} timed out after {waited:?}")]
    Timeout {
        /// Model name.
        model: String,
        /// Version.
        version: u64,
        /// Time from arrival to giving up.
        waited: Duration,
    },
    /// The model raised while running the request.
    #[error("model '{model}' failed: {message}")]
    ModelFailed {
        /// Model name.
        model: String,
        /// The model's error.
        message: String,
    },
    /// A bug or a broken node.
    #[error("internal error: {0}")]
    Internal(String),
    /// The request lacks the token its route needs.
    #[error("{0}")]
    Unauthorized(String),
    /// Another writer changed the registry first.
    #[error("{0}")]
    Conflict(String),
    /// The caller's key lacks the role or scope.
    #[error("{0}")]
    Forbidden(String),
    /// The caller's key is over a rate limit or quota.
    #[error("{message}")]
    RateLimited {
        /// Which limit.
        message: String,
        /// When a retry may pass, in whole seconds (at least 1).
        retry_after: u32,
    },
}

impl ServeError {
    /// The HTTP status for this error.
    pub fn http_status(&self) -> u16 {
        match self {
            ServeError::ModelNotFound { .. } | ServeError::VersionNotFound { .. } | ServeError::RouteNotFound(_) => 404,
            ServeError::InvalidRequest(_) => 400,
            ServeError::PayloadTooLarge { .. } => 413,
            ServeError::Overloaded { .. } | ServeError::Unavailable(_) => 503,
            ServeError::Timeout { .. } => 504,
            ServeError::ModelFailed { .. } | ServeError::Internal(_) => 500,
            ServeError::Unauthorized(_) => 401,
            ServeError::Conflict(_) => 409,
            ServeError::Forbidden(_) => 403,
            ServeError::RateLimited { .. } => 429,
        }
    }

    /// Seconds a client should wait before retrying, for errors that pass.
    pub fn retry_after(&self) -> Option<u32> {
        match self {
            ServeError::Overloaded { .. } | ServeError::Unavailable(_) => Some(1),
            ServeError::RateLimited { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    /// A short, bounded label for metrics.
    pub fn outcome(&self) -> &'static str {
        match self {
            ServeError::ModelNotFound { .. } | ServeError::VersionNotFound { .. } | ServeError::RouteNotFound(_) => {
                "not_found"
            }
            ServeError::InvalidRequest(_) => "invalid",
            ServeError::PayloadTooLarge { .. } => "too_large",
            ServeError::Overloaded { .. } => "overloaded",
            ServeError::Unavailable(_) => "unavailable",
            ServeError::Timeout { .. } => "timeout",
            ServeError::ModelFailed { .. } => "model_failed",
            ServeError::Internal(_) => "internal",
            ServeError::Unauthorized(_) => "unauthorized",
            ServeError::Conflict(_) => "conflict",
            ServeError::Forbidden(_) => "forbidden",
            ServeError::RateLimited { .. } => "rate_limited",
        }
    }

    /// Maps a node's error for a request of `model`.
    pub fn from_node(model: &str, error: NodeError) -> ServeError {
        match error {
            NodeError::InvalidInput { message } => ServeError::InvalidRequest(message),
            NodeError::ModelFailed { message, .. } => ServeError::ModelFailed { model: model.to_string(), message },
            NodeError::ModelNotLoaded { model, version } => {
                ServeError::Unavailable(format!("model '{model}' version {version} is not loaded on the chosen node"))
            }
            NodeError::Overloaded => ServeError::Unavailable(format!("the node serving model '{model}' is overloaded")),
            NodeError::Internal { message } => ServeError::Internal(message),
            error @ NodeError::LoadFailed { .. } => ServeError::InvalidRequest(error.to_string()),
        }
    }
}

impl From<maas_tenancy::Refusal> for ServeError {
    fn from(refusal: maas_tenancy::Refusal) -> ServeError {
        use maas_tenancy::Refusal;
        match refusal {
            Refusal::Unauthenticated(message) => ServeError::Unauthorized(message),
            Refusal::Forbidden(message) => ServeError::Forbidden(message),
            Refusal::Limited { message, retry_after } => {
                // Whole seconds, rounded up: a client retrying sooner is refused again.
                let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
                ServeError::RateLimited { message, retry_after: seconds.clamp(1, 3600) as u32 }
            }
        }
    }
}

impl From<maas_registry::RegistryError> for ServeError {
    fn from(error: maas_registry::RegistryError) -> ServeError {
        use maas_registry::RegistryError;
        match error {
            RegistryError::Conflict { .. } => ServeError::Conflict(error.to_string()),
            RegistryError::NotFound(message) => ServeError::RouteNotFound(message),
            RegistryError::Invalid(message) => ServeError::InvalidRequest(message),
            RegistryError::Backend(message) => ServeError::Unavailable(format!("registry unavailable: {message}")),
        }
    }
}

/// Result of the serving path.
pub type ServeResult<T> = Result<T, ServeError>;

#[cfg(test)]
mod tests {
    use super::*;

    /// One row per kind: the HTTP status, metric label and Retry-After
    /// clients see.
    #[test]
    fn every_kind_maps_to_one_status_code_label_and_retry() {
        let m = || "m".to_string();
        let cases = [
            (ServeError::ModelNotFound { model: m() }, 404, "not_found", None),
            (ServeError::VersionNotFound { model: m(), version: "9".into() }, 404, "not_found", None),
            (ServeError::RouteNotFound("x".into()), 404, "not_found", None),
            (ServeError::InvalidRequest("x".into()), 400, "invalid", None),
            (ServeError::PayloadTooLarge { size: 2, limit: 1 }, 413, "too_large", None),
            (ServeError::Overloaded { model: m(), version: 1 }, 503, "overloaded", Some(1)),
            (ServeError::Unavailable("x".into()), 503, "unavailable", Some(1)),
            (ServeError::Timeout { model: m(), version: 1, waited: Duration::from_millis(5) }, 504, "timeout", None),
            (ServeError::ModelFailed { model: m(), message: "x".into() }, 500, "model_failed", None),
            (ServeError::Internal("x".into()), 500, "internal", None),
            (ServeError::Unauthorized("x".into()), 401, "unauthorized", None),
            (ServeError::Conflict("x".into()), 409, "conflict", None),
        ];
        for (error, status, outcome, retry) in cases {
            assert_eq!(error.http_status(), status, "{error:?}");
            assert_eq!(error.outcome(), outcome, "{error:?}");
            assert_eq!(error.retry_after(), retry, "{error:?}");
        }
    }

    #[test]
    fn node_errors_become_what_a_client_can_act_on() {
        let invalid = ServeError::from_node("m", NodeError::InvalidInput { message: "bad row".into() });
        assert!(matches!(invalid, ServeError::InvalidRequest(ref m) if m == "bad row"), "{invalid:?}");
        let overloaded = ServeError::from_node("m", NodeError::Overloaded);
        assert_eq!(overloaded.http_status(), 503);
        let missing = ServeError::from_node("m", NodeError::ModelNotLoaded { model: "m".into(), version: 2 });
        assert_eq!(missing.to_string(), "model 'm' version 2 is not loaded on the chosen node");
    }
}
