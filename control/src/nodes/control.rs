//! The coordinator's end of the control plane.
//!
//! One ractor_cluster server per coordinator; one session per node link,
//! opened over the link's QUIC connection (see
//! `maas_transport::control`). A session is bound to the node the
//! connection authenticated: the coordinator labels the session with the
//! connection, finds that session's node id, and accepts only the host
//! actor in the node's process group that lives on that session. When the
//! session ends (the connection died or the node left), the link's waiter
//! is told at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use maas_transport::control::{self, ControlMessage};
use parking_lot::Mutex;
use ractor::rpc::CallResult;
use ractor::{ActorRef, RpcReplyPort};
use ractor_cluster::node::NodeServerSessionInformation;
use ractor_cluster::{NodeEventSubscription, NodeServerMessage};
use tokio::sync::watch;

/// How long a new session may take to show the node's host actor.
const SESSION_READY_WITHIN: Duration = Duration::from_secs(5);

/// Sessions being watched, by label: each sender flips to true when its
/// session ends.
type Watched = Arc<Mutex<HashMap<String, watch::Sender<bool>>>>;

/// This coordinator's control-plane server.
pub struct ControlPlane {
    server: ActorRef<NodeServerMessage>,
    watched: Watched,
}

/// A live session to one node's host actor.
pub struct ControlSession {
    /// The node's host actor.
    pub host: ActorRef<ControlMessage>,
    ended: watch::Receiver<bool>,
}

impl ControlSession {
    /// Resolves when the session has ended.
    pub async fn ended(&mut self) {
        let _ = self.ended.wait_for(|ended| *ended).await;
    }
}

struct SessionEvents {
    watched: Watched,
}

impl NodeEventSubscription for SessionEvents {
    fn node_session_opened(&self, _session: NodeServerSessionInformation) {}

    fn node_session_authenticated(&self, _session: NodeServerSessionInformation) {}

    fn node_session_disconnected(&self, session: NodeServerSessionInformation) {
        if let Some(ended) = self.watched.lock().remove(&session.peer_addr) {
            let _ = ended.send(true);
        }
    }
}

impl ControlPlane {
    /// Starts the server. Its cluster name is the coordinator's name made
    /// unique per process, so a restarted coordinator is never mistaken for
    /// its previous life by nodes that still hold the old session.
    pub async fn start(coordinator: &str) -> anyhow::Result<Arc<ControlPlane>> {
        let started = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let name = format!("{coordinator}.{}.{}", std::process::id(), started.as_micros());
        let server = control::start_server(&name).await?;
        let watched: Watched = Arc::default();
        server
            .cast(NodeServerMessage::SubscribeToEvents {
                id: "maas-node-links".into(),
                subscription: Box::new(SessionEvents { watched: watched.clone() }),
            })
            .map_err(|e| anyhow::anyhow!("subscribing to control sessions: {e}"))?;
        Ok(Arc::new(ControlPlane { server, watched }))
    }

    /// Opens a session to node `node` over `connection` and finds its host
    /// actor there.
    pub async fn open(&self, node: &str, connection: &quinn::Connection) -> anyhow::Result<ControlSession> {
        static SESSIONS: AtomicU64 = AtomicU64::new(0);
        let label = format!("{node}@{}#{}", connection.remote_address(), SESSIONS.fetch_add(1, Ordering::Relaxed));
        let (ended_sender, ended) = watch::channel(false);
        self.watched.lock().insert(label.clone(), ended_sender);
        let found = async {
            control::dial(&self.server, connection, label.clone()).await?;
            self.find_host(node, &label).await
        };
        match found.await {
            Ok(host) => Ok(ControlSession { host, ended }),
            Err(error) => {
                self.watched.lock().remove(&label);
                Err(error)
            }
        }
    }

    async fn find_host(&self, node: &str, label: &str) -> anyhow::Result<ActorRef<ControlMessage>> {
        let group = control::host_group(node);
        let started = Instant::now();
        loop {
            let sessions = ractor::call_t!(self.server, NodeServerMessage::GetSessions, 1000)
                .map_err(|e| anyhow::anyhow!("listing control sessions: {e}"))?;
            let session = sessions.values().find(|s| s.peer_addr == label).map(|s| s.node_id);
            if let Some(node_id) = session {
                let on_session =
                    ractor::pg::get_members(&group).into_iter().find(|actor| actor.get_id().node() == node_id);
                if let Some(actor) = on_session {
                    return Ok(actor.into());
                }
            }
            if started.elapsed() > SESSION_READY_WITHIN {
                bail!("node '{node}' showed no host actor on its control session within {SESSION_READY_WITHIN:?}");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// Sends the message `message` builds around a reply port to a host actor
/// and waits up to `limit` for the answer.
pub async fn call<T: Send + 'static>(
    host: &ActorRef<ControlMessage>,
    message: impl FnOnce(RpcReplyPort<T>) -> ControlMessage,
    limit: Duration,
) -> anyhow::Result<T> {
    match host.call(message, Some(limit)).await {
        Ok(CallResult::Success(answer)) => Ok(answer),
        Ok(CallResult::Timeout) => bail!("no answer within {limit:?}"),
        Ok(CallResult::SenderError) => bail!("the control session ended before the answer"),
        Err(error) => Err(error).context("sending over the control session"),
    }
}
