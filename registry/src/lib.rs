//! The maas model registry and artifact store.
//!
//! A [`ModelRecord`] per model holds its immutable versions (configuration,
//! artifact digest, lineage), its aliases with their history, its traffic
//! split and whether it is loaded. Records live in a [`RecordStore`]: etcd
//! ([`EtcdStore`]) for clusters, or one file ([`EmbeddedStore`]) for a
//! single machine. Every write is compare-and-swap on the record's revision,
//! so two writers racing on a model never lose an update: the loser gets
//! [`RegistryError::Conflict`]. [`Registry`] implements the operations
//! (publish, alias, split, rollback, delete) once, on any store.
//!
//! Artifacts (TorchScript files) are stored by their sha256 in an
//! [`ArtifactStore`]; identical uploads are stored once.

mod artifacts;
mod embedded;
mod error;
mod etcd;
mod etcd_access;
mod ops;
mod record;
mod store;
#[cfg(any(test, feature = "testsuite"))]
pub mod testsuite;
mod watch;

pub use etcd_client;

pub use artifacts::{check_digest, ArtifactStore, StoredArtifact, UploadSink};
pub use embedded::EmbeddedStore;
pub use error::{RegistryError, RegistryResult};
pub use etcd::EtcdStore;
pub use etcd_access::EtcdAccess;
pub use ops::Registry;
pub use record::{AliasRecord, ArtifactRef, EngineKey, Lineage, ModelRecord, SplitEntry, VersionRecord};
pub use store::{RecordStore, StoredRecord};
pub use watch::watch_prefixes;
