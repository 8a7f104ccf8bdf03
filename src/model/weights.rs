//! Weight names and shapes, random initialisation, and the HF checkpoint format
//! (`config.json`, `model.safetensors` or sharded `model-0000x-of-0000y.safetensors` with
//! `model.safetensors.index.json`, `tokenizer.json`).

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::config::ModelConfig;
use super::error::{ModelError, Result};

/// Every weight the configuration needs, with its shape, in HF naming. With tied embeddings
/// there is no `lm_head.weight` (the head reuses `model.embed_tokens.weight`).
pub fn weight_shapes(cfg: &ModelConfig) -> Vec<(String, Vec<usize>)> {
    let (h, hd) = (cfg.hidden_size, cfg.head_dim());
    let (q_out, kv_out) = (cfg.num_attention_heads * hd, cfg.kv_heads() * hd);
    let mut out = vec![(
        "model.embed_tokens.weight".to_string(),
        vec![cfg.vocab_size, h],
    )];
    for i in 0..cfg.num_hidden_layers {
        let p = format!("model.layers.{i}");
        let a = format!("{p}.self_attn");
        out.push((format!("{a}.q_proj.weight"), vec![q_out, h]));
        out.push((format!("{a}.k_proj.weight"), vec![kv_out, h]));
        out.push((format!("{a}.v_proj.weight"), vec![kv_out, h]));
        out.push((format!("{a}.o_proj.weight"), vec![h, q_out]));
        if cfg.qkv_bias() {
            out.push((format!("{a}.q_proj.bias"), vec![q_out]));
            out.push((format!("{a}.k_proj.bias"), vec![kv_out]));
            out.push((format!("{a}.v_proj.bias"), vec![kv_out]));
        }
        if cfg.o_bias() {
            out.push((format!("{a}.o_proj.bias"), vec![h]));
        }
        let i_sz = cfg.intermediate_size;
        out.push((format!("{p}.mlp.gate_proj.weight"), vec![i_sz, h]));
        out.push((format!("{p}.mlp.up_proj.weight"), vec![i_sz, h]));
        out.push((format!("{p}.mlp.down_proj.weight"), vec![h, i_sz]));
        out.push((format!("{p}.input_layernorm.weight"), vec![h]));
        out.push((format!("{p}.post_attention_layernorm.weight"), vec![h]));
    }
    out.push(("model.norm.weight".to_string(), vec![h]));
    if !cfg.tie_word_embeddings {
        out.push(("lm_head.weight".to_string(), vec![cfg.vocab_size, h]));
    }
    out
}

/// Random weights as HF initialises them (normal with std 0.02, norms at 1), except that
/// biases are drawn like weights rather than zeroed so that tests exercise them. Deterministic
/// in `seed` and independent of the device.
pub fn random_tensors(
    cfg: &ModelConfig,
    device: &Device,
    dtype: DType,
    seed: u64,
) -> Result<HashMap<String, Tensor>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = HashMap::new();
    for (name, shape) in weight_shapes(cfg) {
        let n: usize = shape.iter().product();
        let data: Vec<f32> = if name.ends_with("norm.weight") {
            vec![1.0; n]
        } else {
            (0..n).map(|_| 0.02 * standard_normal(&mut rng)).collect()
        };
        let t = Tensor::from_vec(data, shape, device)?.to_dtype(dtype)?;
        out.insert(name, t);
    }
    Ok(out)
}

/// One draw from N(0, 1) by Box-Muller.
fn standard_normal(rng: &mut ChaCha8Rng) -> f32 {
    let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.random::<f64>();
    ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
}

/// Checks that `tensors` holds every weight of `cfg` with the right shape, and returns the
/// ones the network uses converted to `dtype` on `device` (extra tensors such as a redundant
/// `lm_head.weight` of a tied model, or rotary buffers, are dropped).
pub fn check_and_convert(
    cfg: &ModelConfig,
    tensors: &HashMap<String, Tensor>,
    device: &Device,
    dtype: DType,
) -> Result<HashMap<String, Tensor>> {
    let mut out = HashMap::new();
    for (name, shape) in weight_shapes(cfg) {
        let t = tensors
            .get(&name)
            .ok_or_else(|| ModelError::MissingWeight(name.clone()))?;
        if t.dims() != shape.as_slice() {
            return Err(ModelError::WeightShape {
                name,
                actual: t.dims().to_vec(),
                expected: shape,
            });
        }
        let t = t.to_device(device)?.to_dtype(dtype)?;
        out.insert(name, t);
    }
    Ok(out)
}

/// Reads every tensor of an HF directory: `model.safetensors`, or the shards listed by
/// `model.safetensors.index.json`.
pub fn load_safetensors_dir(dir: &Path, device: &Device) -> Result<HashMap<String, Tensor>> {
    let single = dir.join("model.safetensors");
    if single.is_file() {
        return Ok(candle_core::safetensors::load(&single, device)?);
    }
    let index = dir.join("model.safetensors.index.json");
    if !index.is_file() {
        return Err(ModelError::UnsupportedCheckpoint {
            path: dir.to_path_buf(),
            reason: "neither model.safetensors nor model.safetensors.index.json found".into(),
        });
    }
    let text = std::fs::read_to_string(&index).map_err(|e| ModelError::io(&index, e))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| ModelError::json(&index, e))?;
    let map = json
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| ModelError::UnsupportedCheckpoint {
            path: index.clone(),
            reason: "no `weight_map` object".into(),
        })?;
    let files: BTreeSet<&str> = map.values().filter_map(|v| v.as_str()).collect();
    let mut out = HashMap::new();
    for file in files {
        let path = dir.join(file);
        let shard = candle_core::safetensors::load(&path, device)?;
        out.extend(shard);
    }
    for name in map.keys() {
        if !out.contains_key(name) {
            return Err(ModelError::MissingWeight(name.clone()));
        }
    }
    Ok(out)
}

/// Writes `tensors` as a single `model.safetensors` in `dir`.
pub fn save_safetensors(dir: &Path, tensors: &HashMap<String, Tensor>) -> Result<()> {
    let path = dir.join("model.safetensors");
    candle_core::safetensors::save(tensors, &path)?;
    Ok(())
}
