//! Who a bearer token is: the bootstrap admin token, the shared inference
//! token, an API key, or nobody; and whether nobody may infer.

use std::sync::Arc;

use maas_process::same_secret;

use crate::book::KeyBook;
use crate::caller::{Caller, Identity};
use crate::Refusal;

/// The tokens and keys a coordinator accepts.
pub struct Gate {
    admin: String,
    shared_inference: Option<String>,
    open_inference: bool,
    metrics: Option<String>,
    keys: Arc<KeyBook>,
}

impl Gate {
    /// A gate for the bootstrap `admin` token, an optional shared inference
    /// token and the keys of `keys`. Requests without a token may infer
    /// only when `open_inference` (and no shared inference token is set).
    pub fn new(admin: String, shared_inference: Option<String>, open_inference: bool, keys: Arc<KeyBook>) -> Gate {
        let open_inference = open_inference && shared_inference.is_none();
        Gate { admin, shared_inference, open_inference, metrics: None, keys }
    }

    /// Asks scrapers of `/metrics` for `token` (or an admin's).
    pub fn with_metrics_token(mut self, token: Option<String>) -> Gate {
        self.metrics = token;
        self
    }

    /// Whether `token` may read the metrics: anyone when no metrics token
    /// is set, else the metrics token or an admin.
    pub fn admits_scraper(&self, token: Option<&str>) -> Result<(), Refusal> {
        let Some(expected) = &self.metrics else { return Ok(()) };
        match token {
            Some(token) if same_secret(token, expected) => Ok(()),
            Some(token) if self.identify(Some(token)).is_ok_and(|c| c.role() == crate::Role::Admin) => Ok(()),
            _ => Err(Refusal::Unauthenticated(
                "/metrics needs the metrics token: send 'Authorization: Bearer <token>'".into(),
            )),
        }
    }

    /// The keys.
    pub fn keys(&self) -> &Arc<KeyBook> {
        &self.keys
    }

    /// Whether requests without a token may infer.
    pub fn inference_is_open(&self) -> bool {
        self.open_inference
    }

    /// The caller a request's bearer `token` (if any) stands for, with its
    /// tenant's limits.
    pub fn identify(&self, token: Option<&str>) -> Result<Caller, Refusal> {
        let identity = self.identity(token)?;
        Ok(self.with_tenant_limits(identity))
    }

    /// The caller of a request without a (known) token, on routes open to
    /// anyone.
    pub fn anonymous(&self) -> Caller {
        self.with_tenant_limits(Identity::Anonymous)
    }

    fn with_tenant_limits(&self, identity: Identity) -> Caller {
        let caller = Caller::from(identity);
        let limits = self.keys.tenant_limits(caller.tenant());
        caller.with_tenant_limits(limits)
    }

    fn identity(&self, token: Option<&str>) -> Result<Identity, Refusal> {
        let Some(token) = token else {
            return if self.open_inference {
                Ok(Identity::Anonymous)
            } else {
                Err(Refusal::Unauthenticated("this needs a key or token: send 'Authorization: Bearer <key>'".into()))
            };
        };
        if same_secret(token, &self.admin) {
            return Ok(Identity::Bootstrap);
        }
        if self.shared_inference.as_deref().is_some_and(|shared| same_secret(token, shared)) {
            return Ok(Identity::SharedInference);
        }
        match self.keys.find(token) {
            Some(key) => Ok(Identity::Key(key)),
            None => Err(Refusal::Unauthenticated("the bearer token is not a known or live key".into())),
        }
    }
}
