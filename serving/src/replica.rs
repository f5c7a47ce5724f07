//! What the serving path needs of a node holding a model version.
//!
//! The batcher and dispatcher see a node only through [`Replica`]: whether it
//! is up, how busy it is, and a call that sends one encoded batch and waits
//! for the answer, or one that starts a decoder's generation and yields its
//! tokens ([`TokenStream`]). The coordinator's node links (in `maas-control`)
//! implement it over QUIC, so serving never reaches into the control plane.

use bytes::Bytes;
use maas_protocol::answer::InferAnswer;
use maas_protocol::{GenerateEvent, GenerateRequest};

/// Why a call to a replica failed without an answer.
#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    /// There is no connection to the node.
    #[error("node '{0}' is not connected")]
    Down(String),
    /// The connection or stream broke; another replica may be tried.
    #[error("node '{node}' connection failed: {message}")]
    Transport {
        /// Node name.
        node: String,
        /// What broke.
        message: String,
    },
    /// The node's answer was not a valid frame, or the request could not be encoded.
    #[error("node '{node}': {message}")]
    Protocol {
        /// Node name.
        node: String,
        /// What was wrong.
        message: String,
    },
}

/// A node that may hold replicas of model versions.
#[async_trait::async_trait]
pub trait Replica: Send + Sync + 'static {
    /// The node's name, for logs and errors.
    fn name(&self) -> &str;

    /// Whether the node is connected and has answered.
    fn is_up(&self) -> bool;

    /// Batches in flight to this node.
    fn outstanding(&self) -> usize;

    /// Sends a batch already encoded as a frame header and payload, and
    /// waits for the node's answer, read in place.
    async fn call(&self, header: &[u8], payload: Bytes) -> Result<InferAnswer, ReplicaError>;

    /// Starts a generation on the node's decoder for the request's version.
    async fn generate(&self, request: &GenerateRequest) -> Result<Box<dyn TokenStream>, ReplicaError> {
        let _ = request;
        Err(ReplicaError::Protocol { node: self.name().to_string(), message: "it runs no decoders".into() })
    }
}

/// A generation running on a node: its events, in order. Dropping it
/// cancels the sequence on the node, which frees its cache.
#[async_trait::async_trait]
pub trait TokenStream: Send {
    /// The next event; after a `Done` or `Failed` there is none.
    async fn next_event(&mut self) -> Result<GenerateEvent, ReplicaError>;
}

/// Whether `a` and `b` are the same replica object.
pub fn same(a: &std::sync::Arc<dyn Replica>, b: &std::sync::Arc<dyn Replica>) -> bool {
    std::ptr::addr_eq(std::sync::Arc::as_ptr(a), std::sync::Arc::as_ptr(b))
}
