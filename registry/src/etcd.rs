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
    /// Connects to `endpoints` and starts watching `prefix` (e.g. `/maas/v1/`).
    pub async fn connect(endpoints: &[String], prefix: &str) -> RegistryResult<EtcdStore> {
        let client = Client::connect(endpoints, None)
            .await
            .map_err(|e| backend(format!("connecting to etcd at {}: {e}", endpoints.join(","))))?;
        let prefix = prefix.to_string();
        let (sender, changes) = watch::channel(0u64);
        tokio::spawn(watch_prefix(client.clone(), format!("{prefix}models/"), sender));
        Ok(EtcdStore { client, prefix, changes })
    }

    /// The etcd client, for membership, placement and election.
    pub fn client(&self) -> Client {
        self.client.clone()
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

fn decode(bytes: &[u8], revision: i64) -> RegistryResult<StoredRecord> {
    let record = serde_json::from_slice(bytes).map_err(|e| backend(format!("unreadable model record: {e}")))?;
    Ok(StoredRecord { record, revision })
}

#[async_trait]
impl RecordStore for EtcdStore {
    async fn get(&self, model: &str) -> RegistryResult<Option<StoredRecord>> {
        let response = self.client.clone().get(self.key(model), None).await.map_err(|e| backend(e.to_string()))?;
        response.kvs().first().map(|kv| decode(kv.value(), kv.mod_revision())).transpose()
    }

    async fn list(&self) -> RegistryResult<Vec<StoredRecord>> {
        let response = self
            .client
            .clone()
            .get(format!("{}models/", self.prefix), Some(GetOptions::new().with_prefix()))
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
        let response = self.client.clone().txn(txn).await.map_err(|e| backend(e.to_string()))?;
        if !response.succeeded() {
            return Err(RegistryError::Conflict { model: record.name.clone() });
        }
        Ok(response.header().map(|h| h.revision()).unwrap_or_default())
    }

    async fn delete(&self, model: &str, expected: i64) -> RegistryResult<()> {
        let key = self.key(model);
        let txn = Txn::new()
            .when([Compare::mod_revision(key.clone(), CompareOp::Equal, expected)])
            .and_then([TxnOp::delete(key, None)]);
        let response = self.client.clone().txn(txn).await.map_err(|e| backend(e.to_string()))?;
        if !response.succeeded() {
            return Err(RegistryError::Conflict { model: model.to_string() });
        }
        Ok(())
    }

    fn changes(&self) -> watch::Receiver<u64> {
        self.changes.clone()
    }
}
