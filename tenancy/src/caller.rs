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

/// What credential a request came with.
#[derive(Debug, Clone)]
pub enum Identity {
    /// The bootstrap admin token: everything.
    Bootstrap,
    /// The shared inference token: inference on every model.
    SharedInference,
    /// No token, where inference is open: inference on every model.
    Anonymous,
    /// An API key.
    Key(Arc<KeyRecord>),
}

/// The caller of one request: its identity and, when its tenant has
/// limits, those (shared by every key of the tenant).
#[derive(Debug, Clone)]
pub struct Caller {
    identity: Identity,
    tenant_limits: Option<Arc<Limits>>,
}

impl From<Identity> for Caller {
    fn from(identity: Identity) -> Caller {
        Caller { identity, tenant_limits: None }
    }
}

impl Caller {
    /// A caller of `key`, without tenant limits.
    pub fn of_key(key: Arc<KeyRecord>) -> Caller {
        Caller::from(Identity::Key(key))
    }

    /// The caller with its tenant's limits.
    pub fn with_tenant_limits(mut self, limits: Option<Arc<Limits>>) -> Caller {
        self.tenant_limits = limits.filter(|limits| !limits.is_unlimited());
        self
    }

    /// Whether it came without a token.
    pub fn is_anonymous(&self) -> bool {
        matches!(self.identity, Identity::Anonymous)
    }

    /// The caller's role.
    pub fn role(&self) -> Role {
        match &self.identity {
            Identity::Bootstrap => Role::Admin,
            Identity::SharedInference | Identity::Anonymous => Role::Inference,
            Identity::Key(key) => key.role,
        }
    }

    /// The tenant its use is counted against.
    pub fn tenant(&self) -> &str {
        match &self.identity {
            Identity::Bootstrap => ADMIN_TENANT,
            Identity::SharedInference => SHARED_TENANT,
            Identity::Anonymous => ANONYMOUS_TENANT,
            Identity::Key(key) => &key.tenant,
        }
    }

    /// The key, when the caller used one.
    pub fn key(&self) -> Option<&Arc<KeyRecord>> {
        match &self.identity {
            Identity::Key(key) => Some(key),
            _ => None,
        }
    }

    /// The key's limits, if any are set.
    pub fn limits(&self) -> Option<&Limits> {
        self.key().map(|key| &key.limits).filter(|limits| !limits.is_unlimited())
    }

    /// The tenant's limits, if any are set.
    pub fn tenant_limits(&self) -> Option<&Limits> {
        self.tenant_limits.as_deref()
    }

    /// The largest request it may send: the smaller of its key's and its
    /// tenant's, if either is set.
    pub fn max_request_bytes(&self) -> Option<u64> {
        let key = self.limits().and_then(|limits| limits.max_request_bytes);
        let tenant = self.tenant_limits().and_then(|limits| limits.max_request_bytes);
        key.into_iter().chain(tenant).min()
    }

    /// The priority of its requests that name none.
    pub fn default_priority(&self) -> Option<u32> {
        self.key().and_then(|key| key.priority)
    }

    /// Whether the caller's scope reaches `model`.
    pub fn sees(&self, model: &str) -> bool {
        match &self.identity {
            Identity::Key(key) => key.role == Role::Admin || key.scope.covers(model),
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

    fn key_with(role: Role, patterns: &[&str], limits: Limits) -> Caller {
        let scope = Scope::new(patterns.iter().map(|p| p.to_string()).collect()).unwrap();
        let spec = KeySpec { tenant: "t".into(), role, scope, limits, priority: None, description: String::new() };
        Caller::of_key(Arc::new(issue(spec).unwrap().record))
    }

    fn key(role: Role, patterns: &[&str]) -> Caller {
        key_with(role, patterns, Limits::default())
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
        for identity in [Identity::SharedInference, Identity::Anonymous] {
            let caller = Caller::from(identity);
            assert!(caller.permit(Action::Infer, Some("any")).is_ok());
            assert!(caller.permit(Action::View, Some("any")).is_err());
            assert!(caller.permit(Action::Administer, None).is_err());
        }
        assert!(Caller::from(Identity::Bootstrap).permit(Action::Administer, None).is_ok());
    }

    #[test]
    fn the_largest_request_is_the_smaller_of_the_key_and_tenant_limits() {
        let bytes = |n| Limits { max_request_bytes: Some(n), ..Limits::default() };
        assert_eq!(key(Role::Inference, &["*"]).max_request_bytes(), None);
        let keyed = key_with(Role::Inference, &["*"], bytes(1000));
        assert_eq!(keyed.max_request_bytes(), Some(1000));
        assert_eq!(keyed.clone().with_tenant_limits(Some(Arc::new(bytes(500)))).max_request_bytes(), Some(500));
        assert_eq!(keyed.with_tenant_limits(Some(Arc::new(bytes(5000)))).max_request_bytes(), Some(1000));
        let anonymous = Caller::from(Identity::Anonymous).with_tenant_limits(Some(Arc::new(bytes(64))));
        assert_eq!(anonymous.max_request_bytes(), Some(64));
        let unlimited = Caller::from(Identity::Anonymous).with_tenant_limits(Some(Arc::new(Limits::default())));
        assert!(unlimited.tenant_limits().is_none(), "empty limits are no limits");
    }
}
