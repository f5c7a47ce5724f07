//! A [`ServeError`] as a gRPC status: one code per kind, the same message
//! HTTP clients read.

use maas_serving::ServeError;
use tonic::{Code, Status};

/// The gRPC code for `error`.
pub fn code(error: &ServeError) -> Code {
    match error {
        ServeError::ModelNotFound { .. } | ServeError::VersionNotFound { .. } | ServeError::RouteNotFound(_) => {
            Code::NotFound
        }
        ServeError::InvalidRequest(_) => Code::InvalidArgument,
        ServeError::PayloadTooLarge { .. } | ServeError::Overloaded { .. } => Code::ResourceExhausted,
        ServeError::Unavailable(_) => Code::Unavailable,
        ServeError::Timeout { .. } => Code::DeadlineExceeded,
        ServeError::ModelFailed { .. } | ServeError::Internal(_) => Code::Internal,
        ServeError::Unauthorized(_) => Code::Unauthenticated,
        ServeError::Conflict(_) => Code::Aborted,
        ServeError::Forbidden(_) => Code::PermissionDenied,
        ServeError::RateLimited { .. } => Code::ResourceExhausted,
    }
}

/// `error` as the status a gRPC client receives.
pub fn status(error: ServeError) -> Status {
    Status::new(code(&error), error.to_string())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn every_kind_has_its_code_and_keeps_its_message() {
        let m = || "m".to_string();
        let cases = [
            (ServeError::ModelNotFound { model: m() }, Code::NotFound),
            (ServeError::VersionNotFound { model: m(), version: "9".into() }, Code::NotFound),
            (ServeError::RouteNotFound("x".into()), Code::NotFound),
            (ServeError::InvalidRequest("x".into()), Code::InvalidArgument),
            (ServeError::PayloadTooLarge { size: 2, limit: 1 }, Code::ResourceExhausted),
            (ServeError::Overloaded { model: m(), version: 1 }, Code::ResourceExhausted),
            (ServeError::Unavailable("x".into()), Code::Unavailable),
            (ServeError::Timeout { model: m(), version: 1, waited: Duration::from_millis(5) }, Code::DeadlineExceeded),
            (ServeError::ModelFailed { model: m(), message: "x".into() }, Code::Internal),
            (ServeError::Internal("x".into()), Code::Internal),
            (ServeError::Unauthorized("x".into()), Code::Unauthenticated),
            (ServeError::Conflict("x".into()), Code::Aborted),
            (ServeError::Forbidden("x".into()), Code::PermissionDenied),
            (ServeError::RateLimited { message: "x".into(), retry_after: 2 }, Code::ResourceExhausted),
        ];
        for (error, expected) in cases {
            let grpc = status(error.clone());
            assert_eq!((grpc.code(), grpc.message()), (expected, error.to_string().as_str()));
        }
    }
}
