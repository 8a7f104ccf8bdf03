//! Each CPU kernel against the same computation composed from candle primitives (whose
//! backward is candle's own autograd): values and the gradient of a loss that weighs every
//! output differently, for every input. Sizes are chosen to exercise tiling (more query rows
//! than a tile), GQA, padding masks, biases and odd widths; one finite-difference check of the
//! attention backward is independent of candle's autograd.

use std::sync::Arc;

use candle_core::{DType, Device, Tensor, Var, D};

use super::cpu_attention::{AttnSpec, CachedAttention, FlashAttention};
use super::cpu_linear::{GateUp, Linear, LinearBias};
use super::cpu_ops::{MaskedSoftmax, RmsNorm, Rope, SwiGlu, TokenLogProbEntropy};

fn rand(shape: &[usize], seed: u64, scale: f32) -> Var {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|i| {
            let x = (i as u64)
                .wrapping_mul(2654435761)
                .wrapping_add(seed * 97 + 13)
                % 10007;
            (x as f32 / 10007.0 - 0.5) * 2.0 * scale
        })
        .collect();
    Var::from_tensor(&Tensor::from_vec(v, shape, &Device::Cpu).unwrap()).unwrap()
}

/// A fixed weighting of the outputs, so that every output element matters differently.
fn weights_like(t: &Tensor) -> Tensor {
    let n = t.elem_count();
    Tensor::arange(0f32, n as f32, &Device::Cpu)
        .unwrap()
        .affine(0.37, 0.1)
        .unwrap()
        .sin()
        .unwrap()
        .reshape(t.shape())
        .unwrap()
}

fn flat(t: &Tensor) -> Vec<f32> {
    t.to_dtype(DType::F32)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

fn max_diff(a: &Tensor, b: &Tensor) -> (f32, f32) {
    let (a, b) = (flat(a), flat(b));
    assert_eq!(a.len(), b.len());
    let d = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    let scale = b.iter().fold(0f32, |s, x| s.max(x.abs()));
    (d, scale)
}

/// Compares `ours(inputs)` with `reference(inputs)` in value and in the gradient wrt every
/// input, with relative tolerance `tol`.
fn check(
    what: &str,
    inputs: &[Var],
    tol: f32,
    ours: impl Fn(&[Tensor]) -> Tensor,
    reference: impl Fn(&[Tensor]) -> Tensor,
) {
    let ts: Vec<Tensor> = inputs.iter().map(|v| v.as_tensor().clone()).collect();
    let (a, b) = (ours(&ts), reference(&ts));
    assert_eq!(a.dims(), b.dims(), "{what}: shapes");
    let (d, s) = max_diff(&a, &b);
    assert!(
        d <= tol * s.max(1.0),
        "{what}: values differ by {d} (scale {s})"
    );
    let w = weights_like(&b);
    let ga = (a.to_dtype(DType::F32).unwrap() * &w)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let gb = (b.to_dtype(DType::F32).unwrap() * &w)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    for (i, v) in inputs.iter().enumerate() {
        let x = ga
            .get(v.as_tensor())
            .unwrap_or_else(|| panic!("{what}: no grad for input {i}"));
        let y = gb.get(v.as_tensor()).unwrap();
        let (d, s) = max_diff(x, y);
        assert!(
            d <= tol * s.max(1.0),
            "{what}: grad of input {i} differs by {d} (scale {s})"
        );
    }
}

#[test]
fn linear_matches_matmul() {
    for (n, k, m) in [(7, 5, 3), (300, 64, 96)] {
        let (x, w, b) = (
            rand(&[2, n, k], 1, 1.0),
            rand(&[m, k], 2, 0.5),
            rand(&[m], 3, 0.5),
        );
        let composed = |t: &[Tensor], bias: bool| {
            let y = t[0]
                .reshape((2 * n, k))
                .unwrap()
                .matmul(&t[1].t().unwrap())
                .unwrap();
            let y = if bias {
                y.broadcast_add(&t[2]).unwrap()
            } else {
                y
            };
            y.reshape((2, n, m)).unwrap()
        };
        check(
            "linear",
            &[x.clone(), w.clone()],
            1e-5,
            |t| t[0].apply_op2(&t[1], Linear).unwrap(),
            |t| composed(t, false),
        );
        check(
            "linear+bias",
            &[x, w, b],
            1e-5,
            |t| t[0].apply_op3(&t[1], &t[2], LinearBias).unwrap(),
            |t| composed(t, true),
        );
    }
}

#[test]
fn gate_up_matches_composed_swiglu() {
    let (x, wg, wu) = (
        rand(&[3, 11, 16], 4, 1.0),
        rand(&[40, 16], 5, 0.6),
        rand(&[40, 16], 6, 0.6),
    );
    check(
        "gate-up",
        &[x, wg, wu],
        1e-5,
        |t| t[0].apply_op3(&t[1], &t[2], GateUp::new()).unwrap(),
        |t| {
            let lin = |w: &Tensor| t[0].broadcast_matmul(&w.t().unwrap()).unwrap();
            (lin(&t[1]).silu().unwrap() * lin(&t[2])).unwrap()
        },
    );
    let (g, u) = (rand(&[5, 33], 7, 4.0), rand(&[5, 33], 8, 1.0));
    check(
        "swiglu",
        &[g, u],
        1e-5,
        |t| t[0].apply_op2(&t[1], SwiGlu).unwrap(),
        |t| (t[0].silu().unwrap() * &t[1]).unwrap(),
    );
}

#[test]
fn rms_norm_matches_composed() {
    let (x, w) = (rand(&[4, 9, 24], 9, 2.0), rand(&[24], 10, 1.0));
    check(
        "rms-norm",
        &[x, w],
        1e-5,
        |t| t[0].apply_op2(&t[1], RmsNorm { eps: 1e-6 }).unwrap(),
        |t| {
            let ms = t[0].sqr().unwrap().mean_keepdim(D::Minus1).unwrap();
            let r = (ms + 1e-6).unwrap().sqrt().unwrap().recip().unwrap();
            t[0].broadcast_mul(&r)
                .unwrap()
                .broadcast_mul(&t[1])
                .unwrap()
        },
    );
}

/// RoPE tables `[B, T, D/2]` for positions `pos` (row-major `[B, T]`).
fn rope_tables(pos: &[u32], half: usize) -> (Vec<f32>, Vec<f32>) {
    let (mut c, mut s) = (Vec::new(), Vec::new());
    for &p in pos {
        for i in 0..half {
            let a = p as f64 / 10_000f64.powf(2.0 * i as f64 / (2 * half) as f64);
            c.push(a.cos() as f32);
            s.push(a.sin() as f32);
        }
    }
    (c, s)
}

/// Composed RoPE of `[B, T, H, D]` into `[B, H, T, D]`, times `scale`.
fn rope_composed(x: &Tensor, cos: &[f32], sin: &[f32], scale: f64) -> Tensor {
    let (b, t, _h, d) = x.dims4().unwrap();
    let half = d / 2;
    let c = Tensor::from_slice(cos, (b, 1, t, half), &Device::Cpu).unwrap();
    let s = Tensor::from_slice(sin, (b, 1, t, half), &Device::Cpu).unwrap();
    let c = Tensor::cat(&[&c, &c], D::Minus1).unwrap();
    let s = Tensor::cat(&[&s, &s], D::Minus1).unwrap();
    let x = x.transpose(1, 2).unwrap();
    let x1 = x.narrow(D::Minus1, 0, half).unwrap();
    let x2 = x.narrow(D::Minus1, half, half).unwrap();
    let rot = Tensor::cat(&[&x2.neg().unwrap(), &x1], D::Minus1).unwrap();
    let y = (x.broadcast_mul(&c).unwrap() + rot.broadcast_mul(&s).unwrap()).unwrap();
    (y * scale).unwrap()
}

#[test]
fn rope_matches_composed() {
    let (b, t, h, d) = (2, 5, 3, 8);
    let pos: Vec<u32> = (0..(b * t) as u32).map(|i| i * 3 % 11).collect();
    let (c, s) = rope_tables(&pos, d / 2);
    let x = rand(&[b, t, h, d], 11, 1.0);
    let op = Rope {
        cos: Arc::new(c.clone()),
        sin: Arc::new(s.clone()),
        sin_sign: 1.0,
        scale: 0.5,
        to_heads_first: true,
    };
    check(
        "rope",
        &[x],
        1e-5,
        |t| t[0].apply_op1(op.clone()).unwrap(),
        |t| rope_composed(&t[0], &c, &s, 0.5),
    );
}

/// The additive mask `[B, T, past + T]` for left-padded rows: row `b` has `pads[b]` pad keys
/// (cached or new) at the front; pads see only themselves, real queries only real keys.
fn pad_bias(b: usize, t: usize, past: usize, pads: &[usize]) -> Vec<f32> {
    let s = past + t;
    let mut bias = vec![f32::NEG_INFINITY; b * t * s];
    for row in 0..b {
        for q in 0..t {
            let qs = past + q;
            for k in 0..=qs {
                if k >= pads[row] || k == qs {
                    bias[(row * t + q) * s + k] = 0.0;
                }
            }
        }
    }
    bias
}

/// Composed attention: q `[B, T, H*D]`, k, v `[B, T, KVH*D]` (new tokens, no cache).
#[allow(clippy::too_many_arguments)]
fn attention_composed(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    h: usize,
    kvh: usize,
    cos: &[f32],
    sin: &[f32],
    bias: &[f32],
) -> Tensor {
    let (b, t, hd) = q.dims3().unwrap();
    let d = hd / h;
    let q = rope_composed(
        &q.reshape((b, t, h, d)).unwrap(),
        cos,
        sin,
        1.0 / (d as f64).sqrt(),
    );
    let k = rope_composed(&k.reshape((b, t, kvh, d)).unwrap(), cos, sin, 1.0);
    let v = v.reshape((b, t, kvh, d)).unwrap().transpose(1, 2).unwrap();
    let rep = h / kvh;
    let repeat = |x: &Tensor| {
        // [B, KVH, T, D] -> [B, H, T, D], each kv head repeated for its `rep` query heads.
        let x = x.unsqueeze(2).unwrap();
        let x = Tensor::cat(&vec![&x; rep], 2).unwrap();
        x.reshape((b, h, t, d)).unwrap()
    };
    let (k, v) = (repeat(&k), repeat(&v));
    let scores = q
        .contiguous()
        .unwrap()
        .matmul(&k.t().unwrap().contiguous().unwrap())
        .unwrap();
    let mask = Tensor::from_slice(bias, (b, 1, t, t), &Device::Cpu).unwrap();
    let p = candle_nn::ops::softmax(&scores.broadcast_add(&mask).unwrap(), D::Minus1).unwrap();
    let ctx = p.matmul(&v.contiguous().unwrap()).unwrap();
    ctx.transpose(1, 2).unwrap().reshape((b, t, h * d)).unwrap()
}

#[allow(clippy::too_many_arguments)]
fn spec(
    b: usize,
    t: usize,
    past: usize,
    h: usize,
    kvh: usize,
    d: usize,
    pos: &[u32],
    bias: Option<Vec<f32>>,
) -> AttnSpec {
    let (c, s) = rope_tables(pos, d / 2);
    AttnSpec {
        b,
        t,
        past,
        heads: h,
        kv_heads: kvh,
        head_dim: d,
        scale: 1.0 / (d as f32).sqrt(),
        cos: Arc::new(c),
        sin: Arc::new(s),
        bias: bias.map(Arc::new),
    }
}

#[test]
fn flash_attention_matches_composed() {
    // 70 query rows: three tiles, the last one partial; GQA 4 over 2; two padded rows.
    for (b, t, h, kvh, d, pads) in [
        (3, 70, 4, 2, 8, vec![0, 5, 69]),
        (2, 9, 2, 2, 6, vec![0, 0]),
    ] {
        let pads = &pads;
        let pos: Vec<u32> = (0..b)
            .flat_map(|row| (0..t).map(move |i: usize| i.saturating_sub(pads[row]) as u32))
            .collect();
        let bias = pad_bias(b, t, 0, pads);
        let (c, s) = rope_tables(&pos, d / 2);
        let sp = spec(b, t, 0, h, kvh, d, &pos, Some(bias.clone()));
        let (q, k, v) = (
            rand(&[b, t, h * d], 12, 1.5),
            rand(&[b, t, kvh * d], 13, 1.5),
            rand(&[b, t, kvh * d], 14, 1.0),
        );
        check(
            "flash attention",
            &[q, k, v],
            2e-5,
            |x| {
                x[0].apply_op3(&x[1], &x[2], FlashAttention::new(sp.clone()))
                    .unwrap()
            },
            |x| attention_composed(&x[0], &x[1], &x[2], h, kvh, &c, &s, &bias),
        );
    }
}

#[test]
fn flash_attention_without_mask_is_causal() {
    let (b, t, h, kvh, d) = (2, 40, 2, 1, 4);
    let pos: Vec<u32> = (0..b).flat_map(|_| 0..t as u32).collect();
    let bias = pad_bias(b, t, 0, &[0, 0]);
    let (c, s) = rope_tables(&pos, d / 2);
    let sp = spec(b, t, 0, h, kvh, d, &pos, None);
    let (q, k, v) = (
        rand(&[b, t, h * d], 15, 1.0),
        rand(&[b, t, kvh * d], 16, 1.0),
        rand(&[b, t, kvh * d], 17, 1.0),
    );
    check(
        "causal attention",
        &[q, k, v],
        2e-5,
        |x| {
            x[0].apply_op3(&x[1], &x[2], FlashAttention::new(sp.clone()))
                .unwrap()
        },
        |x| attention_composed(&x[0], &x[1], &x[2], h, kvh, &c, &s, &bias),
    );
}

/// Central finite differences of a scalar loss of the attention output, against the
/// hand-written backward (independent of candle's autograd).
#[test]
fn flash_attention_backward_matches_finite_differences() {
    let (b, t, h, kvh, d) = (1, 5, 2, 1, 4);
    let pos: Vec<u32> = (0..t as u32).collect();
    let sp = spec(b, t, 0, h, kvh, d, &pos, Some(pad_bias(b, t, 0, &[1])));
    let inputs = [
        rand(&[b, t, h * d], 18, 1.0),
        rand(&[b, t, kvh * d], 19, 1.0),
        rand(&[b, t, kvh * d], 20, 1.0),
    ];
    let loss = |q: &Tensor, k: &Tensor, v: &Tensor| -> f64 {
        let y = q.apply_op3(k, v, FlashAttention::new(sp.clone())).unwrap();
        let w = weights_like(&y);
        flat(&(y * w).unwrap()).iter().map(|&x| x as f64).sum()
    };
    let ts: Vec<Tensor> = inputs.iter().map(|v| v.as_tensor().clone()).collect();
    let y = ts[0]
        .apply_op3(&ts[1], &ts[2], FlashAttention::new(sp.clone()))
        .unwrap();
    let grads = (y.clone() * weights_like(&y))
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let eps = 1e-2f32;
    for (i, var) in inputs.iter().enumerate() {
        let base = flat(var.as_tensor());
        let g = flat(grads.get(var.as_tensor()).unwrap());
        for j in 0..base.len() {
            let at = |delta: f32| {
                let mut v = base.clone();
                v[j] += delta;
                let t = Tensor::from_vec(v, var.shape(), &Device::Cpu).unwrap();
                let mut args = ts.clone();
                args[i] = t;
                loss(&args[0], &args[1], &args[2])
            };
            let fd = (at(eps) - at(-eps)) / (2.0 * eps as f64);
            assert!(
                (fd - g[j] as f64).abs() < 2e-3 * (1.0 + fd.abs()),
                "input {i} elem {j}: finite difference {fd} vs backward {}",
                g[j]
            );
        }
    }
}

#[test]
fn cached_attention_matches_full_attention() {
    // Attending from the last `t` tokens over a cache of `past` gives the same rows as the
    // full causal attention over `past + t` tokens.
    let (b, past, t, h, kvh, d) = (2, 6, 3, 4, 2, 8);
    let n = past + t;
    let pads = &[0usize, 2];
    let pos: Vec<u32> = (0..b)
        .flat_map(|row| (0..n).map(move |i: usize| i.saturating_sub(pads[row]) as u32))
        .collect();
    let full_bias = pad_bias(b, n, 0, pads);
    let (c, s) = rope_tables(&pos, d / 2);
    let (q, k, v) = (
        rand(&[b, n, h * d], 21, 1.0),
        rand(&[b, n, kvh * d], 22, 1.0),
        rand(&[b, n, kvh * d], 23, 1.0),
    );
    let (q, k, v) = (q.as_tensor(), k.as_tensor(), v.as_tensor());
    let full = attention_composed(q, k, v, h, kvh, &c, &s, &full_bias);
    // Rotated keys and values of all tokens in the cache layout [B, KVH, S, D].
    let kr = rope_composed(&k.reshape((b, n, kvh, d)).unwrap(), &c, &s, 1.0)
        .contiguous()
        .unwrap();
    let vr = v
        .reshape((b, n, kvh, d))
        .unwrap()
        .transpose(1, 2)
        .unwrap()
        .contiguous()
        .unwrap();
    let new_pos: Vec<u32> = (0..b)
        .flat_map(|row| pos[row * n + past..(row + 1) * n].to_vec())
        .collect();
    let bias: Vec<f32> = (0..b)
        .flat_map(|row| full_bias[(row * n + past) * n..(row + 1) * n * n].to_vec())
        .collect();
    let sp = spec(b, t, past, h, kvh, d, &new_pos, Some(bias));
    let q_new = q.narrow(1, past, t).unwrap().contiguous().unwrap();
    let ours = q_new
        .apply_op3_no_bwd(&kr, &vr, &CachedAttention { spec: sp })
        .unwrap();
    let (dd, sc) = max_diff(&ours, &full.narrow(1, past, t).unwrap());
    assert!(dd < 2e-5 * sc.max(1.0), "cached attention differs by {dd}");
}

#[test]
fn masked_softmax_matches_composed() {
    let (b, h, t) = (2, 3, 7);
    let bias = pad_bias(b, t, 0, &[0, 3]);
    let x = rand(&[b, h, t, t], 24, 3.0);
    let op = MaskedSoftmax {
        bias: Some(Arc::new(bias.clone())),
        heads: h,
    };
    check(
        "masked softmax",
        &[x],
        1e-5,
        |t| t[0].apply_op1(op.clone()).unwrap(),
        |x| {
            let m = Tensor::from_slice(&bias, (b, 1, t, t), &Device::Cpu).unwrap();
            candle_nn::ops::softmax(&x[0].broadcast_add(&m).unwrap(), D::Minus1).unwrap()
        },
    );
}

#[test]
fn token_logprob_and_entropy_match_log_softmax() {
    let (n, v) = (13, 37);
    let targets: Vec<u32> = (0..n as u32).map(|i| i * 7 % v as u32).collect();
    let x = rand(&[n, v], 25, 4.0);
    let composed = |x: &Tensor| {
        let logp = candle_nn::ops::log_softmax(x, D::Minus1).unwrap();
        let idx = Tensor::from_slice(&targets, (n, 1), &Device::Cpu).unwrap();
        let lp = logp.gather(&idx, D::Minus1).unwrap();
        let ent = (logp.exp().unwrap() * &logp)
            .unwrap()
            .sum_keepdim(D::Minus1)
            .unwrap()
            .neg()
            .unwrap();
        (lp, ent)
    };
    let tg = Arc::new(targets.clone());
    check(
        "logprob+entropy",
        std::slice::from_ref(&x),
        1e-5,
        |t| {
            t[0].apply_op1(TokenLogProbEntropy {
                targets: tg.clone(),
                entropy: true,
            })
            .unwrap()
        },
        |t| {
            let (lp, ent) = composed(&t[0]);
            Tensor::cat(&[&lp, &ent], 1).unwrap()
        },
    );
    check(
        "logprob",
        &[x],
        1e-5,
        |t| {
            t[0].apply_op1(TokenLogProbEntropy {
                targets: tg.clone(),
                entropy: false,
            })
            .unwrap()
        },
        |t| composed(&t[0]).0.squeeze(1).unwrap(),
    );
}

#[test]
fn bf16_inputs_give_bf16_outputs_close_to_f32() {
    let (x, w) = (rand(&[4, 16], 26, 1.0), rand(&[8, 16], 27, 1.0));
    let y32 = x.as_tensor().apply_op2(w.as_tensor(), Linear).unwrap();
    let xb = x.as_tensor().to_dtype(DType::BF16).unwrap();
    let wb = w.as_tensor().to_dtype(DType::BF16).unwrap();
    let yb = xb.apply_op2(&wb, Linear).unwrap();
    assert_eq!(yb.dtype(), DType::BF16);
    let (d, s) = max_diff(&yb, &y32);
    assert!(d < 0.02 * s.max(1.0), "bf16 linear differs by {d}");
}
