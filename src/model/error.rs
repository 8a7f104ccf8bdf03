//! The error type of the model module.

use std::path::PathBuf;

/// Everything that can go wrong while building, loading, saving, running or sampling the model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A tensor operation failed (shape mismatch, unsupported dtype on a device, ...).
    #[error("tensor operation failed: {0}")]
    Candle(#[from] candle_core::Error),
    /// The tokenizer could not be loaded, saved or run.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// Reading or writing a file failed.
    #[error("i/o on {path}: {source}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A JSON file (config, shard index) could not be parsed or written.
    #[error("json in {path}: {source}")]
    Json {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: serde_json::Error,
    },
    /// The configuration is inconsistent (e.g. hidden size not divisible by the head count).
    #[error("invalid model config: {0}")]
    InvalidConfig(String),
    /// A GGUF file could not be read or converted.
    #[error("gguf: {0}")]
    Gguf(#[from] crate::model::gguf::GgufError),
    /// A weight the configuration requires is absent from the checkpoint.
    #[error("missing weight `{0}`")]
    MissingWeight(String),
    /// A weight has a different shape from what the configuration implies.
    #[error("weight `{name}` has shape {actual:?}, expected {expected:?}")]
    WeightShape {
        /// Tensor name.
        name: String,
        /// Shape found in the checkpoint.
        actual: Vec<usize>,
        /// Shape required by the configuration.
        expected: Vec<usize>,
    },
    /// The checkpoint path is neither an HF directory nor a `.gguf` file, or lacks files.
    #[error("unsupported checkpoint {path}: {reason}")]
    UnsupportedCheckpoint {
        /// The path given.
        path: PathBuf,
        /// Why it was rejected.
        reason: String,
    },
    /// A device string could not be parsed or the device is not available in this build.
    #[error("device `{spec}`: {reason}")]
    Device {
        /// The string given.
        spec: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A dtype string is not one of the supported ones.
    #[error("unsupported dtype `{0}` (expected \"f32\" or \"bf16\")")]
    DType(String),
    /// The inputs of a call are inconsistent (empty batch, token id out of range, ...).
    #[error("invalid input: {0}")]
    InvalidInput(String),
}

impl ModelError {
    /// Wraps an I/O error with the path it concerns.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ModelError::Io {
            path: path.into(),
            source,
        }
    }

    /// Wraps a JSON error with the path it concerns.
    pub(crate) fn json(path: impl Into<PathBuf>, source: serde_json::Error) -> Self {
        ModelError::Json {
            path: path.into(),
            source,
        }
    }
}

/// Result alias of the model module.
pub type Result<T, E = ModelError> = std::result::Result<T, E>;
