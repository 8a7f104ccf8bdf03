//! AdamW with decoupled weight decay over candle `Var`s, gradient accumulation and global
//! gradient-norm clipping.
//!
//! Update rule (Loshchilov & Hutter; identical to `torch.optim.AdamW` and `candle_nn::AdamW`),
//! at step `t` (1-based) with learning rate `lr` and gradient `g` (already multiplied by the
//! clipping coefficient):
//!
//! ```text
//! m = b1 m + (1 - b1) g            v = b2 v + (1 - b2) g^2
//! m_hat = m / (1 - b1^t)           v_hat = v / (1 - b2^t)
//! theta = theta (1 - lr wd) - lr m_hat / (sqrt(v_hat) + eps)
//! ```
//!
//! Speed: candle's CPU element-wise ops are single-threaded and allocate a fresh tensor each, so
//! `candle_nn::AdamW` costs ~10 passes and allocations per variable. For `f32` variables on the
//! CPU this optimizer instead keeps `m`, `v` in host vectors and updates the variable **in
//! place** with one fused loop (a candle `InplaceOp1`; compiled for AVX2 + FMA when the CPU has
//! them, and split over the compute threads in 64 K-element chunks, which gives the same values
//! as one pass since the update is element-wise). Other devices/dtypes fall back to the
//! tensor-op formulation of `candle_nn::AdamW`.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::time::Instant;

use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, DType, Device, InplaceOp1, Layout, Storage, Tensor, Var};
use serde::{Deserialize, Serialize};

use crate::model::cpu_par::{multiversion, par_for, SharedOut};
use crate::rl::RlError;

/// AdamW hyper-parameters (`[learner.optimizer]` in TOML). Defaults: `lr = 1e-6` (AZR and 1-shot
/// RLVR), betas `(0.9, 0.999)`, `eps = 1e-8`, `weight_decay = 0.01` (verl/FSDP default used by
/// the AZR paper branch and 1-shot RLVR; AZR master uses 0.0).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdamWConfig {
    /// Peak learning rate (the schedule multiplies it). Default 1e-6.
    pub lr: f64,
    /// First-moment decay. Default 0.9.
    pub beta1: f64,
    /// Second-moment decay. Default 0.999.
    pub beta2: f64,
    /// Denominator epsilon. Default 1e-8.
    pub eps: f64,
    /// Decoupled weight decay. Default 0.01.
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self {
            lr: 1e-6,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
        }
    }
}

impl AdamWConfig {
    /// Checks value ranges; the error names the offending key.
    pub fn validate(&self) -> Result<(), RlError> {
        let bad = |key, reason: &str| {
            Err(RlError::Config {
                key,
                reason: reason.to_string(),
            })
        };
        if !(self.lr >= 0.0 && self.lr.is_finite()) {
            return bad("lr", "must be finite and >= 0");
        }
        if !(0.0..1.0).contains(&self.beta1) {
            return bad("beta1", "must be in [0, 1)");
        }
        if !(0.0..1.0).contains(&self.beta2) {
            return bad("beta2", "must be in [0, 1)");
        }
        if !(self.eps > 0.0 && self.eps.is_finite()) {
            return bad("eps", "must be finite and > 0");
        }
        if !(self.weight_decay >= 0.0 && self.weight_decay.is_finite()) {
            return bad("weight_decay", "must be finite and >= 0");
        }
        Ok(())
    }
}

/// Gradients of a fixed list of variables (aligned by index with the optimizer's variables),
/// summed over any number of `backward()` calls: gradient accumulation over micro-batches.
#[derive(Debug, Clone)]
pub struct Gradients {
    grads: Vec<Option<Tensor>>,
}

impl Gradients {
    /// No gradient yet for any of `n` variables.
    pub fn empty(n: usize) -> Self {
        Self {
            grads: vec![None; n],
        }
    }

    /// The gradients of `vars` found in `store` (variables without one stay `None`).
    pub fn from_store(store: &GradStore, vars: &[(String, Var)]) -> Self {
        Self {
            grads: vars
                .iter()
                .map(|(_, v)| store.get(v.as_tensor()).cloned())
                .collect(),
        }
    }

    /// Adds the gradients of `vars` found in `store` to the accumulated ones.
    pub fn accumulate(&mut self, store: &GradStore, vars: &[(String, Var)]) -> Result<(), RlError> {
        if vars.len() != self.grads.len() {
            return Err(RlError::Shape {
                what: "Gradients::accumulate",
                detail: format!(
                    "{} vars for {} gradient slots",
                    vars.len(),
                    self.grads.len()
                ),
            });
        }
        for (slot, (_, var)) in self.grads.iter_mut().zip(vars) {
            if let Some(g) = store.get(var.as_tensor()) {
                *slot = Some(match slot.take() {
                    Some(acc) => (acc + g)?,
                    None => g.clone(),
                });
            }
        }
        Ok(())
    }

    /// Adds `other` (gradients of the same variables) to the accumulated ones.
    pub fn add(&mut self, other: Gradients) -> Result<(), RlError> {
        if other.grads.len() != self.grads.len() {
            return Err(RlError::Shape {
                what: "Gradients::add",
                detail: format!(
                    "{} gradient slots added to {}",
                    other.grads.len(),
                    self.grads.len()
                ),
            });
        }
        for (slot, g) in self.grads.iter_mut().zip(other.grads) {
            if let Some(g) = g {
                *slot = Some(match slot.take() {
                    Some(acc) => (acc + g)?,
                    None => g,
                });
            }
        }
        Ok(())
    }

    /// The accumulated gradient of variable `i`, if any.
    pub fn get(&self, i: usize) -> Option<&Tensor> {
        self.grads.get(i).and_then(Option::as_ref)
    }

    /// Number of variable slots.
    pub fn len(&self) -> usize {
        self.grads.len()
    }

    /// True when there are no variable slots.
    pub fn is_empty(&self) -> bool {
        self.grads.is_empty()
    }

    /// Global L2 norm `sqrt(sum_i ||g_i||^2)` over all present gradients (computed in f64).
    pub fn global_norm(&self) -> Result<f64, RlError> {
        let mut total = 0.0f64;
        for g in self.grads.iter().flatten() {
            total += sum_of_squares(g)?;
        }
        Ok(total.sqrt())
    }
}

/// What one shard of [`sharded_gradients`] produced besides its gradient.
#[derive(Debug, Clone, PartialEq)]
pub struct Shard<T> {
    /// The shard's loss (its share of the batch loss).
    pub loss: f32,
    /// What the shard's closure returned with its loss.
    pub value: T,
    /// Seconds in the shard's closure (forward and loss), on its thread.
    pub forward_s: f64,
    /// Seconds in the shard's backward, on its thread.
    pub backward_s: f64,
}

/// Contiguous row ranges splitting `rows` rows into `shards` near-equal parts (the first
/// `rows % shards` one row longer); fewer parts when there are fewer rows, none empty.
pub fn shard_ranges(rows: usize, shards: usize) -> Vec<Range<usize>> {
    let n = shards.clamp(1, rows.max(1));
    let (base, extra) = (rows / n, rows % n);
    let mut start = 0;
    (0..n)
        .map(|i| {
            let len = base + usize::from(i < extra);
            let r = start..start + len;
            start += len;
            r
        })
        .filter(|r| !r.is_empty())
        .collect()
}

/// Data-parallel gradient of a loss that is the sum of `shards` per-shard losses: `shard(i)`
/// builds the loss of shard `i` (and any value to return with it), the shards run on the
/// compute threads at once ([`crate::model::run_shards`], single-threaded kernels inside each),
/// each is backpropagated on its own thread, and the gradients of `vars` are summed in shard
/// order (so the result does not depend on which thread ran which shard).
///
/// The result is the gradient of the summed loss, i.e. of the whole batch's loss, when every
/// shard's loss is normalised by counts of the **whole** batch (e.g. a token mean divides by
/// the batch's real tokens, not the shard's): the same rule as gradient accumulation over
/// micro-batches, and exact up to the order of floating-point sums. With one shard this is a
/// plain `backward()` on the calling thread. Returns the summed gradients and every shard's
/// outputs in shard order.
///
/// # Errors
/// The first error of any shard (in shard order), or of the backward or the summation.
pub fn sharded_gradients<T, E>(
    vars: &[(String, Var)],
    shards: usize,
    shard: impl Fn(usize) -> Result<(Tensor, T), E> + Sync,
) -> Result<(Gradients, Vec<Shard<T>>), E>
where
    T: Send,
    E: From<candle_core::Error> + Send,
{
    let run = |i: usize| -> Result<(Gradients, Shard<T>), E> {
        let t0 = Instant::now();
        let (loss, value) = shard(i)?;
        let t1 = Instant::now();
        let store = loss.backward()?;
        let grads = Gradients::from_store(&store, vars);
        // The store also holds the gradient of every intermediate tensor: free it now.
        drop(store);
        let backward_s = t1.elapsed().as_secs_f64();
        let loss = loss.to_dtype(DType::F32)?.to_scalar::<f32>()?;
        Ok((
            grads,
            Shard {
                loss,
                value,
                forward_s: (t1 - t0).as_secs_f64(),
                backward_s,
            },
        ))
    };
    let mut parts = Vec::with_capacity(shards);
    let mut outs = Vec::with_capacity(shards);
    for r in crate::model::run_shards(shards, run) {
        let (g, o) = r?;
        parts.push(g);
        outs.push(o);
    }
    if parts.len() <= 1 {
        let grads = parts.pop().unwrap_or_else(|| Gradients::empty(vars.len()));
        return Ok((grads, outs));
    }
    // Sum variable by variable (spread over the threads), shards in order.
    let summed = crate::model::run_shards(vars.len(), |v| -> candle_core::Result<Option<Tensor>> {
        let mut acc: Option<Tensor> = None;
        for g in parts.iter().filter_map(|p| p.grads[v].as_ref()) {
            acc = Some(match acc {
                Some(a) => (a + g)?,
                None => g.clone(),
            });
        }
        Ok(acc)
    });
    let grads = summed
        .into_iter()
        .collect::<candle_core::Result<Vec<_>>>()?;
    Ok((Gradients { grads }, outs))
}

/// `sum(t^2)` in f64; a fused host loop for contiguous CPU f32 tensors.
fn sum_of_squares(t: &Tensor) -> Result<f64, RlError> {
    let t = t.contiguous()?;
    let fused = with_cpu_f32(&t, |s| s.iter().map(|&x| f64::from(x) * f64::from(x)).sum());
    match fused {
        Some(v) => Ok(v),
        None => Ok(t
            .to_dtype(DType::F64)?
            .sqr()?
            .sum_all()?
            .to_scalar::<f64>()?),
    }
}

/// Runs `f` on the elements of `t` if it is a contiguous f32 CPU tensor.
fn with_cpu_f32<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Option<R> {
    let (storage, layout) = t.storage_and_layout();
    match (&*storage, layout.contiguous_offsets()) {
        (Storage::Cpu(CpuStorage::F32(data)), Some((start, end))) => Some(f(&data[start..end])),
        _ => None,
    }
}

/// The multiplier `torch.nn.utils.clip_grad_norm_` applies: `min(1, max_norm / (norm + 1e-6))`.
/// `max_norm <= 0` disables clipping (returns 1).
pub fn clip_coefficient(norm: f64, max_norm: f64) -> f64 {
    if max_norm <= 0.0 {
        1.0
    } else {
        (max_norm / (norm + 1e-6)).min(1.0)
    }
}

/// Optimizer moments of one variable.
#[derive(Debug)]
enum Moments {
    /// Not touched yet (equivalent to zeros).
    Fresh,
    /// Host vectors, for f32 variables on the CPU (fused in-place update).
    Host { m: Vec<f32>, v: Vec<f32> },
    /// Tensors on the variable's device and dtype (tensor-op update).
    Device { m: Tensor, v: Tensor },
}

/// The fused in-place AdamW update of one contiguous f32 CPU variable.
struct FusedAdamW<'a> {
    grad: &'a [f32],
    m: RefCell<&'a mut [f32]>,
    v: RefCell<&'a mut [f32]>,
    hp: AdamScalars,
}

impl InplaceOp1 for FusedAdamW<'_> {
    fn name(&self) -> &'static str {
        "fused-adamw"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> candle_core::Result<()> {
        let (start, end) = layout.contiguous_offsets().ok_or_else(|| {
            candle_core::Error::Msg("fused-adamw: variable not contiguous".into())
        })?;
        let CpuStorage::F32(data) = storage else {
            return Err(candle_core::Error::Msg(
                "fused-adamw: variable is not f32".into(),
            ));
        };
        let theta = &mut data[start..end];
        let mut m = self.m.borrow_mut();
        let mut v = self.v.borrow_mut();
        if theta.len() != self.grad.len() || m.len() != theta.len() || v.len() != theta.len() {
            return Err(candle_core::Error::Msg(
                "fused-adamw: length mismatch".into(),
            ));
        }
        // Element-wise, so any split gives the same values: chunks of 64 K elements spread
        // over the compute threads (one chunk, inline, for small variables).
        const CHUNK: usize = 1 << 16;
        let n = theta.len();
        let (p_o, m_o, v_o) = (
            SharedOut::new(theta),
            SharedOut::new(&mut m[..]),
            SharedOut::new(&mut v[..]),
        );
        let (grad, hp) = (self.grad, self.hp);
        par_for(n.div_ceil(CHUNK), |c| {
            let r = c * CHUNK..((c + 1) * CHUNK).min(n);
            // SAFETY: chunk `c` alone touches elements `r` of the variable and its moments.
            let (p, m, v) = unsafe {
                (
                    p_o.slice(r.clone()),
                    m_o.slice(r.clone()),
                    v_o.slice(r.clone()),
                )
            };
            adamw_update(p, &grad[r], m, v, &hp);
        });
        Ok(())
    }
}

/// The scalar parameters of one [`FusedAdamW`] update.
#[derive(Clone, Copy)]
struct AdamScalars {
    grad_scale: f32,
    beta1: f32,
    beta2: f32,
    scale_m: f32,
    scale_v: f32,
    decay: f32,
    lr: f32,
    eps: f32,
}

multiversion! {
    /// The AdamW update of matching slices of a variable, its gradient and moments.
    fn adamw_update(theta: &mut [f32], grad: &[f32], m: &mut [f32], v: &mut [f32], hp: &AdamScalars) {
        let (b1, b2) = (hp.beta1, hp.beta2);
        let (c1, c2) = (1.0 - b1, 1.0 - b2);
        for (((p, &g), mi), vi) in theta.iter_mut().zip(grad).zip(m.iter_mut()).zip(v.iter_mut()) {
            let g = g * hp.grad_scale;
            *mi = *mi * b1 + g * c1;
            *vi = *vi * b2 + (g * g) * c2;
            let m_hat = *mi * hp.scale_m;
            let v_hat = *vi * hp.scale_v;
            *p = *p * hp.decay - (m_hat / (v_hat.sqrt() + hp.eps)) * hp.lr;
        }
    }
}

/// AdamW over named candle variables; see the module docs for the update rule.
#[derive(Debug)]
pub struct AdamW {
    cfg: AdamWConfig,
    vars: Vec<(String, Var)>,
    moments: Vec<Moments>,
    step: u64,
}

/// Key of the step counter in [`AdamW::state_dict`].
pub const STEP_KEY: &str = "step";

impl AdamW {
    /// An optimizer over `vars` (names must be unique: they key the state dict).
    pub fn new(vars: Vec<(String, Var)>, cfg: AdamWConfig) -> Result<Self, RlError> {
        cfg.validate()?;
        let mut seen = HashSet::new();
        for (name, _) in &vars {
            if name == STEP_KEY || !seen.insert(name.as_str()) {
                return Err(RlError::State(format!(
                    "duplicate or reserved variable name `{name}`"
                )));
            }
        }
        let moments = vars.iter().map(|_| Moments::Fresh).collect();
        Ok(Self {
            cfg,
            vars,
            moments,
            step: 0,
        })
    }

    /// The variables, in the order [`Gradients`] must follow.
    pub fn vars(&self) -> &[(String, Var)] {
        &self.vars
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &AdamWConfig {
        &self.cfg
    }

    /// Number of optimizer steps taken so far.
    pub fn step_count(&self) -> u64 {
        self.step
    }

    /// One AdamW step with learning rate `lr` on the gradients `grads` multiplied by `grad_scale`
    /// (the clipping coefficient; 1.0 for none). Variables without a gradient are left untouched
    /// (their moments too), as in `candle_nn::AdamW`; the step counter is global.
    pub fn step(&mut self, grads: &Gradients, lr: f64, grad_scale: f64) -> Result<(), RlError> {
        if grads.len() != self.vars.len() {
            return Err(RlError::Shape {
                what: "AdamW::step",
                detail: format!("{} gradients for {} vars", grads.len(), self.vars.len()),
            });
        }
        self.step += 1;
        let t = self.step as i32;
        let c = self.cfg;
        let scale_m = 1.0 / (1.0 - c.beta1.powi(t));
        let scale_v = 1.0 / (1.0 - c.beta2.powi(t));
        let decay = 1.0 - lr * c.weight_decay;
        for (i, (name, var)) in self.vars.iter().enumerate() {
            let Some(grad) = grads.get(i) else { continue };
            if grad.dims() != var.dims() {
                return Err(RlError::Shape {
                    what: "AdamW::step",
                    detail: format!("{name}: grad {:?} vs var {:?}", grad.dims(), var.dims()),
                });
            }
            let host = var.device().is_cpu()
                && var.dtype() == DType::F32
                && var.is_contiguous()
                && grad.dtype() == DType::F32;
            let moments = &mut self.moments[i];
            if host {
                let n = var.elem_count();
                if !matches!(moments, Moments::Host { .. }) {
                    let (m, v) = match std::mem::replace(moments, Moments::Fresh) {
                        Moments::Device { m, v } => (
                            m.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?,
                            v.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?,
                        ),
                        _ => (vec![0.0; n], vec![0.0; n]),
                    };
                    *moments = Moments::Host { m, v };
                }
                let Moments::Host { m, v } = moments else {
                    return Err(RlError::State(format!("{name}: host moments missing")));
                };
                let grad = grad.contiguous()?;
                let res = with_cpu_f32(&grad, |g| {
                    let op = FusedAdamW {
                        grad: g,
                        m: RefCell::new(m.as_mut_slice()),
                        v: RefCell::new(v.as_mut_slice()),
                        hp: AdamScalars {
                            grad_scale: grad_scale as f32,
                            beta1: c.beta1 as f32,
                            beta2: c.beta2 as f32,
                            scale_m: scale_m as f32,
                            scale_v: scale_v as f32,
                            decay: decay as f32,
                            lr: lr as f32,
                            eps: c.eps as f32,
                        },
                    };
                    var.as_tensor().inplace_op1(&op)
                });
                match res {
                    Some(r) => r?,
                    None => {
                        return Err(RlError::Shape {
                            what: "AdamW::step",
                            detail: format!("{name}: gradient is not a CPU f32 tensor"),
                        })
                    }
                }
            } else {
                let (m, v) = match std::mem::replace(moments, Moments::Fresh) {
                    Moments::Device { m, v } => (m, v),
                    Moments::Host { m, v } => (
                        Tensor::from_vec(m, var.shape(), var.device())?.to_dtype(var.dtype())?,
                        Tensor::from_vec(v, var.shape(), var.device())?.to_dtype(var.dtype())?,
                    ),
                    Moments::Fresh => (var.zeros_like()?, var.zeros_like()?),
                };
                let g = (grad.to_dtype(var.dtype())? * grad_scale)?;
                let next_m = ((&m * c.beta1)? + (&g * (1.0 - c.beta1))?)?;
                let next_v = ((&v * c.beta2)? + (g.sqr()? * (1.0 - c.beta2))?)?;
                let m_hat = (&next_m * scale_m)?;
                let v_hat = (&next_v * scale_v)?;
                let adjusted = (m_hat / (v_hat.sqrt()? + c.eps)?)?;
                let next = ((var.as_tensor() * decay)? - (adjusted * lr)?)?;
                var.set(&next)?;
                *moments = Moments::Device {
                    m: next_m,
                    v: next_v,
                };
            }
        }
        Ok(())
    }

    /// Optimizer state for checkpoints: `"<var>.exp_avg"` and `"<var>.exp_avg_sq"` for every
    /// variable (zeros when untouched; same shape as the variable, f32 on the CPU) and
    /// [`STEP_KEY`], an `i64` tensor of shape `[1]` holding the step count. Can be saved as-is
    /// with `candle_core::safetensors::save`.
    pub fn state_dict(&self) -> Result<HashMap<String, Tensor>, RlError> {
        let mut out = HashMap::new();
        for ((name, var), mom) in self.vars.iter().zip(&self.moments) {
            let (m, v) = match mom {
                Moments::Fresh => {
                    let z = Tensor::zeros(var.shape(), DType::F32, &Device::Cpu)?;
                    (z.clone(), z)
                }
                Moments::Host { m, v } => (
                    Tensor::from_slice(m, var.shape(), &Device::Cpu)?,
                    Tensor::from_slice(v, var.shape(), &Device::Cpu)?,
                ),
                Moments::Device { m, v } => (
                    m.to_dtype(DType::F32)?.to_device(&Device::Cpu)?,
                    v.to_dtype(DType::F32)?.to_device(&Device::Cpu)?,
                ),
            };
            out.insert(format!("{name}.exp_avg"), m);
            out.insert(format!("{name}.exp_avg_sq"), v);
        }
        let step = i64::try_from(self.step)
            .map_err(|_| RlError::State("step count does not fit in i64".into()))?;
        out.insert(STEP_KEY.to_string(), Tensor::new(&[step], &Device::Cpu)?);
        Ok(out)
    }

    /// Restores the state written by [`AdamW::state_dict`]. Every variable's moments must be
    /// present with the variable's shape; extra keys are an error too (they signal a model
    /// mismatch).
    pub fn load_state_dict(&mut self, state: &HashMap<String, Tensor>) -> Result<(), RlError> {
        let step = state
            .get(STEP_KEY)
            .ok_or_else(|| RlError::State(format!("missing `{STEP_KEY}`")))?
            .flatten_all()?
            .to_dtype(DType::I64)?
            .to_vec1::<i64>()?;
        let step = match step.as_slice() {
            [s] if *s >= 0 => *s as u64,
            other => return Err(RlError::State(format!("bad `{STEP_KEY}` value {other:?}"))),
        };
        let expected = 2 * self.vars.len() + 1;
        if state.len() != expected {
            return Err(RlError::State(format!(
                "{} entries, expected {expected} for {} variables",
                state.len(),
                self.vars.len()
            )));
        }
        let mut moments = Vec::with_capacity(self.vars.len());
        for (name, var) in &self.vars {
            let get = |suffix: &str| -> Result<&Tensor, RlError> {
                let key = format!("{name}.{suffix}");
                let t = state
                    .get(&key)
                    .ok_or_else(|| RlError::State(format!("missing `{key}`")))?;
                if t.dims() != var.dims() {
                    return Err(RlError::State(format!(
                        "`{key}` has shape {:?}, variable has {:?}",
                        t.dims(),
                        var.dims()
                    )));
                }
                Ok(t)
            };
            let (m, v) = (get("exp_avg")?, get("exp_avg_sq")?);
            let host = var.device().is_cpu() && var.dtype() == DType::F32;
            moments.push(if host {
                Moments::Host {
                    m: m.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?,
                    v: v.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?,
                }
            } else {
                Moments::Device {
                    m: m.to_dtype(var.dtype())?.to_device(var.device())?,
                    v: v.to_dtype(var.dtype())?.to_device(var.device())?,
                }
            });
        }
        self.moments = moments;
        self.step = step;
        Ok(())
    }
}
