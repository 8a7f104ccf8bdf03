//! Differentiable CPU kernels for the ops whose candle versions are either slow when composed
//! (many temporaries in forward and backward) or fused without a backward: masked softmax,
//! RMSNorm, RoPE and SwiGLU. Each is a candle custom op with a hand-written backward; the
//! backward kernels themselves are applied without a backward (no second-order gradients).
//!
//! They run on contiguous f32 or bf16 CPU tensors and compute in f32. The equivalence with the
//! composed ops (values and gradients) is tested in `tests/model_grad.rs`.

use std::borrow::Cow;
use std::sync::Arc;

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, CustomOp1, CustomOp2, DType, Layout, Shape, Tensor};
use half::bf16;

type CResult<T> = candle_core::Result<T>;

/// The contiguous data of a CPU storage as f32 (borrowed for f32, converted for bf16).
fn slice_f32<'a>(s: &'a CpuStorage, l: &Layout) -> CResult<Cow<'a, [f32]>> {
    let Some((a, b)) = l.contiguous_offsets() else {
        bail!("custom op input must be contiguous")
    };
    match s {
        CpuStorage::F32(v) => Ok(Cow::Borrowed(&v[a..b])),
        CpuStorage::BF16(v) => Ok(Cow::Owned(v[a..b].iter().map(|x| x.to_f32()).collect())),
        other => bail!("custom op: unsupported dtype {:?}", other.dtype()),
    }
}

/// Wraps f32 results as a storage of `dtype`.
fn storage(v: Vec<f32>, dtype: DType) -> CpuStorage {
    match dtype {
        DType::BF16 => CpuStorage::BF16(v.into_iter().map(bf16::from_f32).collect()),
        _ => CpuStorage::F32(v),
    }
}

/// A tensor's values as a host f32 vector (row-major).
fn host(t: &Tensor) -> CResult<Vec<f32>> {
    t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()
}

/// A tensor of `shape` and `dtype` from host f32 values, on the device of `like`.
fn tensor_like(v: Vec<f32>, shape: &Shape, like: &Tensor) -> CResult<Tensor> {
    Tensor::from_vec(v, shape, like.device())?.to_dtype(like.dtype())
}

/// Softmax over the last axis of `[B, H, T, S]` scores plus a constant additive bias
/// `[B, 1, T, S]` (the attention mask), shared by the heads.
#[derive(Debug, Clone)]
pub(crate) struct MaskedSoftmax {
    /// Row-major `[B, T, S]` bias, or none.
    pub bias: Option<Arc<Vec<f32>>>,
    /// `H`.
    pub heads: usize,
}

impl CustomOp1 for MaskedSoftmax {
    fn name(&self) -> &'static str {
        "azr-masked-softmax"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> CResult<(CpuStorage, Shape)> {
        let x = slice_f32(s, l)?;
        let dims = l.shape().dims();
        let (t, cols) = match dims {
            [_, _, t, s] => (*t, *s),
            _ => bail!("masked softmax expects [B, H, T, S], got {dims:?}"),
        };
        let mut out = vec![0f32; x.len()];
        for (r, (xr, yr)) in x
            .chunks_exact(cols)
            .zip(out.chunks_exact_mut(cols))
            .enumerate()
        {
            let bias = self.bias.as_ref().map(|bias| {
                let (b, q) = (r / (self.heads * t), r % t);
                &bias[(b * t + q) * cols..(b * t + q + 1) * cols]
            });
            let mut max = f32::NEG_INFINITY;
            for (i, y) in yr.iter_mut().enumerate() {
                *y = xr[i] + bias.map_or(0.0, |b| b[i]);
                max = max.max(*y);
            }
            let mut sum = 0.0;
            for y in yr.iter_mut() {
                *y = (*y - max).exp();
                sum += *y;
            }
            let inv = 1.0 / sum;
            yr.iter_mut().for_each(|y| *y *= inv);
        }
        Ok((storage(out, s.dtype()), l.shape().clone()))
    }

    fn bwd(&self, _arg: &Tensor, res: &Tensor, grad: &Tensor) -> CResult<Option<Tensor>> {
        let g = grad.contiguous()?;
        Ok(Some(res.contiguous()?.apply_op2_no_bwd(&g, &SoftmaxGrad)?))
    }
}

/// `dx = y * (g - sum(g * y))` row-wise: the softmax backward.
struct SoftmaxGrad;

impl CustomOp2 for SoftmaxGrad {
    fn name(&self) -> &'static str {
        "azr-softmax-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> CResult<(CpuStorage, Shape)> {
        let (y, g) = (slice_f32(s1, l1)?, slice_f32(s2, l2)?);
        let cols = l1.shape().dims().last().copied().unwrap_or(1);
        let mut out = vec![0f32; y.len()];
        for ((yr, gr), dr) in y
            .chunks_exact(cols)
            .zip(g.chunks_exact(cols))
            .zip(out.chunks_exact_mut(cols))
        {
            let dot: f32 = yr.iter().zip(gr).map(|(a, b)| a * b).sum();
            for i in 0..cols {
                dr[i] = yr[i] * (gr[i] - dot);
            }
        }
        Ok((storage(out, s1.dtype()), l1.shape().clone()))
    }
}

/// RMSNorm over the last axis: `y = x / sqrt(mean(x^2) + eps) * w`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RmsNorm {
    /// Epsilon added to the mean square.
    pub eps: f32,
}

impl CustomOp2 for RmsNorm {
    fn name(&self) -> &'static str {
        "azr-rms-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> CResult<(CpuStorage, Shape)> {
        let (x, w) = (slice_f32(s1, l1)?, slice_f32(s2, l2)?);
        let d = w.len();
        let mut out = vec![0f32; x.len()];
        for (xr, yr) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
            let ms = xr.iter().map(|v| v * v).sum::<f32>() / d as f32;
            let r = 1.0 / (ms + self.eps).sqrt();
            for i in 0..d {
                yr[i] = xr[i] * r * w[i];
            }
        }
        Ok((storage(out, s1.dtype()), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> CResult<(Option<Tensor>, Option<Tensor>)> {
        let (xv, wv, gv) = (host(x)?, host(w)?, host(grad)?);
        let d = wv.len();
        let mut dx = vec![0f32; xv.len()];
        let mut dw = vec![0f32; d];
        for ((xr, gr), dr) in xv
            .chunks_exact(d)
            .zip(gv.chunks_exact(d))
            .zip(dx.chunks_exact_mut(d))
        {
            let ms = xr.iter().map(|v| v * v).sum::<f32>() / d as f32;
            let r = 1.0 / (ms + self.eps).sqrt();
            // n = x r; dx = r (g w - n mean(g w n)); dw += g n
            let mut dot = 0.0;
            for i in 0..d {
                let n = xr[i] * r;
                dw[i] += gr[i] * n;
                dot += gr[i] * wv[i] * n;
            }
            let mean = dot / d as f32;
            for i in 0..d {
                dr[i] = r * (gr[i] * wv[i] - xr[i] * r * mean);
            }
        }
        Ok((
            Some(tensor_like(dx, x.shape(), x)?),
            Some(tensor_like(dw, w.shape(), w)?),
        ))
    }
}

/// Rotary embedding (HF "rotate half" convention) of `[B, T, H, D]` inputs with per-token
/// angles, times a constant `scale` (the attention's `1/sqrt(D)` for queries).
#[derive(Debug, Clone)]
pub(crate) struct Rope {
    /// Row-major `[B, T, D/2]` cosines.
    pub cos: Arc<Vec<f32>>,
    /// Row-major `[B, T, D/2]` sines.
    pub sin: Arc<Vec<f32>>,
    /// Multiplier of the sines: 1 forward, -1 for the inverse rotation (the backward).
    pub sin_sign: f32,
    /// Output scale.
    pub scale: f32,
}

impl CustomOp1 for Rope {
    fn name(&self) -> &'static str {
        "azr-rope"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> CResult<(CpuStorage, Shape)> {
        let x = slice_f32(s, l)?;
        let (h, d) = match l.shape().dims() {
            [_, _, h, d] => (*h, *d),
            dims => bail!("rope expects [B, T, H, D], got {dims:?}"),
        };
        let half = d / 2;
        let mut out = vec![0f32; x.len()];
        for (tok, (xt, yt)) in x
            .chunks_exact(h * d)
            .zip(out.chunks_exact_mut(h * d))
            .enumerate()
        {
            let cos = &self.cos[tok * half..(tok + 1) * half];
            let sin = &self.sin[tok * half..(tok + 1) * half];
            for (xh, yh) in xt.chunks_exact(d).zip(yt.chunks_exact_mut(d)) {
                for i in 0..half {
                    let (c, s) = (cos[i] * self.scale, sin[i] * self.sin_sign * self.scale);
                    let (x1, x2) = (xh[i], xh[i + half]);
                    yh[i] = x1 * c - x2 * s;
                    yh[i + half] = x2 * c + x1 * s;
                }
            }
        }
        Ok((storage(out, s.dtype()), l.shape().clone()))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad: &Tensor) -> CResult<Option<Tensor>> {
        // The rotation is orthogonal: its transpose is the rotation by the opposite angle.
        let inverse = Rope {
            sin_sign: -self.sin_sign,
            ..self.clone()
        };
        Ok(Some(grad.contiguous()?.apply_op1_no_bwd(&inverse)?))
    }
}

/// SwiGLU gate: `silu(g) * u`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SwiGlu;

impl CustomOp2 for SwiGlu {
    fn name(&self) -> &'static str {
        "azr-swiglu"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> CResult<(CpuStorage, Shape)> {
        let (g, u) = (slice_f32(s1, l1)?, slice_f32(s2, l2)?);
        let out = g
            .iter()
            .zip(u.iter())
            .map(|(&g, &u)| g / (1.0 + (-g).exp()) * u)
            .collect();
        Ok((storage(out, s1.dtype()), l1.shape().clone()))
    }

    fn bwd(
        &self,
        g: &Tensor,
        u: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> CResult<(Option<Tensor>, Option<Tensor>)> {
        let (gv, uv, dv) = (host(g)?, host(u)?, host(grad)?);
        let mut dg = vec![0f32; gv.len()];
        let mut du = vec![0f32; gv.len()];
        for i in 0..gv.len() {
            let s = 1.0 / (1.0 + (-gv[i]).exp());
            let silu = gv[i] * s;
            du[i] = dv[i] * silu;
            dg[i] = dv[i] * uv[i] * s * (1.0 + gv[i] * (1.0 - s));
        }
        Ok((
            Some(tensor_like(dg, g.shape(), g)?),
            Some(tensor_like(du, u.shape(), u)?),
        ))
    }
}
