//! The executor actor: validates proposals in the sandbox (parse, banned imports, two runs for
//! determinism) and turns the valid ones into tasks with gold outputs, pushed to the estimator;
//! invalid and unparsable proposals go straight to the reward actor. A sandbox failure is "no
//! reward", never an invalid proposal. The blocking executor calls run on `spawn_blocking`.

use std::sync::Arc;
use std::time::Instant;

use azr_core::executor::ExecStatus;
use azr_core::tasks::{Invalid, Provenance};
use ractor::RpcReplyPort;

use super::{Ctx, EstimateJob, ProposalItem, ProposalResult, ToReward, WorkError};
use crate::service::Service;
use crate::telemetry;

/// Registered name.
pub const NAME: &str = "executor";

/// Messages of the executor actor.
pub enum ExecutorMsg {
    /// Validate one proposal; replies once the result is pushed downstream.
    Validate {
        /// The proposal.
        item: ProposalItem,
        /// Reply.
        reply: RpcReplyPort<Result<(), WorkError>>,
    },
}

/// The executor service.
pub struct ExecutorActor {
    ctx: Arc<Ctx>,
    estimates_tx: flume::Sender<EstimateJob>,
    reward_tx: flume::Sender<ToReward>,
}

impl ExecutorActor {
    /// An executor pushing valid tasks to the estimator and the rest to the reward actor.
    pub fn new(
        ctx: Arc<Ctx>,
        estimates_tx: flume::Sender<EstimateJob>,
        reward_tx: flume::Sender<ToReward>,
    ) -> Self {
        Self {
            ctx,
            estimates_tx,
            reward_tx,
        }
    }
}

/// What validation made of a proposal.
enum Validated {
    Valid(azr_core::tasks::Task),
    Rejected(ProposalResult),
}

fn validate(ctx: &Ctx, item: &ProposalItem) -> Validated {
    let p = match &item.parsed {
        Ok(p) => p,
        Err(e) => {
            return Validated::Rejected(ProposalResult::FormatError(format!("format_error: {e}")))
        }
    };
    let tt = match ctx
        .task_type(p.kind)
        .and_then(|t| t.proposer().ok_or(super::WorkError::NotProposable(p.kind)))
    {
        Ok(tt) => tt,
        Err(e) => return Validated::Rejected(ProposalResult::NoReward(e.to_string())),
    };
    let prov = Provenance::proposed(item.slot.batch, item.generated.first_version);
    let t0 = Instant::now();
    let r = tt.validate_proposal(p, &ctx.executor, prov);
    let status = match &r {
        Ok(_) => ExecStatus::Ok,
        Err(Invalid::Exec { status, .. }) => *status,
        Err(_) => ExecStatus::Invalid,
    };
    telemetry::execution(status, t0.elapsed());
    match r {
        Ok(task) => Validated::Valid(task),
        Err(e) if status == ExecStatus::SandboxFailure => {
            Validated::Rejected(ProposalResult::NoReward(format!("sandbox failure: {e}")))
        }
        Err(e) => Validated::Rejected(ProposalResult::Invalid(format!("invalid: {e}"))),
    }
}

impl Service for ExecutorActor {
    type Msg = ExecutorMsg;
    type State = ();
    type Error = WorkError;

    fn name(&self) -> &'static str {
        NAME
    }

    async fn init(&self) -> Result<(), WorkError> {
        Ok(())
    }

    async fn handle(&self, msg: ExecutorMsg, _state: &mut ()) -> Result<(), WorkError> {
        let ExecutorMsg::Validate { item, reply } = msg;
        self.ctx.faults.maybe_panic(NAME, item.slot.batch);
        let (ctx, etx, rtx) = (
            self.ctx.clone(),
            self.estimates_tx.clone(),
            self.reward_tx.clone(),
        );
        tokio::spawn(async move {
            let t0 = Instant::now();
            let slot = item.slot;
            let it = item.clone();
            let v = tokio::task::spawn_blocking(move || validate(&ctx, &it))
                .await
                .unwrap_or_else(|e| {
                    Validated::Rejected(ProposalResult::NoReward(format!(
                        "validation task failed: {e}"
                    )))
                });
            telemetry::busy(NAME, t0.elapsed());
            telemetry::phase("validate", t0.elapsed());
            let sent = match v {
                Validated::Valid(task) => etx
                    .send_async(EstimateJob {
                        proposal: item,
                        task,
                    })
                    .await
                    .map_err(|_| WorkError::Closed("estimates")),
                Validated::Rejected(result) => rtx
                    .send_async(ToReward::Proposal {
                        item: Some(item),
                        slot,
                        result,
                    })
                    .await
                    .map_err(|_| WorkError::Closed("answers")),
            };
            let _ = reply.send(sent);
        });
        Ok(())
    }
}
