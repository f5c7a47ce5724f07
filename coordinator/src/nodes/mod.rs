//! Links from the coordinator to its nodes.
//!
//! One [`NodeLink`] per node holds one QUIC connection. A supervisor task
//! per link connects, asks the node for its models (the first exchange, which
//! also proves the node accepted our certificate), records them in the
//! [`crate::models::ModelTable`], and reconnects with backoff whenever the
//! connection ends, so a node that comes back is served again without a
//! coordinator restart.

mod link;
mod set;
mod supervisor;

pub use link::{LinkError, NodeLink};
pub use set::NodeSet;
pub use supervisor::spawn_supervisor;
