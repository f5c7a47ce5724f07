//! The serving plane of a maas coordinator: from a parsed request to its
//! answer.
//!
//! A front calls [`infer::Inference::serve`] once per request. It resolves
//! the version in the [`models::ModelTable`] (names, versions, aliases,
//! splits), validates the inputs, queues the request in the version's
//! [`batcher`], which forms batches under the version's policy and hands
//! them to [`dispatch`], which sends each to the least busy [`Replica`] and
//! splits the answer back per request. Every failure a client can see is a
//! [`ServeError`]. Nothing here knows HTTP, gRPC or how a node is reached.

pub mod activity;
pub mod batcher;
mod dispatch;
pub mod error;
pub mod infer;
pub mod input_check;
pub mod metrics;
pub mod models;
pub mod pending;
pub mod pipeline;
pub mod priority;
pub mod replica;
pub mod version;

pub use error::{ServeError, ServeResult};
pub use replica::{Replica, ReplicaError, TokenStream};
