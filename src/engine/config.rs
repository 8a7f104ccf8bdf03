//! Engine configuration.

use serde::{Deserialize, Serialize};

/// The per-slot sequence budget used when [`EngineConfig::max_seq_len`] is 0 and the model's
/// context is longer (keeps the KV buffers of long-context models bounded by default).
pub const DEFAULT_MAX_SEQ_LEN: usize = 4096;

/// When a newly published weight version is taken by the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WeightSync {
    /// Between two decode iterations, also while sequences are running (in-flight update as
    /// in PipelineRL); the KV cache the old weights computed is kept. The default.
    #[default]
    InFlight,
    /// Only when no sequence is active: a pending version pauses admission until the running
    /// sequences finish, so every sample comes from exactly one version.
    SequenceBoundary,
}

/// How the engine runs. Defaults: 32 slots, in-flight weight updates, at most 4096 waiting
/// sequences, the model's whole context per slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    /// Number of KV-cache slots, i.e. the most sequences decoded together. Default 32.
    pub max_slots: usize,
    /// When published weights are taken. Default [`WeightSync::InFlight`].
    pub weight_sync: WeightSync,
    /// [`crate::engine::EngineHandle::submit`] fails with
    /// [`crate::engine::EngineError::QueueFull`] while this many sequences (samples not yet
    /// admitted into a slot) are waiting. Default 4096.
    pub max_waiting: usize,
    /// Longest sequence (prompt + generated tokens) a slot holds; `0` (default) means the
    /// model's `max_position_embeddings` capped at [`DEFAULT_MAX_SEQ_LEN`]; any value is
    /// clamped to the model's context. Samples stop with
    /// [`crate::engine::StopReason::Length`] there (as `generate` does at the model's context),
    /// longer prompts are refused. The KV buffers hold `max_slots x 1.5 x max_seq_len` keys
    /// and values per layer, allocated when the engine starts.
    pub max_seq_len: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            max_slots: 32,
            weight_sync: WeightSync::InFlight,
            max_waiting: 4096,
            max_seq_len: 0,
        }
    }
}
