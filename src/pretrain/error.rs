//! The error type of the pretraining module.

use std::path::PathBuf;

/// Everything that can go wrong while building the corpus, the tokenizer or pretraining.
#[derive(Debug, thiserror::Error)]
pub enum PretrainError {
    /// Reading or writing a file failed.
    #[error("{action} `{path}`: {source}")]
    Io {
        /// What was being done (`reading`, `writing`, ...).
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The TOML config is malformed or has an unknown key.
    #[error("config `{path}`: {message}")]
    Config {
        /// The config file (or `<string>`).
        path: String,
        /// What is wrong, naming the key.
        message: String,
    },
    /// A config value is out of range or inconsistent with another.
    #[error("invalid config: `{key}` {message}")]
    Invalid {
        /// The offending key, dotted (`train.batch_size`).
        key: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// The `tokenizers` crate failed (building, saving or loading `tokenizer.json`).
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// A text contains a character outside the tiny vocabulary.
    #[error("text contains characters outside the vocabulary: {0:?}")]
    UnknownChars(String),
    /// A single sample is longer than a packed row.
    #[error("sample of {len} tokens does not fit in a row of {row} tokens")]
    SampleTooLong {
        /// Tokens in the sample.
        len: usize,
        /// Row length.
        row: usize,
    },
    /// JSON (de)serialisation failed.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    /// The sandboxed executor could not be started.
    #[error(transparent)]
    Executor(#[from] crate::executor::ExecutorError),
    /// The generator produced no usable sample (every execution failed).
    #[error("the generator produced no usable sample: {0}")]
    EmptyCorpus(String),
    /// A tensor operation failed.
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
    /// The optimiser failed.
    #[error(transparent)]
    Optimizer(#[from] crate::rl::RlError),
    /// The model failed (building, forward, saving).
    #[error("model: {0}")]
    Model(String),
}

impl PretrainError {
    /// Wrap an I/O error with the action and path it concerns.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        PretrainError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
