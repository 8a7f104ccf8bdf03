//! The reward actor: grades solver generations with each task type's checker (executor-backed
//! where needed, on `spawn_blocking`).

use std::sync::Arc;
use std::time::Duration;

use azr_core::tasks::{Score, Task};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use super::handle::{RequestError, WorkerHandle};
use super::{serve, Ctx};

/// Registered name.
pub const NAME: &str = "reward";

/// Messages of [`Reward`].
pub enum RewardMsg {
    /// Grade `(task, response text)` pairs; one verdict per pair, in order.
    Grade {
        /// Step (fault injection).
        step: u64,
        /// Pairs to grade.
        items: Vec<(Task, String)>,
        /// Reply.
        reply: RpcReplyPort<Result<Vec<Score>, String>>,
    },
}

/// The reward actor.
pub struct Reward;

/// State of [`Reward`].
pub struct RewardState {
    ctx: Arc<Ctx>,
}

impl Actor for Reward {
    type Msg = RewardMsg;
    type State = RewardState;
    type Arguments = Arc<Ctx>;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        ctx: Arc<Ctx>,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(RewardState { ctx })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let RewardMsg::Grade { step, items, reply } = msg;
        state.ctx.faults.maybe_panic(NAME, step);
        let ctx = state.ctx.clone();
        serve(NAME, reply, async move {
            tokio::task::spawn_blocking(move || grade(&ctx, &items))
                .await
                .map_err(|e| format!("grading task failed: {e}"))?
        });
        Ok(())
    }
}

/// Grade pairs with the task types' checkers (blocking).
pub fn grade(ctx: &Ctx, items: &[(Task, String)]) -> Result<Vec<Score>, String> {
    items
        .iter()
        .map(|(task, text)| {
            let tt = ctx.task_type(task.kind)?;
            Ok(tt.grade(task, text, &ctx.executor).score)
        })
        .collect()
}

/// Typed handle to the reward actor.
#[derive(Clone)]
pub struct RewardHandle(WorkerHandle<RewardMsg>);

impl RewardHandle {
    /// A handle with a per-attempt timeout.
    pub fn new(timeout: Duration) -> Self {
        Self(WorkerHandle::new(NAME, timeout))
    }

    /// Grade `(task, response text)` pairs.
    pub async fn grade(
        &self,
        step: u64,
        items: Vec<(Task, String)>,
    ) -> Result<Vec<Score>, RequestError> {
        self.0
            .request(|reply| RewardMsg::Grade {
                step,
                items: items.clone(),
                reply,
            })
            .await
    }
}
