//! The maas cluster's shared state in etcd, apart from the model records:
//! which nodes and coordinators are alive, which coordinator leads, and where
//! each version's replicas go ([`placement`]).
//!
//! Nodes use [`keep_registered`] to announce themselves; coordinators watch
//! the members, and the leader writes the placement plan.

mod coordinators;
pub mod demand;
mod membership;
pub mod placement;
pub mod scaling;

pub use coordinators::{keep_coordinator_registered, watch_coordinators};
pub use membership::{keep_registered, node_key, watch_nodes, NodeInfo};
