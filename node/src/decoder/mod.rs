//! Decoder models run natively on the node: a causal language model
//! exported with an explicit key/value cache (`scripts/export_decoder.py`),
//! driven token by token by a Rust loop with continuous batching.
//!
//! [`model::CachedDecoder`] runs one forward pass: a prefill of one
//! sequence's prompt, or one step of every running sequence at once, their
//! caches right-padded to the longest and masked. [`scheduler::Scheduler`]
//! owns the sequences: each iteration it admits waiting sequences whose
//! whole cache (prompt plus the most tokens they may ask for) fits the
//! memory budget and prefills them, then runs one step of every running
//! sequence; sequences join and leave between steps, and a finished or
//! cancelled sequence's cache is freed at once. [`sampling`] picks each
//! token: greedy, or sampled with temperature, top-k, top-p and a seed.
//! [`worker`] runs a scheduler on a thread of its own per loaded version
//! and routes each sequence's tokens to its stream.

pub mod model;
pub mod sampling;
pub mod scheduler;
pub mod worker;

pub use model::{CachedDecoder, DecoderSpec};
pub use sampling::Sampling;
pub use scheduler::{Event, Finish, Scheduler, SequenceRequest};
pub use worker::{DecoderHandle, DecoderSetup};
