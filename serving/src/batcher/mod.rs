//! Dynamic batching per model version.
//!
//! Three parts: [`BatcherHandle`], the thin handle the front submits
//! requests through; the task in [`task`], which owns the queue, forms
//! batches when a replica slot is free and dispatches them; and the pure
//! policy in [`state`] (read its doc for when a batch is sent).
//!
//! A coordinator may hold thousands of versions that nobody calls, so the
//! task and its channel exist only while a version has traffic: the handle
//! starts them at the first request, and the task stops after
//! [`STOP_AFTER_IDLE`] with nothing queued or in flight.

pub mod state;
mod task;

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::mpsc;

use crate::error::{ServeError, ServeResult};
use crate::pending::PendingRequest;
use crate::version::VersionShared;
use state::BatchPolicy;

/// How long a batcher task waits with nothing to do before it stops.
pub const STOP_AFTER_IDLE: Duration = Duration::from_secs(30);

/// Where a running task takes requests from; `None` while no task runs.
/// The task empties it under this lock before it stops, so no request is
/// ever sent to a task that is gone.
type Slot = Mutex<Option<mpsc::Sender<PendingRequest>>>;

impl state::Queued for PendingRequest {
    fn rows(&self) -> u32 {
        self.rows
    }

    fn enqueued(&self) -> Instant {
        self.enqueued
    }

    fn deadline(&self) -> Instant {
        self.deadline
    }

    fn is_abandoned(&self) -> bool {
        self.reply.is_closed()
    }

    fn can_join(&self, first: &Self) -> bool {
        self.inputs.iter().zip(&first.inputs).all(|(a, b)| a.shape[1..] == b.shape[1..])
    }

    fn priority(&self) -> u32 {
        self.priority
    }
}

/// Submits requests to a version's batcher task, starting the task when
/// none runs.
pub struct BatcherHandle {
    slot: Arc<Slot>,
    version: Arc<VersionShared>,
    policy: BatchPolicy,
}

impl BatcherHandle {
    /// The handle of `version`'s batcher; no task runs until a request comes.
    pub fn new(version: Arc<VersionShared>, policy: BatchPolicy) -> BatcherHandle {
        BatcherHandle { slot: Arc::default(), version, policy }
    }

    /// Queues a request, or refuses it at once when the queue is full.
    pub fn submit(&self, request: PendingRequest) -> ServeResult<()> {
        let mut slot = self.slot.lock();
        let sender = match slot.take() {
            Some(sender) if !sender.is_closed() => slot.insert(sender),
            _ => slot.insert(task::spawn(self.version.clone(), self.policy, Arc::downgrade(&self.slot))),
        };
        sender.try_send(request).map_err(|error| match error {
            mpsc::error::TrySendError::Full(_) => {
                ServeError::Overloaded { model: self.version.name.clone(), version: self.version.version }
            }
            mpsc::error::TrySendError::Closed(_) => ServeError::Internal(format!(
                "the batcher of model '{}' version {} has stopped",
                self.version.name, self.version.version
            )),
        })
    }

    /// Whether a batcher task runs now.
    pub fn is_running(&self) -> bool {
        self.slot.lock().as_ref().is_some_and(|sender| !sender.is_closed())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use maas_protocol::{DataType, TensorBytes};
    use tokio::sync::oneshot;

    use super::*;
    use crate::models::{ModelTable, TableSettings};
    use crate::pending::Answered;

    fn table() -> ModelTable {
        table_with_min_replicas(1)
    }

    fn table_with_min_replicas(min: u32) -> ModelTable {
        let settings = TableSettings {
            max_queue: 8,
            batches_per_instance: 1,
            max_frame_bytes: 1 << 20,
            slow_request: Duration::from_secs(1),
        };
        let table = ModelTable::new(settings, maas_monitor::Monitor::new(Default::default()));
        let config = serde_json::from_value(serde_json::json!({
            "name": "m", "max_batch_size": 4,
            "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 1]}],
            "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 1]}],
            "replicas": {"min": min, "max": 1}
        }))
        .unwrap();
        let mut record = maas_registry::ModelRecord::new("m");
        let artifact = maas_registry::ArtifactRef { sha256: "00".repeat(32), size: 1 };
        let version = maas_registry::VersionRecord {
            version: 1,
            config,
            artifact,
            lineage: Default::default(),
            engine_key: None,
        };
        record.versions.insert(1, version);
        table.apply_record(&record);
        table
    }

    /// Submits a one-row request and returns where its answer comes.
    fn submit(batcher: &BatcherHandle) -> oneshot::Receiver<ServeResult<Answered>> {
        let (request, answer) = request();
        batcher.submit(request).expect("queued");
        answer
    }

    fn request() -> (PendingRequest, oneshot::Receiver<ServeResult<Answered>>) {
        let (reply, answer) = oneshot::channel();
        let input =
            TensorBytes { name: "x".into(), datatype: DataType::Fp32, shape: vec![1, 1], data: vec![0; 4].into() };
        let now = Instant::now();
        let request = PendingRequest {
            inputs: vec![input],
            rows: 1,
            enqueued: now,
            deadline: now + Duration::from_secs(5),
            id: None,
            priority: 0,
            reply,
        };
        (request, answer)
    }

    /// A node that fails every batch with a model error: an answer, which
    /// is all the test below looks for.
    struct FailingNode;

    #[async_trait::async_trait]
    impl crate::Replica for FailingNode {
        fn name(&self) -> &str {
            "failing"
        }

        fn is_up(&self) -> bool {
            true
        }

        fn outstanding(&self) -> usize {
            0
        }

        async fn call(
            &self,
            _header: &[u8],
            _payload: bytes::Bytes,
        ) -> Result<maas_protocol::answer::InferAnswer, crate::replica::ReplicaError> {
            let failure = maas_protocol::NodeError::ModelFailed { model: "m".into(), message: "no model here".into() };
            Ok(maas_protocol::answer::InferAnswer::Failed(failure))
        }
    }

    #[tokio::test]
    async fn every_request_waiting_for_a_replica_goes_on_when_one_comes() {
        let table = table_with_min_replicas(0);
        let version = table.entry("m", 1).expect("version 1 is in the table");
        // Two batches already dispatched and the batcher's own queue all
        // wait for the version's first replica.
        let mut answers = Vec::new();
        for _ in 0..2 {
            let (request, answer) = request();
            tokio::spawn({
                let shared = version.shared.clone();
                async move { crate::dispatch::dispatch(&shared, vec![request]).await }
            });
            answers.push(answer);
        }
        answers.push(submit(&version.batcher));
        tokio::time::sleep(Duration::from_millis(50)).await;
        let node: Arc<dyn crate::Replica> = Arc::new(FailingNode);
        let loaded = maas_protocol::LoadedModel {
            name: "m".into(),
            version: 1,
            config: version.shared.config.as_ref().clone(),
            instances: 1,
            ready: true,
            sha256: None,
            memory_bytes: 1,
        };
        table.attach(&node, &[loaded]);
        for answer in answers {
            let answer = tokio::time::timeout(Duration::from_secs(2), answer).await.expect("answered at once");
            let error = answer.expect("a reply").expect_err("the node fails every batch");
            assert!(error.to_string().contains("no model here"), "{error}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_task_runs_only_while_its_version_has_traffic() {
        let table = table();
        let version = table.entry("m", 1).expect("version 1 is in the table");
        assert!(!version.batcher.is_running(), "no task before the first request");

        // No replica holds it: the task answers 503 at once.
        let answer = submit(&version.batcher).await.expect("answered");
        assert!(matches!(answer, Err(ServeError::Unavailable(_))), "{:?}", answer.err());
        assert!(version.batcher.is_running());
        tokio::time::sleep(STOP_AFTER_IDLE / 2).await;
        let answer = submit(&version.batcher).await.expect("answered");
        assert!(answer.is_err());
        tokio::time::sleep(STOP_AFTER_IDLE * 3 / 4).await;
        assert!(version.batcher.is_running(), "a request came less than the idle time ago");
        tokio::time::sleep(STOP_AFTER_IDLE).await;
        assert!(!version.batcher.is_running(), "stopped after idling");

        // The next request starts a new task, which answers it.
        let answer = submit(&version.batcher).await.expect("answered by a new task");
        assert!(matches!(answer, Err(ServeError::Unavailable(_))));
        assert!(version.batcher.is_running());
    }

    #[tokio::test(start_paused = true)]
    async fn a_task_stops_when_its_version_is_dropped() {
        let table = table();
        let version = table.entry("m", 1).expect("version 1 is in the table");
        submit(&version.batcher).await.expect("answered").expect_err("no replica");
        assert!(version.batcher.is_running());
        let shared = Arc::downgrade(&version.shared);
        table.apply_record(&maas_registry::ModelRecord::new("m"));
        drop(version);
        // The task held the last reference to the version's state.
        for _ in 0..100 {
            if shared.upgrade().is_none() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the task of a dropped version still runs");
    }
}
