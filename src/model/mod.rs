//! The trainable Llama/Qwen2-family decoder and everything around it: tokenizer, weight
//! formats, the differentiable forward, weight snapshots, batched sampling, log-probs of
//! responses, device parsing and the model benchmark.
//!
//! The module does not know about RL: losses and optimizers live in [`crate::rl`].

pub mod bench;
pub mod bench_device;
pub mod cache;
pub mod config;
mod cpu_attention;
mod cpu_linear;
mod cpu_ops;
pub(crate) mod cpu_par;
mod cpu_rows;
pub mod device;
pub mod error;
pub mod gguf;
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
pub use cpu_par::{run_shards, train_shards};
pub use device::{parse_device, parse_dtype};
pub use error::ModelError;
pub use kernels::{cross_entropy, Kernels};
pub use layout::{pad_left, BatchLayout};
pub use logprobs::{
    logprobs_with_kernels, response_logprobs, snapshot_response_logprobs, LogProbBatch,
};
pub use policy::{Model, Snapshot};
pub use sampling::{generate, Generation, SamplingParams, StopReason};
pub use tokenizer::Tokenizer;
pub use transformer::Transformer;

/// Keeps candle's own element-wise CPU ops on the calling thread by setting
/// `CANDLE_NUM_THREADS=1` (unless the environment already sets it). Those ops (the residual
/// adds, and the zero-fill-and-add of every gradient in candle's backward) otherwise run on a
/// second, candle-owned pool whose workers spin for a while after every op and take one caller
/// at a time: next to this crate's kernel threads and data-parallel training shards they
/// compete for the same cores (on 2 cores a training step spent about a third more CPU time).
/// The model's heavy work runs in this crate's kernels, which keep using the configured
/// `RAYON_NUM_THREADS`. Only `CANDLE_NUM_THREADS` is read, once, when candle first needs
/// that pool.
///
/// Call it at the start of `main`, before any other thread exists: it writes the process
/// environment.
pub fn keep_candle_elementwise_inline() {
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
}

/// Tunes glibc's allocator for the model's large, short-lived buffers (once per process): big
/// blocks are served from the heap and freed memory is kept for reuse instead of being
/// returned to the kernel, so a training step does not pay a fresh `mmap` + page faults for
/// every activation and gradient. Called when a [`Model`] or [`Snapshot`] is built and by the
/// benchmark; a no-op on other platforms. Memory freed by the model stays in the process.
pub fn tune_allocator() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: `mallopt` only changes allocator parameters; it is called once, before the
        // model's first large allocation, with valid parameter numbers.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 30);
            libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        }
    });
}

#[cfg(test)]
mod kernel_tests;
