//! Tenants of a maas cluster: who a request comes from and what it may do.
//!
//! An API key ([`key`]) belongs to a tenant, carries a [`Role`] and a
//! [`Scope`] of model name patterns, and may carry [`Limits`]. Keys are
//! stored as hashes in a [`KeyStore`] (etcd, or a file on one machine) and
//! cached by a [`KeyBook`] that follows the store's changes. A [`Gate`]
//! turns a bearer token into a [`Caller`], which admits or refuses each
//! [`Action`]; a [`Limiter`] enforces the rates and quotas of the key and
//! of its tenant (every key of a tenant shares the tenant's limits), and a
//! [`usage::UsageMeter`] counts what each tenant used.

mod book;
mod caller;
mod etcd;
mod gate;
mod key;
mod limiter;
mod limits;
mod role;
mod scope;
mod store;
pub mod usage;

use std::time::Duration;

pub use book::KeyBook;
pub use caller::{Caller, Identity, ADMIN_TENANT, ANONYMOUS_TENANT, SHARED_TENANT};
pub use etcd::EtcdKeyStore;
pub use gate::Gate;
pub use key::{check_tenant, id_of, issue, IssuedKey, KeyRecord, KeySpec};
pub use limiter::{Admission, Limiter};
pub use limits::Limits;
pub use role::{Action, Role};
pub use scope::Scope;
pub use store::{FileKeyStore, KeyStore};

/// Why a caller is turned away.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refusal {
    /// No token, or one that is no live key (401).
    #[error("{0}")]
    Unauthenticated(String),
    /// A known caller without the role or scope (403).
    #[error("{0}")]
    Forbidden(String),
    /// Over a rate limit or quota (429), with when to try again.
    #[error("{message}")]
    Limited {
        /// What limit.
        message: String,
        /// When a retry may pass.
        retry_after: Duration,
    },
}
