//! Length-prefixed frames with validated decoding.
//!
//! A frame is a 4-byte little-endian payload length followed by the payload,
//! an rkyv archive. Decoding never trusts the bytes: the length is checked
//! against a maximum before anything is allocated, and the archive is
//! validated (`rkyv::access`) before any field is read.

use rkyv::rancor;
use rkyv::util::AlignedVec;

use crate::{ArchivedInferBatch, BatchInput, BatchOutcome, BatchReply, InferBatch, RequestOutcome, Tensor};

/// Bytes in the length prefix.
pub const HEADER_LEN: usize = 4;

/// The largest frame a peer accepts unless configured otherwise: 64 MiB.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 64 << 20;

/// Alignment of decoded payload buffers.
pub const PAYLOAD_ALIGN: usize = 16;

/// A payload buffer aligned for rkyv access.
pub type Payload = AlignedVec<PAYLOAD_ALIGN>;

/// Why a frame could not be encoded or decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    /// The declared or actual length exceeds the maximum.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Declared length.
        len: usize,
        /// Configured maximum.
        max: usize,
    },
    /// Fewer bytes than the header or the declared length.
    #[error("frame truncated: expected {expected} bytes, got {got}")]
    Truncated {
        /// Bytes the frame should have.
        expected: usize,
        /// Bytes present.
        got: usize,
    },
    /// The payload is not a valid archive of the expected message.
    #[error("invalid frame payload: {0}")]
    Invalid(String),
}

/// Reads the payload length from a frame header and checks it against `max`.
pub fn payload_len(header: [u8; HEADER_LEN], max: usize) -> Result<usize, FrameError> {
    let len = u32::from_le_bytes(header) as usize;
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    if len == 0 {
        return Err(FrameError::Invalid("empty payload".into()));
    }
    Ok(len)
}

/// Serializes a batch to a payload and its header. Each input's parts are
/// written straight into the payload, which is sized up front so it never
/// grows (each growth would copy everything written so far).
pub fn encode_batch(batch: &InferBatch, max: usize) -> Result<(Vec<u8>, Payload), FrameError> {
    let data: usize = batch.inputs.iter().map(BatchInput::data_len).sum();
    let payload = rkyv::api::high::to_bytes_in::<_, rancor::Error>(batch, sized_payload(data))
        .map_err(|e| FrameError::Invalid(e.to_string()))?;
    with_header(payload, max)
}

/// Serializes a node's answer to a batch to a payload and its header.
pub fn encode_reply(reply: &BatchReply, max: usize) -> Result<(Vec<u8>, Payload), FrameError> {
    let data = match reply {
        BatchReply::Ran(result) => match &result.outcome {
            BatchOutcome::Whole(outputs) => tensor_bytes(outputs),
            BatchOutcome::PerRequest(outcomes) => outcomes
                .iter()
                .map(|outcome| match outcome {
                    RequestOutcome::Ok(outputs) => tensor_bytes(outputs),
                    RequestOutcome::Err(_) => 0,
                })
                .sum(),
        },
        BatchReply::Failed(_) => 0,
    };
    let payload = rkyv::api::high::to_bytes_in::<_, rancor::Error>(reply, sized_payload(data))
        .map_err(|e| FrameError::Invalid(e.to_string()))?;
    with_header(payload, max)
}

fn tensor_bytes(tensors: &[Tensor]) -> usize {
    tensors.iter().map(|t| t.data.len()).sum()
}

fn sized_payload(data_bytes: usize) -> Payload {
    Payload::with_capacity(data_bytes + 4096)
}

fn with_header(payload: Payload, max: usize) -> Result<(Vec<u8>, Payload), FrameError> {
    if payload.len() > max || payload.len() > u32::MAX as usize {
        return Err(FrameError::TooLarge { len: payload.len(), max });
    }
    Ok(((payload.len() as u32).to_le_bytes().to_vec(), payload))
}

/// A batch payload whose archive has been validated, once, on arrival. Only
/// [`ValidatedBatch::new`] makes one, so whoever holds it reads the batch
/// without checking it again.
pub struct ValidatedBatch {
    payload: Payload,
}

impl ValidatedBatch {
    /// Validates `payload` as an archived [`InferBatch`].
    pub fn new(payload: Payload) -> Result<ValidatedBatch, FrameError> {
        rkyv::access::<ArchivedInferBatch, rancor::Error>(&payload).map_err(|e| FrameError::Invalid(e.to_string()))?;
        Ok(ValidatedBatch { payload })
    }

    /// The batch, read in place.
    pub fn batch(&self) -> &ArchivedInferBatch {
        // SAFETY: `new` validated exactly these bytes as an
        // `ArchivedInferBatch`, and the payload is owned here and never
        // mutated afterwards (moving `self` moves the vector, not its heap
        // buffer, so the archive's position and alignment are unchanged).
        unsafe { rkyv::access_unchecked::<ArchivedInferBatch>(&self.payload) }
    }
}

impl std::fmt::Debug for ValidatedBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let batch = self.batch();
        f.debug_struct("ValidatedBatch")
            .field("batch_id", &batch.batch_id.to_native())
            .field("model", &batch.model.as_str())
            .field("version", &batch.version.to_native())
            .finish()
    }
}

/// Validates a batch payload and deserializes it (tools and tests; a node
/// reads batches in place with [`ValidatedBatch`]).
pub fn decode_batch(payload: &[u8]) -> Result<InferBatch, FrameError> {
    rkyv::from_bytes::<InferBatch, rancor::Error>(payload).map_err(|e| FrameError::Invalid(e.to_string()))
}

/// Validates a reply payload and deserializes it (tools and tests; the
/// coordinator reads replies in place with [`crate::answer`]).
pub fn decode_reply(payload: &[u8]) -> Result<BatchReply, FrameError> {
    rkyv::from_bytes::<BatchReply, rancor::Error>(payload).map_err(|e| FrameError::Invalid(e.to_string()))
}

/// Splits a complete frame held in memory into its aligned payload.
pub fn split_frame(bytes: &[u8], max: usize) -> Result<Payload, FrameError> {
    if bytes.len() < HEADER_LEN {
        return Err(FrameError::Truncated { expected: HEADER_LEN, got: bytes.len() });
    }
    let header: [u8; HEADER_LEN] = bytes[..HEADER_LEN].try_into().expect("length checked above");
    let len = payload_len(header, max)?;
    let body = &bytes[HEADER_LEN..];
    if body.len() < len {
        return Err(FrameError::Truncated { expected: len, got: body.len() });
    }
    if body.len() > len {
        return Err(FrameError::Invalid(format!("{} bytes after the end of the frame", body.len() - len)));
    }
    let mut payload = Payload::with_capacity(len);
    payload.extend_from_slice(body);
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BatchResult, DataType, NodeError};

    fn batch() -> InferBatch {
        InferBatch {
            batch_id: 7,
            model: "mlp".into(),
            version: 1,
            inputs: vec![BatchInput {
                name: "INPUT__0".into(),
                datatype: DataType::Fp32,
                shape: vec![2, 3],
                data: vec![(0..12).collect::<Vec<u8>>().into(), (12..24).collect::<Vec<u8>>().into()],
            }],
            request_rows: vec![1, 1],
            request_ids: vec!["a".into(), String::new()],
        }
    }

    fn whole(batch: InferBatch) -> InferBatch {
        let inputs = batch
            .inputs
            .into_iter()
            .map(|input| {
                let data: Vec<u8> = input.data.iter().flat_map(|part| part.iter().copied()).collect();
                BatchInput::whole(input.name, input.datatype, input.shape, data)
            })
            .collect();
        InferBatch { inputs, ..batch }
    }

    fn frame_of(batch: &InferBatch) -> Vec<u8> {
        let (header, payload) = encode_batch(batch, DEFAULT_MAX_FRAME_BYTES).unwrap();
        let mut bytes = header;
        bytes.extend_from_slice(&payload);
        bytes
    }

    #[test]
    fn a_batch_in_parts_arrives_as_one_array() {
        let bytes = frame_of(&batch());
        let payload = split_frame(&bytes, DEFAULT_MAX_FRAME_BYTES).unwrap();
        assert_eq!(decode_batch(&payload).unwrap(), whole(batch()));
        let validated = ValidatedBatch::new(payload).unwrap();
        let archived = validated.batch();
        assert_eq!(archived.model.as_str(), "mlp");
        assert_eq!(archived.inputs[0].shape_vec(), vec![2, 3]);
        assert_eq!(archived.inputs[0].data.as_slice(), &(0..24).collect::<Vec<u8>>()[..]);
    }

    #[test]
    fn parts_and_one_buffer_make_the_same_frame() {
        assert_eq!(frame_of(&batch()), frame_of(&whole(batch())));
    }

    #[test]
    fn response_round_trips() {
        let response = BatchReply::Ran(BatchResult {
            batch_id: 1,
            queue_ns: 2,
            compute_input_ns: 3,
            compute_infer_ns: 4,
            compute_output_ns: 5,
            outcome: BatchOutcome::PerRequest(vec![
                RequestOutcome::Ok(vec![]),
                RequestOutcome::Err(NodeError::ModelFailed { model: "m".into(), message: "boom".into() }),
            ]),
        });
        let (header, payload) = encode_reply(&response, DEFAULT_MAX_FRAME_BYTES).unwrap();
        let mut bytes = header;
        bytes.extend_from_slice(&payload);
        let payload = split_frame(&bytes, DEFAULT_MAX_FRAME_BYTES).unwrap();
        assert_eq!(decode_reply(&payload).unwrap(), response);
    }

    #[test]
    fn truncated_frames_are_errors() {
        let bytes = frame_of(&batch());
        for cut in 0..bytes.len() {
            let err = split_frame(&bytes[..cut], DEFAULT_MAX_FRAME_BYTES).unwrap_err();
            assert!(matches!(err, FrameError::Truncated { .. }), "cut at {cut}: {err:?}");
        }
        // A payload cut short under a header rewritten to match never panics
        // and never decodes to the original batch. (rkyv roots sit at the end,
        // so a few prefixes can be valid archives of a smaller message.)
        let (_, payload) = encode_batch(&batch(), DEFAULT_MAX_FRAME_BYTES).unwrap();
        let mut rejected = 0;
        for cut in 0..payload.len() {
            let mut short = Payload::new();
            short.extend_from_slice(&payload[..cut]);
            match decode_batch(&short) {
                Ok(decoded) => assert_ne!(decoded, whole(batch())),
                Err(_) => rejected += 1,
            }
            let decoded = decode_batch(&short).is_ok();
            assert_eq!(ValidatedBatch::new(short).is_ok(), decoded);
        }
        assert!(rejected > payload.len() * 3 / 4, "only {rejected} of {} cuts rejected", payload.len());
    }

    #[test]
    fn oversized_frames_are_refused_before_reading() {
        let bytes = frame_of(&batch());
        let err = split_frame(&bytes, 16).unwrap_err();
        assert!(matches!(err, FrameError::TooLarge { max: 16, .. }));
        assert_eq!(
            payload_len(u32::MAX.to_le_bytes(), DEFAULT_MAX_FRAME_BYTES),
            Err(FrameError::TooLarge { len: u32::MAX as usize, max: DEFAULT_MAX_FRAME_BYTES })
        );
        assert!(encode_batch(&batch(), 16).is_err());
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let mut bytes = frame_of(&batch());
        bytes.push(0);
        assert!(matches!(split_frame(&bytes, DEFAULT_MAX_FRAME_BYTES), Err(FrameError::Invalid(_))));
    }

    #[test]
    fn corrupted_payloads_never_panic() {
        let (_, payload) = encode_batch(&batch(), DEFAULT_MAX_FRAME_BYTES).unwrap();
        let mut rejected = 0;
        for position in 0..payload.len() {
            for pattern in [0xFFu8, 0x80, 0x01] {
                let mut corrupted = Payload::new();
                corrupted.extend_from_slice(&payload);
                corrupted[position] ^= pattern;
                let decoded = decode_batch(&corrupted);
                assert_eq!(ValidatedBatch::new(corrupted).is_ok(), decoded.is_ok());
                if decoded.is_err() {
                    rejected += 1;
                }
            }
        }
        // Flipping bytes of tensor data yields another valid batch; flipping
        // lengths, offsets and discriminants must be caught.
        assert!(rejected > payload.len() / 4, "only {rejected} corruptions rejected");
    }

    #[test]
    fn garbage_is_refused() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for len in [1usize, 7, 16, 64, 255, 1024] {
            let mut garbage = Payload::new();
            for _ in 0..len {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                garbage.push(state as u8);
            }
            assert!(decode_reply(&garbage).is_err());
            assert!(ValidatedBatch::new(garbage).is_err(), "garbage of {len} bytes accepted");
        }
    }
}
