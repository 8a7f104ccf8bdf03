//! The solver: builds solver prompts for tasks and samples `n` answers per task from the current
//! policy snapshot.

use std::sync::Arc;
use std::time::Duration;

use azr_core::tasks::Task;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use super::handle::{RequestError, WorkerHandle};
use super::{serve, Ctx};
use crate::engine::{Decoding, Generated};

/// Registered name.
pub const NAME: &str = "solver";

/// One sampled answer.
#[derive(Debug, Clone)]
pub struct SolveOutput {
    /// Index of the task in the request.
    pub task_index: usize,
    /// Prompt token ids.
    pub prompt_ids: Vec<u32>,
    /// Prompt text.
    pub prompt: String,
    /// The generation.
    pub generated: Generated,
}

/// Messages of [`Solver`].
pub enum SolverMsg {
    /// Sample `n` answers per task (task-major order: task 0's n answers first).
    Solve {
        /// Step (fault injection).
        step: u64,
        /// Tasks.
        tasks: Vec<Task>,
        /// Answers per task.
        n: usize,
        /// Decoding settings.
        decoding: Decoding,
        /// Sampling seed.
        seed: u64,
        /// Reply.
        reply: RpcReplyPort<Result<Vec<SolveOutput>, String>>,
    },
}

/// The solver actor.
pub struct Solver;

/// State of [`Solver`].
pub struct SolverState {
    ctx: Arc<Ctx>,
}

impl Actor for Solver {
    type Msg = SolverMsg;
    type State = SolverState;
    type Arguments = Arc<Ctx>;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        ctx: Arc<Ctx>,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(SolverState { ctx })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let SolverMsg::Solve {
            step,
            tasks,
            n,
            decoding,
            seed,
            reply,
        } = msg;
        state.ctx.faults.maybe_panic(NAME, step);
        let ctx = state.ctx.clone();
        serve(NAME, reply, async move {
            solve(&ctx, &tasks, n, decoding, seed).await
        });
        Ok(())
    }
}

/// Sample `n` answers per task through the inference thread.
pub async fn solve(
    ctx: &Ctx,
    tasks: &[Task],
    n: usize,
    decoding: Decoding,
    seed: u64,
) -> Result<Vec<SolveOutput>, String> {
    let mut prompts = Vec::with_capacity(tasks.len() * n);
    let mut ids = Vec::with_capacity(tasks.len() * n);
    for task in tasks {
        let text = ctx
            .task_type(task.kind)?
            .solver_prompt(task)
            .map_err(|e| e.to_string())?;
        let enc = ctx.codec.encode(&text)?;
        for _ in 0..n {
            prompts.push(text.clone());
            ids.push(enc.clone());
        }
    }
    let gens = ctx.inference.generate(ids.clone(), decoding, seed).await?;
    Ok(prompts
        .into_iter()
        .zip(ids)
        .zip(gens)
        .enumerate()
        .map(|(i, ((prompt, prompt_ids), generated))| SolveOutput {
            task_index: i / n.max(1),
            prompt_ids,
            prompt,
            generated,
        })
        .collect())
}

/// Typed handle to the solver.
#[derive(Clone)]
pub struct SolverHandle(WorkerHandle<SolverMsg>);

impl SolverHandle {
    /// A handle with a per-attempt timeout.
    pub fn new(timeout: Duration) -> Self {
        Self(WorkerHandle::new(NAME, timeout))
    }

    /// Sample `n` answers per task.
    pub async fn solve(
        &self,
        step: u64,
        tasks: Vec<Task>,
        n: usize,
        decoding: Decoding,
        seed: u64,
    ) -> Result<Vec<SolveOutput>, RequestError> {
        self.0
            .request(|reply| SolverMsg::Solve {
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
