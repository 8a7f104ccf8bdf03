//! The ops whose fast candle kernels have no backward (softmax, RMSNorm, RoPE) plus SwiGLU,
//! the dense layers and attention, behind one switch, [`Kernels`]: hand-written differentiable
//! CPU kernels for training (multi-threaded, fused, exact gradients), candle-primitive
//! compositions as the portable reference, and fused forward-only kernels for inference over
//! detached weights.
//!
//! On the CPU both [`Kernels::Differentiable`] and [`Kernels::Fused`] run this crate's kernels
//! (the latter without recording a backward); other devices use candle's ops.

use std::sync::Arc;

use candle_core::{DType, Tensor, D};

use super::cache::KvCache;
use super::cpu_attention::{AttnSpec, CachedAttention, FlashAttention};
use super::cpu_linear::{GateUp, Linear, LinearBias};
use super::cpu_ops;
use super::error::{ModelError, Result};

/// Which implementation of softmax / RMSNorm / RoPE / SwiGLU a forward uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernels {
    /// Ops with gradients: this crate's custom CPU kernels (fast, hand-written backward) on
    /// the CPU, [`Kernels::Composed`] on other devices. The training path.
    Differentiable,
    /// Ops with gradients built only from candle primitives (slower; the reference the
    /// custom kernels are tested against).
    Composed,
    /// Forward-only kernels (this crate's CPU kernels without a recorded backward on the CPU,
    /// candle's fused kernels elsewhere): fastest, but gradients stop at them silently. Only
    /// for weights that are not trained (snapshots used by samplers and reference policies).
    Fused,
}

impl Kernels {
    /// The hand-written differentiable CPU kernels apply.
    fn custom_on(self, t: &Tensor) -> bool {
        self == Kernels::Differentiable && t.device().is_cpu()
    }

    /// This crate's CPU kernels apply (with a backward for [`Kernels::Differentiable`],
    /// forward-only for [`Kernels::Fused`]).
    pub(crate) fn cpu_on(self, t: &Tensor) -> bool {
        self != Kernels::Composed && t.device().is_cpu()
    }

    /// Whether the tensors of [`AttnBias`] / [`RopeAt`] are needed on `dev` (the CPU kernels
    /// use only the host values).
    pub(crate) fn needs_tensors(self, dev: &candle_core::Device) -> bool {
        !dev.is_cpu() || self == Kernels::Composed
    }
}

/// The additive attention mask `[B, 1, T, S]`, as a tensor (model dtype; only where
/// [`Kernels::needs_tensors`]) and host values.
#[derive(Debug, Clone)]
pub(crate) struct AttnBias {
    pub tensor: Option<Tensor>,
    pub host: Arc<Vec<f32>>,
}

/// RoPE angles at each token's position: `[B, T, D/2]` cos and sin, as tensors (model dtype;
/// only where [`Kernels::needs_tensors`]) and host values.
#[derive(Debug, Clone)]
pub(crate) struct RopeAt {
    pub tensors: Option<(Tensor, Tensor)>,
    pub cos_host: Arc<Vec<f32>>,
    pub sin_host: Arc<Vec<f32>>,
}

fn missing(what: &str) -> ModelError {
    ModelError::InvalidInput(format!(
        "internal: {what} tensor not built for these kernels"
    ))
}

/// `y = x W^T (+ b)` over the last axis of `x`.
pub(crate) fn linear(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    kernels: Kernels,
) -> Result<Tensor> {
    if kernels.cpu_on(x) {
        let x = x.contiguous()?;
        let w = w.contiguous()?;
        let grad = kernels == Kernels::Differentiable;
        return Ok(match (b, grad) {
            (Some(b), true) => x.apply_op3(&w, &b.contiguous()?, LinearBias)?,
            (Some(b), false) => x.apply_op3_no_bwd(&w, &b.contiguous()?, &LinearBias)?,
            (None, true) => x.apply_op2(&w, Linear)?,
            (None, false) => x.apply_op2_no_bwd(&w, &Linear)?,
        });
    }
    let dims = x.dims().to_vec();
    let k = dims.last().copied().unwrap_or(1);
    let rows = x.elem_count() / k.max(1);
    let y = x.reshape((rows, k))?.matmul(&w.t()?)?;
    let y = match b {
        Some(bias) => y.broadcast_add(bias)?,
        None => y,
    };
    let mut out = dims;
    if let Some(last) = out.last_mut() {
        *last = w.dim(0)?;
    }
    Ok(y.reshape(out)?)
}

/// The SwiGLU MLP front `silu(x Wg^T) * (x Wu^T)`.
pub(crate) fn gate_up(x: &Tensor, wg: &Tensor, wu: &Tensor, kernels: Kernels) -> Result<Tensor> {
    if kernels.cpu_on(x) {
        let (x, wg, wu) = (x.contiguous()?, wg.contiguous()?, wu.contiguous()?);
        return Ok(if kernels == Kernels::Differentiable {
            x.apply_op3(&wg, &wu, GateUp::new())?
        } else {
            x.apply_op3_no_bwd(&wg, &wu, &GateUp::new())?
        });
    }
    swiglu(
        &linear(x, wg, None, kernels)?,
        &linear(x, wu, None, kernels)?,
        kernels,
    )
}

/// Which path [`attention`] takes.
pub(crate) fn attention_is_fused(kernels: Kernels, x: &Tensor, has_cache: bool) -> bool {
    x.device().is_cpu()
        && match kernels {
            Kernels::Differentiable => !has_cache,
            Kernels::Fused => true,
            Kernels::Composed => false,
        }
}

/// Causal self-attention of the new tokens' projections `q` `[B, T, H * D]`, `k`, `v`
/// `[B, T, KVH * D]` (before RoPE), over the cache (if any, extended here with the new keys and
/// values) and themselves; returns the context `[B, T, H * D]`. Only for the cases where
/// [`attention_is_fused`] holds.
#[allow(clippy::too_many_arguments)]
pub(crate) fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    heads: usize,
    kv_heads: usize,
    rope_at: &RopeAt,
    bias: Option<&AttnBias>,
    cache: Option<(&mut KvCache, usize)>,
    kernels: Kernels,
) -> Result<Tensor> {
    let (b, t, hd_all) = q.dims3()?;
    let head_dim = hd_all / heads;
    let past = match &cache {
        Some((c, layer)) => match &c.layers[*layer] {
            Some((pk, _)) => pk.dim(2)?,
            None => 0,
        },
        None => 0,
    };
    let spec = AttnSpec {
        b,
        t,
        past,
        heads,
        kv_heads,
        head_dim,
        scale: 1.0 / (head_dim as f32).sqrt(),
        cos: Arc::clone(&rope_at.cos_host),
        sin: Arc::clone(&rope_at.sin_host),
        bias: bias.map(|b| Arc::clone(&b.host)),
    };
    let (q, k, v) = (q.contiguous()?, k.contiguous()?, v.contiguous()?);
    if kernels == Kernels::Differentiable && cache.is_none() {
        return Ok(q.apply_op3(&k, &v, FlashAttention::new(spec))?);
    }
    // Inference: rotate the new keys into the cache layout [B, KVH, T, D], append.
    let rot = cpu_ops::Rope {
        cos: Arc::clone(&rope_at.cos_host),
        sin: Arc::clone(&rope_at.sin_host),
        sin_sign: 1.0,
        scale: 1.0,
        to_heads_first: true,
    };
    let k = k
        .reshape((b, t, kv_heads, head_dim))?
        .apply_op1_no_bwd(&rot)?;
    let v = v
        .reshape((b, t, kv_heads, head_dim))?
        .transpose(1, 2)?
        .contiguous()?;
    let (k, v) = match cache {
        Some((c, layer)) => c.append(layer, k, v)?,
        None => (k, v),
    };
    // The op reads row-strided keys/values (views of the engine's preallocated KV slots stay
    // uncopied); anything else is made contiguous first.
    let row_strided = |x: &Tensor| x.stride().last() == Some(&1);
    let k = if row_strided(&k) { k } else { k.contiguous()? };
    let v = if row_strided(&v) { v } else { v.contiguous()? };
    Ok(q.apply_op3_no_bwd(&k, &v, &CachedAttention { spec })?)
}

/// Attention probabilities: softmax over the last axis of `scores + bias`, `scores` being
/// `[B, H, T, S]`.
pub(crate) fn attention_probs(
    scores: &Tensor,
    bias: Option<&AttnBias>,
    kernels: Kernels,
) -> Result<Tensor> {
    if kernels.custom_on(scores) {
        let op = cpu_ops::MaskedSoftmax {
            bias: bias.map(|b| Arc::clone(&b.host)),
            heads: scores.dim(1)?,
        };
        return Ok(scores.contiguous()?.apply_op1(op)?);
    }
    let scores = match bias {
        Some(b) => scores.broadcast_add(b.tensor.as_ref().ok_or_else(|| missing("mask"))?)?,
        None => scores.clone(),
    };
    Ok(match kernels {
        Kernels::Fused => candle_nn::ops::softmax_last_dim(&scores.contiguous()?)?,
        _ => candle_nn::ops::softmax(&scores, D::Minus1)?,
    })
}

/// RMSNorm over the last dimension with weight `alpha` (statistics in f32).
pub(crate) fn rms_norm(xs: &Tensor, alpha: &Tensor, eps: f64, kernels: Kernels) -> Result<Tensor> {
    if kernels.cpu_on(xs) {
        let op = cpu_ops::RmsNorm { eps: eps as f32 };
        let (xs, alpha) = (xs.contiguous()?, alpha.contiguous()?);
        return Ok(if kernels == Kernels::Differentiable {
            xs.apply_op2(&alpha, op)?
        } else {
            xs.apply_op2_no_bwd(&alpha, &op)?
        });
    }
    Ok(match kernels {
        Kernels::Fused => candle_nn::ops::rms_norm(&xs.contiguous()?, alpha, eps as f32)?,
        _ => {
            let dtype = xs.dtype();
            let x = xs.to_dtype(DType::F32)?;
            let ms = x.sqr()?.mean_keepdim(D::Minus1)?;
            let normed = x.broadcast_mul(&(ms + eps)?.sqrt()?.recip()?)?;
            normed.to_dtype(dtype)?.broadcast_mul(alpha)?
        }
    })
}

/// Rotary embedding (HF "rotate half" convention) with per-row positions, times `scale`.
/// Takes `[B, T, H, D]` (the projection's layout) and returns `[B, H, T, D]`.
pub(crate) fn rope(xs: &Tensor, at: &RopeAt, scale: f64, kernels: Kernels) -> Result<Tensor> {
    if kernels.custom_on(xs) {
        let op = cpu_ops::Rope {
            cos: Arc::clone(&at.cos_host),
            sin: Arc::clone(&at.sin_host),
            sin_sign: 1.0,
            scale: scale as f32,
            to_heads_first: true,
        };
        return Ok(xs.contiguous()?.apply_op1(op)?);
    }
    let x = xs.transpose(1, 2)?;
    let (cos, sin) = at.tensors.as_ref().ok_or_else(|| missing("rope"))?;
    let y = match kernels {
        Kernels::Fused => candle_nn::rotary_emb::rope(&x.contiguous()?, cos, sin)?,
        _ => {
            let half = x.dim(D::Minus1)? / 2;
            let cos = Tensor::cat(&[cos, cos], D::Minus1)?.unsqueeze(1)?;
            let sin = Tensor::cat(&[sin, sin], D::Minus1)?.unsqueeze(1)?;
            let x1 = x.narrow(D::Minus1, 0, half)?;
            let x2 = x.narrow(D::Minus1, half, half)?;
            let rotated = Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)?;
            (x.broadcast_mul(&cos)? + rotated.broadcast_mul(&sin)?)?
        }
    };
    Ok(if scale == 1.0 { y } else { (y * scale)? })
}

/// The SwiGLU gate `silu(g) * u`.
pub(crate) fn swiglu(g: &Tensor, u: &Tensor, kernels: Kernels) -> Result<Tensor> {
    if kernels.cpu_on(g) {
        let (g, u) = (g.contiguous()?, u.contiguous()?);
        return Ok(if kernels == Kernels::Differentiable {
            g.apply_op2(&u, cpu_ops::SwiGlu)?
        } else {
            g.apply_op2_no_bwd(&u, &cpu_ops::SwiGlu)?
        });
    }
    Ok((g.silu()? * u)?)
}

/// Mean cross-entropy (f32 scalar) of `[N, V]` logits against `[N]` u32 targets. On the CPU
/// with [`Kernels::Differentiable`] or [`Kernels::Fused`] it is one fused op (a log-sum-exp per
/// row and the target's logit; the backward writes `softmax - onehot` directly) instead of a
/// materialised `[N, V]` log-softmax; elsewhere it is `candle_nn::loss::cross_entropy`.
///
/// # Errors
/// Mismatched shapes or a target outside the vocabulary.
pub fn cross_entropy(logits: &Tensor, targets: &Tensor, kernels: Kernels) -> Result<Tensor> {
    if kernels.cpu_on(logits) {
        let (n, _) = logits.dims2()?;
        let targets = targets
            .flatten_all()?
            .to_dtype(DType::U32)?
            .to_vec1::<u32>()?;
        if targets.len() != n {
            return Err(ModelError::InvalidInput(format!(
                "{} targets for {n} rows of logits",
                targets.len()
            )));
        }
        let op = cpu_ops::TokenLogProbEntropy {
            targets: Arc::new(targets),
            entropy: false,
        };
        let lp = logits.contiguous()?.apply_op1(op)?;
        return Ok(lp.mean_all()?.neg()?);
    }
    Ok(candle_nn::loss::cross_entropy(
        &logits.to_dtype(DType::F32)?,
        targets,
    )?)
}
