//! # azr-core
//!
//! The functional core of **azr**: everything that is plain, synchronous Rust and can be tested
//! without actors or an async runtime.
//!
//! | module | what it holds |
//! |---|---|
//! | [`types`] | plain data shared by every part: task kinds, roles, policy versions, rollouts |
//! | [`engine`] | the continuous-batching rollout engine: one thread, KV slots, in-flight weight updates |
//! | [`model`] | the trainable Llama/Qwen2-family decoder, tokenizer, weight formats, sampling, log-probs |
//! | [`rl`] | RL math as pure functions: advantages, policy losses, KL, AdamW, schedules, the learner step |
//! | [`executor`] | the sandboxed Python executor (a pool of fork-server workers) and canonical Python values |
//! | [`tasks`] | the `TaskType` trait, the built-in task types, templates, buffers and rewards |
//! | [`metrics`] | every Prometheus metric name, defined once with help text and unit |
//! | [`data`] | benchmark loaders (CRUXEval, the math sets) |
//! | [`eval`] | math benchmark scoring: greedy accuracy, avg@k, the six-benchmark average |
//! | [`pretrain`] | the procedural program corpus, the tiny tokenizer and next-token pretraining |
//! | [`oneshot`] | 1-shot RLVR: variance-based example selection and accuracy history |

pub mod data;
pub mod engine;
pub mod eval;
pub mod executor;
pub mod metrics;
pub mod model;
pub mod oneshot;
pub mod pretrain;
pub mod rl;
pub mod tasks;
pub mod types;
