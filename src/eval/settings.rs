//! Decoding settings of an evaluation.

use serde::{Deserialize, Serialize};

use crate::data::MathSet;

/// How a benchmark is decoded and scored. Defaults: greedy, 1 sample, top-p 1, 1024 new
/// tokens, no item limit, seed 0, 16 sequences per generation call.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvalSettings {
    /// Temperature; 0 = greedy.
    pub temperature: f32,
    /// Nucleus threshold (1 = off).
    pub top_p: f32,
    /// Samples per item: the score is avg@k over them (1 with greedy decoding).
    pub samples: usize,
    /// Longest response in tokens.
    pub max_new_tokens: usize,
    /// Score only the first `limit` items; 0 = all.
    pub limit: usize,
    /// Seed of the sampling streams.
    pub seed: u64,
    /// Sequences per generation call (a memory knob; results do not depend on it).
    pub batch_size: usize,
}

impl Default for EvalSettings {
    fn default() -> Self {
        Self {
            temperature: 0.0,
            top_p: 1.0,
            samples: 1,
            max_new_tokens: 1024,
            limit: 0,
            seed: 0,
            batch_size: 16,
        }
    }
}

impl EvalSettings {
    /// Greedy decoding, one sample per item.
    pub fn greedy(max_new_tokens: usize) -> Self {
        Self {
            max_new_tokens,
            ..Self::default()
        }
    }

    /// avg@`k` at `temperature`.
    pub fn sampled(k: usize, temperature: f32, max_new_tokens: usize) -> Self {
        Self {
            temperature,
            samples: k,
            max_new_tokens,
            ..Self::default()
        }
    }

    /// The 1-shot RLVR paper's protocol for `set` (Qwen2.5-Math evaluation, 3072 tokens):
    /// AIME24, AIME25 and AMC23 avg@8 at temperature 0.6; the others greedy.
    pub fn paper(set: MathSet) -> Self {
        match set {
            MathSet::Aime24 | MathSet::Aime25 | MathSet::Amc23 => Self::sampled(8, 0.6, 3072),
            _ => Self::greedy(3072),
        }
    }

    /// Whether decoding is greedy (temperature 0).
    pub fn is_greedy(&self) -> bool {
        self.temperature <= 0.0
    }

    /// Samples actually drawn per item: 1 when greedy (every greedy sample is the same).
    pub fn effective_samples(&self) -> usize {
        if self.is_greedy() {
            1
        } else {
            self.samples.max(1)
        }
    }
}
