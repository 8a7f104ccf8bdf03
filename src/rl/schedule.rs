//! Learning-rate schedules: a multiplier of the peak learning rate per optimizer step.
//!
//! Same formulas as verl's `get_constant_schedule_with_warmup` and
//! `get_cosine_schedule_with_warmup` (HF transformers), where `step` is the number of optimizer
//! steps already taken (`torch.optim.lr_scheduler.LambdaLR` semantics: the first update uses
//! `step = 0`, so with warmup the very first update has learning rate 0, exactly as in verl).

use serde::{Deserialize, Serialize};

use crate::rl::RlError;

/// A learning-rate schedule (`[learner.schedule]` in TOML, `kind = "..."`). Default: constant,
/// as in AZR (paper Table 3) and 1-shot RLVR.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum LrSchedule {
    /// Multiplier 1 at every step.
    #[default]
    Constant,
    /// `min(1, step / warmup_steps)`.
    WarmupConstant {
        /// Steps of linear warmup from 0.
        warmup_steps: u64,
    },
    /// Linear warmup, then half a cosine from 1 down to `min_lr_ratio`:
    /// `step < w`: `step / w`; else with `p = (step - w) / (total - w)`:
    /// `max(0, min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + cos(pi p)))`; `p` is capped at 1,
    /// so after `total_steps` the multiplier stays at `min_lr_ratio` (HF would rise again).
    WarmupCosine {
        /// Steps of linear warmup from 0.
        warmup_steps: u64,
        /// Total number of optimizer steps of the run (end of the cosine).
        total_steps: u64,
        /// Final multiplier, in `[0, 1]`.
        #[serde(default)]
        min_lr_ratio: f64,
    },
}

impl LrSchedule {
    /// Multiplier of the peak learning rate for the update made after `step` completed steps.
    pub fn multiplier(&self, step: u64) -> f64 {
        match *self {
            LrSchedule::Constant => 1.0,
            LrSchedule::WarmupConstant { warmup_steps } => {
                (step as f64 / warmup_steps.max(1) as f64).min(1.0)
            }
            LrSchedule::WarmupCosine {
                warmup_steps,
                total_steps,
                min_lr_ratio,
            } => {
                if step < warmup_steps {
                    return step as f64 / warmup_steps.max(1) as f64;
                }
                let span = total_steps.saturating_sub(warmup_steps).max(1) as f64;
                let progress = ((step - warmup_steps) as f64 / span).min(1.0);
                let x = (std::f64::consts::PI * progress).cos();
                let coef = (1.0 - min_lr_ratio) * 0.5;
                let intercept = (1.0 + min_lr_ratio) * 0.5;
                (x * coef + intercept).max(0.0)
            }
        }
    }

    /// Checks value ranges; the error names the offending key.
    pub fn validate(&self) -> Result<(), RlError> {
        if let LrSchedule::WarmupCosine {
            warmup_steps,
            total_steps,
            min_lr_ratio,
        } = *self
        {
            if !(0.0..=1.0).contains(&min_lr_ratio) {
                return Err(RlError::Config {
                    key: "min_lr_ratio",
                    reason: "must be in [0, 1]".into(),
                });
            }
            if total_steps < warmup_steps {
                return Err(RlError::Config {
                    key: "total_steps",
                    reason: format!("{total_steps} is smaller than warmup_steps {warmup_steps}"),
                });
            }
        }
        Ok(())
    }
}
