//! The management API (`/v1`) and Triton's repository extension.
//!
//! ```text
//! PUT    /v1/artifacts                               upload a TorchScript file (streamed) -> sha256
//! GET    /v1/models                                  list models
//! GET    /v1/models/{m}                              describe a model and its versions
//! POST   /v1/models/{m}/versions                     publish a version {config, artifact: {sha256}, source?, parent?}
//! DELETE /v1/models/{m}/versions/{v}                 delete a version no alias or split uses
//! PUT    /v1/models/{m}/aliases/{a}                  point an alias at a version {version}
//! DELETE /v1/models/{m}/aliases/{a}                  remove an alias
//! POST   /v1/models/{m}/aliases/{a}/rollback         move an alias back to its previous target
//! PUT    /v1/models/{m}/split                        set the traffic split {split: [{version, weight}]}
//! GET    /v1/cluster                                 nodes with live load, leadership and placement
//! POST   /v1/cluster/nodes/{n}/drain                 ask a node to leave the cluster gracefully
//! GET    /v1/keys                                    tenants' API keys, without secrets
//! POST   /v1/keys                                    create a key {tenant, role, scope, limits?} -> the key, once
//! DELETE /v1/keys/{id}                               revoke a key
//! GET    /v1/tenants                                 tenants with keys or limits
//! PUT    /v1/tenants/{t}/limits                      set the limits all of a tenant's keys share
//! DELETE /v1/tenants/{t}/limits                      clear a tenant's limits
//! POST   /v2/repository/index                        Triton: every version and its state
//! POST   /v2/repository/models/{m}/load | unload     Triton: load or unload a model
//! ```
//!
//! Each route needs a role (`super::routes` says which): registry writes a
//! deployer's, views a viewer's, the cluster, keys and tenants an admin's.
//! `docs/openapi.yaml` documents them.

pub mod artifacts;
pub mod cluster;
pub mod keys;
pub mod models;
pub mod pipeline;
pub mod repository;
pub mod routing;
pub mod tenants;
pub mod version_state;

/// Parses a JSON body into `T`, naming what is wrong.
fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> maas_serving::error::ServeResult<T> {
    serde_json::from_slice(body)
        .map_err(|e| maas_serving::error::ServeError::InvalidRequest(format!("invalid request body: {e}")))
}
