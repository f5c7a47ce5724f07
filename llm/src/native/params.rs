//! What a native decoder needs of a generative request: its prompt (text,
//! token ids, or chat messages) and how to generate (token limit, sampling,
//! stop strings), each checked with a clear error.

use serde::Deserialize;

use super::codec::Message;
use crate::error::GenerationError;
use crate::request::{Endpoint, GenerationRequest};

/// Most stop strings, as OpenAI allows.
const MAX_STOPS: usize = 4;
/// Longest stop string, in bytes.
const MAX_STOP_BYTES: usize = 256;

/// The prompt as the client gave it.
#[derive(Debug, PartialEq)]
pub enum Prompt {
    /// A text to tokenize.
    Text(String),
    /// Token ids, used as they are.
    Ids(Vec<u32>),
    /// Chat messages for the chat template.
    Chat(Vec<Message>),
}

/// How to generate.
#[derive(Debug, PartialEq)]
pub struct Params {
    /// The prompt.
    pub prompt: Prompt,
    /// The token limit the client set, if it did.
    pub max_tokens: Option<u32>,
    /// 0: greedy.
    pub temperature: f32,
    /// 0: all tokens.
    pub top_k: u32,
    /// 1: all tokens.
    pub top_p: f32,
    /// The seed of the random draws, if the client set one.
    pub seed: Option<u64>,
    /// Stop strings.
    pub stop: Vec<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum PromptField {
    Text(String),
    Texts(Vec<String>),
    Ids(Vec<u32>),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Parts(Vec<Part>),
}

#[derive(Deserialize)]
struct Part {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: Option<String>,
}

#[derive(Deserialize)]
struct RawMessage {
    role: String,
    #[serde(default)]
    content: Option<Content>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum StopField {
    One(String),
    Many(Vec<String>),
}

fn parse<'a, T: Deserialize<'a>>(raw: &'a str, name: &str, expected: &str) -> Result<T, GenerationError> {
    serde_json::from_str(raw).map_err(|_| GenerationError::invalid(format!("'{name}' must be {expected}")))
}

fn number(
    request: &GenerationRequest,
    name: &str,
    range: std::ops::RangeInclusive<f64>,
) -> Result<Option<f64>, GenerationError> {
    let Some(raw) = request.field(name) else { return Ok(None) };
    let value: f64 = parse(raw, name, "a number")?;
    if !range.contains(&value) {
        return Err(GenerationError::invalid(format!(
            "'{name}' must be between {} and {}, not {value}",
            range.start(),
            range.end()
        )));
    }
    Ok(Some(value))
}

impl Params {
    /// Reads `request`'s prompt and generation settings.
    pub fn of(request: &GenerationRequest) -> Result<Params, GenerationError> {
        let prompt = match request.endpoint {
            Endpoint::Completion => {
                let raw = request.field("prompt").ok_or_else(|| GenerationError::invalid("'prompt' is required"))?;
                match parse(raw, "prompt", "a string, a list of one string or a list of token ids")? {
                    PromptField::Text(text) => Prompt::Text(text),
                    PromptField::Texts(mut texts) if texts.len() == 1 => Prompt::Text(texts.remove(0)),
                    PromptField::Texts(_) => {
                        return Err(GenerationError::invalid("a native decoder takes one prompt per request"))
                    }
                    PromptField::Ids(ids) => Prompt::Ids(ids),
                }
            }
            Endpoint::Chat => {
                let raw =
                    request.field("messages").ok_or_else(|| GenerationError::invalid("'messages' is required"))?;
                let messages: Vec<RawMessage> = parse(raw, "messages", "a list of messages with text content")?;
                Prompt::Chat(messages.into_iter().map(message).collect::<Result<_, _>>()?)
            }
        };
        if request.field("n").is_some_and(|n| n != "1") {
            return Err(GenerationError::invalid("a native decoder answers one choice per request ('n' must be 1)"));
        }
        let max_tokens = match request.field("max_tokens").or(request.field("max_completion_tokens")) {
            Some(raw) => Some(parse(raw, "max_tokens", "a positive integer")?),
            None => None,
        };
        let top_k = match request.field("top_k") {
            Some("-1") | None => 0,
            Some(raw) => parse(raw, "top_k", "a non-negative integer or -1")?,
        };
        let seed = match request.field("seed") {
            Some(raw) => Some(parse::<i64>(raw, "seed", "an integer")? as u64),
            None => None,
        };
        let stop = match request.field("stop") {
            None => Vec::new(),
            Some(raw) => match parse(raw, "stop", "a string or a list of strings")? {
                StopField::One(stop) => vec![stop],
                StopField::Many(stops) => stops,
            },
        };
        if stop.len() > MAX_STOPS || stop.iter().any(|s| s.len() > MAX_STOP_BYTES) {
            return Err(GenerationError::invalid(format!(
                "'stop' takes at most {MAX_STOPS} strings of at most {MAX_STOP_BYTES} bytes"
            )));
        }
        Ok(Params {
            prompt,
            max_tokens,
            temperature: number(request, "temperature", 0.0..=2.0)?.unwrap_or(1.0) as f32,
            top_k,
            top_p: number(request, "top_p", 0.0..=1.0)?.unwrap_or(1.0) as f32,
            seed,
            stop,
        })
    }
}

fn message(raw: RawMessage) -> Result<Message, GenerationError> {
    let content = match raw.content {
        None => String::new(),
        Some(Content::Text(text)) => text,
        Some(Content::Parts(parts)) => {
            let mut text = String::new();
            for part in parts {
                match (part.kind.as_str(), part.text) {
                    ("text", Some(piece)) => text.push_str(&piece),
                    (kind, _) => {
                        return Err(GenerationError::invalid(format!(
                            "a native decoder reads text; a '{kind}' content part is not supported"
                        )))
                    }
                }
            }
            text
        }
    };
    Ok(Message { role: raw.role, content })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(endpoint: Endpoint, body: serde_json::Value) -> Result<Params, GenerationError> {
        let request = GenerationRequest::openai(endpoint, &serde_json::to_vec(&body).unwrap())?;
        Params::of(&request)
    }

    #[test]
    fn prompts_come_as_text_ids_or_messages() {
        let text = params(Endpoint::Completion, serde_json::json!({"model": "m", "prompt": "hi", "temperature": 0}));
        let text = text.unwrap();
        assert_eq!(text.prompt, Prompt::Text("hi".into()));
        assert_eq!((text.temperature, text.top_p, text.max_tokens), (0.0, 1.0, None));
        let ids = params(Endpoint::Completion, serde_json::json!({"model": "m", "prompt": [1, 2], "max_tokens": 5}));
        assert_eq!(ids.unwrap().prompt, Prompt::Ids(vec![1, 2]));
        let chat = params(
            Endpoint::Chat,
            serde_json::json!({"model": "m", "stop": "END", "seed": 4, "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]}),
        )
        .unwrap();
        assert_eq!(chat.stop, vec!["END".to_string()]);
        assert_eq!(chat.seed, Some(4));
        let Prompt::Chat(messages) = chat.prompt else { panic!("not a chat") };
        assert_eq!(messages[1], Message { role: "user".into(), content: "ab".into() });
    }

    #[test]
    fn what_a_native_decoder_cannot_do_is_refused() {
        let cases = [
            (serde_json::json!({"model": "m", "prompt": ["a", "b"]}), "one prompt"),
            (serde_json::json!({"model": "m", "prompt": "a", "n": 2}), "one choice"),
            (serde_json::json!({"model": "m", "prompt": "a", "temperature": 3}), "between 0 and 2"),
            (serde_json::json!({"model": "m", "prompt": "a", "stop": ["a", "b", "c", "d", "e"]}), "at most 4"),
            (serde_json::json!({"model": "m", "prompt": "a", "top_k": "x"}), "top_k"),
        ];
        for (body, expected) in cases {
            let error = params(Endpoint::Completion, body).unwrap_err();
            assert!(error.message.contains(expected), "{} lacks {expected}", error.message);
        }
        let image =
            serde_json::json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]});
        assert!(params(Endpoint::Chat, image).unwrap_err().message.contains("image_url"));
    }
}
