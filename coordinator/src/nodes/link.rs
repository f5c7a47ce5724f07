//! One QUIC connection to a node, and calls over it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use maas_protocol::frame;
use maas_protocol::{NodeRequest, NodeResponse};
use maas_transport::{read_frame, write_frame, StreamKind};
use parking_lot::RwLock;

/// Why a call to a node failed without an answer.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
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

/// A node as the coordinator sees it.
pub struct NodeLink {
    /// The node's certificate name.
    pub name: String,
    /// Its QUIC address.
    pub addr: SocketAddr,
    connection: RwLock<Option<quinn::Connection>>,
    up: AtomicBool,
    outstanding: AtomicUsize,
    max_frame_bytes: usize,
}

impl NodeLink {
    /// A link that is not connected yet.
    pub fn new(name: String, addr: SocketAddr, max_frame_bytes: usize) -> Self {
        NodeLink {
            name,
            addr,
            connection: RwLock::new(None),
            up: AtomicBool::new(false),
            outstanding: AtomicUsize::new(0),
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

    pub(super) fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::Release);
    }

    /// Sends a request already encoded as a frame and waits for the answer.
    pub async fn call_encoded(&self, header: &[u8], payload: &[u8]) -> Result<NodeResponse, LinkError> {
        let connection = self.connection.read().clone().ok_or_else(|| LinkError::Down(self.name.clone()))?;
        self.outstanding.fetch_add(1, Ordering::Relaxed);
        let _outstanding = Decrement(&self.outstanding);
        let transport = |message: String| LinkError::Transport { node: self.name.clone(), message };
        let (mut send, mut recv) = connection.open_bi().await.map_err(|e| transport(e.to_string()))?;
        write_frame(&mut send, Some(StreamKind::Data), header, payload)
            .await
            .map_err(|e| transport(e.to_string()))?;
        let answer = read_frame(&mut recv, self.max_frame_bytes).await.map_err(|e| {
            if e.is_bad_frame() {
                LinkError::Protocol { node: self.name.clone(), message: e.to_string() }
            } else {
                transport(e.to_string())
            }
        })?;
        frame::decode_response(&answer).map_err(|e| LinkError::Protocol { node: self.name.clone(), message: e.to_string() })
    }

    /// Encodes and sends a request.
    pub async fn call(&self, request: &NodeRequest) -> Result<NodeResponse, LinkError> {
        let (header, payload) = frame::encode_request(request, self.max_frame_bytes)
            .map_err(|e| LinkError::Protocol { node: self.name.clone(), message: e.to_string() })?;
        self.call_encoded(&header, &payload).await
    }
}

struct Decrement<'a>(&'a AtomicUsize);

impl Drop for Decrement<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
