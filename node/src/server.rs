//! The node's QUIC server.
//!
//! Only clients with a certificate from the cluster CA complete the
//! handshake. Each bidirectional stream starts with a kind byte. A data
//! stream carries one batch in one frame; the node answers with one frame
//! and finishes the stream. A frame that fails validation gets an
//! `InvalidInput` answer and touches no model. A generation stream carries
//! one decoder sequence (see [`crate::generate_stream`]). A control stream
//! is handed to the control plane (see [`crate::control`]).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::Result;
use maas_protocol::frame::{self, Payload, ValidatedBatch};
use maas_protocol::{BatchReply, NodeError};
use maas_transport::{read_frame, write_frame, StreamKind, TlsFiles, TransportSettings};
use ractor::ActorRef;
use ractor_cluster::NodeServerMessage;

use crate::config::NodeConfig;
use crate::runtime::ModelHost;

/// A bound QUIC endpoint serving a [`ModelHost`].
pub struct QuicServer {
    endpoint: quinn::Endpoint,
    host: Arc<ModelHost>,
    max_frame_bytes: usize,
    in_flight: Arc<AtomicUsize>,
}

impl QuicServer {
    /// Binds the node's QUIC address with its certificate.
    pub fn bind(config: &NodeConfig, host: Arc<ModelHost>) -> Result<QuicServer> {
        let files = TlsFiles::in_dir(&config.cert_dir, &config.name);
        let endpoint = maas_transport::server_endpoint(config.quic_addr, &files, &TransportSettings::default())?;
        Ok(QuicServer {
            endpoint,
            host,
            max_frame_bytes: config.max_frame_bytes,
            in_flight: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// Requests being answered right now.
    pub fn in_flight(&self) -> Arc<AtomicUsize> {
        self.in_flight.clone()
    }

    /// The bound address.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        Ok(self.endpoint.local_addr()?)
    }

    /// Accepts connections until the endpoint closes; control streams go to
    /// `control_server`.
    pub async fn serve(self, control_server: ActorRef<NodeServerMessage>) -> Result<()> {
        while let Some(incoming) = self.endpoint.accept().await {
            let services = Services {
                host: self.host.clone(),
                control_server: control_server.clone(),
                max_frame_bytes: self.max_frame_bytes,
                in_flight: self.in_flight.clone(),
            };
            tokio::spawn(async move {
                let remote = incoming.remote_address();
                match incoming.await {
                    Ok(connection) => serve_connection(connection, Arc::new(services)).await,
                    Err(error) => tracing::warn!(%remote, %error, "refused a QUIC connection"),
                }
            });
        }
        Ok(())
    }
}

/// What a stream handler needs.
struct Services {
    host: Arc<ModelHost>,
    control_server: ActorRef<NodeServerMessage>,
    max_frame_bytes: usize,
    in_flight: Arc<AtomicUsize>,
}

/// Counts a request as in flight while alive.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn new(counter: &Arc<AtomicUsize>) -> InFlight {
        counter.fetch_add(1, Ordering::AcqRel);
        InFlight(counter.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

async fn serve_connection(connection: quinn::Connection, services: Arc<Services>) {
    let remote = connection.remote_address();
    tracing::info!(%remote, "coordinator connected");
    loop {
        match connection.accept_bi().await {
            Ok((send, recv)) => {
                tokio::spawn(serve_stream(send, recv, services.clone(), remote));
            }
            Err(error) => {
                tracing::info!(%remote, %error, "coordinator connection closed");
                return;
            }
        }
    }
}

async fn serve_stream(
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    services: Arc<Services>,
    remote: SocketAddr,
) {
    let mut kind = [0u8; 1];
    if recv.read_exact(&mut kind).await.is_err() {
        return;
    }
    match StreamKind::from_byte(kind[0]) {
        Some(StreamKind::Data) => {}
        Some(StreamKind::Generate) => {
            let _in_flight = InFlight::new(&services.in_flight);
            return crate::generate_stream::serve(send, recv, &services.host, services.max_frame_bytes).await;
        }
        Some(StreamKind::Control) => {
            let label = format!("quic://{remote}/{}", send.id());
            if let Err(error) = maas_transport::control::accept(&services.control_server, send, recv, label) {
                tracing::error!(%error, "could not start a control session");
            }
            return;
        }
        None => {
            tracing::warn!(kind = kind[0], "unknown stream kind; resetting the stream");
            let _ = send.reset(quinn::VarInt::from_u32(1));
            return;
        }
    }
    let _in_flight = InFlight::new(&services.in_flight);
    let max = services.max_frame_bytes;
    let response = match read_frame(&mut recv, max).await {
        Ok(payload) => answer(payload, &services).await,
        Err(error) if error.is_bad_frame() => {
            BatchReply::Failed(NodeError::InvalidInput { message: format!("bad frame: {error}") })
        }
        Err(error) => {
            tracing::debug!(%error, "stream failed before its frame arrived");
            return;
        }
    };
    let encoded = frame::encode_reply(&response, max).or_else(|error| {
        frame::encode_reply(
            &BatchReply::Failed(NodeError::Internal { message: format!("answer could not be encoded: {error}") }),
            max,
        )
    });
    match encoded {
        Ok((header, payload)) => {
            if let Err(error) = write_frame(&mut send, None, &header, bytes::Bytes::from_owner(payload)).await {
                tracing::debug!(%error, "could not send an answer; the coordinator went away");
            }
        }
        Err(error) => tracing::error!(%error, "could not encode even an error answer; this is a bug"),
    }
}

async fn answer(payload: Payload, services: &Services) -> BatchReply {
    let batch = match ValidatedBatch::new(payload) {
        Ok(batch) => batch,
        Err(error) => return BatchReply::Failed(NodeError::InvalidInput { message: format!("bad frame: {error}") }),
    };
    match services.host.submit(batch) {
        Ok(answer) => answer.await,
        Err(error) => BatchReply::Failed(error),
    }
}
