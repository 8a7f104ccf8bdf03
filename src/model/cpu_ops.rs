//! Differentiable CPU kernels for the ops whose candle versions are either slow when composed
//! (many temporaries in forward and backward) or fused without a backward: masked softmax,
//! RMSNorm, RoPE and SwiGLU. Each is a candle custom op with a hand-written backward; the
//! backward kernels themselves are applied without a backward (no second-order gradients).
//!
//! They run on contiguous f32 or bf16 CPU tensors, compute in f32 and split their rows over
//! candle's compute threads. The equivalence with the composed ops (values and gradients) is
//! tested in `tests/model_grad.rs` and `tests/model_kernels.rs`.

use std::sync::Arc;

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, CustomOp1, CustomOp2, Layout, Shape, Tensor};

use super::cpu_linear::{swiglu_bwd, swiglu_fwd};
use super::cpu_par::{
    add_assign, combine8, exp_neg, max8, multiversion, par_ranges, row_chunks, slice_f32,
    softmax_in_place, storage, sum8, sum8_2, tensor, with_f32, zeros, CResult, SharedOut,
};

/// Applies `f(row_index, rows_in, rows_out)` to blocks of whole rows of width `cols`, in
/// parallel over candle's compute threads.
fn par_rows(
    input: &[f32],
    out: &mut [f32],
    cols: usize,
    f: impl Fn(usize, &[f32], &mut [f32]) + Sync,
) {
    let n = input.len() / cols.max(1);
    let chunks = row_chunks(n, (8192 / cols.max(1)).max(1));
    let per = n.div_ceil(chunks);
    let o = SharedOut::new(out);
    par_ranges(chunks, |r| {
        for c in r {
            let (lo, hi) = (c * per, ((c + 1) * per).min(n));
            // SAFETY: chunk c alone writes rows lo..hi.
            let dst = unsafe { o.slice(lo * cols..hi * cols) };
            f(lo, &input[lo * cols..hi * cols], dst);
        }
    });
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
        let mut out = zeros(x.len());
        par_rows(&x, &mut out, cols, |r0, xs, ys| {
            for (i, (xr, yr)) in xs
                .chunks_exact(cols)
                .zip(ys.chunks_exact_mut(cols))
                .enumerate()
            {
                let r = r0 + i;
                yr.copy_from_slice(xr);
                let bias = self.bias.as_ref().map(|bias| {
                    let (b, q) = (r / (self.heads * t), r % t);
                    &bias[(b * t + q) * cols..(b * t + q + 1) * cols]
                });
                softmax_in_place(yr, bias);
            }
        });
        Ok((storage(out, s.dtype()), l.shape().clone()))
    }

    fn bwd(&self, _arg: &Tensor, res: &Tensor, grad: &Tensor) -> CResult<Option<Tensor>> {
        let cols = res.dims().last().copied().unwrap_or(1);
        let dx = with_f32(res, |y| {
            with_f32(grad, |g| {
                // dx = y (g - sum(g y)) row-wise.
                let mut dx = zeros(y.len());
                par_rows(y, &mut dx, cols, |r0, ys, ds| {
                    for (i, (yr, dr)) in ys
                        .chunks_exact(cols)
                        .zip(ds.chunks_exact_mut(cols))
                        .enumerate()
                    {
                        let gr = &g[(r0 + i) * cols..(r0 + i + 1) * cols];
                        softmax_bwd_row(yr, gr, dr);
                    }
                });
                Ok(dx)
            })
        })?;
        Ok(Some(tensor(dx, res.shape().clone(), res.dtype())?))
    }
}

/// RMSNorm over the last axis: `y = x / sqrt(mean(x^2) + eps) * w`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RmsNorm {
    /// Epsilon added to the mean square.
    pub eps: f32,
}

/// `1 / sqrt(mean(x^2) + eps)` of one row.
#[inline(always)]
fn inv_rms(xr: &[f32], eps: f32) -> f32 {
    let ms = sum8(xr, |v| v * v) / xr.len() as f32;
    1.0 / (ms + eps).sqrt()
}

multiversion! {
    /// Softmax backward of one row: `dx = y (g - sum(g y))`.
    fn softmax_bwd_row(yr: &[f32], gr: &[f32], dr: &mut [f32]) {
        let dot = sum8_2(yr, gr, |a, b| a * b);
        for ((d, &yv), &gv) in dr.iter_mut().zip(yr).zip(gr) {
            *d = yv * (gv - dot);
        }
    }
}

multiversion! {
    /// RMSNorm forward of whole rows of width `w.len()`.
    fn rms_rows(xs: &[f32], ys: &mut [f32], w: &[f32], eps: f32) {
        let d = w.len();
        for (xr, yr) in xs.chunks_exact(d).zip(ys.chunks_exact_mut(d)) {
            let r = inv_rms(xr, eps);
            for ((y, &xv), &wv) in yr.iter_mut().zip(xr).zip(w) {
                *y = xv * r * wv;
            }
        }
    }
}

multiversion! {
    /// RMSNorm backward of one row: writes `dx` into `dr` and adds `g n` to `dw`.
    fn rms_bwd_row(xr: &[f32], gr: &[f32], w: &[f32], dr: &mut [f32], dw: &mut [f32], eps: f32) {
        let d = w.len();
        let (xr, gr, dr, dw) = (&xr[..d], &gr[..d], &mut dr[..d], &mut dw[..d]);
        let r = inv_rms(xr, eps);
        // n = x r; dx = r (g w - n mean(g w n)); dw += g n
        for j in 0..d {
            dw[j] += gr[j] * (xr[j] * r);
        }
        // sum_j g_j w_j n_j, in eight interleaved partial sums.
        let mut acc = [0f32; 8];
        let (cx, cg, cw) = (xr.chunks_exact(8), gr.chunks_exact(8), w.chunks_exact(8));
        let mut tail = 0.0;
        for ((&x, &g), &wv) in cx.remainder().iter().zip(cg.remainder()).zip(cw.remainder()) {
            tail += g * wv * (x * r);
        }
        for ((x8, g8), w8) in cx.zip(cg).zip(cw) {
            for l in 0..8 {
                acc[l] += g8[l] * w8[l] * (x8[l] * r);
            }
        }
        let dot = combine8(&acc) + tail;
        let mean = dot / d as f32;
        for j in 0..d {
            dr[j] = r * (gr[j] * w[j] - xr[j] * r * mean);
        }
    }
}

multiversion! {
    /// One head's rotation: `y1 = x1 c - x2 s`, `y2 = x2 c + x1 s` with `c = cos * scale`,
    /// `s = sin * sin_mul` over the two halves of `x` and `y`.
    pub(crate) fn rope_row(x: &[f32], y: &mut [f32], cos: &[f32], sin: &[f32], scale: f32, sin_mul: f32) {
        let half = cos.len();
        let (x1, x2) = x[..2 * half].split_at(half);
        let (y1, y2) = y[..2 * half].split_at_mut(half);
        let sin = &sin[..half];
        for i in 0..half {
            let (c, s) = (cos[i] * scale, sin[i] * sin_mul);
            y1[i] = x1[i] * c - x2[i] * s;
            y2[i] = x2[i] * c + x1[i] * s;
        }
    }
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
        if d == 0 || x.len() % d != 0 {
            bail!("rms norm: weight of {d} for input {:?}", l1.shape())
        }
        let mut out = zeros(x.len());
        par_rows(&x, &mut out, d, |_, xs, ys| rms_rows(xs, ys, &w, self.eps));
        Ok((storage(out, s1.dtype()), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> CResult<(Option<Tensor>, Option<Tensor>)> {
        let d = w.elem_count();
        let n = x.elem_count() / d.max(1);
        let (dx, dw) = with_f32(x, |xv| {
            with_f32(w, |wv| {
                with_f32(grad, |gv| {
                    let mut dx = zeros(xv.len());
                    // dw is summed over rows: one partial sum per chunk, added at the end.
                    let chunks = row_chunks(n, 16);
                    let per = n.div_ceil(chunks);
                    let mut partial = zeros(chunks * d);
                    let (dx_o, dw_o) = (SharedOut::new(&mut dx), SharedOut::new(&mut partial));
                    par_ranges(chunks, |r| {
                        for c in r {
                            let (lo, hi) = (c * per, ((c + 1) * per).min(n));
                            // SAFETY: chunk c alone writes rows lo..hi of dx and partial row c.
                            let (dxc, dwc) = unsafe {
                                (dx_o.slice(lo * d..hi * d), dw_o.slice(c * d..(c + 1) * d))
                            };
                            for (i, dr) in dxc.chunks_exact_mut(d).enumerate() {
                                let row = lo + i;
                                let xr = &xv[row * d..(row + 1) * d];
                                let gr = &gv[row * d..(row + 1) * d];
                                rms_bwd_row(xr, gr, wv, dr, dwc, self.eps);
                            }
                        }
                    });
                    let mut dw = zeros(d);
                    for row in partial.chunks_exact(d) {
                        add_assign(&mut dw, row);
                    }
                    Ok((dx, dw))
                })
            })
        })?;
        Ok((
            Some(tensor(dx, x.shape().clone(), x.dtype())?),
            Some(tensor(dw, w.shape().clone(), w.dtype())?),
        ))
    }
}

/// Rotary embedding (HF "rotate half" convention) with per-token angles, times a constant
/// `scale` (the attention's `1/sqrt(D)` for queries), fused with the head transpose: the
/// forward maps the projection's `[B, T, H, D]` to the attention's `[B, H, T, D]`, contiguous.
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
    /// `true`: `[B, T, H, D]` in, `[B, H, T, D]` out (forward); `false`: the reverse (backward).
    pub to_heads_first: bool,
}

impl CustomOp1 for Rope {
    fn name(&self) -> &'static str {
        "azr-rope"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> CResult<(CpuStorage, Shape)> {
        let x = slice_f32(s, l)?;
        let (b, t, h, d) = match (l.shape().dims(), self.to_heads_first) {
            ([b, t, h, d], true) => (*b, *t, *h, *d),
            ([b, h, t, d], false) => (*b, *t, *h, *d),
            (dims, _) => bail!("rope expects a 4-d input, got {dims:?}"),
        };
        let half = d / 2;
        let mut out = zeros(x.len());
        let o = SharedOut::new(&mut out);
        // One unit per (batch row, head): it owns the [T, D] block of the heads-first layout.
        crate::model::cpu_par::par_for_sized(b * h, x.len() * 4, |unit| {
            let (bi, hi) = (unit / h, unit % h);
            for ti in 0..t {
                let tok = bi * t + ti;
                let cos = &self.cos[tok * half..(tok + 1) * half];
                let sin = &self.sin[tok * half..(tok + 1) * half];
                let bthd = (tok * h + hi) * d;
                let bhtd = ((bi * h + hi) * t + ti) * d;
                let (src, dst) = if self.to_heads_first {
                    (bthd, bhtd)
                } else {
                    (bhtd, bthd)
                };
                let xh = &x[src..src + d];
                // SAFETY: (token, head) pairs are disjoint across units, so are their D values.
                let yh = unsafe { o.slice(dst..dst + d) };
                rope_row(xh, yh, cos, sin, self.scale, self.sin_sign * self.scale);
            }
        });
        let shape = if self.to_heads_first {
            Shape::from((b, h, t, d))
        } else {
            Shape::from((b, t, h, d))
        };
        Ok((storage(out, s.dtype()), shape))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad: &Tensor) -> CResult<Option<Tensor>> {
        // The rotation is orthogonal: its transpose is the rotation by the opposite angle, and
        // the layout change is undone.
        let inverse = Rope {
            sin_sign: -self.sin_sign,
            to_heads_first: !self.to_heads_first,
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
        if g.len() != u.len() {
            bail!("swiglu: {:?} vs {:?}", l1.shape(), l2.shape())
        }
        let cols = l1.shape().dims().last().copied().unwrap_or(1);
        let mut out = zeros(g.len());
        par_rows(&g, &mut out, cols, |r0, gs, ys| {
            let us = &u[r0 * cols..r0 * cols + gs.len()];
            swiglu_fwd(gs, us, ys);
        });
        Ok((storage(out, s1.dtype()), l1.shape().clone()))
    }

    fn bwd(
        &self,
        g: &Tensor,
        u: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> CResult<(Option<Tensor>, Option<Tensor>)> {
        let cols = g.dims().last().copied().unwrap_or(1);
        let (dg, du) = with_f32(g, |gv| {
            with_f32(u, |uv| {
                with_f32(grad, |dv| {
                    let mut dg = zeros(gv.len());
                    let mut du = zeros(gv.len());
                    let du_o = SharedOut::new(&mut du);
                    par_rows(gv, &mut dg, cols, |r0, gs, dgs| {
                        let lo = r0 * cols;
                        // SAFETY: the rows handed to this call are written by it alone.
                        let dus = unsafe { du_o.slice(lo..lo + gs.len()) };
                        let hi = lo + gs.len();
                        swiglu_bwd(gs, &uv[lo..hi], &dv[lo..hi], dgs, dus);
                    });
                    Ok((dg, du))
                })
            })
        })?;
        Ok((
            Some(tensor(dg, g.shape().clone(), g.dtype())?),
            Some(tensor(du, u.shape().clone(), u.dtype())?),
        ))
    }
}

/// Log-sum-exp of a row.
#[inline(always)]
fn row_lse(xr: &[f32]) -> f32 {
    let max = max8(xr);
    let sum = sum8(xr, |x| exp_neg(x - max));
    max + sum.ln()
}

multiversion! {
    /// Log-prob of `target` under the softmax of one row of logits, and the row's entropy
    /// when `entropy` (else 0).
    fn logprob_entropy_row(xr: &[f32], target: usize, entropy: bool) -> (f32, f32) {
        let lse = row_lse(xr);
        let h = if entropy {
            lse - sum8(xr, |xi| exp_neg(xi - lse) * xi)
        } else {
            0.0
        };
        (xr[target] - lse, h)
    }
}

multiversion! {
    /// Backward of [`logprob_entropy_row`] for one row: `g_lp` and `g_h` are the gradients of
    /// the log-prob and of the entropy `h` (`g_h` unused without `entropy`).
    fn logprob_entropy_bwd_row(xr: &[f32], dr: &mut [f32], target: usize, g_lp: f32, g_h: f32, h: f32, entropy: bool) {
        let lse = row_lse(xr);
        // d logp_t / dz_j = [j = t] - p_j ;  dH / dz_j = -p_j (log p_j + H)
        if entropy {
            for (d, &xj) in dr.iter_mut().zip(xr) {
                let logp = xj - lse;
                let p = exp_neg(logp);
                *d = -g_lp * p - g_h * p * (logp + h);
            }
        } else {
            for (d, &xj) in dr.iter_mut().zip(xr) {
                *d = -g_lp * exp_neg(xj - lse);
            }
        }
        dr[target] += g_lp;
    }
}

/// Per row of `[N, V]` logits: the log-prob of a target token and, optionally, the entropy of
/// the distribution, computed without materialising the `[N, V]` log-softmax; the backward
/// recomputes the softmax from the logits. Output: `[N, 2]` f32 (column 0 log-prob, column 1
/// entropy) with `entropy`, else `[N]` log-probs.
#[derive(Debug, Clone)]
pub(crate) struct TokenLogProbEntropy {
    /// One target id per row.
    pub targets: Arc<Vec<u32>>,
    /// Whether to compute the entropy column.
    pub entropy: bool,
}

impl TokenLogProbEntropy {
    fn cols(&self) -> usize {
        if self.entropy {
            2
        } else {
            1
        }
    }
}

impl CustomOp1 for TokenLogProbEntropy {
    fn name(&self) -> &'static str {
        "azr-token-logprob-entropy"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> CResult<(CpuStorage, Shape)> {
        let x = slice_f32(s, l)?;
        let v = l.shape().dims().last().copied().unwrap_or(1);
        let n = x.len() / v;
        if self.targets.len() != n {
            bail!("{} targets for {n} rows", self.targets.len())
        }
        if let Some(&bad) = self.targets.iter().find(|&&t| t as usize >= v) {
            bail!("target {bad} outside a vocabulary of {v}")
        }
        let c = self.cols();
        let mut out = zeros(c * n);
        let o = SharedOut::new(&mut out);
        par_ranges(row_chunks(n, 4), |r| {
            let per = n.div_ceil(row_chunks(n, 4));
            for ch in r {
                for row in ch * per..((ch + 1) * per).min(n) {
                    let xr = &x[row * v..(row + 1) * v];
                    let (lp, h) = logprob_entropy_row(xr, self.targets[row] as usize, self.entropy);
                    // SAFETY: row `row` alone writes its output entries.
                    let dst = unsafe { o.slice(row * c..(row + 1) * c) };
                    dst[0] = lp;
                    if self.entropy {
                        dst[1] = h;
                    }
                }
            }
        });
        let shape = if self.entropy {
            Shape::from((n, 2))
        } else {
            Shape::from(n)
        };
        Ok((CpuStorage::F32(out), shape))
    }

    fn bwd(&self, arg: &Tensor, res: &Tensor, grad: &Tensor) -> CResult<Option<Tensor>> {
        let v = arg.dims().last().copied().unwrap_or(1);
        let c = self.cols();
        let dx = with_f32(arg, |x| {
            with_f32(res, |out| {
                with_f32(grad, |g| {
                    let mut dx = zeros(x.len());
                    par_rows(x, &mut dx, v, |r0, xs, ds| {
                        for (i, (xr, dr)) in
                            xs.chunks_exact(v).zip(ds.chunks_exact_mut(v)).enumerate()
                        {
                            let r = r0 + i;
                            let (g_h, h) = if self.entropy {
                                (g[c * r + 1], out[c * r + 1])
                            } else {
                                (0.0, 0.0)
                            };
                            logprob_entropy_bwd_row(
                                xr,
                                dr,
                                self.targets[r] as usize,
                                g[c * r],
                                g_h,
                                h,
                                self.entropy,
                            );
                        }
                    });
                    Ok(dx)
                })
            })
        })?;
        Ok(Some(tensor(dx, arg.shape().clone(), arg.dtype())?))
    }
}
