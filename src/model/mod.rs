//! The trainable Llama/Qwen2-family decoder and everything around it: tokenizer, weight
//! formats, the differentiable forward, weight snapshots, batched sampling, log-probs of
//! responses, device parsing and the model benchmark.
//!
//! The module does not know about RL: losses and optimizers live in [`crate::rl`].

pub mod bench;
pub mod cache;
pub mod config;
mod cpu_ops;
pub mod device;
pub mod error;
pub mod kernels;
pub mod layout;
pub mod logprobs;
pub mod policy;
pub mod sampling;
pub mod tokenizer;
pub mod transformer;
pub mod weights;

pub use cache::KvCache;
pub use config::{Architecture, ModelConfig, TokenIds};
pub use device::{parse_device, parse_dtype};
pub use error::ModelError;
pub use kernels::Kernels;
pub use layout::{pad_left, BatchLayout};
pub use logprobs::{response_logprobs, snapshot_response_logprobs, LogProbBatch};
pub use policy::{Model, Snapshot};
pub use sampling::{generate, Generation, SamplingParams, StopReason};
pub use tokenizer::Tokenizer;
pub use transformer::Transformer;
