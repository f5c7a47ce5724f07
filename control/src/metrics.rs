//! The control plane's metrics.
//!
//! | name | type | labels | meaning |
//! |---|---|---|---|
//! | `maas_node_link_up` | gauge | node | 1 while the node's link is up |
//! | `maas_coordinator_leader` | gauge | | 1 while this coordinator leads placement |
//! | `maas_evictions_total` | counter | reason | replicas of versions loaded on demand the leader gave up: `memory` (room for a version with requests waiting) or `idle` |
//! | `maas_placement_round_seconds` | gauge | | the leader's last placement round: registry read, node status, plan and fenced write |
//! | `maas_reconcile_round_seconds` | gauge | | this coordinator's last reconcile round: registry read, routing table and every node's loads and unloads |

const LINK_UP: &str = "maas_node_link_up";
const LEADER: &str = "maas_coordinator_leader";
const EVICTIONS: &str = "maas_evictions_total";
const PLACEMENT_ROUND: &str = "maas_placement_round_seconds";
const RECONCILE_ROUND: &str = "maas_reconcile_round_seconds";

/// Records how long the leader's last placement round took.
pub fn placement_round(took: std::time::Duration) {
    metrics::gauge!(PLACEMENT_ROUND).set(took.as_secs_f64());
}

/// Records how long this coordinator's last reconcile round took.
pub fn reconcile_round(took: std::time::Duration) {
    metrics::gauge!(RECONCILE_ROUND).set(took.as_secs_f64());
}

/// Records a node link going up or down.
pub fn node_link_changed(node: &str, up: bool) {
    metrics::gauge!(LINK_UP, "node" => node.to_string()).set(if up { 1.0 } else { 0.0 });
}

/// Records whether this coordinator leads.
pub fn set_leader(leader: bool) {
    metrics::gauge!(LEADER).set(if leader { 1.0 } else { 0.0 });
}

/// Counts a replica the leader gave up, and why.
pub fn record_eviction(reason: &'static str) {
    metrics::counter!(EVICTIONS, "reason" => reason).increment(1);
}
