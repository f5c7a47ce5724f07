//! A data-plane frame as it arrives over QUIC: a 4-byte length and an rkyv
//! payload. The whole input goes through `split_frame`; its bytes after the
//! header are then read as a payload whatever the header says, so mutations
//! of the payload are not all lost to a length that no longer matches. A
//! payload is read as a batch (a node's `ValidatedBatch`, then the node's
//! checks against the fuzzed model) and as an answer (the coordinator's
//! `read_infer_answer`), and the validated readers must agree with rkyv's
//! checked deserialization.
#![no_main]

use libfuzzer_sys::fuzz_target;
use maas_fuzz::{node_checks, Model};
use maas_protocol::answer::{read_infer_answer, AnswerOutcome, InferAnswer};
use maas_protocol::frame::{decode_batch, decode_reply, split_frame, Payload, ValidatedBatch, HEADER_LEN};

fuzz_target!(|data: &[u8]| {
    if let Ok(payload) = split_frame(data, 1 << 20) {
        assert_eq!(payload.len() + HEADER_LEN, data.len());
    }
    let mut payload = Payload::new();
    payload.extend_from_slice(data.get(HEADER_LEN..).unwrap_or_default());

    let deserialized = decode_batch(&payload);
    match ValidatedBatch::new(payload.clone()) {
        Ok(validated) => {
            let deserialized = deserialized.expect("a validated batch deserializes");
            let batch = validated.batch();
            assert_eq!(batch.model.as_str(), deserialized.model);
            assert_eq!(batch.inputs.len(), deserialized.inputs.len());
            for (archived, input) in batch.inputs.iter().zip(&deserialized.inputs) {
                assert_eq!(archived.name.as_str(), input.name);
                assert_eq!(archived.shape_vec(), input.shape);
                assert_eq!(archived.data.len(), input.data_len());
            }
            let ids: usize = batch.request_ids.iter().map(|id| id.as_str().len()).sum();
            assert!(ids <= payload.len());
            if let Some(rows) = node_checks(Model::Full.config(), batch) {
                assert!(rows >= 1 && rows <= Model::Full.config().max_batch_size);
            }
        }
        Err(_) => assert!(deserialized.is_err(), "rkyv deserialized a batch that failed validation"),
    }

    let reply = decode_reply(&payload);
    match read_infer_answer(payload) {
        Ok(InferAnswer::Ran(answer)) => {
            assert!(reply.is_ok(), "an answer read in place does not deserialize");
            let _ = answer.compute_ns();
            let outputs = match answer.outcome {
                AnswerOutcome::Whole(outputs) => outputs,
                AnswerOutcome::PerRequest(outcomes) => outcomes.into_iter().flatten().flatten().collect(),
            };
            for output in outputs {
                assert!(output.data.len() <= data.len());
            }
        }
        Ok(InferAnswer::Failed(error)) => {
            assert!(reply.is_ok(), "an answer read in place does not deserialize");
            let _ = error.to_string();
        }
        Err(_) => assert!(reply.is_err(), "rkyv deserialized an answer that failed validation"),
    }
});
