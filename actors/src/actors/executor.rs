//! The executor actor: validates proposals in the sandbox (parse, banned imports, two runs for
//! determinism) and turns the valid ones into [`Task`]s with gold outputs. The blocking executor
//! calls run on `spawn_blocking`.

use std::sync::Arc;
use std::time::Duration;

use std::time::Instant;

use azr_core::executor::ExecStatus;
use azr_core::tasks::{Invalid, Proposal, Provenance, Task};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use super::handle::{RequestError, WorkerHandle};
use super::{serve, Ctx};

/// Registered name.
pub const NAME: &str = "executor";

/// Messages of [`ExecutorActor`].
pub enum ExecutorMsg {
    /// Validate proposals; one result per proposal, in order.
    Validate {
        /// Step (fault injection and provenance).
        step: u64,
        /// Proposals with their provenance.
        proposals: Vec<(Proposal, Provenance)>,
        /// Reply: the task, or why the proposal is invalid.
        reply: RpcReplyPort<Result<Vec<Result<Task, String>>, String>>,
    },
}

/// The executor actor.
pub struct ExecutorActor;

/// State of [`ExecutorActor`].
pub struct ExecutorState {
    ctx: Arc<Ctx>,
}

impl Actor for ExecutorActor {
    type Msg = ExecutorMsg;
    type State = ExecutorState;
    type Arguments = Arc<Ctx>;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        ctx: Arc<Ctx>,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(ExecutorState { ctx })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let ExecutorMsg::Validate {
            step,
            proposals,
            reply,
        } = msg;
        state.ctx.faults.maybe_panic(NAME, step);
        let ctx = state.ctx.clone();
        serve(NAME, reply, async move {
            tokio::task::spawn_blocking(move || {
                proposals
                    .iter()
                    .map(|(p, prov)| {
                        let tt = ctx
                            .task_type(p.kind)?
                            .proposer()
                            .ok_or_else(|| format!("task type `{}` does not propose", p.kind))?;
                        let t0 = Instant::now();
                        let r = tt.validate_proposal(p, &ctx.executor, prov.clone());
                        let status = match &r {
                            Ok(_) => ExecStatus::Ok,
                            Err(Invalid::Exec { status, .. }) => *status,
                            Err(_) => ExecStatus::Invalid,
                        };
                        crate::telemetry::execution(status, t0.elapsed());
                        r.map_err(|e| e.to_string())
                    })
                    .collect()
            })
            .await
            .map_err(|e| format!("validation task failed: {e}"))
        });
        Ok(())
    }
}

/// Typed handle to the executor actor.
#[derive(Clone)]
pub struct ExecutorHandle(WorkerHandle<ExecutorMsg>);

impl ExecutorHandle {
    /// A handle with a per-attempt timeout.
    pub fn new(timeout: Duration) -> Self {
        Self(WorkerHandle::new(NAME, timeout))
    }

    /// Validate proposals; one result per proposal, in order.
    pub async fn validate(
        &self,
        step: u64,
        proposals: Vec<(Proposal, Provenance)>,
    ) -> Result<Vec<Result<Task, String>>, RequestError> {
        self.0
            .request(|reply| ExecutorMsg::Validate {
                step,
                proposals: proposals.clone(),
                reply,
            })
            .await
    }
}
