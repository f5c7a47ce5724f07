//! Turning a [`ServeError`] into an HTTP response.

use actix_web::http::StatusCode;
use actix_web::HttpResponse;

use maas_serving::error::ServeError;

/// `{"error": "<message>"}` with the error's status, and `Retry-After`
/// for errors that pass.
pub fn response(error: &ServeError) -> HttpResponse {
    with_fields(error, serde_json::json!({}))
}

/// [`response`] with more fields in the body (an object), as the health
/// routes answer `{"ready": false, "error": ...}`.
pub fn with_fields(error: &ServeError, mut body: serde_json::Value) -> HttpResponse {
    let mut builder = HttpResponse::build(status(error));
    if let Some(seconds) = error.retry_after() {
        builder.insert_header(("Retry-After", seconds.to_string()));
    }
    if matches!(error, ServeError::Unauthorized(_)) {
        builder.insert_header(("WWW-Authenticate", "Bearer"));
    }
    body["error"] = error.to_string().into();
    builder.json(body)
}

/// The error's HTTP status.
pub fn status(error: &ServeError) -> StatusCode {
    StatusCode::from_u16(error.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// A [`ServeError`] as an actix error, so a handler can return
/// [`HttpResult`] and use `?` on anything that returns a `ServeResult`.
#[derive(Debug)]
pub struct HttpError(pub ServeError);

impl From<ServeError> for HttpError {
    fn from(error: ServeError) -> HttpError {
        HttpError(error)
    }
}

impl From<maas_registry::RegistryError> for HttpError {
    fn from(error: maas_registry::RegistryError) -> HttpError {
        HttpError(error.into())
    }
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl actix_web::ResponseError for HttpError {
    fn status_code(&self) -> StatusCode {
        status(&self.0)
    }

    fn error_response(&self) -> HttpResponse {
        response(&self.0)
    }
}

/// What a handler returns: its response, or a [`ServeError`] answered by
/// [`response`].
pub type HttpResult = Result<HttpResponse, HttpError>;
