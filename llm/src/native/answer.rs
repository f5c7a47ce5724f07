//! A native decoder's tokens as the answer an OpenAI-compatible engine
//! would give: whole (`chat.completion`, `text_completion`) or as
//! server-sent chunks ending with a finish reason and a usage chunk. The
//! relay then treats it as any engine's answer (the client's model name,
//! Triton's shape, usage and the ledger).
//!
//! The answer is written by a task that reads the node's events; the client
//! going away closes its channel, the task ends, and dropping the node's
//! stream cancels the sequence there.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream::StreamExt;
use maas_monitor::stats::BatchTimes;
use maas_protocol::{FinishReason, GenerateEvent};
use maas_serving::models::ModelVersion;
use maas_serving::TokenStream;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::codec::TextCodec;
use super::text::{Detokenizer, StopStrings};
use crate::engine::Body;
use crate::relay::event_bytes;
use crate::request::Endpoint;

/// What the answer says besides its text.
pub struct AnswerShape {
    /// Chat or text completion.
    pub endpoint: Endpoint,
    /// Streamed or whole.
    pub stream: bool,
    /// The answer's id.
    pub id: String,
    /// Seconds since the Unix epoch.
    pub created: u64,
    /// Prompt tokens, for usage.
    pub prompt_tokens: u32,
    /// The most tokens asked for: a node sending more is cut off.
    pub max_tokens: u32,
}

/// The answer's body, written as events come.
pub fn body(
    events: Box<dyn TokenStream>,
    first: GenerateEvent,
    codec: Arc<TextCodec>,
    stops: StopStrings,
    shape: AnswerShape,
    version: Arc<ModelVersion>,
) -> Body {
    let (sender, receiver) = mpsc::channel::<Result<Bytes, String>>(32);
    let writer =
        Writer { codec, stops, detokenizer: Detokenizer::default(), shape, version, text: String::new(), tokens: 0 };
    tokio::spawn(writer.run(events, first, sender));
    futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|piece| (piece, receiver))
    })
    .boxed()
}

struct Writer {
    codec: Arc<TextCodec>,
    stops: StopStrings,
    detokenizer: Detokenizer,
    shape: AnswerShape,
    version: Arc<ModelVersion>,
    /// The whole answer's text so far (whole answers only).
    text: String,
    tokens: u32,
}

type Out = mpsc::Sender<Result<Bytes, String>>;

impl Writer {
    async fn run(mut self, mut events: Box<dyn TokenStream>, first: GenerateEvent, out: Out) {
        // A running stream keeps its version in use: one loaded on demand is
        // not unloaded as idle under it, however long it runs.
        let version = self.version.clone();
        let _in_use = version.shared.activity.touch(std::time::Instant::now());
        if self.shape.stream && self.shape.endpoint == Endpoint::Chat {
            let role = json!({"role": "assistant", "content": ""});
            if !self.send(&out, self.chunk(Some(role), None)).await {
                return;
            }
        }
        let mut event = first;
        loop {
            match event {
                GenerateEvent::Token { token, step_size, leads_step, step_ns } => {
                    self.tokens += 1;
                    if self.tokens > self.shape.max_tokens {
                        return self.fail(&out, "the node sent more tokens than asked for").await;
                    }
                    if leads_step {
                        let times = BatchTimes { input_ns: 0, infer_ns: step_ns, output_ns: 0 };
                        self.version.shared.monitor.stats.batch(u64::from(step_size), 1, times);
                    }
                    let piece = self.detokenizer.push(&self.codec, token);
                    let released = self.stops.push(&piece);
                    if !self.emit(&out, released.text).await {
                        return;
                    }
                    if released.stopped {
                        // Dropping `events` on return cancels the sequence.
                        return self.finish(&out, "stop").await;
                    }
                }
                GenerateEvent::Done { finish, .. } => {
                    let rest = self.detokenizer.flush(&self.codec);
                    let released = self.stops.push(&rest);
                    let mut text = released.text;
                    if !released.stopped {
                        text.push_str(&self.stops.flush());
                    }
                    if !self.emit(&out, text).await {
                        return;
                    }
                    let reason = match (released.stopped, finish) {
                        (true, _) | (false, FinishReason::Stop) => "stop",
                        (false, FinishReason::Length) => "length",
                    };
                    return self.finish(&out, reason).await;
                }
                GenerateEvent::Failed { error } => return self.fail(&out, &error.to_string()).await,
            }
            // A client that went away (or a whole answer's reader that gave
            // up) ends the generation now, not at its last token.
            let next = tokio::select! {
                next = events.next_event() => next,
                () = out.closed() => return,
            };
            event = match next {
                Ok(event) => event,
                Err(error) => return self.fail(&out, &error.to_string()).await,
            };
        }
    }

    /// Sends (or, for a whole answer, keeps) a piece of text.
    async fn emit(&mut self, out: &Out, text: String) -> bool {
        if text.is_empty() {
            return true;
        }
        if !self.shape.stream {
            self.text.push_str(&text);
            return true;
        }
        let chunk = match self.shape.endpoint {
            Endpoint::Chat => self.chunk(Some(json!({"content": text})), None),
            Endpoint::Completion => self.chunk(Some(Value::String(text)), None),
        };
        self.send(out, chunk).await
    }

    async fn finish(&mut self, out: &Out, reason: &str) {
        let usage = json!({
            "prompt_tokens": self.shape.prompt_tokens,
            "completion_tokens": self.tokens,
            "total_tokens": u64::from(self.shape.prompt_tokens) + u64::from(self.tokens),
        });
        if self.shape.stream {
            let empty = match self.shape.endpoint {
                Endpoint::Chat => json!({}),
                Endpoint::Completion => Value::String(String::new()),
            };
            if !self.send(out, self.chunk(Some(empty), Some(reason))).await {
                return;
            }
            let mut last = self.chunk(None, None);
            last["choices"] = json!([]);
            last["usage"] = usage;
            self.send(out, last).await;
            return;
        }
        let text = std::mem::take(&mut self.text);
        let choice = match self.shape.endpoint {
            Endpoint::Chat => json!({"index": 0, "message": {"role": "assistant", "content": text},
                                     "logprobs": null, "finish_reason": reason}),
            Endpoint::Completion => json!({"index": 0, "text": text, "logprobs": null, "finish_reason": reason}),
        };
        let object = match self.shape.endpoint {
            Endpoint::Chat => "chat.completion",
            Endpoint::Completion => "text_completion",
        };
        let whole = json!({"id": self.shape.id, "object": object, "created": self.shape.created,
                           "choices": [choice], "usage": usage});
        let _ = out.send(Ok(Bytes::from(serde_json::to_vec(&whole).unwrap_or_default()))).await;
    }

    /// Ends the answer with an error: an error event in a stream, a broken
    /// body for a whole answer.
    async fn fail(&mut self, out: &Out, reason: &str) {
        let sent = if self.shape.stream {
            let event = json!({"error": {"message": reason}});
            Ok(event_bytes(&event))
        } else {
            Err(reason.to_string())
        };
        let _ = out.send(sent).await;
    }

    /// One streamed chunk: `delta` (chat) or `text` (completion) and a
    /// finish reason.
    fn chunk(&self, content: Option<Value>, finish: Option<&str>) -> Value {
        let mut choice = json!({"index": 0, "logprobs": null, "finish_reason": finish});
        match (self.shape.endpoint, content) {
            (Endpoint::Chat, Some(delta)) => choice["delta"] = delta,
            (Endpoint::Completion, Some(text)) => choice["text"] = text,
            (_, None) => {}
        }
        let object = match self.shape.endpoint {
            Endpoint::Chat => "chat.completion.chunk",
            Endpoint::Completion => "text_completion",
        };
        json!({"id": self.shape.id, "object": object, "created": self.shape.created, "choices": [choice]})
    }

    async fn send(&self, out: &Out, chunk: Value) -> bool {
        out.send(Ok(event_bytes(&chunk))).await.is_ok()
    }
}
