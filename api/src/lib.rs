//! The management API's types, shared by the coordinator that answers and
//! the `maas` CLI that asks, so both read the same fields by name and type.
//!
//! Each type is declared with [`api_type!`], which also derives its OpenAPI
//! schema; [`openapi::components`] lists them, and `docs/openapi.yaml`
//! carries them between its generated-section markers (a test in this crate
//! fails when the file and the types disagree, and rewrites the section
//! when `MAAS_WRITE_OPENAPI=1`).

pub mod cluster;
pub mod console;
pub mod keys;
pub mod models;
pub mod monitoring;
pub mod openapi;
pub mod schema;
pub mod tenants;

pub use cluster::{ClusterStatus, Draining, EtcdHealth, ModelQueue, NodeLink, NodeLoad};
pub use console::{ConsoleTick, ConsoleVersion, InputDriftScore, Whoami};
pub use keys::{KeyCreate, KeyInfo, KeyIssued, KeyLimits, KeyList, KeyRevoked};
pub use models::{
    AliasDeleted, AliasRequest, AliasSet, AliasState, Artifact, ArtifactName, ArtifactStored, Lineage, ListedModel,
    ModelDetail, ModelList, ModelSummary, PublishRequest, Published, RolledBack, SplitEntry, SplitRequest, SplitSet,
    VersionDeleted, VersionDetail, VersionState,
};
pub use monitoring::{
    Alert, AlertList, Evaluation, FeedbackCounts, LiveStatus, LiveVersion, UsageLine, UsageReport, VersionScores,
};
pub use tenants::{TenantInfo, TenantList};
