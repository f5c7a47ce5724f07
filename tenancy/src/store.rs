//! Where key records live: etcd for clusters ([`EtcdKeyStore`]), a file for
//! one machine ([`FileKeyStore`]). Both notify [`KeyStore::changes`] on
//! every change, the etcd one on changes made by any coordinator.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use async_trait::async_trait;
use parking_lot::Mutex;
use tokio::sync::watch;

use crate::key::KeyRecord;

/// The storage of key records.
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// Every key, by id.
    async fn list(&self) -> Result<Vec<KeyRecord>>;

    /// Stores a new key; fails if its id is taken.
    async fn create(&self, record: &KeyRecord) -> Result<()>;

    /// Deletes a key; whether it existed.
    async fn delete(&self, id: &str) -> Result<bool>;

    /// A counter that moves whenever any key changes.
    fn changes(&self) -> watch::Receiver<u64>;
}

/// Keys in `<dir>/keys.json`, rewritten atomically on each change.
pub struct FileKeyStore {
    path: PathBuf,
    keys: Mutex<BTreeMap<String, KeyRecord>>,
    changes: watch::Sender<u64>,
}

impl FileKeyStore {
    /// Opens (or starts) `<dir>/keys.json`.
    pub fn open(dir: &Path) -> Result<FileKeyStore> {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join("keys.json");
        let keys = match fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).with_context(|| format!("{} is not a key file", path.display()))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let (changes, _) = watch::channel(0);
        Ok(FileKeyStore { path, keys: Mutex::new(keys), changes })
    }

    fn write(&self, change: impl FnOnce(&mut BTreeMap<String, KeyRecord>) -> Result<bool>) -> Result<bool> {
        let mut keys = self.keys.lock();
        let mut next = keys.clone();
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
            *keys = next;
            drop(keys);
            self.changes.send_modify(|n| *n += 1);
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
        Ok(self.keys.lock().values().cloned().collect())
    }

    async fn create(&self, record: &KeyRecord) -> Result<()> {
        self.write(|keys| {
            if keys.contains_key(&record.id) {
                bail!("key id {} is taken", record.id);
            }
            keys.insert(record.id.clone(), record.clone());
            Ok(true)
        })
        .map(|_| ())
    }

    async fn delete(&self, id: &str) -> Result<bool> {
        self.write(|keys| Ok(keys.remove(id).is_some()))
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
}
