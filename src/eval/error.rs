//! Errors of benchmark scoring.

/// Why a scoring input was refused.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// An input does not fit the scoring (wrong number of samples, bad settings, a prompt
    /// template without its slots).
    #[error("invalid evaluation input: {0}")]
    Invalid(String),
}
