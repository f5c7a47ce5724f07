//! Monitoring over HTTP: Triton's statistics extension, alerts, a live
//! view, feedback and evaluation.
//!
//! ```text
//! GET  /v2/models/stats                          every version's statistics (Triton's shape)
//! GET  /v2/models/{m}[/versions/{v}]/stats        one model's or one version's
//! GET  /v1/alerts                                active and recently cleared alerts
//! GET  /v1/monitor                               live rates, latency percentiles, load, alerts
//! POST /v1/models/{m}/feedback                   ground truth for earlier requests, by id
//! GET  /v1/models/{m}/evaluation                 scores per version from the feedback
//! ```
//!
//! Statistics and feedback take the inference token; the rest the admin token.

use crate::http::error::HttpResult;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::body;
use super::model::path_model;
use super::monitoring_views as views;
use super::routes::caller;
use super::AppState;
use crate::triton;
use maas_api::{AlertList, LiveStatus};
use maas_monitor::Feedback;
use maas_serving::error::{ServeError, ServeResult};
use maas_serving::infer::check_request_id;

/// Labels accepted in one feedback call.
const MAX_FEEDBACK: usize = 10_000;

/// `GET /v2/models[/{m}[/versions/{v}]]/stats`.
pub async fn stats(state: web::Data<AppState>, request: HttpRequest) -> HttpResult {
    let (model, version) = path_model(&request);
    let model = (!model.is_empty()).then_some(model.as_str());
    let caller = caller(&request)?;
    let selected = triton::statistics(state.inference.table(), &caller, model, version.as_deref())?;
    Ok(HttpResponse::Ok().json(json!({"model_stats": selected})))
}

/// `GET /v1/alerts`.
pub async fn alerts(state: web::Data<AppState>, request: HttpRequest) -> HttpResult {
    let caller = caller(&request)?;
    let (active, recent) = state.inference.table().monitor().alerts.list();
    let visible = |alert: &&maas_monitor::alerts::Alert| caller.sees(&alert.model);
    Ok(HttpResponse::Ok().json(AlertList {
        active: active.iter().filter(visible).map(views::alert).collect(),
        recent: recent.iter().filter(visible).map(views::alert).collect(),
    }))
}

/// `GET /v1/monitor`: what `maas top` shows.
pub async fn live(state: web::Data<AppState>, request: HttpRequest) -> HttpResult {
    let caller = caller(&request)?;
    let monitor = state.inference.table().monitor();
    let versions = monitor
        .versions()
        .iter()
        .filter(|m| caller.sees(&m.model))
        .map(|m| views::live_version(m.live_view()))
        .collect();
    let (active, _) = monitor.alerts.list();
    let alerts = active.iter().filter(|a| caller.sees(&a.model)).map(views::alert).collect();
    Ok(HttpResponse::Ok().json(LiveStatus { versions, alerts }))
}

/// Reads `{"id", "label"}` or `{"feedback": [{"id", "label"}, ...]}`; a
/// label is a number (one row) or an array of numbers (one per row).
fn parse_feedback(body: &[u8]) -> ServeResult<Vec<Feedback>> {
    let invalid = |message: String| ServeError::InvalidRequest(message);
    let value: Value = serde_json::from_slice(body).map_err(|e| invalid(format!("feedback is not JSON: {e}")))?;
    let entries: Vec<Value> = match value.get("feedback") {
        Some(Value::Array(entries)) => entries.clone(),
        Some(_) => return Err(invalid("'feedback' must be an array of {\"id\", \"label\"}".into())),
        None => vec![value],
    };
    if entries.len() > MAX_FEEDBACK {
        return Err(invalid(format!("{} labels in one call; send at most {MAX_FEEDBACK}", entries.len())));
    }
    entries
        .iter()
        .enumerate()
        .map(|(index, entry)| {
            let id = entry
                .get("id")
                .and_then(Value::as_str)
                .filter(|id| !id.is_empty())
                .ok_or_else(|| invalid(format!("feedback entry {index} has no 'id' string")))?;
            check_request_id(Some(id)).map_err(|error| invalid(format!("feedback entry {index}: {error}")))?;
            let number = |v: &Value| v.as_f64().filter(|x| x.is_finite());
            let truth = match entry.get("label") {
                Some(Value::Array(values)) if !values.is_empty() => {
                    values.iter().map(number).collect::<Option<Vec<f64>>>()
                }
                Some(value) => number(value).map(|x| vec![x]),
                None => None,
            }
            .ok_or_else(|| {
                invalid(format!("feedback entry {index} ('{id}') needs a 'label': a number or an array of numbers"))
            })?;
            Ok(Feedback { id: id.to_string(), truth })
        })
        .collect()
}

/// `POST /v1/models/{m}/feedback`.
pub async fn feedback(state: web::Data<AppState>, request: HttpRequest, payload: web::Payload) -> HttpResult {
    let (model, _) = path_model(&request);
    let named = state.inference.table().resolve(&model, None)?;
    let body = body::read(&request, payload, state.max_body_bytes).await?;
    let labels = parse_feedback(&body)?;
    let caller = caller(&request)?;
    let outcome = state.inference.table().monitor().feedback(&named.shared.name, caller.tenant(), labels);
    Ok(HttpResponse::Ok().json(outcome))
}

/// `GET /v1/models/{m}/evaluation`.
pub async fn evaluation(state: web::Data<AppState>, request: HttpRequest) -> HttpResult {
    let (model, _) = path_model(&request);
    let named = state.inference.table().resolve(&model, None)?;
    let name = &named.shared.name;
    let evaluation = state.inference.table().monitor().evaluation(name).ok_or_else(|| {
            ServeError::RouteNotFound(format!(
                "no prediction of model '{name}' has been recorded yet: send inference requests with an 'id', then feedback for those ids"
            ))
        })?;
    Ok(HttpResponse::Ok().json(views::evaluation(evaluation)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feedback_bodies_parse_or_say_what_is_wrong() {
        let one = parse_feedback(br#"{"id": "a", "label": 2}"#).unwrap();
        assert_eq!((one[0].id.as_str(), one[0].truth.clone()), ("a", vec![2.0]));
        let many =
            parse_feedback(br#"{"feedback": [{"id": "a", "label": [1, 0.5]}, {"id": "b", "label": 3}]}"#).unwrap();
        assert_eq!(many.len(), 2);
        assert_eq!(many[0].truth, vec![1.0, 0.5]);
        for (body, expected) in [
            (&b"not json"[..], "not JSON"),
            (br#"{"label": 1}"#, "no 'id'"),
            (br#"{"id": "", "label": 1}"#, "no 'id'"),
            (br#"{"id": "a"}"#, "needs a 'label'"),
            (br#"{"id": "a", "label": "cat"}"#, "needs a 'label'"),
            (br#"{"id": "a", "label": []}"#, "needs a 'label'"),
            (br#"{"feedback": 3}"#, "must be an array"),
        ] {
            let error = parse_feedback(body).unwrap_err().to_string();
            assert!(error.contains(expected), "{error}");
        }
        let long = format!(r#"{{"id": "{}", "label": 1}}"#, "i".repeat(maas_serving::infer::MAX_REQUEST_ID_BYTES + 1));
        let error = parse_feedback(long.as_bytes()).unwrap_err().to_string();
        assert!(error.contains("feedback entry 0: the request id has 257 bytes"), "{error}");
    }
}
