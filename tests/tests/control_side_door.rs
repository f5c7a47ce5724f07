//! The control plane has no side door: every TCP port a node or a
//! coordinator listens on is tried with ractor_cluster's own handshake and
//! the cookie anyone can read in the source, and no session is ever
//! admitted, so no control command (list, drain, unload) reaches a node
//! except over the mutually authenticated QUIC connection.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use maas_tests::cluster::listening_tcp_ports;
use maas_tests::Cluster;
use maas_transport::control::{self, ControlMessage};
use ractor::Actor;
use ractor_cluster::node::{NodeConnectionMode, NodeServerSessionInformation};
use ractor_cluster::{NodeEventSubscription, NodeServer, NodeServerMessage};

/// Counts sessions that got past the handshake.
struct Admitted(Arc<AtomicUsize>);

impl NodeEventSubscription for Admitted {
    fn node_session_opened(&self, _: NodeServerSessionInformation) {}
    fn node_session_disconnected(&self, _: NodeServerSessionInformation) {}
    fn node_session_authenticated(&self, _: NodeServerSessionInformation) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_control_session_is_admitted_outside_quic() -> Result<()> {
    let cluster = Cluster::builder().start().await?;
    let node_pid = cluster.nodes[0].process.pid().expect("the node runs");
    let coordinator_pid = cluster.coordinator().pid().expect("the coordinator runs");

    let intruder = NodeServer::new(
        0,
        control::COOKIE.to_string(),
        "intruder".to_string(),
        "localhost".to_string(),
        None,
        Some(NodeConnectionMode::Isolated),
    );
    let (intruder, _handle) = Actor::spawn(None, intruder, ()).await?;
    let admitted = Arc::new(AtomicUsize::new(0));
    intruder
        .cast(NodeServerMessage::SubscribeToEvents {
            id: "probe".into(),
            subscription: Box::new(Admitted(admitted.clone())),
        })
        .map_err(|e| anyhow::anyhow!("{e}"))?;

    let mut tried = Vec::new();
    for (process, pid) in [("node-0", node_pid), ("coordinator", coordinator_pid)] {
        let ports = listening_tcp_ports(pid)?;
        assert!(!ports.is_empty(), "{process} listens on no TCP port; the probe reads /proc wrongly");
        for port in ports {
            // Connecting may fail outright (HTTP, gRPC, metrics ports close
            // the session on the first bytes); what matters is that no
            // session is admitted.
            let _ = ractor_cluster::client_connect(&intruder, format!("127.0.0.1:{port}")).await;
            tried.push(format!("{process}:{port}"));
        }
    }
    // A session admitted over the side door shows the node's host actor
    // within milliseconds; give it far longer.
    let group = control::host_group("node-0");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while tokio::time::Instant::now() < deadline {
        if let Some(host) = ractor::pg::get_members(&group).into_iter().next() {
            let host: ractor::ActorRef<ControlMessage> = host.into();
            let answer = host.call(ControlMessage::ListModels, Some(Duration::from_secs(2))).await;
            panic!(
                "a control session was admitted outside QUIC (ports tried: {tried:?}); ListModels answered {:?}",
                answer.map(|a| a.is_success())
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(admitted.load(Ordering::SeqCst), 0, "a session authenticated over TCP (ports tried: {tried:?})");

    // The QUIC path still works: the coordinator asks the node for its
    // live status over its session.
    let nodes: serde_json::Value = cluster
        .client
        .get(cluster.url("/v1/cluster"))
        .bearer_auth(maas_tests::cluster::ADMIN_TOKEN)
        .send()
        .await?
        .json()
        .await?;
    assert!(nodes.to_string().contains("\"in_flight\""), "no live status from node-0 over QUIC: {nodes}");
    Ok(())
}
