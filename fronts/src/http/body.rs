//! Reading a request body under a size limit and a deadline.
//!
//! A body must arrive at a sane pace: within [`BODY_GRACE`] plus one
//! second per [`MIN_BYTES_PER_SECOND`] of its size (declared, or received so
//! far), so a client trickling bytes cannot hold a connection and its
//! buffer for as long as it likes.

use actix_web::{web, HttpRequest};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use std::time::{Duration, Instant};

use maas_serving::error::{ServeError, ServeResult};

/// Time any body may take, whatever its size.
pub const BODY_GRACE: Duration = Duration::from_secs(5);
/// The slowest pace a body may arrive at after the grace.
pub const MIN_BYTES_PER_SECOND: u64 = 1 << 20;

/// Reads the whole body, refusing one larger than `limit` before reading it
/// when `Content-Length` says so, and as soon as it grows past it otherwise;
/// and one that arrives too slowly.
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
    // Room for what is declared, up to a first megabyte: a client that
    // declares much and sends little gets no more memory than it sent.
    let mut body = BytesMut::with_capacity(declared.unwrap_or(0).min(1 << 20));
    let started = Instant::now();
    let deadline = |received: usize| {
        let size = declared.unwrap_or(0).max(received) as u64;
        started + BODY_GRACE + Duration::from_secs(size / MIN_BYTES_PER_SECOND)
    };
    loop {
        let next = tokio::time::timeout_at(deadline(body.len()).into(), payload.next()).await.map_err(|_| {
            ServeError::InvalidRequest(format!(
                "the request body arrived too slowly: {} bytes in {:?}",
                body.len(),
                started.elapsed()
            ))
        })?;
        let Some(chunk) = next else { break };
        let chunk = chunk.map_err(|e| ServeError::InvalidRequest(format!("could not read the request body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(ServeError::PayloadTooLarge { size: body.len() + chunk.len(), limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}
