//! One AZR self-play step (reference section 1.1): for every task kind, a propose sub-batch and
//! a solve sub-batch.
//!
//! Per kind, concurrently across kinds:
//! 1. solver tasks are drawn from the kind's buffer *before* this step's proposals (as AZR);
//! 2. the proposer samples one proposal per reference set (K references from the buffers) while
//!    the solver answers the drawn tasks;
//! 3. the executor validates the parsed proposals; the estimator gets `mc_samples` solver
//!    answers per valid task and returns its solve rate; the proposer reward is the
//!    learnability `1 - s` (or the configured value for `s` in {0, 1}, invalid or unparsable);
//! 4. the reward actor grades the solver answers.
//!
//! Valid tasks join the buffers after the step (every valid one, whatever its reward).

use std::sync::Arc;

use anyhow::{Context, Result};
use azr_core::tasks::{ProposalOutcome, Provenance, Task, TaskBuffers, TaskRegistry, TasksConfig};
use azr_core::types::{Role, ScoredRollout, TaskKind};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use std::time::Instant;

use azr_core::tasks::Verdict;

use super::dump::DumpRecord;
use super::summary::StepSummary;
use crate::actors::solver::SolveOutput;
use crate::actors::Handles;
use crate::config::SelfPlaySection;
use crate::engine::Decoding;
use crate::telemetry;

/// The rollouts of one step.
pub struct StepBatch {
    /// All sub-batches, concatenated.
    pub rollouts: Vec<ScoredRollout>,
    /// Dump records (one per rollout).
    pub records: Vec<DumpRecord>,
    /// Numbers for the log line and gauges.
    pub summary: StepSummary,
}

/// The self-play mode: its buffers are checkpointed.
pub struct SelfPlay {
    /// Task buffers per kind.
    pub buffers: TaskBuffers,
    registry: Arc<TaskRegistry>,
    tasks: TasksConfig,
    selfplay: SelfPlaySection,
}

/// What one kind produced in a step.
struct KindOutput {
    rollouts: Vec<ScoredRollout>,
    records: Vec<DumpRecord>,
    new_tasks: Vec<Task>,
    summary: StepSummary,
}

/// A group id that is unique per (step, kind, role, prompt).
fn group_id(step: u64, kind: TaskKind, role: Role, index: usize) -> u64 {
    azr_core::types::group_id(step, kind, role, index)
}

impl SelfPlay {
    /// A self-play mode with the given (possibly restored) buffers.
    pub fn new(
        buffers: TaskBuffers,
        registry: Arc<TaskRegistry>,
        tasks: TasksConfig,
        selfplay: SelfPlaySection,
    ) -> Self {
        Self {
            buffers,
            registry,
            tasks,
            selfplay,
        }
    }

    /// Run the rollout phase of `step`.
    pub async fn rollout(
        &mut self,
        handles: &Handles,
        step: u64,
        decoding: Decoding,
        rng: &mut ChaCha8Rng,
    ) -> Result<StepBatch> {
        let sp = &self.selfplay;
        let mut jobs = Vec::new();
        for &kind in &sp.task_kinds {
            let tt = self
                .registry
                .get(kind)
                .with_context(|| format!("no task type for `{kind}`"))?;
            let window = self.tasks.buffer.newest_window;
            let solve_tasks = self
                .buffers
                .get(kind)
                .map(|b| b.solver_batch(sp.solve_batch, step, window, rng))
                .unwrap_or_default();
            let mut references = Vec::new();
            if sp.train_propose {
                for _ in 0..sp.propose_batch {
                    references.push(self.buffers.references(tt, rng));
                }
            }
            let seed: u64 = rng.random();
            let h = handles.clone();
            let rewards = self.tasks.rewards.clone();
            jobs.push(tokio::spawn(async move {
                kind_step(
                    &h,
                    step,
                    kind,
                    solve_tasks,
                    references,
                    decoding,
                    seed,
                    &rewards,
                )
                .await
            }));
        }
        let mut batch = StepBatch {
            rollouts: Vec::new(),
            records: Vec::new(),
            summary: StepSummary::default(),
        };
        let mut new_tasks = Vec::new();
        for job in jobs {
            let out = job.await.context("self-play task panicked")??;
            batch.rollouts.extend(out.rollouts);
            batch.records.extend(out.records);
            new_tasks.extend(out.new_tasks);
            for (k, v) in out.summary.sub {
                batch.summary.sub.insert(k, v);
            }
        }
        for task in new_tasks {
            self.buffers.push(task)?;
        }
        for (kind, size) in self.buffers.sizes() {
            telemetry::buffer_size(kind, size);
        }
        Ok(batch)
    }
}

#[allow(clippy::too_many_arguments)]
async fn kind_step(
    h: &Handles,
    step: u64,
    kind: TaskKind,
    solve_tasks: Vec<Task>,
    references: Vec<Vec<Task>>,
    decoding: Decoding,
    seed: u64,
    rewards: &azr_core::tasks::RewardConfig,
) -> Result<KindOutput> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (propose_seed, solve_seed, mc_seed) = (rng.random(), rng.random(), rng.random());
    let mut out = KindOutput {
        rollouts: Vec::new(),
        records: Vec::new(),
        new_tasks: Vec::new(),
        summary: StepSummary::default(),
    };

    // Proposals and solver answers are generated concurrently.
    let proposing = async {
        if references.is_empty() {
            return Ok(Vec::new());
        }
        h.proposer
            .propose(step, kind, references, decoding, propose_seed)
            .await
    };
    let solving = async {
        if solve_tasks.is_empty() {
            return Ok(Vec::new());
        }
        h.solver
            .solve(step, solve_tasks.clone(), 1, decoding, solve_seed)
            .await
    };
    let t0 = Instant::now();
    let (proposals, answers) = tokio::join!(
        async {
            let r = proposing.await;
            telemetry::phase("propose", t0.elapsed());
            r
        },
        async {
            let r = solving.await;
            telemetry::phase("solve", t0.elapsed());
            r
        }
    );
    let (proposals, answers) = (proposals?, answers?);

    // Solve role: grade.
    let items = answers
        .iter()
        .map(|a| (solve_tasks[a.task_index].clone(), a.generated.text.clone()))
        .collect();
    let t_reward = Instant::now();
    let verdicts = h.reward.grade(step, items).await?;
    telemetry::phase("reward", t_reward.elapsed());
    let correct = verdicts.iter().filter(|v| **v == Verdict::Correct).count();
    telemetry::answers(kind, Role::Solve, verdicts.len(), correct);
    for (i, (a, v)) in answers.into_iter().zip(verdicts).enumerate() {
        let reward = rewards.solver(v);
        let s = out.summary.entry(kind, Role::Solve);
        s.count += 1;
        s.reward_sum += f64::from(reward);
        s.hits += usize::from(v == Verdict::Correct);
        s.tokens += a.generated.response_ids.len();
        out.records.push(DumpRecord {
            step,
            task: kind,
            role: Role::Solve,
            prompt: a.prompt,
            response: a.generated.text,
            reward,
            outcome: v.as_str().to_string(),
            solve_rate: None,
            policy_version: a.generated.policy_version,
            response_tokens: a.generated.response_ids.len(),
        });
        out.rollouts.push(ScoredRollout {
            prompt_ids: a.prompt_ids,
            response_ids: a.generated.response_ids,
            sample_logprobs: a.generated.logprobs,
            reward,
            task: kind,
            role: Role::Solve,
            group: group_id(step, kind, Role::Solve, i),
            policy_version: a.generated.policy_version,
        });
    }

    // Propose role: validate, estimate learnability.
    let parsed: Vec<usize> = proposals
        .iter()
        .enumerate()
        .filter(|(_, p)| p.proposal.is_ok())
        .map(|(i, _)| i)
        .collect();
    let to_validate = parsed
        .iter()
        .filter_map(|&i| {
            let p = proposals[i].proposal.as_ref().ok()?;
            let prov = Provenance::proposed(step, proposals[i].generated.policy_version);
            Some((p.clone(), prov))
        })
        .collect();
    let t_validate = Instant::now();
    let validated = h.executor.validate(step, to_validate).await?;
    telemetry::phase("validate", t_validate.elapsed());
    // Per proposal: the index of its valid task, or the outcome and its text.
    let mut outcome: Vec<Result<usize, (ProposalOutcome, String)>> = proposals
        .iter()
        .map(|p| match &p.proposal {
            Ok(_) => Err((
                ProposalOutcome::Invalid,
                "invalid: not validated".to_string(),
            )),
            Err(e) => Err((ProposalOutcome::FormatError, format!("format_error: {e}"))),
        })
        .collect();
    let mut valid_tasks = Vec::new();
    for (&i, v) in parsed.iter().zip(validated) {
        outcome[i] = match v {
            Ok(task) => {
                valid_tasks.push(task);
                Ok(valid_tasks.len() - 1)
            }
            Err(e) => Err((ProposalOutcome::Invalid, format!("invalid: {e}"))),
        };
    }
    let t_estimate = Instant::now();
    let estimates = h
        .estimator
        .estimate(
            step,
            valid_tasks.clone(),
            rewards.mc_samples,
            decoding,
            mc_seed,
        )
        .await?;
    telemetry::phase("estimate", t_estimate.elapsed());
    let mc: Vec<&(SolveOutput, azr_core::tasks::Score)> =
        estimates.iter().flat_map(|e| &e.samples).collect();
    let mc_correct = mc.iter().filter(|(_, v)| *v == Verdict::Correct).count();
    telemetry::answers(kind, Role::Propose, mc.len(), mc_correct);
    let mc_lengths: Vec<usize> = mc
        .iter()
        .map(|(s, _)| s.generated.response_ids.len())
        .collect();
    telemetry::responses(
        kind,
        Role::Propose,
        &mc_lengths,
        mc_lengths
            .iter()
            .filter(|&&l| l >= decoding.max_new_tokens)
            .count(),
    );
    let n_proposals = proposals.len();
    let mut learnability = Vec::new();
    for (i, p) in proposals.into_iter().enumerate() {
        let (reward, text, rate) = match &outcome[i] {
            Ok(t) => {
                let rate = estimates[*t].solve_rate;
                let r = rewards.proposer(ProposalOutcome::Valid {
                    solve_rate: rate as f32,
                });
                learnability.push(r);
                (r, "valid".to_string(), Some(rate))
            }
            Err((o, text)) => (rewards.proposer(*o), text.clone(), None),
        };
        let s = out.summary.entry(kind, Role::Propose);
        s.count += 1;
        s.reward_sum += f64::from(reward);
        if rate.is_some() {
            s.hits += 1;
            s.learnability_sum += f64::from(reward);
        }
        s.tokens += p.generated.response_ids.len();
        out.records.push(DumpRecord {
            step,
            task: kind,
            role: Role::Propose,
            prompt: p.prompt.text,
            response: p.generated.text,
            reward,
            outcome: text,
            solve_rate: rate,
            policy_version: p.generated.policy_version,
            response_tokens: p.generated.response_ids.len(),
        });
        out.rollouts.push(ScoredRollout {
            prompt_ids: p.prompt_ids,
            response_ids: p.generated.response_ids,
            sample_logprobs: p.generated.logprobs,
            reward,
            task: kind,
            role: Role::Propose,
            group: group_id(step, kind, Role::Propose, i),
            policy_version: p.generated.policy_version,
        });
    }
    out.new_tasks = valid_tasks;
    telemetry::proposals(kind, n_proposals, &learnability);
    for role in Role::ALL {
        let of_role = || out.rollouts.iter().filter(|r| r.role == role);
        let lengths: Vec<usize> = of_role().map(|r| r.response_ids.len()).collect();
        let truncated = lengths
            .iter()
            .filter(|&&l| l >= decoding.max_new_tokens)
            .count();
        telemetry::responses(kind, role, &lengths, truncated);
        let rewards: Vec<f32> = of_role().map(|r| r.reward).collect();
        if !rewards.is_empty() {
            telemetry::rewards(kind, role, &rewards);
        }
    }
    Ok(out)
}
