//! Errors of benchmark scoring.

use crate::data::DataError;
use crate::model::ModelError;

/// Why an evaluation failed.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// Loading a benchmark file failed.
    #[error(transparent)]
    Data(#[from] DataError),
    /// Tokenising, generating or decoding failed.
    #[error("model: {0}")]
    Model(#[from] ModelError),
    /// An input does not fit the scoring (wrong number of samples, bad settings).
    #[error("invalid evaluation input: {0}")]
    Invalid(String),
}
