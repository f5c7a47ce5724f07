//! What a generative request can fail with, in terms both fronts render:
//! OpenAI's `{"error": {"message", "type", "code"}}` and Triton's
//! `{"error": "..."}`.

use maas_serving::ServeError;

/// A failed generative request: its HTTP status and what to tell the client.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationError {
    /// HTTP status.
    pub status: u16,
    /// What went wrong, for a person.
    pub message: String,
    /// Seconds before a retry may pass, when it may.
    pub retry_after: Option<u32>,
    /// A short label for metrics.
    pub outcome: &'static str,
}

impl GenerationError {
    /// A 400 for a malformed request.
    pub fn invalid(message: impl Into<String>) -> GenerationError {
        ServeError::InvalidRequest(message.into()).into()
    }

    /// A 503: no engine URL answered.
    pub fn unavailable(message: impl Into<String>) -> GenerationError {
        ServeError::Unavailable(message.into()).into()
    }

    /// The engine refused the request itself (a 4xx of its own).
    pub fn from_engine(status: u16, message: String) -> GenerationError {
        GenerationError { status, message, retry_after: None, outcome: "engine_refused" }
    }

    /// OpenAI's error type for this status.
    pub fn openai_type(&self) -> &'static str {
        match self.status {
            400 | 404 | 413 | 422 => "invalid_request_error",
            401 => "authentication_error",
            403 => "permission_error",
            429 => "rate_limit_exceeded",
            _ => "server_error",
        }
    }

    /// OpenAI's body for it.
    pub fn openai_body(&self) -> serde_json::Value {
        serde_json::json!({"error": {
            "message": self.message,
            "type": self.openai_type(),
            "param": null,
            "code": self.outcome,
        }})
    }
}

impl From<ServeError> for GenerationError {
    fn from(error: ServeError) -> GenerationError {
        GenerationError {
            status: error.http_status(),
            message: error.to_string(),
            retry_after: error.retry_after(),
            outcome: error.outcome(),
        }
    }
}

impl From<maas_tenancy::Refusal> for GenerationError {
    fn from(refusal: maas_tenancy::Refusal) -> GenerationError {
        ServeError::from(refusal).into()
    }
}

impl std::fmt::Display for GenerationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}
