//! Key records in etcd: one key per record, `<prefix>keys/<id>`, as JSON,
//! watched so that every coordinator sees a new or revoked key at once.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use async_trait::async_trait;
use etcd_client::{Client, Compare, CompareOp, GetOptions, Txn, TxnOp, WatchOptions};
use tokio::sync::watch;

use crate::key::KeyRecord;
use crate::store::KeyStore;

/// Key records under an etcd prefix.
pub struct EtcdKeyStore {
    client: Client,
    prefix: String,
    changes: watch::Receiver<u64>,
}

impl EtcdKeyStore {
    /// Keys under `<prefix>keys/`, watched from now on.
    pub fn new(client: Client, prefix: &str) -> EtcdKeyStore {
        let prefix = format!("{prefix}keys/");
        let (sender, changes) = watch::channel(0u64);
        tokio::spawn(watch_keys(client.clone(), prefix.clone(), sender));
        EtcdKeyStore { client, prefix, changes }
    }
}

async fn watch_keys(mut client: Client, prefix: String, sender: watch::Sender<u64>) {
    loop {
        match client.watch(prefix.clone(), Some(WatchOptions::new().with_prefix())).await {
            Ok(mut stream) => {
                // Anything may have changed while no watch was up.
                sender.send_modify(|n| *n += 1);
                loop {
                    match stream.message().await {
                        Ok(Some(response)) if !response.events().is_empty() => sender.send_modify(|n| *n += 1),
                        Ok(Some(_)) => {}
                        Ok(None) => break,
                        Err(error) => {
                            tracing::warn!(%error, "the etcd watch on keys failed; restarting it");
                            break;
                        }
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "could not watch keys in etcd; retrying"),
        }
        if sender.is_closed() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[async_trait]
impl KeyStore for EtcdKeyStore {
    async fn list(&self) -> Result<Vec<KeyRecord>> {
        let mut client = self.client.clone();
        let response = client
            .get(self.prefix.clone(), Some(GetOptions::new().with_prefix()))
            .await
            .context("listing keys in etcd")?;
        response
            .kvs()
            .iter()
            .map(|kv| serde_json::from_slice(kv.value()).context("an unreadable key record in etcd"))
            .collect()
    }

    async fn create(&self, record: &KeyRecord) -> Result<()> {
        let key = format!("{}{}", self.prefix, record.id);
        let txn = Txn::new().when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)]).and_then([TxnOp::put(
            key,
            serde_json::to_vec(record)?,
            None,
        )]);
        let response = self.client.clone().txn(txn).await.context("storing a key in etcd")?;
        if !response.succeeded() {
            bail!("key id {} is taken", record.id);
        }
        Ok(())
    }

    async fn delete(&self, id: &str) -> Result<bool> {
        let response =
            self.client.clone().delete(format!("{}{id}", self.prefix), None).await.context("deleting a key in etcd")?;
        Ok(response.deleted() > 0)
    }

    fn changes(&self) -> watch::Receiver<u64> {
        self.changes.clone()
    }
}
