//! A registry in one JSON file, for a single machine without etcd.
//!
//! The whole registry is held in memory and rewritten atomically (a
//! temporary file, fsync, rename) on every change. Revisions come from one
//! counter stored in the file. Only one process may open a directory at a
//! time, and its changes are seen by that process alone: opening takes an
//! exclusive `flock` on `<dir>/registry.lock`, held until the store is
//! dropped (or its process dies), and a second open fails instead of two
//! processes silently overwriting each other's writes. The lock is on a
//! file of its own because `registry.json` is replaced on every write.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::{ModelRecord, RecordStore, RegistryError, RegistryResult, StoredRecord};

#[derive(Default, Serialize, Deserialize)]
struct FileContents {
    revision: i64,
    models: BTreeMap<String, FileEntry>,
}

#[derive(Clone, Serialize, Deserialize)]
struct FileEntry {
    revision: i64,
    record: ModelRecord,
}

/// The file-backed store.
pub struct EmbeddedStore {
    /// `registry.lock`, kept open: closing it releases the lock.
    _lock: fs::File,
    path: PathBuf,
    state: Mutex<FileContents>,
    changes: watch::Sender<u64>,
}

impl EmbeddedStore {
    /// Opens (or creates) `<dir>/registry.json`, locking the directory for
    /// this store's lifetime; fails if another store holds it, in this
    /// process or another.
    pub fn open(dir: &Path) -> RegistryResult<EmbeddedStore> {
        fs::create_dir_all(dir).map_err(|e| backend(format!("creating {}: {e}", dir.display())))?;
        let lock = lock_dir(dir)?;
        let path = dir.join("registry.json");
        let state = match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| backend(format!("{} is not a registry file: {e}", path.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => FileContents::default(),
            Err(e) => return Err(backend(format!("reading {}: {e}", path.display()))),
        };
        let (changes, _) = watch::channel(0);
        Ok(EmbeddedStore { _lock: lock, path, state: Mutex::new(state), changes })
    }

    fn persist(&self, contents: &FileContents) -> RegistryResult<()> {
        let bytes = serde_json::to_vec_pretty(contents).map_err(|e| backend(e.to_string()))?;
        let temporary = self.path.with_extension("json.tmp");
        let write = || -> std::io::Result<()> {
            // Owner only: records may hold an engine's credential.
            let mut file = {
                use std::os::unix::fs::OpenOptionsExt;
                fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&temporary)?
            };
            file.write_all(&bytes)?;
            file.sync_all()?;
            fs::rename(&temporary, &self.path)
        };
        write().map_err(|e| backend(format!("writing {}: {e}", self.path.display())))
    }

    fn write(&self, change: impl FnOnce(&mut FileContents, i64) -> RegistryResult<()>) -> RegistryResult<i64> {
        let mut state = self.state.lock();
        let revision = state.revision + 1;
        let mut next = FileContents { revision, models: state.models.clone() };
        change(&mut next, revision)?;
        self.persist(&next)?;
        *state = next;
        drop(state);
        self.changes.send_modify(|n| *n += 1);
        Ok(revision)
    }
}

/// Takes the exclusive lock on `<dir>/registry.lock` without waiting. The
/// lock belongs to the open file, so a second open in the same process
/// conflicts as well, and the kernel releases it when the process exits.
fn lock_dir(dir: &Path) -> RegistryResult<fs::File> {
    let path = dir.join("registry.lock");
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| backend(format!("opening {}: {e}", path.display())))?;
    // SAFETY: flock on a descriptor this function owns; no memory is passed.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(file);
    }
    let error = std::io::Error::last_os_error();
    Err(backend(if error.kind() == std::io::ErrorKind::WouldBlock {
        format!(
            "the embedded registry in {} is in use: another process (or another store in this one) holds {}",
            dir.display(),
            path.display()
        )
    } else {
        format!("locking {}: {error}", path.display())
    }))
}

fn backend(message: String) -> RegistryError {
    RegistryError::Backend(message)
}

fn conflict(model: &str) -> RegistryError {
    RegistryError::Conflict { model: model.to_string() }
}

#[async_trait]
impl RecordStore for EmbeddedStore {
    async fn get(&self, model: &str) -> RegistryResult<Option<StoredRecord>> {
        Ok(self.state.lock().models.get(model).map(|e| StoredRecord { record: e.record.clone(), revision: e.revision }))
    }

    async fn list(&self) -> RegistryResult<Vec<StoredRecord>> {
        Ok(self
            .state
            .lock()
            .models
            .values()
            .map(|e| StoredRecord { record: e.record.clone(), revision: e.revision })
            .collect())
    }

    async fn put(&self, record: &ModelRecord, expected: Option<i64>) -> RegistryResult<i64> {
        self.write(|contents, revision| {
            let current = contents.models.get(&record.name).map(|e| e.revision);
            if current != expected {
                return Err(conflict(&record.name));
            }
            contents.models.insert(record.name.clone(), FileEntry { revision, record: record.clone() });
            Ok(())
        })
    }

    async fn delete(&self, model: &str, expected: i64) -> RegistryResult<()> {
        self.write(|contents, _| {
            if contents.models.get(model).map(|e| e.revision) != Some(expected) {
                return Err(conflict(model));
            }
            contents.models.remove(model);
            Ok(())
        })
        .map(|_| ())
    }

    fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }
}
