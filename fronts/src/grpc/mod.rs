//! The gRPC front: Triton's `inference.GRPCInferenceService`.
//!
//! Every method goes through the same paths as the HTTP front: the same
//! resolution of versions, aliases and splits, the same validation,
//! batching, metrics and errors ([`maas_serving::infer::Inference`]), the same
//! repository and statistics. A [`ServeError`] becomes a gRPC status with
//! [`status::code`] and the same message. `ModelStreamInfer` runs
//! every request of a stream concurrently and answers each as it finishes,
//! carrying its `id`. A call's `grpc-timeout` bounds its request's wait:
//! an expired request leaves the batch queue. Tokens are checked before a
//! method runs, by [`access::Authorized`] from its table of methods; each
//! method naming a model checks the caller's scope on it
//! ([`access::permit_model`]), inference inside `Inference::serve`.

mod access;
pub(crate) mod config;
mod deadline;
mod listener;
mod messages;
pub(crate) mod outline;
pub(crate) mod precheck;
mod status;
pub(crate) mod tensors;

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use maas_grpc::inference::model_metadata_response::TensorMetadata;
use maas_grpc::inference::repository_index_response::ModelIndex;
use maas_grpc::inference::*;
use maas_grpc::{GrpcInferenceService, GrpcInferenceServiceServer};
use maas_protocol::TensorSpec;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status, Streaming};

use self::status::status;
use crate::auth::Access;
use crate::catalog;
use crate::state::AppState;
use crate::tls::FrontTls;
use crate::triton::EXTENSIONS;
use anyhow::Context;
use maas_serving::error::ServeError;
use maas_serving::infer::MAX_REQUEST_ID_BYTES;
use maas_serving::input_check::InputCheck;
use maas_tenancy::Caller;

/// Concurrent calls one connection may open (HTTP/2
/// `SETTINGS_MAX_CONCURRENT_STREAMS`); a stream carries many requests.
const MAX_STREAMS_PER_CONNECTION: u32 = 256;

/// Answers in flight on one stream before it stops reading new requests.
const STREAM_WINDOW: usize = 1024;

fn unimplemented_shared_memory<T>() -> Result<Response<T>, Status> {
    Err(Status::unimplemented(
        "maas does not support shared-memory tensors; send tensors in raw_input_contents or contents",
    ))
}

fn tensor_metadata(spec: &TensorSpec) -> TensorMetadata {
    TensorMetadata { name: spec.name.clone(), datatype: spec.datatype.as_str().to_string(), shape: spec.shape.clone() }
}

fn non_empty(text: &str) -> Option<&str> {
    (!text.is_empty()).then_some(text)
}

/// The service over the coordinator's shared state.
pub struct GrpcFront {
    state: Arc<AppState>,
}

/// Runs one inference request, as `ModelInfer` and each request of a stream do.
async fn infer(
    state: &AppState,
    caller: &Caller,
    mut request: ModelInferRequest,
    deadline: Option<Duration>,
) -> Result<ModelInferResponse, ServeError> {
    let limit = crate::auth::body_limit(caller, state.max_body_bytes);
    let size = prost::Message::encoded_len(&request);
    let model = std::mem::take(&mut request.model_name);
    let version = std::mem::take(&mut request.model_version);
    let parse = |check: InputCheck| async move {
        let limit = check.request_limit(limit);
        if size > limit {
            return Err(ServeError::PayloadTooLarge { size, limit });
        }
        maas_serving::infer::check_unique_outputs(request.outputs.iter().map(|o| o.name.as_str()))?;
        let mut parsed = tensors::to_infer_request(&mut request, &check)?;
        if let Some(deadline) = deadline {
            parsed.timeout = Some(parsed.timeout.map_or(deadline, |t| t.min(deadline)));
        }
        let requested: Vec<String> = request.outputs.iter().map(|o| o.name.clone()).collect();
        Ok((parsed, (std::mem::take(&mut request.id), requested)))
    };
    let answer = |answer, (id, requested): (String, Vec<String>)| tensors::to_infer_response(answer, id, &requested);
    state.inference.serve(caller, &model, non_empty(&version), parse, answer).await
}

type AnswerStream = Pin<Box<dyn Stream<Item = Result<ModelStreamInferResponse, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl GrpcInferenceService for GrpcFront {
    async fn server_live(&self, _: Request<ServerLiveRequest>) -> Result<Response<ServerLiveResponse>, Status> {
        Ok(Response::new(ServerLiveResponse { live: true }))
    }

    async fn server_ready(&self, _: Request<ServerReadyRequest>) -> Result<Response<ServerReadyResponse>, Status> {
        Ok(Response::new(ServerReadyResponse { ready: self.state.inference.table().any_ready() }))
    }

    async fn model_ready(&self, request: Request<ModelReadyRequest>) -> Result<Response<ModelReadyResponse>, Status> {
        access::permit_model(&request, Access::Read, &request.get_ref().name)?;
        let request = request.into_inner();
        let version =
            self.state.inference.table().resolve(&request.name, non_empty(&request.version)).map_err(status)?;
        Ok(Response::new(ModelReadyResponse { ready: version.shared.is_ready() }))
    }

    async fn server_metadata(
        &self,
        _: Request<ServerMetadataRequest>,
    ) -> Result<Response<ServerMetadataResponse>, Status> {
        Ok(Response::new(ServerMetadataResponse {
            name: "maas".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            extensions: EXTENSIONS.iter().map(|e| e.to_string()).collect(),
        }))
    }

    async fn model_metadata(
        &self,
        request: Request<ModelMetadataRequest>,
    ) -> Result<Response<ModelMetadataResponse>, Status> {
        access::permit_model(&request, Access::Read, &request.get_ref().name)?;
        let request = request.into_inner();
        let version =
            self.state.inference.table().resolve(&request.name, non_empty(&request.version)).map_err(status)?;
        let config = &version.shared.config;
        let versions = match non_empty(&request.version) {
            Some(v) => vec![v.to_string()],
            None => catalog::versions_of(&self.state, &version.shared.name),
        };
        Ok(Response::new(ModelMetadataResponse {
            name: config.name.clone(),
            versions,
            platform: config.platform.name().into(),
            inputs: config.inputs.iter().map(tensor_metadata).collect(),
            outputs: config.outputs.iter().map(tensor_metadata).collect(),
        }))
    }

    async fn model_infer(&self, request: Request<ModelInferRequest>) -> Result<Response<ModelInferResponse>, Status> {
        let deadline = deadline::of(request.metadata());
        let caller = access::permit_model(&request, Access::Infer, "")?;
        infer(&self.state, &caller, request.into_inner(), deadline).await.map(Response::new).map_err(status)
    }

    type ModelStreamInferStream = AnswerStream;

    async fn model_stream_infer(
        &self,
        request: Request<Streaming<ModelInferRequest>>,
    ) -> Result<Response<Self::ModelStreamInferStream>, Status> {
        let deadline = deadline::of(request.metadata());
        let caller = access::permit_model(&request, Access::Infer, "")?;
        let mut requests = request.into_inner();
        let (answers, receiver) = mpsc::channel::<Result<ModelStreamInferResponse, Status>>(STREAM_WINDOW);
        let state = self.state.clone();
        tokio::spawn(async move {
            while let Some(next) = requests.next().await {
                let request = match next {
                    Ok(request) => request,
                    Err(error) => {
                        let _ = answers.send(Err(error)).await;
                        return;
                    }
                };
                // Wait for room before taking on another request.
                let Ok(permit) = answers.clone().reserve_owned().await else { return };
                let (state, caller) = (state.clone(), caller.clone());
                tokio::spawn(async move {
                    let (id, model_name) = (request.id.clone(), request.model_name.clone());
                    let answer = match infer(&state, &caller, request, deadline).await {
                        Ok(response) => {
                            ModelStreamInferResponse { error_message: String::new(), infer_response: Some(response) }
                        }
                        Err(error) => {
                            // An id refused for its length is not echoed back.
                            let id = if id.len() > MAX_REQUEST_ID_BYTES { String::new() } else { id };
                            ModelStreamInferResponse {
                                error_message: error.to_string(),
                                infer_response: Some(ModelInferResponse { model_name, id, ..Default::default() }),
                            }
                        }
                    };
                    permit.send(Ok(answer));
                });
            }
        });
        let stream = tokio_stream_from(receiver);
        Ok(Response::new(Box::pin(stream)))
    }

    async fn model_config(
        &self,
        request: Request<ModelConfigRequest>,
    ) -> Result<Response<ModelConfigResponse>, Status> {
        access::permit_model(&request, Access::Read, &request.get_ref().name)?;
        let request = request.into_inner();
        let version =
            self.state.inference.table().resolve(&request.name, non_empty(&request.version)).map_err(status)?;
        Ok(Response::new(ModelConfigResponse {
            config: Some(config::model_config(&crate::triton::ConfigView::of(&version.shared.config))),
        }))
    }

    async fn model_statistics(
        &self,
        request: Request<ModelStatisticsRequest>,
    ) -> Result<Response<ModelStatisticsResponse>, Status> {
        let caller = access::permit_model(&request, Access::Read, &request.get_ref().name)?;
        let request = request.into_inner();
        let table = self.state.inference.table();
        let model_stats =
            crate::triton::statistics(table, &caller, non_empty(&request.name), non_empty(&request.version))
                .map_err(status)?
                .iter()
                .map(config::model_statistics)
                .collect();
        Ok(Response::new(ModelStatisticsResponse { model_stats }))
    }

    async fn repository_index(
        &self,
        request: Request<RepositoryIndexRequest>,
    ) -> Result<Response<RepositoryIndexResponse>, Status> {
        let caller = access::permit_model(&request, Access::View, "")?;
        let ready_only = request.into_inner().ready;
        let models = catalog::repository_index(&self.state, &caller)
            .await
            .map_err(status)?
            .into_iter()
            .filter(|entry| !ready_only || entry.state == "READY")
            .map(|entry| ModelIndex {
                name: entry.name,
                version: entry.version,
                state: entry.state.into(),
                reason: entry.reason.into(),
            })
            .collect();
        Ok(Response::new(RepositoryIndexResponse { models }))
    }

    async fn repository_model_load(
        &self,
        request: Request<RepositoryModelLoadRequest>,
    ) -> Result<Response<RepositoryModelLoadResponse>, Status> {
        access::permit_model(&request, Access::Deploy, &request.get_ref().model_name)?;
        catalog::set_loaded(actix_web::web::Data::from(self.state.clone()), &request.into_inner().model_name, true)
            .await
            .map_err(status)?;
        Ok(Response::new(RepositoryModelLoadResponse {}))
    }

    async fn repository_model_unload(
        &self,
        request: Request<RepositoryModelUnloadRequest>,
    ) -> Result<Response<RepositoryModelUnloadResponse>, Status> {
        access::permit_model(&request, Access::Deploy, &request.get_ref().model_name)?;
        catalog::set_loaded(actix_web::web::Data::from(self.state.clone()), &request.into_inner().model_name, false)
            .await
            .map_err(status)?;
        Ok(Response::new(RepositoryModelUnloadResponse {}))
    }

    async fn system_shared_memory_status(
        &self,
        _: Request<SystemSharedMemoryStatusRequest>,
    ) -> Result<Response<SystemSharedMemoryStatusResponse>, Status> {
        unimplemented_shared_memory()
    }

    async fn system_shared_memory_register(
        &self,
        _: Request<SystemSharedMemoryRegisterRequest>,
    ) -> Result<Response<SystemSharedMemoryRegisterResponse>, Status> {
        unimplemented_shared_memory()
    }

    async fn system_shared_memory_unregister(
        &self,
        _: Request<SystemSharedMemoryUnregisterRequest>,
    ) -> Result<Response<SystemSharedMemoryUnregisterResponse>, Status> {
        unimplemented_shared_memory()
    }

    async fn cuda_shared_memory_status(
        &self,
        _: Request<CudaSharedMemoryStatusRequest>,
    ) -> Result<Response<CudaSharedMemoryStatusResponse>, Status> {
        unimplemented_shared_memory()
    }

    async fn cuda_shared_memory_register(
        &self,
        _: Request<CudaSharedMemoryRegisterRequest>,
    ) -> Result<Response<CudaSharedMemoryRegisterResponse>, Status> {
        unimplemented_shared_memory()
    }

    async fn cuda_shared_memory_unregister(
        &self,
        _: Request<CudaSharedMemoryUnregisterRequest>,
    ) -> Result<Response<CudaSharedMemoryUnregisterResponse>, Status> {
        unimplemented_shared_memory()
    }
}

/// A stream over a channel's receiver.
fn tokio_stream_from<T: Send + 'static>(mut receiver: mpsc::Receiver<T>) -> impl Stream<Item = T> + Send + 'static {
    futures_util::stream::poll_fn(move |cx| receiver.poll_recv(cx))
}

/// Serves the gRPC front on `addr` until the process ends.
pub async fn serve(addr: SocketAddr, state: Arc<AppState>, tls: Option<FrontTls>) -> anyhow::Result<()> {
    let max = state.max_body_bytes;
    let service = GrpcInferenceServiceServer::new(GrpcFront { state: state.clone() })
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);
    let service = access::Authorized::new(service, state.clone());
    let listener =
        tokio::net::TcpListener::bind(addr).await.map_err(|e| anyhow::anyhow!("binding gRPC on {addr}: {e}"))?;
    tracing::info!(%addr, tls = tls.is_some(), "gRPC front listening");
    let mut builder = tonic::transport::Server::builder()
        .max_concurrent_streams(Some(MAX_STREAMS_PER_CONNECTION))
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)));
    if let Some(tls) = &tls {
        builder = builder.tls_config(tls.tonic_config()?).context("the gRPC front's TLS")?;
    }
    builder
        .add_service(service)
        .serve_with_incoming(listener::incoming(listener, state.max_connections))
        .await
        .map_err(|e| anyhow::anyhow!("gRPC server: {e}"))
}
