//! The engine's error type.

use std::sync::Arc;

use crate::model::ModelError;

/// Why a request could not be served.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EngineError {
    /// The engine was shut down (or its thread ended) before the request finished.
    #[error("the rollout engine has shut down")]
    Shutdown,
    /// Too many sequences are waiting for a slot; retry later.
    #[error("the rollout engine's queue is full ({waiting} sequences waiting, at most {max})")]
    QueueFull {
        /// Sequences waiting when the request was refused.
        waiting: usize,
        /// The configured maximum ([`crate::engine::EngineConfig::max_waiting`]).
        max: usize,
    },
    /// The request can never be served (empty prompt, token outside the vocabulary, prompt
    /// longer than the model's context).
    #[error("invalid generation request: {0}")]
    InvalidRequest(String),
    /// A forward pass failed; every sequence in that forward gets this error.
    #[error("model forward failed: {0}")]
    Model(Arc<ModelError>),
    /// The engine thread could not be started.
    #[error("cannot start the rollout engine thread: {0}")]
    Spawn(Arc<std::io::Error>),
}

impl From<ModelError> for EngineError {
    fn from(e: ModelError) -> Self {
        EngineError::Model(Arc::new(e))
    }
}
