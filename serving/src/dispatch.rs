//! Sending a batch to a replica and answering its requests.
//!
//! The batch is encoded once: each request's rows go from its own buffer
//! straight into the frame. The frame goes to the replica with the fewest
//! outstanding batches; if that node's connection fails, the next replica is
//! tried (inference is idempotent) until one answers, none is left, or every
//! request's deadline has passed. A node that answers that it no longer
//! holds the version (unloaded before this coordinator heard) is routed
//! around; a version loaded on demand left without replicas (its last one
//! unloaded, or lost with its node) waits for one. The node's answer is read in place and its
//! outputs are split back along the batch dimension as slices of the
//! received buffer, each request receiving exactly its own rows.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use maas_protocol::answer::{AnswerOutcome, BatchAnswer, InferAnswer};
use maas_protocol::validate::element_count;
use maas_protocol::{strings, BatchInput, DataType, InferBatch, NodeError};

use crate::error::ServeError;
use crate::pending::{Answered, PendingRequest};
use crate::replica::{Replica, ReplicaError};
use crate::version::VersionShared;
use maas_monitor::stats::BatchTimes;
use maas_protocol::TensorBytes;

/// Runs `batch` on a replica of `version` and answers every request in it.
pub async fn dispatch(version: &VersionShared, batch: Vec<PendingRequest>) {
    let started = Instant::now();
    let rows: Vec<u32> = batch.iter().map(|r| r.rows).collect();
    version.metrics().batch(&batch, started);
    version.monitor.batch_dispatched(batch.iter().map(|r| started.saturating_duration_since(r.enqueued)));
    let batch_id = next_batch_id();
    let request = InferBatch {
        batch_id,
        model: version.name.clone(),
        version: version.version,
        inputs: batch_inputs(&batch),
        request_rows: rows.clone(),
        request_ids: batch.iter().map(|r| r.id.clone().unwrap_or_default()).collect(),
    };
    let (header, payload) = match maas_protocol::frame::encode_batch(&request, version.max_frame_bytes) {
        Ok(frame) => frame,
        Err(error) => return fail_all(batch, ServeError::Internal(format!("batch could not be encoded: {error}"))),
    };
    drop(request);
    let payload = Bytes::from_owner(payload);
    let deadline = batch.iter().map(|r| r.deadline).max().expect("batches are never empty");

    let mut tried: Vec<Arc<dyn Replica>> = Vec::new();
    let mut last_failure: Option<ReplicaError> = None;
    loop {
        let mut replica_changes = version.replicas.watch();
        let Some(replica) = version.replicas.least_outstanding(&tried) else {
            // A version loaded on demand whose replicas all went (unloaded
            // while idle, evicted, or lost with their node) is loaded
            // again: wait for a replica.
            if version.loads_on_demand() {
                match tokio::time::timeout_at(deadline.into(), replica_changes.changed()).await {
                    Ok(_) => {
                        tried.clear();
                        continue;
                    }
                    Err(_) => {
                        let waited = started.elapsed();
                        let timeout =
                            ServeError::Timeout { model: version.name.clone(), version: version.version, waited };
                        return fail_all(batch, timeout);
                    }
                }
            }
            let error = match last_failure {
                Some(failure) => ServeError::Unavailable(format!(
                    "model '{}' version {}: every replica failed; last: {failure}",
                    version.name, version.version
                )),
                None => version.no_replica_error(),
            };
            return fail_all(batch, error);
        };
        let call = replica.call(&header, payload.clone());
        match tokio::time::timeout_at(deadline.into(), call).await {
            Ok(Ok(InferAnswer::Failed(NodeError::ModelNotLoaded { .. }))) => {
                // The node gave the version up before this coordinator
                // heard: forget that replica and try another (or wait).
                tracing::info!(model = %version.name, version = version.version, node = replica.name(), "the node no longer holds the version; routing around it");
                version.replicas.set(&replica, None);
                tried.push(replica);
            }
            Ok(Ok(response)) => {
                report_slow(version, &batch, batch_id, replica.name(), &response);
                return answer(version, batch, &rows, response);
            }
            Ok(Err(ReplicaError::Protocol { node, message })) => {
                return fail_all(batch, ServeError::Internal(format!("node '{node}': {message}")));
            }
            Ok(Err(failure)) => {
                tracing::warn!(model = %version.name, version = version.version, node = replica.name(), %failure, "batch failed on a replica; trying another");
                version.metrics().retry();
                tried.push(replica);
                last_failure = Some(failure);
            }
            Err(_) => {
                let waited = started.elapsed();
                return fail_all(
                    batch,
                    ServeError::Timeout { model: version.name.clone(), version: version.version, waited },
                );
            }
        }
    }
}

/// Logs every request of the batch that took longer than the version's
/// slow-request threshold, with where its time went.
fn report_slow(version: &VersionShared, batch: &[PendingRequest], batch_id: u64, node: &str, answer: &InferAnswer) {
    let now = Instant::now();
    let (queue_ns, compute_ns) = match answer {
        InferAnswer::Ran(result) => (result.queue_ns, result.compute_ns()),
        InferAnswer::Failed(_) => (0, 0),
    };
    for request in batch {
        let total = now.saturating_duration_since(request.enqueued);
        if total >= version.slow_request {
            tracing::info!(
                request_id = request.id.as_deref().unwrap_or("-"), batch_id, model = %version.name, version = version.version,
                node, total_ms = total.as_secs_f64() * 1e3, node_queue_ms = queue_ns as f64 * 1e-6,
                node_compute_ms = compute_ns as f64 * 1e-6, batch_requests = batch.len(),
                "slow request"
            );
        }
    }
    if tracing::enabled!(tracing::Level::DEBUG) {
        let ids: Vec<&str> = batch.iter().map(|r| r.id.as_deref().unwrap_or("-")).collect();
        tracing::debug!(batch_id, model = %version.name, version = version.version, node, request_ids = ?ids, "batch answered");
    }
}

fn next_batch_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Each input of the batch as the parts its requests hold, in order: the
/// frame encoder writes them one after the other, so rows are copied once,
/// from the request's buffer into the frame.
fn batch_inputs(batch: &[PendingRequest]) -> Vec<BatchInput> {
    let total_rows: u32 = batch.iter().map(|r| r.rows).sum();
    batch[0]
        .inputs
        .iter()
        .enumerate()
        .map(|(index, template)| {
            let mut shape = template.shape.clone();
            shape[0] = i64::from(total_rows);
            BatchInput {
                name: template.name.clone(),
                datatype: template.datatype,
                shape,
                data: batch.iter().map(|request| request.inputs[index].data.clone()).collect(),
            }
        })
        .collect()
}

fn answer(version: &VersionShared, batch: Vec<PendingRequest>, rows: &[u32], answer: InferAnswer) {
    let result = match answer {
        InferAnswer::Ran(result) => result,
        InferAnswer::Failed(error) => return fail_all(batch, ServeError::from_node(&version.name, error)),
    };
    let total_rows: u32 = rows.iter().sum();
    version.metrics().node_timings(u64::from(total_rows), &result);
    let times = BatchTimes {
        input_ns: result.compute_input_ns,
        infer_ns: result.compute_infer_ns,
        output_ns: result.compute_output_ns,
    };
    version.monitor.batch_done(u64::from(total_rows), batch.len() as u64, times);
    let batch_compute_ns = result.compute_ns();
    let share = |request_rows: u32| compute_share_us(batch_compute_ns, request_rows, total_rows);
    let BatchAnswer { outcome, .. } = result;
    match outcome {
        AnswerOutcome::Whole(outputs) => match split_outputs(outputs, rows) {
            Ok(per_request) => {
                for ((request, outputs), &request_rows) in batch.into_iter().zip(per_request).zip(rows) {
                    request.finish(Ok(Answered { outputs, compute_us: share(request_rows) }));
                }
            }
            Err(message) => fail_all(batch, ServeError::Internal(format!("model '{}': {message}", version.name))),
        },
        AnswerOutcome::PerRequest(outcomes) if outcomes.len() == batch.len() => {
            for ((request, outcome), &request_rows) in batch.into_iter().zip(outcomes).zip(rows) {
                let answered = outcome.map(|outputs| Answered { outputs, compute_us: share(request_rows) });
                request.finish(answered.map_err(|error| ServeError::from_node(&version.name, error)));
            }
        }
        AnswerOutcome::PerRequest(mut outcomes) if outcomes.len() == 1 => {
            let error = match outcomes.pop() {
                Some(Err(error)) => ServeError::from_node(&version.name, error),
                _ => ServeError::Internal("node answered one outcome for a batch of several".into()),
            };
            fail_all(batch, error);
        }
        AnswerOutcome::PerRequest(outcomes) => {
            fail_all(batch, ServeError::Internal(format!("node answered {} outcomes for {rows:?}", outcomes.len())))
        }
    }
}

/// A request's share of its batch's compute time, in microseconds, by its
/// rows. The node's time is its word, so the product is taken wide enough
/// that no figure it sends can overflow it.
fn compute_share_us(batch_compute_ns: u64, request_rows: u32, total_rows: u32) -> u64 {
    let share_ns = u128::from(batch_compute_ns) * u128::from(request_rows) / u128::from(total_rows.max(1));
    u64::try_from(share_ns / 1000).unwrap_or(u64::MAX)
}

/// Splits each output's rows back into one set of outputs per request,
/// slicing the node's buffers.
fn split_outputs(outputs: Vec<TensorBytes>, rows: &[u32]) -> Result<Vec<Vec<TensorBytes>>, String> {
    let total_rows: u64 = rows.iter().map(|&r| u64::from(r)).sum();
    let mut per_request: Vec<Vec<TensorBytes>> = rows.iter().map(|_| Vec::with_capacity(outputs.len())).collect();
    for output in outputs {
        let output_rows = output.shape.first().copied().unwrap_or(0);
        if output_rows != total_rows as i64 {
            return Err(format!("output '{}' has {output_rows} rows for a batch of {total_rows}", output.name));
        }
        let ends = row_ends(&output, rows)?;
        let mut offset = 0usize;
        for ((request, &request_rows), end) in per_request.iter_mut().zip(rows).zip(ends) {
            let mut shape = output.shape.clone();
            shape[0] = i64::from(request_rows);
            request.push(TensorBytes {
                name: output.name.clone(),
                datatype: output.datatype,
                shape,
                data: output.data.slice(offset..end),
            });
            offset = end;
        }
    }
    Ok(per_request)
}

/// Where each request's rows of `output` end in its data: a whole number
/// of fixed-size rows, or, for BYTES, the row boundaries found by walking
/// the elements (checked first to be exactly as many as the shape holds).
fn row_ends(output: &TensorBytes, rows: &[u32]) -> Result<Vec<usize>, String> {
    let total_rows: usize = rows.iter().map(|&r| r as usize).sum();
    let request_ends = rows.iter().scan(0usize, |end, &r| {
        *end += r as usize;
        Some(*end)
    });
    if output.datatype == DataType::Bytes {
        let expected = element_count(&output.shape)
            .ok_or_else(|| format!("output '{}' has an invalid shape {:?}", output.name, output.shape))?;
        let count = strings::count(&output.data).map_err(|e| format!("output '{}': {e}", output.name))?;
        if count != expected {
            return Err(format!("output '{}' has {count} elements, its shape holds {expected}", output.name));
        }
        let per_row = expected.checked_div(total_rows).unwrap_or(0);
        let ends = strings::row_ends(&output.data, total_rows, per_row).expect("the elements were counted");
        return Ok(request_ends.map(|end| if end == 0 { 0 } else { ends[end - 1] }).collect());
    }
    if !(output.data.len() as u64).is_multiple_of(total_rows as u64) {
        return Err(format!("output '{}' has {} bytes, not a whole number of rows", output.name, output.data.len()));
    }
    let row_bytes = output.data.len() / total_rows;
    Ok(request_ends.map(|end| end * row_bytes).collect())
}

fn fail_all(batch: Vec<PendingRequest>, error: ServeError) {
    for request in batch {
        request.fail(error.clone());
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn outputs_split_by_request_rows() {
        let data: Vec<u8> = (0u8..24).collect();
        let output = TensorBytes { name: "y".into(), datatype: DataType::Int32, shape: vec![3, 2], data: data.into() };
        let split = split_outputs(vec![output], &[1, 2]).unwrap();
        assert_eq!(split[0][0].shape, vec![1, 2]);
        assert_eq!(&split[0][0].data[..], &(0u8..8).collect::<Vec<_>>()[..]);
        assert_eq!(split[1][0].shape, vec![2, 2]);
        assert_eq!(&split[1][0].data[..], &(8u8..24).collect::<Vec<_>>()[..]);
    }

    #[test]
    fn bytes_outputs_split_at_their_row_boundaries() {
        let data = strings::encode(["a", "bcd", "", "éé"].map(str::as_bytes));
        let output = TensorBytes { name: "t".into(), datatype: DataType::Bytes, shape: vec![2, 2], data: data.into() };
        let split = split_outputs(vec![output.clone()], &[1, 1]).unwrap();
        assert_eq!(strings::elements(&split[0][0].data).collect::<Vec<_>>(), vec![b"a".as_slice(), b"bcd"]);
        assert_eq!(strings::elements(&split[1][0].data).collect::<Vec<_>>(), vec![b"".as_slice(), "éé".as_bytes()]);
        assert_eq!(split[1][0].shape, vec![1, 2]);
        let mut short = output;
        short.shape = vec![3, 2];
        assert!(split_outputs(vec![short], &[1, 2]).unwrap_err().contains("4 elements, its shape holds 6"));
    }

    #[test]
    fn compute_shares_follow_rows_and_never_overflow() {
        assert_eq!(compute_share_us(9_000_000, 1, 3), 3_000);
        assert_eq!(compute_share_us(9_000_000, 2, 3), 6_000);
        // A node's answer claiming u64::MAX nanoseconds (see the frame_decode
        // fuzz target) overflowed the product of time and rows.
        assert_eq!(compute_share_us(u64::MAX, 7, 8), 16_140_901_064_495_857);
        assert_eq!(compute_share_us(u64::MAX, 1, 0), 18_446_744_073_709_551);
    }

    #[test]
    fn mismatched_rows_are_refused() {
        let output =
            TensorBytes { name: "y".into(), datatype: DataType::Fp32, shape: vec![2, 1], data: vec![0; 8].into() };
        assert!(split_outputs(vec![output], &[1, 2]).unwrap_err().contains("2 rows for a batch of 3"));
    }
}
