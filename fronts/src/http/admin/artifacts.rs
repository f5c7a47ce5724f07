//! `PUT /v1/artifacts`: a streamed, size-limited upload stored by digest.

use crate::http::error::HttpResult;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use maas_api::ArtifactStored;

use crate::state::AppState;
use maas_serving::error::ServeError;

/// Header with the sha256 the client expects; a mismatch refuses the upload.
pub const EXPECTED_SHA256: &str = "X-Maas-Sha256";

/// Streams the body into the artifact store.
pub async fn upload(state: web::Data<AppState>, request: HttpRequest, mut payload: web::Payload) -> HttpResult {
    let limit = state.max_upload_bytes;
    let too_large = |size: u64| ServeError::PayloadTooLarge { size: size as usize, limit: limit as usize };
    if let Some(declared) = request
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        if declared > limit {
            return Err(too_large(declared).into());
        }
    }
    let expected = request.headers().get(EXPECTED_SHA256).and_then(|v| v.to_str().ok()).map(str::to_lowercase);
    let mut sink = state.artifacts.begin_upload().await?;
    while let Some(chunk) = payload.next().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(e) => {
                sink.abort().await;
                return Err(ServeError::InvalidRequest(format!("the upload broke off: {e}")).into());
            }
        };
        if sink.size() + chunk.len() as u64 > limit {
            let size = sink.size() + chunk.len() as u64;
            sink.abort().await;
            return Err(too_large(size).into());
        }
        sink.write(&chunk).await?;
    }
    if sink.size() == 0 {
        sink.abort().await;
        return Err(ServeError::InvalidRequest("the upload is empty".into()).into());
    }
    // The digest is checked before the upload is filed under it: a refused
    // upload removes only its own temporary object, never a stored blob
    // that a concurrent upload of the same bytes was told is stored.
    let stored = sink.finish(expected.as_deref()).await?;
    tracing::info!(sha256 = %stored.artifact.sha256, size = stored.artifact.size, new = stored.newly_stored, "artifact uploaded");
    Ok(HttpResponse::Created().json(ArtifactStored {
        sha256: stored.artifact.sha256,
        size: stored.artifact.size,
        newly_stored: stored.newly_stored,
    }))
}
