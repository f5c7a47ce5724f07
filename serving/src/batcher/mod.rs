//! Dynamic batching per model version.
//!
//! Three parts: [`BatcherHandle`], the thin handle the front submits
//! requests through; the task in [`task`], which owns the queue, forms
//! batches when a replica slot is free and dispatches them; and the pure
//! policy in [`state`] (read its doc for when a batch is sent).

pub mod state;
mod task;

use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

use crate::error::{ServeError, ServeResult};
use maas_protocol::TensorBytes;
pub use task::spawn;

/// A validated request waiting for a batch.
pub struct PendingRequest {
    /// Inputs in the model configuration's order, each with `rows` rows.
    pub inputs: Vec<TensorBytes>,
    /// Rows (the batch dimension) of every input.
    pub rows: u32,
    /// When the request was queued.
    pub enqueued: Instant,
    /// When it must be answered by.
    pub deadline: Instant,
    /// The client's request id, if it gave one.
    pub id: Option<String>,
    /// Where its outputs (or error) go.
    pub reply: oneshot::Sender<ServeResult<Vec<TensorBytes>>>,
}

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
}

impl PendingRequest {
    /// Answers the request; a client that has gone is not an error.
    pub fn answer(self, result: ServeResult<Vec<TensorBytes>>) {
        let _ = self.reply.send(result);
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
