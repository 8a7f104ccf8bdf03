//! The learner step: advantages -> micro-batched policy loss with gradient accumulation ->
//! global-norm clipping -> AdamW with the scheduled learning rate.
//!
//! One call of [`Learner::step`] consumes a batch of [`ScoredRollout`]s and makes
//! `ppo_epochs * ceil(B / mini_batch_size)` optimizer steps (1 by default, as in AZR and 1-shot
//! RLVR). Within a mini-batch the micro-batch losses are normalised by the **mini-batch's**
//! token and sequence counts ([`LossScale`]), so the accumulated gradient is exactly the
//! gradient of the full mini-batch loss under the chosen [`crate::rl::loss::LossAggMode`]
//! (verl instead averages micro-batch token-means, which weighs tokens unequally when
//! micro-batches differ in length).

use std::collections::BTreeMap;

use candle_core::{Tensor, Var};
use serde::{Deserialize, Serialize};

use crate::model::train_shards;
use crate::rl::advantage::{self, AdvantageEstimator};
use crate::rl::loss::{policy_loss, KlEstimator, LossScale, PolicyLossConfig, PolicyLossInputs};
use crate::rl::offpolicy::{self, OffPolicyCorrection, WeightStats};
use crate::rl::optim::{
    clip_coefficient, shard_ranges, sharded_gradients, AdamW, AdamWConfig, Gradients,
};
use crate::rl::schedule::LrSchedule;
use crate::rl::RlError;
use crate::types::{PolicyVersion, Role, ScoredRollout, TaskKind};

/// A model the learner can train. The integrator implements it for `crate::model::Model`.
pub trait TrainablePolicy: Sync {
    /// Trainable variables with stable names (they key the optimizer state).
    fn named_vars(&self) -> Vec<(String, Var)>;

    /// Differentiable per-token log-probs and entropies of `responses` given `prompts`, for a
    /// batch of `(prompt_ids, response_ids)` pairs: returns `(logprobs [B, R], entropy [B, R],
    /// mask [B, R])` with `R` = longest response, right-padded with mask 0. Log-probs must be
    /// computed at the same temperature as the rollouts' `sample_logprobs`.
    fn response_logprobs(
        &self,
        batch: &[(Vec<u32>, Vec<u32>)],
    ) -> Result<(Tensor, Tensor, Tensor), RlError>;
}

/// Where the "old" log-probs of the importance ratio come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OldLogprobs {
    /// The rollouts' `sample_logprobs` (the policy version that generated them): the ratio then
    /// also corrects for staleness in asynchronous pipelines. Default.
    #[default]
    Sampler,
    /// Recomputed with the current weights before the first update of the call (verl's
    /// `old_log_prob`): one extra forward over the batch.
    Recompute,
}

/// Learner settings (`[learner]` in TOML). `Default` = AZR paper branch: TRR++, lr 1e-6
/// constant, AdamW weight decay 0.01, grad clip 1.0, PPO clip 0.2, `token-mean`, entropy 0.001,
/// no KL, one PPO epoch, one mini-batch. See [`LearnerConfig::one_shot_rlvr`] for 1-shot RLVR.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LearnerConfig {
    /// Advantage estimator. Default TRR++.
    pub advantage: AdvantageEstimator,
    /// Policy loss (clip, aggregation, entropy, KL).
    pub loss: PolicyLossConfig,
    /// AdamW hyper-parameters (peak lr, betas, eps, weight decay).
    pub optimizer: AdamWConfig,
    /// Learning-rate schedule. Default constant.
    pub schedule: LrSchedule,
    /// Max global gradient norm; `<= 0` disables clipping. Default 1.0.
    pub grad_clip: f64,
    /// Sequences per forward/backward pass (memory knob; does not change the result). Default 8.
    pub micro_batch_size: usize,
    /// Sequences per optimizer step; `None` (default) = the whole batch, one step per epoch.
    pub mini_batch_size: Option<usize>,
    /// Passes over the batch per call. Default 1.
    pub ppo_epochs: usize,
    /// Source of the old log-probs. Default the sampler's.
    pub old_logprobs: OldLogprobs,
    /// **Control runs only.** Randomly permute the rewards among the rollouts of the same
    /// (task kind, role) key before computing advantages, so the update has the same size and
    /// reward distribution but no information about which sequence earned what. A gain over
    /// such a control is attributable to the reward signal. Default false.
    pub shuffle_rewards: bool,
    /// Off-policy correction for stale rollouts (`[learner.off_policy]`, see
    /// [`crate::rl::offpolicy`]). With a correction the PPO ratio is taken against the proximal
    /// policy (the weights at the start of the call) and the behaviour policy is corrected by an
    /// importance weight; `old_logprobs` is then ignored. Default none.
    pub off_policy: OffPolicyCorrection,
}

impl Default for LearnerConfig {
    fn default() -> Self {
        Self {
            advantage: AdvantageEstimator::TaskRelativeReinforcePlusPlus,
            loss: PolicyLossConfig::default(),
            optimizer: AdamWConfig::default(),
            schedule: LrSchedule::Constant,
            grad_clip: 1.0,
            micro_batch_size: 8,
            mini_batch_size: None,
            ppo_epochs: 1,
            old_logprobs: OldLogprobs::Sampler,
            shuffle_rewards: false,
            off_policy: OffPolicyCorrection::None,
        }
    }
}

impl LearnerConfig {
    /// AZR defaults (paper branch, paper Table 3); the same as `Default`.
    pub fn azr() -> Self {
        Self::default()
    }

    /// 1-shot RLVR defaults (Wang et al. 2025, `training_1.5b_pi1_r128.sh` + fork yaml): GRPO
    /// with std normalisation, lr 1e-6 constant, weight decay 0.01, grad clip 1.0, clip 0.2,
    /// `token-mean`, KL loss k3 with coefficient 0.001, entropy bonus 0.001.
    pub fn one_shot_rlvr() -> Self {
        Self {
            advantage: AdvantageEstimator::Grpo { norm_by_std: true },
            loss: PolicyLossConfig {
                kl_coef: 0.001,
                kl_estimator: KlEstimator::K3,
                entropy_coeff: 0.001,
                ..PolicyLossConfig::default()
            },
            ..Self::default()
        }
    }

    /// Checks every value; the error names the offending key.
    pub fn validate(&self) -> Result<(), RlError> {
        self.loss.validate()?;
        self.optimizer.validate()?;
        self.schedule.validate()?;
        if self.micro_batch_size == 0 {
            return Err(RlError::Config {
                key: "micro_batch_size",
                reason: "must be >= 1".into(),
            });
        }
        if self.mini_batch_size == Some(0) {
            return Err(RlError::Config {
                key: "mini_batch_size",
                reason: "must be >= 1 (or absent for the whole batch)".into(),
            });
        }
        if self.ppo_epochs == 0 {
            return Err(RlError::Config {
                key: "ppo_epochs",
                reason: "must be >= 1".into(),
            });
        }
        if !self.grad_clip.is_finite() {
            return Err(RlError::Config {
                key: "grad_clip",
                reason: "must be finite".into(),
            });
        }
        self.off_policy
            .validate()
            .map_err(|reason| RlError::Config {
                key: "off_policy.cap",
                reason,
            })?;
        Ok(())
    }
}

/// Reward statistics of one `(task, role)` key in a learner batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyStats {
    /// Task kind.
    pub task: TaskKind,
    /// Role.
    pub role: Role,
    /// Rollouts with this key.
    pub count: u32,
    /// Mean reward of those rollouts.
    pub reward_mean: f32,
    /// Mean advantage of those rollouts (per rollout, not token-weighted).
    pub advantage_mean: f32,
}

/// What one [`Learner::step`] did (verl metric names in brackets). Loss metrics are averaged
/// over the optimizer steps of the call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LearnerStats {
    /// PPO surrogate loss (`actor/pg_loss`).
    pub pg_loss: f32,
    /// KL to the reference under the configured estimator (`actor/kl_loss`); 0 without reference.
    pub kl: f32,
    /// Aggregated entropy (`actor/entropy`).
    pub entropy: f32,
    /// Fraction of tokens clipped (`actor/pg_clipfrac`).
    pub clip_frac: f32,
    /// Fraction of tokens at the dual-clip bound (`actor/pg_clipfrac_lower`).
    pub clip_frac_lower: f32,
    /// Token-mean of `old_logp - logp` (`actor/ppo_kl`).
    pub approx_kl: f32,
    /// Pre-clip global gradient norm (`actor/grad_norm`), mean over the optimizer steps.
    pub grad_norm: f32,
    /// Learning rate of the last update (`actor/lr`).
    pub lr: f64,
    /// Optimizer steps applied.
    pub optimizer_steps: u32,
    /// Optimizer steps skipped because the gradient norm was not finite.
    pub skipped_steps: u32,
    /// Mean sequence reward (`critic/score/mean`).
    pub reward_mean: f32,
    /// Population std of the sequence rewards.
    pub reward_std: f32,
    /// Token-weighted mean of the advantages (`critic/advantages/mean`).
    pub advantage_mean: f32,
    /// Token-weighted population std of the advantages.
    pub advantage_std: f32,
    /// Mean response length in tokens (`response_length/mean`).
    pub response_len_mean: f32,
    /// Longest response (`response_length/max`).
    pub response_len_max: u32,
    /// Response tokens trained on.
    pub tokens: u64,
    /// Sequences trained on.
    pub sequences: u32,
    /// Rollouts dropped because their response was empty.
    pub dropped_empty: u32,
    /// Mean of `policy version before the call - rollout.policy_version`.
    pub staleness_mean: f32,
    /// Max staleness in the batch.
    pub staleness_max: u64,
    /// Policy version after the call (= optimizer steps taken so far).
    pub policy_version: PolicyVersion,
    /// Per `(task, role)` reward and advantage means, sorted by key.
    pub per_key: Vec<KeyStats>,
    /// Importance weights of the off-policy correction over all response tokens (mean 1,
    /// std 0, ESS 1 without a correction).
    pub importance: WeightStats,
}

/// Loss metrics of one mini-batch, summed over its micro-batches (each already normalised by the
/// mini-batch totals, so the sums are the mini-batch values).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct MiniBatchStats {
    /// Total loss value.
    pub loss: f32,
    /// PPO surrogate loss.
    pub pg_loss: f32,
    /// Aggregated KL.
    pub kl: f32,
    /// Aggregated entropy.
    pub entropy: f32,
    /// Clip fraction.
    pub clip_frac: f32,
    /// Dual-clip fraction.
    pub clip_frac_lower: f32,
    /// Token-mean `old_logp - logp`.
    pub approx_kl: f32,
}

/// The learner: owns the optimizer and its step counter (= the policy version).
#[derive(Debug)]
pub struct Learner {
    cfg: LearnerConfig,
    opt: AdamW,
}

/// What [`shard_loss`] reads: the policy, the shard's rollouts and their row offset `lo` in
/// the mini-batch, and the mini-batch's advantages, old log-probs, reference and correction.
struct ShardInputs<'a, P: TrainablePolicy + ?Sized> {
    policy: &'a P,
    chunk: &'a [ScoredRollout],
    lo: usize,
    advantages: &'a [f32],
    old_logprobs: Option<&'a [Vec<f32>]>,
    reference: Option<&'a dyn TrainablePolicy>,
    correction: OffPolicyCorrection,
}

/// The policy loss of one shard of a micro-batch (normalised by the mini-batch's `scale`),
/// its loss metrics (the `loss` field left at 0) and its tokens' behaviour weights (row-major;
/// empty without an active correction).
fn shard_loss<P: TrainablePolicy + ?Sized>(
    inp: ShardInputs<'_, P>,
    loss_cfg: &PolicyLossConfig,
    scale: LossScale,
) -> Result<(Tensor, (MiniBatchStats, Vec<f32>)), RlError> {
    let ShardInputs {
        policy,
        chunk,
        lo,
        advantages,
        old_logprobs,
        reference,
        correction,
    } = inp;
    let mut weights_out = Vec::new();
    let pairs: Vec<(Vec<u32>, Vec<u32>)> = chunk
        .iter()
        .map(|r| (r.prompt_ids.clone(), r.response_ids.clone()))
        .collect();
    let (logp, entropy, mask) = policy.response_logprobs(&pairs)?;
    let r_max = chunk
        .iter()
        .map(|r| r.response_ids.len())
        .max()
        .unwrap_or(0);
    if logp.dims() != [chunk.len(), r_max] || mask.dims() != logp.dims() {
        return Err(RlError::Shape {
            what: "TrainablePolicy::response_logprobs",
            detail: format!(
                "logprobs {:?}, mask {:?}, expected [{}, {r_max}]",
                logp.dims(),
                mask.dims(),
                chunk.len()
            ),
        });
    }
    let device = logp.device().clone();
    let forward_rows: Vec<Vec<f32>>;
    let old_rows: Vec<&[f32]> = match old_logprobs {
        Some(o) => o[lo..lo + chunk.len()].iter().map(Vec::as_slice).collect(),
        None => {
            let rows = logp
                .detach()
                .to_dtype(candle_core::DType::F32)?
                .to_vec2::<f32>()?;
            forward_rows = chunk
                .iter()
                .zip(rows)
                .map(|(r, row)| row[..r.response_ids.len()].to_vec())
                .collect();
            forward_rows.iter().map(Vec::as_slice).collect()
        }
    };
    let old = match old_logprobs {
        Some(_) => pad_rows(&old_rows, r_max, &device)?,
        // The proximal log-probs are the forward's own: the ratio is exactly 1.
        None => logp.detach(),
    };
    let adv_rows: Vec<Vec<f32>> = chunk
        .iter()
        .zip(&advantages[lo..lo + chunk.len()])
        .zip(&old_rows)
        .map(|((r, &a), prox)| {
            if correction.is_active() {
                let w = offpolicy::token_weights(correction, prox, &r.sample_logprobs);
                weights_out.extend_from_slice(&w);
                w.into_iter().map(|w| a * w).collect()
            } else {
                vec![a; r.response_ids.len()]
            }
        })
        .collect();
    let adv_refs: Vec<&[f32]> = adv_rows.iter().map(Vec::as_slice).collect();
    let adv = pad_rows(&adv_refs, r_max, &device)?;
    let ones: Vec<Vec<f32>> = chunk
        .iter()
        .map(|r| vec![1.0; r.response_ids.len()])
        .collect();
    let ones_refs: Vec<&[f32]> = ones.iter().map(Vec::as_slice).collect();
    let own_mask = pad_rows(&ones_refs, r_max, &device)?;
    let policy_tokens = mask
        .to_dtype(candle_core::DType::F32)?
        .sum_all()?
        .to_scalar::<f32>()?;
    let own_tokens: usize = chunk.iter().map(|r| r.response_ids.len()).sum();
    if (policy_tokens - own_tokens as f32).abs() > 0.5 {
        return Err(RlError::Shape {
            what: "TrainablePolicy::response_logprobs",
            detail: format!("mask covers {policy_tokens} tokens, responses have {own_tokens}"),
        });
    }
    let ref_logp = match reference {
        Some(r) => Some(r.response_logprobs(&pairs)?.0.detach()),
        None => None,
    };
    let out = policy_loss(
        &PolicyLossInputs {
            logprobs: &logp,
            old_logprobs: &old,
            advantages: &adv,
            mask: &own_mask,
            entropy: Some(&entropy),
            ref_logprobs: ref_logp.as_ref(),
        },
        loss_cfg,
        scale,
    )?;
    let stats = MiniBatchStats {
        loss: 0.0,
        pg_loss: out.pg_loss,
        kl: out.kl,
        entropy: out.entropy,
        clip_frac: out.clip_frac,
        clip_frac_lower: out.clip_frac_lower,
        approx_kl: out.approx_kl,
    };
    Ok((out.loss, (stats, weights_out)))
}

/// Pads rows of per-token values to `[B, r]`; returns the tensor on `device`.
fn pad_rows(rows: &[&[f32]], r: usize, device: &candle_core::Device) -> Result<Tensor, RlError> {
    let mut flat = vec![0.0f32; rows.len() * r];
    for (b, row) in rows.iter().enumerate() {
        flat[b * r..b * r + row.len()].copy_from_slice(row);
    }
    Ok(Tensor::from_vec(flat, (rows.len(), r), device)?)
}

impl Learner {
    /// A learner training `policy`'s variables with `cfg` (validated here).
    pub fn new<P: TrainablePolicy + ?Sized>(
        cfg: LearnerConfig,
        policy: &P,
    ) -> Result<Self, RlError> {
        Self::with_vars(cfg, policy.named_vars())
    }

    /// A learner over explicit named variables.
    pub fn with_vars(cfg: LearnerConfig, vars: Vec<(String, Var)>) -> Result<Self, RlError> {
        cfg.validate()?;
        let opt = AdamW::new(vars, cfg.optimizer)?;
        Ok(Self { cfg, opt })
    }

    /// The configuration.
    pub fn config(&self) -> &LearnerConfig {
        &self.cfg
    }

    /// The optimizer (for checkpoints: `optimizer().state_dict()`).
    pub fn optimizer(&self) -> &AdamW {
        &self.opt
    }

    /// Mutable optimizer access (to restore a checkpoint with `load_state_dict`).
    pub fn optimizer_mut(&mut self) -> &mut AdamW {
        &mut self.opt
    }

    /// Optimizer steps taken so far; the current policy version.
    pub fn step_count(&self) -> u64 {
        self.opt.step_count()
    }

    /// Learning rate the next update will use.
    pub fn current_lr(&self) -> f64 {
        self.cfg.optimizer.lr * self.cfg.schedule.multiplier(self.opt.step_count())
    }

    /// One learner call: advantages, then `ppo_epochs` passes over the mini-batches, each ending
    /// in one clipped AdamW update. `reference` is required when `loss.kl_coef > 0` and, when
    /// given, also feeds the `kl` metric. Rollouts with an empty response are dropped.
    pub fn step<P: TrainablePolicy + ?Sized>(
        &mut self,
        policy: &P,
        rollouts: &[ScoredRollout],
        reference: Option<&dyn TrainablePolicy>,
    ) -> Result<LearnerStats, RlError> {
        for (i, r) in rollouts.iter().enumerate() {
            if r.sample_logprobs.len() != r.response_ids.len() {
                return Err(RlError::Shape {
                    what: "Learner::step",
                    detail: format!(
                        "rollout {i}: {} sample_logprobs for {} response tokens",
                        r.sample_logprobs.len(),
                        r.response_ids.len()
                    ),
                });
            }
        }
        let kept: Vec<ScoredRollout> = rollouts
            .iter()
            .filter(|r| !r.response_ids.is_empty())
            .cloned()
            .collect();
        let dropped_empty = (rollouts.len() - kept.len()) as u32;
        if dropped_empty > 0 {
            tracing::warn!(
                dropped_empty,
                "learner dropped rollouts with empty responses"
            );
        }
        if kept.is_empty() {
            return Err(RlError::EmptyBatch("no rollout with a non-empty response"));
        }
        if self.cfg.loss.kl_coef > 0.0 && reference.is_none() {
            return Err(RlError::MissingReference);
        }
        let kept = if self.cfg.shuffle_rewards {
            shuffle_within_keys(kept, self.opt.step_count())
        } else {
            kept
        };
        let advantages = advantage::compute(self.cfg.advantage, &kept)?;
        let version_before = self.opt.step_count();
        let n = kept.len();
        let mini = self.cfg.mini_batch_size.unwrap_or(n).min(n);
        let correction = self.cfg.off_policy;
        // With a correction, the proximal policy is the weights at the start of this call. One
        // pass over one mini-batch: they are the weights of the forward itself (no extra pass).
        let single_pass = self.cfg.ppo_epochs == 1 && mini == n;
        let (old, prox_in_forward): (Vec<Vec<f32>>, bool) = if correction.is_active() {
            if single_pass {
                (Vec::new(), true)
            } else {
                (self.recompute_logprobs(policy, &kept)?, false)
            }
        } else {
            let old = match self.cfg.old_logprobs {
                OldLogprobs::Sampler => kept.iter().map(|r| r.sample_logprobs.clone()).collect(),
                OldLogprobs::Recompute => self.recompute_logprobs(policy, &kept)?,
            };
            (old, false)
        };
        let mut all_weights: Vec<f32> = Vec::new();
        let mut sums = MiniBatchStats::default();
        let (mut grad_norm_sum, mut steps, mut skipped, mut lr) = (0.0f64, 0u32, 0u32, 0.0f64);
        for _epoch in 0..self.cfg.ppo_epochs {
            for start in (0..n).step_by(mini) {
                let end = (start + mini).min(n);
                let (grads, s, w) = self.compute_gradients_corrected(
                    policy,
                    &kept[start..end],
                    &advantages[start..end],
                    if prox_in_forward {
                        None
                    } else {
                        Some(&old[start..end])
                    },
                    reference,
                    correction,
                )?;
                all_weights.extend(w);
                let norm = grads.global_norm()?;
                sums.loss += s.loss;
                sums.pg_loss += s.pg_loss;
                sums.kl += s.kl;
                sums.entropy += s.entropy;
                sums.clip_frac += s.clip_frac;
                sums.clip_frac_lower += s.clip_frac_lower;
                sums.approx_kl += s.approx_kl;
                if !norm.is_finite() {
                    tracing::warn!(grad_norm = norm, "non-finite gradient norm: update skipped");
                    skipped += 1;
                    continue;
                }
                lr = self.current_lr();
                let coef = clip_coefficient(norm, self.cfg.grad_clip);
                self.opt.step(&grads, lr, coef)?;
                grad_norm_sum += norm;
                steps += 1;
            }
        }
        let passes = (steps + skipped).max(1) as f32;
        let stats = self.batch_stats(&kept, &advantages, version_before);
        Ok(LearnerStats {
            importance: offpolicy::weight_stats(&all_weights),
            pg_loss: sums.pg_loss / passes,
            kl: sums.kl / passes,
            entropy: sums.entropy / passes,
            clip_frac: sums.clip_frac / passes,
            clip_frac_lower: sums.clip_frac_lower / passes,
            approx_kl: sums.approx_kl / passes,
            grad_norm: (grad_norm_sum / f64::from(steps.max(1))) as f32,
            lr,
            optimizer_steps: steps,
            skipped_steps: skipped,
            dropped_empty,
            policy_version: self.opt.step_count(),
            ..stats
        })
    }

    /// Current-policy log-probs of every rollout's response, detached, in micro-batches.
    fn recompute_logprobs<P: TrainablePolicy + ?Sized>(
        &self,
        policy: &P,
        rollouts: &[ScoredRollout],
    ) -> Result<Vec<Vec<f32>>, RlError> {
        let mut out = Vec::with_capacity(rollouts.len());
        for chunk in rollouts.chunks(self.cfg.micro_batch_size) {
            let pairs: Vec<(Vec<u32>, Vec<u32>)> = chunk
                .iter()
                .map(|r| (r.prompt_ids.clone(), r.response_ids.clone()))
                .collect();
            let (logp, _, _) = policy.response_logprobs(&pairs)?;
            let rows = logp
                .detach()
                .to_dtype(candle_core::DType::F32)?
                .to_vec2::<f32>()?;
            for (r, row) in chunk.iter().zip(rows) {
                out.push(row[..r.response_ids.len()].to_vec());
            }
        }
        Ok(out)
    }

    /// Accumulated gradient of the loss of one mini-batch (`rollouts`, their per-rollout
    /// `advantages` and per-token `old_logprobs`), computed in micro-batches of
    /// `micro_batch_size`; equal to the gradient of the whole mini-batch's loss.
    pub fn compute_gradients<P: TrainablePolicy + ?Sized>(
        &self,
        policy: &P,
        rollouts: &[ScoredRollout],
        advantages: &[f32],
        old_logprobs: &[Vec<f32>],
        reference: Option<&dyn TrainablePolicy>,
    ) -> Result<(Gradients, MiniBatchStats), RlError> {
        let (g, s, _) = self.compute_gradients_corrected(
            policy,
            rollouts,
            advantages,
            Some(old_logprobs),
            reference,
            OffPolicyCorrection::None,
        )?;
        Ok((g, s))
    }

    /// [`Learner::compute_gradients`] with an off-policy correction
    /// ([`crate::rl::offpolicy`]). `old_logprobs` are the ratio's denominator: the proximal
    /// log-probs under a correction, or `None` to take them from the forward itself (detached:
    /// one PPO pass, where the proximal policy is the current weights). With an active
    /// `correction` each token's advantage is multiplied by its behaviour weight
    /// `w(prox, rollout.sample_logprobs)`. Also returns every token's weight (row-major).
    pub fn compute_gradients_corrected<P: TrainablePolicy + ?Sized>(
        &self,
        policy: &P,
        rollouts: &[ScoredRollout],
        advantages: &[f32],
        old_logprobs: Option<&[Vec<f32>]>,
        reference: Option<&dyn TrainablePolicy>,
        correction: OffPolicyCorrection,
    ) -> Result<(Gradients, MiniBatchStats, Vec<f32>), RlError> {
        if advantages.len() != rollouts.len()
            || old_logprobs.is_some_and(|o| o.len() != rollouts.len())
        {
            return Err(RlError::Shape {
                what: "Learner::compute_gradients",
                detail: format!(
                    "{} rollouts, {} advantages, {} old log-prob rows",
                    rollouts.len(),
                    advantages.len(),
                    old_logprobs.map_or(rollouts.len(), <[_]>::len)
                ),
            });
        }
        let vars = self.opt.vars();
        let scale = LossScale {
            tokens: rollouts.iter().map(|r| r.response_ids.len()).sum::<usize>() as f64,
            seqs: rollouts.len() as f64,
        };
        let mut grads = Gradients::empty(vars.len());
        let mut stats = MiniBatchStats::default();
        let mut weights_out = Vec::new();
        let mb = self.cfg.micro_batch_size;
        let loss_cfg = &self.cfg.loss;
        // Where the weights live decides the sharding (one shard on an accelerator).
        let device = vars
            .first()
            .map_or(candle_core::Device::Cpu, |(_, v)| v.device().clone());
        for (c, micro) in rollouts.chunks(mb).enumerate() {
            // Data parallel within the micro-batch: one shard of rows per compute thread, each
            // normalised by the mini-batch's `scale`, so shard losses and gradients sum exactly
            // as micro-batches do.
            let shards = shard_ranges(micro.len(), train_shards(micro.len(), &device));
            let (g, outs) = sharded_gradients(vars, shards.len(), |s| {
                let rows = shards[s].clone();
                shard_loss(
                    ShardInputs {
                        policy,
                        chunk: &micro[rows.clone()],
                        lo: c * mb + rows.start,
                        advantages,
                        old_logprobs,
                        reference,
                        correction,
                    },
                    loss_cfg,
                    scale,
                )
            })?;
            grads.add(g)?;
            for o in outs {
                let (s, w) = o.value;
                stats.loss += o.loss;
                stats.pg_loss += s.pg_loss;
                stats.kl += s.kl;
                stats.entropy += s.entropy;
                stats.clip_frac += s.clip_frac;
                stats.clip_frac_lower += s.clip_frac_lower;
                stats.approx_kl += s.approx_kl;
                weights_out.extend(w);
            }
        }
        Ok((grads, stats, weights_out))
    }

    /// Batch-level statistics (rewards, advantages, lengths, staleness, per-key means); the loss
    /// fields are left at 0 for the caller to fill.
    fn batch_stats(
        &self,
        rollouts: &[ScoredRollout],
        advantages: &[f32],
        version: PolicyVersion,
    ) -> LearnerStats {
        let n = rollouts.len() as f64;
        let rewards: Vec<f64> = rollouts.iter().map(|r| f64::from(r.reward)).collect();
        let reward_mean = rewards.iter().sum::<f64>() / n;
        let reward_var = rewards
            .iter()
            .map(|r| (r - reward_mean).powi(2))
            .sum::<f64>()
            / n;
        let lens: Vec<f64> = rollouts
            .iter()
            .map(|r| r.response_ids.len() as f64)
            .collect();
        let tokens = lens.iter().sum::<f64>();
        let adv_mean = advantages
            .iter()
            .zip(&lens)
            .map(|(&a, &l)| f64::from(a) * l)
            .sum::<f64>()
            / tokens;
        let adv_var = advantages
            .iter()
            .zip(&lens)
            .map(|(&a, &l)| (f64::from(a) - adv_mean).powi(2) * l)
            .sum::<f64>()
            / tokens;
        let stale: Vec<u64> = rollouts
            .iter()
            .map(|r| version.saturating_sub(r.policy_version))
            .collect();
        let mut per_key: BTreeMap<(TaskKind, Role), (u32, f64, f64)> = BTreeMap::new();
        for (r, &a) in rollouts.iter().zip(advantages) {
            let e = per_key.entry((r.task, r.role)).or_insert((0, 0.0, 0.0));
            e.0 += 1;
            e.1 += f64::from(r.reward);
            e.2 += f64::from(a);
        }
        LearnerStats {
            pg_loss: 0.0,
            kl: 0.0,
            entropy: 0.0,
            clip_frac: 0.0,
            clip_frac_lower: 0.0,
            approx_kl: 0.0,
            grad_norm: 0.0,
            lr: 0.0,
            optimizer_steps: 0,
            skipped_steps: 0,
            reward_mean: reward_mean as f32,
            reward_std: reward_var.sqrt() as f32,
            advantage_mean: adv_mean as f32,
            advantage_std: adv_var.sqrt() as f32,
            response_len_mean: (tokens / n) as f32,
            response_len_max: rollouts
                .iter()
                .map(|r| r.response_ids.len() as u32)
                .max()
                .unwrap_or(0),
            tokens: tokens as u64,
            sequences: rollouts.len() as u32,
            dropped_empty: 0,
            staleness_mean: (stale.iter().sum::<u64>() as f64 / n) as f32,
            staleness_max: stale.iter().copied().max().unwrap_or(0),
            policy_version: version,
            per_key: per_key
                .into_iter()
                .map(|((task, role), (count, rs, advs))| KeyStats {
                    task,
                    role,
                    count,
                    reward_mean: (rs / f64::from(count)) as f32,
                    advantage_mean: (advs / f64::from(count)) as f32,
                })
                .collect(),
            importance: WeightStats::default(),
        }
    }
}

/// Permutes the rewards among rollouts sharing a (task, role) key, seeded by the optimizer
/// step so a control run is reproducible (see [`LearnerConfig::shuffle_rewards`]).
fn shuffle_within_keys(mut rollouts: Vec<ScoredRollout>, step: u64) -> Vec<ScoredRollout> {
    let mut keys: Vec<crate::types::BaselineKey> =
        rollouts.iter().map(|r| (r.task, r.role)).collect();
    keys.sort();
    keys.dedup();
    for (k, key) in keys.iter().enumerate() {
        let idx: Vec<usize> = (0..rollouts.len())
            .filter(|&i| (rollouts[i].task, rollouts[i].role) == *key)
            .collect();
        let rewards: Vec<f32> = idx.iter().map(|&i| rollouts[i].reward).collect();
        let seed = step
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .wrapping_add(k as u64);
        let shuffled = advantage::shuffle_rewards(&rewards, seed);
        for (&i, r) in idx.iter().zip(shuffled) {
            rollouts[i].reward = r;
        }
    }
    rollouts
}

#[cfg(test)]
mod shuffle_tests {
    use super::*;
    use crate::types::{Role, TaskKind};

    fn r(task: TaskKind, role: Role, reward: f32) -> ScoredRollout {
        ScoredRollout {
            prompt_ids: vec![1],
            response_ids: vec![2],
            sample_logprobs: vec![-1.0],
            reward,
            task,
            role,
            group: 0,
            policy_version: 0,
        }
    }

    #[test]
    fn shuffling_keeps_each_keys_multiset_of_rewards() {
        let mut v = Vec::new();
        for i in 0..16 {
            v.push(r(TaskKind::Deduction, Role::Solve, i as f32));
            v.push(r(TaskKind::Abduction, Role::Propose, -(i as f32)));
        }
        let out = shuffle_within_keys(v.clone(), 3);
        let mut moved = 0;
        for key in [
            (TaskKind::Deduction, Role::Solve),
            (TaskKind::Abduction, Role::Propose),
        ] {
            let mut a: Vec<f32> = v
                .iter()
                .filter(|x| (x.task, x.role) == key)
                .map(|x| x.reward)
                .collect();
            let mut b: Vec<f32> = out
                .iter()
                .filter(|x| (x.task, x.role) == key)
                .map(|x| x.reward)
                .collect();
            moved += a.iter().zip(&b).filter(|(x, y)| x != y).count();
            a.sort_by(f32::total_cmp);
            b.sort_by(f32::total_cmp);
            assert_eq!(a, b, "rewards must only move within their key");
        }
        assert!(
            moved > 8,
            "a permutation of 16 distinct values should move most of them"
        );
        assert_eq!(
            shuffle_within_keys(v.clone(), 3),
            out,
            "seeded: reproducible"
        );
    }
}
