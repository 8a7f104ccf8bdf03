//! What travels between the head and the nodes: plain serde data inside one generic
//! request/reply message, [`Call`], whose `ractor::Message` impl encodes it for `ractor_cluster`.
//!
//! ```text
//!  node                                   head
//!   Call<Hello, Welcome>  ─────────────>  head actor (group `azr.head`): version check, config
//!                         <───────────── Welcome::Accepted { config } | Refused { reason }
//!   executor worker       <───────────── Call<ExecJob, ExecReply>  (group `azr.executor`)
//! ```
//!
//! Encoding is JSON (the payloads are small: a proposal, a task, a status). A reply that cannot
//! be decoded is dropped, so the caller sees the request fail and re-issues it, never a wrong
//! value.

use std::marker::PhantomData;

use azr_core::executor::ExecStatus;
use azr_core::tasks::Proposal;
use azr_core::types::PolicyVersion;
use ractor::message::{BoxedDowncastErr, SerializedMessage};
use ractor::RpcReplyPort;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::actors::executor::Validated;

/// The cluster protocol version; a node speaking another one is refused at join.
pub const PROTOCOL: u32 = 1;

/// Process group of the head's control actor.
pub const HEAD_GROUP: &str = "azr.head";

/// Process group of the executor workers (the head's own one included).
pub const EXECUTOR_GROUP: &str = "azr.executor";

/// A role a node can host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeRole {
    /// Validates proposals in the sandboxed executor.
    Executor,
}

impl NodeRole {
    /// The name used on the command line and in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeRole::Executor => "executor",
        }
    }

    /// Parse a command-line role name.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "executor" => Some(NodeRole::Executor),
            _ => None,
        }
    }
}

/// Node -> head, first thing after the connection is authenticated.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hello {
    /// The node's name (unique in the cluster; a node that comes back uses the same one).
    pub node: String,
    /// `CARGO_PKG_VERSION` of the node's binary.
    pub azr_version: String,
    /// [`PROTOCOL`] of the node's binary.
    pub protocol: u32,
    /// Roles it hosts.
    pub roles: Vec<NodeRole>,
    /// Executions it runs at once (the head keeps at most this many in flight on it).
    pub capacity: usize,
    /// Where its `/metrics` is served, if anywhere.
    pub metrics_addr: Option<String>,
}

/// Head -> node: the answer to [`Hello`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Welcome {
    /// Joined: the run's config (TOML) the node builds its executor and task types from.
    Accepted {
        /// `Config::to_toml` of the head's run.
        config_toml: String,
        /// Whether this node name had joined before (it came back).
        rejoined: bool,
    },
    /// Not joined, and why (shown on both sides).
    Refused {
        /// The reason.
        reason: String,
    },
}

/// Head -> executor worker: validate one proposal.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExecJob {
    /// Dispatcher-assigned id (unique per run), for logs and de-duplication.
    pub id: u64,
    /// The parsed proposal, or why it does not parse.
    pub parsed: Result<Proposal, String>,
    /// Learner batch of its slot.
    pub batch: u64,
    /// Behaviour version of its generation.
    pub first_version: PolicyVersion,
}

/// Executor worker -> head.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExecReply {
    /// Echo of [`ExecJob::id`].
    pub id: u64,
    /// The node that ran it.
    pub node: String,
    /// Sandbox outcome.
    pub status: ExecStatus,
    /// Seconds the validation took there.
    pub seconds: f64,
    /// The result.
    pub validated: Validated,
}

/// One request of type `Req` answered with `Rep`: the only message shape that crosses nodes.
pub struct Call<Req, Rep> {
    /// The request.
    pub req: Req,
    /// Where the reply goes.
    pub reply: RpcReplyPort<Rep>,
}

/// The variant tag written on the wire.
const VARIANT: &str = "call";

/// Encode a value for the wire.
pub fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(v)
}

/// Decode a value from the wire.
pub fn decode<T: DeserializeOwned>(b: &[u8]) -> Result<T, serde_json::Error> {
    serde_json::from_slice(b)
}

/// Marker so the generic impl names both types.
struct Types<Req, Rep>(PhantomData<(Req, Rep)>);

impl<Req, Rep> Types<Req, Rep>
where
    Rep: Serialize + DeserializeOwned + Send + 'static,
{
    /// A byte reply port that decodes into the typed `reply` (same timeout).
    fn bytes_port(reply: RpcReplyPort<Rep>) -> RpcReplyPort<Vec<u8>> {
        let timeout = reply.get_timeout();
        let (tx, rx) = ractor::concurrency::oneshot::<Vec<u8>>();
        tokio::spawn(async move {
            if let Ok(bytes) = rx.await {
                match decode::<Rep>(&bytes) {
                    Ok(v) => {
                        let _ = reply.send(v);
                    }
                    Err(e) => tracing::error!(error = %e, "undecodable cluster reply dropped"),
                }
            }
        });
        match timeout {
            Some(t) => (tx, t).into(),
            None => tx.into(),
        }
    }

    /// A typed reply port that encodes into the byte `reply`.
    fn typed_port(reply: RpcReplyPort<Vec<u8>>) -> RpcReplyPort<Rep> {
        let timeout = reply.get_timeout();
        let (tx, rx) = ractor::concurrency::oneshot::<Rep>();
        tokio::spawn(async move {
            if let Ok(v) = rx.await {
                match encode(&v) {
                    Ok(bytes) => {
                        let _ = reply.send(bytes);
                    }
                    Err(e) => tracing::error!(error = %e, "unencodable cluster reply dropped"),
                }
            }
        });
        match timeout {
            Some(t) => (tx, t).into(),
            None => tx.into(),
        }
    }
}

impl<Req, Rep> ractor::Message for Call<Req, Rep>
where
    Req: Serialize + DeserializeOwned + Send + 'static,
    Rep: Serialize + DeserializeOwned + Send + 'static,
{
    fn serializable() -> bool {
        true
    }

    fn serialize(self) -> Result<SerializedMessage, BoxedDowncastErr> {
        let args = encode(&self.req).map_err(|e| {
            tracing::error!(error = %e, "cluster request not encodable");
            BoxedDowncastErr
        })?;
        Ok(SerializedMessage::Call {
            variant: VARIANT.to_string(),
            args,
            reply: Types::<Req, Rep>::bytes_port(self.reply),
            metadata: None,
        })
    }

    fn deserialize(bytes: SerializedMessage) -> Result<Self, BoxedDowncastErr> {
        match bytes {
            SerializedMessage::Call {
                variant,
                args,
                reply,
                ..
            } if variant == VARIANT => {
                let req = decode::<Req>(&args).map_err(|e| {
                    tracing::error!(error = %e, "undecodable cluster request dropped");
                    BoxedDowncastErr
                })?;
                Ok(Call {
                    req,
                    reply: Types::<Req, Rep>::typed_port(reply),
                })
            }
            _ => Err(BoxedDowncastErr),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_call_round_trips_through_its_byte_form() {
        let (tx, rx) = ractor::concurrency::oneshot::<Welcome>();
        let call = Call::<Hello, Welcome> {
            req: Hello {
                node: "n1".into(),
                azr_version: "0.1.0".into(),
                protocol: PROTOCOL,
                roles: vec![NodeRole::Executor],
                capacity: 3,
                metrics_addr: None,
            },
            reply: tx.into(),
        };
        let bytes = ractor::Message::serialize(call).expect("serializable");
        let back: Call<Hello, Welcome> = ractor::Message::deserialize(bytes).expect("decodes");
        assert_eq!(back.req.node, "n1");
        assert_eq!(back.req.capacity, 3);
        back.reply
            .send(Welcome::Refused {
                reason: "because".into(),
            })
            .expect("reply port open");
        match rx.await.expect("reply arrives") {
            Welcome::Refused { reason } => assert_eq!(reason, "because"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn roles_parse_by_name() {
        assert_eq!(NodeRole::parse("executor"), Some(NodeRole::Executor));
        assert_eq!(NodeRole::parse("learner"), None);
    }
}
