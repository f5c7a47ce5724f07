//! Closed-loop gRPC load: unary `ModelInfer` calls, or one
//! `ModelStreamInfer` stream per client with one request in flight on it.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use maas_grpc::inference::model_infer_request::InferInputTensor;
use maas_grpc::inference::ModelInferRequest;
use maas_grpc::GrpcInferenceServiceClient;
use tokio::sync::mpsc;
use tonic::transport::Channel;

use crate::load::{count, latency_histogram, ClientCounts, Encoding, LoadPoint, Target};

/// Clients share this many HTTP/2 connections.
const CONNECTIONS: usize = 4;

fn requests(target: &Target) -> Vec<ModelInferRequest> {
    target
        .raw_inputs
        .iter()
        .map(|raw| ModelInferRequest {
            model_name: target.model.clone(),
            inputs: vec![InferInputTensor {
                name: target.input.clone(),
                datatype: "FP32".into(),
                shape: target.row_shape.clone(),
                ..Default::default()
            }],
            raw_input_contents: vec![raw.clone().into()],
            ..Default::default()
        })
        .collect()
}

/// Runs `concurrency` gRPC clients for `warmup + window` and measures the window.
pub async fn closed_loop(
    url: &str,
    target: &Target,
    encoding: Encoding,
    concurrency: usize,
    warmup: Duration,
    window: Duration,
) -> Result<LoadPoint> {
    let mut channels = Vec::new();
    for _ in 0..CONNECTIONS.min(concurrency.max(1)) {
        let channel = Channel::from_shared(url.to_string())?
            .tcp_nodelay(true)
            .connect()
            .await
            .with_context(|| format!("is a gRPC front at {url}?"))?;
        channels.push(channel);
    }
    let started = Instant::now();
    let measure_from = started + warmup;
    let stop_at = measure_from + window;
    let mut tasks = Vec::new();
    for worker in 0..concurrency {
        let client = GrpcInferenceServiceClient::new(channels[worker % channels.len()].clone());
        let bodies = requests(target);
        tasks.push(tokio::spawn(async move {
            match encoding {
                Encoding::GrpcStream => streaming_client(client, bodies, worker, measure_from, stop_at).await,
                _ => unary_client(client, bodies, worker, measure_from, stop_at).await,
            }
        }));
    }
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await??);
    }
    LoadPoint::merge(target, encoding, concurrency, window, results)
}

async fn unary_client(
    mut client: GrpcInferenceServiceClient<Channel>,
    bodies: Vec<ModelInferRequest>,
    worker: usize,
    measure_from: Instant,
    stop_at: Instant,
) -> Result<ClientCounts> {
    let mut counts: ClientCounts = (latency_histogram(), 0, 0);
    let mut index = worker;
    while Instant::now() < stop_at {
        index = (index + 1) % bodies.len();
        let sent = Instant::now();
        let success = client.model_infer(bodies[index].clone()).await.is_ok();
        count(&mut counts, sent, success, measure_from, stop_at);
    }
    Ok(counts)
}

async fn streaming_client(
    mut client: GrpcInferenceServiceClient<Channel>,
    bodies: Vec<ModelInferRequest>,
    worker: usize,
    measure_from: Instant,
    stop_at: Instant,
) -> Result<ClientCounts> {
    let mut counts: ClientCounts = (latency_histogram(), 0, 0);
    let (sender, receiver) = mpsc::channel::<ModelInferRequest>(1);
    let outgoing = futures_util::stream::unfold(receiver, |mut r| async move { r.recv().await.map(|x| (x, r)) });
    let mut answers = client.model_stream_infer(outgoing).await?.into_inner();
    let mut index = worker;
    while Instant::now() < stop_at {
        index = (index + 1) % bodies.len();
        let sent = Instant::now();
        sender.send(bodies[index].clone()).await.context("the stream closed")?;
        let success = matches!(answers.message().await, Ok(Some(answer)) if answer.error_message.is_empty());
        count(&mut counts, sent, success, measure_from, stop_at);
    }
    Ok(counts)
}
