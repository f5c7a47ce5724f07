//! Every gRPC method with the [`Access`] it needs, and the layer that
//! checks it.
//!
//! [`Authorized`] wraps the generated service: it reads the method from the
//! request path, admits the caller's `authorization: Bearer` metadata for
//! that method's access, and only then hands the call on, so no method
//! checks tokens itself. A method missing from [`METHODS`] is refused.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::{ready, Either, Ready};
use tonic::body::Body;
use tonic::server::NamedService;
use tonic::Status;

use crate::auth::{bearer_token, Access};
use crate::state::AppState;

/// Every method of `inference.GRPCInferenceService` and its access. The
/// shared-memory methods are open: they only ever answer UNIMPLEMENTED.
pub const METHODS: &[(&str, Access)] = &[
    ("ServerLive", Access::Open),
    ("ServerReady", Access::Open),
    ("ModelReady", Access::Open),
    ("ServerMetadata", Access::Open),
    ("ModelMetadata", Access::Open),
    ("ModelInfer", Access::Inference),
    ("ModelStreamInfer", Access::Inference),
    ("ModelConfig", Access::Open),
    ("ModelStatistics", Access::Inference),
    ("RepositoryIndex", Access::Admin),
    ("RepositoryModelLoad", Access::Admin),
    ("RepositoryModelUnload", Access::Admin),
    ("SystemSharedMemoryStatus", Access::Open),
    ("SystemSharedMemoryRegister", Access::Open),
    ("SystemSharedMemoryUnregister", Access::Open),
    ("CudaSharedMemoryStatus", Access::Open),
    ("CudaSharedMemoryRegister", Access::Open),
    ("CudaSharedMemoryUnregister", Access::Open),
];

/// The access `method` needs, if it is a method of the service.
pub fn access_of(method: &str) -> Option<Access> {
    METHODS.iter().find(|(name, _)| *name == method).map(|(_, access)| *access)
}

/// A gRPC service behind the access check of [`METHODS`].
#[derive(Clone)]
pub struct Authorized<S> {
    inner: S,
    state: Arc<AppState>,
}

impl<S> Authorized<S> {
    /// Wraps `inner`; tokens are checked against `state`'s.
    pub fn new(inner: S, state: Arc<AppState>) -> Self {
        Authorized { inner, state }
    }

    fn admit(&self, request: &http::Request<Body>) -> Result<(), Status> {
        let method = request.uri().path().rsplit('/').next().unwrap_or_default();
        let access = access_of(method).ok_or_else(|| Status::unimplemented(format!("no method '{method}'")))?;
        let token = request
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(bearer_token);
        self.state.tokens.admit(access, token).map_err(super::status::status)
    }
}

impl<S: NamedService> NamedService for Authorized<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> tower_service::Service<http::Request<Body>> for Authorized<S>
where
    S: tower_service::Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Either<S::Future, Ready<Result<http::Response<Body>, Infallible>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        match self.admit(&request) {
            Ok(()) => Either::Left(self.inner.call(request)),
            Err(status) => Either::Right(ready(Ok(status.into_http()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What each method must ask of its caller; a method added to the
    /// service or the table without a line here fails.
    const EXPECTED: &[(&str, Access)] = &[
        ("ServerLive", Access::Open),
        ("ServerReady", Access::Open),
        ("ModelReady", Access::Open),
        ("ServerMetadata", Access::Open),
        ("ModelMetadata", Access::Open),
        ("ModelConfig", Access::Open),
        ("ModelInfer", Access::Inference),
        ("ModelStreamInfer", Access::Inference),
        ("ModelStatistics", Access::Inference),
        ("RepositoryIndex", Access::Admin),
        ("RepositoryModelLoad", Access::Admin),
        ("RepositoryModelUnload", Access::Admin),
        ("SystemSharedMemoryStatus", Access::Open),
        ("SystemSharedMemoryRegister", Access::Open),
        ("SystemSharedMemoryUnregister", Access::Open),
        ("CudaSharedMemoryStatus", Access::Open),
        ("CudaSharedMemoryRegister", Access::Open),
        ("CudaSharedMemoryUnregister", Access::Open),
    ];

    /// The method names the service definition declares.
    fn declared_methods() -> Vec<String> {
        let proto = include_str!("../../../grpc/proto/grpc_service.proto");
        proto
            .lines()
            .filter_map(|line| line.trim().strip_prefix("rpc "))
            .map(|rest| rest.split('(').next().unwrap_or_default().trim().to_string())
            .collect()
    }

    #[test]
    fn every_declared_method_has_the_expected_access() {
        let declared = declared_methods();
        assert_eq!(declared.len(), 18, "the service definition changed: {declared:?}");
        for method in &declared {
            let expected = EXPECTED.iter().find(|(name, _)| name == method).map(|(_, access)| *access);
            assert!(expected.is_some(), "method {method} has no expected access in this test: add it");
            assert_eq!(access_of(method), expected, "{method}");
        }
        assert_eq!(METHODS.len(), declared.len(), "the table lists a method the service does not declare");
        assert_eq!(access_of("NoSuchMethod"), None);
    }
}
