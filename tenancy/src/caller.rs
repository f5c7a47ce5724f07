//! Who sent a request, once its bearer token is known, and what it may do.

use std::sync::Arc;

use crate::key::KeyRecord;
use crate::limits::Limits;
use crate::role::{Action, Role};
use crate::Refusal;

/// The tenant of the bootstrap admin token.
pub const ADMIN_TENANT: &str = "admin";
/// The tenant of the shared inference token.
pub const SHARED_TENANT: &str = "default";
/// The tenant of requests without a token, where inference is open.
pub const ANONYMOUS_TENANT: &str = "anonymous";

/// The caller of one request.
#[derive(Debug, Clone)]
pub enum Caller {
    /// The bootstrap admin token: everything.
    Bootstrap,
    /// The shared inference token: inference on every model.
    SharedInference,
    /// No token, where inference is open: inference on every model.
    Anonymous,
    /// An API key.
    Key(Arc<KeyRecord>),
}

impl Caller {
    /// The caller's role.
    pub fn role(&self) -> Role {
        match self {
            Caller::Bootstrap => Role::Admin,
            Caller::SharedInference | Caller::Anonymous => Role::Inference,
            Caller::Key(key) => key.role,
        }
    }

    /// The tenant its use is counted against.
    pub fn tenant(&self) -> &str {
        match self {
            Caller::Bootstrap => ADMIN_TENANT,
            Caller::SharedInference => SHARED_TENANT,
            Caller::Anonymous => ANONYMOUS_TENANT,
            Caller::Key(key) => &key.tenant,
        }
    }

    /// The key, when the caller used one.
    pub fn key(&self) -> Option<&Arc<KeyRecord>> {
        match self {
            Caller::Key(key) => Some(key),
            _ => None,
        }
    }

    /// The key's limits, if any are set.
    pub fn limits(&self) -> Option<&Limits> {
        self.key().map(|key| &key.limits).filter(|limits| !limits.is_unlimited())
    }

    /// The priority of its requests that name none.
    pub fn default_priority(&self) -> Option<u32> {
        self.key().and_then(|key| key.priority)
    }

    /// Whether the caller's scope reaches `model`.
    pub fn sees(&self, model: &str) -> bool {
        match self {
            Caller::Key(key) => key.role == Role::Admin || key.scope.covers(model),
            _ => true,
        }
    }

    /// Admits the caller to `action`, on `model` when the action names one.
    pub fn permit(&self, action: Action, model: Option<&str>) -> Result<(), Refusal> {
        let role = self.role();
        if !role.allows(action) {
            return Err(Refusal::Forbidden(format!("a key with role '{role}' may not {action}")));
        }
        if let Some(model) = model {
            if !self.sees(model) {
                return Err(Refusal::Forbidden(format!("this key's scope does not reach model '{model}'")));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{issue, KeySpec};
    use crate::scope::Scope;

    fn key(role: Role, patterns: &[&str]) -> Caller {
        let scope = Scope::new(patterns.iter().map(|p| p.to_string()).collect()).unwrap();
        let spec = KeySpec {
            tenant: "t".into(),
            role,
            scope,
            limits: Limits::default(),
            priority: None,
            description: String::new(),
        };
        Caller::Key(Arc::new(issue(spec).unwrap().record))
    }

    #[test]
    fn a_scoped_key_reaches_its_models_only() {
        let caller = key(Role::Inference, &["a-*"]);
        assert!(caller.permit(Action::Infer, Some("a-1")).is_ok());
        assert!(matches!(caller.permit(Action::Infer, Some("b-1")), Err(Refusal::Forbidden(_))));
        assert!(matches!(caller.permit(Action::Deploy, Some("a-1")), Err(Refusal::Forbidden(_))));
        assert!(caller.permit(Action::Read, Some("a-1")).is_ok());
    }

    #[test]
    fn a_viewer_cannot_deploy_and_an_admin_key_reaches_everything() {
        let viewer = key(Role::Viewer, &["*"]);
        assert!(viewer.permit(Action::View, Some("x")).is_ok());
        assert!(viewer.permit(Action::Deploy, Some("x")).is_err());
        assert!(viewer.permit(Action::Infer, Some("x")).is_err());
        let admin = key(Role::Admin, &["narrow"]);
        assert!(admin.permit(Action::Administer, None).is_ok());
        assert!(admin.permit(Action::Deploy, Some("other")).is_ok());
    }

    #[test]
    fn shared_callers_infer_everywhere_and_administer_nothing() {
        for caller in [Caller::SharedInference, Caller::Anonymous] {
            assert!(caller.permit(Action::Infer, Some("any")).is_ok());
            assert!(caller.permit(Action::View, Some("any")).is_err());
            assert!(caller.permit(Action::Administer, None).is_err());
        }
        assert!(Caller::Bootstrap.permit(Action::Administer, None).is_ok());
    }
}
