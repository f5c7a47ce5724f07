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
//! [`ControlMessage`] has one variant per command, each carrying its
//! arguments and a reply port typed with its own answer, as [`Wire`] values
//! (rkyv, validated on receipt). Tensors never travel here.

use std::net::{IpAddr, Ipv4Addr};

use anyhow::Context;
use maas_protocol::{CommandResult, LoadModel, LoadedModel, NodeStatus, UnloadModel};
use ractor::{Actor, ActorRef, RpcReplyPort};
use ractor_cluster::node::NodeConnectionMode;
use ractor_cluster::{
    BoxRead, BoxWrite, ClusterBidiStream, IncomingEncryptionMode, NodeServer, NodeServerMessage, RactorClusterMessage,
};

use crate::wire::Wire;
use crate::StreamKind;

/// The cluster cookie. Sessions only ever run over QUIC connections whose
/// peers proved a certificate from the cluster CA, so the cookie adds no
/// secret; it only has to match. ractor_cluster's own TCP listener, where
/// the cookie would be the only guard, is sealed (see [`crate::sealed_listener`]).
pub const COOKIE: &str = "maas-control/1";

/// A command to a node's host actor, with the port its answer goes to.
#[derive(RactorClusterMessage)]
pub enum ControlMessage {
    /// The model versions the node holds.
    #[rpc]
    ListModels(RpcReplyPort<Wire<Vec<LoadedModel>>>),
    /// Fetch a version's artifact, load its instances and warm them up.
    #[rpc]
    Load(Wire<LoadModel>, RpcReplyPort<Wire<CommandResult>>),
    /// Load one instance of a version, run its warm-up and drop it: a trial
    /// that the artifact is TorchScript matching its configuration.
    #[rpc]
    Check(Wire<LoadModel>, RpcReplyPort<Wire<CommandResult>>),
    /// Unload a version; batches already queued still run.
    #[rpc]
    Unload(Wire<UnloadModel>, RpcReplyPort<Wire<CommandResult>>),
    /// The node's live load: batches in flight, queues, memory, cache.
    #[rpc]
    Status(RpcReplyPort<Wire<NodeStatus>>),
    /// Leave the cluster: deregister, finish what is in flight, exit.
    #[rpc]
    Drain(RpcReplyPort<Wire<CommandResult>>),
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
