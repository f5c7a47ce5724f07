//! Generative requests: OpenAI's `POST /v1/chat/completions` and
//! `/v1/completions`, and Triton's generate extension
//! (`POST /v2/models/{m}[/versions/{v}]/generate` and `/generate_stream`).
//! Each reads its body under the caller's limit and hands it to
//! [`maas_llm::Generation::serve`]; errors come back in the shape of the
//! front the client speaks.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use maas_llm::{Endpoint, Front, GenerationError, GenerationRequest, Reply, Served};

use super::model::path_model;
use super::routes::caller;
use super::{body, AppState};
use crate::auth::body_limit;

/// `POST /v1/chat/completions`.
pub async fn chat(state: web::Data<AppState>, request: HttpRequest, payload: web::Payload) -> HttpResponse {
    openai(state, request, payload, Endpoint::Chat).await
}

/// `POST /v1/completions`.
pub async fn completions(state: web::Data<AppState>, request: HttpRequest, payload: web::Payload) -> HttpResponse {
    openai(state, request, payload, Endpoint::Completion).await
}

/// `POST /v2/models/{m}[/versions/{v}]/generate`.
pub async fn generate(state: web::Data<AppState>, request: HttpRequest, payload: web::Payload) -> HttpResponse {
    triton(state, request, payload, false).await
}

/// `POST /v2/models/{m}[/versions/{v}]/generate_stream`.
pub async fn generate_stream(state: web::Data<AppState>, request: HttpRequest, payload: web::Payload) -> HttpResponse {
    triton(state, request, payload, true).await
}

async fn openai(
    state: web::Data<AppState>,
    request: HttpRequest,
    payload: web::Payload,
    endpoint: Endpoint,
) -> HttpResponse {
    let served = async {
        let caller = caller(&request)?;
        let body = body::read(&request, payload, body_limit(&caller, state.max_body_bytes)).await?;
        let parsed = GenerationRequest::openai(endpoint, &body)?;
        state.generation.serve(&state.inference, &caller, parsed, None, Front::OpenAi, request_id(&request)).await
    };
    match served.await {
        Ok(reply) => reply_response(reply),
        Err(error) => error_response(&error, error.openai_body()),
    }
}

async fn triton(state: web::Data<AppState>, request: HttpRequest, payload: web::Payload, stream: bool) -> HttpResponse {
    let (model, version) = path_model(&request);
    let served = async {
        let caller = caller(&request)?;
        let body = body::read(&request, payload, body_limit(&caller, state.max_body_bytes)).await?;
        let parsed = GenerationRequest::triton(&model, &body, stream)?;
        let id = request_id(&request);
        state.generation.serve(&state.inference, &caller, parsed, version.as_deref(), Front::Triton, id).await
    };
    match served.await {
        Ok(reply) => reply_response(reply),
        Err(error) => error_response(&error, serde_json::json!({"error": error.message})),
    }
}

/// The client's `X-Request-Id`, when it is a valid request id, for the
/// node's logs.
fn request_id(request: &HttpRequest) -> &str {
    let id = request.headers().get("x-request-id").and_then(|v| v.to_str().ok());
    id.filter(|id| maas_serving::infer::check_request_id(Some(id)).is_ok()).unwrap_or_default()
}

/// The header naming the version that answered (a split or alias chose it).
pub const VERSION_HEADER: &str = "maas-model-version";

fn reply_response(served: Served) -> HttpResponse {
    let mut builder = HttpResponse::Ok();
    builder.insert_header((VERSION_HEADER, served.version.to_string()));
    match served.reply {
        Reply::Whole(body) => builder.content_type("application/json").body(body),
        Reply::Stream(events) => builder
            .content_type("text/event-stream")
            .insert_header(("Cache-Control", "no-cache"))
            .insert_header(("X-Accel-Buffering", "no"))
            .streaming(events),
    }
}

fn error_response(error: &GenerationError, body: serde_json::Value) -> HttpResponse {
    let mut builder = HttpResponse::build(StatusCode::from_u16(error.status).unwrap_or(StatusCode::BAD_GATEWAY));
    if let Some(seconds) = error.retry_after {
        builder.insert_header(("Retry-After", seconds.to_string()));
    }
    if error.status == 401 {
        builder.insert_header(("WWW-Authenticate", "Bearer"));
    }
    builder.json(body)
}
