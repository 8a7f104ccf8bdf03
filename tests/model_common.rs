//! Helpers shared by the `model_*` integration tests (included with `#[path]`).
#![allow(dead_code)]

use azr_core::model::{Architecture, Model, ModelConfig, Tokenizer};
use candle_core::{DType, Device};

/// Qwen2 with q/k/v biases, GQA (4 query heads, 2 KV heads) and an untied head.
pub fn tiny_qwen2() -> ModelConfig {
    ModelConfig {
        architecture: Architecture::Qwen2,
        vocab_size: 64,
        hidden_size: 32,
        intermediate_size: 64,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        num_key_value_heads: Some(2),
        head_dim: None,
        rope_theta: 10_000.0,
        rms_norm_eps: 1e-6,
        max_position_embeddings: 128,
        tie_word_embeddings: false,
        attention_bias: false,
        bos_token_id: None,
        eos_token_id: None,
    }
}

/// Llama with tied embeddings and GQA (4 query heads, 1 KV head), no biases.
pub fn tiny_llama() -> ModelConfig {
    ModelConfig {
        architecture: Architecture::Llama,
        vocab_size: 64,
        hidden_size: 32,
        intermediate_size: 48,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        num_key_value_heads: Some(1),
        head_dim: None,
        rope_theta: 500_000.0,
        rms_norm_eps: 1e-5,
        max_position_embeddings: 128,
        tie_word_embeddings: true,
        attention_bias: false,
        bos_token_id: Some(2),
        eos_token_id: Some(azr_core::model::TokenIds::One(1)),
    }
}

/// A random f32 CPU model of `cfg` with a synthetic tokenizer.
pub fn model(cfg: ModelConfig, seed: u64) -> Model {
    let tok = Tokenizer::synthetic(cfg.vocab_size).unwrap();
    Model::random(cfg, tok, &Device::Cpu, DType::F32, seed).unwrap()
}

/// Largest absolute difference of two equally long slices.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}
