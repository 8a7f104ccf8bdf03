//! Counters and timers the engine publishes after every iteration.

use serde::{Deserialize, Serialize};

use crate::types::PolicyVersion;

/// A snapshot of the engine's state and cumulative counters
/// ([`crate::engine::EngineHandle::stats`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EngineStats {
    /// Configured number of slots.
    pub max_slots: usize,
    /// Slots holding a running sequence now.
    pub active_slots: usize,
    /// Sequences (samples) submitted and not yet admitted into a slot.
    pub waiting: usize,
    /// Policy version decoding now.
    pub version: PolicyVersion,
    /// Requests submitted (accepted by `submit`).
    pub requests_submitted: u64,
    /// Requests answered with their samples.
    pub requests_completed: u64,
    /// Requests dropped because their ticket was dropped.
    pub requests_cancelled: u64,
    /// Requests answered with an error.
    pub requests_failed: u64,
    /// Samples finished.
    pub samples_completed: u64,
    /// Tokens generated (every sampled token, stop tokens included).
    pub tokens_generated: u64,
    /// Prompt prefills run (one per request, or one more after a weight swap dropped it).
    pub prefills: u64,
    /// Prompt tokens prefilled.
    pub prefill_tokens: u64,
    /// Batched decode iterations run.
    pub decode_steps: u64,
    /// Sum over decode iterations of the rows decoded (mean batch = this / `decode_steps`).
    pub decode_rows: u64,
    /// Times the KV columns in use were moved inside the slot buffers (amortised compaction).
    pub kv_moves: u64,
    /// Weight versions taken.
    pub weight_updates: u64,
    /// Seconds spent in prefill forwards.
    pub prefill_secs: f64,
    /// Seconds spent in decode iterations (forward, sampling and KV bookkeeping).
    pub decode_secs: f64,
    /// Seconds with work to do (prefill, decode, admission, bookkeeping).
    pub busy_secs: f64,
    /// Seconds blocked with no sequence active or waiting.
    pub idle_secs: f64,
    /// Whether the engine is paused now ([`crate::engine::EngineHandle::pause`]).
    #[serde(default)]
    pub paused: bool,
    /// Times the engine was paused.
    #[serde(default)]
    pub pauses: u64,
    /// Seconds spent paused (neither busy nor idle).
    #[serde(default)]
    pub paused_secs: f64,
}

impl EngineStats {
    /// Fraction of wall time the engine was idle, `idle / (busy + idle)`; 0 before any time
    /// was counted.
    pub fn idle_ratio(&self) -> f64 {
        let total = self.busy_secs + self.idle_secs;
        if total > 0.0 {
            self.idle_secs / total
        } else {
            0.0
        }
    }

    /// Mean number of rows per decode iteration.
    pub fn mean_batch(&self) -> f64 {
        if self.decode_steps == 0 {
            0.0
        } else {
            self.decode_rows as f64 / self.decode_steps as f64
        }
    }
}
