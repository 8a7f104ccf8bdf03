//! The error type of the RL math: shape and configuration mistakes, plus candle errors.

use thiserror::Error;

/// Everything that can go wrong in `crate::rl`.
#[derive(Debug, Error)]
pub enum RlError {
    /// A tensor operation failed inside candle.
    #[error("tensor error: {0}")]
    Candle(#[from] candle_core::Error),
    /// Two inputs that must have matching lengths or shapes do not.
    #[error("shape mismatch in {what}: {detail}")]
    Shape {
        /// Which computation found the mismatch.
        what: &'static str,
        /// Human-readable description of the two shapes.
        detail: String,
    },
    /// The batch handed to a function holds nothing it can learn from.
    #[error("empty batch: {0}")]
    EmptyBatch(&'static str),
    /// A configuration value is out of range; names the key.
    #[error("invalid config `{key}`: {reason}")]
    Config {
        /// The offending key, as written in the TOML config.
        key: &'static str,
        /// Why the value is rejected.
        reason: String,
    },
    /// The KL loss is enabled but no reference policy was given to the learner.
    #[error("kl_coef > 0 needs a reference policy, but none was given")]
    MissingReference,
    /// An optimizer state dict does not fit the optimizer's variables.
    #[error("optimizer state: {0}")]
    State(String),
    /// The policy failed to compute log-probs (the model's own error, as text).
    #[error("policy: {0}")]
    Policy(String),
}
