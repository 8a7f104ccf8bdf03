//! A reward actor of our own: the built-in reward computation, then a length penalty on every
//! rewarded solver answer. It replaces the pipeline's `reward` actor by name
//! ([`azr::PipelineBuilder::replace_actor`]): it handles the same message
//! ([`RewardMsg::Score`]) and pushes the scored slot to the learner on the same channel.

use std::sync::Arc;

use azr::actors::reward::{self, RewardMsg};
use azr::actors::{Ctx, Scored, WorkError};
use azr::service::Service;
use azr::Wiring;
use azr_core::types::Role;

/// The penalty: `coef * response_tokens / max_tokens` subtracted from a solver answer's reward.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LengthPenalty {
    /// Penalty of an answer `max_tokens` long.
    pub coef: f32,
    /// The length the penalty is relative to (`sampling.max_new_tokens`).
    pub max_tokens: usize,
}

impl LengthPenalty {
    /// The penalty of an answer of `tokens` tokens.
    pub fn of(&self, tokens: usize) -> f32 {
        self.coef * tokens as f32 / self.max_tokens.max(1) as f32
    }
}

/// How the actor marks the outcome of a penalised answer in the rollout dump:
/// `<verdict> length_penalty=<p>`.
pub const OUTCOME_TAG: &str = "length_penalty=";

/// The reward actor with a length penalty.
pub struct LengthPenaltyReward {
    ctx: Arc<Ctx>,
    rollouts: flume::Sender<Scored>,
    penalty: LengthPenalty,
}

impl LengthPenaltyReward {
    /// The actor over the run's wiring: the shared context and the channel to the learner.
    pub fn new(wiring: &Wiring, penalty: LengthPenalty) -> Self {
        Self {
            ctx: wiring.ctx.clone(),
            rollouts: wiring.rollouts.clone(),
            penalty,
        }
    }
}

/// Apply the penalty to the rewarded solver samples of a scored slot (the learner trains on
/// `rollout.reward`; the dump shows `record.reward` and the outcome).
pub fn apply(penalty: LengthPenalty, scored: &mut Scored) {
    for s in &mut scored.samples {
        if !s.rewarded || s.rollout.role != Role::Solve {
            continue;
        }
        let p = penalty.of(s.rollout.response_ids.len());
        s.rollout.reward -= p;
        s.record.reward = s.rollout.reward;
        s.record.outcome = format!("{} {OUTCOME_TAG}{p}", s.record.outcome);
    }
}

impl Service for LengthPenaltyReward {
    type Msg = RewardMsg;
    type State = ();
    type Error = WorkError;

    fn name(&self) -> &'static str {
        reward::NAME
    }

    async fn init(&self) -> Result<(), WorkError> {
        Ok(())
    }

    async fn handle(&self, msg: RewardMsg, _state: &mut ()) -> Result<(), WorkError> {
        let RewardMsg::Score { item, reply } = msg;
        let (ctx, tx, penalty) = (self.ctx.clone(), self.rollouts.clone(), self.penalty);
        // Grading may run programs: off the actor, so its mailbox stays responsive.
        tokio::spawn(async move {
            let slot = item.slot();
            let sent = match tokio::task::spawn_blocking(move || reward::score(&ctx, item)).await {
                Ok(mut scored) => {
                    apply(penalty, &mut scored);
                    tx.send_async(scored)
                        .await
                        .map_err(|_| WorkError::Closed("rollouts"))
                }
                Err(e) => {
                    tracing::warn!(?slot, error = %e, "grading failed");
                    Err(WorkError::Join(e.to_string()))
                }
            };
            let _ = reply.send(sent);
        });
        Ok(())
    }
}
