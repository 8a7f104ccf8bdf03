//! The 1-shot RLVR training mode (Wang et al. 2025): GRPO on a few selected math examples (or
//! a whole dataset), each duplicated to fill the batch, with a binary math reward, per-example
//! training-accuracy history, and a math evaluator on the side.
//!
//! The loop reuses the pipeline's compute threads ([`crate::compute::inference`] for the
//! solver's generation, [`crate::compute::learner`] with [`crate::backend::ModelTrainer`] for the
//! GRPO update, the run's starting weights as the KL reference) and its checkpoint
//! layout ([`crate::pipeline::checkpoint`]); grading is [`azr_core::eval::MathPrompt::grade`].
//!
//! | module | what it holds |
//! |---|---|
//! | [`config`] | [`config::RlvrConfig`]: the TOML file of `azr rlvr` |
//! | [`plan`] | which examples each step trains on, epoch by epoch |
//! | [`evaluator`] | the benchmark sets scored on the side, and their results |
//! | [`train`] | the driver: solver -> reward -> learner, history, checkpoints |

pub mod config;
pub mod evaluator;
pub mod plan;
pub mod train;
