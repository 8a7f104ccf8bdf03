//! Math benchmark scoring: greedy accuracy and avg@k of a model snapshot on the math sets of
//! [`crate::data::math`], the six-benchmark average of the 1-shot RLVR paper (MATH500, AIME24,
//! AIME25, AMC23, Minerva, OlympiadBench) and GSM8K.
//!
//! [`arc`] scores the ARC-Easy / ARC-Challenge multiple-choice sets the same way (the 1-shot RLVR
//! paper's non-math check).
//!
//! Everything here is plain synchronous code, used by the RLVR evaluator and by `azr eval`.
//!
//! | module | what it holds |
//! |---|---|
//! | [`prompt`] | [`prompt::MathPrompt`]: the prompt template and answer extraction, from config |
//! | [`settings`] | [`settings::EvalSettings`]: decoding, samples per item (avg@k), limit |
//! | [`score`] | pure scoring: avg@k over graded samples, per-benchmark and suite averages |
//! | [`runner`] | generating with a [`crate::model::Snapshot`] and scoring whole benchmarks |
//! | [`error`] | [`EvalError`] |
//! | [`arc`] | ARC: [`arc::ArcPrompt`] (prompt, answer-label extraction), scoring by label |

pub mod arc;
pub mod error;
pub mod prompt;
pub mod runner;
pub mod score;
pub mod settings;

pub use arc::ArcPrompt;
pub use error::EvalError;
pub use prompt::{AnswerFormat, MathPrompt};
pub use runner::{evaluate_problems, evaluate_set, evaluate_suite, stop_token_ids, Problem};
pub use score::{avg_at_k, benchmark_name, BenchmarkScore, SuiteScore, SIX_BENCHMARKS};
pub use settings::EvalSettings;
