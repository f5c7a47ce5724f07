//! The control plane: ractor_cluster sessions over QUIC.
//!
//! Every coordinator and node runs a ractor_cluster `NodeServer`. When a
//! coordinator has connected to a node (mutual TLS, so both sides know who
//! the other is), it opens one more bidirectional stream tagged
//! [`StreamKind::Control`] and starts a cluster session over it as the
//! client; the node hands the stream to its own server as the accepting
//! side. The node's host actor is in the process group [`host_group`], so
//! once the session is ready the coordinator finds it there and sends it
//! [`ControlMessage`]s. The session lives and dies with the QUIC
//! connection: QUIC's keep-alive and idle timeout are its failure detector.
//!
//! Each [`ControlMessage::Call`] carries one framed, rkyv-encoded
//! `NodeRequest` and answers with one framed `NodeResponse`, validated on
//! receipt like the frames on data streams. Tensors never travel here.

use std::net::{IpAddr, Ipv4Addr};

use anyhow::Context;
use maas_protocol::frame;
use maas_protocol::{NodeRequest, NodeResponse};
use ractor::{Actor, ActorRef, RpcReplyPort};
use ractor_cluster::node::NodeConnectionMode;
use ractor_cluster::{
    BoxRead, BoxWrite, ClusterBidiStream, IncomingEncryptionMode, NodeServer, NodeServerMessage, RactorClusterMessage,
};

use crate::StreamKind;

/// The cluster cookie. Sessions only ever run over QUIC connections whose
/// peers proved a certificate from the cluster CA, so the cookie adds no
/// secret; it only has to match. ractor_cluster's own TCP listener, where
/// the cookie would be the only guard, is sealed (see [`crate::sealed_listener`]).
pub const COOKIE: &str = "maas-control/1";

/// A message to a node's host actor.
#[derive(RactorClusterMessage)]
pub enum ControlMessage {
    /// A framed `NodeRequest`; the answer is a framed `NodeResponse`.
    #[rpc]
    Call(Vec<u8>, RpcReplyPort<Vec<u8>>),
}

/// The process group of node `name`'s host actor.
pub fn host_group(name: &str) -> String {
    format!("maas.node.{name}.host")
}

/// Starts this process's cluster server under `name`. Its own TCP listener
/// (ractor_cluster always opens one) is bound to a free loopback port and
/// sealed: its TLS handshake admits no client, so sessions come only over
/// QUIC.
pub async fn start_server(name: &str) -> anyhow::Result<ActorRef<NodeServerMessage>> {
    let sealed = crate::sealed_listener::acceptor()?;
    let server = NodeServer::new(
        0,
        COOKIE.to_string(),
        name.to_string(),
        "localhost".to_string(),
        Some(IncomingEncryptionMode::Tls(sealed)),
        Some(NodeConnectionMode::Isolated),
    )
    .with_listen_addr(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let (actor, _handle) = Actor::spawn(None, server, ()).await.context("starting the control-plane server")?;
    Ok(actor)
}

/// One QUIC stream carrying a cluster session.
struct QuicSessionStream {
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    label: String,
}

impl ClusterBidiStream for QuicSessionStream {
    fn split(self: Box<Self>) -> (BoxRead, BoxWrite) {
        (Box::new(self.recv), Box::new(self.send))
    }

    fn peer_label(&self) -> Option<String> {
        Some(self.label.clone())
    }
}

/// Opens a control stream on `connection` and starts a session over it as
/// the client. `label` names the session in the server's session list; make
/// it unique per connection to find the session again.
pub async fn dial(
    server: &ActorRef<NodeServerMessage>,
    connection: &quinn::Connection,
    label: String,
) -> anyhow::Result<()> {
    let (mut send, recv) = connection.open_bi().await.context("opening the control stream")?;
    send.write_all(&[StreamKind::Control as u8]).await.context("tagging the control stream")?;
    let stream = QuicSessionStream { send, recv, label };
    ractor_cluster::client_connect_external(server, Box::new(stream)).await.context("starting the control session")?;
    Ok(())
}

/// Hands a control stream accepted from a coordinator (its kind byte
/// already read) to the server as an incoming session.
pub fn accept(
    server: &ActorRef<NodeServerMessage>,
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    label: String,
) -> anyhow::Result<()> {
    let stream = Box::new(QuicSessionStream { send, recv, label });
    server
        .cast(NodeServerMessage::ConnectionOpenedExternal { stream, is_server: true })
        .map_err(|e| anyhow::anyhow!("the control-plane server is gone: {e}"))
}

/// Encodes a request for [`ControlMessage::Call`].
pub fn encode_request(request: &NodeRequest) -> Result<Vec<u8>, frame::FrameError> {
    let (mut bytes, payload) = frame::encode_request(request, frame::DEFAULT_MAX_FRAME_BYTES)?;
    bytes.extend_from_slice(&payload);
    Ok(bytes)
}

/// Validates and decodes a request received in a [`ControlMessage::Call`].
pub fn decode_request(bytes: &[u8]) -> Result<NodeRequest, frame::FrameError> {
    frame::decode_request(&frame::split_frame(bytes, frame::DEFAULT_MAX_FRAME_BYTES)?)
}

/// Encodes an answer to a [`ControlMessage::Call`].
pub fn encode_response(response: &NodeResponse) -> Result<Vec<u8>, frame::FrameError> {
    let (mut bytes, payload) = frame::encode_response(response, frame::DEFAULT_MAX_FRAME_BYTES)?;
    bytes.extend_from_slice(&payload);
    Ok(bytes)
}

/// Validates and decodes an answer to a [`ControlMessage::Call`].
pub fn decode_response(bytes: &[u8]) -> Result<NodeResponse, frame::FrameError> {
    frame::decode_response(&frame::split_frame(bytes, frame::DEFAULT_MAX_FRAME_BYTES)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use maas_protocol::{LoadModel, ModelLoad, NodeError, NodeStatus};

    #[test]
    fn commands_and_answers_round_trip() {
        let load = NodeRequest::Load(LoadModel {
            model: "clf".into(),
            version: 3,
            config_json: "{}".into(),
            sha256: "ab".repeat(32),
            size: 1234,
        });
        for request in [NodeRequest::ListModels, NodeRequest::Status, NodeRequest::Drain, load] {
            assert_eq!(decode_request(&encode_request(&request).unwrap()).unwrap(), request);
        }
        let status = NodeResponse::Status(NodeStatus {
            in_flight: 2,
            draining: false,
            memory_bytes: 8 << 30,
            memory_used_bytes: 300,
            models: vec![ModelLoad { name: "clf".into(), version: 3, queued: 1, instances: 2 }],
            cached_artifacts: vec!["ab".repeat(32)],
        });
        for response in [NodeResponse::Done, status, NodeResponse::Error(NodeError::Overloaded)] {
            assert_eq!(decode_response(&encode_response(&response).unwrap()).unwrap(), response);
        }
    }

    #[test]
    fn damaged_commands_are_refused() {
        let bytes = encode_request(&NodeRequest::Unload { model: "clf".into(), version: 1 }).unwrap();
        assert!(decode_request(&bytes[..bytes.len() - 1]).is_err(), "truncated");
        assert!(decode_request(&bytes[..2]).is_err(), "shorter than a header");
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode_request(&longer).is_err(), "trailing bytes");
        let mut garbage = bytes.clone();
        for byte in garbage[frame::HEADER_LEN..].iter_mut() {
            *byte = 0xff;
        }
        assert!(decode_request(&garbage).is_err(), "garbage payload");
        let mut huge = bytes;
        huge[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode_request(&huge).is_err(), "declared length over the limit");
    }
}
