//! The Monte Carlo learnability estimator: for each valid proposed task it asks the solver for
//! `n` answers at the training temperature, has the reward actor grade them, and returns the
//! solve rate (AZR's proposer reward is computed from it).

use std::sync::Arc;
use std::time::Duration;

use azr_core::tasks::{Score, Task};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use super::handle::{RequestError, WorkerHandle};
use super::reward::RewardHandle;
use super::solver::{SolveOutput, SolverHandle};
use super::{serve, Ctx};
use crate::engine::Decoding;

/// Registered name.
pub const NAME: &str = "estimator";

/// The estimate for one task.
#[derive(Debug, Clone)]
pub struct Estimate {
    /// Share of the `n` samples that were correct.
    pub solve_rate: f64,
    /// The samples and their verdicts (for dumps; not trained on).
    pub samples: Vec<(SolveOutput, Score)>,
}

/// Messages of [`Estimator`].
pub enum EstimatorMsg {
    /// Estimate the solve rate of each task from `n` samples.
    Estimate {
        /// Step.
        step: u64,
        /// Valid tasks.
        tasks: Vec<Task>,
        /// Samples per task.
        n: usize,
        /// Decoding (the training temperature).
        decoding: Decoding,
        /// Sampling seed.
        seed: u64,
        /// Reply: one estimate per task.
        reply: RpcReplyPort<Result<Vec<Estimate>, String>>,
    },
}

/// The estimator actor.
pub struct Estimator;

/// State of [`Estimator`].
pub struct EstimatorState {
    ctx: Arc<Ctx>,
    solver: SolverHandle,
    reward: RewardHandle,
}

impl Actor for Estimator {
    type Msg = EstimatorMsg;
    type State = EstimatorState;
    type Arguments = Arc<Ctx>;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        ctx: Arc<Ctx>,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(EstimatorState {
            solver: SolverHandle::new(ctx.timeout),
            reward: RewardHandle::new(ctx.timeout),
            ctx,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let EstimatorMsg::Estimate {
            step,
            tasks,
            n,
            decoding,
            seed,
            reply,
        } = msg;
        state.ctx.faults.maybe_panic(NAME, step);
        let solver = state.solver.clone();
        let reward = state.reward.clone();
        serve(NAME, reply, async move {
            estimate(&solver, &reward, step, tasks, n, decoding, seed)
                .await
                .map_err(|e| e.to_string())
        });
        Ok(())
    }
}

async fn estimate(
    solver: &SolverHandle,
    reward: &RewardHandle,
    step: u64,
    tasks: Vec<Task>,
    n: usize,
    decoding: Decoding,
    seed: u64,
) -> Result<Vec<Estimate>, RequestError> {
    if tasks.is_empty() {
        return Ok(Vec::new());
    }
    let samples = solver.solve(step, tasks.clone(), n, decoding, seed).await?;
    let items = samples
        .iter()
        .map(|s| (tasks[s.task_index].clone(), s.generated.text.clone()))
        .collect();
    let verdicts = reward.grade(step, items).await?;
    let mut out: Vec<Estimate> = tasks
        .iter()
        .map(|_| Estimate {
            solve_rate: 0.0,
            samples: Vec::with_capacity(n),
        })
        .collect();
    for (s, v) in samples.into_iter().zip(verdicts) {
        out[s.task_index].samples.push((s, v));
    }
    for e in &mut out {
        let scores: Vec<Score> = e.samples.iter().map(|(_, v)| *v).collect();
        e.solve_rate = f64::from(azr_core::tasks::rewards::solve_rate(&scores));
    }
    Ok(out)
}

/// Typed handle to the estimator.
#[derive(Clone)]
pub struct EstimatorHandle(WorkerHandle<EstimatorMsg>);

impl EstimatorHandle {
    /// A handle with a per-attempt timeout.
    pub fn new(timeout: Duration) -> Self {
        Self(WorkerHandle::new(NAME, timeout))
    }

    /// Estimate the solve rate of each task from `n` samples.
    pub async fn estimate(
        &self,
        step: u64,
        tasks: Vec<Task>,
        n: usize,
        decoding: Decoding,
        seed: u64,
    ) -> Result<Vec<Estimate>, RequestError> {
        self.0
            .request(|reply| EstimatorMsg::Estimate {
                step,
                tasks: tasks.clone(),
                n,
                decoding,
                seed,
                reply,
            })
            .await
    }
}
