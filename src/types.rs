//! Plain data shared by every part of the system. Everything here is `serde` so it can be
//! checkpointed, dumped to JSONL and, one day, sent between machines.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Monotonic version of the policy weights; bumped by the learner after every optimizer step.
pub type PolicyVersion = u64;

/// The kind of a task. The three code kinds are AZR's; `Math` is used by 1-shot RLVR and the
/// math benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskKind {
    /// Program + input -> predict the output (AZR `code_o`).
    Deduction,
    /// Program + output -> find an input producing it (AZR `code_i`).
    Abduction,
    /// Input/output pairs + message -> write the program (AZR `code_f`).
    Induction,
    /// A math problem with a reference answer in `\boxed{}`.
    Math,
}

impl TaskKind {
    /// The three AZR self-play kinds, in the order AZR processes them.
    pub const CODE: [TaskKind; 3] = [
        TaskKind::Abduction,
        TaskKind::Deduction,
        TaskKind::Induction,
    ];

    /// Lower-case name, used in configs, metric labels and file names.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskKind::Deduction => "deduction",
            TaskKind::Abduction => "abduction",
            TaskKind::Induction => "induction",
            TaskKind::Math => "math",
        }
    }
}

impl fmt::Display for TaskKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for TaskKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "deduction" => Ok(TaskKind::Deduction),
            "abduction" => Ok(TaskKind::Abduction),
            "induction" => Ok(TaskKind::Induction),
            "math" => Ok(TaskKind::Math),
            other => Err(format!(
                "unknown task kind `{other}` (expected deduction, abduction, induction or math)"
            )),
        }
    }
}

/// The role the policy plays when producing a sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Writes a new task (program + input(s)).
    Propose,
    /// Answers a task.
    Solve,
}

impl Role {
    /// Both roles.
    pub const ALL: [Role; 2] = [Role::Propose, Role::Solve];

    /// Lower-case name, used in metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Propose => "propose",
            Role::Solve => "solve",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The key of one of AZR's six task-relative baselines (task kind x role).
pub type BaselineKey = (TaskKind, Role);

/// One sampled sequence, scored, as the learner consumes it.
///
/// `response_ids` and `sample_logprobs` have the same length: the log-prob, under the policy
/// that sampled it (`policy_version`), of each generated token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoredRollout {
    /// Prompt token ids (no padding).
    pub prompt_ids: Vec<u32>,
    /// Generated token ids (no padding), including the stop token if one was produced.
    pub response_ids: Vec<u32>,
    /// Per-token log-probs of `response_ids` under the sampling policy.
    pub sample_logprobs: Vec<f32>,
    /// Scalar sequence reward.
    pub reward: f32,
    /// Task kind this sequence belongs to.
    pub task: TaskKind,
    /// Role the policy played.
    pub role: Role,
    /// Rollouts sharing a `group` were sampled from the same prompt (GRPO / RLOO groups).
    pub group: u64,
    /// Policy version that generated the sequence (for staleness accounting).
    pub policy_version: PolicyVersion,
}
