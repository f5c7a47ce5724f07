//! Helpers for maas's cross-process tests: start real `maas-node` and
//! `maas-coordinator` processes on loopback ports, load PyTorch's reference
//! outputs for the example models, and build and check inference requests.
//!
//! The binaries come from the same cargo profile as the test (build them
//! first with `cargo build --release --bins`); the example models from
//! `scripts/export_models.py` (in `.maas/models`, or `MAAS_TEST_MODELS`).
//!
//! Tests wait for what they expect with [`wait::wait_until`] rather than
//! fixed sleeps.

pub mod admin;
pub mod cli;
pub mod cluster;
pub mod engine;
pub mod grpc;
pub mod proxy;
pub mod python;
pub mod reference;
pub mod requests;
pub mod synthetic;
pub mod wait;

pub use cluster::{ArtifactLocation, Cluster, ClusterBuilder, NodeSpec};
pub use reference::Reference;
