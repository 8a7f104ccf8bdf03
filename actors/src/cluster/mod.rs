//! Several machines: the head (`azr run --cluster-listen`) and worker nodes (`azr node`),
//! connected with `ractor_cluster`.
//!
//! ```text
//!   azr node ──TCP (+TLS), magic cookie──> azr run --cluster-listen   (the head)
//!     │ Hello {name, version, roles, capacity} ──> head actor (group azr.head)
//!     │ <── Welcome {config} | Refused {reason}
//!     ├ executor worker joins group azr.executor ── mirrored to the head by ractor_cluster
//!     ├ rollout worker + weights receiver join azr.rollout / azr.weights (--roles rollout)
//!     └ evaluator worker + weights receiver join azr.evaluator / azr.eval_weights
//!                                                                        (--roles evaluator)
//!
//!   head: proposals channel ──> dispatcher ──> any member of azr.executor (its own included)
//!                                   │  reply ──> estimates / reward channels (as in one process)
//!                                   └─ member lost mid-job: the job is re-issued, counted
//!   head: proposer / solver / estimator ──> rollout router ──> own engine | azr.rollout member
//!         learner publish ──> broadcaster ──> chunked snapshot ──> azr.weights member
//!   head: evaluator (due version) ──> chunked snapshot ──> azr.eval_weights member
//!                                 └─> benchmarks + settings ──> azr.evaluator member ──> scores
//!                                     (none free, or lost / refused: the head's own evaluator)
//! ```
//!
//! [`rollout`] has the rollout role: routing, weights, and the staleness bound across
//! machines. [`eval`] has the evaluator role: due evaluations scored on a node, on the pinned
//! version sent the rollout role's way, re-issued when lost.
//!
//! What `ractor_cluster` leaves to azr, and how azr covers it:
//! * **No reconnect.** A node keeps retrying the head (`--retry-for`), says Hello again and
//!   rejoins under its name; the head counts rejoins ([`head::NodeReport::joins`]).
//! * **No remote supervision.** The head watches node sessions ([`events`]); a session that
//!   ends takes its remote actors, and so their pending replies, with it: the dispatcher sees
//!   the request fail and re-issues the job on another member ([`head`]).
//! * **Remote registry gaps.** Named remote actors are not in the local registry, so nothing is
//!   looked up by name across nodes: work goes to process-group members, and the head only uses
//!   members of nodes it admitted (Hello accepted, session up).
//! * **Authentication** is the cookie handshake of `ractor_cluster`; a session that closes
//!   before it authenticates is reported on both sides as a refused cookie. The azr version and
//!   [`wire::PROTOCOL`] are checked in Hello.

pub mod bench;
pub mod eval;
pub mod events;
pub mod head;
mod local;
pub mod node;
pub mod rollout;
pub mod server;
pub mod tls;
pub mod wire;
pub mod worker;

use std::net::SocketAddr;
use std::path::Path;

/// Errors of setting up a cluster endpoint.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The cookie file could not be read or is empty.
    #[error("cookie file {path}: {reason}")]
    Cookie {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A TLS certificate or key could not be loaded.
    #[error("TLS: {0}")]
    Tls(String),
    /// An address did not parse or resolve.
    #[error("address `{0}`: {1}")]
    Address(String, String),
    /// The node server (ractor_cluster) did not start.
    #[error("starting the cluster node server: {0}")]
    Spawn(String),
    /// Connecting to the head failed.
    #[error("connecting to the head at {addr}: {reason}")]
    Connect {
        /// The head's address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// The head refused this node.
    #[error("the head refused this node: {0}")]
    Refused(String),
    /// The cookie handshake failed.
    #[error(
        "authentication with {0} failed: the connection closed during the handshake: the cookies \
         differ (check --cookie-file on both sides), or only one side uses TLS (--tls-cert on the \
         head, --tls-ca on the node)"
    )]
    Auth(String),
    /// Something else in the protocol went wrong.
    #[error("cluster protocol: {0}")]
    Protocol(String),
}

/// Read the magic cookie of `path` (surrounding whitespace removed; must not be empty).
pub fn read_cookie(path: &Path) -> Result<String, ClusterError> {
    let text = std::fs::read_to_string(path).map_err(|e| ClusterError::Cookie {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    let cookie = text.trim().to_string();
    if cookie.is_empty() {
        return Err(ClusterError::Cookie {
            path: path.display().to_string(),
            reason: "empty".into(),
        });
    }
    Ok(cookie)
}

/// Resolve `host:port` to one socket address.
pub fn resolve(addr: &str) -> Result<SocketAddr, ClusterError> {
    use std::net::ToSocketAddrs;
    addr.to_socket_addrs()
        .map_err(|e| ClusterError::Address(addr.into(), e.to_string()))?
        .next()
        .ok_or_else(|| ClusterError::Address(addr.into(), "resolves to nothing".into()))
}

/// The node name `ractor_cluster` reports for a peer (`name@host`), reduced to `name`.
pub fn short_name(peer: &str) -> &str {
    peer.split('@').next().unwrap_or(peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_trimmed_and_must_not_be_empty() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("cookie");
        std::fs::write(&p, "  s3cret\n").expect("write");
        assert_eq!(read_cookie(&p).expect("cookie"), "s3cret");
        std::fs::write(&p, "\n").expect("write");
        assert!(matches!(read_cookie(&p), Err(ClusterError::Cookie { .. })));
        assert!(read_cookie(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn peer_names_lose_their_host() {
        assert_eq!(short_name("n1@localhost"), "n1");
        assert_eq!(short_name("n1"), "n1");
    }
}
