//! The Open Inference Protocol v2 over gRPC: Triton's
//! `inference.GRPCInferenceService`, generated from
//! `proto/grpc_service.proto` for both the coordinator's server and the
//! clients of the tests and the benchmark.
//!
//! Raw tensor contents are [`bytes::Bytes`]-backed (`prost::bytes::Bytes`),
//! so a request's tensors can be sliced without copies.

#![allow(missing_docs, clippy::all)]

/// Everything generated for package `inference`.
pub mod inference {
    tonic::include_proto!("inference");
}

pub use inference::grpc_inference_service_client::GrpcInferenceServiceClient;
pub use inference::grpc_inference_service_server::{GrpcInferenceService, GrpcInferenceServiceServer};
