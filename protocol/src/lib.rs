//! Wire types shared by the maas coordinator and its nodes.
//!
//! This crate holds no IO: it defines the tensor and datatype vocabulary of
//! the Open Inference Protocol ([`DataType`], [`Tensor`]), the model
//! configuration both sides agree on ([`ModelConfig`]), the two planes a
//! coordinator and a node talk on — batches and their replies on QUIC data
//! streams ([`data`]), commands and their answers on the control session
//! ([`control`]) — the length-prefixed [`frame`] encoding of the data plane
//! with validated decoding, reading a reply in place ([`answer`]), and the
//! typed errors a node reports ([`NodeError`]).
#![warn(missing_docs)]

pub mod answer;
mod config;
pub mod control;
pub mod data;
mod datatype;
pub mod decoder;
mod error;
pub mod frame;
pub mod pipeline;
pub mod strings;
mod tensor;
mod tensor_bytes;
pub mod validate;

pub use config::{EngineEndpoint, ModelConfig, Platform, ReplicaRange, TensorSpec, VersionPolicy};
pub use control::{CommandResult, LoadModel, LoadedModel, ModelLoad, NodeStatus, UnloadModel};
pub use data::{
    ArchivedBatchInput, ArchivedInferBatch, BatchInput, BatchOutcome, BatchReply, BatchResult, InferBatch,
    RequestOutcome,
};
pub use datatype::{ArchivedDataType, DataType};
pub use decoder::{DecoderSpec, FinishReason, GenerateEvent, GenerateRequest, SamplingParams};
pub use error::NodeError;
pub use pipeline::PipelineSpec;
pub use tensor::{ArchivedTensor, Tensor};
pub use tensor_bytes::TensorBytes;
