//! Text in and out of a native decoder: its Hugging Face `tokenizer.json`
//! (the `tokenizers` crate) and its chat template (Jinja, rendered by
//! minijinja as `transformers`' `apply_chat_template` renders it).

use std::collections::HashMap;
use std::sync::Arc;

use maas_protocol::DecoderSpec;
use maas_registry::ArtifactStore;
use minijinja::{context, Environment, Error as TemplateError, ErrorKind};
use parking_lot::Mutex;
use serde::Serialize;
use tokenizers::Tokenizer;

use crate::error::GenerationError;

/// Largest `tokenizer.json` the coordinator loads.
const MAX_TOKENIZER_BYTES: u64 = 64 << 20;
/// Work a chat template may do for one request (minijinja's fuel: about
/// one unit per instruction), so a template cannot loop for long.
const TEMPLATE_FUEL: u64 = 1_000_000;
/// Longest rendered chat prompt, in bytes.
const MAX_RENDERED: usize = 16 << 20;

/// One chat message as templates see it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Message {
    /// `system`, `user`, `assistant`, ...
    pub role: String,
    /// Its text.
    pub content: String,
}

/// A decoder's tokenizer and chat template.
pub struct TextCodec {
    tokenizer: Tokenizer,
    /// The decoder's context, in tokens.
    context: u32,
    /// Bytes of the longest token's text: a prompt longer than the context
    /// times this cannot fit, and is refused before it is tokenized.
    longest_token_bytes: usize,
    template: Option<Environment<'static>>,
    bos_token: String,
    eos_token: String,
}

impl TextCodec {
    /// A codec from a `tokenizer.json`'s bytes and the decoder's spec.
    pub fn new(tokenizer_json: &[u8], spec: &DecoderSpec) -> Result<TextCodec, String> {
        let tokenizer = Tokenizer::from_bytes(tokenizer_json).map_err(|e| format!("reading tokenizer.json: {e}"))?;
        let name_of = |id: Option<&u32>| id.and_then(|&id| tokenizer.id_to_token(id)).unwrap_or_default();
        let eos_token = name_of(spec.eos_token_ids.first());
        let template = match &spec.chat_template {
            Some(source) => {
                let mut environment = Environment::new();
                environment.set_fuel(Some(TEMPLATE_FUEL));
                environment.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
                environment.add_function("raise_exception", |message: String| -> Result<String, TemplateError> {
                    Err(TemplateError::new(ErrorKind::InvalidOperation, message))
                });
                environment
                    .add_template_owned("chat", source.clone())
                    .map_err(|e| format!("the chat template does not parse: {e}"))?;
                Some(environment)
            }
            None => None,
        };
        let longest_token_bytes = tokenizer.get_vocab(true).keys().map(String::len).max().unwrap_or(1).max(1);
        // Templates name a begin-of-sequence token: the tokenizer's own, if
        // it has one of the usual names, else the end-of-sequence token
        // (GPT-2's is both).
        let bos_token = ["<s>", "<|begin_of_text|>", "<bos>", "<|startoftext|>"]
            .into_iter()
            .find(|name| tokenizer.token_to_id(name).is_some())
            .map_or_else(|| eos_token.clone(), str::to_string);
        Ok(TextCodec { bos_token, eos_token, tokenizer, context: spec.context_length, template, longest_token_bytes })
    }

    /// The ids of a text prompt, with the tokenizer's special tokens as
    /// `transformers`' tokenizer adds them.
    pub fn encode(&self, text: &str, special_tokens: bool) -> Result<Vec<u32>, GenerationError> {
        self.check_fits(text.len())?;
        let encoding = self
            .tokenizer
            .encode(text, special_tokens)
            .map_err(|e| GenerationError::invalid(format!("the prompt could not be tokenized: {e}")))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Refuses, before tokenizing, a text too long to fit `context` tokens
    /// whatever it holds (the work and memory of tokenizing grow with it).
    fn check_fits(&self, bytes: usize) -> Result<(), GenerationError> {
        let most = self.longest_token_bytes.saturating_mul(self.context as usize);
        if bytes > most {
            return Err(GenerationError::invalid(format!(
                "the prompt's {bytes} bytes cannot fit the model's context of {} tokens",
                self.context
            )));
        }
        Ok(())
    }

    /// The ids of a chat: its messages rendered by the chat template with a
    /// generation prompt, then tokenized without further special tokens.
    pub fn encode_chat(&self, messages: &[Message]) -> Result<Vec<u32>, GenerationError> {
        let Some(template) = &self.template else {
            return Err(GenerationError::invalid("this model has no chat template: use /v1/completions with a prompt"));
        };
        let mut rendered = Bounded { text: Vec::new(), most: MAX_RENDERED };
        template
            .get_template("chat")
            .and_then(|t| {
                let values = context! {
                    messages => messages,
                    add_generation_prompt => true,
                    bos_token => &self.bos_token,
                    eos_token => &self.eos_token,
                };
                t.render_captured_to(values, &mut rendered).map(drop)
            })
            .map_err(|e| GenerationError::invalid(format!("the chat template failed on these messages: {e}")))?;
        let rendered = String::from_utf8(rendered.text)
            .map_err(|_| GenerationError::invalid("the chat template rendered text that is not UTF-8"))?;
        self.encode(&rendered, false)
    }

    /// The text of `ids`, special tokens left out.
    pub fn decode(&self, ids: &[u32]) -> String {
        self.tokenizer.decode(ids, true).unwrap_or_default()
    }
}

/// Rendered text, refused past `most` bytes as it is written (a template
/// cannot build a huge prompt first and be measured after).
struct Bounded {
    text: Vec<u8>,
    most: usize,
}

impl std::io::Write for Bounded {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if self.text.len() + bytes.len() > self.most {
            return Err(std::io::Error::other(format!("the rendered chat is longer than {} bytes", self.most)));
        }
        self.text.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Each decoder's codec, loaded from the artifact store at first use.
#[derive(Default)]
pub struct Codecs {
    loaded: Mutex<HashMap<(String, u64), Arc<TextCodec>>>,
}

impl Codecs {
    /// The codec of `model` version `version`.
    pub async fn get(
        &self,
        artifacts: Option<&ArtifactStore>,
        (model, version): (&str, u64),
        spec: &DecoderSpec,
    ) -> Result<Arc<TextCodec>, GenerationError> {
        let key = (model.to_string(), version);
        if let Some(codec) = self.loaded.lock().get(&key) {
            return Ok(codec.clone());
        }
        let store = artifacts.ok_or_else(|| GenerationError::unavailable("this coordinator has no artifact store"))?;
        let bytes = read_artifact(store, &spec.tokenizer).await?;
        let codec = tokio::task::spawn_blocking({
            let spec = spec.clone();
            move || TextCodec::new(&bytes, &spec)
        })
        .await
        .map_err(|e| GenerationError::unavailable(format!("loading the tokenizer panicked: {e}")))?
        .map_err(|e| GenerationError::unavailable(format!("model '{model}' version {version}: {e}")))?;
        let codec = Arc::new(codec);
        self.loaded.lock().insert(key, codec.clone());
        Ok(codec)
    }

    /// Forgets the codecs of versions not in `served`.
    pub fn retain(&self, served: &std::collections::HashSet<(String, u64)>) {
        self.loaded.lock().retain(|key, _| served.contains(key));
    }
}

async fn read_artifact(store: &ArtifactStore, sha256: &str) -> Result<Vec<u8>, GenerationError> {
    store
        .read_small(sha256, MAX_TOKENIZER_BYTES)
        .await
        .map_err(|e| GenerationError::unavailable(format!("reading the tokenizer: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A word-level tokenizer of a handful of words.
    const TOKENIZER: &str = r###"{
      "version": "1.0", "truncation": null, "padding": null,
      "added_tokens": [{"id": 0, "content": "<eos>", "single_word": false, "lstrip": false, "rstrip": false,
                        "normalized": false, "special": true}],
      "normalizer": null, "pre_tokenizer": {"type": "Whitespace"}, "post_processor": null,
      "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": true},
      "model": {"type": "WordLevel", "vocab": {"<eos>": 0, "hello": 1, "world": 2, "user": 3, "bot": 4,
                "[UNK]": 5}, "unk_token": "[UNK]"}
    }"###;

    fn spec(template: Option<&str>) -> DecoderSpec {
        serde_json::from_value(serde_json::json!({
            "layers": 1, "heads": 1, "head_size": 4, "vocab_size": 6, "context_length": 32,
            "eos_token_ids": [0], "tokenizer": "a".repeat(64), "chat_template": template
        }))
        .unwrap()
    }

    #[test]
    fn prompts_and_chats_become_ids_and_ids_text() {
        let template = "{% for m in messages %}{{ m.role }} {{ m.content.strip() }} {% endfor %}\
                        {% if add_generation_prompt %}bot{% endif %}";
        let codec = TextCodec::new(TOKENIZER.as_bytes(), &spec(Some(template))).unwrap();
        assert_eq!(codec.encode("hello world", true).unwrap(), vec![1, 2]);
        let chat = [Message { role: "user".into(), content: "  hello  ".into() }];
        assert_eq!(codec.encode_chat(&chat).unwrap(), vec![3, 1, 4]);
        assert_eq!(codec.decode(&[1, 2, 0]), "hello world");
        // 32 tokens of at most 5 bytes: a longer prompt is refused untokenized.
        let long = "hello ".repeat(40);
        assert!(codec.encode(&long, true).unwrap_err().message.contains("cannot fit"));
    }

    #[test]
    fn a_template_that_raises_or_runs_away_is_a_clear_error() {
        let raising = "{{ raise_exception('only user messages') }}";
        let codec = TextCodec::new(TOKENIZER.as_bytes(), &spec(Some(raising))).unwrap();
        let error = codec.encode_chat(&[Message { role: "user".into(), content: "hello".into() }]).unwrap_err();
        assert!(error.message.contains("only user messages"), "{}", error.message);
        let forever = "{% for a in range(100000) %}{% for b in range(100000) %}x{% endfor %}{% endfor %}";
        let codec = TextCodec::new(TOKENIZER.as_bytes(), &spec(Some(forever))).unwrap();
        let error = codec.encode_chat(&[]).unwrap_err();
        assert_eq!(error.status, 400, "{}", error.message);
        let none = TextCodec::new(TOKENIZER.as_bytes(), &spec(None)).unwrap();
        assert!(none.encode_chat(&[]).unwrap_err().message.contains("no chat template"));
        assert!(TextCodec::new(b"{", &spec(None)).is_err());
    }
}
