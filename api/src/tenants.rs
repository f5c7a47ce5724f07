//! Tenants: the limits every key of a tenant shares, set and cleared by an
//! admin, and what is known of each tenant.

use crate::api_type;
use crate::KeyLimits;

api_type! {
    /// A tenant: its shared limits (each one left out is unlimited) and how
    /// many live keys it has.
    pub struct TenantInfo {
        /// The tenant's name.
        pub tenant: String,
        /// Limits that all its keys (and, for 'default' and 'anonymous', all
        /// callers with the shared token or none) draw from together.
        pub limits: KeyLimits,
        /// Its live keys.
        pub keys: u32
    }
}

api_type! {
    /// `GET /v1/tenants`.
    pub struct TenantList {
        /// Every tenant with a key or with limits, by name.
        pub tenants: Vec<TenantInfo>
    }
}
