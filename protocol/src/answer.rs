//! A node's answer to a batch, read in place.
//!
//! The coordinator receives each answer into one aligned buffer. Instead of
//! deserializing it (which would copy every output into a new vector), the
//! archive is validated once and each output tensor becomes a [`TensorBytes`]
//! whose data is a slice of that buffer; splitting outputs among the
//! batch's requests then slices it again, so output bytes are never copied
//! between the QUIC stream and the front's encoder.

use bytes::Bytes;
use rkyv::rancor;

use crate::data::{ArchivedBatchOutcome, ArchivedBatchReply, ArchivedRequestOutcome};
use crate::error::ArchivedNodeError;
use crate::frame::{FrameError, Payload};
use crate::{ArchivedTensor, NodeError};
use crate::{DataType, TensorBytes};

/// What a node answered to a batch.
#[derive(Debug)]
pub enum InferAnswer {
    /// The batch ran (wholly, or request by request).
    Ran(BatchAnswer),
    /// The node could not handle the batch at all.
    Failed(NodeError),
}

/// A batch's outputs and where its time went on the node.
#[derive(Debug)]
pub struct BatchAnswer {
    /// Echo of the batch's id.
    pub batch_id: u64,
    /// Nanoseconds the batch waited for a free model instance.
    pub queue_ns: u64,
    /// Nanoseconds spent building input tensors.
    pub compute_input_ns: u64,
    /// Nanoseconds spent in the model's forward.
    pub compute_infer_ns: u64,
    /// Nanoseconds spent copying outputs back.
    pub compute_output_ns: u64,
    /// The outputs.
    pub outcome: AnswerOutcome,
}

impl BatchAnswer {
    /// Node time of the batch: inputs, forward and outputs. The node's
    /// figures are its word, so their sum saturates instead of overflowing.
    pub fn compute_ns(&self) -> u64 {
        self.compute_input_ns.saturating_add(self.compute_infer_ns).saturating_add(self.compute_output_ns)
    }
}

/// Outputs of the whole batch, or of each request run alone.
#[derive(Debug)]
pub enum AnswerOutcome {
    /// One tensor per model output, covering every row of the batch.
    Whole(Vec<TensorBytes>),
    /// One outcome per request of the batch.
    PerRequest(Vec<Result<Vec<TensorBytes>, NodeError>>),
}

/// Validates a node's answer to a batch and reads it without copying its
/// tensors.
pub fn read_infer_answer(payload: Payload) -> Result<InferAnswer, FrameError> {
    let buffer = Bytes::from_owner(payload);
    let archived =
        rkyv::access::<ArchivedBatchReply, rancor::Error>(&buffer).map_err(|e| FrameError::Invalid(e.to_string()))?;
    match archived {
        ArchivedBatchReply::Ran(result) => {
            let outcome = match &result.outcome {
                ArchivedBatchOutcome::Whole(outputs) => {
                    AnswerOutcome::Whole(outputs.iter().map(|t| shared(&buffer, t)).collect())
                }
                ArchivedBatchOutcome::PerRequest(outcomes) => AnswerOutcome::PerRequest(
                    outcomes
                        .iter()
                        .map(|outcome| match outcome {
                            ArchivedRequestOutcome::Ok(outputs) => {
                                Ok(Ok(outputs.iter().map(|t| shared(&buffer, t)).collect()))
                            }
                            ArchivedRequestOutcome::Err(error) => node_error(error).map(Err),
                        })
                        .collect::<Result<Vec<_>, FrameError>>()?,
                ),
            };
            Ok(InferAnswer::Ran(BatchAnswer {
                batch_id: result.batch_id.to_native(),
                queue_ns: result.queue_ns.to_native(),
                compute_input_ns: result.compute_input_ns.to_native(),
                compute_infer_ns: result.compute_infer_ns.to_native(),
                compute_output_ns: result.compute_output_ns.to_native(),
                outcome,
            }))
        }
        ArchivedBatchReply::Failed(error) => Ok(InferAnswer::Failed(node_error(error)?)),
    }
}

/// A tensor of the archive whose data is a slice of `buffer`.
fn shared(buffer: &Bytes, tensor: &ArchivedTensor) -> TensorBytes {
    let data = tensor.data.as_slice();
    // The archive was validated inside `buffer`, so `data` lies within it.
    let offset = data.as_ptr() as usize - buffer.as_ptr() as usize;
    TensorBytes {
        name: tensor.name.as_str().to_string(),
        datatype: DataType::from(tensor.datatype),
        shape: tensor.shape_vec(),
        data: buffer.slice(offset..offset + data.len()),
    }
}

fn node_error(error: &ArchivedNodeError) -> Result<NodeError, FrameError> {
    rkyv::deserialize::<NodeError, rancor::Error>(error).map_err(|e| FrameError::Invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{encode_reply, split_frame, DEFAULT_MAX_FRAME_BYTES};
    use crate::{BatchOutcome, BatchReply, BatchResult, RequestOutcome, Tensor};

    fn payload_of(response: &BatchReply) -> Payload {
        let (mut bytes, payload) = encode_reply(response, DEFAULT_MAX_FRAME_BYTES).unwrap();
        bytes.extend_from_slice(&payload);
        split_frame(&bytes, DEFAULT_MAX_FRAME_BYTES).unwrap()
    }

    fn tensor(name: &str, data: Vec<u8>) -> Tensor {
        Tensor { name: name.into(), datatype: DataType::Uint8, shape: vec![data.len() as i64], data }
    }

    #[test]
    fn outputs_are_slices_of_the_received_buffer() {
        let response = BatchReply::Ran(BatchResult {
            batch_id: 9,
            queue_ns: 1,
            compute_input_ns: 2,
            compute_infer_ns: 3,
            compute_output_ns: 4,
            outcome: BatchOutcome::Whole(vec![tensor("a", (0..40).collect()), tensor("b", vec![7; 3])]),
        });
        let InferAnswer::Ran(answer) = read_infer_answer(payload_of(&response)).unwrap() else { panic!("not ran") };
        assert_eq!((answer.batch_id, answer.compute_ns()), (9, 9));
        let AnswerOutcome::Whole(outputs) = answer.outcome else { panic!("not whole") };
        assert_eq!(outputs[0].name, "a");
        assert_eq!(&outputs[0].data[..], &(0..40).collect::<Vec<u8>>()[..]);
        assert_eq!((outputs[1].shape.clone(), &outputs[1].data[..]), (vec![3], &[7u8, 7, 7][..]));
    }

    #[test]
    fn per_request_outcomes_and_errors_are_read() {
        let failure = NodeError::ModelFailed { model: "m".into(), message: "boom".into() };
        let response = BatchReply::Ran(BatchResult {
            batch_id: 1,
            queue_ns: 0,
            compute_input_ns: 0,
            compute_infer_ns: 0,
            compute_output_ns: 0,
            outcome: BatchOutcome::PerRequest(vec![
                RequestOutcome::Ok(vec![tensor("y", vec![1, 2])]),
                RequestOutcome::Err(failure.clone()),
            ]),
        });
        let InferAnswer::Ran(answer) = read_infer_answer(payload_of(&response)).unwrap() else { panic!("not ran") };
        let AnswerOutcome::PerRequest(outcomes) = answer.outcome else { panic!("not per request") };
        assert_eq!(&outcomes[0].as_ref().unwrap()[0].data[..], &[1, 2]);
        assert_eq!(outcomes[1].as_ref().unwrap_err(), &failure);
        let refused = read_infer_answer(payload_of(&BatchReply::Failed(NodeError::Overloaded))).unwrap();
        assert!(matches!(refused, InferAnswer::Failed(NodeError::Overloaded)));
    }

    #[test]
    fn a_node_reporting_impossible_times_cannot_overflow_their_sum() {
        // Found by the frame_decode fuzz target: times near u64::MAX in an
        // otherwise valid answer overflowed `compute_ns`.
        let response = BatchReply::Ran(BatchResult {
            batch_id: 3,
            queue_ns: u64::MAX,
            compute_input_ns: u64::MAX - 0x86,
            compute_infer_ns: u64::MAX - 0x85,
            compute_output_ns: 0x0fff_ffff_ff7a,
            outcome: BatchOutcome::Whole(vec![]),
        });
        let InferAnswer::Ran(answer) = read_infer_answer(payload_of(&response)).unwrap() else { panic!("not ran") };
        assert_eq!(answer.compute_ns(), u64::MAX);
    }

    #[test]
    fn the_fuzzed_answer_reads_and_its_times_saturate() {
        // The frame_decode fuzz target's input, minimised: its payload.
        const PAYLOAD: [u8; 88] = [
            0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc0, 0xff, 0xff, 0xff, 0x0c, 0x00, 0xff, 0xff, 0x00, 0x00,
            0x7a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xb8, 0xb8,
            0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0c, 0x00, 0x00, 0x00, 0x7a, 0xff, 0xff,
            0xff, 0xff, 0x0f, 0xff, 0xff, 0xb8, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00, 0xff, 0xff, 0xff, 0xb8, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        ];
        let mut payload = Payload::new();
        payload.extend_from_slice(&PAYLOAD);
        let InferAnswer::Ran(answer) = read_infer_answer(payload).unwrap() else { panic!("not ran") };
        assert_eq!(answer.compute_ns(), u64::MAX);
    }

    #[test]
    fn garbage_is_invalid() {
        let mut garbage = Payload::new();
        garbage.extend_from_slice(&[0xA5; 64]);
        assert!(read_infer_answer(garbage).is_err());
    }
}
