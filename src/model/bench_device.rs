//! The accelerator-facing parts of `azr bench model`: greedy parity of a device against the
//! CPU on the same seeded weights, the rollout engine's throughput over a sweep of batch sizes
//! with batch-1 decode placed against the memory-bandwidth bound, and the FLOP count behind the
//! learner's MFU. They run on the CPU too (`scripts/gpu-check.sh --cpu-rehearsal`), where
//! parity compares the CPU with itself and only exercises the plumbing.

use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use super::error::Result;
use super::kernels::Kernels;
use super::policy::{Model, Snapshot};
use super::sampling::{generate, SamplingParams};
use super::ModelConfig;
use crate::engine::{spawn, EngineConfig, GenRequest, WeightSync};

/// Greedy parity of the configured device against the CPU (both f32, the same seeded weights).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParityReport {
    /// Device compared with the CPU.
    pub device: String,
    /// Greedy tokens generated on each side.
    pub tokens: usize,
    /// Length of the common prefix of the two greedy continuations.
    pub matching_prefix: usize,
    /// Whether the continuations are identical.
    pub identical: bool,
    /// Largest |logit difference| over the vocabulary at every prompt position (one forward).
    pub max_abs_logit_diff: f32,
    /// Largest |logit| on the CPU, for scale.
    pub max_abs_logit: f32,
}

/// The same prompt for both sides: a fixed pattern over the vocabulary.
fn parity_prompt(len: usize, vocab: usize) -> Vec<u32> {
    (0..len.max(1))
        .map(|t| ((t * 37 + 11) % vocab) as u32)
        .collect()
}

/// Builds `mcfg` with seeded random weights in f32 on the CPU and on `device` (the weights are
/// drawn on the host, so both sides hold the same numbers), then compares one forward's logits
/// over a `prompt_len`-token prompt and `tokens` greedy tokens.
///
/// # Errors
/// A tensor failure on either device.
pub fn parity(
    mcfg: &ModelConfig,
    tokenizer: &super::Tokenizer,
    device: &Device,
    device_name: &str,
    seed: u64,
    prompt_len: usize,
    tokens: usize,
) -> Result<ParityReport> {
    let prompt = parity_prompt(prompt_len, mcfg.vocab_size);
    let run = |dev: &Device| -> Result<(Vec<f32>, Vec<u32>)> {
        let model = Model::random(mcfg.clone(), tokenizer.clone(), dev, DType::F32, seed)?;
        let ids = Tensor::new(prompt.as_slice(), dev)?.unsqueeze(0)?;
        let logits = model
            .transformer()
            .forward(&ids, None, None, Kernels::Differentiable)?
            .to_device(&Device::Cpu)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let snap = model.snapshot()?;
        let gen = generate(
            &snap,
            std::slice::from_ref(&prompt),
            &SamplingParams::greedy(tokens),
        )?;
        let toks = gen.into_iter().next().map(|g| g.tokens).unwrap_or_default();
        Ok((logits, toks))
    };
    let (cpu_logits, cpu_tokens) = run(&Device::Cpu)?;
    let (dev_logits, dev_tokens) = run(device)?;
    let max_abs_logit_diff = cpu_logits
        .iter()
        .zip(&dev_logits)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    let max_abs_logit = cpu_logits.iter().map(|x| x.abs()).fold(0.0f32, f32::max);
    let matching_prefix = cpu_tokens
        .iter()
        .zip(&dev_tokens)
        .take_while(|(a, b)| a == b)
        .count();
    Ok(ParityReport {
        device: device_name.to_string(),
        tokens: cpu_tokens.len().max(dev_tokens.len()),
        matching_prefix,
        identical: cpu_tokens == dev_tokens,
        max_abs_logit_diff,
        max_abs_logit,
    })
}

/// The rollout engine at one batch size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnginePoint {
    /// Requests submitted together (as many engine slots).
    pub batch: usize,
    /// Tokens generated.
    pub tokens: u64,
    /// Wall seconds from submission to the last answer (prefill included).
    pub seconds: f64,
    /// `tokens / seconds`.
    pub tokens_per_s: f64,
    /// Seconds the engine spent in decode iterations.
    pub decode_secs: f64,
    /// Decode iterations.
    pub decode_steps: u64,
    /// Milliseconds per decode iteration (one token for every active row).
    pub ms_per_decode_step: f64,
    /// Rows decoded per second in decode iterations (`decode_rows / decode_secs`).
    pub decode_tokens_per_s: f64,
}

/// The engine sweep and the bandwidth bound of batch-1 decode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EngineSweep {
    /// One point per batch size, in the order asked.
    pub points: Vec<EnginePoint>,
    /// Bytes of weights one decode step reads (every parameter once, in the bench dtype).
    pub weight_bytes: u64,
    /// The memory bandwidth the bound uses, GB/s (`hbm_gbps` in the config), if given.
    pub hbm_gbps: Option<f64>,
    /// Batch-1 decode tokens/s the bandwidth allows: `hbm_gbps * 1e9 / weight_bytes`.
    pub b1_bound_tokens_per_s: Option<f64>,
    /// Measured batch-1 decode tokens/s over that bound.
    pub b1_fraction_of_bound: Option<f64>,
}

/// Runs `batches` through fresh engines on `snap`'s device: at batch B, B distinct prompts of
/// `prompt_len` tokens, one sample each at temperature 1 with no stop token, `new_tokens`
/// tokens each, B slots. One small warm-up run precedes the sweep. `params` is the model's
/// parameter count (for the weight bytes of the bandwidth bound).
///
/// # Errors
/// The engine could not start, or a forward failed.
pub fn engine_sweep(
    snap: &Snapshot,
    params: usize,
    batches: &[usize],
    prompt_len: usize,
    new_tokens: usize,
    seed: u64,
    hbm_gbps: Option<f64>,
) -> std::result::Result<EngineSweep, crate::engine::EngineError> {
    let vocab = snap.config().vocab_size;
    let run = |batch: usize, new: usize| {
        let cfg = EngineConfig {
            max_slots: batch.max(1),
            weight_sync: WeightSync::InFlight,
            max_waiting: batch.max(1),
            max_seq_len: prompt_len + new + 8,
        };
        let (engine, join) =
            spawn(snap.clone(), 0, cfg).map_err(|e| crate::engine::EngineError::Spawn(e.into()))?;
        let params = |i: usize| SamplingParams {
            temperature: 1.0,
            max_new_tokens: new,
            stop_token_ids: Vec::new(),
            seed: seed + i as u64,
            ..SamplingParams::default()
        };
        let start = Instant::now();
        let tickets = (0..batch)
            .map(|i| {
                let prompt = (0..prompt_len.max(1))
                    .map(|t| ((i * 131 + t * 17 + 3) % vocab) as u32)
                    .collect();
                engine.submit(GenRequest::new(prompt, 1, params(i)))
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let mut tokens = 0u64;
        for t in tickets {
            tokens += t.wait()?.iter().map(|s| s.tokens.len() as u64).sum::<u64>();
        }
        let seconds = start.elapsed().as_secs_f64();
        let stats = engine.stats();
        engine.shutdown();
        let _ = join.join();
        let decode_secs = stats.decode_secs;
        Ok::<_, crate::engine::EngineError>(EnginePoint {
            batch,
            tokens,
            seconds,
            tokens_per_s: tokens as f64 / seconds.max(1e-9),
            decode_secs,
            decode_steps: stats.decode_steps,
            ms_per_decode_step: 1e3 * decode_secs / (stats.decode_steps.max(1) as f64),
            decode_tokens_per_s: stats.decode_rows as f64 / decode_secs.max(1e-9),
        })
    };
    run(1, new_tokens.min(4))?;
    let mut points = Vec::with_capacity(batches.len());
    for &b in batches {
        let p = run(b, new_tokens)?;
        tracing::info!(
            batch = p.batch,
            tokens_per_s = p.tokens_per_s,
            ms_per_step = p.ms_per_decode_step,
            "engine point"
        );
        points.push(p);
    }
    let weight_bytes = (params * snap.dtype().size_in_bytes()) as u64;
    let b1_bound_tokens_per_s = hbm_gbps.map(|g| g * 1e9 / weight_bytes.max(1) as f64);
    let b1_fraction_of_bound = points
        .iter()
        .find(|p| p.batch == 1)
        .zip(b1_bound_tokens_per_s)
        .map(|(p, bound)| p.decode_tokens_per_s / bound);
    Ok(EngineSweep {
        points,
        weight_bytes,
        hbm_gbps,
        b1_bound_tokens_per_s,
        b1_fraction_of_bound,
    })
}

/// Training FLOPs per token of `cfg` at sequence length `seq`, PaLM's count (Chowdhery et al.
/// 2022, appendix B): `6 N + 12 L H Q T`, with `N` the parameters that take part in matrix
/// products (the input embedding is a lookup and does not, unless it is tied to the output
/// head) and `H Q` the attention width; attention is counted without the causal half, as
/// PaLM does.
pub fn train_flops_per_token(cfg: &ModelConfig, seq: usize) -> f64 {
    let h = cfg.hidden_size;
    let (heads, kv, hd) = (cfg.num_attention_heads, cfg.kv_heads(), cfg.head_dim());
    let attn = h * heads * hd + 2 * h * kv * hd + heads * hd * h;
    let mlp = 3 * h * cfg.intermediate_size;
    let head = cfg.vocab_size * h;
    let n = cfg.num_hidden_layers * (attn + mlp) + head;
    6.0 * n as f64 + 12.0 * (cfg.num_hidden_layers * heads * hd * seq) as f64
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::Tokenizer;

    /// L2, d32, 4 heads of 8 (2 KV heads), ffn 64, vocab 64, tied, q/k/v bias.
    pub(crate) fn tiny_shape() -> crate::model::bench::BenchModel {
        crate::model::bench::BenchModel {
            name: "tiny-gqa".into(),
            hidden: 32,
            layers: 2,
            heads: 4,
            ffn: 64,
            vocab: 64,
            kv_heads: Some(2),
            tie_embeddings: true,
            attention_bias: true,
        }
    }

    fn tiny() -> ModelConfig {
        tiny_shape().config()
    }

    #[test]
    fn flops_follow_palm_by_hand() {
        // L2, d32, 4 heads of 8 (2 KV heads), ffn 64, V64, T16:
        // attn 32*32 + 2*32*16 + 32*32 = 3072; mlp 3*32*64 = 6144; head 64*32 = 2048
        // N = 2*(3072+6144) + 2048 = 20480; 6N = 122880; 12*L*H*Q*T = 12*2*32*16 = 12288.
        assert_eq!(train_flops_per_token(&tiny(), 16), 122_880.0 + 12_288.0);
    }

    #[test]
    fn cpu_parity_with_itself_is_exact() {
        let tok = Tokenizer::synthetic(64).unwrap();
        let r = parity(&tiny(), &tok, &Device::Cpu, "cpu", 3, 8, 6).unwrap();
        assert!(r.identical, "{r:?}");
        assert_eq!(r.matching_prefix, 6);
        assert_eq!(r.max_abs_logit_diff, 0.0);
        assert!(r.max_abs_logit > 0.0);
    }

    #[test]
    fn engine_sweep_counts_every_token_and_the_bound() {
        let tok = Tokenizer::synthetic(64).unwrap();
        let model = Model::random(tiny(), tok, &Device::Cpu, DType::F32, 1).unwrap();
        let snap = model.snapshot().unwrap();
        let s = engine_sweep(&snap, model.num_params(), &[1, 3], 5, 7, 0, Some(1.0)).unwrap();
        assert_eq!(s.points.len(), 2);
        assert_eq!(s.points[0].tokens, 7);
        assert_eq!(s.points[1].tokens, 21);
        assert_eq!(s.weight_bytes, 4 * model.num_params() as u64);
        // 1 GB/s over the weight bytes.
        let bound = 1e9 / s.weight_bytes as f64;
        assert!((s.b1_bound_tokens_per_s.unwrap() - bound).abs() < 1e-6 * bound);
        let frac = s.points[0].decode_tokens_per_s / bound;
        assert!((s.b1_fraction_of_bound.unwrap() - frac).abs() < 1e-9 * frac.max(1.0));
    }
}
