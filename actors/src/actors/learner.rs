//! The learner actor: the supervised front of the learner thread. It forwards each step's batch
//! into the bounded learner queue (suspending, not blocking, while the queue is full: that is
//! the pipeline's backpressure) and asks the thread to save checkpoints. The update itself runs
//! on the dedicated learner thread ([`crate::compute::learner`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use azr_core::types::ScoredRollout;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::sync::oneshot;

use super::handle::{RequestError, WorkerHandle};
use super::{serve, Ctx};
use crate::compute::learner::LearnerCmd;
use crate::telemetry;

/// Registered name.
pub const NAME: &str = "learner";

/// Messages of [`Learner`].
pub enum LearnerMsg {
    /// Enqueue the batch of `step`; replies once the learner queue accepted it.
    Submit {
        /// Step.
        step: u64,
        /// The step's rollouts (all sub-batches).
        rollouts: Vec<ScoredRollout>,
        /// Reply.
        reply: RpcReplyPort<Result<(), String>>,
    },
    /// Save weights and optimizer state into `dir` (after every queued batch).
    Save {
        /// Target directory.
        dir: PathBuf,
        /// Reply.
        reply: RpcReplyPort<Result<(), String>>,
    },
}

/// The learner actor.
pub struct Learner;

/// State of [`Learner`].
pub struct LearnerState {
    ctx: Arc<Ctx>,
}

impl Actor for Learner {
    type Msg = LearnerMsg;
    type State = LearnerState;
    type Arguments = Arc<Ctx>;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        ctx: Arc<Ctx>,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(LearnerState { ctx })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let tx = state.ctx.learner_tx.clone();
        match msg {
            LearnerMsg::Submit {
                step,
                rollouts,
                reply,
            } => serve(NAME, reply, async move {
                tx.send_async(LearnerCmd::Train { step, rollouts })
                    .await
                    .map_err(|_| "learner thread is gone".to_string())?;
                telemetry::rollout_queue(tx.len(), tx.capacity().unwrap_or(0));
                Ok(())
            }),
            LearnerMsg::Save { dir, reply } => serve(NAME, reply, async move {
                let (done, rx) = oneshot::channel();
                tx.send_async(LearnerCmd::Save { dir, reply: done })
                    .await
                    .map_err(|_| "learner thread is gone".to_string())?;
                rx.await
                    .map_err(|_| "learner thread dropped the save".to_string())?
            }),
        }
        Ok(())
    }
}

/// Typed handle to the learner.
#[derive(Clone)]
pub struct LearnerHandle(WorkerHandle<LearnerMsg>);

impl LearnerHandle {
    /// A handle with a per-attempt timeout.
    pub fn new(timeout: Duration) -> Self {
        Self(WorkerHandle::new(NAME, timeout))
    }

    /// Enqueue a step's batch (waits while the learner queue is full).
    pub async fn submit(
        &self,
        step: u64,
        rollouts: Vec<ScoredRollout>,
    ) -> Result<(), RequestError> {
        self.0
            .request(|reply| LearnerMsg::Submit {
                step,
                rollouts: rollouts.clone(),
                reply,
            })
            .await
    }

    /// Save weights and optimizer state into `dir`.
    pub async fn save(&self, dir: PathBuf) -> Result<(), RequestError> {
        self.0
            .request(|reply| LearnerMsg::Save {
                dir: dir.clone(),
                reply,
            })
            .await
    }
}
