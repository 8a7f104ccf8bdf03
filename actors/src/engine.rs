//! The compute boundary of the pipeline: what the actors need from a trainer (updates) and a
//! tokenizer. The real implementations wrap `azr_core::model` and `azr_core::rl::learner` (see
//! [`crate::backend`]); generation goes through the rollout engine ([`crate::compute`]). A
//! remote learner would implement the same trait.
//!
//! Everything crossing this boundary is plain data: token ids, log-probs, rewards, versions,
//! weight snapshots; errors are typed.

use std::path::Path;
use std::sync::Arc;

use azr_core::model::Snapshot;
use azr_core::types::ScoredRollout;
use serde::{Deserialize, Serialize};

/// A tokenizer failure.
#[derive(Debug, Clone, thiserror::Error)]
#[error("tokenizer: {0}")]
pub struct CodecError(pub String);

/// Text <-> token ids. Shared by the actors that build prompts.
pub trait Codec: Send + Sync + 'static {
    /// Encode prompt text (special tokens as the model expects).
    fn encode(&self, text: &str) -> Result<Vec<u32>, CodecError>;
    /// Decode generated ids to text.
    fn decode(&self, ids: &[u32]) -> Result<String, CodecError>;
}

/// A shared codec.
pub type SharedCodec = Arc<dyn Codec>;

/// Statistics of one learner update.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UpdateStats {
    /// Policy-gradient loss.
    pub pg_loss: f64,
    /// Mean KL to the sampling policy (approximate).
    pub kl: f64,
    /// Mean KL to the reference weights under `learner.loss.kl_estimator` (0 without a
    /// reference, i.e. with `kl_coef = 0`).
    #[serde(default)]
    pub kl_reference: f64,
    /// Mean token entropy.
    pub entropy: f64,
    /// Share of tokens whose ratio was clipped.
    pub clip_fraction: f64,
    /// Gradient norm before clipping.
    pub grad_norm: f64,
    /// Learning rate used.
    pub lr: f64,
    /// Tokens trained on.
    pub tokens: usize,
    /// Mean importance weight of the off-policy correction (1 without one).
    pub importance_mean: f64,
    /// Std of the importance weights.
    pub importance_std: f64,
    /// Normalised effective sample size of the importance weights, in (0, 1].
    pub ess: f64,
}

/// A learner failure.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TrainError {
    /// The update failed (shapes, tensors, an empty batch).
    #[error("update failed: {0}")]
    Update(String),
    /// Copying the weights failed.
    #[error("snapshot failed: {0}")]
    Snapshot(String),
    /// Writing the checkpoint failed.
    #[error("saving failed: {0}")]
    Save(String),
}

/// A trainer: owns the trainable weights and the optimizer; lives on the learner thread.
pub trait Trainer: Send + 'static {
    /// One update on a batch (every rewarded rollout of the batch).
    fn update(&mut self, batch: &[ScoredRollout]) -> Result<UpdateStats, TrainError>;

    /// A deep copy of the current weights, for the rollout engine.
    fn snapshot(&self) -> Result<Snapshot, TrainError>;

    /// Save weights (HF format) and optimizer state into `dir`.
    fn save(&self, dir: &Path) -> Result<(), TrainError>;
}
