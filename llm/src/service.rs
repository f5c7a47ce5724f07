//! Serving one generative request: resolve the model's version (aliases
//! and splits as for any model), check the caller's scope, rate and token
//! quota, send the request to the version's engine (or start it on a
//! native decoder) and pass its answer on.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::stream::{BoxStream, StreamExt};
use maas_protocol::EngineEndpoint;
use maas_registry::{ArtifactStore, EngineKey};
use maas_serving::infer::Inference;
use maas_serving::models::{ModelTable, ModelVersion};
use maas_tenancy::{Action, Caller};
use parking_lot::Mutex;

use crate::engine::Engine;
use crate::error::GenerationError;
use crate::ledger::{Accounts, Ledger};
use crate::native::Native;
use crate::relay::{self, Shape};
use crate::request::GenerationRequest;

/// How long engines may take.
#[derive(Debug, Clone, Copy)]
pub struct GenerationSettings {
    /// From sending a request to the engine's headers (and for a whole
    /// answer, to its end).
    pub first_byte: Duration,
    /// Longest silence inside a streamed answer.
    pub idle: Duration,
    /// How often every engine URL is checked.
    pub health_every: Duration,
    /// The longest a streamed answer may last (a client that stops reading
    /// holds its engine request no longer).
    pub longest: Duration,
}

impl Default for GenerationSettings {
    fn default() -> Self {
        GenerationSettings {
            first_byte: Duration::from_secs(60),
            idle: Duration::from_secs(60),
            health_every: Duration::from_secs(2),
            longest: Duration::from_secs(600),
        }
    }
}

/// What a generative request answers: a whole JSON body, or events.
pub enum Reply {
    /// `application/json`.
    Whole(Vec<u8>),
    /// `text/event-stream`.
    Stream(BoxStream<'static, Result<Bytes, std::io::Error>>),
}

/// An answer and the version that gave it.
pub struct Served {
    /// The version the request was routed to.
    pub version: u64,
    /// Its answer.
    pub reply: Reply,
}

/// Which front asked, and so the shape of the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Front {
    /// OpenAI's API.
    OpenAi,
    /// Triton's generate extension.
    Triton,
}

/// The engines of every generative version this coordinator serves.
pub struct Generation {
    client: reqwest::Client,
    native: Native,
    engines: Mutex<HashMap<(String, u64), Arc<Engine>>>,
    settings: GenerationSettings,
}

impl Generation {
    /// No engine known yet; native decoders' tokenizers are read from
    /// `artifacts`; `https://` engines are trusted by the system's roots and
    /// `engine_ca`.
    pub fn new(
        settings: GenerationSettings,
        artifacts: Option<ArtifactStore>,
        engine_ca: Option<&std::path::Path>,
    ) -> Result<Generation, String> {
        // No redirects: a request goes to the URLs the version names, nowhere else.
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(2))
            .pool_idle_timeout(Duration::from_secs(30))
            .use_preconfigured_tls(crate::engine_tls::engine_tls(engine_ca)?)
            .build()
            .map_err(|e| format!("the engines' HTTP client: {e}"))?;
        Ok(Generation { client, native: Native::new(artifacts), engines: Mutex::new(HashMap::new()), settings })
    }

    /// Serves `request` for `caller` (`version`: a version the path named).
    pub async fn serve(
        &self,
        inference: &Inference,
        caller: &Caller,
        request: GenerationRequest,
        version: Option<&str>,
        front: Front,
        request_id: &str,
    ) -> Result<Served, GenerationError> {
        let arrived = Instant::now();
        // The key's scope first: a model outside it is refused before
        // anything says whether it exists.
        let name = request.model.split('@').next().unwrap_or_default();
        caller.permit(Action::Infer, Some(name))?;
        let resolved = inference.table().resolve(&request.model, version)?;
        let shared = &resolved.shared;
        if !shared.config.platform.is_generative() {
            return Err(GenerationError::invalid(format!(
                "model '{}' is not a generative model; send tensors to /v2/models/{}/infer",
                shared.name, shared.name
            )));
        }
        let admitted = inference.limiter().admit(caller).and_then(|admission| {
            if let Err(refusal) = admission.tokens_available() {
                admission.return_request();
                return Err(refusal);
            }
            // Taken now, so requests admitted beside it see it; the
            // difference is settled when the engine says what it used.
            admission.spend_tokens(request.token_estimate);
            Ok(admission)
        });
        let admission = match admitted {
            Ok(admission) => admission,
            Err(refusal) => {
                maas_serving::metrics::record_rate_limited(caller.tenant());
                shared.metrics().request("rate_limited", Duration::ZERO);
                return Err(refusal.into());
            }
        };
        let accounts = Accounts {
            meter: inference.usage().cloned(),
            monitor: inference.table().monitor().clone(),
            tenant: caller.tenant().to_string(),
            reserved_tokens: request.token_estimate,
            prompt_estimate: request.prompt_estimate,
        };
        let mut ledger = Ledger::open(resolved.clone(), admission, accounts, arrived);
        let answer = match &shared.engine {
            Some(engine_state) => {
                let engine = self.engine_for(&resolved, engine_state.key.clone());
                let body = request.engine_body(&engine.model);
                let sent = engine.send(&self.client, request.endpoint, body, self.settings.first_byte).await;
                if sent.is_ok() {
                    engine_state.up.store(true, Ordering::Relaxed);
                }
                sent
            }
            None => {
                let nudge = || inference.table().nudge_demand();
                let started =
                    self.native.start(&resolved, &request, request_id, self.settings.first_byte, &nudge).await;
                started.map(|(answer, prompt_tokens)| {
                    ledger.prompt_tokens(u64::from(prompt_tokens));
                    answer
                })
            }
        };
        let answer = match answer {
            Ok(answer) => answer,
            Err(error) => {
                ledger.finish(error.outcome);
                return Err(error);
            }
        };
        let shape = match front {
            Front::OpenAi => Shape::OpenAi { model: request.model.clone(), wants_usage: request.client_wants_usage },
            Front::Triton => Shape::Triton { model: shared.name.clone(), version: shared.version },
        };
        if request.stream {
            let events =
                relay::stream(answer, request.endpoint, shape, ledger, self.settings.idle, self.settings.longest);
            return Ok(Served { version: shared.version, reply: Reply::Stream(events.boxed()) });
        }
        let wait = self.settings.first_byte.saturating_sub(ledger.elapsed());
        match relay::whole(answer, request.endpoint, &shape, &mut ledger, wait).await {
            Ok(body) => {
                ledger.finish("ok");
                Ok(Served { version: shared.version, reply: Reply::Whole(body) })
            }
            Err(error) => {
                ledger.finish(error.outcome);
                Err(error)
            }
        }
    }

    /// Whether an engine at `endpoint` answers now (before publishing it),
    /// and if not what each URL did.
    pub async fn probe(&self, model: &str, endpoint: &EngineEndpoint, key: Option<EngineKey>) -> Result<(), String> {
        Engine::new(model, endpoint, key).probe(&self.client, Duration::from_secs(2)).await
    }

    /// The engine of `version`, made at its first use.
    fn engine_for(&self, version: &ModelVersion, key: Option<EngineKey>) -> Arc<Engine> {
        let shared = &version.shared;
        let mut engines = self.engines.lock();
        let slot = engines.entry((shared.name.clone(), shared.version));
        slot.or_insert_with(|| {
            let endpoint = shared.config.engine.clone().unwrap_or(EngineEndpoint { urls: Vec::new(), model: None });
            Arc::new(Engine::new(&shared.name, &endpoint, key))
        })
        .clone()
    }

    /// Checks every engine's URLs every [`GenerationSettings::health_every`],
    /// setting each version's readiness, and forgets the engines of versions
    /// no longer served.
    pub fn spawn_health_checks(self: &Arc<Self>, table: Arc<ModelTable>) -> tokio::task::JoinHandle<()> {
        let generation = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(generation.settings.health_every);
            loop {
                tick.tick().await;
                let versions: Vec<_> = table.all().into_iter().filter(|v| v.shared.engine.is_some()).collect();
                let wanted: std::collections::HashSet<_> =
                    versions.iter().map(|v| (v.shared.name.clone(), v.shared.version)).collect();
                generation.engines.lock().retain(|key, _| wanted.contains(key));
                let served = table.all().into_iter().map(|v| (v.shared.name.clone(), v.shared.version)).collect();
                generation.native.retain(&served);
                // Every engine at once: one slow engine delays no other's readiness.
                let checks = versions.iter().map(|version| {
                    let generation = &generation;
                    async move {
                        let Some(state) = &version.shared.engine else { return };
                        let engine = generation.engine_for(version, state.key.clone());
                        let up = engine.check(&generation.client, Duration::from_secs(1)).await;
                        if state.up.swap(up, Ordering::Relaxed) != up {
                            let (model, number) = (&version.shared.name, version.shared.version);
                            tracing::info!(%model, version = number, up, "engine readiness changed");
                        }
                    }
                });
                futures_util::future::join_all(checks).await;
            }
        })
    }
}
