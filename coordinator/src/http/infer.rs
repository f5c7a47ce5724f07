//! `POST /v2/models/{m}[/versions/{v}]/infer`.

use std::time::Instant;

use actix_web::{web, HttpRequest, HttpResponse};

use super::codec::{request, response, HEADER_LENGTH};
use super::model::path_model;
use super::{body, error, AppState};
use crate::error::ServeResult;

/// Reads, runs and answers one inference request.
pub async fn infer(state: web::Data<AppState>, request: HttpRequest, payload: web::Payload) -> HttpResponse {
    match run(&state, &request, payload).await {
        Ok(response) => response,
        Err(e) => error::response(&e),
    }
}

async fn run(state: &AppState, request: &HttpRequest, payload: web::Payload) -> ServeResult<HttpResponse> {
    let arrived = Instant::now();
    state.tokens.require_inference(request)?;
    let (model, version) = path_model(request);
    let version = state.inference.resolve(&model, version.as_deref())?;
    let result = async {
        let body = body::read(request, payload, state.max_body_bytes).await?;
        let header_length = request.headers().get(HEADER_LENGTH).map(|v| v.to_str().unwrap_or("not text"));
        let parsed = request::parse(header_length, body)?;
        let answer = state.inference.run(&version, parsed.request, arrived).await?;
        response::encode(&answer, parsed.id.as_deref(), &parsed.outputs)
    }
    .await;
    state.inference.record(&version, arrived, &result);
    let encoded = result?;
    let mut builder = HttpResponse::Ok();
    match encoded.json_len {
        Some(json_len) => {
            builder.content_type("application/octet-stream");
            builder.insert_header((HEADER_LENGTH, json_len.to_string()));
        }
        None => {
            builder.content_type("application/json");
        }
    }
    Ok(builder.body(encoded.body))
}
