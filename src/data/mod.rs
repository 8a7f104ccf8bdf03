//! Benchmark loaders: each benchmark is normalised to plain items that convert to [`Task`]s.
//!
//! * [`cruxeval`]: CRUXEval's 800 programs, as deduction (CRUXEval-O) and abduction (CRUXEval-I)
//!   tasks;
//! * [`math`]: MATH500, AIME24/25, AMC23, Minerva, OlympiadBench and GSM8K, each as
//!   (problem, reference answer);
//! * [`humaneval`]: HumanEval's 164 problems as synthesis tasks (graded like self-play
//!   synthesis: the fraction of tests passed in the sandbox);
//! * [`arc`]: ARC-Easy and ARC-Challenge, multiple-choice questions with labelled options
//!   (scored by [`crate::eval::arc`]).
//!
//! Files live under `../shared/data/` relative to the project root by default (see
//! `shared/data/README.md`); users point the config at their own copies.
//!
//! [`Task`]: crate::tasks::Task

pub mod arc;
pub mod cruxeval;
pub mod humaneval;
pub mod math;

pub use arc::{load_arc, ArcChoice, ArcItem, ArcSet};
pub use cruxeval::{load_cruxeval, CruxItem};
pub use humaneval::{load_humaneval, HumanEvalItem};
pub use math::{load_math, MathProblem, MathSet};

use std::path::Path;

/// Errors loading a benchmark file.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// File path.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// A line is not valid JSON.
    #[error("{path}:{line}: invalid JSON: {source}")]
    Json {
        /// File path.
        path: String,
        /// 1-based line number.
        line: usize,
        /// Cause.
        source: serde_json::Error,
    },
    /// A required field is missing or has the wrong type.
    #[error("{path}:{line}: missing or malformed field `{field}`")]
    Field {
        /// File path.
        path: String,
        /// 1-based line number.
        line: usize,
        /// Field name.
        field: &'static str,
    },
}

/// Read a JSONL file into (1-based line number, object) pairs, skipping blank lines.
pub(crate) fn read_jsonl(path: &Path) -> Result<Vec<(usize, serde_json::Value)>, DataError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| DataError::Io {
        path: shown.clone(),
        source,
    })?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .map(|v| (i + 1, v))
                .map_err(|source| DataError::Json {
                    path: shown.clone(),
                    line: i + 1,
                    source,
                })
        })
        .collect()
}
