//! Process set-up shared by the coordinator and the node: call
//! [`init_logging`] and [`keep_freed_memory`] first thing in `main`;
//! flags that carry credentials hold a [`Secret`]; metrics go to the one
//! recorder [`install_prometheus`] sets up.

mod allocator;
mod logging;
mod prometheus;
mod secret;

pub use allocator::{
    allocated_bytes, keep_freed_memory, record_memory, release_free_memory, resident_bytes, FreedMemory,
};
pub use logging::init_logging;
pub use prometheus::install_prometheus;
pub use secret::{bearer_token, same_secret, Secret};
