//! The policy loss: PPO clipped surrogate (clip-higher, optional dual-clip), loss aggregation
//! modes, entropy bonus and KL-to-reference loss, on candle tensors.
//!
//! All token tensors have shape `[B, T]` (`B` sequences, `T` = longest response, right-padded)
//! with a `{0, 1}` response mask of the same shape. Everything is differentiable with respect to
//! the current log-probs (and the entropy tensor); old log-probs, advantages and reference
//! log-probs are treated as constants (they should be detached).
//!
//! The total loss is verl's `dp_actor` objective
//! `L = agg(pg) - entropy_coeff * agg(H) + kl_coef * agg(KL)`
//! (1-shot RLVR paper: `L_PG + beta L_KL + alpha L_Ent` with `beta = 0.001`, `alpha = -0.001`).

use candle_core::{DType, Tensor, D};
use serde::{Deserialize, Serialize};

use crate::rl::RlError;

/// How the `[B, T]` loss matrix is reduced to a scalar (verl `agg_loss`, `loss_agg_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum LossAggMode {
    /// `sum(l * m) / sum(m)`: every response token weighs the same (verl default, AZR, 1-shot RLVR).
    #[default]
    TokenMean,
    /// `mean_b( sum_t(l * m) / sum_t(m) )`: per-sequence mean, then mean over sequences
    /// (the `1/|o|` of the GRPO/AZR paper objectives).
    SeqMeanTokenMean,
    /// `mean_b( sum_t(l * m) )`: per-sequence sum, then mean over sequences.
    SeqMeanTokenSum,
}

/// KL estimator between the current policy and the reference, per token, from log-probs only
/// (Schulman, "Approximating KL divergence"; verl `kl_penalty`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum KlEstimator {
    /// k1 (`"kl"`): `logp - ref_logp`.
    #[serde(rename = "k1", alias = "kl")]
    K1,
    /// k2 (`"mse"`): `0.5 * (logp - ref_logp)^2`.
    #[serde(rename = "k2", alias = "mse")]
    K2,
    /// k3 (`"low_var_kl"`): with `x = clamp(ref_logp - logp, -20, 20)`,
    /// `clamp(exp(x) - x - 1, -10, 10)`. 1-shot RLVR uses this (paper Eq. 5). Default.
    #[default]
    #[serde(rename = "k3", alias = "low_var_kl")]
    K3,
}

/// Policy-loss settings (`[learner.loss]` in TOML). Defaults are AZR's paper branch
/// (`LeapLabTHU/Absolute-Zero-Reasoner@paper`, paper Table 3): clip 0.2/0.2, no dual-clip,
/// `token-mean`, entropy coefficient 0.001, no KL loss.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyLossConfig {
    /// Lower clip: the ratio is clipped at `1 - clip_ratio_low`. Default 0.2.
    pub clip_ratio_low: f32,
    /// Upper clip: the ratio is clipped at `1 + clip_ratio_high`. Default 0.2
    /// (AZR master and DAPO use 0.28: "clip-higher").
    pub clip_ratio_high: f32,
    /// Dual-clip constant `c > 1` (Ye et al. 2019): for negative advantages the loss is capped at
    /// `-A * c`. `None` (default) disables it; verl >= 0.3 defaults to 3.0, the AZR paper branch
    /// and the 1-shot RLVR fork have no dual-clip.
    pub clip_ratio_c: Option<f32>,
    /// Loss aggregation. Default `token-mean`.
    pub loss_agg_mode: LossAggMode,
    /// Entropy bonus coefficient (subtracted from the loss). Default 0.001 (AZR paper branch and
    /// 1-shot RLVR; AZR master uses 0.0).
    pub entropy_coeff: f32,
    /// KL-to-reference loss coefficient. Default 0.0 (off, AZR); 1-shot RLVR uses 0.001.
    pub kl_coef: f32,
    /// KL estimator used for the KL loss and the `kl` metric. Default k3 (`low_var_kl`).
    pub kl_estimator: KlEstimator,
}

impl Default for PolicyLossConfig {
    fn default() -> Self {
        Self {
            clip_ratio_low: 0.2,
            clip_ratio_high: 0.2,
            clip_ratio_c: None,
            loss_agg_mode: LossAggMode::TokenMean,
            entropy_coeff: 0.001,
            kl_coef: 0.0,
            kl_estimator: KlEstimator::K3,
        }
    }
}

impl PolicyLossConfig {
    /// Checks value ranges; the error names the offending key.
    pub fn validate(&self) -> Result<(), RlError> {
        let bad = |key, reason: &str| {
            Err(RlError::Config {
                key,
                reason: reason.to_string(),
            })
        };
        if !(0.0..1.0).contains(&self.clip_ratio_low) {
            return bad("clip_ratio_low", "must be in [0, 1)");
        }
        if !(self.clip_ratio_high >= 0.0 && self.clip_ratio_high.is_finite()) {
            return bad("clip_ratio_high", "must be finite and >= 0");
        }
        if let Some(c) = self.clip_ratio_c {
            if !(c > 1.0 && c.is_finite()) {
                return bad("clip_ratio_c", "must be a finite number > 1");
            }
        }
        if !self.entropy_coeff.is_finite() {
            return bad("entropy_coeff", "must be finite");
        }
        if !(self.kl_coef >= 0.0 && self.kl_coef.is_finite()) {
            return bad("kl_coef", "must be finite and >= 0");
        }
        Ok(())
    }
}

/// Normalisers of the aggregation, so that a micro-batch's loss is its exact share of the
/// full (mini-)batch loss: `tokens` = response tokens in the full batch, `seqs` = sequences in
/// the full batch. Summing the micro-batch losses computed with the full batch's scale gives the
/// full-batch loss for every [`LossAggMode`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LossScale {
    /// Total number of response tokens (sum of the mask) of the full batch.
    pub tokens: f64,
    /// Total number of sequences of the full batch.
    pub seqs: f64,
}

impl LossScale {
    /// The scale of a single batch given by its `[B, T]` mask (no micro-batching).
    pub fn of_mask(mask: &Tensor) -> Result<Self, RlError> {
        let (b, _) = mask.dims2()?;
        let tokens = f64::from(mask.to_dtype(DType::F32)?.sum_all()?.to_scalar::<f32>()?);
        Ok(Self {
            tokens,
            seqs: b as f64,
        })
    }
}

/// Reduces a `[B, T]` loss matrix to a scalar under `mode` (verl `agg_loss`), dividing by the
/// totals in `scale` (see [`LossScale`]). In `seq-mean-token-mean` a sequence with an empty mask
/// contributes 0 (its token count is clamped to 1; verl would produce NaN).
pub fn agg_loss(
    loss: &Tensor,
    mask: &Tensor,
    mode: LossAggMode,
    scale: LossScale,
) -> Result<Tensor, RlError> {
    let masked = (loss * mask)?;
    let out = match mode {
        LossAggMode::TokenMean => (masked.sum_all()? / scale.tokens.max(1.0))?,
        LossAggMode::SeqMeanTokenSum => (masked.sum_all()? / scale.seqs.max(1.0))?,
        LossAggMode::SeqMeanTokenMean => {
            let per_seq = masked.sum(D::Minus1)?;
            let counts = mask.sum(D::Minus1)?.clamp(1f32, f32::MAX)?;
            ((per_seq / counts)?.sum_all()? / scale.seqs.max(1.0))?
        }
    };
    Ok(out)
}

/// Per-token KL estimate `[B, T]` between the current policy (`logprobs`) and the reference
/// (`ref_logprobs`); see [`KlEstimator`] for the formulas (verl `kl_penalty`, including its
/// `±20` clamp of the log-ratio and `±10` clamp of k3).
pub fn kl_penalty(
    logprobs: &Tensor,
    ref_logprobs: &Tensor,
    estimator: KlEstimator,
) -> Result<Tensor, RlError> {
    let out = match estimator {
        KlEstimator::K1 => (logprobs - ref_logprobs)?,
        KlEstimator::K2 => ((logprobs - ref_logprobs)?.sqr()? * 0.5)?,
        KlEstimator::K3 => {
            let x = (ref_logprobs - logprobs)?.clamp(-20f32, 20f32)?;
            ((x.exp()? - &x)? - 1.0)?.clamp(-10f32, 10f32)?
        }
    };
    Ok(out)
}

/// Per-token PPO clipped surrogate loss `[B, T]` (verl `compute_policy_loss_vanilla`):
///
/// `r = exp(clamp(logp - old_logp, -20, 20))`,
/// `l = max(-A r, -A clip(r, 1 - eps_low, 1 + eps_high))`,
/// and with dual-clip `c`: `l = min(l, -A c)` where `A < 0`.
///
/// Returns `(loss, clipped, clipped_lower, neg_log_ratio)`: the loss matrix; a `{0,1}` f32 matrix
/// of tokens where the clipped term won (`-A clip(r) > -A r`); a `{0,1}` matrix of tokens where
/// the dual-clip bound was active; and `old_logp - logp` (per-token `approx_kl`).
pub fn ppo_clip_token_loss(
    logprobs: &Tensor,
    old_logprobs: &Tensor,
    advantages: &Tensor,
    cfg: &PolicyLossConfig,
) -> Result<(Tensor, Tensor, Tensor, Tensor), RlError> {
    let neg_kl = (logprobs - old_logprobs)?.clamp(-20f32, 20f32)?;
    let ratio = neg_kl.exp()?;
    let neg_adv = advantages.neg()?;
    let pg1 = (&neg_adv * &ratio)?;
    let clipped_ratio = ratio.clamp(1.0f32 - cfg.clip_ratio_low, 1.0f32 + cfg.clip_ratio_high)?;
    let pg2 = (&neg_adv * clipped_ratio)?;
    let clipped = pg2.gt(&pg1)?.to_dtype(DType::F32)?;
    let clip1 = pg1.maximum(&pg2)?;
    let (loss, lower) = match cfg.clip_ratio_c {
        Some(c) => {
            let pg3 = (&neg_adv * f64::from(c))?;
            let clip2 = clip1.minimum(&pg3)?;
            let negative = advantages.lt(0f32)?;
            let lower = (clip1.gt(&pg3)?.to_dtype(DType::F32)? * negative.to_dtype(DType::F32)?)?;
            (negative.where_cond(&clip2, &clip1)?, lower)
        }
        None => {
            let lower = clip1.zeros_like()?;
            (clip1, lower)
        }
    };
    Ok((loss, clipped, lower, neg_kl.neg()?))
}

/// The tensors one policy-loss evaluation needs; all `[B, T]`, `f32` or convertible.
#[derive(Debug, Clone, Copy)]
pub struct PolicyLossInputs<'a> {
    /// Current-policy log-probs of the response tokens (differentiable).
    pub logprobs: &'a Tensor,
    /// Log-probs under the policy that produced the data (constant).
    pub old_logprobs: &'a Tensor,
    /// Token advantages (constant; usually a per-sequence value times the mask).
    pub advantages: &'a Tensor,
    /// Response mask, 1 on response tokens, 0 on padding.
    pub mask: &'a Tensor,
    /// Per-token entropy of the current policy (differentiable); needed if `entropy_coeff != 0`.
    pub entropy: Option<&'a Tensor>,
    /// Reference-policy log-probs (constant); needed if `kl_coef > 0`.
    pub ref_logprobs: Option<&'a Tensor>,
}

/// Result of [`policy_loss`]: the differentiable scalar loss and the metrics, each already
/// divided by the [`LossScale`] given (so values from micro-batches sum to full-batch values).
#[derive(Debug, Clone)]
pub struct PolicyLossOutput {
    /// Scalar loss to call `backward()` on.
    pub loss: Tensor,
    /// Aggregated PPO surrogate loss (`actor/pg_loss`).
    pub pg_loss: f32,
    /// Fraction of tokens where the clipped term was active (`actor/pg_clipfrac`, token-mean).
    pub clip_frac: f32,
    /// Fraction of tokens where the dual-clip bound was active (`actor/pg_clipfrac_lower`).
    pub clip_frac_lower: f32,
    /// Token-mean of `old_logp - logp` (`actor/ppo_kl`).
    pub approx_kl: f32,
    /// Aggregated entropy (`actor/entropy`); 0 when no entropy tensor was given.
    pub entropy: f32,
    /// Aggregated KL to the reference (`actor/kl_loss`); 0 without reference log-probs.
    pub kl: f32,
    /// Response tokens in this (micro-)batch.
    pub tokens: f32,
}

fn check_shape(what: &'static str, a: &Tensor, b: &Tensor) -> Result<(), RlError> {
    if a.dims() == b.dims() && a.rank() == 2 {
        Ok(())
    } else {
        Err(RlError::Shape {
            what,
            detail: format!("{:?} vs {:?} (both must be [B, T])", a.dims(), b.dims()),
        })
    }
}

/// The full policy loss `agg(pg) - entropy_coeff * agg(H) + kl_coef * agg(KL)`, with every
/// aggregation under `cfg.loss_agg_mode` and `scale` (use [`LossScale::of_mask`] for a single
/// batch). Shapes: all inputs `[B, T]`; output loss is a scalar.
pub fn policy_loss(
    inputs: &PolicyLossInputs<'_>,
    cfg: &PolicyLossConfig,
    scale: LossScale,
) -> Result<PolicyLossOutput, RlError> {
    let f = |t: &Tensor| t.to_dtype(DType::F32);
    let logp = f(inputs.logprobs)?;
    let old = f(inputs.old_logprobs)?;
    let adv = f(inputs.advantages)?;
    let mask = f(inputs.mask)?;
    check_shape("policy_loss old_logprobs", &logp, &old)?;
    check_shape("policy_loss advantages", &logp, &adv)?;
    check_shape("policy_loss mask", &logp, &mask)?;

    let (pg, clipped, lower, neg_log_ratio) = ppo_clip_token_loss(&logp, &old, &adv, cfg)?;
    let mode = cfg.loss_agg_mode;
    let token_mean = |t: &Tensor| -> Result<f32, RlError> {
        let s = agg_loss(t, &mask, LossAggMode::TokenMean, scale)?;
        Ok(s.to_scalar::<f32>()?)
    };
    let pg_loss = agg_loss(&pg, &mask, mode, scale)?;
    let mut loss = pg_loss.clone();

    let mut entropy_value = 0.0f32;
    match inputs.entropy {
        Some(h) => {
            let h = f(h)?;
            check_shape("policy_loss entropy", &logp, &h)?;
            let ent = agg_loss(&h, &mask, mode, scale)?;
            entropy_value = ent.to_scalar::<f32>()?;
            if cfg.entropy_coeff != 0.0 {
                loss = (loss - (ent * f64::from(cfg.entropy_coeff))?)?;
            }
        }
        None if cfg.entropy_coeff != 0.0 => {
            return Err(RlError::Config {
                key: "entropy_coeff",
                reason: "is non-zero but no entropy tensor was given".into(),
            })
        }
        None => {}
    }

    let mut kl_value = 0.0f32;
    match inputs.ref_logprobs {
        Some(r) => {
            let r = f(r)?;
            check_shape("policy_loss ref_logprobs", &logp, &r)?;
            let kl = agg_loss(
                &kl_penalty(&logp, &r, cfg.kl_estimator)?,
                &mask,
                mode,
                scale,
            )?;
            kl_value = kl.to_scalar::<f32>()?;
            if cfg.kl_coef != 0.0 {
                loss = (loss + (kl * f64::from(cfg.kl_coef))?)?;
            }
        }
        None if cfg.kl_coef != 0.0 => return Err(RlError::MissingReference),
        None => {}
    }

    Ok(PolicyLossOutput {
        pg_loss: pg_loss.to_scalar::<f32>()?,
        clip_frac: token_mean(&clipped)?,
        clip_frac_lower: token_mean(&lower)?,
        approx_kl: token_mean(&neg_log_ratio)?,
        entropy: entropy_value,
        kl: kl_value,
        tokens: mask.sum_all()?.to_scalar::<f32>()?,
        loss,
    })
}
