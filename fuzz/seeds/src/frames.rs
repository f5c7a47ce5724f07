//! Data-plane frames: a batch for the fuzzed model (`fuzz/model.json`)
//! that a node would run, and a node's answers of each kind.

use maas_protocol::frame::{encode_batch, encode_reply, DEFAULT_MAX_FRAME_BYTES};
use maas_protocol::{
    BatchInput, BatchOutcome, BatchReply, BatchResult, DataType, InferBatch, NodeError, RequestOutcome, Tensor,
};

/// Frames, header included.
pub fn frames() -> Vec<(&'static str, Vec<u8>)> {
    let part = |rows: usize, width: usize, size: usize, fill: u8| bytes::Bytes::from(vec![fill; rows * width * size]);
    let input = |name: &str, datatype, width: usize, size| BatchInput {
        name: name.into(),
        datatype,
        shape: vec![3, width as i64],
        // Two requests, of one and two rows, as the coordinator sends them.
        data: vec![part(1, width, size, 1), part(2, width, size, 2)],
    };
    let batch = InferBatch {
        batch_id: 17,
        model: "fuzzed".into(),
        version: 1,
        inputs: vec![
            input("x", DataType::Fp32, 3, 4),
            input("ids", DataType::Int64, 2, 8),
            input("mask", DataType::Bool, 2, 1),
            input("small", DataType::Int8, 2, 1),
            input("u", DataType::Uint16, 2, 2),
            input("h", DataType::Fp16, 2, 2),
        ],
        request_rows: vec![1, 2],
        request_ids: vec!["first".into(), String::new()],
    };
    let tensor = |name: &str, rows: i64| Tensor {
        name: name.into(),
        datatype: DataType::Fp32,
        shape: vec![rows, 1],
        data: vec![7; rows as usize * 4],
    };
    let result = |outcome| BatchResult {
        batch_id: 17,
        queue_ns: 1_000,
        compute_input_ns: 2_000,
        compute_infer_ns: 30_000,
        compute_output_ns: 4_000,
        outcome,
    };
    let whole = BatchReply::Ran(result(BatchOutcome::Whole(vec![tensor("y", 3), tensor("z", 3)])));
    let per_request = BatchReply::Ran(result(BatchOutcome::PerRequest(vec![
        RequestOutcome::Ok(vec![tensor("y", 1)]),
        RequestOutcome::Err(NodeError::ModelFailed { model: "fuzzed".into(), message: "shape mismatch".into() }),
    ])));
    let failed = BatchReply::Failed(NodeError::ModelNotLoaded { model: "fuzzed".into(), version: 2 });
    let frame = |(header, payload): (Vec<u8>, maas_protocol::frame::Payload)| {
        let mut bytes = header;
        bytes.extend_from_slice(&payload);
        bytes
    };
    let max = DEFAULT_MAX_FRAME_BYTES;
    vec![
        ("batch", frame(encode_batch(&batch, max).expect("batch"))),
        ("answer-whole", frame(encode_reply(&whole, max).expect("answer"))),
        ("answer-per-request", frame(encode_reply(&per_request, max).expect("answer"))),
        ("answer-failed", frame(encode_reply(&failed, max).expect("answer"))),
    ]
}
