//! One QUIC connection to a node: batches on data streams of their own,
//! each decoder generation on a stream of its own, and control commands to
//! the node's host actor over the control session.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use maas_protocol::answer::{read_infer_answer, InferAnswer};
use maas_protocol::decoder;
use maas_protocol::{CommandResult, GenerateEvent, GenerateRequest, LoadModel, LoadedModel, NodeStatus, UnloadModel};
use maas_serving::{Replica, ReplicaError, TokenStream};
use maas_transport::control::ControlMessage;
use maas_transport::wire::Wire;
use maas_transport::{read_frame, write_frame, StreamKind};
use parking_lot::RwLock;
use ractor::{ActorRef, RpcReplyPort};

/// How long a load or a trial load may take (fetch, load, warm-up).
const LOAD_LIMIT: Duration = Duration::from_secs(300);
/// How long any other control command may take.
const COMMAND_LIMIT: Duration = Duration::from_secs(10);

/// A node as the coordinator sees it.
pub struct NodeLink {
    /// The node's certificate name.
    pub name: String,
    /// Its QUIC address.
    pub addr: SocketAddr,
    connection: RwLock<Option<quinn::Connection>>,
    host: RwLock<Option<ActorRef<ControlMessage>>>,
    up: AtomicBool,
    /// Batches and generations in flight.
    outstanding: Arc<AtomicUsize>,
    max_frame_bytes: usize,
}

impl NodeLink {
    /// A link that is not connected yet.
    pub fn new(name: String, addr: SocketAddr, max_frame_bytes: usize) -> Self {
        NodeLink {
            name,
            addr,
            connection: RwLock::new(None),
            host: RwLock::new(None),
            up: AtomicBool::new(false),
            outstanding: Arc::new(AtomicUsize::new(0)),
            max_frame_bytes,
        }
    }

    /// Whether the node is connected and has answered.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    /// Calls in flight on this link.
    pub fn outstanding(&self) -> usize {
        self.outstanding.load(Ordering::Relaxed)
    }

    /// Closes the connection, failing calls in flight over it.
    pub(super) fn close(&self) {
        if let Some(connection) = self.connection.write().take() {
            connection.close(quinn::VarInt::from_u32(0), b"node left the cluster");
        }
    }

    pub(super) fn set_connection(&self, connection: Option<quinn::Connection>) {
        *self.connection.write() = connection;
    }

    pub(super) fn set_host(&self, host: Option<ActorRef<ControlMessage>>) {
        *self.host.write() = host;
    }

    pub(super) fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::Release);
    }

    /// Sends a request already encoded as a frame and waits for the answer.
    async fn call_encoded(&self, header: &[u8], payload: Bytes) -> Result<InferAnswer, ReplicaError> {
        let connection = self.connection.read().clone().ok_or_else(|| ReplicaError::Down(self.name.clone()))?;
        self.outstanding.fetch_add(1, Ordering::Relaxed);
        let _outstanding = Decrement(self.outstanding.as_ref());
        let transport = |message: String| ReplicaError::Transport { node: self.name.clone(), message };
        let (mut send, mut recv) = connection.open_bi().await.map_err(|e| transport(e.to_string()))?;
        write_frame(&mut send, Some(StreamKind::Data), header, payload).await.map_err(|e| transport(e.to_string()))?;
        let answer = read_frame(&mut recv, self.max_frame_bytes).await.map_err(|e| {
            if e.is_bad_frame() {
                ReplicaError::Protocol { node: self.name.clone(), message: e.to_string() }
            } else {
                transport(e.to_string())
            }
        })?;
        read_infer_answer(answer)
            .map_err(|e| ReplicaError::Protocol { node: self.name.clone(), message: e.to_string() })
    }

    /// The versions the node holds.
    pub async fn list_models(&self) -> Result<Vec<LoadedModel>, ReplicaError> {
        self.ask(COMMAND_LIMIT, ControlMessage::ListModels).await
    }

    /// Loads a version on the node (fetch, load, warm up).
    pub async fn load(&self, load: LoadModel) -> Result<CommandResult, ReplicaError> {
        self.ask(LOAD_LIMIT, |reply| ControlMessage::Load(Wire::new(load), reply)).await
    }

    /// Trial-loads a version on the node and drops it.
    pub async fn check(&self, load: LoadModel) -> Result<CommandResult, ReplicaError> {
        self.ask(LOAD_LIMIT, |reply| ControlMessage::Check(Wire::new(load), reply)).await
    }

    /// Unloads a version from the node.
    pub async fn unload(&self, model: &str, version: u64) -> Result<CommandResult, ReplicaError> {
        let unload = UnloadModel { model: model.to_string(), version };
        self.ask(COMMAND_LIMIT, |reply| ControlMessage::Unload(Wire::new(unload), reply)).await
    }

    /// The node's live load.
    pub async fn status(&self) -> Result<NodeStatus, ReplicaError> {
        self.ask(COMMAND_LIMIT, ControlMessage::Status).await
    }

    /// Asks the node to leave the cluster.
    pub async fn drain(&self) -> Result<CommandResult, ReplicaError> {
        self.ask(COMMAND_LIMIT, ControlMessage::Drain).await
    }

    /// Sends `message` to the node's host actor and waits up to `limit` for
    /// the answer on its reply port.
    async fn ask<T: Send + 'static>(
        &self,
        limit: Duration,
        message: impl FnOnce(RpcReplyPort<Wire<T>>) -> ControlMessage,
    ) -> Result<T, ReplicaError> {
        let host = self.host.read().clone().ok_or_else(|| ReplicaError::Down(self.name.clone()))?;
        let answer = super::control::call(&host, message, limit)
            .await
            .map_err(|e| ReplicaError::Transport { node: self.name.clone(), message: format!("{e:#}") })?;
        answer.into_inner().map_err(|message| ReplicaError::Protocol { node: self.name.clone(), message })
    }
}

#[async_trait::async_trait]
impl Replica for NodeLink {
    fn name(&self) -> &str {
        &self.name
    }

    fn is_up(&self) -> bool {
        NodeLink::is_up(self)
    }

    fn outstanding(&self) -> usize {
        NodeLink::outstanding(self)
    }

    async fn call(&self, header: &[u8], payload: Bytes) -> Result<InferAnswer, ReplicaError> {
        self.call_encoded(header, payload).await
    }

    async fn generate(&self, request: &GenerateRequest) -> Result<Box<dyn TokenStream>, ReplicaError> {
        let connection = self.connection.read().clone().ok_or_else(|| ReplicaError::Down(self.name.clone()))?;
        let transport = |message: String| ReplicaError::Transport { node: self.name.clone(), message };
        let (header, payload) = decoder::encode_request(request, self.max_frame_bytes)
            .map_err(|e| ReplicaError::Protocol { node: self.name.clone(), message: e.to_string() })?;
        let (mut send, recv) = connection.open_bi().await.map_err(|e| transport(e.to_string()))?;
        write_frame(&mut send, Some(StreamKind::Generate), &header, Bytes::from_owner(payload))
            .await
            .map_err(|e| transport(e.to_string()))?;
        self.outstanding.fetch_add(1, Ordering::Relaxed);
        Ok(Box::new(Generation { node: self.name.clone(), recv, outstanding: self.outstanding.clone() }))
    }
}

/// A generation's events as they arrive from the node. Dropping it stops
/// the stream, which the node takes as a cancellation.
struct Generation {
    node: String,
    recv: quinn::RecvStream,
    outstanding: Arc<AtomicUsize>,
}

#[async_trait::async_trait]
impl TokenStream for Generation {
    async fn next_event(&mut self) -> Result<GenerateEvent, ReplicaError> {
        let payload = read_frame(&mut self.recv, decoder::MAX_EVENT_FRAME).await.map_err(|e| {
            if e.is_bad_frame() {
                ReplicaError::Protocol { node: self.node.clone(), message: e.to_string() }
            } else {
                ReplicaError::Transport { node: self.node.clone(), message: e.to_string() }
            }
        })?;
        decoder::decode_event(&payload)
            .map_err(|e| ReplicaError::Protocol { node: self.node.clone(), message: e.to_string() })
    }
}

impl Drop for Generation {
    fn drop(&mut self) {
        self.outstanding.fetch_sub(1, Ordering::Relaxed);
    }
}

struct Decrement<'a>(&'a AtomicUsize);

impl Drop for Decrement<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
