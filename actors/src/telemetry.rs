//! Metric emission from the actors: thin, named helpers over the `metrics` macros so call
//! sites stay one line and label sets stay bounded (task kind, role, actor, status).

use std::time::Duration;

use azr_core::types::{Role, TaskKind};
use metrics::{counter, gauge, histogram};

/// Metric names used by the pipeline.
pub mod names {
    /// Worker actor restarts.
    pub const ACTOR_RESTARTS: &str = "azr_actor_restarts_total";
    /// Requests to a worker that had to be retried (worker missing or died mid-request).
    pub const REQUEST_RETRIES: &str = "azr_actor_request_retries_total";
    /// Durations of the work items of an actor or compute thread (`rate(_sum)` = busy share).
    pub const ACTOR_BUSY: &str = "azr_actor_busy_seconds";
    /// Items waiting in a bounded queue.
    pub const QUEUE_DEPTH: &str = "azr_queue_depth";
    /// Policy versions between the rollout's policy and the learner's at update time.
    pub const STALENESS: &str = "azr_rollout_staleness_steps";
    /// Completed learner steps.
    pub const STEPS: &str = "azr_learner_steps_total";
    /// Current policy version.
    pub const POLICY_VERSION: &str = "azr_policy_version";
    /// Wall time of a whole step.
    pub const STEP_SECONDS: &str = "azr_step_duration_seconds";
    /// Wall time of one phase of a step.
    pub const PHASE_SECONDS: &str = "azr_step_phase_duration_seconds";
    /// Mean reward per task kind x role of the last step.
    pub const REWARD_MEAN: &str = "azr_reward_mean";
    /// Accuracy (share of correct solver answers) per task kind of the last step.
    pub const SOLVE_ACCURACY: &str = "azr_solver_accuracy_ratio";
    /// Share of proposals that were valid, per task kind, of the last step.
    pub const VALID_PROPOSAL_RATE: &str = "azr_proposer_valid_ratio";
    /// Mean learnability reward of valid proposals per task kind.
    pub const LEARNABILITY: &str = "azr_proposer_learnability_mean";
    /// Generated sequences.
    pub const SEQUENCES: &str = "azr_rollout_sequences_total";
    /// Generated tokens.
    pub const TOKENS: &str = "azr_rollout_tokens_total";
    /// Response length in tokens.
    pub const RESPONSE_LENGTH: &str = "azr_rollout_response_tokens";
    /// Buffer sizes per task kind.
    pub const BUFFER_SIZE: &str = "azr_buffer_tasks";
    /// Learner statistics (pg loss, KL, entropy, clip fraction, grad norm, lr).
    pub const LEARNER_STAT: &str = "azr_learner_stat";
    /// Evaluator accuracy per benchmark.
    pub const EVAL_ACCURACY: &str = "azr_eval_accuracy_ratio";
    /// Checkpoints written.
    pub const CHECKPOINTS: &str = "azr_checkpoints_total";
}

/// Register a worker's restart counter (at 0, or at the count carried by a checkpoint).
pub fn actor_restarts_register(actor: &'static str, carried: Option<u64>) {
    counter!(names::ACTOR_RESTARTS, "actor" => actor).absolute(carried.unwrap_or(0));
    counter!(names::REQUEST_RETRIES, "actor" => actor).increment(0);
}

/// Count one restart of `actor`.
pub fn actor_restarted(actor: &'static str) {
    counter!(names::ACTOR_RESTARTS, "actor" => actor).increment(1);
}

/// Count one retried request to `actor`.
pub fn request_retried(actor: &'static str) {
    counter!(names::REQUEST_RETRIES, "actor" => actor).increment(1);
}

/// Add busy time of `actor`.
pub fn busy(actor: &'static str, d: Duration) {
    histogram!(names::ACTOR_BUSY, "actor" => actor).record(d.as_secs_f64());
}

/// Set the depth of the queue named `queue`.
pub fn queue_depth(queue: &'static str, depth: usize) {
    gauge!(names::QUEUE_DEPTH, "queue" => queue).set(depth as f64);
}

/// Record the staleness of a batch.
pub fn staleness(steps: u64) {
    gauge!(names::STALENESS).set(steps as f64);
}

/// Record a finished learner step.
pub fn step_done(version: u64, wall: Duration) {
    counter!(names::STEPS).increment(1);
    gauge!(names::POLICY_VERSION).set(version as f64);
    histogram!(names::STEP_SECONDS).record(wall.as_secs_f64());
}

/// Record the wall time of a step phase (`propose`, `validate`, `estimate`, `solve`, `learn`, ...).
pub fn phase(phase: &'static str, d: Duration) {
    histogram!(names::PHASE_SECONDS, "phase" => phase).record(d.as_secs_f64());
}

/// Record the mean reward of a (kind, role) sub-batch.
pub fn reward_mean(kind: TaskKind, role: Role, mean: f64) {
    gauge!(names::REWARD_MEAN, "task" => kind.as_str(), "role" => role.as_str()).set(mean);
}

/// Record the solver accuracy of a kind.
pub fn solve_accuracy(kind: TaskKind, acc: f64) {
    gauge!(names::SOLVE_ACCURACY, "task" => kind.as_str()).set(acc);
}

/// Record the valid-proposal rate and mean learnability of a kind.
pub fn proposals(kind: TaskKind, valid_rate: f64, learnability: f64) {
    gauge!(names::VALID_PROPOSAL_RATE, "task" => kind.as_str()).set(valid_rate);
    gauge!(names::LEARNABILITY, "task" => kind.as_str()).set(learnability);
}

/// Record generated sequences of a (kind, role).
pub fn sequences(kind: TaskKind, role: Role, lengths: &[usize]) {
    let labels = [("task", kind.as_str()), ("role", role.as_str())];
    counter!(names::SEQUENCES, &labels).increment(lengths.len() as u64);
    counter!(names::TOKENS, &labels).increment(lengths.iter().sum::<usize>() as u64);
    let h = histogram!(names::RESPONSE_LENGTH, &labels);
    for &l in lengths {
        h.record(l as f64);
    }
}

/// Record a buffer size.
pub fn buffer_size(kind: TaskKind, size: usize) {
    gauge!(names::BUFFER_SIZE, "task" => kind.as_str()).set(size as f64);
}

/// Record a learner statistic (`stat` is one of a fixed set of names).
pub fn learner_stat(stat: &'static str, value: f64) {
    gauge!(names::LEARNER_STAT, "stat" => stat).set(value);
}

/// Record an evaluation accuracy.
pub fn eval_accuracy(benchmark: &str, acc: f64) {
    gauge!(names::EVAL_ACCURACY, "benchmark" => benchmark.to_string()).set(acc);
}

/// Count a checkpoint.
pub fn checkpoint_written() {
    counter!(names::CHECKPOINTS).increment(1);
}
