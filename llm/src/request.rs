//! A client's generative request, checked before anything is sent on.
//!
//! OpenAI's chat and text completions are forwarded to the engine as the
//! client wrote them (every sampling field the engine knows passes through),
//! with `model` set to the engine's name for the model and, when streaming,
//! usage asked for so that tokens can be counted. Triton's generate
//! extension (`text_input` plus parameters) becomes a text completion.
//!
//! The body is read as its top-level fields, each kept as the raw JSON text
//! the client sent: no JSON tree is built of the prompt or the messages, so
//! a request costs the coordinator about twice its size. The fields maas
//! acts on (`model`, `stream`, token counts) are parsed; `messages` and
//! `prompt` are checked for their shape; fields that are maas's own
//! decision (`priority`) are dropped.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::error::GenerationError;

/// Longest model name a request may carry.
const MAX_MODEL_NAME: usize = 512;
/// Most messages in one chat request.
const MAX_MESSAGES: usize = 4096;
/// Most tokens a request may ask for.
pub const MAX_TOKENS: u64 = 1 << 20;
/// Most choices (`n`) a request may ask for.
const MAX_CHOICES: u64 = 16;
/// Tokens counted for a request that names no `max_tokens`, until the
/// engine says what it used.
pub const DEFAULT_MAX_TOKENS: u64 = 1024;
/// Fields the client may not pass to the engine.
const DROPPED: &[&str] = &["priority"];

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
#[derive(Debug, Clone)]
pub struct GenerationRequest {
    /// The endpoint.
    pub endpoint: Endpoint,
    /// The model as the client named it (`name`, or `name@alias`).
    pub model: String,
    /// Whether the answer streams as server-sent events.
    pub stream: bool,
    /// Whether the client asked for the usage chunk at the end of a stream.
    pub client_wants_usage: bool,
    /// The tokens the request may cost at most before the engine reports
    /// its usage: a quarter of the prompt's bytes plus the tokens it asks
    /// for (times its choices).
    pub token_estimate: u64,
    /// The prompt's tokens as estimated (a quarter of its bytes), charged
    /// when the engine reports no usage.
    pub prompt_estimate: u64,
    /// The body's other fields, raw, to send on.
    fields: BTreeMap<String, Box<RawValue>>,
}

/// A message's shape: a role, and content that is a string, an array or null.
#[derive(Deserialize)]
struct MessageShape<'a> {
    #[serde(borrow)]
    role: Option<&'a RawValue>,
    #[serde(borrow)]
    content: Option<&'a RawValue>,
}

fn parse_fields(body: &[u8]) -> Result<BTreeMap<String, Box<RawValue>>, GenerationError> {
    serde_json::from_slice(body)
        .map_err(|e| GenerationError::invalid(format!("the request body must be a JSON object: {e}")))
}

/// The first character of a raw JSON value.
fn kind(raw: &RawValue) -> u8 {
    raw.get().as_bytes().first().copied().unwrap_or(b' ')
}

impl GenerationRequest {
    /// Parses and checks an OpenAI request body for `endpoint`.
    pub fn openai(endpoint: Endpoint, body: &[u8]) -> Result<GenerationRequest, GenerationError> {
        let mut fields = parse_fields(body)?;
        let model = match fields.remove("model") {
            Some(raw) => match serde_json::from_str::<String>(raw.get()) {
                Ok(model) if !model.is_empty() && model.len() <= MAX_MODEL_NAME => model,
                _ => return Err(GenerationError::invalid("'model' must be a model name")),
            },
            None => return Err(GenerationError::invalid("'model' is required")),
        };
        let prompt_bytes = match endpoint {
            Endpoint::Chat => check_messages(fields.get("messages").map(|r| &**r))?,
            Endpoint::Completion => check_prompt(fields.get("prompt").map(|r| &**r))?,
        };
        let stream = match fields.get("stream").map(|r| r.get()) {
            None | Some("null") | Some("false") => false,
            Some("true") => true,
            Some(_) => return Err(GenerationError::invalid("'stream' must be true or false")),
        };
        let client_wants_usage = fields
            .get("stream_options")
            .and_then(|o| serde_json::from_str::<serde_json::Value>(o.get()).ok())
            .and_then(|o| o.get("include_usage").and_then(serde_json::Value::as_bool))
            .unwrap_or(false);
        GenerationRequest::checked(endpoint, model, stream, client_wants_usage, prompt_bytes, fields)
    }

    /// Parses Triton's generate request for `model` (from the path):
    /// `{"text_input": "...", "parameters": {...}}`, parameters also
    /// accepted at the top level (`max_tokens`, `temperature`, ...).
    pub fn triton(model: &str, body: &[u8], stream: bool) -> Result<GenerationRequest, GenerationError> {
        let mut given = parse_fields(body)?;
        let text = given
            .remove("text_input")
            .filter(|raw| kind(raw) == b'"')
            .ok_or_else(|| GenerationError::invalid("'text_input' is required and must be a string"))?;
        let parameters: BTreeMap<String, Box<RawValue>> = match given.remove("parameters") {
            None => BTreeMap::new(),
            Some(raw) if raw.get() == "null" => BTreeMap::new(),
            Some(raw) => serde_json::from_str(raw.get())
                .map_err(|_| GenerationError::invalid("'parameters' must be an object"))?,
        };
        let mut fields = BTreeMap::new();
        for (name, value) in given.into_iter().chain(parameters) {
            if !matches!(name.as_str(), "stream" | "model" | "prompt" | "id" | "n" | "stream_options") {
                fields.insert(name, value);
            }
        }
        let prompt_bytes = text.get().len() as u64;
        fields.insert("prompt".into(), text);
        let stream_flag = if stream { "true" } else { "false" };
        fields.insert("stream".into(), RawValue::from_string(stream_flag.into()).expect("a JSON literal"));
        GenerationRequest::checked(Endpoint::Completion, model.to_string(), stream, false, prompt_bytes, fields)
    }

    fn checked(
        endpoint: Endpoint,
        model: String,
        stream: bool,
        client_wants_usage: bool,
        prompt_bytes: u64,
        mut fields: BTreeMap<String, Box<RawValue>>,
    ) -> Result<GenerationRequest, GenerationError> {
        let count = |name: &str, most: u64| -> Result<Option<u64>, GenerationError> {
            match fields.get(name).map(|r| r.get()) {
                None | Some("null") => Ok(None),
                Some(text) => match text.parse::<u64>() {
                    Ok(n) if (1..=most).contains(&n) => Ok(Some(n)),
                    _ => Err(GenerationError::invalid(format!(
                        "'{name}' must be an integer from 1 to {most}, not {text}"
                    ))),
                },
            }
        };
        let max_tokens = count("max_tokens", MAX_TOKENS)?.or(count("max_completion_tokens", MAX_TOKENS)?);
        let choices = count("n", MAX_CHOICES)?.unwrap_or(1);
        for name in DROPPED {
            fields.remove(*name);
        }
        let prompt_estimate = prompt_bytes / 4 + 1;
        let token_estimate = prompt_estimate + max_tokens.unwrap_or(DEFAULT_MAX_TOKENS) * choices;
        Ok(GenerationRequest { endpoint, model, stream, client_wants_usage, token_estimate, prompt_estimate, fields })
    }

    /// A field as the client sent it (raw JSON), if it did and it is not null.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(|raw| raw.get()).filter(|raw| *raw != "null")
    }

    /// The body for the engine: the client's fields, with the engine's model
    /// name and, when streaming, the usage chunk asked for.
    pub fn engine_body(&self, engine_model: &str) -> Vec<u8> {
        let mut body = Vec::with_capacity(self.fields.values().map(|v| v.get().len() + 16).sum::<usize>() + 64);
        body.extend_from_slice(b"{\"model\":");
        body.extend_from_slice(&serde_json::to_vec(engine_model).unwrap_or_default());
        for (name, value) in &self.fields {
            if self.stream && name == "stream_options" {
                continue;
            }
            body.push(b',');
            body.extend_from_slice(&serde_json::to_vec(name).unwrap_or_default());
            body.push(b':');
            body.extend_from_slice(value.get().as_bytes());
        }
        if self.stream {
            body.extend_from_slice(b",\"stream_options\":{\"include_usage\":true}");
        }
        body.push(b'}');
        body
    }
}

/// Checks `messages`; returns the bytes of its text.
fn check_messages(messages: Option<&RawValue>) -> Result<u64, GenerationError> {
    let invalid = || GenerationError::invalid("'messages' is required and must be an array of messages");
    let raw = messages.filter(|raw| kind(raw) == b'[').ok_or_else(invalid)?;
    let shapes: Vec<MessageShape> = serde_json::from_str(raw.get()).map_err(|_| invalid())?;
    if shapes.is_empty() || shapes.len() > MAX_MESSAGES {
        return Err(GenerationError::invalid(format!("'messages' must hold between 1 and {MAX_MESSAGES} messages")));
    }
    for (index, message) in shapes.iter().enumerate() {
        if message.role.is_none_or(|role| kind(role) != b'"') {
            return Err(GenerationError::invalid(format!("messages[{index}] needs a 'role' string")));
        }
        if !message.content.is_none_or(|content| matches!(kind(content), b'"' | b'[' | b'n')) {
            return Err(GenerationError::invalid(format!("messages[{index}].content must be a string or an array")));
        }
    }
    Ok(raw.get().len() as u64)
}

/// Checks `prompt`; returns its bytes.
fn check_prompt(prompt: Option<&RawValue>) -> Result<u64, GenerationError> {
    match prompt {
        Some(raw)
            if kind(raw) == b'"' || (kind(raw) == b'[' && raw.get().trim_start_matches('[').trim_start() != "]") =>
        {
            Ok(raw.get().len() as u64)
        }
        _ => Err(GenerationError::invalid("'prompt' is required: a string or a non-empty array")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn a_chat_request_keeps_its_fields_and_names_the_engine_model() {
        let body = br#"{"model": "chat@canary", "messages": [{"role": "user", "content": "hi"}],
                        "temperature": 0, "stream": true, "stream_options": null, "priority": -100}"#;
        let request = GenerationRequest::openai(Endpoint::Chat, body).unwrap();
        assert_eq!(request.model, "chat@canary");
        assert!(request.stream && !request.client_wants_usage);
        let sent: Value = serde_json::from_slice(&request.engine_body("tiny")).unwrap();
        assert_eq!(sent["model"], "tiny");
        assert_eq!(sent["temperature"], 0);
        assert_eq!(sent["stream_options"]["include_usage"], true, "usage is asked for whatever the client sent");
        assert!(sent.get("priority").is_none(), "a client may not set the engine's priority");
        assert_eq!(request.token_estimate, request.prompt_estimate + DEFAULT_MAX_TOKENS);
    }

    #[test]
    fn malformed_requests_are_refused_with_the_reason() {
        let cases: [(&[u8], &str); 8] = [
            (b"[1]", "JSON object"),
            (br#"{"messages": []}"#, "'model' is required"),
            (br#"{"model": "m", "messages": []}"#, "between 1"),
            (br#"{"model": "m", "messages": [{"content": "x"}]}"#, "'role'"),
            (br#"{"model": "m", "messages": [{"role": "user"}], "max_tokens": -3}"#, "integer from 1"),
            (br#"{"model": "m", "messages": [{"role": "user"}], "n": 1000}"#, "integer from 1 to 16"),
            (br#"{"model": "m", "messages": [{"role": "user"}], "stream": "yes"}"#, "'stream'"),
            (br#"{"model": "m", "messages": "hi"}"#, "'messages'"),
        ];
        for (body, expected) in cases {
            let error = GenerationRequest::openai(Endpoint::Chat, body).unwrap_err();
            assert_eq!(error.status, 400);
            assert!(error.message.contains(expected), "{} lacks {expected}", error.message);
        }
        for prompt in [r#"{"model": "m"}"#, r#"{"model": "m", "prompt": []}"#, r#"{"model": "m", "prompt": 3}"#] {
            let error = GenerationRequest::openai(Endpoint::Completion, prompt.as_bytes()).unwrap_err();
            assert!(error.message.contains("'prompt'"), "{prompt}: {}", error.message);
        }
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
        assert_eq!(request.token_estimate, request.prompt_estimate + 8);
        assert!(GenerationRequest::triton("gpt", br#"{"text_input": 3}"#, false).is_err());
    }
}
