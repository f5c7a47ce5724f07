//! Turning a [`ServeError`] into an HTTP response.

use actix_web::HttpResponse;

use crate::error::ServeError;

/// `{"error": "<message>"}` with the error's status, and `Retry-After`
/// for errors that pass.
pub fn response(error: &ServeError) -> HttpResponse {
    let mut builder = HttpResponse::build(error.status());
    if let Some(seconds) = error.retry_after() {
        builder.insert_header(("Retry-After", seconds.to_string()));
    }
    if matches!(error, ServeError::Unauthorized(_)) {
        builder.insert_header(("WWW-Authenticate", "Bearer"));
    }
    builder.json(serde_json::json!({ "error": error.to_string() }))
}
