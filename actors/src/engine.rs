//! The compute boundary of the pipeline: what the actors need from a policy (generation), a
//! trainer (updates) and a tokenizer. The real implementations wrap `azr_core::model` and
//! `azr_core::rl::learner` (see [`crate::backend`]); an external inference server or a remote
//! learner would implement the same traits.
//!
//! Everything crossing this boundary is plain data: token ids, log-probs, rewards, versions.

use std::path::Path;
use std::sync::Arc;

use azr_core::types::{PolicyVersion, ScoredRollout};
use serde::{Deserialize, Serialize};

/// Decoding settings of one generation request.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Decoding {
    /// Temperature; 0 = greedy.
    pub temperature: f64,
    /// Nucleus threshold (1 = off).
    pub top_p: f64,
    /// Top-k (0 = off).
    pub top_k: usize,
    /// Longest response.
    pub max_new_tokens: usize,
}

/// One generated sequence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Generated {
    /// Generated ids (stop token included when produced).
    pub response_ids: Vec<u32>,
    /// Log-prob of each generated id under the sampling policy.
    pub logprobs: Vec<f32>,
    /// Decoded response text.
    pub text: String,
    /// Policy version that generated it.
    pub policy_version: PolicyVersion,
}

/// Text <-> token ids. Shared by the actors that build prompts.
pub trait Codec: Send + Sync + 'static {
    /// Encode prompt text (special tokens as the model expects).
    fn encode(&self, text: &str) -> Result<Vec<u32>, String>;
    /// Decode generated ids to text.
    fn decode(&self, ids: &[u32]) -> Result<String, String>;
}

/// One generated sequence as the policy returns it: token ids and their log-probs.
pub type Sampled = (Vec<u32>, Vec<f32>);

/// A shared codec.
pub type SharedCodec = Arc<dyn Codec>;

/// A policy that generates; lives on the inference thread and never leaves it.
pub trait Policy: Send + 'static {
    /// The weight snapshot type the learner publishes.
    type Weights: Send + Sync + 'static;

    /// Generate one response per prompt, seeded by `seed` (reproducible for a given weights
    /// version, prompts and seed).
    fn generate(
        &mut self,
        prompts: &[Vec<u32>],
        decoding: &Decoding,
        seed: u64,
    ) -> Result<Vec<Sampled>, String>;

    /// Switch to new weights (called between requests, never mid-sequence).
    fn load(&mut self, weights: &Self::Weights) -> Result<(), String>;
}

/// Statistics of one learner update.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UpdateStats {
    /// Policy-gradient loss.
    pub pg_loss: f64,
    /// Mean KL to the sampling policy (approximate).
    pub kl: f64,
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
}

/// A trainer: owns the trainable weights and the optimizer; lives on the learner thread.
pub trait Trainer: Send + 'static {
    /// The weight snapshot type handed to the policy.
    type Weights: Send + Sync + 'static;

    /// One update on a batch (the six sub-batches of a step, concatenated).
    fn update(&mut self, batch: &[ScoredRollout]) -> Result<UpdateStats, String>;

    /// A deep copy of the current weights.
    fn snapshot(&self) -> Result<Self::Weights, String>;

    /// Save weights (HF format) and optimizer state into `dir`.
    fn save(&self, dir: &Path) -> Result<(), String>;
}
