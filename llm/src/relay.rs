//! The engine's answer, passed on to the client in the shape its front
//! speaks: OpenAI's (the engine's own, with the maas model name) or
//! Triton's generate extension (`text_output`), whole or streamed as
//! server-sent events. Every piece of text is counted on the request's
//! [`Ledger`] on its way through.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{Stream, StreamExt};
use serde_json::{json, Value};

use crate::engine::{Answer, Body};
use crate::error::GenerationError;
use crate::ledger::{Ledger, Usage};
use crate::request::Endpoint;
use crate::sse::{Event, EventReader};

/// Largest whole (not streamed) answer read from an engine.
const MAX_ANSWER_BYTES: usize = 16 << 20;

/// How the client wants the answer.
#[derive(Debug, Clone)]
pub enum Shape {
    /// OpenAI's, as the engine wrote it, `model` set to the client's name.
    OpenAi {
        /// The model as the client named it.
        model: String,
        /// Whether the client asked for the usage chunk of a stream.
        wants_usage: bool,
    },
    /// Triton's generate extension.
    Triton {
        /// The model name.
        model: String,
        /// The version that answered.
        version: u64,
    },
}

/// Reads a whole answer and reshapes it.
pub async fn whole(
    answer: Answer,
    endpoint: Endpoint,
    shape: &Shape,
    ledger: &mut Ledger,
    wait: Duration,
) -> Result<Vec<u8>, GenerationError> {
    let mut body = Vec::new();
    let mut source = answer.body;
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let chunk = tokio::time::timeout_at(deadline, source.next())
            .await
            .map_err(|_| engine_failed(&answer.url, &format!("no answer within {wait:?}")))?
            .transpose()
            .map_err(|reason| engine_failed(&answer.url, &format!("broke off its answer: {reason}")))?;
        let Some(chunk) = chunk else { break };
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(engine_failed(&answer.url, &format!("its answer is larger than {MAX_ANSWER_BYTES} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    let mut value: Value = serde_json::from_slice(&body)
        .map_err(|e| engine_failed(&answer.url, &format!("its answer is not JSON: {e}")))?;
    if !value.is_object() {
        return Err(engine_failed(&answer.url, "its answer is not a JSON object"));
    }
    if let Some(usage) = usage_of(&value) {
        ledger.usage(usage);
    }
    if let Some(id) = value.get("id").and_then(Value::as_str) {
        ledger.answer_id(id);
    }
    let reshaped = match shape {
        Shape::OpenAi { model, .. } => {
            value["model"] = Value::String(model.clone());
            value
        }
        Shape::Triton { model, version } => {
            let text: String = texts(&value, endpoint).concat();
            json!({"model_name": model, "model_version": version.to_string(), "text_output": text})
        }
    };
    Ok(serde_json::to_vec(&reshaped).unwrap_or_default())
}

/// The answer as a stream of server-sent events for the client. The
/// request is counted when the engine's stream ends, or as cancelled when
/// the client drops the stream first.
pub fn stream(
    answer: Answer,
    endpoint: Endpoint,
    shape: Shape,
    ledger: Ledger,
    idle: Duration,
    longest: Duration,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> {
    let state = Relay {
        source: answer.body,
        url: answer.url,
        reader: EventReader::default(),
        endpoint,
        shape,
        ledger,
        idle,
        deadline: tokio::time::Instant::now() + longest,
        out: VecDeque::new(),
        ended: false,
        finished: false,
    };
    futures_util::stream::unfold(state, |mut relay| async move {
        loop {
            if let Some(bytes) = relay.out.pop_front() {
                return Some((Ok(bytes), relay));
            }
            if relay.ended {
                return None;
            }
            relay.pull().await;
        }
    })
}

struct Relay {
    source: Body,
    url: String,
    reader: EventReader,
    endpoint: Endpoint,
    shape: Shape,
    ledger: Ledger,
    idle: Duration,
    deadline: tokio::time::Instant,
    out: VecDeque<Bytes>,
    ended: bool,
    /// Whether a chunk gave a finish reason (or the usage that comes last).
    finished: bool,
}

impl Relay {
    /// Reads the engine's next chunk and queues what it completes.
    async fn pull(&mut self) {
        let now = tokio::time::Instant::now();
        if now >= self.deadline {
            return self.fail("ran past the longest a generation may stream");
        }
        let next = tokio::time::timeout_at((now + self.idle).min(self.deadline), self.source.next()).await;
        let chunk = match next {
            Err(_) if tokio::time::Instant::now() >= self.deadline => {
                return self.fail("ran past the longest a generation may stream")
            }
            Err(_) => return self.fail(&format!("sent nothing for {:?}", self.idle)),
            // Some engines end with `data: [DONE]`, others (transformers
            // serve) just close after the chunk that gives the finish reason.
            Ok(None) if self.finished => return self.end(),
            Ok(None) => return self.fail("closed the stream before its end"),
            Ok(Some(Err(_))) => return self.fail("broke off the stream"),
            Ok(Some(Ok(chunk))) => chunk,
        };
        let events = match self.reader.push(&chunk) {
            Ok(events) => events,
            Err(reason) => return self.fail(&reason),
        };
        for event in events {
            match event {
                Event::Done => return self.end(),
                Event::Data(data) => self.relay(&data),
            }
            if self.ended {
                return;
            }
        }
    }

    /// Passes one event on.
    fn relay(&mut self, data: &str) {
        let Ok(mut value) = serde_json::from_str::<Value>(data) else {
            return self.fail("sent an event that is not JSON");
        };
        if !value.is_object() {
            return self.fail("sent an event that is not a JSON object");
        }
        if let Some(error) = value.get("error") {
            let message = error.get("message").and_then(Value::as_str).or(error.as_str()).unwrap_or("an error");
            return self.fail(&format!("reported an error: {message}"));
        }
        if let Some(usage) = usage_of(&value) {
            self.ledger.usage(usage);
            self.finished = true;
        }
        if let Some(id) = value.get("id").and_then(Value::as_str) {
            self.ledger.answer_id(id);
        }
        let choices = value.get("choices").and_then(Value::as_array);
        if choices.is_some_and(|c| c.iter().any(|choice| choice.get("finish_reason").is_some_and(|r| !r.is_null()))) {
            self.finished = true;
        }
        let texts = texts(&value, self.endpoint);
        if texts.iter().any(|t| !t.is_empty()) {
            self.ledger.token();
        }
        match &self.shape {
            Shape::OpenAi { model, wants_usage } => {
                let usage_only = value.get("choices").and_then(Value::as_array).is_some_and(|c| c.is_empty());
                if usage_only && !wants_usage {
                    return;
                }
                if !wants_usage {
                    // OpenAI sends usage in a stream only when asked to.
                    if let Some(object) = value.as_object_mut() {
                        object.remove("usage");
                    }
                }
                value["model"] = Value::String(model.clone());
                self.out.push_back(event_bytes(&value));
            }
            Shape::Triton { model, version } => {
                let text = texts.concat();
                if !text.is_empty() {
                    let piece = json!({"model_name": model, "model_version": version.to_string(), "text_output": text});
                    self.out.push_back(event_bytes(&piece));
                }
            }
        }
    }

    fn end(&mut self) {
        if let Shape::OpenAi { .. } = self.shape {
            self.out.push_back(Bytes::from_static(b"data: [DONE]\n\n"));
        }
        self.ledger.finish("ok");
        self.ended = true;
    }

    /// Ends the stream with an error event: the client has part of an
    /// answer, which no retry can complete.
    fn fail(&mut self, reason: &str) {
        let error = engine_failed(&self.url, reason);
        let body = match self.shape {
            Shape::OpenAi { .. } => error.openai_body(),
            Shape::Triton { .. } => json!({"error": error.message}),
        };
        self.out.push_back(event_bytes(&body));
        self.ledger.finish(error.outcome);
        self.ended = true;
    }
}

/// One server-sent event carrying `value`.
pub(crate) fn event_bytes(value: &Value) -> Bytes {
    let mut bytes = b"data: ".to_vec();
    bytes.extend_from_slice(&serde_json::to_vec(value).unwrap_or_default());
    bytes.extend_from_slice(b"\n\n");
    Bytes::from(bytes)
}

/// The engine failed after answering.
fn engine_failed(url: &str, reason: &str) -> GenerationError {
    GenerationError { status: 502, message: format!("{url} {reason}"), retry_after: None, outcome: "engine_failed" }
}

/// The `usage` an answer or chunk carries.
fn usage_of(value: &Value) -> Option<Usage> {
    let usage = value.get("usage").filter(|u| u.is_object())?;
    Some(Usage {
        prompt: usage.get("prompt_tokens").and_then(Value::as_u64).unwrap_or(0),
        completion: usage.get("completion_tokens").and_then(Value::as_u64).unwrap_or(0),
    })
}

/// The generated text of each choice in an answer or chunk.
fn texts(value: &Value, endpoint: Endpoint) -> Vec<String> {
    let Some(choices) = value.get("choices").and_then(Value::as_array) else { return Vec::new() };
    choices
        .iter()
        .map(|choice| {
            let text = match endpoint {
                Endpoint::Completion => choice.get("text"),
                Endpoint::Chat => choice.get("delta").or_else(|| choice.get("message")).and_then(|m| m.get("content")),
            };
            text.and_then(Value::as_str).unwrap_or_default().to_string()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_and_usage_are_read_from_chat_and_completion_chunks() {
        let chat = json!({"choices": [{"delta": {"content": "Hel"}}], "usage": null});
        assert_eq!(texts(&chat, Endpoint::Chat), ["Hel"]);
        assert_eq!(usage_of(&chat), None);
        let completion = json!({"choices": [{"text": "lo"}], "usage": {"prompt_tokens": 5, "completion_tokens": 2}});
        assert_eq!(texts(&completion, Endpoint::Completion), ["lo"]);
        assert_eq!(usage_of(&completion), Some(Usage { prompt: 5, completion: 2 }));
        let whole = json!({"choices": [{"message": {"role": "assistant", "content": "Hi"}}]});
        assert_eq!(texts(&whole, Endpoint::Chat), ["Hi"]);
    }
}
