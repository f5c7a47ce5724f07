//! Models, versions, aliases and traffic splits.

use std::collections::BTreeMap;

use maas_protocol::ModelConfig;

use crate::api_type;

api_type! {
    /// One share of a model's traffic split.
    pub struct SplitEntry {
        /// The version.
        pub version: u64,
        /// Its weight; shares are weight over the sum of weights.
        pub weight: u32
    }
}

api_type! {
    /// Every model, as `GET /v1/models` lists them: for OpenAI's clients
    /// (`object` and `data`, the names of every model in the caller's
    /// scope) and for the registry's (`models`, for keys that may view it).
    pub struct ModelList {
        /// Always "list".
        #[serde(default)]
        pub object: String,
        /// The models in OpenAI's shape.
        #[serde(default)]
        pub data: Vec<ListedModel>,
        /// The models, by name, with their versions and routing; empty for
        /// a key that may not view the registry (an inference key).
        pub models: Vec<ModelSummary>
    }
}

api_type! {
    /// A model as OpenAI's `GET /v1/models` lists it.
    pub struct ListedModel {
        /// The model name, as requests send it.
        pub id: String,
        /// Always "model".
        pub object: String,
        /// When its newest version was published, seconds since the Unix epoch.
        pub created: u64,
        /// The tenant that published it, or "maas".
        pub owned_by: String
    }
}

api_type! {
    /// A model in the list.
    pub struct ModelSummary {
        /// Model name.
        pub name: String,
        /// Every version the registry holds.
        pub versions: Vec<u64>,
        /// Versions with a replica ready to serve on this coordinator.
        pub ready_versions: Vec<u64>,
        /// Each alias's version.
        pub aliases: BTreeMap<String, u64>,
        /// The traffic split of requests that name no version (empty: none).
        pub split: Vec<SplitEntry>,
        /// Whether the model is loaded (Triton's repository load and unload).
        pub loaded: bool,
        /// The state of each version it serves or stages for a rollout.
        pub states: Vec<VersionState>
    }
}

api_type! {
    /// A model in detail, as `GET /v1/models/{model}` describes it.
    pub struct ModelDetail {
        /// Model name.
        pub name: String,
        /// The record's revision, which every write compares.
        pub revision: i64,
        /// Every version, oldest first.
        pub versions: Vec<VersionDetail>,
        /// Versions with a replica ready to serve on this coordinator.
        pub ready_versions: Vec<u64>,
        /// Each alias with its history.
        pub aliases: BTreeMap<String, AliasState>,
        /// The traffic split of requests that name no version (empty: none).
        pub split: Vec<SplitEntry>,
        /// Whether the model is loaded.
        pub loaded: bool
    }
}

api_type! {
    /// One immutable version of a model.
    pub struct VersionDetail {
        /// Version number.
        pub version: u64,
        /// Its configuration.
        pub config: ModelConfig,
        /// Its artifact in the content-addressed store.
        pub artifact: Artifact,
        /// Where it came from.
        pub lineage: Lineage,
        /// Replicas ready to serve it, as this coordinator sees them.
        pub ready_replicas: u64,
        /// Whether it serves, why not if it does not, its replicas and the
        /// rollout waiting for it.
        pub state: VersionState
    }
}

api_type! {
    /// A version's state as its operators ask about it.
    pub struct VersionState {
        /// Version number.
        pub version: u64,
        /// `ready` (serving on every replica wanted), `scaling` (serving,
        /// more replicas loading), `partial` (serving on fewer replicas than
        /// wanted: no room for the rest), `loading`, `waiting` (for room or the
        /// placement), `idle` (loaded on demand, none wanted now),
        /// `unreachable` (an engine none of whose URLs answers) or `retired`
        /// (no alias, split or version policy serves it).
        pub state: String,
        /// Why, in a sentence.
        pub reason: String,
        /// Replicas ready on this coordinator.
        pub ready_replicas: u64,
        /// Replicas wanted: the placement's count (scaled with load between
        /// `replicas.min` and `replicas.max`), else `replicas.min`.
        pub wanted_replicas: u64,
        /// Nodes the placement gives it (empty outside cluster mode).
        pub placed_on: Vec<String>,
        /// The last scaling decision and why it was made.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub scaling: Option<String>,
        /// A rollout (an alias move, split or load) waiting for this version
        /// to be ready, with how far it has come.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub rollout: Option<String>
    }
}

api_type! {
    /// An artifact in the store.
    pub struct Artifact {
        /// sha256 of the file, lowercase hex.
        pub sha256: String,
        /// Its size in bytes.
        pub size: u64
    }
}

api_type! {
    /// Where a version came from.
    pub struct Lineage {
        /// Who published it (the `X-Maas-User` header).
        pub uploaded_by: String,
        /// When, in seconds since the Unix epoch.
        pub uploaded_at: u64,
        /// A free-form source (a training run, a commit).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub source: Option<String>,
        /// The version it was derived from.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub parent: Option<u64>,
        /// The tenant whose key published it (none: the operator's token).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub owner: Option<String>
    }
}

api_type! {
    /// An alias's version and the versions it pointed at before.
    pub struct AliasState {
        /// The version it points at.
        pub version: u64,
        /// Earlier targets, oldest first; rollback returns to the last.
        pub history: Vec<u64>
    }
}

api_type! {
    /// What `POST /v1/models/{model}/versions` takes.
    pub struct PublishRequest {
        /// The version's configuration; its name must be the path's model.
        pub config: ModelConfig,
        /// The artifact, uploaded first with `PUT /v1/artifacts`; none for
        /// an `openai_engine` version, which the engine serves.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub artifact: Option<ArtifactName>,
        /// The bearer credential an `openai_engine` version's engine asks
        /// for: kept in the registry, never shown.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub engine_key: Option<String>,
        /// A free-form source (a training run, a commit).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub source: Option<String>,
        /// The version it was derived from.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub parent: Option<u64>
    }
}

api_type! {
    /// An artifact named by its digest.
    pub struct ArtifactName {
        /// sha256 of the file, lowercase hex.
        pub sha256: String
    }
}

api_type! {
    /// A version published.
    pub struct Published {
        /// Model name.
        pub model: String,
        /// The new version's number.
        pub version: u64,
        /// Its artifact's digest.
        pub sha256: String
    }
}

api_type! {
    /// A version deleted.
    pub struct VersionDeleted {
        /// Model name.
        pub model: String,
        /// The deleted version.
        pub deleted_version: u64
    }
}

api_type! {
    /// What `PUT /v1/models/{model}/aliases/{alias}` takes.
    pub struct AliasRequest {
        /// The version the alias points at from now on.
        pub version: u64
    }
}

api_type! {
    /// An alias moved.
    pub struct AliasSet {
        /// Model name.
        pub model: String,
        /// The alias.
        pub alias: String,
        /// The version it points at.
        pub version: u64
    }
}

api_type! {
    /// An alias deleted.
    pub struct AliasDeleted {
        /// Model name.
        pub model: String,
        /// The deleted alias.
        pub deleted_alias: String
    }
}

api_type! {
    /// An alias rolled back to its previous version.
    pub struct RolledBack {
        /// Model name.
        pub model: String,
        /// The alias.
        pub alias: String,
        /// The version it pointed at before.
        pub from: u64,
        /// The version it points at now.
        pub version: u64
    }
}

api_type! {
    /// What `PUT /v1/models/{model}/split` takes.
    pub struct SplitRequest {
        /// The shares; an empty list clears the split.
        pub split: Vec<SplitEntry>
    }
}

api_type! {
    /// A traffic split set.
    pub struct SplitSet {
        /// Model name.
        pub model: String,
        /// The shares now in force.
        pub split: Vec<SplitEntry>
    }
}

api_type! {
    /// An artifact uploaded.
    pub struct ArtifactStored {
        /// sha256 of the file, lowercase hex.
        pub sha256: String,
        /// Its size in bytes.
        pub size: u64,
        /// False when an identical file was already stored.
        pub newly_stored: bool
    }
}
