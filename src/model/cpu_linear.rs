//! Fused dense layers on the CPU with hand-written backward passes: a linear layer with its
//! optional bias (`y = x W^T + b`), and the SwiGLU MLP front (`silu(x Wg^T) * (x Wu^T)`, two
//! products and the gate in one op). Each replaces a chain of candle nodes (reshape, transpose,
//! matmul, broadcast add, ...), whose backward would allocate and accumulate a gradient for
//! every link, by one node whose backward calls the matrix products directly.

use std::sync::{Arc, OnceLock};

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, CustomOp2, CustomOp3, Layout, Shape, Tensor};

use super::cpu_par::{
    add_assign, exp_neg, matmul, multiversion, par_ranges, row_chunks, slice_f32, storage, tensor,
    threads, with_f32, zeros, CResult, MatMut, MatRef, SharedOut,
};
use super::cpu_rows;

/// `(rows, in_features)` of an input whose last axis is the feature axis.
fn rows_of(l: &Layout, k: usize) -> CResult<usize> {
    let dims = l.shape().dims();
    match dims.last() {
        Some(&last) if last == k => Ok(l.shape().elem_count() / k.max(1)),
        _ => bail!("linear: input {dims:?} does not end in {k}"),
    }
}

/// The output shape: the input's with the last axis replaced by `m`.
fn out_shape(l: &Layout, m: usize) -> Shape {
    let mut dims = l.shape().dims().to_vec();
    if let Some(last) = dims.last_mut() {
        *last = m;
    }
    Shape::from(dims)
}

/// `y = x W^T (+ b)` for `x` `[N, K]`, `w` `[M, K]`.
fn linear_fwd(
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    n: usize,
    k: usize,
    m: usize,
) -> Vec<f32> {
    let mut y = zeros(n * m);
    if let Some(b) = bias {
        for row in y.chunks_exact_mut(m) {
            row.copy_from_slice(b);
        }
    }
    if n <= cpu_rows::MAX_ROWS {
        cpu_rows::xwt(&mut y, x, w, (n, k, m), bias.is_some());
        return y;
    }
    matmul(
        MatMut::new(&mut y, 0, n, m, m),
        MatRef::new(x, 0, n, k, k),
        MatRef::new(w, 0, m, k, k).t(),
        bias.is_some(),
        threads(),
    );
    y
}

/// `dx = dy W` (`[N, K]`) and `dW = dy^T x` (`[M, K]`).
fn linear_bwd(
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    n: usize,
    k: usize,
    m: usize,
) -> (Vec<f32>, Vec<f32>) {
    let mut dx = zeros(n * k);
    let mut dw = zeros(m * k);
    let dym = MatRef::new(dy, 0, n, m, m);
    matmul(
        MatMut::new(&mut dx, 0, n, k, k),
        dym,
        MatRef::new(w, 0, m, k, k),
        false,
        threads(),
    );
    matmul(
        MatMut::new(&mut dw, 0, m, k, k),
        dym.t(),
        MatRef::new(x, 0, n, k, k),
        false,
        threads(),
    );
    (dx, dw)
}

/// Column sums of `dy` (`[N, M]`): the bias gradient, summed per thread then combined.
fn column_sums(dy: &[f32], n: usize, m: usize) -> Vec<f32> {
    let chunks = row_chunks(n, 64);
    let per = n.div_ceil(chunks);
    let mut partial = zeros(chunks * m);
    let out = SharedOut::new(&mut partial);
    par_ranges(chunks, |r| {
        for c in r {
            // SAFETY: chunk c alone writes partial row c.
            let acc = unsafe { out.slice(c * m..(c + 1) * m) };
            for row in dy[c * per * m..((c + 1) * per).min(n) * m].chunks_exact(m) {
                add_assign(acc, row);
            }
        }
    });
    let mut sums = zeros(m);
    for row in partial.chunks_exact(m) {
        add_assign(&mut sums, row);
    }
    sums
}

/// A linear layer without bias: `(x, W)` in, `x W^T` out.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Linear;

impl CustomOp2 for Linear {
    fn name(&self) -> &'static str {
        "azr-linear"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> CResult<(CpuStorage, Shape)> {
        let (m, k) = l2.shape().dims2()?;
        let n = rows_of(l1, k)?;
        let (x, w) = (slice_f32(s1, l1)?, slice_f32(s2, l2)?);
        let y = linear_fwd(&x, &w, None, n, k, m);
        Ok((storage(y, s1.dtype()), out_shape(l1, m)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> CResult<(Option<Tensor>, Option<Tensor>)> {
        let (m, k) = w.dims2()?;
        let n = x.elem_count() / k;
        let (dx, dw) = with_f32(x, |xv| {
            with_f32(w, |wv| {
                with_f32(grad, |g| Ok(linear_bwd(xv, wv, g, n, k, m)))
            })
        })?;
        Ok((
            Some(tensor(dx, x.shape().clone(), x.dtype())?),
            Some(tensor(dw, w.shape().clone(), w.dtype())?),
        ))
    }
}

/// A linear layer with bias: `(x, W, b)` in, `x W^T + b` out.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LinearBias;

impl CustomOp3 for LinearBias {
    fn name(&self) -> &'static str {
        "azr-linear-bias"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> CResult<(CpuStorage, Shape)> {
        let (m, k) = l2.shape().dims2()?;
        if l3.shape().dims() != [m] {
            bail!("linear: bias {:?} for {m} outputs", l3.shape())
        }
        let n = rows_of(l1, k)?;
        let (x, w, b) = (slice_f32(s1, l1)?, slice_f32(s2, l2)?, slice_f32(s3, l3)?);
        let y = linear_fwd(&x, &w, Some(&b), n, k, m);
        Ok((storage(y, s1.dtype()), out_shape(l1, m)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> CResult<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (m, k) = w.dims2()?;
        let n = x.elem_count() / k;
        let (dx, dw, db) = with_f32(x, |xv| {
            with_f32(w, |wv| {
                with_f32(grad, |g| {
                    let (dx, dw) = linear_bwd(xv, wv, g, n, k, m);
                    Ok((dx, dw, column_sums(g, n, m)))
                })
            })
        })?;
        Ok((
            Some(tensor(dx, x.shape().clone(), x.dtype())?),
            Some(tensor(dw, w.shape().clone(), w.dtype())?),
            Some(tensor(db, b.shape().clone(), b.dtype())?),
        ))
    }
}

/// `silu(g)` and its derivative factor `s (1 + g (1 - s))` with `s = sigmoid(g)` (vectorisable:
/// the exponential is only ever taken of `-|g|`).
#[inline(always)]
pub(crate) fn silu_parts(g: f32) -> (f32, f32) {
    let e = exp_neg(-g.abs());
    let r = 1.0 / (1.0 + e);
    let s = if g >= 0.0 { r } else { e * r };
    (g * s, s * (1.0 + g * (1.0 - s)))
}

multiversion! {
    /// SwiGLU forward over matching slices: `y = silu(g) * u`.
    pub(crate) fn swiglu_fwd(g: &[f32], u: &[f32], y: &mut [f32]) {
        for ((y, &gv), &uv) in y.iter_mut().zip(g).zip(u) {
            *y = silu_parts(gv).0 * uv;
        }
    }
}

multiversion! {
    /// SwiGLU backward over matching slices: `du = da silu(g)`, `dg = da u silu'(g)`.
    pub(crate) fn swiglu_bwd(g: &[f32], u: &[f32], da: &[f32], dg: &mut [f32], du: &mut [f32]) {
        let n = g.len();
        let (u, da, dg, du) = (&u[..n], &da[..n], &mut dg[..n], &mut du[..n]);
        for i in 0..n {
            let (silu, dsilu) = silu_parts(g[i]);
            du[i] = da[i] * silu;
            dg[i] = da[i] * u[i] * dsilu;
        }
    }
}

/// The SwiGLU MLP front: `(x, Wg, Wu)` in, `silu(x Wg^T) * (x Wu^T)` out. The forward keeps
/// the two projections for the backward.
#[derive(Debug, Clone)]
pub(crate) struct GateUp {
    saved: Arc<OnceLock<(Vec<f32>, Vec<f32>)>>,
}

impl GateUp {
    /// A fresh op (one per forward).
    pub(crate) fn new() -> Self {
        Self {
            saved: Arc::new(OnceLock::new()),
        }
    }
}

impl CustomOp3 for GateUp {
    fn name(&self) -> &'static str {
        "azr-gate-up"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> CResult<(CpuStorage, Shape)> {
        let (f, k) = l2.shape().dims2()?;
        if l3.shape().dims() != [f, k] {
            bail!("gate/up weights {:?} vs {:?}", l2.shape(), l3.shape())
        }
        let n = rows_of(l1, k)?;
        let (x, wg, wu) = (slice_f32(s1, l1)?, slice_f32(s2, l2)?, slice_f32(s3, l3)?);
        let g = linear_fwd(&x, &wg, None, n, k, f);
        let u = linear_fwd(&x, &wu, None, n, k, f);
        let mut act = zeros(n * f);
        let out = SharedOut::new(&mut act);
        let chunks = row_chunks(n, 16);
        let per = n.div_ceil(chunks);
        par_ranges(chunks, |r| {
            for c in r {
                let lo = c * per * f;
                let hi = ((c + 1) * per).min(n) * f;
                // SAFETY: chunk c alone writes rows c*per..(c+1)*per.
                let dst = unsafe { out.slice(lo..hi) };
                swiglu_fwd(&g[lo..hi], &u[lo..hi], dst);
            }
        });
        // A second forward of the same op instance (not done by candle) keeps the first save.
        let _ = self.saved.set((g, u));
        Ok((storage(act, s1.dtype()), out_shape(l1, f)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        wg: &Tensor,
        wu: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> CResult<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let Some((g, u)) = self.saved.get() else {
            bail!("gate/up backward before forward")
        };
        let (f, k) = wg.dims2()?;
        let n = x.elem_count() / k;
        let (dx, dwg, dwu) = with_f32(x, |xv| {
            with_f32(wg, |wgv| {
                with_f32(wu, |wuv| {
                    with_f32(grad, |da| {
                        // dg = da u silu'(g), du = da silu(g)
                        let mut dg = zeros(n * f);
                        let mut du = zeros(n * f);
                        let (dg_o, du_o) = (SharedOut::new(&mut dg), SharedOut::new(&mut du));
                        let chunks = row_chunks(n, 16);
                        let per = n.div_ceil(chunks);
                        par_ranges(chunks, |r| {
                            for c in r {
                                let lo = c * per * f;
                                let hi = ((c + 1) * per).min(n) * f;
                                // SAFETY: chunk c alone writes these rows of dg and du.
                                let (dgc, duc) =
                                    unsafe { (dg_o.slice(lo..hi), du_o.slice(lo..hi)) };
                                swiglu_bwd(&g[lo..hi], &u[lo..hi], &da[lo..hi], dgc, duc);
                            }
                        });
                        let (mut dx, dwg) = linear_bwd(xv, wgv, &dg, n, k, f);
                        // dx += du Wu ; dWu = du^T x
                        let mut dwu = zeros(f * k);
                        let dum = MatRef::new(&du, 0, n, f, f);
                        matmul(
                            MatMut::new(&mut dx, 0, n, k, k),
                            dum,
                            MatRef::new(wuv, 0, f, k, k),
                            true,
                            threads(),
                        );
                        matmul(
                            MatMut::new(&mut dwu, 0, f, k, k),
                            dum.t(),
                            MatRef::new(xv, 0, n, k, k),
                            false,
                            threads(),
                        );
                        Ok((dx, dwg, dwu))
                    })
                })
            })
        })?;
        Ok((
            Some(tensor(dx, x.shape().clone(), x.dtype())?),
            Some(tensor(dwg, wg.shape().clone(), wg.dtype())?),
            Some(tensor(dwu, wu.shape().clone(), wu.dtype())?),
        ))
    }
}
