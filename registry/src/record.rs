//! What the registry stores for each model.

use std::collections::{BTreeMap, BTreeSet};

use maas_protocol::ModelConfig;
use serde::{Deserialize, Serialize};

/// Where a version's TorchScript file is: its sha256 and size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactRef {
    /// Lowercase hex sha256 of the file.
    pub sha256: String,
    /// Bytes.
    pub size: u64,
}

/// Who made a version, when, from what.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Lineage {
    /// Who uploaded it.
    pub uploaded_by: String,
    /// Seconds since the Unix epoch.
    pub uploaded_at: u64,
    /// Where it came from (a training run, a file, a URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The version it was derived from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<u64>,
    /// The tenant whose key published it; none when the operator's token
    /// did. Its drift reference comes from this tenant's requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

/// One immutable version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionRecord {
    /// Version number, from 1.
    pub version: u64,
    /// Its configuration.
    pub config: ModelConfig,
    /// Its artifact.
    pub artifact: ArtifactRef,
    /// Its lineage.
    pub lineage: Lineage,
    /// The bearer credential its external engine asks for (an
    /// `openai_engine` version). Kept with the record in etcd and never
    /// shown by the API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_key: Option<EngineKey>,
}

/// An engine's credential: stored as it is, never printed (its `Debug`
/// shows `***`), read only through [`EngineKey::expose`].
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EngineKey(String);

impl EngineKey {
    /// Wraps `key`.
    pub fn new(key: impl Into<String>) -> EngineKey {
        EngineKey(key.into())
    }

    /// The credential itself, to send to the engine.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for EngineKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EngineKey(***)")
    }
}

/// An alias: the version it points at and the ones it pointed at before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AliasRecord {
    /// Current target.
    pub version: u64,
    /// Earlier targets, oldest first; rollback pops the last.
    #[serde(default)]
    pub history: Vec<u64>,
}

/// A share of a model's requests for one version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitEntry {
    /// Version number.
    pub version: u64,
    /// Relative weight (any positive integer; shares are weight / sum).
    pub weight: u32,
}

/// Everything the registry knows about one model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelRecord {
    /// Model name.
    pub name: String,
    /// Versions by number.
    #[serde(default)]
    pub versions: BTreeMap<u64, VersionRecord>,
    /// Aliases by name.
    #[serde(default)]
    pub aliases: BTreeMap<String, AliasRecord>,
    /// Traffic split; empty when none is set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub split: Vec<SplitEntry>,
    /// The number the next version gets (numbers are never reused).
    pub next_version: u64,
    /// Whether the model is loaded (Triton's repository load / unload).
    pub loaded: bool,
    /// Versions being made ready for a rollout (an alias or split about to
    /// point at them): loaded like the versions they will replace.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub staged: BTreeSet<u64>,
}

impl ModelRecord {
    /// A model with no versions.
    pub fn new(name: &str) -> ModelRecord {
        ModelRecord {
            name: name.to_string(),
            versions: BTreeMap::new(),
            aliases: BTreeMap::new(),
            split: Vec::new(),
            next_version: 1,
            loaded: true,
            staged: BTreeSet::new(),
        }
    }

    /// The newest version.
    pub fn latest(&self) -> Option<&VersionRecord> {
        self.versions.values().next_back()
    }

    /// The configuration that governs the model: the newest version's.
    pub fn config(&self) -> Option<&ModelConfig> {
        self.latest().map(|v| &v.config)
    }

    /// Versions that must be loaded: those served while the model is
    /// loaded ([`Self::versions_served`]) and those staged for a rollout.
    /// Only the staged ones while unloaded.
    pub fn versions_to_load(&self) -> Vec<u64> {
        let mut wanted = match self.loaded {
            true => self.versions_served(),
            false => Vec::new(),
        };
        wanted.extend(self.staged.iter().copied().filter(|v| self.versions.contains_key(v)));
        wanted.sort_unstable();
        wanted.dedup();
        wanted
    }

    /// The versions nodes must hold: [`Self::versions_to_load`] less those
    /// an external engine serves.
    pub fn versions_for_nodes(&self) -> Vec<u64> {
        let mut versions = self.versions_to_load();
        versions.retain(|v| self.runs_on_nodes(*v));
        versions
    }

    /// Whether `version` runs on nodes (it is not an external engine's).
    pub fn runs_on_nodes(&self, version: u64) -> bool {
        self.versions.get(&version).is_some_and(|v| v.config.platform.runs_on_nodes())
    }

    /// The versions the model serves when loaded: those the version
    /// policy selects and every version an alias or the split points at.
    pub fn versions_served(&self) -> Vec<u64> {
        let available: Vec<u64> = self.versions.keys().copied().collect();
        let mut wanted = self.config().map(|c| c.version_policy.select(&available)).unwrap_or_default();
        wanted.extend(self.aliases.values().map(|a| a.version));
        wanted.extend(self.split.iter().map(|s| s.version));
        wanted.sort_unstable();
        wanted.dedup();
        wanted.retain(|v| self.versions.contains_key(v));
        wanted
    }

    /// What uses `version`: aliases and the split, as a sentence, or `None`.
    pub fn users_of(&self, version: u64) -> Option<String> {
        let mut users: Vec<String> = self
            .aliases
            .iter()
            .filter(|(_, a)| a.version == version)
            .map(|(name, _)| format!("alias '{name}'"))
            .collect();
        if self.split.iter().any(|s| s.version == version) {
            users.push("the traffic split".to_string());
        }
        (!users.is_empty()).then(|| users.join(" and "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_engine_key_is_stored_but_never_printed() {
        let key = EngineKey::new("engine-secret");
        assert_eq!(serde_json::to_string(&key).unwrap(), "\"engine-secret\"");
        assert!(!format!("{key:?}").contains("secret"));
        assert_eq!(key.expose(), "engine-secret");
    }
}
