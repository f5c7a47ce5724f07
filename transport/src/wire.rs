//! Values carried in control messages: rkyv-encoded by the sender,
//! validated by the receiver.
//!
//! ractor_cluster moves each field of a remote message as bytes through
//! `BytesConvertable`, whose decoding cannot fail. A [`Wire`] holds what
//! decoding found — the value, or why the bytes were not one — so a
//! damaged or hostile message reaches its handler as an error it answers,
//! never as a panic or a half-read value.

use ractor::BytesConvertable;
use rkyv::api::high::{HighDeserializer, HighSerializer, HighValidator};
use rkyv::bytecheck::CheckBytes;
use rkyv::rancor;
use rkyv::ser::allocator::ArenaHandle;
use rkyv::util::AlignedVec;

/// The largest value a control message may carry: commands and answers
/// are small (names, configurations, status), never tensors.
pub const MAX_WIRE_BYTES: usize = 4 << 20;

/// A value in a control message, or why the bytes received were not one.
#[derive(Debug)]
pub struct Wire<T>(Result<T, String>);

impl<T> Wire<T> {
    /// Wraps a value to send.
    pub fn new(value: T) -> Wire<T> {
        Wire(Ok(value))
    }

    /// The value received, or why the bytes were not a valid one.
    pub fn into_inner(self) -> Result<T, String> {
        self.0
    }
}

impl<T> BytesConvertable for Wire<T>
where
    T: rkyv::Archive + for<'a> rkyv::Serialize<HighSerializer<AlignedVec, ArenaHandle<'a>, rancor::Error>>,
    T::Archived:
        for<'a> CheckBytes<HighValidator<'a, rancor::Error>> + rkyv::Deserialize<T, HighDeserializer<rancor::Error>>,
{
    fn into_bytes(self) -> Vec<u8> {
        match &self.0 {
            Ok(value) => rkyv::to_bytes::<rancor::Error>(value).map(|bytes| bytes.to_vec()).unwrap_or_default(),
            // A value that arrived damaged is never sent on; empty bytes
            // are refused by whoever receives them.
            Err(_) => Vec::new(),
        }
    }

    fn from_bytes(bytes: Vec<u8>) -> Wire<T> {
        if bytes.len() > MAX_WIRE_BYTES {
            return Wire(Err(format!("a control value of {} bytes exceeds {MAX_WIRE_BYTES}", bytes.len())));
        }
        // rkyv reads from an aligned buffer.
        let mut aligned = AlignedVec::<16>::with_capacity(bytes.len());
        aligned.extend_from_slice(&bytes);
        Wire(rkyv::from_bytes::<T, rancor::Error>(&aligned).map_err(|e| format!("invalid control value: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use maas_protocol::{LoadModel, ModelConfig, NodeError, NodeStatus, UnloadModel};

    use super::*;

    fn round_trip<T>(value: T) -> Result<T, String>
    where
        Wire<T>: BytesConvertable,
    {
        Wire::<T>::from_bytes(Wire::new(value).into_bytes()).into_inner()
    }

    fn config() -> ModelConfig {
        serde_json::from_str(
            r#"{"name": "clf", "max_batch_size": 8, "labels": {"team": "fraud"},
                "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}],
                "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 2]}]}"#,
        )
        .unwrap()
    }

    #[test]
    fn commands_and_answers_round_trip() {
        let load = LoadModel {
            model: "clf".into(),
            version: 3,
            config: config(),
            sha256: "ab".repeat(32),
            size: 9,
            memory_bytes: 27,
            memory_measured: true,
        };
        assert_eq!(round_trip(load.clone()).unwrap(), load);
        let unload = UnloadModel { model: "clf".into(), version: 3 };
        assert_eq!(round_trip(unload.clone()).unwrap(), unload);
        let status = NodeStatus {
            in_flight: 2,
            draining: false,
            memory_bytes: 8 << 30,
            memory_used_bytes: 300,
            models: vec![],
            cached_artifacts: vec!["ab".repeat(32)],
            refused: vec![],
        };
        assert_eq!(round_trip(status.clone()).unwrap(), status);
        let refused: Result<(), NodeError> = Err(NodeError::Overloaded);
        assert_eq!(round_trip(refused.clone()).unwrap(), refused);
    }

    #[test]
    fn damaged_values_become_errors_not_panics() {
        let bytes = Wire::new(UnloadModel { model: "clf".into(), version: 1 }).into_bytes();
        for cut in 0..bytes.len() {
            let _ = Wire::<UnloadModel>::from_bytes(bytes[..cut].to_vec()).into_inner();
        }
        assert!(Wire::<UnloadModel>::from_bytes(Vec::new()).into_inner().is_err());
        for byte in [0x00, 0x5a, 0xff] {
            // Garbage decodes to an error or to some value; never a panic.
            let _ = Wire::<UnloadModel>::from_bytes(vec![byte; 64]).into_inner();
        }
        let huge = Wire::<UnloadModel>::from_bytes(vec![0; MAX_WIRE_BYTES + 1]).into_inner();
        assert!(huge.unwrap_err().contains("exceeds"));
    }
}
