//! The fronts' decoders, reachable from outside the crate for the fuzz
//! targets in `fuzz/`. Not an API: the fronts call them through their
//! handlers, and nothing else should.

pub use crate::grpc::config::model_config as grpc_model_config;
pub use crate::grpc::outline::{outline, InputOutline, RequestOutline};
pub use crate::grpc::precheck::check_outline;
pub use crate::grpc::tensors::to_infer_request;
pub use crate::http::codec::request::{parse as parse_http_request, OutputSelection, ParsedRequest};
pub use crate::http::codec::HEADER_LENGTH;
