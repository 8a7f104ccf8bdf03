//! The model configuration, mirroring the fields of a Hugging Face `config.json` for the
//! Llama and Qwen2 architectures.

use serde::{Deserialize, Serialize};

/// Which family the weights follow. It decides the defaults that `config.json` may omit
/// (Qwen2 always has q/k/v biases; Llama has them only if `attention_bias` is true).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Architecture {
    /// `model_type = "llama"` (`LlamaForCausalLM`): SmolLM2, TinyLlama, Llama 2/3.
    Llama,
    /// `model_type = "qwen2"` (`Qwen2ForCausalLM`): Qwen2 and Qwen2.5, all sizes.
    Qwen2,
}

/// `eos_token_id` may be one id or a list of ids in `config.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TokenIds {
    /// A single id.
    One(u32),
    /// Several ids (any of them stops generation).
    Many(Vec<u32>),
}

impl TokenIds {
    /// The ids as a vector.
    pub fn to_vec(&self) -> Vec<u32> {
        match self {
            TokenIds::One(id) => vec![*id],
            TokenIds::Many(ids) => ids.clone(),
        }
    }
}

/// The subset of `config.json` that defines the network. Unknown keys of a real HF config are
/// ignored on load (HF configs carry many unrelated fields); `save` writes a config that HF
/// transformers and vLLM accept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// `model_type`: `"llama"` or `"qwen2"`.
    #[serde(rename = "model_type")]
    pub architecture: Architecture,
    /// Vocabulary size (rows of the embedding matrix).
    pub vocab_size: usize,
    /// Width of the residual stream.
    pub hidden_size: usize,
    /// Width of the SwiGLU MLP.
    pub intermediate_size: usize,
    /// Number of decoder layers.
    pub num_hidden_layers: usize,
    /// Number of query heads.
    pub num_attention_heads: usize,
    /// Number of key/value heads (GQA); equals `num_attention_heads` for MHA.
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    /// Per-head width; defaults to `hidden_size / num_attention_heads`.
    #[serde(default)]
    pub head_dim: Option<usize>,
    /// RoPE base.
    #[serde(default = "default_rope_theta")]
    pub rope_theta: f64,
    /// RMSNorm epsilon.
    #[serde(default = "default_rms_eps")]
    pub rms_norm_eps: f64,
    /// Longest position the RoPE tables are built for.
    #[serde(default = "default_max_pos")]
    pub max_position_embeddings: usize,
    /// Whether the LM head shares the embedding matrix.
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// Llama: whether q/k/v/o carry biases. Ignored for Qwen2 (q/k/v always biased, o never).
    #[serde(default)]
    pub attention_bias: bool,
    /// Beginning-of-sequence id, if the tokenizer uses one.
    #[serde(default)]
    pub bos_token_id: Option<u32>,
    /// End-of-sequence id(s).
    #[serde(default)]
    pub eos_token_id: Option<TokenIds>,
}

fn default_rope_theta() -> f64 {
    10_000.0
}
fn default_rms_eps() -> f64 {
    1e-6
}
fn default_max_pos() -> usize {
    4096
}

impl ModelConfig {
    /// Number of key/value heads (GQA).
    pub fn kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads)
    }

    /// Whether q/k/v projections carry a bias.
    pub fn qkv_bias(&self) -> bool {
        match self.architecture {
            Architecture::Qwen2 => true,
            Architecture::Llama => self.attention_bias,
        }
    }

    /// Whether the output projection carries a bias.
    pub fn o_bias(&self) -> bool {
        match self.architecture {
            Architecture::Qwen2 => false,
            Architecture::Llama => self.attention_bias,
        }
    }
}
