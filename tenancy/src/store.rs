//! Where key records and tenants' limits live: etcd for clusters
//! ([`EtcdKeyStore`]), files for one machine ([`FileKeyStore`]). Both
//! notify [`KeyStore::changes`] on every change, the etcd one on changes
//! made by any coordinator.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use async_trait::async_trait;
use parking_lot::Mutex;
use tokio::sync::watch;

use crate::key::KeyRecord;
use crate::limits::Limits;

/// The storage of key records and tenant limits.
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// Every key, by id.
    async fn list(&self) -> Result<Vec<KeyRecord>>;

    /// Stores a new key; fails if its id is taken.
    async fn create(&self, record: &KeyRecord) -> Result<()>;

    /// Deletes a key; whether it existed.
    async fn delete(&self, id: &str) -> Result<bool>;

    /// Every tenant's limits, by tenant.
    async fn tenant_limits(&self) -> Result<BTreeMap<String, Limits>>;

    /// Sets a tenant's limits, or clears them (`None`); whether the tenant
    /// had limits before.
    async fn set_tenant_limits(&self, tenant: &str, limits: Option<&Limits>) -> Result<bool>;

    /// A counter that moves whenever any key or tenant limit changes.
    fn changes(&self) -> watch::Receiver<u64>;
}

/// Keys in `<dir>/keys.json` and tenants' limits in `<dir>/tenants.json`,
/// each rewritten atomically on each change.
pub struct FileKeyStore {
    keys: JsonFile<KeyRecord>,
    tenants: JsonFile<Limits>,
    changes: watch::Sender<u64>,
}

impl FileKeyStore {
    /// Opens (or starts) the files in `dir`.
    pub fn open(dir: &Path) -> Result<FileKeyStore> {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let (changes, _) = watch::channel(0);
        Ok(FileKeyStore {
            keys: JsonFile::open(dir.join("keys.json"), "a key file")?,
            tenants: JsonFile::open(dir.join("tenants.json"), "a tenant limits file")?,
            changes,
        })
    }

    fn notify_if(&self, changed: bool) -> bool {
        if changed {
            self.changes.send_modify(|n| *n += 1);
        }
        changed
    }
}

/// A map kept in one JSON file readable by its owner only.
struct JsonFile<T> {
    path: PathBuf,
    entries: Mutex<BTreeMap<String, T>>,
}

impl<T: Clone + serde::Serialize + serde::de::DeserializeOwned> JsonFile<T> {
    fn open(path: PathBuf, what: &str) -> Result<JsonFile<T>> {
        let entries = match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| format!("{} is not {what}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        Ok(JsonFile { path, entries: Mutex::new(entries) })
    }

    fn read(&self) -> BTreeMap<String, T> {
        self.entries.lock().clone()
    }

    /// Applies `change` to a copy and, when it reports a change, writes the
    /// copy to a temporary file and renames it over the file.
    fn write(&self, change: impl FnOnce(&mut BTreeMap<String, T>) -> Result<bool>) -> Result<bool> {
        let mut entries = self.entries.lock();
        let mut next = entries.clone();
        let changed = change(&mut next)?;
        if changed {
            let bytes = serde_json::to_vec_pretty(&next)?;
            let temporary = self.path.with_extension("json.tmp");
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode_0600()
                .open(&temporary)
                .with_context(|| format!("writing {}", temporary.display()))?;
            file.write_all(&bytes)?;
            file.sync_all()?;
            fs::rename(&temporary, &self.path).with_context(|| format!("writing {}", self.path.display()))?;
            *entries = next;
        }
        Ok(changed)
    }
}

/// Opens key files readable by their owner only: they hold no secret, but
/// their hashes and scopes are nobody else's business.
trait OwnerOnly {
    fn mode_0600(&mut self) -> &mut Self;
}

impl OwnerOnly for fs::OpenOptions {
    fn mode_0600(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.mode(0o600)
    }
}

#[async_trait]
impl KeyStore for FileKeyStore {
    async fn list(&self) -> Result<Vec<KeyRecord>> {
        Ok(self.keys.read().into_values().collect())
    }

    async fn create(&self, record: &KeyRecord) -> Result<()> {
        let changed = self.keys.write(|keys| {
            if keys.contains_key(&record.id) {
                bail!("key id {} is taken", record.id);
            }
            keys.insert(record.id.clone(), record.clone());
            Ok(true)
        })?;
        self.notify_if(changed);
        Ok(())
    }

    async fn delete(&self, id: &str) -> Result<bool> {
        let changed = self.keys.write(|keys| Ok(keys.remove(id).is_some()))?;
        Ok(self.notify_if(changed))
    }

    async fn tenant_limits(&self) -> Result<BTreeMap<String, Limits>> {
        Ok(self.tenants.read())
    }

    async fn set_tenant_limits(&self, tenant: &str, limits: Option<&Limits>) -> Result<bool> {
        let mut existed = false;
        let changed = self.tenants.write(|tenants| {
            let before = match limits {
                Some(limits) => tenants.insert(tenant.to_string(), limits.clone()),
                None => tenants.remove(tenant),
            };
            existed = before.is_some();
            Ok(before.as_ref() != limits)
        })?;
        self.notify_if(changed);
        Ok(existed)
    }

    fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{issue, KeySpec};
    use crate::{Limits, Role, Scope};

    fn record() -> KeyRecord {
        let spec = KeySpec {
            tenant: "t".into(),
            role: Role::Viewer,
            scope: Scope::everything(),
            limits: Limits::default(),
            priority: None,
            description: "test".into(),
        };
        issue(spec).unwrap().record
    }

    #[tokio::test]
    async fn the_file_store_keeps_keys_across_opens() {
        let dir = std::env::temp_dir().join(format!("maas-keys-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let store = FileKeyStore::open(&dir).unwrap();
        let mut changes = store.changes();
        let first = record();
        store.create(&first).await.unwrap();
        assert!(changes.has_changed().unwrap());
        changes.mark_unchanged();
        assert!(store.create(&first).await.is_err(), "an id is never reused");
        let second = record();
        store.create(&second).await.unwrap();
        assert!(store.delete(&first.id).await.unwrap());
        assert!(!store.delete(&first.id).await.unwrap());
        let reopened = FileKeyStore::open(&dir).unwrap();
        assert_eq!(reopened.list().await.unwrap(), vec![second]);
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(dir.join("keys.json")).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the key file is its owner's alone");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn the_file_store_keeps_tenant_limits_across_opens() {
        let dir = std::env::temp_dir().join(format!("maas-tenants-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let store = FileKeyStore::open(&dir).unwrap();
        let mut changes = store.changes();
        let limits = Limits { requests_per_second: Some(5.0), ..Limits::default() };
        assert!(!store.set_tenant_limits("team", Some(&limits)).await.unwrap());
        assert!(changes.has_changed().unwrap());
        changes.mark_unchanged();
        assert!(store.set_tenant_limits("team", Some(&limits)).await.unwrap());
        assert!(!changes.has_changed().unwrap(), "the same limits again change nothing");
        assert!(!store.set_tenant_limits("gone", None).await.unwrap());
        let reopened = FileKeyStore::open(&dir).unwrap();
        assert_eq!(reopened.tenant_limits().await.unwrap().get("team"), Some(&limits));
        assert!(reopened.set_tenant_limits("team", None).await.unwrap());
        assert!(FileKeyStore::open(&dir).unwrap().tenant_limits().await.unwrap().is_empty());
        fs::remove_dir_all(&dir).unwrap();
    }
}
