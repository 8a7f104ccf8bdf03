//! The actors of the pipeline, one module each, all supervised by [`supervisor::Supervisor`].
//!
//! Every worker is an empty struct implementing `ractor::Actor`, its state in a `State` struct,
//! and a typed handle (e.g. [`solver::SolverHandle`]) that is the only way other code talks to
//! it. Workers never run heavy compute inside `handle`: each request is served by a spawned task
//! that awaits the inference thread or runs executor calls on `spawn_blocking`, so a worker's
//! mailbox (and its supervision events) stay responsive.

pub mod estimator;
pub mod evaluator;
pub mod executor;
pub mod faults;
pub mod handle;
pub mod learner;
pub mod proposer;
pub mod reward;
pub mod solver;
pub mod supervisor;

use std::sync::Arc;
use std::time::Duration;

use azr_core::executor::Executor;
use azr_core::tasks::{TaskRegistry, TaskType};
use azr_core::types::TaskKind;

use crate::compute::inference::InferenceHandle;
use crate::compute::learner::LearnerCmd;
use crate::engine::SharedCodec;
use faults::FaultPlan;

/// Everything the workers share. Cloned (as an `Arc`) into every spawn, so a restarted worker
/// gets the same channels and services as the one it replaces.
pub struct Ctx {
    /// The task types.
    pub registry: Arc<TaskRegistry>,
    /// The sandboxed executor (blocking; used from `spawn_blocking`).
    pub executor: Arc<Executor>,
    /// Prompt encoder / response decoder.
    pub codec: SharedCodec,
    /// The inference thread.
    pub inference: InferenceHandle,
    /// The learner thread's bounded command queue.
    pub learner_tx: flume::Sender<LearnerCmd>,
    /// Planned faults (tests only).
    pub faults: FaultPlan,
    /// Per-attempt request timeout.
    pub timeout: Duration,
}

impl Ctx {
    /// The task type of `kind`, or an error naming it.
    pub fn task_type(&self, kind: TaskKind) -> Result<&dyn TaskType, String> {
        self.registry
            .get(kind)
            .ok_or_else(|| format!("no task type registered for `{kind}`"))
    }
}

/// The names of the supervised workers, in spawn order.
pub const WORKERS: [&str; 7] = [
    executor::NAME,
    solver::NAME,
    reward::NAME,
    estimator::NAME,
    proposer::NAME,
    learner::NAME,
    evaluator::NAME,
];

/// Handles to every worker.
#[derive(Clone)]
pub struct Handles {
    /// Proposer.
    pub proposer: proposer::ProposerHandle,
    /// Executor (validation).
    pub executor: executor::ExecutorHandle,
    /// Solver.
    pub solver: solver::SolverHandle,
    /// Monte Carlo learnability estimator.
    pub estimator: estimator::EstimatorHandle,
    /// Reward (grading).
    pub reward: reward::RewardHandle,
    /// Learner (front of the learner thread).
    pub learner: learner::LearnerHandle,
    /// Evaluator.
    pub evaluator: evaluator::EvaluatorHandle,
}

impl Handles {
    /// Handles with the given per-attempt timeout.
    pub fn new(timeout: Duration) -> Self {
        Self {
            proposer: proposer::ProposerHandle::new(timeout),
            executor: executor::ExecutorHandle::new(timeout),
            solver: solver::SolverHandle::new(timeout),
            estimator: estimator::EstimatorHandle::new(timeout),
            reward: reward::RewardHandle::new(timeout),
            learner: learner::LearnerHandle::new(timeout),
            evaluator: evaluator::EvaluatorHandle::new(timeout),
        }
    }
}

/// Spawn the worker called `name` linked to `supervisor`, with the shared context.
pub async fn spawn_worker(
    name: &'static str,
    ctx: Arc<Ctx>,
    supervisor: ractor::ActorCell,
) -> Result<ractor::ActorCell, ractor::ActorProcessingErr> {
    use ractor::Actor;
    let n = Some(name.to_string());
    let cell = match name {
        proposer::NAME => proposer::Proposer::spawn_linked(n, proposer::Proposer, ctx, supervisor)
            .await?
            .0
            .get_cell(),
        executor::NAME => {
            executor::ExecutorActor::spawn_linked(n, executor::ExecutorActor, ctx, supervisor)
                .await?
                .0
                .get_cell()
        }
        solver::NAME => solver::Solver::spawn_linked(n, solver::Solver, ctx, supervisor)
            .await?
            .0
            .get_cell(),
        estimator::NAME => {
            estimator::Estimator::spawn_linked(n, estimator::Estimator, ctx, supervisor)
                .await?
                .0
                .get_cell()
        }
        reward::NAME => reward::Reward::spawn_linked(n, reward::Reward, ctx, supervisor)
            .await?
            .0
            .get_cell(),
        learner::NAME => learner::Learner::spawn_linked(n, learner::Learner, ctx, supervisor)
            .await?
            .0
            .get_cell(),
        evaluator::NAME => {
            evaluator::Evaluator::spawn_linked(n, evaluator::Evaluator, ctx, supervisor)
                .await?
                .0
                .get_cell()
        }
        other => return Err(format!("unknown worker `{other}`").into()),
    };
    Ok(cell)
}

/// Run `work` as a detached task that replies on `reply` and records the busy time of
/// `actor`. Keeps heavy or slow work out of the actor's message loop.
pub fn serve<R, F>(actor: &'static str, reply: ractor::RpcReplyPort<Result<R, String>>, work: F)
where
    R: Send + 'static,
    F: std::future::Future<Output = Result<R, String>> + Send + 'static,
{
    tokio::spawn(async move {
        let t0 = std::time::Instant::now();
        let r = work.await;
        crate::telemetry::busy(actor, t0.elapsed());
        // The requester may have timed out and retried; its old port is then closed.
        let _ = reply.send(r);
    });
}
