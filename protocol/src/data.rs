//! The data plane: each QUIC data stream carries exactly one [`InferBatch`]
//! from the coordinator and one [`BatchReply`] back, each in one
//! [`crate::frame`]. Control commands never travel here (they have their own
//! types in [`crate::control`]), so neither side has a variant to refuse.

use bytes::Bytes;
use rkyv::rancor::Fallible;
use rkyv::ser::{Writer, WriterExt};
use rkyv::vec::{ArchivedVec, VecResolver};
use rkyv::with::{ArchiveWith, DeserializeWith, SerializeWith};
use rkyv::Place;

use crate::{DataType, NodeError, Tensor};

/// Rows of one or more client requests for one model version, concatenated
/// along the batch dimension.
#[derive(Debug, Clone, PartialEq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct InferBatch {
    /// The coordinator's number for this batch, echoed in logs.
    pub batch_id: u64,
    /// Model name.
    pub model: String,
    /// Model version.
    pub version: u64,
    /// One tensor per model input, in the configuration's order.
    pub inputs: Vec<BatchInput>,
    /// Rows each client request contributes, in order; they sum to the
    /// batch dimension. Lets the node isolate a request that makes the
    /// model fail from the others in its batch.
    pub request_rows: Vec<u32>,
    /// Each request's id as its client gave it (empty when it gave none),
    /// echoed in the node's logs so one request can be followed.
    pub request_ids: Vec<String>,
}

/// One input of a batch. The coordinator holds its elements as the parts
/// each request contributed (slices of the requests' bodies); they are
/// written one after the other straight into the frame, so the batch is
/// never assembled in a buffer of its own. The node reads them as one
/// contiguous array.
#[derive(Debug, Clone, PartialEq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct BatchInput {
    /// The input's name from the model configuration.
    pub name: String,
    /// Element type.
    pub datatype: DataType,
    /// Dimensions, batch dimension first (the sum of the parts' rows).
    pub shape: Vec<i64>,
    /// Elements, row-major, little-endian, in parts to be concatenated.
    #[rkyv(with = Concatenated)]
    pub data: Vec<Bytes>,
}

impl BatchInput {
    /// An input whose elements are one buffer.
    pub fn whole(name: impl Into<String>, datatype: DataType, shape: Vec<i64>, data: impl Into<Bytes>) -> Self {
        BatchInput { name: name.into(), datatype, shape, data: vec![data.into()] }
    }

    /// Bytes of elements over all parts.
    pub fn data_len(&self) -> usize {
        self.data.iter().map(Bytes::len).sum()
    }
}

impl ArchivedBatchInput {
    /// The shape as native integers.
    pub fn shape_vec(&self) -> Vec<i64> {
        self.shape.iter().map(|d| d.to_native()).collect()
    }
}

/// Archives a list of byte buffers as the one byte array they make end to
/// end, writing each buffer into the archive once.
pub struct Concatenated;

impl ArchiveWith<Vec<Bytes>> for Concatenated {
    type Archived = ArchivedVec<u8>;
    type Resolver = VecResolver;

    fn resolve_with(parts: &Vec<Bytes>, resolver: VecResolver, out: Place<ArchivedVec<u8>>) {
        ArchivedVec::resolve_from_len(parts.iter().map(Bytes::len).sum(), resolver, out);
    }
}

impl<S: Fallible + Writer + ?Sized> SerializeWith<Vec<Bytes>, S> for Concatenated {
    fn serialize_with(parts: &Vec<Bytes>, serializer: &mut S) -> Result<VecResolver, S::Error> {
        let position = serializer.align_for::<u8>()?;
        for part in parts {
            serializer.write(part)?;
        }
        Ok(VecResolver::from_pos(position))
    }
}

impl<D: Fallible + ?Sized> DeserializeWith<ArchivedVec<u8>, Vec<Bytes>, D> for Concatenated {
    fn deserialize_with(archived: &ArchivedVec<u8>, _: &mut D) -> Result<Vec<Bytes>, D::Error> {
        Ok(vec![Bytes::copy_from_slice(archived.as_slice())])
    }
}

/// What a node answers to a batch.
#[derive(Debug, Clone, PartialEq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub enum BatchReply {
    /// The batch ran, as a whole or request by request.
    Ran(BatchResult),
    /// The batch could not be handled at all (unknown model, full queue,
    /// malformed frame).
    Failed(NodeError),
}

/// A batch's outputs and where its time went.
#[derive(Debug, Clone, PartialEq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct BatchResult {
    /// Echo of [`InferBatch::batch_id`].
    pub batch_id: u64,
    /// Nanoseconds the batch waited on the node for a free model instance.
    pub queue_ns: u64,
    /// Nanoseconds spent building input tensors.
    pub compute_input_ns: u64,
    /// Nanoseconds spent in the model's forward.
    pub compute_infer_ns: u64,
    /// Nanoseconds spent copying outputs back.
    pub compute_output_ns: u64,
    /// The outputs.
    pub outcome: BatchOutcome,
}

/// Outputs of a whole batch, or of each request when the batch failed.
#[derive(Debug, Clone, PartialEq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub enum BatchOutcome {
    /// One tensor per model output, covering every row of the batch.
    Whole(Vec<Tensor>),
    /// The batch as a whole failed; each request was then run alone, and
    /// this holds one outcome per entry of [`InferBatch::request_rows`].
    PerRequest(Vec<RequestOutcome>),
}

/// The outcome of one request run on its own.
#[derive(Debug, Clone, PartialEq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub enum RequestOutcome {
    /// The request's outputs.
    Ok(Vec<Tensor>),
    /// Why it failed.
    Err(NodeError),
}
