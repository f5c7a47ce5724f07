//! A client's generative request, checked before anything is sent on.
//!
//! OpenAI's chat and text completions are forwarded to the engine as the
//! client wrote them (every sampling field the engine knows passes through),
//! with `model` set to the engine's name for the model and, when streaming,
//! usage asked for so that tokens can be counted. Triton's generate
//! extension (`text_input` plus parameters) becomes a text completion.

use serde_json::{Map, Value};

use crate::error::GenerationError;

/// Longest model name a request may carry.
const MAX_MODEL_NAME: usize = 512;
/// Most messages in one chat request.
const MAX_MESSAGES: usize = 4096;

/// Which OpenAI endpoint a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `/v1/chat/completions`.
    Chat,
    /// `/v1/completions` (and Triton's generate).
    Completion,
}

impl Endpoint {
    /// The engine's path for it.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Chat => "/v1/chat/completions",
            Endpoint::Completion => "/v1/completions",
        }
    }
}

/// A checked request.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationRequest {
    /// The endpoint.
    pub endpoint: Endpoint,
    /// The model as the client named it (`name`, or `name@alias`).
    pub model: String,
    /// Whether the answer streams as server-sent events.
    pub stream: bool,
    /// Whether the client asked for the usage chunk at the end of a stream.
    pub client_wants_usage: bool,
    /// The body to send on, less `model`.
    pub body: Map<String, Value>,
}

impl GenerationRequest {
    /// Parses and checks an OpenAI request body for `endpoint`.
    pub fn openai(endpoint: Endpoint, body: &[u8]) -> Result<GenerationRequest, GenerationError> {
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| GenerationError::invalid(format!("the request body is not valid JSON: {e}")))?;
        let Value::Object(mut body) = value else {
            return Err(GenerationError::invalid("the request body must be a JSON object"));
        };
        let model = match body.remove("model") {
            Some(Value::String(model)) if !model.is_empty() && model.len() <= MAX_MODEL_NAME => model,
            Some(_) => return Err(GenerationError::invalid("'model' must be a model name")),
            None => return Err(GenerationError::invalid("'model' is required")),
        };
        match endpoint {
            Endpoint::Chat => check_messages(body.get("messages"))?,
            Endpoint::Completion => check_prompt(body.get("prompt"))?,
        }
        check_token_counts(&body)?;
        let stream = match body.get("stream") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(stream)) => *stream,
            Some(_) => return Err(GenerationError::invalid("'stream' must be true or false")),
        };
        let client_wants_usage =
            body.get("stream_options").and_then(|o| o.get("include_usage")).and_then(Value::as_bool).unwrap_or(false);
        Ok(GenerationRequest { endpoint, model, stream, client_wants_usage, body })
    }

    /// Parses Triton's generate request for `model` (from the path):
    /// `{"text_input": "...", "parameters": {...}}`, parameters also
    /// accepted at the top level (`max_tokens`, `temperature`, ...).
    pub fn triton(model: &str, body: &[u8], stream: bool) -> Result<GenerationRequest, GenerationError> {
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| GenerationError::invalid(format!("the request body is not valid JSON: {e}")))?;
        let Value::Object(mut fields) = value else {
            return Err(GenerationError::invalid("the request body must be a JSON object"));
        };
        let Some(Value::String(text)) = fields.remove("text_input") else {
            return Err(GenerationError::invalid("'text_input' is required and must be a string"));
        };
        let mut body = Map::new();
        body.insert("prompt".into(), Value::String(text));
        let parameters = match fields.remove("parameters") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(parameters)) => parameters,
            Some(_) => return Err(GenerationError::invalid("'parameters' must be an object")),
        };
        for (name, value) in fields.into_iter().chain(parameters) {
            if matches!(name.as_str(), "stream" | "model" | "prompt" | "id") {
                continue;
            }
            body.insert(name, value);
        }
        check_token_counts(&body)?;
        body.insert("stream".into(), Value::Bool(stream));
        Ok(GenerationRequest {
            endpoint: Endpoint::Completion,
            model: model.to_string(),
            stream,
            client_wants_usage: false,
            body,
        })
    }

    /// The body for the engine: the client's, with the engine's model name
    /// and, when streaming, the usage chunk asked for.
    pub fn engine_body(&self, engine_model: &str) -> Vec<u8> {
        let mut body = self.body.clone();
        body.insert("model".into(), Value::String(engine_model.to_string()));
        if self.stream {
            let options = body.entry("stream_options").or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(options) = options {
                options.insert("include_usage".into(), Value::Bool(true));
            }
        }
        serde_json::to_vec(&body).unwrap_or_default()
    }
}

fn check_messages(messages: Option<&Value>) -> Result<(), GenerationError> {
    let Some(Value::Array(messages)) = messages else {
        return Err(GenerationError::invalid("'messages' is required and must be an array"));
    };
    if messages.is_empty() || messages.len() > MAX_MESSAGES {
        return Err(GenerationError::invalid(format!("'messages' must hold between 1 and {MAX_MESSAGES} messages")));
    }
    for (index, message) in messages.iter().enumerate() {
        let role = message.get("role").and_then(Value::as_str);
        if role.is_none() {
            return Err(GenerationError::invalid(format!("messages[{index}] needs a 'role' string")));
        }
        match message.get("content") {
            None | Some(Value::Null | Value::String(_) | Value::Array(_)) => {}
            Some(_) => {
                return Err(GenerationError::invalid(format!("messages[{index}].content must be a string or an array")))
            }
        }
    }
    Ok(())
}

fn check_prompt(prompt: Option<&Value>) -> Result<(), GenerationError> {
    match prompt {
        Some(Value::String(_)) => Ok(()),
        Some(Value::Array(items)) if !items.is_empty() => Ok(()),
        _ => Err(GenerationError::invalid("'prompt' is required: a string or a non-empty array")),
    }
}

/// `max_tokens`, `max_completion_tokens` and `n` must be positive integers
/// when given.
fn check_token_counts(body: &Map<String, Value>) -> Result<(), GenerationError> {
    for name in ["max_tokens", "max_completion_tokens", "n"] {
        match body.get(name) {
            None | Some(Value::Null) => {}
            Some(value) if value.as_u64().is_some_and(|n| (1..=1 << 20).contains(&n)) => {}
            Some(value) => {
                return Err(GenerationError::invalid(format!("'{name}' must be a positive integer, not {value}")))
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chat_request_keeps_its_fields_and_names_the_engine_model() {
        let body = br#"{"model": "chat@canary", "messages": [{"role": "user", "content": "hi"}],
                        "temperature": 0, "stream": true}"#;
        let request = GenerationRequest::openai(Endpoint::Chat, body).unwrap();
        assert_eq!(request.model, "chat@canary");
        assert!(request.stream && !request.client_wants_usage);
        let sent: Value = serde_json::from_slice(&request.engine_body("tiny")).unwrap();
        assert_eq!(sent["model"], "tiny");
        assert_eq!(sent["temperature"], 0);
        assert_eq!(sent["stream_options"]["include_usage"], true);
    }

    #[test]
    fn malformed_requests_are_refused_with_the_reason() {
        let cases: [(&[u8], &str); 6] = [
            (b"[1]", "JSON object"),
            (br#"{"messages": []}"#, "'model' is required"),
            (br#"{"model": "m", "messages": []}"#, "between 1"),
            (br#"{"model": "m", "messages": [{"content": "x"}]}"#, "'role'"),
            (br#"{"model": "m", "messages": [{"role": "user"}], "max_tokens": -3}"#, "positive integer"),
            (br#"{"model": "m", "messages": [{"role": "user"}], "stream": "yes"}"#, "'stream'"),
        ];
        for (body, expected) in cases {
            let error = GenerationRequest::openai(Endpoint::Chat, body).unwrap_err();
            assert_eq!(error.status, 400);
            assert!(error.message.contains(expected), "{} lacks {expected}", error.message);
        }
        let error = GenerationRequest::openai(Endpoint::Completion, br#"{"model": "m"}"#).unwrap_err();
        assert!(error.message.contains("'prompt'"));
    }

    #[test]
    fn a_triton_generate_request_becomes_a_completion() {
        let body = br#"{"text_input": "Once", "max_tokens": 8, "parameters": {"temperature": 0, "stream": true}}"#;
        let request = GenerationRequest::triton("gpt", body, false).unwrap();
        assert_eq!(request.endpoint, Endpoint::Completion);
        let sent: Value = serde_json::from_slice(&request.engine_body("gpt")).unwrap();
        assert_eq!(sent["prompt"], "Once");
        assert_eq!(sent["max_tokens"], 8);
        assert_eq!(sent["temperature"], 0);
        assert_eq!(sent["stream"], false, "the route, not the body, decides streaming");
        assert!(GenerationRequest::triton("gpt", br#"{"text_input": 3}"#, false).is_err());
    }
}
