//! One 1-shot RLVR step (Wang et al. 2025): the selected math examples repeated to fill the
//! batch, `samples_per_prompt` solver samples each (a GRPO group per prompt), graded by the math
//! task type; no proposer. Every step is one epoch of the selected examples, and each example's
//! accuracy in it is appended to the run's accuracy history (`{"<index>": [acc per epoch]}`),
//! the format `azr select` ranks.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use azr_core::oneshot::dataset::{load_jsonl, MathRow};
use azr_core::oneshot::history::{AccuracyHistory, EpochTally};
use azr_core::tasks::{Provenance, RewardConfig, Task, Verdict};
use azr_core::types::{Role, ScoredRollout, TaskKind};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::dump::DumpRecord;
use super::selfplay::StepBatch;
use super::summary::StepSummary;
use crate::actors::Handles;
use crate::config::RlvrSection;
use crate::engine::Decoding;
use crate::telemetry;

/// The 1-shot RLVR mode: its accuracy history is checkpointed.
pub struct Rlvr {
    examples: Vec<(String, Task)>,
    cfg: RlvrSection,
    rewards: RewardConfig,
    /// Per-example training accuracy, one entry per step.
    pub history: AccuracyHistory,
    history_path: PathBuf,
}

impl Rlvr {
    /// Load the dataset and select the configured examples (all of them if none is named).
    pub fn new(
        cfg: RlvrSection,
        rewards: RewardConfig,
        history: AccuracyHistory,
        history_path: PathBuf,
    ) -> Result<Self> {
        let rows = load_jsonl(&cfg.dataset)
            .with_context(|| format!("config key `rlvr.dataset`: {}", cfg.dataset.display()))?;
        let chosen: Vec<MathRow> = if cfg.examples.is_empty() {
            rows
        } else {
            let mut out = Vec::new();
            for ex in &cfg.examples {
                let key = ex.to_string();
                match rows.iter().find(|r| r.index == key) {
                    Some(r) => out.push(r.clone()),
                    None => {
                        bail!("config key `rlvr.examples`: no row with index {key} in the dataset")
                    }
                }
            }
            out
        };
        if chosen.is_empty() {
            bail!("config key `rlvr.dataset`: no examples");
        }
        let examples = chosen
            .into_iter()
            .map(|r| {
                let t = Task::math(r.prompt, r.answer, Provenance::benchmark("rlvr", &r.index));
                (r.index, t)
            })
            .collect();
        Ok(Self {
            examples,
            cfg,
            rewards,
            history,
            history_path,
        })
    }

    /// Run the rollout phase of `step`.
    pub async fn rollout(
        &mut self,
        handles: &Handles,
        step: u64,
        decoding: Decoding,
        rng: &mut ChaCha8Rng,
    ) -> Result<StepBatch> {
        // The examples, repeated in order to fill the batch (1-shot RLVR duplicates pi_1).
        let n_ex = self.examples.len();
        let start = (step as usize * self.cfg.batch) % n_ex;
        let picked: Vec<&(String, Task)> = (0..self.cfg.batch)
            .map(|i| &self.examples[(start + i) % n_ex])
            .collect();
        let tasks: Vec<Task> = picked.iter().map(|(_, t)| t.clone()).collect();
        let n = self.cfg.samples_per_prompt;
        let seed: u64 = rng.random();
        let answers = handles
            .solver
            .solve(step, tasks.clone(), n, decoding, seed)
            .await?;
        let items = answers
            .iter()
            .map(|a| (tasks[a.task_index].clone(), a.generated.text.clone()))
            .collect();
        let verdicts = handles.reward.grade(step, items).await?;

        let mut batch = StepBatch {
            rollouts: Vec::with_capacity(answers.len()),
            records: Vec::with_capacity(answers.len()),
            summary: StepSummary::default(),
        };
        let mut tally = EpochTally::new();
        let mut rewards = Vec::with_capacity(answers.len());
        for (a, v) in answers.into_iter().zip(verdicts) {
            let reward = self.rewards.solver(v);
            rewards.push(reward);
            let index = &picked[a.task_index].0;
            tally.add(index, v == Verdict::Correct);
            let s = batch.summary.entry(TaskKind::Math, Role::Solve);
            s.count += 1;
            s.reward_sum += f64::from(reward);
            s.hits += usize::from(v == Verdict::Correct);
            s.tokens += a.generated.response_ids.len();
            batch.records.push(DumpRecord {
                step,
                task: TaskKind::Math,
                role: Role::Solve,
                prompt: a.prompt,
                response: a.generated.text,
                reward,
                outcome: v.as_str().to_string(),
                solve_rate: None,
                policy_version: a.generated.policy_version,
                response_tokens: a.generated.response_ids.len(),
            });
            batch.rollouts.push(ScoredRollout {
                prompt_ids: a.prompt_ids,
                response_ids: a.generated.response_ids,
                sample_logprobs: a.generated.logprobs,
                reward,
                task: TaskKind::Math,
                role: Role::Solve,
                // One GRPO group per prompt (its n samples).
                group: (step << 20) | a.task_index as u64,
                policy_version: a.generated.policy_version,
            });
        }
        let s = &batch.summary.sub[&(TaskKind::Math, Role::Solve)];
        telemetry::answers(TaskKind::Math, Role::Solve, s.count, s.hits);
        telemetry::rewards(TaskKind::Math, Role::Solve, &rewards);
        let lengths: Vec<usize> = batch
            .rollouts
            .iter()
            .map(|r| r.response_ids.len())
            .collect();
        let truncated = lengths
            .iter()
            .filter(|&&l| l >= decoding.max_new_tokens)
            .count();
        telemetry::responses(TaskKind::Math, Role::Solve, &lengths, truncated);
        self.history.close_epoch(tally)?;
        self.history
            .save(&self.history_path)
            .with_context(|| format!("writing {}", self.history_path.display()))?;
        Ok(batch)
    }
}
