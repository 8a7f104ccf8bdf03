//! The actors of the pipeline, one module each, every one a [`crate::service::Service`] run by
//! the generic [`crate::service::ServiceActor`] under [`supervisor::Supervisor`].
//!
//! They own their state and push work downstream over bounded `flume` channels; nothing calls
//! them one after another:
//!
//! ```text
//!  admission ─slot─> task_store ─propose_jobs─> proposer ─proposals─> executor ─estimates─> estimator
//!                        │  ^                                             │                   │
//!                        │  └──────────── valid tasks ────────────────────┼───────────────────┘
//!                        │                                                │ (invalid / format)│
//!                        └─solve_jobs─> solver ──────── answers ──────────┴──> reward <───────┘
//!                                                                                │ rollouts
//!                                 evaluator <─eval── learner (batches by task x role) <┘
//!                                                       │ batches -> learner thread -> weights vN
//!  every generation goes through the rollout engine (compute), which takes each new version
//! ```
//!
//! Work moves in **slots**: one admitted prompt (a proposal, or a task with its `n` answers)
//! whose rollouts the learner trains on in batch [`Slot::batch`]. Every slot reaches the learner
//! exactly once (duplicates from retried requests are dropped there), with a reward or, after an
//! infrastructure failure, marked as having none.

pub mod estimator;
pub mod evaluator;
pub mod executor;
pub mod faults;
pub mod learner;
pub mod proposer;
pub mod reward;
pub mod solver;
pub mod store;
pub mod supervisor;

use std::sync::Arc;

use azr_core::executor::Executor;
use azr_core::model::SamplingParams;
use azr_core::tasks::{Proposal, ProposerPrompt, RewardConfig, Task, TaskRegistry, TaskType};
use azr_core::types::{PolicyVersion, Role, TaskKind};
use serde::{Deserialize, Serialize};

use crate::compute::{EngineHandle, GenRequest, SampleOut};
use crate::engine::{CodecError, SharedCodec};
use faults::FaultPlan;

/// Errors shared by the generating actors.
#[derive(Debug, thiserror::Error)]
pub enum WorkError {
    /// No task type is registered for the kind.
    #[error("no task type registered for `{0}`")]
    NoTaskType(TaskKind),
    /// The kind's task type is solve only (it has no proposer).
    #[error("task type `{0}` does not propose")]
    NotProposable(TaskKind),
    /// Building a prompt failed.
    #[error("prompt: {0}")]
    Prompt(#[from] azr_core::tasks::TaskError),
    /// Tokenizing or detokenizing failed.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The rollout engine failed.
    #[error("engine: {0}")]
    Engine(#[from] crate::compute::EngineError),
    /// A downstream channel is closed (the pipeline is shutting down).
    #[error("channel `{0}` is closed")]
    Closed(&'static str),
    /// A blocking task (executor call, grading) panicked or was cancelled.
    #[error("blocking task failed: {0}")]
    Join(String),
    /// The engine answered a request with fewer samples than asked.
    #[error("the engine returned {got} of {asked} samples")]
    Short {
        /// Samples asked for.
        asked: usize,
        /// Samples returned.
        got: usize,
    },
}

/// Everything the actors share; cloned (as an `Arc`) into every service, so a restarted actor
/// gets the same engine, executor and config as the one it replaces.
pub struct Ctx {
    /// The task types.
    pub registry: Arc<TaskRegistry>,
    /// The sandboxed executor (blocking; used from `spawn_blocking`).
    pub executor: Arc<Executor>,
    /// Prompt encoder / response decoder.
    pub codec: SharedCodec,
    /// The rollout engine.
    pub engine: EngineHandle,
    /// Training sampling settings (seed set per request).
    pub sampling: SamplingParams,
    /// Reward values.
    pub rewards: RewardConfig,
    /// Planned faults (tests only).
    pub faults: FaultPlan,
    /// Seed of the run (every slot's sampling seed derives from it).
    pub seed: u64,
    /// Train the solver on the estimator's Monte Carlo samples too
    /// (`selfplay.train_estimator_samples`).
    pub train_estimates: bool,
    /// Decode each valid proposal greedily too and record whether that answer is correct
    /// (`tasks.buffer.prefer_greedy_miss` reads it).
    pub greedy_probe: bool,
    /// The staleness bound S of the run (`run.staleness`): samples of batch `j` must start at
    /// version `j - S` or later.
    pub staleness: u64,
    /// Several machines: routes generations to the least-loaded rollout engine, the local one
    /// or a node's ([`crate::cluster::rollout`]); `None` generates on [`Ctx::engine`] alone.
    pub rollout: Option<Arc<crate::cluster::rollout::RolloutRouter>>,
}

impl Ctx {
    /// The task type of `kind`.
    pub fn task_type(&self, kind: TaskKind) -> Result<&dyn TaskType, WorkError> {
        self.registry.get(kind).ok_or(WorkError::NoTaskType(kind))
    }

    /// Submit `n` samples of `prompt` for `slot` with the training settings and `seed`, and
    /// await them decoded. With a cluster, any rollout engine whose weights keep the slot's
    /// samples within the staleness bound may generate them.
    pub async fn generate_for(
        &self,
        slot: &Slot,
        prompt: Vec<u32>,
        n: usize,
        seed: u64,
        priority: i32,
    ) -> Result<Vec<Generated>, WorkError> {
        let params = SamplingParams {
            seed,
            ..self.sampling.clone()
        };
        self.generate_in_bound(slot, prompt, n, params, priority)
            .await
    }

    /// The greedy answer to `prompt` for `slot` (temperature 0, the training length limit),
    /// under the same staleness bound as [`Ctx::generate_for`].
    pub async fn greedy_for(
        &self,
        slot: &Slot,
        prompt: Vec<u32>,
        priority: i32,
    ) -> Result<Generated, WorkError> {
        let params = SamplingParams {
            temperature: 0.0,
            ..self.sampling.clone()
        };
        only(
            self.generate_in_bound(slot, prompt, 1, params, priority)
                .await?,
        )
    }

    /// Generate for `slot` on an engine whose weights keep it within the staleness bound.
    async fn generate_in_bound(
        &self,
        slot: &Slot,
        prompt: Vec<u32>,
        n: usize,
        params: SamplingParams,
        priority: i32,
    ) -> Result<Vec<Generated>, WorkError> {
        let min_version = slot.batch.saturating_sub(self.staleness);
        self.generate_at(prompt, n, params, priority, min_version)
            .await
    }

    /// Submit `n` samples of `prompt` with `params` and await them decoded. With a cluster,
    /// only engines at least as new as the local one take it.
    pub async fn generate_with(
        &self,
        prompt: Vec<u32>,
        n: usize,
        params: SamplingParams,
        priority: i32,
    ) -> Result<Vec<Generated>, WorkError> {
        let min_version = self.engine.version();
        self.generate_at(prompt, n, params, priority, min_version)
            .await
    }

    /// Generate on an engine of version `min_version` or newer and decode.
    async fn generate_at(
        &self,
        prompt: Vec<u32>,
        n: usize,
        params: SamplingParams,
        priority: i32,
        min_version: PolicyVersion,
    ) -> Result<Vec<Generated>, WorkError> {
        let req = GenRequest {
            prompt,
            n,
            params,
            priority,
        };
        let samples = match &self.rollout {
            Some(router) => router.generate(req, min_version).await?,
            None => self.engine.submit(req)?.recv_async().await?,
        };
        samples
            .into_iter()
            .map(|s| Generated::decode(s, &self.codec))
            .collect()
    }
}

/// The sample of a request for one; an error if the engine returned none.
pub fn only(mut samples: Vec<Generated>) -> Result<Generated, WorkError> {
    samples.pop().ok_or(WorkError::Short { asked: 1, got: 0 })
}

/// One generated sample, decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct Generated {
    /// Generated ids (stop token included when produced).
    pub tokens: Vec<u32>,
    /// Log-prob of each id under the behaviour policy.
    pub logprobs: Vec<f32>,
    /// Decoded text.
    pub text: String,
    /// Version of the weights that produced the first token (the behaviour version used for
    /// staleness: the oldest one).
    pub first_version: PolicyVersion,
    /// Version that produced the last token.
    pub last_version: PolicyVersion,
}

impl Generated {
    /// Decode an engine sample.
    pub fn decode(s: SampleOut, codec: &SharedCodec) -> Result<Self, WorkError> {
        Ok(Self {
            text: codec.decode(&s.tokens)?,
            tokens: s.tokens,
            logprobs: s.logprobs,
            first_version: s.first_version,
            last_version: s.last_version,
        })
    }
}

/// One admitted unit of work: a prompt whose rollouts the learner trains on in batch `batch`.
/// Slots of a key are numbered `0, 1, 2, ...` over the run; slot `i` of a key with `q` slots
/// per batch belongs to batch `i / q` (see [`crate::pipeline::admission`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Slot {
    /// Task kind.
    pub kind: TaskKind,
    /// Role.
    pub role: Role,
    /// Learner batch (= step) it is trained in.
    pub batch: u64,
    /// Position within the key's slots of that batch.
    pub index: u64,
    /// Engine version when it was admitted.
    pub admitted_at: PolicyVersion,
}

impl Slot {
    /// A group id unique per slot (the GRPO / RLOO group of its samples).
    pub fn group(&self) -> u64 {
        azr_core::types::group_id(self.batch, self.kind, self.role, self.index as usize)
    }

    /// The sampling seed of this slot (`purpose` separates the streams of one slot, e.g. its
    /// generation and its Monte Carlo estimate): reproducible per run seed, whatever the order
    /// in which slots are served.
    pub fn seed(&self, run_seed: u64, purpose: u64) -> u64 {
        let mut x = run_seed ^ self.group().wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ purpose;
        // splitmix64 finaliser
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^ (x >> 31)
    }
}

/// Task store -> proposer: one proposal to sample.
#[derive(Debug, Clone)]
pub struct ProposeJob {
    /// Its slot.
    pub slot: Slot,
    /// Reference tasks shown in the prompt.
    pub references: Vec<Task>,
}

/// Task store -> solver: a task to answer `n` times.
#[derive(Debug, Clone)]
pub struct SolveJob {
    /// Its slot.
    pub slot: Slot,
    /// The task.
    pub task: Task,
    /// Samples (the GRPO group size; 1 in AZR self-play).
    pub n: usize,
    /// 1-shot RLVR: the dataset index of the example (for the accuracy history).
    pub example: Option<String>,
}

/// Proposer -> executor: a sampled proposal.
#[derive(Debug, Clone)]
pub struct ProposalItem {
    /// Its slot.
    pub slot: Slot,
    /// The prompt.
    pub prompt: ProposerPrompt,
    /// Prompt ids.
    pub prompt_ids: Vec<u32>,
    /// The generation.
    pub generated: Generated,
    /// The parsed proposal, or why it does not parse.
    pub parsed: Result<Proposal, String>,
}

/// Executor -> estimator: a valid proposal and its task.
#[derive(Debug, Clone)]
pub struct EstimateJob {
    /// The proposal.
    pub proposal: ProposalItem,
    /// The validated task.
    pub task: Task,
}

/// What became of a proposal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ProposalResult {
    /// Valid; the Monte Carlo solve rate of its task.
    Valid {
        /// Correct share of the samples.
        solve_rate: f64,
        /// Its program's shape and whether it was novel, as the task store found it on admitting
        /// the task (`None`: the task has no program, or the store did not answer).
        #[serde(default)]
        shape: Option<azr_core::tasks::novelty::ShapeSeen>,
    },
    /// Rejected by the executor (the reason).
    Invalid(String),
    /// The generation did not parse (the reason).
    FormatError(String),
    /// Infrastructure failure (sandbox, engine): no reward (the reason).
    NoReward(String),
}

/// -> reward: generations waiting to be scored.
#[derive(Debug, Clone)]
pub enum ToReward {
    /// Solver answers of one task.
    Answers {
        /// The job.
        job: SolveJob,
        /// Prompt text.
        prompt: String,
        /// Prompt ids.
        prompt_ids: Vec<u32>,
        /// The samples; `Err` when generation failed (no reward).
        samples: Result<Vec<Generated>, String>,
    },
    /// A proposal with its outcome.
    Proposal {
        /// The proposal (`None` when even the prompt or generation failed).
        item: Option<ProposalItem>,
        /// Its slot.
        slot: Slot,
        /// The outcome.
        result: ProposalResult,
        /// The estimator's graded samples, when they are trained as solver rollouts.
        estimates: Option<Estimates>,
    },
}

/// The Monte Carlo estimator's samples of one valid proposal's task, graded: with
/// `selfplay.train_estimator_samples` they become one more solver group.
#[derive(Debug, Clone)]
pub struct Estimates {
    /// The solver prompt of the task.
    pub prompt: String,
    /// Its ids.
    pub prompt_ids: Vec<u32>,
    /// Each sample with its score.
    pub samples: Vec<(Generated, azr_core::tasks::Score)>,
}

impl ToReward {
    /// The slot this item belongs to.
    pub fn slot(&self) -> Slot {
        match self {
            ToReward::Answers { job, .. } => job.slot,
            ToReward::Proposal { slot, .. } => *slot,
        }
    }
}

/// Reward -> learner: the scored rollouts of one slot.
#[derive(Debug, Clone)]
pub struct Scored {
    /// The slot.
    pub slot: Slot,
    /// One entry per sample: the rollout (with its reward, meaningless when `rewarded` is
    /// false), its dump record, and whether it has a reward.
    pub samples: Vec<ScoredSample>,
    /// 1-shot RLVR: the example index.
    pub example: Option<String>,
}

/// One scored sample.
#[derive(Debug, Clone)]
pub struct ScoredSample {
    /// What the learner trains on.
    pub rollout: azr_core::types::ScoredRollout,
    /// What the dump shows.
    pub record: crate::pipeline::dump::DumpRecord,
    /// False after an infrastructure failure: left out of training and advantage statistics.
    pub rewarded: bool,
    /// Solver: correct. Proposer: valid.
    pub hit: bool,
}
