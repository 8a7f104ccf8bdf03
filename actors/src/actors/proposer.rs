//! The proposer: turns reference tasks into a proposer prompt, samples one proposal through the
//! rollout engine and parses it (a format error is data, not a failure), then pushes it to the
//! executor for validation.

use std::sync::Arc;
use std::time::Instant;

use ractor::RpcReplyPort;

use super::{Ctx, ProposalItem, ProposalResult, ProposeJob, ToReward, WorkError};
use crate::service::Service;
use crate::telemetry;

/// Registered name.
pub const NAME: &str = "proposer";

/// Messages of the proposer.
pub enum ProposerMsg {
    /// Sample the proposal of a slot; replies once it is pushed downstream.
    Propose {
        /// The job.
        job: ProposeJob,
        /// Reply.
        reply: RpcReplyPort<Result<(), WorkError>>,
    },
}

/// The proposer service.
pub struct Proposer {
    ctx: Arc<Ctx>,
    proposals_tx: flume::Sender<ProposalItem>,
    reward_tx: flume::Sender<ToReward>,
}

impl Proposer {
    /// A proposer pushing to the executor (`proposals`), or to the reward actor when the
    /// generation itself failed.
    pub fn new(
        ctx: Arc<Ctx>,
        proposals_tx: flume::Sender<ProposalItem>,
        reward_tx: flume::Sender<ToReward>,
    ) -> Self {
        Self {
            ctx,
            proposals_tx,
            reward_tx,
        }
    }
}

async fn propose(ctx: &Ctx, job: &ProposeJob) -> Result<ProposalItem, WorkError> {
    let kind = job.slot.kind;
    let tt = ctx
        .task_type(kind)?
        .proposer()
        .ok_or(WorkError::NotProposable(kind))?;
    let prompt = tt.proposer_prompt(&job.references)?;
    let prompt_ids = ctx.codec.encode(&prompt.text)?;
    let generated = super::only(
        ctx.generate_for(
            &job.slot,
            prompt_ids.clone(),
            1,
            job.slot.seed(ctx.seed, 1),
            0,
        )
        .await?,
    )?;
    let parsed = tt
        .parse_proposal(&prompt, &generated.text)
        .map_err(|e| e.to_string());
    Ok(ProposalItem {
        slot: job.slot,
        prompt,
        prompt_ids,
        generated,
        parsed,
    })
}

impl Service for Proposer {
    type Msg = ProposerMsg;
    type State = ();
    type Error = WorkError;

    fn name(&self) -> &'static str {
        NAME
    }

    async fn init(&self) -> Result<(), WorkError> {
        Ok(())
    }

    async fn handle(&self, msg: ProposerMsg, _state: &mut ()) -> Result<(), WorkError> {
        let ProposerMsg::Propose { job, reply } = msg;
        self.ctx.faults.maybe_panic(NAME, job.slot.batch);
        let (ctx, ptx, rtx) = (
            self.ctx.clone(),
            self.proposals_tx.clone(),
            self.reward_tx.clone(),
        );
        tokio::spawn(async move {
            let t0 = Instant::now();
            let r = propose(&ctx, &job).await;
            telemetry::busy(NAME, t0.elapsed());
            telemetry::phase("propose", t0.elapsed());
            let sent = match r {
                Ok(item) => ptx
                    .send_async(item)
                    .await
                    .map_err(|_| WorkError::Closed("proposals")),
                Err(e) => {
                    tracing::warn!(slot = ?job.slot, error = %e, "proposal failed: no reward");
                    rtx.send_async(ToReward::Proposal {
                        item: None,
                        slot: job.slot,
                        result: ProposalResult::NoReward(e.to_string()),
                        estimates: None,
                    })
                    .await
                    .map_err(|_| WorkError::Closed("answers"))
                }
            };
            let _ = reply.send(sent);
        });
        Ok(())
    }
}
