//! The control plane's metrics.
//!
//! | name | type | labels | meaning |
//! |---|---|---|---|
//! | `maas_node_link_up` | gauge | node | 1 while the node's link is up |
//! | `maas_coordinator_leader` | gauge | | 1 while this coordinator leads placement |

const LINK_UP: &str = "maas_node_link_up";
const LEADER: &str = "maas_coordinator_leader";

/// Records a node link going up or down.
pub fn node_link_changed(node: &str, up: bool) {
    metrics::gauge!(LINK_UP, "node" => node.to_string()).set(if up { 1.0 } else { 0.0 });
}

/// Records whether this coordinator leads.
pub fn set_leader(leader: bool) {
    metrics::gauge!(LEADER).set(if leader { 1.0 } else { 0.0 });
}
