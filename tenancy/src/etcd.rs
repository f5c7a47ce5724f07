//! Key records and tenant limits in etcd: one etcd key per record,
//! `<prefix>keys/<id>` and `<prefix>tenants/<tenant>`, as JSON, watched so
//! that every coordinator sees a new or revoked key, or a tenant's new
//! limits, at once.

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use async_trait::async_trait;
use etcd_client::{Client, Compare, CompareOp, GetOptions, Txn, TxnOp};
use tokio::sync::watch;

use crate::key::KeyRecord;
use crate::limits::Limits;
use crate::store::KeyStore;

/// Key records and tenant limits under an etcd prefix.
pub struct EtcdKeyStore {
    client: Client,
    keys: String,
    tenants: String,
    changes: watch::Receiver<u64>,
}

impl EtcdKeyStore {
    /// Keys under `<prefix>keys/`, tenant limits under `<prefix>tenants/`,
    /// both watched from now on.
    pub fn new(client: Client, prefix: &str) -> EtcdKeyStore {
        let keys = format!("{prefix}keys/");
        let tenants = format!("{prefix}tenants/");
        let (sender, changes) = watch::channel(0u64);
        maas_registry::watch_prefixes(client.clone(), vec![keys.clone(), tenants.clone()], sender, "keys and tenants");
        EtcdKeyStore { client, keys, tenants, changes }
    }

    /// Every value under `prefix`, by the rest of its etcd key.
    async fn read_all<T: serde::de::DeserializeOwned>(&self, prefix: &str, what: &str) -> Result<BTreeMap<String, T>> {
        let response = self
            .client
            .clone()
            .get(prefix, Some(GetOptions::new().with_prefix()))
            .await
            .with_context(|| format!("listing {what} in etcd"))?;
        response
            .kvs()
            .iter()
            .map(|kv| {
                let name = String::from_utf8_lossy(&kv.key()[prefix.len()..]).into_owned();
                let value = serde_json::from_slice(kv.value())
                    .with_context(|| format!("an unreadable record of {what} in etcd: {name}"))?;
                Ok((name, value))
            })
            .collect()
    }
}

#[async_trait]
impl KeyStore for EtcdKeyStore {
    async fn list(&self) -> Result<Vec<KeyRecord>> {
        Ok(self.read_all(&self.keys, "keys").await?.into_values().collect())
    }

    async fn create(&self, record: &KeyRecord) -> Result<()> {
        let key = format!("{}{}", self.keys, record.id);
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
            self.client.clone().delete(format!("{}{id}", self.keys), None).await.context("deleting a key in etcd")?;
        Ok(response.deleted() > 0)
    }

    async fn tenant_limits(&self) -> Result<BTreeMap<String, Limits>> {
        self.read_all(&self.tenants, "tenant limits").await
    }

    async fn set_tenant_limits(&self, tenant: &str, limits: Option<&Limits>) -> Result<bool> {
        let key = format!("{}{tenant}", self.tenants);
        let mut client = self.client.clone();
        let existed = match limits {
            Some(limits) => {
                let options = etcd_client::PutOptions::new().with_prev_key();
                let response = client
                    .put(key, serde_json::to_vec(limits)?, Some(options))
                    .await
                    .context("storing a tenant's limits in etcd")?;
                response.prev_key().is_some()
            }
            None => client.delete(key, None).await.context("deleting a tenant's limits in etcd")?.deleted() > 0,
        };
        Ok(existed)
    }

    fn changes(&self) -> watch::Receiver<u64> {
        self.changes.clone()
    }
}
