//! Batched autoregressive sampling from a [`Snapshot`]: ragged prompts (left-padded
//! internally), an optional KV cache, temperature / top-k / top-p, stop tokens, a token budget,
//! and one RNG per sample so results do not depend on how prompts are batched.

use candle_core::{DType, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::cache::KvCache;
use super::error::{ModelError, Result};
use super::layout::pad_left;
use super::policy::Snapshot;
use super::transformer::ids_tensor;

/// How to sample. Defaults: temperature 1, no top-k/top-p filtering, 256 new tokens, no stop
/// tokens, seed 0, KV cache on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SamplingParams {
    /// Softmax temperature; `0` means greedy (argmax). Default 1.0.
    pub temperature: f32,
    /// Nucleus sampling: keep the smallest set of tokens whose probability mass reaches
    /// `top_p` (after temperature). `1.0` (default) disables it.
    pub top_p: f32,
    /// Keep only the `top_k` most likely tokens; `0` (default) disables it. `1` is greedy.
    pub top_k: usize,
    /// Maximum number of generated tokens per sample (the stop token included). Default 256.
    pub max_new_tokens: usize,
    /// Generation of a sample ends after it emits one of these ids (kept in the output).
    /// Default: none.
    pub stop_token_ids: Vec<u32>,
    /// Sample `i` of a call uses an RNG seeded with `seed + i`. Default 0.
    pub seed: u64,
    /// Whether to decode with the KV cache (default true); without it every step re-runs the
    /// whole prefix (only useful as a benchmark baseline and a cross-check).
    pub use_cache: bool,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            temperature: 1.0,
            top_p: 1.0,
            top_k: 0,
            max_new_tokens: 256,
            stop_token_ids: Vec::new(),
            seed: 0,
            use_cache: true,
        }
    }
}

impl SamplingParams {
    /// Greedy decoding of up to `max_new_tokens` tokens.
    pub fn greedy(max_new_tokens: usize) -> Self {
        Self {
            temperature: 0.0,
            max_new_tokens,
            ..Self::default()
        }
    }
}

/// Why a sample ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StopReason {
    /// It emitted this stop token (the last entry of `tokens`).
    StopToken(u32),
    /// It reached `max_new_tokens` or the model's maximum context.
    Length,
}

/// One sampled continuation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Generation {
    /// Generated token ids (the prompt excluded, the stop token included).
    pub tokens: Vec<u32>,
    /// For each generated token, its log-probability under the **unmodified policy
    /// distribution**: softmax of the raw logits at temperature 1, without top-k/top-p
    /// filtering. This is the quantity `response_logprobs` recomputes, so it can serve as the
    /// "old" log-prob of PPO when sampling at temperature 1 without filtering.
    pub logprobs: Vec<f32>,
    /// Why generation ended.
    pub stop: StopReason,
}

/// Samples one continuation per prompt. See [`SamplingParams`] and [`Generation`].
///
/// # Errors
/// An empty prompt, a token id outside the vocabulary, or a tensor failure.
pub fn generate(
    snap: &Snapshot,
    prompts: &[Vec<u32>],
    params: &SamplingParams,
) -> Result<Vec<Generation>> {
    let cfg = snap.config();
    for (i, p) in prompts.iter().enumerate() {
        if p.is_empty() {
            return Err(ModelError::InvalidInput(format!("prompt {i} is empty")));
        }
        if let Some(&bad) = p.iter().find(|&&t| t as usize >= cfg.vocab_size) {
            return Err(ModelError::InvalidInput(format!(
                "prompt {i} has token {bad} outside the vocabulary of {}",
                cfg.vocab_size
            )));
        }
    }
    let n = prompts.len();
    let mut out: Vec<Generation> = (0..n)
        .map(|_| Generation {
            tokens: Vec::new(),
            logprobs: Vec::new(),
            stop: StopReason::Length,
        })
        .collect();
    if n == 0 || params.max_new_tokens == 0 {
        return Ok(out);
    }
    let max_ctx = cfg.max_position_embeddings;
    let mut rngs: Vec<ChaCha8Rng> = (0..n)
        .map(|i| ChaCha8Rng::seed_from_u64(params.seed.wrapping_add(i as u64)))
        .collect();
    // `active[r]` is the prompt index of batch row `r`.
    let mut active: Vec<usize> = (0..n).collect();
    let dev = snap.device().clone();
    let net = snap.transformer();
    let (ids, layout) = pad_left(prompts, 0)?;
    let t = layout.seq();
    // Keys and values of the prompt and of every new token but the last, written in place.
    let mut cache = if params.use_cache {
        let shape = (n, cfg.kv_heads(), t + params.max_new_tokens, cfg.head_dim());
        KvCache::preallocated(cfg.num_hidden_layers, shape, snap.dtype(), &dev)?
    } else {
        snap.new_cache()
    };
    let mut last_logits = if params.use_cache {
        let ids = ids_tensor(&ids, n, t, &dev)?;
        let h = net.hidden(&ids, Some(&layout), Some(&mut cache), super::Kernels::Fused)?;
        rows_f32(&net.logits(&h.narrow(1, t - 1, 1)?)?)?
    } else {
        uncached_last_logits(snap, prompts, &out, &active)?
    };

    loop {
        let mut finished = Vec::new();
        let mut next = Vec::with_capacity(active.len());
        for (r, &i) in active.iter().enumerate() {
            let (tok, lp) = sample_row(&last_logits[r], params, &mut rngs[i]);
            let g = &mut out[i];
            g.tokens.push(tok);
            g.logprobs.push(lp);
            let ctx = prompts[i].len() + g.tokens.len();
            if params.stop_token_ids.contains(&tok) {
                g.stop = StopReason::StopToken(tok);
                finished.push(r);
            } else if g.tokens.len() >= params.max_new_tokens || ctx >= max_ctx {
                finished.push(r);
            } else {
                next.push(tok);
            }
        }
        if !finished.is_empty() {
            let keep: Vec<usize> = (0..active.len())
                .filter(|r| !finished.contains(r))
                .collect();
            if keep.is_empty() {
                break;
            }
            if params.use_cache {
                cache = cache.select_rows(&keep)?;
            }
            active = keep.iter().map(|&r| active[r]).collect();
        }
        last_logits = if params.use_cache {
            let ids = ids_tensor(&next, active.len(), 1, &dev)?;
            rows_f32(&snap.forward(&ids, None, Some(&mut cache))?)?
        } else {
            uncached_last_logits(snap, prompts, &out, &active)?
        };
    }
    Ok(out)
}

/// Re-runs prompt + generated tokens of the active samples and returns each last row's logits.
fn uncached_last_logits(
    snap: &Snapshot,
    prompts: &[Vec<u32>],
    out: &[Generation],
    active: &[usize],
) -> Result<Vec<Vec<f32>>> {
    let rows: Vec<Vec<u32>> = active
        .iter()
        .map(|&i| {
            let mut r = prompts[i].clone();
            r.extend_from_slice(&out[i].tokens);
            r
        })
        .collect();
    let (ids, layout) = pad_left(&rows, 0)?;
    let t = layout.seq();
    let ids = ids_tensor(&ids, rows.len(), t, snap.device())?;
    let net = snap.transformer();
    let h = net.hidden(&ids, Some(&layout), None, super::Kernels::Fused)?;
    rows_f32(&net.logits(&h.narrow(1, t - 1, 1)?)?)
}

/// `[B, 1, V]` logits to one f32 vector per row.
pub(crate) fn rows_f32(logits: &Tensor) -> Result<Vec<Vec<f32>>> {
    Ok(logits.squeeze(1)?.to_dtype(DType::F32)?.to_vec2::<f32>()?)
}

/// Picks a token from one row of logits; returns it with its log-prob under the unfiltered
/// temperature-1 distribution. Shared with the rollout engine ([`crate::engine`]), so both
/// samplers pick the same token from the same logits and RNG state.
pub(crate) fn sample_row(
    logits: &[f32],
    params: &SamplingParams,
    rng: &mut ChaCha8Rng,
) -> (u32, f32) {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum1 = logits.iter().map(|&x| (x - max).exp()).sum::<f32>();
    let lse = max + sum1.ln();
    let argmax = || {
        let mut best = 0;
        for (i, &x) in logits.iter().enumerate() {
            if x > logits[best] {
                best = i;
            }
        }
        best
    };
    // Inverse-CDF draw over `(token, weight)` candidates whose weights sum to `total`; `last`
    // when rounding leaves the draw past the end.
    let mut draw = |total: f32, cands: &mut dyn Iterator<Item = (usize, f32)>, last: usize| {
        let mut u = rng.random::<f32>() * total;
        for (i, w) in cands {
            if u < w {
                return i;
            }
            u -= w;
        }
        last
    };
    let tok = if params.temperature <= 0.0 || params.top_k == 1 {
        argmax()
    } else {
        let inv_t = 1.0 / params.temperature;
        let filtered = params.top_k > 0 || params.top_p < 1.0;
        let weight = |x: f32| ((x - max) * inv_t).exp();
        if !filtered {
            // The whole vocabulary, without a candidate list of its size: the same weights, sum
            // and scan. At temperature 1 the weights are exactly the log-sum-exp's terms.
            let total: f32 = if inv_t == 1.0 {
                sum1
            } else {
                logits.iter().map(|&x| weight(x)).sum()
            };
            let mut all = logits.iter().enumerate().map(|(i, &x)| (i, weight(x)));
            draw(total, &mut all, logits.len().saturating_sub(1))
        } else {
            // Top-k / top-p: the candidates by weight, heaviest first, cut.
            let mut cands: Vec<(usize, f32)> = logits
                .iter()
                .enumerate()
                .map(|(i, &x)| (i, weight(x)))
                .collect();
            cands.sort_by(|a, b| b.1.total_cmp(&a.1));
            if params.top_k > 0 {
                cands.truncate(params.top_k);
            }
            if params.top_p < 1.0 {
                let total: f32 = cands.iter().map(|c| c.1).sum();
                let mut acc = 0.0;
                let mut keep = cands.len();
                for (j, c) in cands.iter().enumerate() {
                    acc += c.1 / total;
                    if acc >= params.top_p {
                        keep = j + 1;
                        break;
                    }
                }
                cands.truncate(keep.max(1));
            }
            let total: f32 = cands.iter().map(|c| c.1).sum();
            let last = cands.last().map_or_else(argmax, |c| c.0);
            draw(total, &mut cands.into_iter(), last)
        }
    };
    (tok as u32, logits[tok] - lse)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_and_logprob_of_a_row() {
        let logits = [0.0f32, 2.0, 1.0];
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let (tok, lp) = sample_row(&logits, &SamplingParams::greedy(1), &mut rng);
        assert_eq!(tok, 1);
        let lse = (1.0f32 + 2f32.exp() + 1f32.exp()).ln();
        assert!((lp - (2.0 - lse)).abs() < 1e-6);
    }

    #[test]
    fn top_k_and_top_p_restrict_support() {
        let logits = [3.0f32, 2.9, -5.0, -5.0];
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let p = SamplingParams {
            top_k: 2,
            ..SamplingParams::default()
        };
        for _ in 0..200 {
            assert!(sample_row(&logits, &p, &mut rng).0 < 2);
        }
        let p = SamplingParams {
            top_p: 0.3,
            ..SamplingParams::default()
        };
        for _ in 0..200 {
            assert_eq!(sample_row(&logits, &p, &mut rng).0, 0);
        }
        // Without filters both likely tokens appear.
        let p = SamplingParams::default();
        let picks: Vec<u32> = (0..200)
            .map(|_| sample_row(&logits, &p, &mut rng).0)
            .collect();
        assert!(picks.contains(&0) && picks.contains(&1));
    }
}
