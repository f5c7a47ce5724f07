//! A registry in one JSON file, for a single machine without etcd.
//!
//! The whole registry is held in memory and rewritten atomically (a
//! temporary file, fsync, rename) on every change. Revisions come from one
//! counter stored in the file. Only one process may open a file at a time;
//! its changes are seen by that process alone.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
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
    path: PathBuf,
    state: Mutex<FileContents>,
    changes: watch::Sender<u64>,
}

impl EmbeddedStore {
    /// Opens (or creates) `<dir>/registry.json`.
    pub fn open(dir: &Path) -> RegistryResult<EmbeddedStore> {
        fs::create_dir_all(dir).map_err(|e| backend(format!("creating {}: {e}", dir.display())))?;
        let path = dir.join("registry.json");
        let state = match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| backend(format!("{} is not a registry file: {e}", path.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => FileContents::default(),
            Err(e) => return Err(backend(format!("reading {}: {e}", path.display()))),
        };
        let (changes, _) = watch::channel(0);
        Ok(EmbeddedStore { path, state: Mutex::new(state), changes })
    }

    fn persist(&self, contents: &FileContents) -> RegistryResult<()> {
        let bytes = serde_json::to_vec_pretty(contents).map_err(|e| backend(e.to_string()))?;
        let temporary = self.path.with_extension("json.tmp");
        let write = || -> std::io::Result<()> {
            let mut file = fs::File::create(&temporary)?;
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
