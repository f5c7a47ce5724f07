//! The cluster as a coordinator sees it.

use serde_json::Value;

use crate::api_type;

api_type! {
    /// What `GET /v1/cluster` answers.
    pub struct ClusterStatus {
        /// `cluster` (etcd membership and placement) or `static` (`--node`).
        pub mode: String,
        /// Whether this coordinator leads placement.
        pub leader: bool,
        /// Each node this coordinator links to.
        pub links: Vec<NodeLink>,
        /// Registered nodes (cluster mode): name, address, device, memory offered.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub members: Option<Vec<Value>>,
        /// The leader's placement (cluster mode): each version's nodes, or why it fits nowhere.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub placement: Option<Value>,
        /// The live coordinators (with etcd).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub coordinators: Option<Vec<String>>,
        /// How etcd answered this coordinator just now (with etcd).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub etcd: Option<EtcdHealth>
    }
}

api_type! {
    /// etcd as one coordinator sees it.
    pub struct EtcdHealth {
        /// Whether it answered a status call within two seconds.
        pub healthy: bool,
        /// Its version and leader, or why it did not answer.
        pub detail: String
    }
}

api_type! {
    /// A coordinator's link to a node.
    pub struct NodeLink {
        /// The node's name (in its certificate).
        pub name: String,
        /// Its QUIC address.
        pub addr: String,
        /// Whether the link is up.
        pub up: bool,
        /// Batches this coordinator has in flight to the node.
        pub outstanding: u64,
        /// The node's live load, when it answered in time.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub status: Option<NodeLoad>,
        /// Why there is no status, when the link is up but the node did not answer.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub status_error: Option<String>
    }
}

api_type! {
    /// A node's live load.
    pub struct NodeLoad {
        /// Batches being answered.
        pub in_flight: u64,
        /// Whether the node is leaving the cluster.
        pub draining: bool,
        /// Memory the node offers for models, in bytes.
        pub memory_bytes: u64,
        /// Memory its loaded versions hold, in bytes: each one's measured
        /// figure, or its configured one if larger.
        pub memory_used_bytes: u64,
        /// Each loaded version's queue.
        pub models: Vec<ModelQueue>,
        /// Digests of the artifacts in the node's cache.
        pub cached_artifacts: Vec<String>
    }
}

api_type! {
    /// One loaded version's queue on a node.
    pub struct ModelQueue {
        /// Model name.
        pub name: String,
        /// Version.
        pub version: u64,
        /// Batches waiting for a free instance.
        pub queued: u64,
        /// Instances running.
        pub instances: u32,
        /// Memory it holds, as counted against the node's budget, in bytes.
        pub memory_bytes: u64,
        /// Memory its load and warm-up were measured to take, in bytes
        /// (zero when not measured: on a GPU, or in simulation).
        pub measured_bytes: u64
    }
}

api_type! {
    /// A node asked to drain.
    pub struct Draining {
        /// The node.
        pub node: String,
        /// Always true: the node is leaving.
        pub draining: bool
    }
}

impl From<maas_protocol::NodeStatus> for NodeLoad {
    fn from(status: maas_protocol::NodeStatus) -> NodeLoad {
        NodeLoad {
            in_flight: status.in_flight,
            draining: status.draining,
            memory_bytes: status.memory_bytes,
            memory_used_bytes: status.memory_used_bytes,
            models: status
                .models
                .into_iter()
                .map(|m| ModelQueue {
                    name: m.name,
                    version: m.version,
                    queued: m.queued,
                    instances: m.instances,
                    memory_bytes: m.memory_bytes,
                    measured_bytes: m.measured_bytes,
                })
                .collect(),
            cached_artifacts: status.cached_artifacts,
        }
    }
}
