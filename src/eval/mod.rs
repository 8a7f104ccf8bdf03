//! Benchmark scoring shared by the evaluator of the `azr` binary (`azr eval`, the in-run
//! evaluator, `azr rlvr --eval-only`): decoding settings, avg@k over graded samples, the
//! six-benchmark average of the 1-shot RLVR paper (MATH500, AIME24, AIME25, AMC23, Minerva,
//! OlympiadBench), and ARC (its prompt and answer-label extraction).
//!
//! Nothing here generates: every evaluation generates through the rollout engine
//! ([`crate::engine`]), and math answers are graded by the math task type
//! ([`crate::tasks::math`], [`crate::tasks::math_grader`]), the same grader as the training
//! reward.
//!
//! | module | what it holds |
//! |---|---|
//! | [`settings`] | [`settings::EvalSettings`]: decoding, samples per item (avg@k), limit |
//! | [`score`] | pure scoring: avg@k over graded samples, per-benchmark scores, the six average |
//! | [`error`] | [`EvalError`] |
//! | [`arc`] | ARC: [`arc::ArcPrompt`] (prompt, answer-label extraction), scoring by label |

pub mod arc;
pub mod error;
pub mod score;
pub mod settings;

pub use arc::ArcPrompt;
pub use error::EvalError;
pub use score::{avg_at_k, benchmark_name, pass_at_k, six_average, BenchmarkScore, SIX_BENCHMARKS};
pub use settings::EvalSettings;
