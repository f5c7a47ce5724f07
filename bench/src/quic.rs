//! Closed-loop load straight to a node over QUIC, with no coordinator: each
//! client sends single-row batches on data streams of its own, as a
//! coordinator does. Against the same load through a coordinator, this
//! shows what the coordinator adds.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use maas_protocol::frame;
use maas_protocol::{BatchInput, BatchOutcome, BatchReply, DataType, InferBatch};
use maas_transport::{read_frame, write_frame, StreamKind, TlsFiles, TransportSettings};

use crate::load::{count, latency_histogram, ClientCounts, Encoding, LoadPoint, Target};

/// Where the node is and who the client is.
pub struct NodeAddress<'a> {
    /// The node's QUIC address.
    pub addr: SocketAddr,
    /// The name in the node's certificate.
    pub name: &'a str,
    /// Folder with the cluster CA and the client's certificate.
    pub cert_dir: &'a Path,
    /// The client's certificate name (a coordinator's).
    pub client: &'a str,
}

fn batch(target: &Target, version: u64, row: usize, batch_id: u64) -> Result<(Vec<u8>, frame::Payload)> {
    let request = InferBatch {
        batch_id,
        model: target.model.clone(),
        version,
        inputs: vec![BatchInput::whole(
            target.input.clone(),
            DataType::Fp32,
            target.row_shape.clone(),
            target.raw_inputs[row % target.raw_inputs.len()].clone(),
        )],
        request_rows: vec![target.rows as u32],
        request_ids: vec![String::new()],
    };
    Ok(frame::encode_batch(&request, frame::DEFAULT_MAX_FRAME_BYTES)?)
}

async fn call(connection: &quinn::Connection, header: &[u8], payload: &Bytes) -> Result<()> {
    let (mut send, mut recv) = connection.open_bi().await?;
    write_frame(&mut send, Some(StreamKind::Data), header, payload.clone()).await?;
    let answer = read_frame(&mut recv, frame::DEFAULT_MAX_FRAME_BYTES).await?;
    match frame::decode_reply(&answer)? {
        BatchReply::Ran(result) if matches!(result.outcome, BatchOutcome::Whole(_)) => Ok(()),
        other => bail!("the node answered {other:?}"),
    }
}

/// Runs `concurrency` clients against version `version` on the node.
pub async fn closed_loop(
    node: &NodeAddress<'_>,
    target: &Target,
    version: u64,
    concurrency: usize,
    warmup: Duration,
    window: Duration,
) -> Result<LoadPoint> {
    let endpoint =
        maas_transport::client_endpoint(&TlsFiles::in_dir(node.cert_dir, node.client), &TransportSettings::default())?;
    let connection = endpoint
        .connect(node.addr, node.name)?
        .await
        .with_context(|| format!("connecting to node {} at {}", node.name, node.addr))?;
    let frames: Vec<(Vec<u8>, Bytes)> = (0..target.raw_inputs.len())
        .map(|row| {
            batch(target, version, row, row as u64).map(|(header, payload)| (header, Bytes::from_owner(payload)))
        })
        .collect::<Result<_>>()?;
    call(&connection, &frames[0].0, &frames[0].1).await.context("first batch")?;
    let started = Instant::now();
    let (measure_from, stop_at) = (started + warmup, started + warmup + window);
    let mut tasks = Vec::new();
    for worker in 0..concurrency {
        let connection = connection.clone();
        let frames = frames.clone();
        tasks.push(tokio::spawn(async move {
            let mut counts: ClientCounts = (latency_histogram(), 0, 0);
            let mut index = worker;
            while Instant::now() < stop_at {
                index = (index + 1) % frames.len();
                let sent = Instant::now();
                let success = call(&connection, &frames[index].0, &frames[index].1).await.is_ok();
                count(&mut counts, sent, success, measure_from, stop_at);
            }
            counts
        }));
    }
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await?);
    }
    connection.close(quinn::VarInt::from_u32(0), b"done");
    LoadPoint::merge(target, Encoding::Quic, concurrency, window, results)
}
