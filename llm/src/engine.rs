//! One external engine version: its URLs, which of them answer, and sending
//! a request to one that does.
//!
//! A request goes to the URLs in turn, starting after the one the previous
//! request started at, those that failed their last check last. A URL that
//! refuses the connection or answers 502 or 503 (it took no work) is marked
//! down and the next one is tried: nothing has reached the client yet, so
//! the retry is invisible. A URL that took the request and then fell silent
//! may be generating: it is not retried elsewhere (the client gets a 504),
//! so no request runs twice. An answer of the engine's own (a 4xx, or 500)
//! is passed on; the engine refusing maas's own credential is a 502. Once an
//! answer streams, it is never retried. Errors name URLs by their place in
//! the version's list; the log has the addresses.

use futures_util::stream::StreamExt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use maas_protocol::EngineEndpoint;
use maas_registry::EngineKey;

use crate::error::GenerationError;
use crate::request::Endpoint;

/// Longest error body read from an engine.
const MAX_ERROR_BODY: usize = 16 * 1024;

/// One base URL of an engine.
#[derive(Debug)]
struct Url {
    base: String,
    up: AtomicBool,
}

/// An engine version's URLs and credential.
#[derive(Debug)]
pub struct Engine {
    urls: Vec<Url>,
    /// The engine's name for the model.
    pub model: String,
    key: Option<EngineKey>,
    next: AtomicUsize,
}

/// The body of an answer still to come, in pieces.
pub type Body = futures_util::stream::BoxStream<'static, Result<bytes::Bytes, String>>;

/// An engine's answer, its headers read (or a native decoder's, its first
/// token come): the body is still to come, in the engine's OpenAI shape.
pub struct Answer {
    /// The body of a 2xx response.
    pub body: Body,
    /// Which URL answered, as clients are told: its place in the list.
    pub url: String,
}

impl Engine {
    /// An engine at `endpoint`, known to maas as `model`.
    pub fn new(model: &str, endpoint: &EngineEndpoint, key: Option<EngineKey>) -> Engine {
        let urls = endpoint.urls.iter().map(|u| Url { base: base_url(u), up: AtomicBool::new(true) }).collect();
        Engine {
            urls,
            model: endpoint.model.clone().unwrap_or_else(|| model.to_string()),
            key,
            next: AtomicUsize::new(0),
        }
    }

    /// Whether a URL answered its last check.
    pub fn any_up(&self) -> bool {
        self.urls.iter().any(|u| u.up.load(Ordering::Relaxed))
    }

    /// Sends `body` to `endpoint` on the first URL that takes it, waiting
    /// at most `first_byte` for each URL's headers.
    pub async fn send(
        &self,
        client: &reqwest::Client,
        endpoint: Endpoint,
        body: Vec<u8>,
        first_byte: Duration,
    ) -> Result<Answer, GenerationError> {
        let mut failures = Vec::new();
        let count = self.urls.len();
        for (place, url) in self.order() {
            let shown = format!("URL {} of {count}", place + 1);
            let mut request = client
                .post(format!("{}{}", url.base, endpoint.path()))
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone());
            if let Some(key) = &self.key {
                request = request.bearer_auth(key.expose());
            }
            match tokio::time::timeout(first_byte, request.send()).await {
                Ok(Ok(response)) if response.status().is_success() => {
                    url.up.store(true, Ordering::Relaxed);
                    let body = response.bytes_stream().map(|piece| piece.map_err(|e| e.to_string())).boxed();
                    return Ok(Answer { body, url: format!("the engine's {shown}") });
                }
                Ok(Ok(response)) if matches!(response.status().as_u16(), 502 | 503) => {
                    url.up.store(false, Ordering::Relaxed);
                    tracing::warn!(engine = %self.model, url = %url.base, status = %response.status(), "engine URL refused a request; trying the next");
                    failures.push(format!("{shown} answered {}", response.status()));
                }
                Ok(Ok(response)) => return Err(engine_refusal(response).await),
                Ok(Err(error)) if error.is_connect() => {
                    url.up.store(false, Ordering::Relaxed);
                    let detail = tls_failure(&error).unwrap_or_default();
                    tracing::warn!(engine = %self.model, url = %url.base, %error, tls = %detail, "engine URL unreachable; trying the next");
                    failures.push(format!("{shown}: {}", describe(&error)));
                }
                Ok(Err(error)) => {
                    tracing::warn!(engine = %self.model, url = %url.base, %error, "engine request failed");
                    return Err(GenerationError {
                        status: 502,
                        message: format!("the engine's {shown} failed the request: {}", describe(&error)),
                        retry_after: None,
                        outcome: "engine_failed",
                    });
                }
                Err(_) => {
                    return Err(GenerationError {
                        status: 504,
                        message: format!("the engine's {shown} did not answer within {first_byte:?}"),
                        retry_after: None,
                        outcome: "timeout",
                    });
                }
            }
        }
        Err(GenerationError::unavailable(format!(
            "no URL of the engine for '{}' answered: {}",
            self.model,
            failures.join("; ")
        )))
    }

    /// The URLs in the order to try, with their place in the list: round
    /// robin, those up first.
    fn order(&self) -> Vec<(usize, &Url)> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let count = self.urls.len();
        let rotated = (0..count).map(|i| ((start + i) % count, &self.urls[(start + i) % count]));
        let (up, down): (Vec<_>, Vec<_>) = rotated.partition(|(_, u)| u.up.load(Ordering::Relaxed));
        up.into_iter().chain(down).collect()
    }

    /// Checks every URL (`/health`, else `/v1/models`), within `timeout`
    /// each; returns whether one answers.
    pub async fn check(&self, client: &reqwest::Client, timeout: Duration) -> bool {
        self.check_each(client, timeout).await.iter().any(Result::is_ok)
    }

    /// Like [`Engine::check`], saying why when no URL answers: what each
    /// URL did (its status, a refused connection, a failed TLS handshake).
    pub async fn probe(&self, client: &reqwest::Client, timeout: Duration) -> Result<(), String> {
        let results = self.check_each(client, timeout).await;
        if results.iter().any(Result::is_ok) {
            return Ok(());
        }
        let count = results.len();
        let each: Vec<String> = results
            .into_iter()
            .enumerate()
            .filter_map(|(place, result)| result.err().map(|why| format!("URL {} of {count}: {why}", place + 1)))
            .collect();
        Err(each.join("; "))
    }

    /// Checks each URL, marking it up or down; what each did.
    async fn check_each(&self, client: &reqwest::Client, timeout: Duration) -> Vec<Result<(), String>> {
        let checks = self.urls.iter().map(|url| async move {
            let mut outcome = Err(String::new());
            for path in ["/health", "/v1/models"] {
                let mut request = client.get(format!("{}{path}", url.base)).timeout(timeout);
                if let Some(key) = &self.key {
                    request = request.bearer_auth(key.expose());
                }
                outcome = match request.send().await {
                    Ok(response) if response.status().is_success() => Ok(()),
                    Ok(response) => Err(format!("{path} answered {}", response.status())),
                    // For the admin publishing it: the TLS error in full.
                    Err(error) => Err(match tls_failure(&error) {
                        Some(tls) => format!("TLS failed: {tls}"),
                        None => describe(&error),
                    }),
                };
                if outcome.is_ok() {
                    break;
                }
            }
            url.up.store(outcome.is_ok(), Ordering::Relaxed);
            outcome
        });
        futures_util::future::join_all(checks).await
    }
}

/// `http://host:port[/path]` without a trailing `/` or `/v1`.
fn base_url(url: &str) -> String {
    let trimmed = url.trim_end_matches('/');
    trimmed.strip_suffix("/v1").unwrap_or(trimmed).to_string()
}

/// The engine's own error, passed on with its status and message.
async fn engine_refusal(response: reqwest::Response) -> GenerationError {
    let status = response.status().as_u16();
    if matches!(status, 401 | 403 | 407) {
        // The engine refused maas's credential, not the client's.
        return GenerationError {
            status: 502,
            message: format!(
                "the engine refused the coordinator's credential ({status}): check the version's engine_key"
            ),
            retry_after: None,
            outcome: "engine_failed",
        };
    }
    let mut body = Vec::new();
    let mut stream = response;
    while let Ok(Some(chunk)) = stream.chunk().await {
        body.extend_from_slice(&chunk[..chunk.len().min(MAX_ERROR_BODY - body.len())]);
        if body.len() >= MAX_ERROR_BODY {
            break;
        }
    }
    let text = String::from_utf8_lossy(&body);
    let message = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .map(|v| {
            // OpenAI's {"error": {"message"}}, or FastAPI's {"detail": ...}.
            let error = v.get("error").or_else(|| v.get("detail")).cloned().unwrap_or(v);
            let message = error.get("message").and_then(|m| m.as_str()).or(error.as_str());
            message.map_or_else(|| error.to_string(), str::to_string)
        })
        .unwrap_or_else(|| text.trim().to_string());
    GenerationError::from_engine(status, format!("the engine refused the request ({status}): {message}"))
}

/// A connection error in a few words, for any client to read.
fn describe(error: &reqwest::Error) -> String {
    // Not the error's text: it names the URL, which is not the client's to
    // see; nor the TLS error's, which may name the certificate's hosts.
    if tls_failure(error).is_some() {
        "TLS failed: the engine's certificate was not accepted".into()
    } else if error.is_connect() {
        "connection refused".into()
    } else if error.is_timeout() {
        "timed out".into()
    } else {
        "the connection broke".into()
    }
}

/// The TLS error under `error`, if a handshake failed (an untrusted or
/// mismatched certificate); its text names no URL.
fn tls_failure(error: &reqwest::Error) -> Option<String> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(cause) = current {
        if let Some(tls) = cause.downcast_ref::<rustls::Error>() {
            return Some(tls.to_string());
        }
        current = match cause.downcast_ref::<std::io::Error>() {
            // An I/O error's source skips the error it wraps (which may be
            // another I/O error): step into it instead.
            Some(io) => io.get_ref().map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => cause.source(),
        };
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_lose_their_v1_and_slashes() {
        assert_eq!(base_url("http://h:8000/v1/"), "http://h:8000");
        assert_eq!(base_url("http://h:8000"), "http://h:8000");
        assert_eq!(base_url("http://h/prefix/v1"), "http://h/prefix");
    }

    #[test]
    fn urls_are_tried_in_turn_with_those_down_last() {
        let endpoint =
            EngineEndpoint { urls: vec!["http://a".into(), "http://b".into(), "http://c".into()], model: None };
        let engine = Engine::new("m", &endpoint, None);
        let first: Vec<_> = engine.order().iter().map(|(_, u)| u.base.clone()).collect();
        let second: Vec<_> = engine.order().iter().map(|(_, u)| u.base.clone()).collect();
        assert_eq!(first, ["http://a", "http://b", "http://c"]);
        assert_eq!(second, ["http://b", "http://c", "http://a"]);
        engine.urls[2].up.store(false, Ordering::Relaxed);
        let third: Vec<_> = engine.order().iter().map(|(_, u)| u.base.clone()).collect();
        assert_eq!(third, ["http://a", "http://b", "http://c"], "c is down: last");
        let fourth: Vec<_> = engine.order().iter().map(|(_, u)| u.base.clone()).collect();
        assert_eq!(fourth, ["http://a", "http://b", "http://c"]);
        assert_eq!(engine.model, "m");
    }

    #[tokio::test]
    async fn a_request_goes_on_past_a_url_that_refuses_connections() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let dead = format!("http://{}", closed.local_addr().unwrap());
        drop(closed);
        let endpoint = EngineEndpoint { urls: vec![dead.clone(), dead], model: None };
        let engine = Engine::new("m", &endpoint, None);
        let client = reqwest::Client::new();
        let error = match engine.send(&client, Endpoint::Chat, b"{}".to_vec(), Duration::from_secs(2)).await {
            Err(error) => error,
            Ok(_) => panic!("nothing listens"),
        };
        assert_eq!(error.status, 503);
        assert_eq!(error.message.matches("connection refused").count(), 2, "{}", error.message);
        assert!(!engine.any_up());
    }
}
