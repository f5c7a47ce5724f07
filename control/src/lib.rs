//! The control plane of a maas coordinator: keeping nodes holding what the
//! registry wants.
//!
//! - [`nodes`]: one QUIC link per node (batches on data streams, a
//!   ractor_cluster control session to the node's host actor), kept up by a
//!   supervisor task; each link is a [`maas_serving::Replica`] to the
//!   serving plane.
//! - [`reconcile`]: compares what each node holds with what the registry
//!   (and, in cluster mode, the placement) wants, and loads or unloads; the
//!   comparison is the pure [`reconcile::plan_node`].
//! - [`leader`]: cluster mode with etcd: following membership and placement,
//!   campaigning, and the leader's placement loop.

pub mod demand;
pub mod leader;
pub mod metrics;
pub mod nodes;
pub mod reconcile;
