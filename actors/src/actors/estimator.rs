//! The Monte Carlo learnability estimator: for each valid proposed task it samples
//! `tasks.rewards.mc_samples` solver answers through the rollout engine at the training
//! settings, grades them, returns the task to the task store, and pushes the proposal with its
//! solve rate to the reward actor (AZR's proposer reward is computed from it).

use std::sync::Arc;
use std::time::Instant;

use azr_core::tasks::{Score, Verdict};
use azr_core::types::Role;
use ractor::RpcReplyPort;

use super::store::StoreMsg;
use super::{Ctx, EstimateJob, Estimates, ProposalResult, ToReward, WorkError};
use crate::service::{Service, ServiceHandle};
use crate::telemetry;

/// Registered name.
pub const NAME: &str = "estimator";

/// Messages of the estimator.
pub enum EstimatorMsg {
    /// Estimate the solve rate of one valid proposal's task.
    Estimate {
        /// The job.
        job: EstimateJob,
        /// Reply (once pushed downstream).
        reply: RpcReplyPort<Result<(), WorkError>>,
    },
}

/// The estimator service.
pub struct Estimator {
    ctx: Arc<Ctx>,
    store: ServiceHandle<StoreMsg>,
    reward_tx: flume::Sender<ToReward>,
}

impl Estimator {
    /// An estimator returning tasks to `store` and pushing to the reward actor.
    pub fn new(
        ctx: Arc<Ctx>,
        store: ServiceHandle<StoreMsg>,
        reward_tx: flume::Sender<ToReward>,
    ) -> Self {
        Self {
            ctx,
            store,
            reward_tx,
        }
    }
}

/// What the estimator measured of one task.
struct Estimate {
    /// Mean score of the Monte Carlo samples.
    solve_rate: f64,
    /// Whether the greedy answer was correct (with `greedy_probe`).
    greedy_correct: Option<bool>,
    /// The graded samples, when they are trained.
    estimates: Option<Estimates>,
}

/// Sample and grade: the solve rate, the greedy answer's verdict when probed, and the graded
/// samples when they are trained.
async fn estimate(ctx: &Arc<Ctx>, job: &EstimateJob) -> Result<Estimate, WorkError> {
    let kind = job.task.kind;
    let text = ctx.task_type(kind)?.solver_prompt(&job.task)?;
    let ids = ctx.codec.encode(&text)?;
    let kept_ids = ctx.train_estimates.then(|| ids.clone());
    let probe_ids = ctx.greedy_probe.then(|| ids.clone());
    let n = ctx.rewards.mc_samples;
    let slot = &job.proposal.slot;
    let sampled = ctx.generate_for(slot, ids, n, slot.seed(ctx.seed, 2), 0);
    let (samples, greedy) = match probe_ids {
        Some(probe_ids) => {
            let (samples, greedy) = tokio::join!(sampled, ctx.greedy_for(slot, probe_ids, 0));
            (samples?, Some(greedy?))
        }
        None => (sampled.await?, None),
    };
    let lengths: Vec<usize> = samples.iter().map(|s| s.tokens.len()).collect();
    let (c, task) = (ctx.clone(), job.task.clone());
    // The samples go to the grader and come back: they are trained on too when
    // `train_estimates` is set.
    let (samples, verdicts, greedy_correct) = tokio::task::spawn_blocking(move || {
        let verdicts = samples
            .iter()
            .map(|g| super::reward::grade(&c, &task, &g.text))
            .collect::<Result<Vec<Score>, WorkError>>()?;
        let greedy_correct = greedy
            .map(|g| super::reward::grade(&c, &task, &g.text))
            .transpose()?
            .map(|s| s == Verdict::Correct);
        Ok::<_, WorkError>((samples, verdicts, greedy_correct))
    })
    .await
    .map_err(|e| WorkError::Join(e.to_string()))??;
    let correct = verdicts.iter().filter(|v| **v == Verdict::Correct).count();
    telemetry::answers(kind, Role::Propose, verdicts.len(), correct);
    let max = ctx.sampling.max_new_tokens;
    telemetry::responses(
        kind,
        Role::Propose,
        &lengths,
        lengths.iter().filter(|&&l| l >= max).count(),
    );
    // The mean score: partial credit counts its value.
    if let Some(correct) = greedy_correct {
        telemetry::greedy_probe(kind, correct);
    }
    let solve_rate = f64::from(azr_core::tasks::rewards::solve_rate(&verdicts));
    let estimates = kept_ids.map(|prompt_ids| Estimates {
        prompt: text,
        prompt_ids,
        samples: samples.into_iter().zip(verdicts).collect(),
    });
    Ok(Estimate {
        solve_rate,
        greedy_correct,
        estimates,
    })
}

impl Service for Estimator {
    type Msg = EstimatorMsg;
    type State = ();
    type Error = WorkError;

    fn name(&self) -> &'static str {
        NAME
    }

    async fn init(&self) -> Result<(), WorkError> {
        Ok(())
    }

    async fn handle(&self, msg: EstimatorMsg, _state: &mut ()) -> Result<(), WorkError> {
        let EstimatorMsg::Estimate { job, reply } = msg;
        self.ctx.faults.maybe_panic(NAME, job.proposal.slot.batch);
        let (ctx, store, rtx) = (self.ctx.clone(), self.store.clone(), self.reward_tx.clone());
        tokio::spawn(async move {
            let t0 = Instant::now();
            let slot = job.proposal.slot;
            let (result, estimates) = match estimate(&ctx, &job).await {
                Ok(Estimate {
                    solve_rate,
                    greedy_correct,
                    estimates,
                }) => {
                    // Valid tasks join the buffers whatever their reward (as AZR), with the
                    // solve rate (and greedy verdict) measured now: targeting reads them.
                    let mut task = job.task.clone();
                    task.provenance.solve_rate = Some(solve_rate as f32);
                    task.provenance.greedy_correct = greedy_correct;
                    let added = store
                        .request(|reply| StoreMsg::Add {
                            tasks: vec![task.clone()],
                            reply,
                        })
                        .await;
                    let shape = match added {
                        Ok(mut shapes) => shapes.pop().flatten(),
                        Err(e) => {
                            tracing::warn!(error = %e, "could not return a task to the store");
                            None
                        }
                    };
                    (ProposalResult::Valid { solve_rate, shape }, estimates)
                }
                Err(e) => {
                    tracing::warn!(?slot, error = %e, "estimate failed: no reward");
                    (ProposalResult::NoReward(e.to_string()), None)
                }
            };
            telemetry::busy(NAME, t0.elapsed());
            telemetry::phase("estimate", t0.elapsed());
            let sent = rtx
                .send_async(ToReward::Proposal {
                    item: Some(job.proposal),
                    slot,
                    result,
                    estimates,
                })
                .await
                .map_err(|_| WorkError::Closed("answers"));
            let _ = reply.send(sent);
        });
        Ok(())
    }
}
