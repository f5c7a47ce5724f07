//! Frames on QUIC streams.
//!
//! A stream opened by a coordinator starts with one byte naming its kind,
//! so control and data streams can share a connection. On a data stream
//! each side then writes one frame (see `maas_protocol::frame`) and
//! finishes; a control stream carries a ractor_cluster session.

use bytes::Bytes;
use maas_protocol::frame::{self, FrameError, Payload};

/// The first byte of a stream says what it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum StreamKind {
    /// One batch and its answer.
    Data = b'D',
    /// The control session: a ractor_cluster session for the life of the
    /// connection (see [`crate::control`]).
    Control = b'C',
    /// One generation of a decoder: a request frame in, event frames out
    /// (see `maas_protocol::decoder`).
    Generate = b'G',
}

impl StreamKind {
    /// Parses a stream's first byte.
    pub fn from_byte(byte: u8) -> Option<StreamKind> {
        match byte {
            b'D' => Some(StreamKind::Data),
            b'C' => Some(StreamKind::Control),
            b'G' => Some(StreamKind::Generate),
            _ => None,
        }
    }
}

/// Why a frame could not be read from or written to a stream.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The frame itself was bad.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The stream or connection broke.
    #[error("stream read failed: {0}")]
    Read(#[from] quinn::ReadExactError),
    /// The stream or connection broke while writing.
    #[error("stream write failed: {0}")]
    Write(#[from] quinn::WriteError),
    /// The stream was already finished.
    #[error("stream closed: {0}")]
    Closed(#[from] quinn::ClosedStream),
}

impl StreamError {
    /// Whether the peer sent a frame that was wrong, rather than the
    /// connection failing.
    pub fn is_bad_frame(&self) -> bool {
        matches!(self, StreamError::Frame(_) | StreamError::Read(quinn::ReadExactError::FinishedEarly(_)))
    }
}

/// Reads one frame and returns its aligned payload. The declared length is
/// checked against `max` before anything is allocated.
pub async fn read_frame(recv: &mut quinn::RecvStream, max: usize) -> Result<Payload, StreamError> {
    let mut header = [0u8; frame::HEADER_LEN];
    recv.read_exact(&mut header).await?;
    let len = frame::payload_len(header, max)?;
    // Chunks are copied straight from QUIC's receive buffers into the
    // aligned payload: one copy, no zero-filling first.
    let mut payload = Payload::with_capacity(len);
    while payload.len() < len {
        let chunk = recv.read_chunk(len - payload.len(), true).await.map_err(quinn::ReadExactError::ReadError)?;
        match chunk {
            Some(chunk) => payload.extend_from_slice(&chunk.bytes),
            None => return Err(quinn::ReadExactError::FinishedEarly(payload.len()).into()),
        }
    }
    Ok(payload)
}

/// Writes one frame and leaves the stream open for more.
pub async fn write_open_frame(send: &mut quinn::SendStream, header: &[u8], payload: &[u8]) -> Result<(), StreamError> {
    send.write_all(header).await?;
    send.write_all(payload).await?;
    Ok(())
}

/// Writes one frame, optionally preceded by the stream's kind byte, and
/// finishes the stream. The payload is handed to QUIC as it is, not copied
/// (a batch's payload may be sent again to another replica).
pub async fn write_frame(
    send: &mut quinn::SendStream,
    kind: Option<StreamKind>,
    header: &[u8],
    payload: Bytes,
) -> Result<(), StreamError> {
    let mut head = Vec::with_capacity(1 + header.len());
    if let Some(kind) = kind {
        head.push(kind as u8);
    }
    head.extend_from_slice(header);
    send.write_all(&head).await?;
    send.write_chunk(payload).await?;
    send.finish()?;
    Ok(())
}
