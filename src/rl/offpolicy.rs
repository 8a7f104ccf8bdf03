//! Off-policy correction for asynchronous training with bounded staleness, as pure functions.
//!
//! In a pipeline where generation overlaps the learner's updates, a rollout trained at policy
//! version `v` may have been sampled by an older **behaviour** policy `mu` (version `v - s`,
//! `s` <= the configured staleness `S`). Three log-probs meet per response token `t`:
//!
//! | symbol | meaning | source |
//! |---|---|---|
//! | `log mu_t` | behaviour policy (the weights that sampled the token) | `ScoredRollout::sample_logprobs` |
//! | `log pi_prox_t` | proximal policy: the weights at the start of this learner call | recomputed, detached |
//! | `log pi_theta_t` | the policy being optimised | the differentiable forward |
//!
//! **Decoupled PPO** (AReaL, Fu et al. 2025, Eq. 5) clips the ratio around the proximal policy
//! and corrects for the behaviour policy with an importance weight:
//!
//! `L = - E_t[ w_t * min(r_t A_t, clip(r_t, 1 - eps, 1 + eps) A_t) ]`,
//! `r_t = pi_theta_t / pi_prox_t`, `w_t = pi_prox_t / mu_t`,
//!
//! where tokens with `w_t > cap` are **masked** (`w_t := 0`, AReaL's `behav_imp_weight_cap`).
//!
//! **Truncated importance sampling** (TIS; IMPALA / verl's rollout correction) uses the same
//! objective but **truncates** the weight instead of masking it: `w_t = min(pi_prox_t / mu_t, cap)`
//! (cap 2 by default; 1.5-5 recommended).
//!
//! Since `w_t >= 0`, `w_t * max(-A r, -A clip(r))` = `max(-(w_t A) r, -(w_t A) clip(r))`: the
//! learner applies the weight by scaling the per-token advantage, so the PPO loss code is shared.
//! With one PPO epoch over one mini-batch the proximal policy *is* the current weights, so
//! `pi_prox = stop_gradient(pi_theta)` costs no extra forward pass.
//!
//! Health of the correction ([`WeightStats`], thresholds from verl's rollout-correction docs):
//! mean weight about 1 (warn below 0.5 or above 2), std below 0.5 good and above 1 bad, and the
//! normalised effective sample size `ESS = (sum w)^2 / (n * sum w^2)` in `(0, 1]`, above 0.5
//! good and below 0.3 bad.

use serde::{Deserialize, Serialize};

/// Default weight cap (verl's token-level truncation default; AReaL uses the same order).
pub const DEFAULT_CAP: f32 = 2.0;

/// The off-policy correction the learner applies (`[learner.off_policy]` in TOML,
/// `kind = "none" | "truncated_is" | "decoupled"`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum OffPolicyCorrection {
    /// No correction: the PPO ratio is taken against the behaviour log-probs (or whatever
    /// `old_logprobs` selects). Default of the core learner; exact for on-policy data.
    #[default]
    None,
    /// Truncated importance weights `min(pi_prox / mu, cap)` on the behaviour log-probs.
    TruncatedIs {
        /// Upper bound of the weight (default 2).
        #[serde(default = "default_cap")]
        cap: f32,
    },
    /// AReaL's decoupled PPO: clip around the proximal policy, weight `pi_prox / mu`, tokens
    /// whose weight exceeds `cap` masked out.
    Decoupled {
        /// Tokens with a larger weight are masked (default 2).
        #[serde(default = "default_cap")]
        cap: f32,
    },
}

fn default_cap() -> f32 {
    DEFAULT_CAP
}

impl OffPolicyCorrection {
    /// Whether a correction is applied at all.
    pub fn is_active(self) -> bool {
        !matches!(self, OffPolicyCorrection::None)
    }

    /// Checks the cap; the error text names the key.
    pub fn validate(self) -> Result<(), String> {
        match self {
            OffPolicyCorrection::None => Ok(()),
            OffPolicyCorrection::TruncatedIs { cap } | OffPolicyCorrection::Decoupled { cap } => {
                if cap >= 1.0 && cap.is_finite() {
                    Ok(())
                } else {
                    Err(format!("cap must be a finite number >= 1 (got {cap})"))
                }
            }
        }
    }

    /// The weight of one token from its proximal and behaviour log-probs (1 when inactive).
    pub fn weight(self, log_prox: f32, log_behaviour: f32) -> f32 {
        match self {
            OffPolicyCorrection::None => 1.0,
            OffPolicyCorrection::TruncatedIs { cap } => {
                truncated_is_weight(log_prox, log_behaviour, cap)
            }
            OffPolicyCorrection::Decoupled { cap } => {
                decoupled_weight(log_prox, log_behaviour, cap)
            }
        }
    }
}

/// The raw importance weight `pi_prox / mu = exp(log_prox - log_behaviour)`, with the log-ratio
/// clamped to `[-20, 20]` (as the PPO ratio is) so it stays finite.
pub fn importance_weight(log_prox: f32, log_behaviour: f32) -> f32 {
    (log_prox - log_behaviour).clamp(-20.0, 20.0).exp()
}

/// Truncated importance weight `min(exp(log_prox - log_behaviour), cap)`.
pub fn truncated_is_weight(log_prox: f32, log_behaviour: f32, cap: f32) -> f32 {
    importance_weight(log_prox, log_behaviour).min(cap)
}

/// AReaL's behaviour weight: `exp(log_prox - log_behaviour)`, or 0 (token masked) above `cap`.
pub fn decoupled_weight(log_prox: f32, log_behaviour: f32, cap: f32) -> f32 {
    let w = importance_weight(log_prox, log_behaviour);
    if w <= cap {
        w
    } else {
        0.0
    }
}

/// Per-token weights of one response: `prox[t]`, `behaviour[t]` -> `w[t]` (same length; a
/// length mismatch truncates to the shorter, which the learner never produces).
pub fn token_weights(correction: OffPolicyCorrection, prox: &[f32], behaviour: &[f32]) -> Vec<f32> {
    prox.iter()
        .zip(behaviour)
        .map(|(&p, &b)| correction.weight(p, b))
        .collect()
}

/// Summary statistics of the importance weights of a batch (all response tokens).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct WeightStats {
    /// Mean weight (about 1 when the correction is healthy).
    pub mean: f64,
    /// Population standard deviation of the weights.
    pub std: f64,
    /// Normalised effective sample size `(sum w)^2 / (n sum w^2)`, in `(0, 1]`; 1 when every
    /// weight is equal (on-policy), small when few tokens carry the update.
    pub ess: f64,
    /// Tokens counted.
    pub tokens: usize,
}

impl Default for WeightStats {
    /// The statistics of an on-policy batch: mean 1, std 0, ESS 1, no tokens.
    fn default() -> Self {
        Self {
            mean: 1.0,
            std: 0.0,
            ess: 1.0,
            tokens: 0,
        }
    }
}

/// Mean, population std and normalised ESS of `weights`. An empty slice gives
/// [`WeightStats::default`] (mean 1, std 0, ESS 1); when every weight is 0 (all tokens masked)
/// the ESS is the smallest positive `f64`, so it always lies in `(0, 1]`.
pub fn weight_stats(weights: &[f32]) -> WeightStats {
    if weights.is_empty() {
        return WeightStats::default();
    }
    let n = weights.len() as f64;
    let sum: f64 = weights.iter().map(|&w| f64::from(w)).sum();
    let sum_sq: f64 = weights.iter().map(|&w| f64::from(w).powi(2)).sum();
    let mean = sum / n;
    let var = (sum_sq / n - mean * mean).max(0.0);
    let ess = if sum_sq > 0.0 {
        (sum * sum / (n * sum_sq)).clamp(f64::MIN_POSITIVE, 1.0)
    } else {
        f64::MIN_POSITIVE
    };
    WeightStats {
        mean,
        std: var.sqrt(),
        ess,
        tokens: weights.len(),
    }
}
