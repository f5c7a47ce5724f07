//! Generative models as a service: OpenAI's chat and text completions and
//! Triton's generate extension, answered by the model's version: an
//! external engine with an OpenAI-compatible API (vLLM, SGLang, TGI,
//! `transformers serve`) registered like any version, or a decoder that
//! maas nodes run themselves ([`native`]).
//!
//! A request is checked ([`request`]), resolved and admitted
//! ([`service::Generation::serve`]: aliases, splits, scopes, rate and token
//! quotas), sent to one of the engine's URLs ([`engine`]: spread, health
//! checks, retries until an answer starts) and passed on whole or streamed
//! ([`relay`], [`sse`]), each piece counted on the request's [`ledger`]:
//! time to first token, time between tokens, tokens in usage and quotas.

pub mod engine;
pub mod engine_tls;
pub mod error;
pub mod ledger;
pub mod metrics;
pub mod native;
pub mod relay;
pub mod request;
pub mod service;
pub mod sse;

pub use error::GenerationError;
pub use request::{Endpoint, GenerationRequest};
pub use service::{Front, Generation, GenerationSettings, Reply, Served};
