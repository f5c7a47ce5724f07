//! Links from the coordinator to its nodes.
//!
//! One [`NodeLink`] per node holds one QUIC connection: batches on data
//! streams, and a ractor_cluster control session to the node's host actor
//! (see [`control`]). A supervisor task per link connects, opens the
//! control session (which also proves the node accepted our certificate),
//! asks the node for its models, records them in the
//! [`maas_serving::models::ModelTable`], and reconnects with backoff whenever the
//! connection or the session ends, so a node that comes back is served
//! again without a coordinator restart.

pub mod control;
mod link;
mod set;
mod supervisor;

pub use control::ControlPlane;
pub use link::NodeLink;
pub use set::NodeSet;
pub use supervisor::spawn_supervisor;
