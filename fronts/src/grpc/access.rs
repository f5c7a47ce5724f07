//! Every gRPC method with the [`Access`] it needs, and the layer that
//! checks it.
//!
//! [`Authorized`] wraps the generated service: it reads the method from the
//! request path, admits the caller's `authorization: Bearer` metadata for
//! that method's role, puts the [`Caller`] in the request's extensions and
//! only then hands the call on, so no method checks tokens itself. A method
//! missing from [`METHODS`] is refused. A gRPC request carries its model in
//! the message, not the path, so the model scope is checked where the
//! message is read: by `Inference::serve` for inference, and by
//! [`permit_model`] in the other model methods.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::{ready, Either, Ready};
use tonic::body::Body;
use tonic::server::NamedService;
use tonic::Status;

use super::precheck::PrecheckedBody;
use crate::auth::{self, bearer_token, Access};
use crate::state::AppState;
use maas_tenancy::Caller;

/// Every method of `inference.GRPCInferenceService` and its access. The
/// shared-memory methods are open: they only ever answer UNIMPLEMENTED.
pub const METHODS: &[(&str, Access)] = &[
    ("ServerLive", Access::Open),
    ("ServerReady", Access::Open),
    ("ModelReady", Access::Read),
    ("ServerMetadata", Access::Open),
    ("ModelMetadata", Access::Read),
    ("ModelInfer", Access::Infer),
    ("ModelStreamInfer", Access::Infer),
    ("ModelConfig", Access::Read),
    ("ModelStatistics", Access::Read),
    ("RepositoryIndex", Access::View),
    ("RepositoryModelLoad", Access::Deploy),
    ("RepositoryModelUnload", Access::Deploy),
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

/// Admits the request's caller (put there by [`Authorized`]) to `access` on
/// `model`.
pub fn permit_model<T>(request: &tonic::Request<T>, access: Access, model: &str) -> Result<Caller, Status> {
    let caller = request
        .extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| Status::internal("the access layer admitted no caller"))?;
    if let Some(action) = access.action() {
        caller
            .permit(action, (!model.is_empty()).then_some(model))
            .map_err(|refusal| super::status::status(refusal.into()))?;
    }
    Ok(caller)
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

    fn admit(&self, request: &http::Request<Body>) -> Result<Caller, Status> {
        let method = request.uri().path().rsplit('/').next().unwrap_or_default();
        let access = access_of(method).ok_or_else(|| Status::unimplemented(format!("no method '{method}'")))?;
        let token = request
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(bearer_token);
        auth::admit(&self.state.gate, access, token, None).map_err(super::status::status)
    }
}

/// Whether `path` is an inference method, whose messages are checked
/// against the model before they are decoded.
fn is_inference(path: &str) -> bool {
    matches!(path.rsplit('/').next(), Some("ModelInfer" | "ModelStreamInfer"))
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

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        match self.admit(&request) {
            Ok(caller) => {
                if is_inference(request.uri().path()) {
                    let limit = auth::body_limit(&caller, self.state.max_body_bytes);
                    let state = self.state.clone();
                    request = request.map(|body| Body::new(PrecheckedBody::new(body, state, limit)));
                }
                request.extensions_mut().insert(caller);
                Either::Left(self.inner.call(request))
            }
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
        ("ModelReady", Access::Read),
        ("ServerMetadata", Access::Open),
        ("ModelMetadata", Access::Read),
        ("ModelConfig", Access::Read),
        ("ModelInfer", Access::Infer),
        ("ModelStreamInfer", Access::Infer),
        ("ModelStatistics", Access::Read),
        ("RepositoryIndex", Access::View),
        ("RepositoryModelLoad", Access::Deploy),
        ("RepositoryModelUnload", Access::Deploy),
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
