//! Node session events of `ractor_cluster`, forwarded to a channel: the head tracks which nodes
//! are up and notices lost ones; a node notices a refused cookie or a lost head.

use ractor::ActorRef;
use ractor_cluster::node::NodeServerSessionInformation;
use ractor_cluster::{NodeEventSubscription, NodeServerMessage};
use tokio::sync::mpsc;

/// What happened to a node session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEventKind {
    /// TCP (+TLS) connection open, handshake starting.
    Opened,
    /// The cookie handshake succeeded.
    Authenticated,
    /// State exchange (process groups) done.
    Ready,
    /// The session ended.
    Disconnected,
}

/// One session event.
#[derive(Debug, Clone)]
pub struct SessionEvent {
    /// What happened.
    pub kind: SessionEventKind,
    /// `ractor_cluster`'s id of the session (the `node_id` of its remote actors).
    pub node_id: u64,
    /// The peer's name without its host, once known.
    pub peer: Option<String>,
    /// The peer's socket address.
    pub addr: String,
}

struct Forward(mpsc::UnboundedSender<SessionEvent>);

impl Forward {
    fn send(&self, kind: SessionEventKind, ses: NodeServerSessionInformation) {
        let _ = self.0.send(SessionEvent {
            kind,
            node_id: ses.node_id,
            peer: ses
                .peer_name
                .as_ref()
                .map(|p| super::short_name(&p.name).to_string()),
            addr: ses.peer_addr,
        });
    }
}

impl NodeEventSubscription for Forward {
    fn node_session_opened(&self, ses: NodeServerSessionInformation) {
        self.send(SessionEventKind::Opened, ses);
    }
    fn node_session_disconnected(&self, ses: NodeServerSessionInformation) {
        self.send(SessionEventKind::Disconnected, ses);
    }
    fn node_session_authenticated(&self, ses: NodeServerSessionInformation) {
        self.send(SessionEventKind::Authenticated, ses);
    }
    fn node_session_ready(&self, ses: NodeServerSessionInformation) {
        self.send(SessionEventKind::Ready, ses);
    }
}

/// Subscribe to the session events of `server`.
pub fn subscribe(
    server: &ActorRef<NodeServerMessage>,
    id: &str,
) -> Result<mpsc::UnboundedReceiver<SessionEvent>, super::ClusterError> {
    let (tx, rx) = mpsc::unbounded_channel();
    server
        .cast(NodeServerMessage::SubscribeToEvents {
            id: id.to_string(),
            subscription: Box::new(Forward(tx)),
        })
        .map_err(|e| super::ClusterError::Spawn(e.to_string()))?;
    Ok(rx)
}
