//! The storage contract behind the registry: records under compare-and-swap.

use async_trait::async_trait;
use tokio::sync::watch;

use crate::{ModelRecord, RegistryResult};

/// A record with the revision it was read at.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRecord {
    /// The record.
    pub record: ModelRecord,
    /// Its revision; writes compare against it.
    pub revision: i64,
}

/// Where model records live.
///
/// Implementations: [`crate::EtcdStore`] and [`crate::EmbeddedStore`], both
/// run through the same test suite ([`crate::testsuite`]).
#[async_trait]
pub trait RecordStore: Send + Sync {
    /// One record.
    async fn get(&self, model: &str) -> RegistryResult<Option<StoredRecord>>;

    /// Every record, ordered by name.
    async fn list(&self) -> RegistryResult<Vec<StoredRecord>>;

    /// Writes `record` if the stored revision is still `expected`
    /// (`None`: only if the model does not exist yet). Returns the new
    /// revision, or [`crate::RegistryError::Conflict`] and writes nothing.
    async fn put(&self, record: &ModelRecord, expected: Option<i64>) -> RegistryResult<i64>;

    /// Deletes the record if its revision is still `expected`.
    async fn delete(&self, model: &str, expected: i64) -> RegistryResult<()>;

    /// A counter that changes whenever any record changes, here or (for
    /// shared stores) in another process.
    fn changes(&self) -> watch::Receiver<u64>;
}
