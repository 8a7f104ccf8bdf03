//! The pretraining configuration, loaded from `config/tiny-pretrain.toml`.
//!
//! Every struct rejects unknown keys and every field has a documented default, so an empty
//! file is the reference recipe of the feasibility study (1.8 M-parameter Llama, AdamW 1e-3
//! with 100 warm-up steps, 16 x 256-token rows).

use super::corpus::CorpusConfig;
use super::error::PretrainError;
use super::heldout::HeldoutConfig;
use crate::executor::ExecutorConfig;
use crate::model::config::{Architecture, ModelConfig, TokenIds};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Shape of the tiny Llama-family model (`[model]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TinyModelConfig {
    /// Width of the residual stream. Default 192.
    pub hidden_size: usize,
    /// Width of the SwiGLU MLP. Default 512.
    pub intermediate_size: usize,
    /// Decoder layers. Default 4.
    pub num_hidden_layers: usize,
    /// Attention heads (head dim = hidden / heads). Default 6.
    pub num_attention_heads: usize,
    /// Longest position (prompt + generation). Default 512.
    pub max_position_embeddings: usize,
    /// RoPE base. Default 10000.
    pub rope_theta: f64,
    /// RMSNorm epsilon. Default 1e-5.
    pub rms_norm_eps: f64,
}

impl Default for TinyModelConfig {
    fn default() -> Self {
        Self {
            hidden_size: 192,
            intermediate_size: 512,
            num_hidden_layers: 4,
            num_attention_heads: 6,
            max_position_embeddings: 512,
            rope_theta: 10_000.0,
            rms_norm_eps: 1e-5,
        }
    }
}

impl TinyModelConfig {
    /// The HF-style model config for a vocabulary of `vocab_size` ids (tied embeddings, MHA,
    /// no biases), with `eos_token_id = end_id`.
    pub fn to_model_config(&self, vocab_size: usize, end_id: u32) -> ModelConfig {
        ModelConfig {
            architecture: Architecture::Llama,
            vocab_size,
            hidden_size: self.hidden_size,
            intermediate_size: self.intermediate_size,
            num_hidden_layers: self.num_hidden_layers,
            num_attention_heads: self.num_attention_heads,
            num_key_value_heads: Some(self.num_attention_heads),
            head_dim: None,
            rope_theta: self.rope_theta,
            rms_norm_eps: self.rms_norm_eps,
            max_position_embeddings: self.max_position_embeddings,
            tie_word_embeddings: true,
            attention_bias: false,
            bos_token_id: None,
            eos_token_id: Some(TokenIds::One(end_id)),
        }
    }
}

/// The optimisation schedule and budget (`[train]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Tokens per packed row. Default 256.
    pub seq_len: usize,
    /// Rows per step. Default 16.
    pub batch_size: usize,
    /// Peak learning rate. Default 1e-3.
    pub lr: f64,
    /// Linear warm-up steps. Default 100.
    pub warmup_steps: u64,
    /// Fraction of `max_steps` at the end over which the lr decays linearly to
    /// `min_lr_ratio * lr` (needs `max_steps > 0`). Default 0.2.
    pub decay_fraction: f64,
    /// Final lr as a fraction of the peak. Default 0.1.
    pub min_lr_ratio: f64,
    /// AdamW beta1. Default 0.9.
    pub beta1: f64,
    /// AdamW beta2. Default 0.98.
    pub beta2: f64,
    /// AdamW epsilon. Default 1e-8.
    pub eps: f64,
    /// Decoupled weight decay. Default 0.01.
    pub weight_decay: f64,
    /// Global gradient-norm clip (0 disables). Default 1.0.
    pub grad_clip: f64,
    /// Step budget (0 = none). Default 1400 (the shipped base model). A step budget makes the run reproducible.
    pub max_steps: u64,
    /// Wall-clock budget of training steps in minutes, evaluation excluded (0 = none).
    /// Default 0.
    pub max_minutes: f64,
    /// Log a loss-curve row every this many steps. Default 10.
    pub log_every: u64,
    /// Save a checkpoint every this many steps (0 = only at the end). Default 350.
    pub checkpoint_every: u64,
    /// Tune glibc's allocator for training (see [`crate::pretrain::alloc`]; process-wide).
    /// Default true.
    pub tune_allocator: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            seq_len: 256,
            batch_size: 16,
            lr: 1e-3,
            warmup_steps: 100,
            decay_fraction: 0.2,
            min_lr_ratio: 0.1,
            beta1: 0.9,
            beta2: 0.98,
            eps: 1e-8,
            weight_decay: 0.01,
            grad_clip: 1.0,
            max_steps: 1400,
            max_minutes: 0.0,
            log_every: 10,
            checkpoint_every: 350,
            tune_allocator: true,
        }
    }
}

impl TrainConfig {
    /// The learning rate at (0-based) `step`: linear warm-up, constant, then linear decay over
    /// the final `decay_fraction` of `max_steps`.
    pub fn lr_at(&self, step: u64) -> f64 {
        let warm = if self.warmup_steps > 0 && step < self.warmup_steps {
            (step + 1) as f64 / self.warmup_steps as f64
        } else {
            1.0
        };
        let mut scale = warm;
        if self.max_steps > 0 && self.decay_fraction > 0.0 {
            let decay_steps = (self.max_steps as f64 * self.decay_fraction).round() as u64;
            let start = self.max_steps.saturating_sub(decay_steps);
            if decay_steps > 0 && step >= start {
                let t = ((step - start) as f64 / decay_steps as f64).min(1.0);
                scale = scale.min(1.0 - t * (1.0 - self.min_lr_ratio));
            }
        }
        self.lr * scale
    }
}

/// Everything `azr pretrain` needs (`config/tiny-pretrain.toml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PretrainConfig {
    /// Seed of the training stream, the initialisation and everything else. Default 0.
    pub seed: u64,
    /// Where checkpoints, the loss curve and the evaluation go. Default `runs/tiny-pretrain`.
    pub out_dir: PathBuf,
    /// Device to train on (`cpu`, `cuda`, `cuda:N`). Default `cpu`.
    pub device: String,
    /// Model shape.
    pub model: TinyModelConfig,
    /// Schedule and budget.
    pub train: TrainConfig,
    /// Training-stream mix.
    pub corpus: CorpusConfig,
    /// Held-out evaluation set and its greedy evaluation at the end.
    pub eval: EvalConfig,
    /// The sandboxed executor that computes every output.
    pub executor: ExecutorConfig,
}

/// Held-out evaluation (`[eval]`): how the set is drawn, and decoding limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvalConfig {
    /// Seed of the held-out generator; must differ from the training seed. Default 12345.
    pub seed: u64,
    /// Tasks per (task kind, family). Default 25.
    pub per_family: usize,
    /// Pairs shown to the induction solver. Default 3.
    pub induction_visible: usize,
    /// Hidden pairs an induction answer must also pass. Default 2.
    pub induction_hidden: usize,
    /// Evaluate greedily on the held-out set at the end of training. Default true.
    pub at_end: bool,
    /// New-token limit for deduction and abduction answers. Default 48.
    pub max_answer_tokens: usize,
    /// New-token limit for induction answers (a whole program). Default 160.
    pub max_program_tokens: usize,
}

impl Default for EvalConfig {
    fn default() -> Self {
        let h = HeldoutConfig::default();
        Self {
            seed: h.seed,
            per_family: h.per_family,
            induction_visible: h.induction_visible,
            induction_hidden: h.induction_hidden,
            at_end: true,
            max_answer_tokens: 48,
            max_program_tokens: 160,
        }
    }
}

impl EvalConfig {
    /// The held-out set's generation settings (outputs capped like the training corpus).
    pub fn heldout(&self, corpus: &CorpusConfig) -> HeldoutConfig {
        HeldoutConfig {
            seed: self.seed,
            per_family: self.per_family,
            induction_visible: self.induction_visible,
            induction_hidden: self.induction_hidden,
            max_output_chars: corpus.max_output_chars,
            chain_unseen: corpus.chain_unseen,
        }
    }
}

impl Default for PretrainConfig {
    fn default() -> Self {
        Self {
            seed: 0,
            out_dir: PathBuf::from("runs/tiny-pretrain"),
            device: "cpu".to_string(),
            model: TinyModelConfig::default(),
            train: TrainConfig::default(),
            corpus: CorpusConfig::default(),
            eval: EvalConfig::default(),
            executor: ExecutorConfig::default(),
        }
    }
}

impl PretrainConfig {
    /// Parse TOML text (`origin` names the source in errors) and validate it.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Self, PretrainError> {
        let cfg: Self = toml::from_str(text).map_err(|e| PretrainError::Config {
            path: origin.to_string(),
            message: e.to_string(),
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Load and validate a TOML file.
    pub fn load(path: &Path) -> Result<Self, PretrainError> {
        let text =
            std::fs::read_to_string(path).map_err(|e| PretrainError::io("reading", path, e))?;
        Self::from_toml_str(&text, &path.display().to_string())
    }

    /// Cross-field checks; errors name the key.
    pub fn validate(&self) -> Result<(), PretrainError> {
        let bad = |key: &'static str, message: &str| {
            Err(PretrainError::Invalid {
                key,
                message: message.to_string(),
            })
        };
        let m = &self.model;
        if m.num_attention_heads == 0 || m.hidden_size % m.num_attention_heads != 0 {
            return bad("model.num_attention_heads", "must divide model.hidden_size");
        }
        if (m.hidden_size / m.num_attention_heads) % 2 != 0 {
            return bad("model.num_attention_heads", "head dim must be even (RoPE)");
        }
        let t = &self.train;
        if t.seq_len < 2 || t.seq_len > m.max_position_embeddings {
            return bad(
                "train.seq_len",
                "must be in 2..=model.max_position_embeddings",
            );
        }
        if t.batch_size == 0 {
            return bad("train.batch_size", "must be positive");
        }
        if !(t.lr > 0.0 && t.lr.is_finite()) {
            return bad("train.lr", "must be positive");
        }
        if !(0.0..=1.0).contains(&t.decay_fraction) || !(0.0..=1.0).contains(&t.min_lr_ratio) {
            return bad("train.decay_fraction", "and min_lr_ratio must be in [0, 1]");
        }
        if t.max_steps == 0 && t.max_minutes <= 0.0 {
            return bad("train.max_steps", "or train.max_minutes must set a budget");
        }
        if t.log_every == 0 {
            return bad("train.log_every", "must be positive");
        }
        if self.eval.seed == self.seed {
            return bad("eval.seed", "must differ from the training seed");
        }
        self.corpus.validate()
    }
}
