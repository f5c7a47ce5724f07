//! Inference bodies: JSON and Triton's binary tensor extension.
//!
//! [`request::parse`] turns a body into an [`maas_serving::infer::InferRequest`]
//! plus the client's output choices; [`response::encode`] writes the
//! answer, with binary outputs after the JSON header where asked.
//! [`json_data`] converts tensor elements between JSON and raw bytes.

pub mod json_data;
pub mod request;
pub mod response;

/// The header giving the length of the JSON part of a binary body.
pub const HEADER_LENGTH: &str = "Inference-Header-Content-Length";
