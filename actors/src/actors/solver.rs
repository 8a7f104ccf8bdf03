//! The solver: builds the solver prompt of a task from the buffers (or a 1-shot RLVR example),
//! samples its `n` answers through the rollout engine, and pushes them to the reward actor.

use std::sync::Arc;
use std::time::Instant;

use ractor::RpcReplyPort;

use super::{Ctx, Generated, SolveJob, ToReward, WorkError};
use crate::service::Service;
use crate::telemetry;

/// Registered name.
pub const NAME: &str = "solver";

/// Messages of the solver.
pub enum SolverMsg {
    /// Answer one task `job.n` times; replies once the answers are pushed downstream.
    Solve {
        /// The job.
        job: SolveJob,
        /// Reply.
        reply: RpcReplyPort<Result<(), WorkError>>,
    },
}

/// The solver service.
pub struct Solver {
    ctx: Arc<Ctx>,
    reward_tx: flume::Sender<ToReward>,
}

impl Solver {
    /// A solver pushing to the reward actor (`answers`).
    pub fn new(ctx: Arc<Ctx>, reward_tx: flume::Sender<ToReward>) -> Self {
        Self { ctx, reward_tx }
    }
}

/// The prompt text and ids of a task's solver prompt.
pub fn prompt(ctx: &Ctx, task: &azr_core::tasks::Task) -> Result<(String, Vec<u32>), WorkError> {
    let text = ctx.task_type(task.kind)?.solver_prompt(task)?;
    let ids = ctx.codec.encode(&text)?;
    Ok((text, ids))
}

async fn solve(ctx: &Ctx, job: &SolveJob, ids: Vec<u32>) -> Result<Vec<Generated>, WorkError> {
    ctx.generate_for(&job.slot, ids, job.n, job.slot.seed(ctx.seed, 3), 0)
        .await
}

impl Service for Solver {
    type Msg = SolverMsg;
    type State = ();
    type Error = WorkError;

    fn name(&self) -> &'static str {
        NAME
    }

    async fn init(&self) -> Result<(), WorkError> {
        Ok(())
    }

    async fn handle(&self, msg: SolverMsg, _state: &mut ()) -> Result<(), WorkError> {
        let SolverMsg::Solve { job, reply } = msg;
        self.ctx.faults.maybe_panic(NAME, job.slot.batch);
        let (ctx, rtx) = (self.ctx.clone(), self.reward_tx.clone());
        tokio::spawn(async move {
            let t0 = Instant::now();
            let (text, ids, samples) = match prompt(&ctx, &job.task) {
                Ok((text, ids)) => {
                    let s = solve(&ctx, &job, ids.clone()).await;
                    (text, ids, s)
                }
                Err(e) => (String::new(), Vec::new(), Err(e)),
            };
            if let Err(e) = &samples {
                tracing::warn!(slot = ?job.slot, error = %e, "solve failed: no reward");
            }
            telemetry::busy(NAME, t0.elapsed());
            telemetry::phase("solve", t0.elapsed());
            let sent = rtx
                .send_async(ToReward::Answers {
                    job,
                    prompt: text,
                    prompt_ids: ids,
                    samples: samples.map_err(|e| e.to_string()),
                })
                .await
                .map_err(|_| WorkError::Closed("answers"));
            let _ = reply.send(sent);
        });
        Ok(())
    }
}
