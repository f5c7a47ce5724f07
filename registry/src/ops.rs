//! Registry operations, written once over any [`RecordStore`].
//!
//! Each operation reads the model's record, checks and changes a copy, and
//! writes it back under compare-and-swap on the revision it read. Nothing is
//! retried: a concurrent writer makes the operation fail with
//! [`RegistryError::Conflict`] and leaves the record as the other wrote it.

use std::sync::Arc;

use maas_protocol::ModelConfig;
use sha2::Digest;

use crate::{
    AliasRecord, ArtifactRef, EngineKey, Lineage, ModelRecord, RecordStore, RegistryError, RegistryResult, SplitEntry,
    StoredRecord, VersionRecord,
};

/// The registry's operations.
#[derive(Clone)]
pub struct Registry {
    store: Arc<dyn RecordStore>,
}

fn not_found_model(model: &str) -> RegistryError {
    RegistryError::NotFound(format!("model '{model}' is not in the registry"))
}

fn invalid(message: String) -> RegistryError {
    RegistryError::Invalid(message)
}

/// Checks a model or alias name: letters, digits, `-`, `_` and `.`, not
/// starting with a digit for aliases so they never read as versions.
pub fn check_name(kind: &str, name: &str) -> RegistryResult<()> {
    let valid_chars = name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if name.is_empty() || name.len() > 128 || !valid_chars {
        return Err(invalid(format!("{kind} name '{name}' is invalid: use 1 to 128 letters, digits, '-', '_' or '.'")));
    }
    if kind == "alias" && name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(invalid(format!("alias name '{name}' must not start with a digit")));
    }
    Ok(())
}

impl Registry {
    /// Operations over `store`.
    pub fn new(store: Arc<dyn RecordStore>) -> Registry {
        Registry { store }
    }

    /// The underlying store.
    pub fn store(&self) -> &Arc<dyn RecordStore> {
        &self.store
    }

    /// One model, or `NotFound`.
    pub async fn get(&self, model: &str) -> RegistryResult<StoredRecord> {
        self.store.get(model).await?.ok_or_else(|| not_found_model(model))
    }

    /// Every model.
    pub async fn list(&self) -> RegistryResult<Vec<StoredRecord>> {
        self.store.list().await
    }

    async fn update<T>(
        &self,
        model: &str,
        change: impl FnOnce(&mut ModelRecord) -> RegistryResult<T>,
    ) -> RegistryResult<T> {
        let stored = self.get(model).await?;
        let mut record = stored.record;
        let result = change(&mut record)?;
        self.store.put(&record, Some(stored.revision)).await?;
        Ok(result)
    }

    /// Publishes a new immutable version, creating the model if needed;
    /// returns its number. The parent defaults to the newest version.
    pub async fn publish_version(
        &self,
        config: ModelConfig,
        artifact: ArtifactRef,
        lineage: Lineage,
    ) -> RegistryResult<u64> {
        if !config.platform.runs_on_nodes() {
            return Err(invalid(format!("a {} version has no artifact of its own", config.platform.name())));
        }
        self.publish(config, artifact, lineage, None).await
    }

    /// Publishes a pipeline version. Its artifact reference is the digest
    /// of its steps' description, with no bytes stored: the steps name the
    /// artifacts and models they use.
    pub async fn publish_pipeline_version(&self, config: ModelConfig, lineage: Lineage) -> RegistryResult<u64> {
        let Some(pipeline) = config.pipeline.as_ref().filter(|_| config.platform == maas_protocol::Platform::Pipeline)
        else {
            return Err(invalid(format!("model '{}' is not a pipeline version", config.name)));
        };
        let description = serde_json::to_vec(pipeline).map_err(|e| invalid(e.to_string()))?;
        let sha256 = hex::encode(sha2::Sha256::digest(&description));
        self.publish(config, ArtifactRef { sha256, size: 0 }, lineage, None).await
    }

    /// Publishes a version an external engine serves (`openai_engine`),
    /// with the credential the engine asks for. Its artifact reference is
    /// the digest of its endpoint description, with no bytes stored.
    pub async fn publish_engine_version(
        &self,
        config: ModelConfig,
        engine_key: Option<EngineKey>,
        lineage: Lineage,
    ) -> RegistryResult<u64> {
        let Some(engine) = config.engine.as_ref().filter(|_| config.platform == maas_protocol::Platform::OpenaiEngine)
        else {
            return Err(invalid(format!("model '{}' is not an openai_engine version", config.name)));
        };
        let description = serde_json::to_vec(engine).map_err(|e| invalid(e.to_string()))?;
        let sha256 = hex::encode(sha2::Sha256::digest(&description));
        self.publish(config, ArtifactRef { sha256, size: 0 }, lineage, engine_key).await
    }

    async fn publish(
        &self,
        config: ModelConfig,
        artifact: ArtifactRef,
        mut lineage: Lineage,
        engine_key: Option<EngineKey>,
    ) -> RegistryResult<u64> {
        check_name("model", &config.name)?;
        config.check().map_err(invalid)?;
        let existing = self.store.get(&config.name).await?;
        let (mut record, expected) = match existing {
            Some(stored) => (stored.record, Some(stored.revision)),
            None => (ModelRecord::new(&config.name), None),
        };
        let version = record.next_version;
        if lineage.parent.is_none() {
            lineage.parent = record.latest().map(|v| v.version);
        }
        if let Some(parent) = lineage.parent {
            if !record.versions.contains_key(&parent) {
                return Err(invalid(format!("parent version {parent} of model '{}' does not exist", config.name)));
            }
        }
        record.next_version += 1;
        record.versions.insert(version, VersionRecord { version, config, artifact, lineage, engine_key });
        self.store.put(&record, expected).await?;
        Ok(version)
    }

    /// Points `alias` at `version`, remembering its previous target.
    pub async fn set_alias(&self, model: &str, alias: &str, version: u64) -> RegistryResult<()> {
        check_name("alias", alias)?;
        self.update(model, |record| {
            if !record.versions.contains_key(&version) {
                return Err(RegistryError::NotFound(format!("model '{model}' has no version {version}")));
            }
            record.staged.remove(&version);
            match record.aliases.get_mut(alias) {
                Some(existing) if existing.version == version => {}
                Some(existing) => {
                    existing.history.push(existing.version);
                    existing.version = version;
                }
                None => {
                    record.aliases.insert(alias.to_string(), AliasRecord { version, history: Vec::new() });
                }
            }
            Ok(())
        })
        .await
    }

    /// Marks (or, with `staged` false, unmarks) a version as being made
    /// ready for a rollout, so that nodes load it before an alias or the
    /// split moves to it; moving one there unmarks it.
    pub async fn stage(&self, model: &str, version: u64, staged: bool) -> RegistryResult<()> {
        self.update(model, |record| {
            if !record.versions.contains_key(&version) {
                return Err(RegistryError::NotFound(format!("model '{model}' has no version {version}")));
            }
            match staged {
                true => record.staged.insert(version),
                false => record.staged.remove(&version),
            };
            Ok(())
        })
        .await
    }

    /// Removes an alias.
    pub async fn delete_alias(&self, model: &str, alias: &str) -> RegistryResult<()> {
        self.update(model, |record| {
            record
                .aliases
                .remove(alias)
                .map(|_| ())
                .ok_or_else(|| RegistryError::NotFound(format!("model '{model}' has no alias '{alias}'")))
        })
        .await
    }

    /// Moves `alias` back to its previous target; returns `(from, to)`.
    pub async fn rollback(&self, model: &str, alias: &str) -> RegistryResult<(u64, u64)> {
        self.update(model, |record| {
            let entry = record
                .aliases
                .get_mut(alias)
                .ok_or_else(|| RegistryError::NotFound(format!("model '{model}' has no alias '{alias}'")))?;
            let previous = entry
                .history
                .pop()
                .ok_or_else(|| invalid(format!("alias '{alias}' of model '{model}' has no previous target")))?;
            let from = entry.version;
            entry.version = previous;
            record.staged.remove(&previous);
            Ok((from, previous))
        })
        .await
    }

    /// Sets the traffic split; an empty list removes it.
    pub async fn set_split(&self, model: &str, split: Vec<SplitEntry>) -> RegistryResult<()> {
        self.update(model, |record| {
            for entry in &split {
                if !record.versions.contains_key(&entry.version) {
                    return Err(RegistryError::NotFound(format!("model '{model}' has no version {}", entry.version)));
                }
                if entry.weight == 0 {
                    return Err(invalid(format!("version {} has weight 0; leave it out instead", entry.version)));
                }
            }
            let mut versions: Vec<u64> = split.iter().map(|e| e.version).collect();
            versions.sort_unstable();
            versions.dedup();
            if versions.len() != split.len() {
                return Err(invalid("a version appears twice in the split".into()));
            }
            for entry in &split {
                record.staged.remove(&entry.version);
            }
            record.split = split;
            Ok(())
        })
        .await
    }

    /// Deletes a version no alias or split uses.
    pub async fn delete_version(&self, model: &str, version: u64) -> RegistryResult<()> {
        self.update(model, |record| {
            if !record.versions.contains_key(&version) {
                return Err(RegistryError::NotFound(format!("model '{model}' has no version {version}")));
            }
            if let Some(users) = record.users_of(version) {
                return Err(invalid(format!(
                    "version {version} of model '{model}' is used by {users}; move or remove them first"
                )));
            }
            record.versions.remove(&version);
            for alias in record.aliases.values_mut() {
                alias.history.retain(|&v| v != version);
            }
            Ok(())
        })
        .await
    }

    /// Marks a model loaded or unloaded.
    pub async fn set_loaded(&self, model: &str, loaded: bool) -> RegistryResult<()> {
        self.update(model, |record| {
            record.loaded = loaded;
            if loaded {
                // Staged for this load, they are served now.
                let served = record.versions_served();
                record.staged.retain(|v| !served.contains(v));
            }
            Ok(())
        })
        .await
    }
}
