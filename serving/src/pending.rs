//! A validated request waiting in its version's queue for a batch, with
//! the channel its answer goes back on.

use std::time::Instant;

use maas_protocol::TensorBytes;
use tokio::sync::oneshot;

use crate::error::{ServeError, ServeResult};

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
    /// Its priority level (1 is the highest).
    pub priority: u32,
    /// Where its outputs (or error) go.
    pub reply: oneshot::Sender<ServeResult<Answered>>,
}

/// A request's outputs and its share of its batch's node compute time.
#[derive(Debug)]
pub struct Answered {
    /// Every output, in configuration order.
    pub outputs: Vec<TensorBytes>,
    /// The batch's compute time shared by rows, in microseconds.
    pub compute_us: u64,
}

impl PendingRequest {
    /// Answers the request with its outputs and compute share, or its
    /// error; a client that has gone is not an error.
    pub fn finish(self, result: ServeResult<Answered>) {
        let _ = self.reply.send(result);
    }

    /// Fails the request.
    pub fn fail(self, error: ServeError) {
        self.finish(Err(error));
    }
}
