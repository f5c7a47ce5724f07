//! A generation stream: the coordinator's request frame in, the decoder's
//! events out, one frame each, as they come.
//!
//! The stream is the sequence's lifeline: when the coordinator drops it
//! (its client went away, or a stop string ended the text) the node's next
//! write fails or `stopped` fires, the event channel is dropped, and the
//! decoder thread cancels the sequence and frees its cache before its next
//! step.

use maas_protocol::decoder::{self, GenerateEvent};
use maas_protocol::NodeError;
use maas_transport::{read_frame, write_open_frame};

use crate::runtime::ModelHost;

/// Serves one generation stream whose kind byte has been read.
pub async fn serve(mut send: quinn::SendStream, mut recv: quinn::RecvStream, host: &ModelHost, max_frame: usize) {
    let mut events = match read_frame(&mut recv, max_frame).await {
        Ok(payload) => match decoder::decode_request(&payload) {
            Ok(request) => {
                tracing::debug!(model = %request.model, version = request.version, request_id = %request.request_id,
                    prompt = request.prompt.len(), "generation started");
                host.generate(request)
            }
            Err(error) => Err(NodeError::InvalidInput { message: format!("bad generate frame: {error}") }),
        },
        Err(error) if error.is_bad_frame() => {
            Err(NodeError::InvalidInput { message: format!("bad generate frame: {error}") })
        }
        Err(error) => {
            tracing::debug!(%error, "generation stream failed before its request arrived");
            return;
        }
    };
    loop {
        let event = match &mut events {
            Ok(receiver) => {
                tokio::select! {
                    event = receiver.recv() => event.unwrap_or_else(|| GenerateEvent::Failed { error: NodeError::Internal {
                        message: "the decoder stopped mid-generation".into(),
                    } }),
                    _ = send.stopped() => return,
                }
            }
            Err(error) => GenerateEvent::Failed { error: error.clone() },
        };
        let last = !matches!(event, GenerateEvent::Token { .. });
        let (header, payload) = match decoder::encode_event(&event) {
            Ok(frame) => frame,
            Err(error) => {
                tracing::error!(%error, "could not encode a generation event; this is a bug");
                return;
            }
        };
        if write_open_frame(&mut send, &header, &payload).await.is_err() {
            // Gone: dropping the channel cancels the sequence.
            return;
        }
        if last {
            let _ = send.finish();
            return;
        }
    }
}
