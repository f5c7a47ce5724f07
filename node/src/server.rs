//! The node's QUIC server.
//!
//! Only clients with a certificate from the cluster CA complete the
//! handshake. Each bidirectional stream carries one request: a kind byte,
//! then one frame; the node answers with one frame and finishes the stream.
//! A frame that fails validation gets an `InvalidInput` answer and touches
//! no model.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Result;
use maas_protocol::frame::{self, Payload};
use maas_protocol::{ArchivedNodeRequest, NodeError, NodeResponse};
use maas_transport::{read_frame, write_frame, StreamKind, TlsFiles, TransportSettings};

use crate::config::NodeConfig;
use crate::runtime::ModelHost;

/// A bound QUIC endpoint serving a [`ModelHost`].
pub struct QuicServer {
    endpoint: quinn::Endpoint,
    host: Arc<ModelHost>,
    max_frame_bytes: usize,
}

impl QuicServer {
    /// Binds the node's QUIC address with its certificate.
    pub fn bind(config: &NodeConfig, host: Arc<ModelHost>) -> Result<QuicServer> {
        let files = TlsFiles::in_dir(&config.cert_dir, &config.name);
        let endpoint = maas_transport::server_endpoint(config.quic_addr, &files, &TransportSettings::default())?;
        Ok(QuicServer { endpoint, host, max_frame_bytes: config.max_frame_bytes })
    }

    /// The bound address.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        Ok(self.endpoint.local_addr()?)
    }

    /// Accepts connections until the endpoint closes.
    pub async fn serve(self) -> Result<()> {
        while let Some(incoming) = self.endpoint.accept().await {
            let host = self.host.clone();
            let max = self.max_frame_bytes;
            tokio::spawn(async move {
                let remote = incoming.remote_address();
                match incoming.await {
                    Ok(connection) => serve_connection(connection, host, max).await,
                    Err(error) => tracing::warn!(%remote, %error, "refused a QUIC connection"),
                }
            });
        }
        Ok(())
    }
}

async fn serve_connection(connection: quinn::Connection, host: Arc<ModelHost>, max_frame_bytes: usize) {
    let remote = connection.remote_address();
    tracing::info!(%remote, "coordinator connected");
    loop {
        match connection.accept_bi().await {
            Ok((send, recv)) => {
                let host = host.clone();
                tokio::spawn(serve_stream(send, recv, host, max_frame_bytes));
            }
            Err(error) => {
                tracing::info!(%remote, %error, "coordinator connection closed");
                return;
            }
        }
    }
}

async fn serve_stream(mut send: quinn::SendStream, mut recv: quinn::RecvStream, host: Arc<ModelHost>, max: usize) {
    let mut kind = [0u8; 1];
    if recv.read_exact(&mut kind).await.is_err() {
        return;
    }
    if StreamKind::from_byte(kind[0]) != Some(StreamKind::Data) {
        tracing::warn!(kind = kind[0], "unknown stream kind; resetting the stream");
        let _ = send.reset(quinn::VarInt::from_u32(1));
        return;
    }
    let response = match read_frame(&mut recv, max).await {
        Ok(payload) => answer(payload, &host).await,
        Err(error) if error.is_bad_frame() => {
            NodeResponse::Error(NodeError::InvalidInput { message: format!("bad frame: {error}") })
        }
        Err(error) => {
            tracing::debug!(%error, "stream failed before its frame arrived");
            return;
        }
    };
    let encoded = frame::encode_response(&response, max).or_else(|error| {
        frame::encode_response(
            &NodeResponse::Error(NodeError::Internal { message: format!("answer could not be encoded: {error}") }),
            max,
        )
    });
    match encoded {
        Ok((header, payload)) => {
            if let Err(error) = write_frame(&mut send, None, &header, &payload).await {
                tracing::debug!(%error, "could not send an answer; the coordinator went away");
            }
        }
        Err(error) => tracing::error!(%error, "could not encode even an error answer; this is a bug"),
    }
}

async fn answer(payload: Payload, host: &ModelHost) -> NodeResponse {
    let (model, version) = match frame::access_request(&payload) {
        Err(error) => {
            return NodeResponse::Error(NodeError::InvalidInput { message: format!("bad frame: {error}") });
        }
        Ok(ArchivedNodeRequest::ListModels) => return NodeResponse::Models(host.list()),
        Ok(ArchivedNodeRequest::Infer(batch)) => (batch.model.as_str().to_owned(), batch.version.to_native()),
    };
    match host.submit(&model, version, payload) {
        Ok(answer) => answer.await.unwrap_or_else(|_| {
            NodeResponse::Error(NodeError::Internal { message: format!("model '{model}' instance stopped mid-batch") })
        }),
        Err(error) => NodeResponse::Error(error),
    }
}
