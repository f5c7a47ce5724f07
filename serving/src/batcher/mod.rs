//! Dynamic batching per model version.
//!
//! Three parts: [`BatcherHandle`], the thin handle the front submits
//! requests through; the task in [`task`], which owns the queue, forms
//! batches when a replica slot is free and dispatches them; and the pure
//! policy in [`state`] (read its doc for when a batch is sent).

pub mod state;
mod task;

use std::time::Instant;

use tokio::sync::mpsc;

use crate::error::{ServeError, ServeResult};
use crate::pending::PendingRequest;
pub use task::spawn;

impl state::Queued for PendingRequest {
    fn rows(&self) -> u32 {
        self.rows
    }

    fn enqueued(&self) -> Instant {
        self.enqueued
    }

    fn deadline(&self) -> Instant {
        self.deadline
    }

    fn is_abandoned(&self) -> bool {
        self.reply.is_closed()
    }

    fn can_join(&self, first: &Self) -> bool {
        self.inputs.iter().zip(&first.inputs).all(|(a, b)| a.shape[1..] == b.shape[1..])
    }

    fn priority(&self) -> u32 {
        self.priority
    }
}

/// Submits requests to a version's batcher task.
#[derive(Clone)]
pub struct BatcherHandle {
    sender: mpsc::Sender<PendingRequest>,
    model: String,
    version: u64,
}

impl BatcherHandle {
    /// Queues a request, or refuses it at once when the queue is full.
    pub fn submit(&self, request: PendingRequest) -> ServeResult<()> {
        self.sender.try_send(request).map_err(|error| match error {
            mpsc::error::TrySendError::Full(_) => {
                ServeError::Overloaded { model: self.model.clone(), version: self.version }
            }
            mpsc::error::TrySendError::Closed(_) => ServeError::Internal(format!(
                "the batcher of model '{}' version {} has stopped",
                self.model, self.version
            )),
        })
    }
}
