//! The ops whose fast candle kernels have no backward (softmax, RMSNorm, RoPE) plus SwiGLU,
//! behind one switch, [`Kernels`]: hand-written differentiable CPU kernels for training,
//! candle-primitive compositions as the portable reference, and candle's fused kernels for
//! inference over detached weights.

use std::sync::Arc;

use candle_core::{DType, Tensor, D};

use super::cpu_ops;
use super::error::Result;

/// Which implementation of softmax / RMSNorm / RoPE / SwiGLU a forward uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernels {
    /// Ops with gradients: this crate's custom CPU kernels (fast, hand-written backward) on
    /// the CPU, [`Kernels::Composed`] on other devices. The training path.
    Differentiable,
    /// Ops with gradients built only from candle primitives (slower; the reference the
    /// custom kernels are tested against).
    Composed,
    /// candle's fused kernels: fastest, but gradients stop at them silently. Only for weights
    /// that are not trained (snapshots used by samplers and reference policies).
    Fused,
}

impl Kernels {
    fn custom_on(self, t: &Tensor) -> bool {
        self == Kernels::Differentiable && t.device().is_cpu()
    }
}

/// The additive attention mask `[B, 1, T, S]`, as a tensor (model dtype) and host values.
#[derive(Debug, Clone)]
pub(crate) struct AttnBias {
    pub tensor: Tensor,
    pub host: Arc<Vec<f32>>,
}

/// RoPE angles at each token's position: `[B, T, D/2]` cos and sin, as tensors (model dtype)
/// and host values.
#[derive(Debug, Clone)]
pub(crate) struct RopeAt {
    pub cos: Tensor,
    pub sin: Tensor,
    pub cos_host: Arc<Vec<f32>>,
    pub sin_host: Arc<Vec<f32>>,
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
        Some(b) => scores.broadcast_add(&b.tensor)?,
        None => scores.clone(),
    };
    Ok(match kernels {
        Kernels::Fused => candle_nn::ops::softmax_last_dim(&scores.contiguous()?)?,
        _ => candle_nn::ops::softmax(&scores, D::Minus1)?,
    })
}

/// RMSNorm over the last dimension with weight `alpha` (statistics in f32).
pub(crate) fn rms_norm(xs: &Tensor, alpha: &Tensor, eps: f64, kernels: Kernels) -> Result<Tensor> {
    if kernels.custom_on(xs) {
        let op = cpu_ops::RmsNorm { eps: eps as f32 };
        return Ok(xs.contiguous()?.apply_op2(alpha, op)?);
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
        };
        return Ok(xs.contiguous()?.apply_op1(op)?.transpose(1, 2)?);
    }
    let x = xs.transpose(1, 2)?;
    let y = match kernels {
        Kernels::Fused => candle_nn::rotary_emb::rope(&x.contiguous()?, &at.cos, &at.sin)?,
        _ => {
            let half = x.dim(D::Minus1)? / 2;
            let cos = Tensor::cat(&[&at.cos, &at.cos], D::Minus1)?.unsqueeze(1)?;
            let sin = Tensor::cat(&[&at.sin, &at.sin], D::Minus1)?.unsqueeze(1)?;
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
    if kernels.custom_on(g) {
        return Ok(g
            .contiguous()?
            .apply_op2(&u.contiguous()?, cpu_ops::SwiGlu)?);
    }
    Ok((g.silu()? * u)?)
}
