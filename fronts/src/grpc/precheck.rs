//! The gRPC front's check of inference messages before tonic decodes them.
//!
//! [`PrecheckedBody`] wraps the body of `ModelInfer` and `ModelStreamInfer`
//! calls. It gathers each length-prefixed gRPC message and, when the
//! message is at least [`PRECHECK_FROM_BYTES`] long, outlines it
//! ([`super::outline`]) and checks the outline against the model — every
//! input's name, datatype and shape, its element count or raw size, the
//! model's request limit — before passing it on, so a large message the
//! model would refuse is refused before prost turns it into vectors. A
//! refused message ends the call with the check's status. Smaller messages
//! pass unchecked: decoding them costs little, and the handler checks them
//! in full (answering a stream's bad message inside the stream). The
//! framing itself is [`super::messages`].

use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http_body::Frame;
use maas_protocol::validate::{element_count, shape_string};
use maas_protocol::DataType;
use maas_serving::input_check::InputCheck;
use maas_serving::ServeError;
use tonic::Status;

use super::messages::Messages;
use super::outline::{outline, RequestOutline};
use super::status::status;
use crate::state::AppState;

/// Messages at least this long are outlined and checked before decoding.
pub const PRECHECK_FROM_BYTES: usize = 64 * 1024;

/// A request body whose large inference messages are checked first.
pub struct PrecheckedBody {
    inner: tonic::body::Body,
    state: Arc<AppState>,
    limit: usize,
    messages: Messages,
}

impl PrecheckedBody {
    /// Wraps `inner`; `limit` is the caller's largest message.
    pub fn new(inner: tonic::body::Body, state: Arc<AppState>, limit: usize) -> PrecheckedBody {
        PrecheckedBody { inner, state, limit, messages: Messages::new(limit) }
    }

    /// The next whole message (prefix included) once it has arrived, or
    /// the status that refuses it.
    fn next_message(&mut self) -> Result<Option<Bytes>, Status> {
        let Some(message) = self.messages.next().map_err(status)? else { return Ok(None) };
        if !message.compressed && message.payload().len() >= PRECHECK_FROM_BYTES {
            self.check(message.payload())?;
        }
        Ok(Some(message.framed))
    }

    fn check(&self, message: &[u8]) -> Result<(), Status> {
        let outline =
            outline(message).map_err(|e| Status::invalid_argument(format!("malformed ModelInferRequest: {e}")))?;
        let version = (!outline.version.is_empty()).then_some(outline.version.as_str());
        let model = self.state.inference.table().resolve(&outline.model, version).map_err(status)?;
        let check = InputCheck::new(model.shared.config.clone());
        let limit = check.request_limit(self.limit);
        if message.len() > limit {
            return Err(status(ServeError::PayloadTooLarge { size: message.len(), limit }));
        }
        check_outline(&outline, &check).map_err(status)
    }
}

/// Checks what a request asks for against the model `check` knows.
pub fn check_outline(outline: &RequestOutline, check: &InputCheck) -> Result<(), ServeError> {
    let config = check.config();
    let invalid = ServeError::InvalidRequest;
    if outline.inputs.len() > config.inputs.len() || outline.outputs > config.outputs.len() {
        return Err(invalid(format!(
            "the request names {} inputs and {} outputs; model '{}' has {} and {}",
            outline.inputs.len(),
            outline.outputs,
            config.name,
            config.inputs.len(),
            config.outputs.len()
        )));
    }
    if !outline.raw_sizes.is_empty() && outline.raw_sizes.len() != outline.inputs.len() {
        return Err(invalid(format!(
            "raw_input_contents has {} entries for {} inputs; give one per input, in order",
            outline.raw_sizes.len(),
            outline.inputs.len()
        )));
    }
    for (index, input) in outline.inputs.iter().enumerate() {
        let datatype = DataType::parse(&input.datatype)
            .ok_or_else(|| invalid(format!("invalid datatype '{}' for input '{}'", input.datatype, input.name)))?;
        if input.shape.iter().any(|d| *d < 0) {
            return Err(invalid(format!("invalid shape {:?} for input '{}'", input.shape, input.name)));
        }
        let bytes = check.header(&input.name, datatype, &input.shape)?;
        let elements = element_count(&input.shape).unwrap_or(usize::MAX);
        if input.elements != 0 && input.elements != elements {
            return Err(invalid(format!(
                "input '{}' has {} elements in its contents but its shape {} needs {elements}",
                input.name,
                input.elements,
                shape_string(&input.shape)
            )));
        }
        if let (Some(&raw), Some(bytes)) = (outline.raw_sizes.get(index), bytes) {
            if raw != bytes {
                return Err(invalid(format!(
                    "input '{}' has {raw} bytes of raw contents, but shape {} of {datatype} needs {bytes}",
                    input.name,
                    shape_string(&input.shape)
                )));
            }
        }
    }
    Ok(())
}

impl http_body::Body for PrecheckedBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = self.get_mut();
        loop {
            if let Some(message) = this.next_message().transpose() {
                return Poll::Ready(Some(message.map(Frame::data)));
            }
            match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) if this.messages.passes_whole(&data, PRECHECK_FROM_BYTES) => {
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    Ok(data) => this.messages.push(&data),
                    // Trailers end the body: what is still pending is a
                    // partial message, which tonic reports.
                    Err(trailers) if this.messages.is_empty() => return Poll::Ready(Some(Ok(trailers))),
                    Err(_) => return Poll::Ready(Some(Ok(Frame::data(this.messages.rest())))),
                },
                Some(Err(error)) => return Poll::Ready(Some(Err(error))),
                None if this.messages.is_empty() => return Poll::Ready(None),
                None => return Poll::Ready(Some(Ok(Frame::data(this.messages.rest())))),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.messages.is_empty() && self.inner.is_end_stream()
    }
}

#[cfg(test)]
mod tests {
    use maas_grpc::inference::model_infer_request::InferInputTensor;
    use maas_grpc::inference::{InferTensorContents, ModelInferRequest};
    use prost::Message;

    use super::*;

    fn check() -> InputCheck {
        let config = serde_json::json!({"name": "m", "max_batch_size": 8,
            "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]},
                       {"name": "n", "datatype": "UINT64", "shape": [-1, 2]}],
            "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 1]}]});
        InputCheck::new(Arc::new(serde_json::from_value(config).unwrap()))
    }

    fn outlined(inputs: Vec<InferInputTensor>, raw: Vec<Vec<u8>>) -> RequestOutline {
        let request = ModelInferRequest {
            model_name: "m".into(),
            inputs,
            raw_input_contents: raw.into_iter().map(Into::into).collect(),
            ..Default::default()
        };
        outline(&request.encode_to_vec()).unwrap()
    }

    fn input(name: &str, datatype: &str, shape: Vec<i64>, uint64: Vec<u64>) -> InferInputTensor {
        let contents =
            (!uint64.is_empty()).then(|| InferTensorContents { uint64_contents: uint64, ..Default::default() });
        InferInputTensor { name: name.into(), datatype: datatype.into(), shape, contents, ..Default::default() }
    }

    #[test]
    fn a_request_the_model_takes_passes() {
        let typed = outlined(vec![input("n", "UINT64", vec![2, 2], vec![1, 2, 3, 4])], vec![]);
        check_outline(&typed, &check()).unwrap();
        let raw = outlined(
            vec![input("x", "FP32", vec![1, 4], vec![]), input("n", "UINT64", vec![1, 2], vec![])],
            vec![vec![0; 16], vec![0; 16]],
        );
        check_outline(&raw, &check()).unwrap();
    }

    #[test]
    fn what_the_model_would_refuse_is_refused_from_the_outline() {
        let cases = [
            (outlined(vec![input("x", "UINT64", vec![1, 4], vec![7; 4])], vec![]), "unexpected datatype UINT64"),
            (outlined(vec![input("n", "UINT64", vec![1, 2], vec![7; 1000])], vec![]), "has 1000 elements"),
            (outlined(vec![input("n", "UINT64", vec![100, 2], vec![])], vec![]), "exceeds the maximum batch size"),
            (outlined(vec![input("x", "FP32", vec![1, 4], vec![])], vec![vec![0; 17]]), "17 bytes of raw contents"),
            (outlined(vec![input("q", "FP32", vec![1, 4], vec![])], vec![]), "unexpected inference input 'q'"),
        ];
        for (outline, expected) in cases {
            let error = check_outline(&outline, &check()).unwrap_err().to_string();
            assert!(error.contains(expected), "{error:?} should contain {expected:?}");
        }
    }
}
