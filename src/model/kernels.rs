//! The three ops whose fast candle kernels have no backward (softmax, RMSNorm, RoPE), behind
//! one switch: [`Kernels::Differentiable`] for the training path and [`Kernels::Fused`] for
//! inference over detached weights.

use candle_core::{DType, Tensor, D};

use super::error::Result;

/// Which implementation of softmax / RMSNorm / RoPE a forward uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernels {
    /// Ops that carry gradients (composed, or custom ops with a backward). Always correct.
    Differentiable,
    /// candle's fused kernels: faster, but gradients stop at them silently. Only for weights
    /// that are not trained (snapshots used by samplers and reference policies).
    Fused,
}

/// Softmax over the last dimension.
pub(crate) fn softmax(xs: &Tensor, kernels: Kernels) -> Result<Tensor> {
    Ok(match kernels {
        Kernels::Differentiable => candle_nn::ops::softmax(xs, D::Minus1)?,
        Kernels::Fused => candle_nn::ops::softmax_last_dim(&xs.contiguous()?)?,
    })
}

/// RMSNorm over the last dimension with weight `alpha`, computed in f32.
pub(crate) fn rms_norm(xs: &Tensor, alpha: &Tensor, eps: f64, kernels: Kernels) -> Result<Tensor> {
    Ok(match kernels {
        Kernels::Differentiable => {
            let dtype = xs.dtype();
            let x = if dtype == DType::F32 {
                xs.clone()
            } else {
                xs.to_dtype(DType::F32)?
            };
            let ms = x.sqr()?.mean_keepdim(D::Minus1)?;
            let normed = x.broadcast_mul(&(ms + eps)?.sqrt()?.recip()?)?;
            normed.to_dtype(dtype)?.broadcast_mul(alpha)?
        }
        Kernels::Fused => candle_nn::ops::rms_norm(&xs.contiguous()?, alpha, eps as f32)?,
    })
}

/// Rotary embedding, HF (non-interleaved, "rotate half") convention, with per-row positions.
///
/// `xs` is `[B, H, T, D]`; `cos`/`sin` are `[B, T, D/2]` (already gathered at each token's
/// position).
pub(crate) fn rope(xs: &Tensor, cos: &Tensor, sin: &Tensor, kernels: Kernels) -> Result<Tensor> {
    Ok(match kernels {
        Kernels::Differentiable => {
            let half = xs.dim(D::Minus1)? / 2;
            let cos = Tensor::cat(&[cos, cos], D::Minus1)?.unsqueeze(1)?;
            let sin = Tensor::cat(&[sin, sin], D::Minus1)?.unsqueeze(1)?;
            let x1 = xs.narrow(D::Minus1, 0, half)?;
            let x2 = xs.narrow(D::Minus1, half, half)?;
            let rotated = Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)?;
            (xs.broadcast_mul(&cos)? + rotated.broadcast_mul(&sin)?)?
        }
        Kernels::Fused => candle_nn::rotary_emb::rope(&xs.contiguous()?, cos, sin)?,
    })
}
