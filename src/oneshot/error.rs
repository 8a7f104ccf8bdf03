//! The error type of `crate::oneshot`.

use std::path::PathBuf;

use thiserror::Error;

/// Everything that can go wrong reading or writing histories and datasets.
#[derive(Debug, Error)]
pub enum OneShotError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A file is not valid JSON of the expected shape.
    #[error("{path}: {source}")]
    Json {
        /// The file (or `<string>` for in-memory input).
        path: PathBuf,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// A line of a JSONL dataset could not be parsed.
    #[error("{path}:{line}: {source}")]
    JsonLine {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// An accuracy outside `[0, 1]` or not finite.
    #[error("example `{index}`: accuracy {value} is not in [0, 1]")]
    BadAccuracy {
        /// Example index.
        index: String,
        /// The offending value.
        value: f64,
    },
}
