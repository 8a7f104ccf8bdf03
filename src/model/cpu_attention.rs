//! Fused causal self-attention on the CPU, flash-style: RoPE, `q k^T`, mask, softmax and
//! `p v` in one op, tiled over query rows so that only one `[tile, keys]` block of scores per
//! thread exists at a time; the backward recomputes the probabilities from the saved
//! log-sum-exp instead of keeping `[B, H, T, S]` probabilities around.
//!
//! Layouts: queries, keys and values come straight from the projections (`[B, T, H * D]`,
//! `[B, T, KVH * D]`), the output is `[B, T, H * D]`, ready for the output projection. GQA
//! shares each key/value head among `H / KVH` query heads without copying it. Work is split
//! over (batch row, key/value head) units across candle's compute threads.

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, CustomOp3, Layout, Shape, Tensor};

use super::cpu_ops::rope_row;
use super::cpu_par::{
    exp_neg, matmul, multiversion, par_for, par_for_sized, slice_f32, softmax_in_place, storage,
    sum8_2, tensor, with_f32, zeros, CResult, MatMut, MatRef, SharedOut,
};

/// Query rows per tile.
const TILE: usize = 32;

/// Geometry and constants of one attention call.
#[derive(Debug, Clone)]
pub(crate) struct AttnSpec {
    /// Batch rows.
    pub b: usize,
    /// New tokens per row (queries).
    pub t: usize,
    /// Cached keys per row before the new tokens.
    pub past: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads.
    pub kv_heads: usize,
    /// Head dimension.
    pub head_dim: usize,
    /// Multiplier of the queries (`1/sqrt(D)`).
    pub scale: f32,
    /// `[B, T, D/2]` RoPE cosines at each new token's position.
    pub cos: Arc<Vec<f32>>,
    /// `[B, T, D/2]` RoPE sines.
    pub sin: Arc<Vec<f32>>,
    /// `[B, T, past + T]` additive mask (0 or -inf) inside the causal window, or none (plain
    /// causal attention). Keys after a query's own position are always masked.
    pub bias: Option<Arc<Vec<f32>>>,
}

impl AttnSpec {
    fn keys(&self) -> usize {
        self.past + self.t
    }

    /// Rotates `x` (one head, `D` values) by the angles of token `tok` (= `b * T + t`) into
    /// `out`, times `mul`. `inverse` rotates by the opposite angles (the transpose).
    #[inline]
    fn rope(&self, tok: usize, x: &[f32], out: &mut [f32], mul: f32, inverse: bool) {
        let half = self.head_dim / 2;
        let cos = &self.cos[tok * half..(tok + 1) * half];
        let sin = &self.sin[tok * half..(tok + 1) * half];
        let sgn = if inverse { -mul } else { mul };
        rope_row(x, out, cos, sin, mul, sgn);
    }

    /// Softmax of one row of scores over the causal window of query `q` of batch row `b`;
    /// entries past the window are set to 0. Returns the log-sum-exp.
    #[inline]
    fn softmax_row(&self, b: usize, q: usize, row: &mut [f32]) -> f32 {
        let window = self.past + q + 1;
        let (live, dead) = row.split_at_mut(window);
        dead.fill(0.0);
        let bias = self.bias.as_ref().map(|bias| {
            let base = (b * self.t + q) * self.keys();
            &bias[base..base + window]
        });
        softmax_in_place(live, bias)
    }

    /// Probabilities of one row recomputed from its scores and saved log-sum-exp.
    #[inline]
    fn probs_row(&self, b: usize, q: usize, lse: f32, row: &mut [f32]) {
        let window = self.past + q + 1;
        let (live, dead) = row.split_at_mut(window);
        dead.fill(0.0);
        let bias = self.bias.as_ref().map(|bias| {
            let base = (b * self.t + q) * self.keys();
            &bias[base..base + window]
        });
        probs_from_lse(live, bias, lse);
    }
}

multiversion! {
    /// `row = exp(row (+ bias) - lse)` in place.
    fn probs_from_lse(row: &mut [f32], bias: Option<&[f32]>, lse: f32) {
        match bias {
            Some(bias) => {
                for (x, &m) in row.iter_mut().zip(bias) {
                    *x = exp_neg(*x + m - lse);
                }
            }
            None => row.iter_mut().for_each(|x| *x = exp_neg(*x - lse)),
        }
    }
}

multiversion! {
    /// `dS = P (dP - delta)` row by row, in place in `dp` (rows of width `cols`).
    fn softmax_grad_rows(dp: &mut [f32], p: &[f32], delta: &[f32], cols: usize) {
        for ((dr, pr), &dl) in dp.chunks_exact_mut(cols).zip(p.chunks_exact(cols)).zip(delta) {
            for (x, &pv) in dr.iter_mut().zip(pr) {
                *x = pv * (*x - dl);
            }
        }
    }
}

/// Where the keys (already rotated) and values of one call live: `data[base(b, g) + j * rs]`
/// is row `j` of key/value head `g` of batch row `b`.
#[derive(Clone, Copy)]
struct KvView<'a> {
    data: &'a [f32],
    b_stride: usize,
    g_stride: usize,
    rs: usize,
}

impl<'a> KvView<'a> {
    fn mat(&self, b: usize, g: usize, rows: usize, cols: usize) -> MatRef<'a> {
        MatRef::new(
            self.data,
            b * self.b_stride + g * self.g_stride,
            rows,
            cols,
            self.rs,
        )
    }
}

/// The forward over all units: writes `out` (`[B, T, H * D]`), rotated, scaled queries
/// `q_rot` (`[B, H, T, D]`) and the log-sum-exp `lse` (`[B, H, T]`).
fn forward(
    spec: &AttnSpec,
    q: &[f32],
    k: KvView<'_>,
    v: KvView<'_>,
    out: &mut [f32],
    q_rot: &mut [f32],
    lse: &mut [f32],
) {
    let (b_n, t, h_n, kvh, d) = (spec.b, spec.t, spec.heads, spec.kv_heads, spec.head_dim);
    let rep = h_n / kvh;
    let s_n = spec.keys();
    let (out, q_rot, lse) = (
        SharedOut::new(out),
        SharedOut::new(q_rot),
        SharedOut::new(lse),
    );
    par_for_sized(b_n * kvh, b_n * h_n * t * s_n * d, |unit| {
        let (b, g) = (unit / kvh, unit % kvh);
        let kmat = k.mat(b, g, s_n, d);
        let vmat = v.mat(b, g, s_n, d);
        let mut scores = zeros(TILE.min(t) * s_n);
        for h in g * rep..(g + 1) * rep {
            let qr_off = (b * h_n + h) * t * d;
            // SAFETY: unit (b, g) is the only writer of heads g*rep..(g+1)*rep of row b: the
            // q_rot rows of (b, h), the lse entries of (b, h) and the output columns
            // h*D..(h+1)*D of row b's tokens.
            let qr = unsafe { q_rot.slice(qr_off..qr_off + t * d) };
            for ti in 0..t {
                let tok = b * t + ti;
                let src = &q[(tok * h_n + h) * d..(tok * h_n + h + 1) * d];
                spec.rope(tok, src, &mut qr[ti * d..(ti + 1) * d], spec.scale, false);
            }
            // SAFETY: see above.
            let lse_h = unsafe { lse.slice((b * h_n + h) * t..(b * h_n + h + 1) * t) };
            let qr: &[f32] = qr;
            for q0 in (0..t).step_by(TILE) {
                let q1 = (q0 + TILE).min(t);
                let (rows, kmax) = (q1 - q0, spec.past + q1);
                let sc = &mut scores[..rows * kmax];
                matmul(
                    MatMut::new(sc, 0, rows, kmax, kmax),
                    MatRef::new(qr, q0 * d, rows, d, d),
                    kmat.rows(0..kmax).t(),
                    false,
                    1,
                );
                for (i, row) in sc.chunks_exact_mut(kmax).enumerate() {
                    lse_h[q0 + i] = spec.softmax_row(b, q0 + i, row);
                }
                // SAFETY: see above (columns of head h of tokens q0..q1 of row b).
                let dst = unsafe { out.mat(((b * t + q0) * h_n + h) * d, rows, d, h_n * d) };
                matmul(
                    dst,
                    MatRef::new(sc, 0, rows, kmax, kmax),
                    vmat.rows(0..kmax),
                    false,
                    1,
                );
            }
        }
    });
}

/// Values saved by the forward for the backward.
#[derive(Debug)]
struct Saved {
    /// `[B, H, T, D]` rotated, scaled queries.
    q_rot: Vec<f32>,
    /// `[B, KVH, T, D]` rotated keys.
    k_rot: Vec<f32>,
    /// `[B, H, T]` log-sum-exp of each query row.
    lse: Vec<f32>,
}

/// The differentiable training op (no cache): `(q, k, v)` projections in, context out.
#[derive(Debug, Clone)]
pub(crate) struct FlashAttention {
    pub spec: AttnSpec,
    saved: Arc<OnceLock<Saved>>,
}

impl FlashAttention {
    /// An op for `spec` (which must have `past == 0`).
    pub(crate) fn new(spec: AttnSpec) -> Self {
        Self {
            spec,
            saved: Arc::new(OnceLock::new()),
        }
    }
}

fn check_shapes(
    spec: &AttnSpec,
    q: &Layout,
    k: &Layout,
    v: &Layout,
    k_cached: bool,
) -> CResult<()> {
    let (b, t, h, kvh, d) = (spec.b, spec.t, spec.heads, spec.kv_heads, spec.head_dim);
    if h % kvh != 0 || d % 2 != 0 {
        bail!("attention: {h} heads over {kvh} kv heads, head dim {d}")
    }
    let want_kv: &[usize] = if k_cached {
        &[b, kvh, spec.keys(), d]
    } else {
        &[b, t, kvh * d]
    };
    if q.shape().dims() != [b, t, h * d]
        || k.shape().dims() != want_kv
        || v.shape().dims() != want_kv
    {
        bail!(
            "attention: shapes q {:?} k {:?} v {:?} do not match the spec",
            q.shape(),
            k.shape(),
            v.shape()
        )
    }
    Ok(())
}

/// Rotates the keys `[B, T, KVH * D]` into `[B, KVH, T, D]`.
fn rotate_keys(spec: &AttnSpec, k: &[f32]) -> Vec<f32> {
    let (b_n, t, kvh, d) = (spec.b, spec.t, spec.kv_heads, spec.head_dim);
    let mut k_rot = zeros(b_n * kvh * t * d);
    let out = SharedOut::new(&mut k_rot);
    par_for_sized(b_n * kvh, b_n * kvh * t * d * 4, |unit| {
        let (b, g) = (unit / kvh, unit % kvh);
        let off = unit * t * d;
        // SAFETY: unit (b, g) alone writes its [T, D] block.
        let dst = unsafe { out.slice(off..off + t * d) };
        for ti in 0..t {
            let tok = b * t + ti;
            let src = &k[(tok * kvh + g) * d..(tok * kvh + g + 1) * d];
            spec.rope(tok, src, &mut dst[ti * d..(ti + 1) * d], 1.0, false);
        }
    });
    k_rot
}

impl CustomOp3 for FlashAttention {
    fn name(&self) -> &'static str {
        "azr-flash-attention"
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
        let spec = &self.spec;
        if spec.past != 0 {
            bail!("the training attention op takes no cache")
        }
        check_shapes(spec, l1, l2, l3, false)?;
        let (q, k, v) = (slice_f32(s1, l1)?, slice_f32(s2, l2)?, slice_f32(s3, l3)?);
        let (b, t, h, kvh, d) = (spec.b, spec.t, spec.heads, spec.kv_heads, spec.head_dim);
        let k_rot = rotate_keys(spec, &k);
        let mut out = zeros(b * t * h * d);
        let mut q_rot = zeros(b * h * t * d);
        let mut lse = zeros(b * h * t);
        forward(
            spec,
            &q,
            KvView {
                data: &k_rot,
                b_stride: kvh * t * d,
                g_stride: t * d,
                rs: d,
            },
            KvView {
                data: &v,
                b_stride: t * kvh * d,
                g_stride: d,
                rs: kvh * d,
            },
            &mut out,
            &mut q_rot,
            &mut lse,
        );
        // A second forward of the same op instance (not done by candle) keeps the first save.
        let _ = self.saved.set(Saved { q_rot, k_rot, lse });
        Ok((storage(out, s1.dtype()), Shape::from((b, t, h * d))))
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> CResult<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let Some(saved) = self.saved.get() else {
            bail!("attention backward before forward")
        };
        let spec = &self.spec;
        let (b_n, t, h_n, kvh, d) = (spec.b, spec.t, spec.heads, spec.kv_heads, spec.head_dim);
        let rep = h_n / kvh;
        let mut dq = zeros(b_n * t * h_n * d);
        let mut dk = zeros(b_n * t * kvh * d);
        let mut dv = zeros(b_n * t * kvh * d);
        with_f32(v, |v| {
            with_f32(res, |o| {
                with_f32(grad, |go| {
                    let (dq_o, dk_o, dv_o) = (
                        SharedOut::new(&mut dq),
                        SharedOut::new(&mut dk),
                        SharedOut::new(&mut dv),
                    );
                    par_for(b_n * kvh, |unit| {
                        let (b, g) = (unit / kvh, unit % kvh);
                        let kr = MatRef::new(&saved.k_rot, unit * t * d, t, d, d);
                        let vm = MatRef::new(v, (b * t * kvh + g) * d, t, d, kvh * d);
                        let mut dk_acc = zeros(t * d);
                        let mut dv_acc = zeros(t * d);
                        let tile = TILE.min(t);
                        let mut p = zeros(tile * t);
                        let mut dp = zeros(tile * t);
                        let mut dqr = zeros(tile * d);
                        let mut delta = zeros(tile);
                        for h in g * rep..(g + 1) * rep {
                            let qr_off = (b * h_n + h) * t * d;
                            let lse = &saved.lse[(b * h_n + h) * t..(b * h_n + h + 1) * t];
                            for q0 in (0..t).step_by(TILE) {
                                let q1 = (q0 + TILE).min(t);
                                let (rows, kmax) = (q1 - q0, q1);
                                let qt = MatRef::new(&saved.q_rot, qr_off + q0 * d, rows, d, d);
                                let go_t =
                                    MatRef::new(go, ((b * t + q0) * h_n + h) * d, rows, d, h_n * d);
                                let p = &mut p[..rows * kmax];
                                matmul(
                                    MatMut::new(p, 0, rows, kmax, kmax),
                                    qt,
                                    kr.rows(0..kmax).t(),
                                    false,
                                    1,
                                );
                                for (i, row) in p.chunks_exact_mut(kmax).enumerate() {
                                    spec.probs_row(b, q0 + i, lse[q0 + i], row);
                                }
                                let pm = MatRef::new(p, 0, rows, kmax, kmax);
                                // dV += P^T dO
                                matmul(
                                    MatMut::new(&mut dv_acc, 0, kmax, d, d),
                                    pm.t(),
                                    go_t,
                                    true,
                                    1,
                                );
                                // dP = dO V^T
                                let dp = &mut dp[..rows * kmax];
                                matmul(
                                    MatMut::new(dp, 0, rows, kmax, kmax),
                                    go_t,
                                    vm.rows(0..kmax).t(),
                                    false,
                                    1,
                                );
                                // delta_i = dO_i . O_i
                                for (i, dl) in delta[..rows].iter_mut().enumerate() {
                                    let off = ((b * t + q0 + i) * h_n + h) * d;
                                    *dl = sum8_2(&go[off..off + d], &o[off..off + d], |a, b| a * b);
                                }
                                // dS = P (dP - delta), in place in dp.
                                softmax_grad_rows(dp, p, &delta[..rows], kmax);
                                let ds = MatRef::new(dp, 0, rows, kmax, kmax);
                                // dQ_rot = dS K ; dK_rot += dS^T Q_rot
                                let dqr = &mut dqr[..rows * d];
                                matmul(
                                    MatMut::new(dqr, 0, rows, d, d),
                                    ds,
                                    kr.rows(0..kmax),
                                    false,
                                    1,
                                );
                                matmul(
                                    MatMut::new(&mut dk_acc, 0, kmax, d, d),
                                    ds.t(),
                                    qt,
                                    true,
                                    1,
                                );
                                for i in 0..rows {
                                    let tok = b * t + q0 + i;
                                    let off = (tok * h_n + h) * d;
                                    // SAFETY: unit (b, g) alone writes the dq columns of its
                                    // heads for row b's tokens.
                                    let dst = unsafe { dq_o.slice(off..off + d) };
                                    spec.rope(tok, &dqr[i * d..(i + 1) * d], dst, spec.scale, true);
                                }
                            }
                        }
                        for ti in 0..t {
                            let tok = b * t + ti;
                            let off = (tok * kvh + g) * d;
                            // SAFETY: unit (b, g) alone writes kv head g of row b's tokens.
                            let dst = unsafe { dk_o.slice(off..off + d) };
                            spec.rope(tok, &dk_acc[ti * d..(ti + 1) * d], dst, 1.0, true);
                            // SAFETY: as above.
                            let dst = unsafe { dv_o.slice(off..off + d) };
                            dst.copy_from_slice(&dv_acc[ti * d..(ti + 1) * d]);
                        }
                    });
                    Ok(())
                })
            })
        })?;
        Ok((
            Some(tensor(dq, q.shape().clone(), q.dtype())?),
            Some(tensor(dk, k.shape().clone(), k.dtype())?),
            Some(tensor(dv, v.shape().clone(), v.dtype())?),
        ))
    }
}

/// Values from an input's first element on, with its batch, head and row strides.
type Strided<'a> = (Cow<'a, [f32]>, [usize; 3]);

/// The values of a `[B, KVH, S, D]` key or value input whose last axis is contiguous (a
/// column view of the rollout engine's preallocated KV buffers qualifies).
fn kv_strided<'a>(s: &'a CpuStorage, l: &Layout) -> CResult<Strided<'a>> {
    let (dims, st) = (l.dims(), l.stride());
    if dims.len() != 4 || st[3] != 1 || dims.contains(&0) {
        bail!("cached attention: keys/values {dims:?} with strides {st:?} are not row-strided")
    }
    let a = l.start_offset();
    let b = a + (0..4).map(|i| (dims[i] - 1) * st[i]).sum::<usize>() + 1;
    let data = match s {
        CpuStorage::F32(v) => Cow::Borrowed(&v[a..b]),
        CpuStorage::BF16(v) => Cow::Owned(v[a..b].iter().map(|x| x.to_f32()).collect()),
        other => bail!("cached attention: unsupported dtype {:?}", other.dtype()),
    };
    Ok((data, [st[0], st[1], st[2]]))
}

/// The inference op (no backward): new `q` projections `[B, T, H * D]` over rotated keys and
/// values `[B, KVH, past + T, D]` that already include the new tokens.
#[derive(Debug, Clone)]
pub(crate) struct CachedAttention {
    pub spec: AttnSpec,
}

impl CustomOp3 for CachedAttention {
    fn name(&self) -> &'static str {
        "azr-cached-attention"
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
        let spec = &self.spec;
        check_shapes(spec, l1, l2, l3, true)?;
        let q = slice_f32(s1, l1)?;
        let ((k, kst), (v, vst)) = (kv_strided(s2, l2)?, kv_strided(s3, l3)?);
        let (b, t, h, d) = (spec.b, spec.t, spec.heads, spec.head_dim);
        let view = |data, st: [usize; 3]| KvView {
            data,
            b_stride: st[0],
            g_stride: st[1],
            rs: st[2],
        };
        let mut out = zeros(b * t * h * d);
        let mut q_rot = zeros(b * h * t * d);
        let mut lse = zeros(b * h * t);
        forward(
            spec,
            &q,
            view(&k, kst),
            view(&v, vst),
            &mut out,
            &mut q_rot,
            &mut lse,
        );
        Ok((storage(out, s1.dtype()), Shape::from((b, t, h * d))))
    }
}
