//! Decoder models run natively on maas nodes, behind the same fronts as
//! external engines.
//!
//! The coordinator tokenizes the prompt ([`codec`]: the version's
//! `tokenizer.json` and chat template), checks it against the decoder's
//! context, and opens a generation stream on a replica ([`Native::start`]:
//! the least busy one; another is tried while none has answered). The
//! node's tokens come back one event each and become text as they come
//! ([`text`]: incremental detokenising and stop strings), written as the
//! OpenAI-shaped answer an engine would give ([`answer`]), which the relay
//! passes on like any engine's. A stream stays on the replica holding its
//! cache; dropping it cancels the sequence there.

pub mod answer;
pub mod codec;
pub mod params;
pub mod text;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use maas_protocol::{GenerateEvent, GenerateRequest, NodeError, SamplingParams};
use maas_registry::ArtifactStore;
use maas_serving::models::ModelVersion;
use maas_serving::{Replica, ReplicaError, TokenStream};

use self::answer::AnswerShape;
use self::codec::Codecs;
use self::params::{Params, Prompt};
use self::text::StopStrings;
use crate::engine::Answer;
use crate::error::GenerationError;
use crate::request::{GenerationRequest, DEFAULT_MAX_TOKENS};

/// Native decoders' tokenizers, and where they are read from.
#[derive(Default)]
pub struct Native {
    artifacts: Option<ArtifactStore>,
    codecs: Codecs,
}

impl Native {
    /// Reads tokenizers from `artifacts`.
    pub fn new(artifacts: Option<ArtifactStore>) -> Native {
        Native { artifacts, codecs: Codecs::default() }
    }

    /// Starts `request` on a replica of `version` and returns its answer
    /// once the first token has come, and the prompt's tokens.
    pub async fn start(
        &self,
        version: &Arc<ModelVersion>,
        request: &GenerationRequest,
        request_id: &str,
        wait: Duration,
        nudge_demand: &(dyn Fn() + Sync),
    ) -> Result<(Answer, u32), GenerationError> {
        let shared = &version.shared;
        let spec = shared.config.decoder.as_ref().ok_or_else(|| GenerationError::invalid("not a decoder"))?;
        let params = Params::of(request)?;
        let codec = self.codecs.get(self.artifacts.as_ref(), (&shared.name, shared.version), spec).await?;
        // Tokenizing is CPU work that grows with the prompt: off the
        // fronts' event loop.
        let prompt = match params.prompt {
            Prompt::Ids(ids) => ids,
            prompt => {
                let codec = codec.clone();
                tokio::task::spawn_blocking(move || match prompt {
                    Prompt::Text(text) => codec.encode(&text, true),
                    Prompt::Chat(messages) => codec.encode_chat(&messages),
                    Prompt::Ids(ids) => Ok(ids),
                })
                .await
                .map_err(|e| GenerationError::unavailable(format!("tokenizing panicked: {e}")))??
            }
        };
        let context = spec.context_length;
        let prompt_tokens = u32::try_from(prompt.len()).unwrap_or(u32::MAX);
        if prompt.is_empty() {
            return Err(GenerationError::invalid("the prompt has no tokens"));
        }
        if prompt_tokens >= context {
            return Err(GenerationError::invalid(format!(
                "the prompt's {prompt_tokens} tokens leave no room in the model's context of {context} tokens"
            )));
        }
        if let Some(bad) = prompt.iter().find(|&&id| id >= spec.vocab_size) {
            return Err(GenerationError::invalid(format!("token id {bad} is outside the vocabulary")));
        }
        let room = context - prompt_tokens;
        let max_tokens = match params.max_tokens {
            Some(asked) if asked > room => {
                return Err(GenerationError::invalid(format!(
                    "the prompt's {prompt_tokens} tokens and max_tokens {asked} exceed the model's context of \
                     {context} tokens"
                )))
            }
            Some(asked) => asked,
            // Without a limit: what fits the context, the default, and the
            // decoder's cache budget for one sequence alone.
            None => {
                let budget_tokens = spec.cache_bytes / (2 * spec.cache_bytes_per_token()).max(1);
                let budget_room = budget_tokens.saturating_sub(u64::from(prompt_tokens)).max(1);
                room.min(DEFAULT_MAX_TOKENS as u32).min(u32::try_from(budget_room).unwrap_or(u32::MAX))
            }
        };
        let generate = GenerateRequest {
            model: shared.name.clone(),
            version: shared.version,
            request_id: request_id.to_string(),
            prompt,
            max_tokens,
            sampling: SamplingParams {
                temperature: params.temperature,
                top_k: params.top_k,
                top_p: params.top_p,
                seed: params.seed.unwrap_or_else(rand::random),
            },
        };
        let (events, first, node) = open(version, &generate, wait, nudge_demand).await?;
        let created = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let prefix = match request.endpoint {
            crate::request::Endpoint::Chat => "chatcmpl",
            crate::request::Endpoint::Completion => "cmpl",
        };
        let shape = AnswerShape {
            endpoint: request.endpoint,
            stream: request.stream,
            id: format!("{prefix}-{:032x}", rand::random::<u128>()),
            created,
            prompt_tokens,
            max_tokens,
        };
        let body = answer::body(events, first, codec, StopStrings::new(params.stop), shape, version.clone());
        Ok((Answer { body, url: format!("node '{node}'") }, prompt_tokens))
    }

    /// Forgets the tokenizers of versions no longer served.
    pub fn retain(&self, served: &std::collections::HashSet<(String, u64)>) {
        self.codecs.retain(served);
    }
}

/// Opens the generation on the least busy replica and waits for its first
/// event; a replica that fails before answering is left for the next.
async fn open(
    version: &ModelVersion,
    request: &GenerateRequest,
    wait: Duration,
    nudge_demand: &(dyn Fn() + Sync),
) -> Result<(Box<dyn TokenStream>, GenerateEvent, String), GenerationError> {
    let shared = &version.shared;
    let deadline = tokio::time::Instant::now() + wait;
    let _in_use = shared.activity.touch(std::time::Instant::now());
    let mut tried: Vec<Arc<dyn Replica>> = Vec::new();
    let mut last_failure: Option<ReplicaError> = None;
    loop {
        let mut changes = shared.replicas.watch();
        let Some(replica) = shared.replicas.least_outstanding(&tried) else {
            if shared.loads_on_demand() && last_failure.is_none() {
                let _waiting = shared.activity.wait();
                nudge_demand();
                if tokio::time::timeout_at(deadline, changes.changed()).await.is_ok() {
                    tried.clear();
                    continue;
                }
                return Err(GenerationError::from(maas_serving::ServeError::Timeout {
                    model: shared.name.clone(),
                    version: shared.version,
                    waited: wait,
                }));
            }
            return Err(match last_failure {
                Some(failure) => GenerationError::unavailable(format!(
                    "model '{}' version {}: every replica failed; last: {failure}",
                    shared.name, shared.version
                )),
                None => shared.no_replica_error().into(),
            });
        };
        let node = replica.name().to_string();
        let opened = async {
            let mut events = replica.generate(request).await?;
            let first = events.next_event().await?;
            Ok::<_, ReplicaError>((events, first))
        };
        match tokio::time::timeout_at(deadline, opened).await {
            Err(_) => {
                return Err(GenerationError::from(maas_serving::ServeError::Timeout {
                    model: shared.name.clone(),
                    version: shared.version,
                    waited: wait,
                }))
            }
            Ok(Err(failure)) => {
                tracing::warn!(model = %shared.name, version = shared.version, %node, %failure, "generation failed to start; trying another replica");
                tried.push(replica);
                last_failure = Some(failure);
            }
            Ok(Ok((events, first))) => match first {
                GenerateEvent::Failed { error: NodeError::ModelNotLoaded { .. } } => {
                    shared.replicas.set(&replica, None);
                    tried.push(replica);
                }
                GenerateEvent::Failed { error: NodeError::Overloaded } => {
                    tried.push(replica);
                    last_failure = Some(ReplicaError::Transport { node, message: "its decoder is full".into() });
                }
                GenerateEvent::Failed { error: NodeError::InvalidInput { message } } => {
                    return Err(GenerationError::invalid(message))
                }
                GenerateEvent::Failed { error } => {
                    return Err(GenerationError {
                        status: 502,
                        message: format!("node '{node}': {error}"),
                        retry_after: None,
                        outcome: "node_failed",
                    })
                }
                first => return Ok((events, first, node)),
            },
        }
    }
}
