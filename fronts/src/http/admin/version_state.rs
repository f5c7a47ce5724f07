//! A version's state as its operators ask about it: whether it serves and,
//! when it does not, why; its replicas (wanted, placed, ready) and the last
//! scaling decision with its reason; and the rollout waiting for it. Read
//! from the registry record, the leader's placement and this
//! coordinator's table, so the answer is what routing acts on. Node names
//! are the cluster's own: only callers that may administer it see them;
//! others see counts.

use maas_api::VersionState;
use maas_cluster::placement::{Assignment, Placement};
use maas_protocol::Platform;
use maas_registry::ModelRecord;

use crate::rollout;
use crate::state::AppState;

/// Whether `caller` may see node names.
pub fn sees_nodes(caller: &maas_tenancy::Caller) -> bool {
    caller.permit(maas_tenancy::Action::Administer, None).is_ok()
}

/// The state of `version` of `record`, naming nodes when `show_nodes`.
pub fn version_state(state: &AppState, record: &ModelRecord, version: u64, show_nodes: bool) -> VersionState {
    let assignment: Option<Assignment> = state.cluster.as_ref().and_then(|cluster| {
        cluster.placement.borrow().assignments.get(&Placement::key(&record.name, version)).cloned()
    });
    let found = state.inference.table().entry(&record.name, version);
    let ready = found.as_ref().map_or(0, |m| m.shared.replicas.ready_count() as u64);
    let config = record.versions.get(&version).map(|v| &v.config);
    // Engines and pipelines have no replicas of their own.
    let min = config.map_or(1, |c| if c.platform.runs_on_nodes() { u64::from(c.replicas.min) } else { 0 });
    let wanted = assignment.as_ref().map_or(min, |a| u64::from(a.wanted));
    let placed = assignment.as_ref().map(|a| a.nodes.clone()).unwrap_or_default();
    let nodes = match show_nodes {
        true => placed.join(", "),
        false => format!("{} node(s)", placed.len()),
    };
    let shown = Shown { nodes: &nodes, capacity: show_nodes };
    let (name, reason) = judge(state, record, version, found.as_deref(), assignment.as_ref(), ready, wanted, shown);
    let rollout = record.staged.contains(&version).then(|| {
        let progress = rollout::shortfall(state, &record.name, version)
            .unwrap_or_else(|| format!("version {version} is ready; the move follows"));
        format!("a rollout (alias, split or load) waits for it: {progress}")
    });
    VersionState {
        version,
        state: name.to_string(),
        reason,
        ready_replicas: ready,
        wanted_replicas: wanted,
        placed_on: if show_nodes { placed } else { Vec::new() },
        scaling: assignment.and_then(|a| a.scaling),
        rollout,
    }
}

/// The states of the versions `record` serves or stages.
pub fn served_states(state: &AppState, record: &ModelRecord, show_nodes: bool) -> Vec<VersionState> {
    record.versions_to_load().into_iter().map(|version| version_state(state, record, version, show_nodes)).collect()
}

/// What the caller may read of the cluster.
#[derive(Clone, Copy)]
struct Shown<'a> {
    /// The placed nodes: their names, or their count.
    nodes: &'a str,
    /// Whether memory figures and node counts may be shown.
    capacity: bool,
}

impl Shown<'_> {
    /// Why a version lacks room: the placement's reason (memory figures and
    /// node counts) for those who may see capacity, else a plain sentence.
    fn room(&self, reason: Option<&str>) -> String {
        match reason {
            Some(reason) if self.capacity => reason.to_string(),
            _ => "no node has room for another replica".into(),
        }
    }
}

/// The state's name and its reason.
#[allow(clippy::too_many_arguments)]
fn judge(
    state: &AppState,
    record: &ModelRecord,
    version: u64,
    found: Option<&maas_serving::models::ModelVersion>,
    assignment: Option<&Assignment>,
    ready: u64,
    wanted: u64,
    shown: Shown<'_>,
) -> (&'static str, String) {
    let nodes = shown.nodes;
    if !record.versions_to_load().contains(&version) {
        let why = match record.loaded {
            false => "the model is unloaded".to_string(),
            true => "no alias, split or version policy serves it".to_string(),
        };
        return ("retired", why);
    }
    let Some(found) = found else {
        return ("loading", "this coordinator has not taken it up yet".to_string());
    };
    let shared = &found.shared;
    if shared.config.platform == Platform::Pipeline {
        return ("ready", "a pipeline: its steps are models with states of their own".to_string());
    }
    if shared.engine.is_some() {
        return match shared.is_ready() {
            true => ("ready", "its engine answers".to_string()),
            false => ("unreachable", "no URL of its engine answers".to_string()),
        };
    }
    let placed = assignment.is_some_and(|a| !a.nodes.is_empty());
    let short_of_room = assignment.and_then(|a| a.unplaceable.as_deref());
    if ready > 0 {
        return match (ready < wanted, short_of_room) {
            (true, Some(reason)) => {
                ("partial", format!("ready on {ready} of {wanted} replicas: {}", shown.room(Some(reason))))
            }
            (true, None) => ("scaling", format!("ready on {ready} of {wanted} replicas; placed on {nodes}")),
            (false, _) if !placed => ("ready", format!("ready on {ready} replica(s)")),
            (false, _) => ("ready", format!("ready on {ready} replica(s): {nodes}")),
        };
    }
    match assignment {
        Some(_) if placed => ("loading", format!("loading on {nodes}")),
        Some(a) => ("waiting", shown.room(a.unplaceable.as_deref())),
        None if shared.loads_on_demand() => {
            ("idle", "loaded on demand: no replica until a request comes, and none since the idle time".into())
        }
        None if state.cluster.is_some() => ("waiting", "the leader has not placed it yet".into()),
        None => ("loading", "loading on the nodes".into()),
    }
}
