//! What travels between the head and the nodes: plain serde data inside one generic
//! request/reply message, [`Call`], whose `ractor::Message` impl encodes it for `ractor_cluster`.
//!
//! ```text
//!  node                                   head
//!   Call<Hello, Welcome>  ─────────────>  head actor (group `azr.head`): version check, config
//!                         <───────────── Welcome::Accepted { config } | Refused { reason }
//!   executor worker       <───────────── Call<ExecJob, ExecReply>  (group `azr.executor`)
//!   rollout worker        <───────────── Call<GenJob, GenReply>    (group `azr.rollout`)
//!   weights receiver      <───────────── WeightsCall (chunk i of n) (group `azr.weights`)
//!   evaluator weights     <───────────── WeightsCall (chunk i of n) (group `azr.eval_weights`)
//!   evaluator worker      <───────────── Call<EvalJob, EvalReply>  (group `azr.evaluator`)
//! ```
//!
//! Encoding is JSON (the payloads are small: a proposal, a task, a status, token ids and
//! log-probs; an evaluation request carries its benchmark items, a few hundred kB at most). Weight chunks are the exception: [`WeightsCall`] writes a small JSON header and
//! then the raw bytes (at most [`WEIGHT_CHUNK_BYTES`], below `ractor_cluster`'s 16 MiB frame
//! limit). A reply that cannot be decoded is dropped, so the caller sees the request fail and
//! re-issues it, never a wrong value.

use std::marker::PhantomData;

use azr_core::executor::ExecStatus;
use azr_core::tasks::Proposal;
use azr_core::types::PolicyVersion;
use ractor::message::{BoxedDowncastErr, SerializedMessage};
use ractor::RpcReplyPort;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::actors::executor::Validated;

/// The cluster protocol version; a node speaking another one is refused at join (1: executor
/// role; 2: rollout role; 3: evaluator role).
pub const PROTOCOL: u32 = 3;

/// The protocol version this binary announces in Hello: [`PROTOCOL`], unless the hidden
/// environment variable `AZR_CLUSTER_PROTOCOL_OVERRIDE` says otherwise (tests of the refusal of
/// an incompatible node use it; nothing else should).
pub fn announced_protocol() -> u32 {
    std::env::var("AZR_CLUSTER_PROTOCOL_OVERRIDE")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(PROTOCOL)
}

/// Process group of the head's control actor.
pub const HEAD_GROUP: &str = "azr.head";

/// Process group of the executor workers (the head's own one included).
pub const EXECUTOR_GROUP: &str = "azr.executor";

/// Process group of the remote rollout workers (the head's own engine is called directly).
pub const ROLLOUT_GROUP: &str = "azr.rollout";

/// Process group of the weight receivers of rollout nodes.
pub const WEIGHTS_GROUP: &str = "azr.weights";

/// Process group of the remote evaluator workers (the head's own evaluator is called directly).
pub const EVAL_GROUP: &str = "azr.evaluator";

/// Process group of the weight receivers of evaluator nodes (one pinned snapshot per
/// evaluation, sent as the rollout role's chunked snapshots are).
pub const EVAL_WEIGHTS_GROUP: &str = "azr.eval_weights";

/// Raw weight bytes per [`WeightsCall`]: 4 MiB, well below `ractor_cluster`'s default inbound
/// frame limit of 16 MiB.
pub const WEIGHT_CHUNK_BYTES: usize = 4 << 20;

/// A role a node can host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeRole {
    /// Validates proposals in the sandboxed executor.
    Executor,
    /// Hosts a rollout engine that generates for the head's proposer, solver and estimator.
    Rollout,
    /// Scores the head's due evaluations on the pinned weight version, with its own engine
    /// and executor.
    Evaluator,
}

impl NodeRole {
    /// The name used on the command line and in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeRole::Executor => "executor",
            NodeRole::Rollout => "rollout",
            NodeRole::Evaluator => "evaluator",
        }
    }

    /// Parse a command-line role name.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "executor" => Some(NodeRole::Executor),
            "rollout" => Some(NodeRole::Rollout),
            "evaluator" => Some(NodeRole::Evaluator),
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

/// Head -> rollout worker: generate `req` with weights of version `min_version` or newer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GenJob {
    /// Router-assigned id (unique per run), for logs.
    pub id: u64,
    /// The request, as the head's own engine would take it.
    pub req: azr_core::engine::GenRequest,
    /// The oldest policy version allowed to produce the first token (the staleness bound:
    /// the batch the samples are trained in minus `run.staleness`).
    pub min_version: PolicyVersion,
}

/// Rollout worker -> head.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum GenReply {
    /// The `n` samples, in sample order.
    Samples(Vec<azr_core::engine::SampleOut>),
    /// Not generated: the node's engine is older than `min_version` (its weights have not
    /// arrived yet) or has no weights at all; the head issues the request elsewhere.
    Stale {
        /// The version the node's engine decodes with (`None`: no engine yet).
        have: Option<PolicyVersion>,
        /// The version the request needs.
        need: PolicyVersion,
    },
    /// The node's engine failed the request (the reason); the head issues it elsewhere.
    Failed(String),
}

/// Head -> evaluator worker: score `benchmarks` on the snapshot of `version`, which the head
/// sent to the node's evaluator weights receiver just before.
///
/// The items travel in the request, not by name: the head already holds them, some sets live
/// next to the head's model files (`heldout-*`, `valid-*`) that a node does not have, and a
/// node then scores exactly the head's items whatever data files it has (no second copy to
/// keep in step, nothing to check against a hash).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvalJob {
    /// Head-assigned id (unique per run), for logs.
    pub id: u64,
    /// The pinned policy version to score.
    pub version: PolicyVersion,
    /// The step that published it (`None`: the starting weights).
    pub step: Option<u64>,
    /// The benchmarks, items included.
    pub benchmarks: Vec<crate::actors::evaluator::Benchmark>,
    /// Decoding: samples, sampling settings (stop ids included) and the evaluation's seed.
    pub settings: crate::actors::evaluator::EvalSettings,
}

/// Evaluator worker -> head.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum EvalReply {
    /// One score per benchmark, in order.
    Scores(Vec<crate::actors::evaluator::Score>),
    /// The node holds no snapshot of `version` (it was lost or replaced); the head issues the
    /// evaluation elsewhere.
    NoWeights {
        /// The version the request needs.
        version: PolicyVersion,
    },
    /// The node's evaluation failed (the reason); the head issues it elsewhere.
    Failed(String),
}

/// What a rollout node needs besides the weights to build its engine: sent with the first
/// chunk of the first snapshot of a session.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelSpec {
    /// `ModelConfig` as JSON.
    pub config_json: String,
    /// `tokenizer.json` text.
    pub tokenizer_json: String,
}

/// Head -> weights receiver: chunk `index` of `count` of the safetensors buffer of `version`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WeightChunk {
    /// Policy version of the snapshot.
    pub version: PolicyVersion,
    /// Position of this chunk.
    pub index: u32,
    /// Chunks of this version.
    pub count: u32,
    /// Bytes of the whole buffer.
    pub total_bytes: u64,
    /// Model config and tokenizer (first chunk of the first snapshot the node gets).
    pub spec: Option<ModelSpec>,
    /// The bytes (written raw on the wire, not in the JSON header).
    #[serde(skip)]
    pub data: Vec<u8>,
}

/// Weights receiver -> head.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum WeightsAck {
    /// Chunk stored (more to come).
    Chunk,
    /// The last chunk: the snapshot is handed to the node's engine as `version`.
    Installed {
        /// The version installed.
        version: PolicyVersion,
    },
    /// Refused (the reason: no spec before the first snapshot, a chunk out of order, an
    /// unreadable buffer); the head starts the version again with its spec.
    Refused(String),
}

/// The weight receiver's message: a [`WeightChunk`] whose bytes travel raw after a JSON header.
pub struct WeightsCall {
    /// The chunk.
    pub req: WeightChunk,
    /// Where the acknowledgement goes.
    pub reply: RpcReplyPort<WeightsAck>,
}

/// The variant tag of a [`WeightsCall`].
const WEIGHTS_VARIANT: &str = "weights";

impl ractor::Message for WeightsCall {
    fn serializable() -> bool {
        true
    }

    fn serialize(self) -> Result<SerializedMessage, BoxedDowncastErr> {
        let header = encode(&self.req).map_err(|e| {
            tracing::error!(error = %e, "weight chunk header not encodable");
            BoxedDowncastErr
        })?;
        let len = u32::try_from(header.len()).map_err(|_| BoxedDowncastErr)?;
        let mut args = Vec::with_capacity(4 + header.len() + self.req.data.len());
        args.extend_from_slice(&len.to_le_bytes());
        args.extend_from_slice(&header);
        args.extend_from_slice(&self.req.data);
        Ok(SerializedMessage::Call {
            variant: WEIGHTS_VARIANT.to_string(),
            args,
            reply: Types::<WeightChunk, WeightsAck>::bytes_port(self.reply),
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
            } if variant == WEIGHTS_VARIANT => {
                let len = args
                    .get(..4)
                    .and_then(|b| <[u8; 4]>::try_from(b).ok())
                    .map(|b| u32::from_le_bytes(b) as usize)
                    .ok_or(BoxedDowncastErr)?;
                let header = args.get(4..4 + len).ok_or(BoxedDowncastErr)?;
                let mut req = decode::<WeightChunk>(header).map_err(|e| {
                    tracing::error!(error = %e, "undecodable weight chunk dropped");
                    BoxedDowncastErr
                })?;
                req.data = args[4 + len..].to_vec();
                Ok(WeightsCall {
                    req,
                    reply: Types::<WeightChunk, WeightsAck>::typed_port(reply),
                })
            }
            _ => Err(BoxedDowncastErr),
        }
    }
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

    #[tokio::test]
    async fn an_evaluation_request_and_its_scores_round_trip_as_plain_data() {
        use crate::actors::evaluator::{Benchmark, EvalSettings, Score};
        use azr_core::tasks::{Provenance, Task};
        let (tx, rx) = ractor::concurrency::oneshot::<EvalReply>();
        let job = EvalJob {
            id: 9,
            version: 4,
            step: Some(3),
            benchmarks: vec![Benchmark::new(
                "sums",
                vec![Task::math("1+1", "2", Provenance::benchmark("sums", "0"))],
            )],
            settings: EvalSettings {
                samples: 1,
                params: azr_core::model::SamplingParams {
                    temperature: 0.0,
                    max_new_tokens: 16,
                    stop_token_ids: vec![1, 2],
                    ..Default::default()
                },
                seed: 77,
            },
        };
        let bytes = ractor::Message::serialize(Call::<EvalJob, EvalReply> {
            req: job,
            reply: tx.into(),
        })
        .expect("serializable");
        let back: Call<EvalJob, EvalReply> = ractor::Message::deserialize(bytes).expect("decodes");
        assert_eq!(
            (back.req.id, back.req.version, back.req.step),
            (9, 4, Some(3))
        );
        assert_eq!(back.req.benchmarks[0].name, "sums");
        assert_eq!(back.req.benchmarks[0].tasks[0].problem, "1+1");
        assert_eq!(back.req.settings.params.stop_token_ids, vec![1, 2]);
        assert_eq!(back.req.settings.seed, 77);
        let score = Score {
            benchmark: "sums".into(),
            accuracy: 1.0,
            pass_at_k: 1.0,
            items: 1,
            samples: 1,
            temperature: 0.0,
            policy_version: 4,
            item_correct: Vec::new(),
            answers_digest: "0123456789abcdef".into(),
        };
        back.reply
            .send(EvalReply::Scores(vec![score.clone()]))
            .expect("reply port open");
        match rx.await.expect("reply arrives") {
            EvalReply::Scores(s) => assert_eq!(s, vec![score]),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn roles_parse_by_name() {
        assert_eq!(NodeRole::parse("executor"), Some(NodeRole::Executor));
        assert_eq!(NodeRole::parse("rollout"), Some(NodeRole::Rollout));
        assert_eq!(NodeRole::parse("evaluator"), Some(NodeRole::Evaluator));
        for r in [NodeRole::Executor, NodeRole::Rollout, NodeRole::Evaluator] {
            assert_eq!(NodeRole::parse(r.as_str()), Some(r));
        }
        assert_eq!(NodeRole::parse("learner"), None);
    }

    #[tokio::test]
    async fn a_weight_chunk_keeps_its_raw_bytes_through_the_wire_form() {
        let (tx, rx) = ractor::concurrency::oneshot::<WeightsAck>();
        let data: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
        let call = WeightsCall {
            req: WeightChunk {
                version: 7,
                index: 1,
                count: 3,
                total_bytes: 30_000,
                spec: None,
                data: data.clone(),
            },
            reply: tx.into(),
        };
        let bytes = ractor::Message::serialize(call).expect("serializable");
        if let SerializedMessage::Call { args, .. } = &bytes {
            // Raw, not JSON numbers: the header adds little.
            assert!(args.len() < data.len() + 200, "{}", args.len());
        }
        let back: WeightsCall = ractor::Message::deserialize(bytes).expect("decodes");
        assert_eq!(
            (back.req.version, back.req.index, back.req.count),
            (7, 1, 3)
        );
        assert_eq!(back.req.data, data);
        back.reply
            .send(WeightsAck::Installed { version: 7 })
            .expect("reply port open");
        assert!(matches!(
            rx.await.expect("reply arrives"),
            WeightsAck::Installed { version: 7 }
        ));
        // A call of another shape is not taken for weights.
        let (tx, _rx) = ractor::concurrency::oneshot::<Welcome>();
        let other = ractor::Message::serialize(Call::<Hello, Welcome> {
            req: Hello {
                node: "n".into(),
                azr_version: "x".into(),
                protocol: PROTOCOL,
                roles: vec![NodeRole::Rollout],
                capacity: 1,
                metrics_addr: None,
            },
            reply: tx.into(),
        })
        .expect("serializable");
        assert!(<WeightsCall as ractor::Message>::deserialize(other).is_err());
    }
}
