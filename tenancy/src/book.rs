//! The keys and tenant limits a coordinator knows: a copy of the store's
//! records, refreshed whenever the store reports a change (an etcd watch,
//! so a key revoked or a limit set through any coordinator holds on all
//! within moments) and every few seconds besides.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use parking_lot::RwLock;

use crate::key::{check_tenant, id_of, issue, IssuedKey, KeyRecord, KeySpec};
use crate::limits::Limits;
use crate::store::KeyStore;

/// How often keys are reread even without a change notice.
const REFRESH_EVERY: Duration = Duration::from_secs(5);

/// The known keys, by id, and tenant limits, by tenant.
pub struct KeyBook {
    store: Arc<dyn KeyStore>,
    keys: RwLock<HashMap<String, Arc<KeyRecord>>>,
    tenants: RwLock<HashMap<String, Arc<Limits>>>,
}

impl KeyBook {
    /// A book over `store`, kept fresh by a task. When the store cannot be
    /// read yet (etcd still starting) the book starts empty, so keys are
    /// refused until the first read succeeds, which is retried at once.
    pub async fn open(store: Arc<dyn KeyStore>) -> Arc<KeyBook> {
        let book = Arc::new(KeyBook { store, keys: RwLock::new(HashMap::new()), tenants: RwLock::new(HashMap::new()) });
        let loaded = match book.refresh().await {
            Ok(()) => true,
            Err(error) => {
                tracing::warn!(error = format!("{error:#}"), "could not read the API keys yet; retrying");
                false
            }
        };
        tokio::spawn(keep_fresh(Arc::downgrade(&book), book.store.changes(), loaded));
        book
    }

    /// The record of `key`, if it is a live key.
    pub fn find(&self, key: &str) -> Option<Arc<KeyRecord>> {
        let id = id_of(key)?;
        let record = self.keys.read().get(id).cloned()?;
        record.matches(key).then_some(record)
    }

    /// Every live key.
    pub fn list(&self) -> Vec<Arc<KeyRecord>> {
        let mut keys: Vec<_> = self.keys.read().values().cloned().collect();
        keys.sort_by(|a, b| (&a.tenant, a.created_unix, &a.id).cmp(&(&b.tenant, b.created_unix, &b.id)));
        keys
    }

    /// Issues and stores a new key; the caller shows its text once.
    pub async fn create(&self, spec: KeySpec) -> Result<IssuedKey> {
        let issued = issue(spec).map_err(anyhow::Error::msg)?;
        self.store_issued(&issued).await?;
        Ok(issued)
    }

    /// Stores a key issued with [`issue`].
    pub async fn store_issued(&self, issued: &IssuedKey) -> Result<()> {
        self.store.create(&issued.record).await?;
        self.refresh().await
    }

    /// Revokes key `id`; whether it existed.
    pub async fn revoke(&self, id: &str) -> Result<bool> {
        let existed = self.store.delete(id).await?;
        self.refresh().await?;
        Ok(existed)
    }

    /// The limits of `tenant`, if it has any.
    pub fn tenant_limits(&self, tenant: &str) -> Option<Arc<Limits>> {
        self.tenants.read().get(tenant).cloned()
    }

    /// Every tenant with limits, by name.
    pub fn all_tenant_limits(&self) -> Vec<(String, Arc<Limits>)> {
        let mut tenants: Vec<_> = self.tenants.read().iter().map(|(t, l)| (t.clone(), l.clone())).collect();
        tenants.sort_by(|a, b| a.0.cmp(&b.0));
        tenants
    }

    /// Sets (or with `None` clears) the limits every key of `tenant`
    /// shares; whether it had limits before.
    pub async fn set_tenant_limits(&self, tenant: &str, limits: Option<Limits>) -> Result<bool> {
        check_tenant(tenant).map_err(anyhow::Error::msg)?;
        if let Some(limits) = &limits {
            limits.check().map_err(anyhow::Error::msg)?;
        }
        let existed = self.store.set_tenant_limits(tenant, limits.as_ref()).await?;
        self.refresh().await?;
        Ok(existed)
    }

    async fn refresh(&self) -> Result<()> {
        let records = self.store.list().await?;
        let tenants = self.store.tenant_limits().await?;
        let keys = records.into_iter().map(|record| (record.id.clone(), Arc::new(record))).collect();
        *self.keys.write() = keys;
        *self.tenants.write() = tenants.into_iter().map(|(tenant, limits)| (tenant, Arc::new(limits))).collect();
        Ok(())
    }
}

async fn keep_fresh(book: std::sync::Weak<KeyBook>, mut changes: tokio::sync::watch::Receiver<u64>, mut loaded: bool) {
    loop {
        let wait = if loaded { REFRESH_EVERY } else { Duration::from_millis(250) };
        let changed = tokio::time::timeout(wait, changes.changed()).await;
        if matches!(changed, Ok(Err(_))) {
            // The store is gone; keep the periodic reread only.
            tokio::time::sleep(REFRESH_EVERY).await;
        }
        let Some(book) = book.upgrade() else { return };
        match book.refresh().await {
            Ok(()) => loaded = true,
            Err(error) => tracing::warn!(%error, "could not reread the keys; keeping the ones known"),
        }
    }
}
