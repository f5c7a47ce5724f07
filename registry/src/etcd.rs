//! The registry in etcd.
//!
//! Each model is one key, `<prefix>models/<name>`, holding its
//! [`ModelRecord`] as JSON. Writes are transactions that compare the key's
//! mod revision (or, for a new model, its create revision with 0), so a
//! writer holding a stale record fails with a conflict instead of
//! overwriting. A watch on the prefix feeds [`RecordStore::changes`].

use std::time::Duration;

use async_trait::async_trait;
use etcd_client::{Client, Compare, CompareOp, GetOptions, Txn, TxnOp, WatchOptions};
use tokio::sync::watch;

use crate::{ModelRecord, RecordStore, RegistryError, RegistryResult, StoredRecord};

/// An etcd-backed store.
pub struct EtcdStore {
    client: Client,
    prefix: String,
    changes: watch::Receiver<u64>,
}

impl EtcdStore {
    /// Connects to `endpoints` without TLS or a user and starts watching
    /// `prefix` (e.g. `/maas/v1/`).
    pub async fn connect(endpoints: &[String], prefix: &str) -> RegistryResult<EtcdStore> {
        let client =
            crate::EtcdAccess::plain(endpoints, prefix).connect().await.map_err(|e| backend(format!("{e:#}")))?;
        Ok(EtcdStore::open(client, prefix))
    }

    /// Uses a connected client and starts watching `prefix`.
    pub fn open(client: Client, prefix: &str) -> EtcdStore {
        let prefix = prefix.to_string();
        let (sender, changes) = watch::channel(0u64);
        tokio::spawn(watch_prefix(client.clone(), format!("{prefix}models/"), sender));
        EtcdStore { client, prefix, changes }
    }

    /// The etcd client, for membership, placement and election.
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// Runs a guarded transaction on `model`'s key; returns the new
    /// revision, or a conflict when the guard failed.
    async fn compare_and_swap(&self, model: &str, txn: Txn) -> RegistryResult<i64> {
        let response = retrying(|| {
            let mut client = self.client.clone();
            let txn = txn.clone();
            async move { client.txn(txn).await }
        })
        .await
        .map_err(|e| backend(e.to_string()))?;
        if !response.succeeded() {
            return Err(RegistryError::Conflict { model: model.to_string() });
        }
        Ok(response.header().map(|h| h.revision()).unwrap_or_default())
    }

    fn key(&self, model: &str) -> String {
        format!("{}models/{model}", self.prefix)
    }
}

async fn watch_prefix(mut client: Client, prefix: String, sender: watch::Sender<u64>) {
    loop {
        match client.watch(prefix.clone(), Some(WatchOptions::new().with_prefix())).await {
            Ok(mut stream) => {
                // Anything may have changed while the watch was down.
                sender.send_modify(|n| *n += 1);
                loop {
                    match stream.message().await {
                        Ok(Some(response)) if !response.events().is_empty() => sender.send_modify(|n| *n += 1),
                        Ok(Some(_)) => {}
                        Ok(None) => break,
                        Err(error) => {
                            tracing::warn!(%error, "etcd watch failed; restarting it");
                            break;
                        }
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "could not watch etcd; retrying"),
        }
        if sender.is_closed() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn backend(message: String) -> RegistryError {
    RegistryError::Backend(message)
}

/// Runs an etcd call, retrying transport failures a few times: with several
/// endpoints, a call that reached a dead member goes to another on retry. A
/// compare-and-swap retried after an unseen success fails its comparison,
/// so nothing is applied twice.
async fn retrying<T, F, Fut>(mut call: F) -> Result<T, etcd_client::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, etcd_client::Error>>,
{
    let mut attempt = 0;
    loop {
        match call().await {
            Err(error) if attempt < 5 && is_transient(&error) => {
                attempt += 1;
                tracing::debug!(%error, attempt, "etcd call failed; retrying");
                tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
            }
            result => return result,
        }
    }
}

fn is_transient(error: &etcd_client::Error) -> bool {
    match error {
        etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => true,
        etcd_client::Error::GRpcStatus(status) => {
            matches!(status.code(), tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Unknown)
        }
        _ => false,
    }
}

fn decode(bytes: &[u8], revision: i64) -> RegistryResult<StoredRecord> {
    let record = serde_json::from_slice(bytes).map_err(|e| backend(format!("unreadable model record: {e}")))?;
    Ok(StoredRecord { record, revision })
}

#[async_trait]
impl RecordStore for EtcdStore {
    async fn get(&self, model: &str) -> RegistryResult<Option<StoredRecord>> {
        let key = self.key(model);
        let response = retrying(|| {
            let mut client = self.client.clone();
            let key = key.clone();
            async move { client.get(key, None).await }
        })
        .await
        .map_err(|e| backend(e.to_string()))?;
        response.kvs().first().map(|kv| decode(kv.value(), kv.mod_revision())).transpose()
    }

    async fn list(&self) -> RegistryResult<Vec<StoredRecord>> {
        let prefix = format!("{}models/", self.prefix);
        let response = retrying(|| {
            let mut client = self.client.clone();
            let prefix = prefix.clone();
            async move { client.get(prefix, Some(GetOptions::new().with_prefix())).await }
        })
        .await
        .map_err(|e| backend(e.to_string()))?;
        response.kvs().iter().map(|kv| decode(kv.value(), kv.mod_revision())).collect()
    }

    async fn put(&self, record: &ModelRecord, expected: Option<i64>) -> RegistryResult<i64> {
        let key = self.key(&record.name);
        let value = serde_json::to_vec(record).map_err(|e| backend(e.to_string()))?;
        let compare = match expected {
            None => Compare::create_revision(key.clone(), CompareOp::Equal, 0),
            Some(revision) => Compare::mod_revision(key.clone(), CompareOp::Equal, revision),
        };
        let txn = Txn::new().when([compare]).and_then([TxnOp::put(key, value, None)]);
        self.compare_and_swap(&record.name, txn).await
    }

    async fn delete(&self, model: &str, expected: i64) -> RegistryResult<()> {
        let key = self.key(model);
        let txn = Txn::new()
            .when([Compare::mod_revision(key.clone(), CompareOp::Equal, expected)])
            .and_then([TxnOp::delete(key, None)]);
        self.compare_and_swap(model, txn).await.map(|_| ())
    }

    fn changes(&self) -> watch::Receiver<u64> {
        self.changes.clone()
    }
}
