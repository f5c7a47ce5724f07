//! API keys of tenants: created with a role, a scope and limits, listed
//! without their secret, revoked.

use crate::api_type;

api_type! {
    /// `POST /v1/keys`: a new key.
    pub struct KeyCreate {
        /// The tenant it belongs to (1 to 64 letters, digits, '-', '_', '.').
        pub tenant: String,
        /// admin, deployer, viewer or inference.
        pub role: String,
        /// Model name patterns it reaches, '*' for any run of characters.
        pub scope: Vec<String>,
        /// Its rate limits and quotas (none: unlimited).
        pub limits: Option<KeyLimits>,
        /// Priority of its requests that name none (1 is the highest).
        pub priority: Option<u32>,
        /// What the key is for.
        pub description: Option<String>
    }
}

api_type! {
    /// A key's or a tenant's limits; each one left out is unlimited.
    pub struct KeyLimits {
        /// Sustained requests per second (for the whole cluster).
        pub requests_per_second: Option<f64>,
        /// Requests at once above the rate (default: one second's worth).
        pub requests_burst: Option<f64>,
        /// Sustained rows per second (for the whole cluster).
        pub rows_per_second: Option<f64>,
        /// Rows at once above the rate (default: one second's worth).
        pub rows_burst: Option<f64>,
        /// Sustained prompt and generated tokens per minute of generative
        /// requests (for the whole cluster).
        pub tokens_per_minute: Option<f64>,
        /// Tokens at once above the rate (default: one minute's worth).
        pub tokens_burst: Option<f64>,
        /// Requests in flight at once, per coordinator.
        pub max_concurrent: Option<u32>,
        /// Largest request body, bytes.
        pub max_request_bytes: Option<u64>
    }
}

api_type! {
    /// A key as listed: everything but its secret.
    pub struct KeyInfo {
        /// Its public id, also the part of the key after 'maas_'.
        pub id: String,
        /// Its tenant.
        pub tenant: String,
        /// Its role.
        pub role: String,
        /// Model name patterns it reaches.
        pub scope: Vec<String>,
        /// Its limits.
        pub limits: KeyLimits,
        /// Default priority.
        pub priority: Option<u32>,
        /// What it is for.
        pub description: String,
        /// Created, seconds since the epoch.
        pub created_unix: u64
    }
}

api_type! {
    /// A new key: the secret, shown this once, and what it is.
    pub struct KeyIssued {
        /// The key; send it as 'Authorization: Bearer <key>'. It is not stored.
        pub key: String,
        /// The key's record.
        pub info: KeyInfo
    }
}

api_type! {
    /// `GET /v1/keys`.
    pub struct KeyList {
        /// Every live key, by tenant.
        pub keys: Vec<KeyInfo>
    }
}

api_type! {
    /// `DELETE /v1/keys/{id}`.
    pub struct KeyRevoked {
        /// The revoked key's id.
        pub id: String
    }
}
