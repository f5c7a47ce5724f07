//! `POST /v2/models/{m}[/versions/{v}]/infer`.

use crate::http::error::HttpResult;
use actix_web::{web, HttpRequest, HttpResponse};
use maas_serving::input_check::InputCheck;

use super::codec::{request, response, HEADER_LENGTH};
use super::model::path_model;
use super::routes::caller;
use super::{body, AppState};
use crate::auth::body_limit;

/// Reads, runs and answers one inference request.
pub async fn infer(state: web::Data<AppState>, request: HttpRequest, payload: web::Payload) -> HttpResult {
    let request = &request;
    let (model, version) = path_model(request);
    let caller = caller(request)?;
    let limit = body_limit(&caller, state.max_body_bytes);
    let parse = |check: InputCheck| async move {
        let body = body::read(request, payload, check.request_limit(limit)).await?;
        let header_length = request.headers().get(HEADER_LENGTH).map(|v| v.to_str().unwrap_or("not text"));
        let parsed = request::parse(header_length, body, &check)?;
        Ok((parsed.request, (parsed.id, parsed.outputs)))
    };
    let encode = |answer, (id, outputs): (Option<String>, _)| response::encode(&answer, id.as_deref(), &outputs);
    let encoded = state.inference.serve(&caller, &model, version.as_deref(), parse, encode).await?;
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
