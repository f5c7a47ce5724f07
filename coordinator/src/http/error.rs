//! Turning a [`ServeError`] into an HTTP response.

use actix_web::HttpResponse;

use crate::error::ServeError;

/// `{"error": "<message>"}` with the error's status, and `Retry-After`
/// for errors that pass.
pub fn response(error: &ServeError) -> HttpResponse {
    with_fields(error, serde_json::json!({}))
}

/// [`response`] with more fields in the body (an object), as the health
/// routes answer `{"ready": false, "error": ...}`.
pub fn with_fields(error: &ServeError, mut body: serde_json::Value) -> HttpResponse {
    let mut builder = HttpResponse::build(error.status());
    if let Some(seconds) = error.retry_after() {
        builder.insert_header(("Retry-After", seconds.to_string()));
    }
    if matches!(error, ServeError::Unauthorized(_)) {
        builder.insert_header(("WWW-Authenticate", "Bearer"));
    }
    body["error"] = error.to_string().into();
    builder.json(body)
}

/// Lets a handler return `ServeResult<HttpResponse>`: the error becomes
/// [`response`].
impl actix_web::ResponseError for ServeError {
    fn status_code(&self) -> actix_web::http::StatusCode {
        self.status()
    }

    fn error_response(&self) -> HttpResponse {
        response(self)
    }
}
