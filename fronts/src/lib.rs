//! The fronts of a maas coordinator: the Open Inference Protocol over HTTP
//! ([`http`], with the management API) and gRPC ([`grpc`]).
//!
//! Both read one neutral [`state::AppState`], neither imports the other.
//! Each request is one call to the serving plane
//! (`maas_serving::infer::Inference::serve`); model configuration and
//! statistics are one Triton view ([`triton`]) rendered by both; one table
//! per front gives every route and method its [`auth::Access`], checked by
//! one layer before any handler runs. Both serve TLS when given a
//! certificate ([`tls::FrontTls`]).

pub mod auth;
mod catalog;
#[doc(hidden)]
pub mod fuzzing;
pub mod grpc;
pub mod http;
mod rollout;
pub mod state;
pub mod tls;
pub mod triton;
