//! Wire types shared by the maas coordinator and its nodes.
//!
//! This crate holds no IO: it defines the tensor and datatype vocabulary of
//! the Open Inference Protocol ([`DataType`], [`Tensor`]), the model
//! configuration both sides agree on ([`ModelConfig`]), the messages a
//! coordinator and a node exchange on a QUIC stream ([`NodeRequest`],
//! [`NodeResponse`]), their length-prefixed [`frame`] encoding with validated
//! decoding, and the typed errors a node reports ([`NodeError`]).
#![warn(missing_docs)]

mod config;
mod datatype;
pub mod frame;
mod message;
mod tensor;
mod tensor_bytes;
pub mod validate;

pub use config::{ModelConfig, ReplicaRange, TensorSpec, VersionPolicy};
pub use datatype::{ArchivedDataType, DataType};
pub use message::{
    ArchivedBatchOutcome, ArchivedInferBatch, ArchivedLoadModel, ArchivedNodeRequest, ArchivedNodeResponse,
    ArchivedRequestOutcome, BatchOutcome, BatchResult, InferBatch, LoadModel, LoadedModel, ModelLoad, NodeError,
    NodeRequest, NodeResponse, NodeStatus, RequestOutcome,
};
pub use tensor::{ArchivedTensor, Tensor};
pub use tensor_bytes::TensorBytes;
