//! Decoder models run natively on nodes: their shape in the model's
//! configuration ([`DecoderSpec`]), and the frames of one generation on its
//! own QUIC stream ([`GenerateRequest`] in, [`GenerateEvent`]s out).
//!
//! A generation stream carries one request frame from the coordinator,
//! then the node's events, one frame each, in order: a [`GenerateEvent::Token`]
//! per generated token and a last [`GenerateEvent::Done`] or
//! [`GenerateEvent::Failed`]. The coordinator cancels a generation by
//! dropping the stream; the node frees the sequence's cache when its next
//! write finds the stream stopped.

use rkyv::rancor;
use serde::{Deserialize, Serialize};

use crate::frame::{FrameError, Payload};

/// Largest context a decoder may declare, in tokens.
pub const MAX_CONTEXT: u32 = 1 << 20;
/// Most sequences a decoder steps together (its `max_batch_size`).
pub const MAX_RUNNING: u32 = 256;
/// Longest chat template, in bytes.
pub const MAX_CHAT_TEMPLATE: usize = 64 << 10;
/// The largest event frame a node sends.
pub const MAX_EVENT_FRAME: usize = 64 << 10;

/// The shape of a decoder exported with an explicit cache
/// (`scripts/export_decoder.py` writes it as `decoder.json`), and the
/// artifacts and limits it is served with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct DecoderSpec {
    /// Transformer blocks.
    pub layers: u32,
    /// Attention heads.
    pub heads: u32,
    /// Size of one head.
    pub head_size: u32,
    /// Tokens in the vocabulary.
    pub vocab_size: u32,
    /// Longest sequence, prompt and generated tokens together.
    pub context_length: u32,
    /// Tokens that end a sequence.
    pub eos_token_ids: Vec<u32>,
    /// sha256 of the `tokenizer.json` artifact (Hugging Face `tokenizers`).
    #[serde(default)]
    pub tokenizer: String,
    /// The chat template (Jinja, as in `tokenizer_config.json`); without
    /// one the model answers only text completions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_template: Option<String>,
    /// Bytes a replica's key/value caches may take together: the running
    /// sequences' whole caches (prompt plus their most new tokens) fit in
    /// it, and a sequence that does not fit waits. Counted in the node's
    /// memory budget beside the weights.
    #[serde(default = "default_cache_bytes")]
    pub cache_bytes: u64,
}

fn default_cache_bytes() -> u64 {
    256 << 20
}

impl DecoderSpec {
    /// Bytes of cache one token of one sequence holds (FP32 keys and values
    /// in every layer).
    pub fn cache_bytes_per_token(&self) -> u64 {
        u64::from(self.layers) * 2 * u64::from(self.heads) * u64::from(self.head_size) * 4
    }

    /// Checks that the shape is one a node can run.
    pub fn check(&self, model: &str) -> Result<(), String> {
        let positive = [
            ("layers", self.layers),
            ("heads", self.heads),
            ("head_size", self.head_size),
            ("vocab_size", self.vocab_size),
            ("context_length", self.context_length),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, value)| *value == 0) {
            return Err(format!("model '{model}': the decoder's {name} must be at least 1"));
        }
        if self.context_length > MAX_CONTEXT || self.heads > 4096 || self.head_size > 4096 || self.layers > 4096 {
            return Err(format!("model '{model}': the decoder's shape is larger than a node serves"));
        }
        if self.eos_token_ids.iter().any(|&id| id >= self.vocab_size) || self.eos_token_ids.len() > 64 {
            return Err(format!("model '{model}': end-of-sequence ids must be at most 64 ids in the vocabulary"));
        }
        if self.tokenizer.len() != 64 || !self.tokenizer.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("model '{model}': 'tokenizer' must be the sha256 of a tokenizer.json artifact"));
        }
        if self.chat_template.as_ref().is_some_and(|t| t.len() > MAX_CHAT_TEMPLATE) {
            return Err(format!("model '{model}': the chat template is longer than {MAX_CHAT_TEMPLATE} bytes"));
        }
        let one_sequence = self.cache_bytes_per_token().saturating_mul(u64::from(self.context_length.min(16)));
        if self.cache_bytes < one_sequence {
            return Err(format!(
                "model '{model}': cache_bytes {} is too small for one sequence of 16 tokens ({one_sequence} bytes)",
                self.cache_bytes
            ));
        }
        Ok(())
    }
}

/// How a sequence picks its tokens.
#[derive(Debug, Clone, Copy, PartialEq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct SamplingParams {
    /// 0 for greedy decoding; otherwise logits are divided by it.
    pub temperature: f32,
    /// Keep only the `top_k` most likely tokens (0: all).
    pub top_k: u32,
    /// Keep the most likely tokens whose probabilities sum to `top_p`.
    pub top_p: f32,
    /// The seed of the sequence's random draws.
    pub seed: u64,
}

/// One sequence to generate, sent on its own stream.
#[derive(Debug, Clone, PartialEq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct GenerateRequest {
    /// Model name.
    pub model: String,
    /// Model version.
    pub version: u64,
    /// The client's request id (empty when it gave none), for the node's logs.
    pub request_id: String,
    /// Prompt token ids.
    pub prompt: Vec<u32>,
    /// Most tokens to generate.
    pub max_tokens: u32,
    /// How to pick them.
    pub sampling: SamplingParams,
}

/// Why a sequence ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub enum FinishReason {
    /// It produced an end-of-sequence token.
    Stop,
    /// It reached its token limit.
    Length,
}

pub use events::GenerateEvent;

/// The node's events (in a module of their own: the archived forms rkyv
/// derives carry no docs of their own).
#[allow(missing_docs)]
mod events {
    use super::FinishReason;
    use crate::NodeError;

    /// What a node sends on a generation stream.
    #[derive(Debug, Clone, PartialEq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
    pub enum GenerateEvent {
        /// A generated token.
        Token {
            /// Its id.
            token: u32,
            /// Sequences in the step that produced it (for a first token, the
            /// sequences prefilled together).
            step_size: u32,
            /// Whether this sequence was the first of its step, so that each
            /// step is counted once in the statistics.
            leads_step: bool,
            /// Nanoseconds the step's forward pass took.
            step_ns: u64,
        },
        /// The sequence ended; its cache is freed.
        Done {
            /// Why.
            finish: FinishReason,
            /// Tokens it generated.
            completion_tokens: u32,
        },
        /// The generation could not run or broke off.
        Failed {
            /// Why.
            error: NodeError,
        },
    }
}

/// Encodes a request as a frame header and payload.
pub fn encode_request(request: &GenerateRequest, max: usize) -> Result<(Vec<u8>, Payload), FrameError> {
    let payload = rkyv::api::high::to_bytes_in::<_, rancor::Error>(request, Payload::with_capacity(256))
        .map_err(|e| FrameError::Invalid(e.to_string()))?;
    with_header(payload, max)
}

/// Encodes an event as a frame header and payload.
pub fn encode_event(event: &GenerateEvent) -> Result<(Vec<u8>, Payload), FrameError> {
    let payload = rkyv::api::high::to_bytes_in::<_, rancor::Error>(event, Payload::with_capacity(256))
        .map_err(|e| FrameError::Invalid(e.to_string()))?;
    with_header(payload, MAX_EVENT_FRAME)
}

fn with_header(payload: Payload, max: usize) -> Result<(Vec<u8>, Payload), FrameError> {
    if payload.len() > max.min(u32::MAX as usize) {
        return Err(FrameError::TooLarge { len: payload.len(), max });
    }
    Ok(((payload.len() as u32).to_le_bytes().to_vec(), payload))
}

/// Decodes a validated request frame's payload.
pub fn decode_request(payload: &Payload) -> Result<GenerateRequest, FrameError> {
    rkyv::from_bytes::<GenerateRequest, rancor::Error>(payload).map_err(|e| FrameError::Invalid(e.to_string()))
}

/// Decodes a validated event frame's payload.
pub fn decode_event(payload: &Payload) -> Result<GenerateEvent, FrameError> {
    rkyv::from_bytes::<GenerateEvent, rancor::Error>(payload).map_err(|e| FrameError::Invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> DecoderSpec {
        serde_json::from_value(serde_json::json!({
            "layers": 2, "heads": 4, "head_size": 16, "vocab_size": 1000, "context_length": 128,
            "eos_token_ids": [0], "tokenizer": "a".repeat(64)
        }))
        .unwrap()
    }

    #[test]
    fn a_spec_is_checked_for_what_a_node_cannot_run() {
        assert_eq!(spec().check("m"), Ok(()));
        assert_eq!(spec().cache_bytes, 256 << 20);
        let mut bad = spec();
        bad.heads = 0;
        assert!(bad.check("m").unwrap_err().contains("heads"));
        let mut bad = spec();
        bad.eos_token_ids = vec![1000];
        assert!(bad.check("m").unwrap_err().contains("end-of-sequence"));
        let mut bad = spec();
        bad.tokenizer = "x".into();
        assert!(bad.check("m").unwrap_err().contains("tokenizer"));
        let mut bad = spec();
        bad.cache_bytes = 1;
        assert!(bad.check("m").unwrap_err().contains("too small"));
    }

    #[test]
    fn requests_and_events_round_trip_and_garbage_is_refused() {
        let request = GenerateRequest {
            model: "gpt".into(),
            version: 3,
            request_id: "r1".into(),
            prompt: vec![5, 6, 7],
            max_tokens: 32,
            sampling: SamplingParams { temperature: 0.0, top_k: 0, top_p: 1.0, seed: 9 },
        };
        let (header, payload) = encode_request(&request, 1 << 20).unwrap();
        assert_eq!(u32::from_le_bytes(header.try_into().unwrap()) as usize, payload.len());
        assert_eq!(decode_request(&payload).unwrap(), request);
        let event = GenerateEvent::Token { token: 17, step_size: 4, leads_step: true, step_ns: 1200 };
        let (_, payload) = encode_event(&event).unwrap();
        assert_eq!(decode_event(&payload).unwrap(), event);
        let mut garbage = Payload::new();
        garbage.extend_from_slice(&[0xff; 40]);
        assert!(decode_event(&garbage).is_err());
        assert!(decode_request(&garbage).is_err());
    }
}
