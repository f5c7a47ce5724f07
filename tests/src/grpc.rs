//! A gRPC client of the front, and the requests and answers tests build
//! with it: raw little-endian contents, as `tritonclient` sends them.

use std::time::{Duration, Instant};

use maas_grpc::inference::model_infer_request::InferInputTensor;
use maas_grpc::inference::{ModelInferRequest, ModelInferResponse};
use maas_grpc::GrpcInferenceServiceClient;
use tonic::transport::Channel;

use crate::cluster::ADMIN_TOKEN;
use crate::reference::JsonTensor;
use crate::requests::{from_le_bytes, to_le_bytes};
use crate::Cluster;

/// A client of the cluster's gRPC front, once it answers (10 s at most).
pub async fn client(cluster: &Cluster) -> GrpcInferenceServiceClient<Channel> {
    let url = format!("http://{}", cluster.grpc_addr);
    let started = Instant::now();
    loop {
        match GrpcInferenceServiceClient::connect(url.clone()).await {
            Ok(client) => return client.max_decoding_message_size(64 << 20),
            Err(error) if started.elapsed() > Duration::from_secs(10) => panic!("no gRPC front at {url}: {error}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// `message` with the admin key.
pub fn with_admin<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("authorization", format!("Bearer {ADMIN_TOKEN}").parse().unwrap());
    request
}

/// A request with raw contents for `inputs`.
pub fn raw_request(model: &str, version: &str, inputs: &[JsonTensor], id: &str) -> ModelInferRequest {
    ModelInferRequest {
        model_name: model.into(),
        model_version: version.into(),
        id: id.into(),
        inputs: inputs
            .iter()
            .map(|t| InferInputTensor {
                name: t.name.clone(),
                datatype: t.datatype.clone(),
                shape: t.shape.clone(),
                ..Default::default()
            })
            .collect(),
        raw_input_contents: inputs.iter().map(|t| to_le_bytes(&t.datatype, &t.data).into()).collect(),
        ..Default::default()
    }
}

/// The outputs of a response as JSON tensors.
pub fn outputs(response: &ModelInferResponse) -> Vec<JsonTensor> {
    response
        .outputs
        .iter()
        .zip(&response.raw_output_contents)
        .map(|(o, raw)| JsonTensor {
            name: o.name.clone(),
            datatype: o.datatype.clone(),
            shape: o.shape.clone(),
            data: from_le_bytes(&o.datatype, raw).unwrap(),
        })
        .collect()
}
