//! The reward actor: scores every generation that reaches it. Solver answers are graded by
//! their task type's check (executor-backed where needed, on `spawn_blocking`) and rewarded by
//! `tasks.rewards`; a proposal's reward comes from its outcome (the learnability `1 - s` of a
//! valid one, less `tasks.rewards.diversity` when its program shape is not novel). A generation whose infrastructure failed gets no reward: it is marked, counted
//! and left out of training, never scored 0 or -1. The scored slot goes to the learner.

use std::sync::Arc;
use std::time::Instant;

use azr_core::tasks::{ProposalOutcome, Score, Source, Task, Verdict};
use azr_core::types::{Role, ScoredRollout};
use ractor::RpcReplyPort;

use super::{Ctx, ProposalResult, Scored, ScoredSample, ToReward, WorkError};
use crate::pipeline::dump::DumpRecord;
use crate::service::Service;
use crate::telemetry;

/// Registered name.
pub const NAME: &str = "reward";

/// Messages of the reward actor.
pub enum RewardMsg {
    /// Score one slot's generations; replies once the scored slot is pushed to the learner.
    Score {
        /// The generations.
        item: ToReward,
        /// Reply.
        reply: RpcReplyPort<Result<(), WorkError>>,
    },
}

/// The reward service.
pub struct Reward {
    ctx: Arc<Ctx>,
    rollouts_tx: flume::Sender<Scored>,
}

impl Reward {
    /// A reward actor pushing to the learner (`rollouts`).
    pub fn new(ctx: Arc<Ctx>, rollouts_tx: flume::Sender<Scored>) -> Self {
        Self { ctx, rollouts_tx }
    }
}

/// Grade one response with its task type's checker (blocking): its score in [0, 1] and label,
/// which `tasks.rewards` maps to the reward (partial credit included).
pub fn grade(ctx: &Ctx, task: &Task, text: &str) -> Result<Score, WorkError> {
    Ok(ctx
        .task_type(task.kind)?
        .grade(task, text, &ctx.executor)
        .score)
}

/// Score one item: the built-in reward computation (blocking: grading may run programs in the
/// sandbox, so call it from `spawn_blocking`). Solver answers get their task type's score
/// mapped by `tasks.rewards` (partial credit included), proposals the reward of their outcome
/// (learnability `1 - s` of a valid one); infrastructure failures are marked unrewarded. A
/// replacement reward actor may call it and adjust the result.
pub fn score(ctx: &Ctx, item: ToReward) -> Scored {
    let slot = item.slot();
    match item {
        ToReward::Answers {
            job,
            prompt,
            prompt_ids,
            samples,
        } => {
            let samples = match samples {
                Ok(s) => s,
                Err(e) => {
                    telemetry::unrewarded(slot.kind, slot.role, job.n);
                    tracing::warn!(?slot, error = %e, "answers without reward");
                    return Scored {
                        slot,
                        samples: Vec::new(),
                        example: job.example,
                    };
                }
            };
            let out = samples
                .into_iter()
                .enumerate()
                .map(|(i, g)| {
                    let graded = grade(ctx, &job.task, &g.text);
                    let answer = Answer {
                        prompt: &prompt,
                        prompt_ids: &prompt_ids,
                        source: job.task.provenance.source.as_str(),
                        group: slot.group(),
                        draw: control_draw(ctx, slot, i as u64),
                    };
                    answer.sample(ctx, slot, g, graded)
                })
                .collect();
            Scored {
                slot,
                samples: out,
                example: job.example,
            }
        }
        ToReward::Proposal {
            item,
            slot,
            result,
            estimates,
        } => {
            let Some(p) = item else {
                telemetry::unrewarded(slot.kind, slot.role, 1);
                return Scored {
                    slot,
                    samples: Vec::new(),
                    example: None,
                };
            };
            let (reward, rewarded, outcome, rate, shape) = match result {
                // The diversity and repetition terms: `learnability - diversity` when the shape
                // is not novel, less `repetition` x the shape's share of earlier proposals; only
                // for kinds whose proposer writes the program (not induction's buffered one).
                ProposalResult::Valid { solve_rate, shape } => (
                    ctx.rewards.proposer_with_shape(
                        ProposalOutcome::Valid {
                            solve_rate: solve_rate as f32,
                        },
                        shape.as_ref().filter(|_| {
                            ctx.registry
                                .proposer(slot.kind)
                                .is_none_or(|p| p.writes_program())
                        }),
                    ),
                    true,
                    "valid".to_string(),
                    Some(solve_rate),
                    shape,
                ),
                ProposalResult::Invalid(why) => (
                    ctx.rewards.proposer(ProposalOutcome::Invalid),
                    true,
                    why,
                    None,
                    None,
                ),
                ProposalResult::FormatError(why) => (
                    ctx.rewards.proposer(ProposalOutcome::FormatError),
                    true,
                    why,
                    None,
                    None,
                ),
                ProposalResult::NoReward(why) => {
                    telemetry::unrewarded(slot.kind, slot.role, 1);
                    (0.0, false, format!("no_reward: {why}"), None, None)
                }
            };
            let g = p.generated;
            let mut samples = vec![ScoredSample {
                record: DumpRecord {
                    step: slot.batch,
                    task: slot.kind,
                    role: Role::Propose,
                    prompt: p.prompt.text,
                    response: g.text,
                    reward,
                    outcome,
                    solve_rate: rate,
                    novel: shape.as_ref().map(|s| s.novel),
                    shape_share: shape.as_ref().map(|s| s.share),
                    shape: shape.map(|s| s.shape),
                    source: None,
                    policy_version: g.first_version,
                    response_tokens: g.tokens.len(),
                },
                rollout: ScoredRollout {
                    prompt_ids: p.prompt_ids,
                    response_ids: g.tokens,
                    sample_logprobs: g.logprobs,
                    reward,
                    task: slot.kind,
                    role: Role::Propose,
                    group: slot.group(),
                    policy_version: g.first_version,
                },
                rewarded,
                hit: rate.is_some(),
            }];
            if let Some(e) = estimates {
                // One more solver group: its own group id, past every solver slot's index.
                let group = azr_core::types::group_id(
                    slot.batch,
                    slot.kind,
                    Role::Solve,
                    (1usize << 32) + slot.index as usize,
                );
                for (i, (g, score)) in e.samples.into_iter().enumerate() {
                    let answer = Answer {
                        prompt: &e.prompt,
                        prompt_ids: &e.prompt_ids,
                        source: Source::Proposed.as_str(),
                        group,
                        draw: control_draw(ctx, slot, 1_000 + i as u64),
                    };
                    samples.push(answer.sample(ctx, slot, g, Ok(score)));
                }
            }
            Scored {
                slot,
                samples,
                example: None,
            }
        }
    }
}

/// The uniform draw in [0, 1) of a `random` reward control for sample `i` of `slot` (seeded by
/// the run seed: a rerun draws the same rewards).
fn control_draw(ctx: &Ctx, slot: super::Slot, i: u64) -> f32 {
    let x = slot.seed(ctx.seed, 0xC047_0000 + i);
    (x >> 40) as f32 / (1u64 << 24) as f32
}

/// Where a solver answer was asked: the prompt, its group and its control draw.
struct Answer<'a> {
    prompt: &'a str,
    prompt_ids: &'a [u32],
    source: &'static str,
    group: u64,
    draw: f32,
}

impl Answer<'_> {
    /// The scored solve sample of one answer (`graded` failing = no reward).
    fn sample(
        &self,
        ctx: &Ctx,
        slot: super::Slot,
        g: super::Generated,
        graded: Result<Score, WorkError>,
    ) -> ScoredSample {
        let (reward, rewarded, outcome, hit) = match graded {
            Ok(v) => (
                ctx.rewards.controlled_solver(v, self.draw),
                true,
                v.as_str().to_string(),
                v == Verdict::Correct,
            ),
            Err(e) => {
                telemetry::unrewarded(slot.kind, Role::Solve, 1);
                (0.0, false, format!("no_reward: {e}"), false)
            }
        };
        ScoredSample {
            record: DumpRecord {
                step: slot.batch,
                task: slot.kind,
                role: Role::Solve,
                prompt: self.prompt.to_string(),
                response: g.text,
                reward,
                outcome,
                solve_rate: None,
                shape: None,
                novel: None,
                shape_share: None,
                source: Some(self.source.to_string()),
                policy_version: g.first_version,
                response_tokens: g.tokens.len(),
            },
            rollout: ScoredRollout {
                prompt_ids: self.prompt_ids.to_vec(),
                response_ids: g.tokens,
                sample_logprobs: g.logprobs,
                reward,
                task: slot.kind,
                role: Role::Solve,
                group: self.group,
                policy_version: g.first_version,
            },
            rewarded,
            hit,
        }
    }
}

impl Service for Reward {
    type Msg = RewardMsg;
    type State = ();
    type Error = WorkError;

    fn name(&self) -> &'static str {
        NAME
    }

    async fn init(&self) -> Result<(), WorkError> {
        Ok(())
    }

    async fn handle(&self, msg: RewardMsg, _state: &mut ()) -> Result<(), WorkError> {
        let RewardMsg::Score { item, reply } = msg;
        self.ctx.faults.maybe_panic(NAME, item.slot().batch);
        let (ctx, tx) = (self.ctx.clone(), self.rollouts_tx.clone());
        tokio::spawn(async move {
            let t0 = Instant::now();
            let slot = item.slot();
            let scored = tokio::task::spawn_blocking(move || score(&ctx, item))
                .await
                .unwrap_or_else(|e| {
                    tracing::warn!(?slot, error = %e, "grading failed: no reward");
                    telemetry::unrewarded(slot.kind, slot.role, 1);
                    Scored {
                        slot,
                        samples: Vec::new(),
                        example: None,
                    }
                });
            telemetry::busy(NAME, t0.elapsed());
            telemetry::phase("reward", t0.elapsed());
            let sent = tx
                .send_async(scored)
                .await
                .map_err(|_| WorkError::Closed("rollouts"));
            let _ = reply.send(sent);
        });
        Ok(())
    }
}
