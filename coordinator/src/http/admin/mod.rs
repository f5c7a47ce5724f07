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
//! POST   /v2/repository/index                        Triton: every version and its state
//! POST   /v2/repository/models/{m}/load | unload     Triton: load or unload a model
//! ```
//!
//! Every route needs the admin token. `docs/openapi.yaml` documents them.

mod artifacts;
mod cluster;
mod models;
pub use models::respond;
mod repository;
mod routing;

use actix_web::web;

/// Adds the management routes.
pub fn routes(config: &mut web::ServiceConfig) {
    config
        .route("/v1/artifacts", web::put().to(artifacts::upload))
        .route("/v1/cluster", web::get().to(cluster::status))
        .route("/v1/cluster/nodes/{node}/drain", web::post().to(cluster::drain))
        .route("/v1/models", web::get().to(models::list))
        .route("/v1/models/{model}", web::get().to(models::describe))
        .route("/v1/models/{model}/versions", web::post().to(models::publish))
        .route("/v1/models/{model}/versions/{version}", web::delete().to(models::delete_version))
        .route("/v1/models/{model}/aliases/{alias}", web::put().to(routing::set_alias))
        .route("/v1/models/{model}/aliases/{alias}", web::delete().to(routing::delete_alias))
        .route("/v1/models/{model}/aliases/{alias}/rollback", web::post().to(routing::rollback))
        .route("/v1/models/{model}/split", web::put().to(routing::set_split))
        .route("/v2/repository/index", web::post().to(repository::index))
        .route("/v2/repository/models/{model}/load", web::post().to(repository::load))
        .route("/v2/repository/models/{model}/unload", web::post().to(repository::unload));
}

/// Parses a JSON body into `T`, naming what is wrong.
fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> crate::error::ServeResult<T> {
    serde_json::from_slice(body).map_err(|e| crate::error::ServeError::InvalidRequest(format!("invalid request body: {e}")))
}
