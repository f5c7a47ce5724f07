//! Reading a request body under a size limit.

use actix_web::{web, HttpRequest};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;

use maas_serving::error::{ServeError, ServeResult};

/// Reads the whole body, refusing one larger than `limit` before reading it
/// when `Content-Length` says so, and as soon as it grows past it otherwise.
pub async fn read(request: &HttpRequest, mut payload: web::Payload, limit: usize) -> ServeResult<Bytes> {
    let declared = request
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if let Some(size) = declared {
        if size > limit {
            return Err(ServeError::PayloadTooLarge { size, limit });
        }
    }
    let mut body = BytesMut::with_capacity(declared.unwrap_or(0));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ServeError::InvalidRequest(format!("could not read the request body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(ServeError::PayloadTooLarge { size: body.len() + chunk.len(), limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}
