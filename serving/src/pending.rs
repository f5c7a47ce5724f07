//! A validated request waiting in its version's queue for a batch, with
//! the channel its answer goes back on.

use std::time::Instant;

use maas_protocol::TensorBytes;
use tokio::sync::oneshot;

use crate::error::ServeResult;

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

impl PendingRequest {
    /// Answers the request; a client that has gone is not an error.
    pub fn answer(self, result: ServeResult<Vec<TensorBytes>>) {
        let _ = self.reply.send(result);
    }
}
