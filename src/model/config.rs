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

impl ModelConfig {
    /// Reads an HF `config.json`. Keys this struct does not model are ignored.
    pub fn load(path: &std::path::Path) -> Result<Self, super::error::ModelError> {
        use super::error::ModelError;
        let text = std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))?;
        let cfg: Self = serde_json::from_str(&text).map_err(|e| ModelError::json(path, e))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// The HF `config.json` content for this config (loadable by HF transformers and vLLM):
    /// the modelled fields with defaults made explicit, plus `architectures`, `hidden_act`,
    /// `torch_dtype` and the Qwen2 sliding-window keys.
    pub fn to_hf_json(&self, torch_dtype: &str) -> serde_json::Value {
        let mut v = serde_json::json!({
            "architectures": [match self.architecture {
                Architecture::Llama => "LlamaForCausalLM",
                Architecture::Qwen2 => "Qwen2ForCausalLM",
            }],
            "model_type": match self.architecture {
                Architecture::Llama => "llama",
                Architecture::Qwen2 => "qwen2",
            },
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_hidden_layers,
            "num_attention_heads": self.num_attention_heads,
            "num_key_value_heads": self.kv_heads(),
            "head_dim": self.head_dim(),
            "rope_theta": self.rope_theta,
            "rms_norm_eps": self.rms_norm_eps,
            "max_position_embeddings": self.max_position_embeddings,
            "tie_word_embeddings": self.tie_word_embeddings,
            "hidden_act": "silu",
            "initializer_range": 0.02,
            "attention_dropout": 0.0,
            "use_cache": true,
            "torch_dtype": torch_dtype,
        });
        if let serde_json::Value::Object(map) = &mut v {
            match self.architecture {
                Architecture::Llama => {
                    map.insert("attention_bias".into(), self.attention_bias.into());
                    map.insert("mlp_bias".into(), false.into());
                    map.insert("pretraining_tp".into(), 1.into());
                }
                Architecture::Qwen2 => {
                    map.insert("use_sliding_window".into(), false.into());
                    map.insert("sliding_window".into(), self.max_position_embeddings.into());
                    map.insert("max_window_layers".into(), self.num_hidden_layers.into());
                }
            }
            if let Some(bos) = self.bos_token_id {
                map.insert("bos_token_id".into(), bos.into());
            }
            if let Some(eos) = &self.eos_token_id {
                let eos = match eos {
                    TokenIds::One(id) => serde_json::json!(id),
                    TokenIds::Many(ids) => serde_json::json!(ids),
                };
                map.insert("eos_token_id".into(), eos);
            }
        }
        v
    }

    /// Writes [`Self::to_hf_json`] to `path`.
    pub fn save(
        &self,
        path: &std::path::Path,
        torch_dtype: &str,
    ) -> Result<(), super::error::ModelError> {
        use super::error::ModelError;
        let text = serde_json::to_string_pretty(&self.to_hf_json(torch_dtype))
            .map_err(|e| ModelError::json(path, e))?;
        std::fs::write(path, text).map_err(|e| ModelError::io(path, e))
    }

    /// Checks the cross-field constraints the network relies on.
    pub fn validate(&self) -> Result<(), super::error::ModelError> {
        use super::error::ModelError;
        let bad = |m: String| Err(ModelError::InvalidConfig(m));
        if self.vocab_size == 0 || self.hidden_size == 0 || self.num_attention_heads == 0 {
            return bad("vocab_size, hidden_size and num_attention_heads must be positive".into());
        }
        if self.head_dim.is_none() && self.hidden_size % self.num_attention_heads != 0 {
            return bad(format!(
                "hidden_size {} is not divisible by num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if self.head_dim() % 2 != 0 {
            return bad(format!(
                "head_dim {} must be even for RoPE",
                self.head_dim()
            ));
        }
        let kv = self.kv_heads();
        if kv == 0 || self.num_attention_heads % kv != 0 {
            return bad(format!(
                "num_attention_heads {} is not a multiple of num_key_value_heads {kv}",
                self.num_attention_heads
            ));
        }
        if self.max_position_embeddings == 0 {
            return bad("max_position_embeddings must be positive".into());
        }
        Ok(())
    }
}
