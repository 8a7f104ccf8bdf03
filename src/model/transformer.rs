//! The Llama / Qwen2 decoder (pre-norm, GQA attention with RoPE, SwiGLU MLP, RMSNorm), written
//! bottom-up: linear, MLP, attention, block, then the [`Transformer`].
//!
//! One forward serves training and inference: it returns logits for every position, takes
//! per-row positions and padding ([`BatchLayout`]) so left-padded batches work, and an optional
//! caller-owned [`KvCache`]. The ops used are chosen by [`Kernels`]: only
//! [`Kernels::Differentiable`] may be used when gradients are needed.
//!
//! The weights are plain tensors: the trainable [`crate::model::Model`] hands in its `Var`s
//! (so gradients flow to them), a [`crate::model::Snapshot`] hands in detached deep copies.

use std::sync::Arc;

use candle_core::{DType, Device, Tensor, D};

use super::cache::KvCache;
use super::config::ModelConfig;
use super::error::{ModelError, Result};
use super::kernels::{
    attention, attention_is_fused, attention_probs, gate_up, linear, rms_norm, rope, AttnBias,
    Kernels, RopeAt,
};
use super::layout::{attention_bias, BatchLayout};

/// `y = x W^T (+ b)` over the last dimension.
#[derive(Debug, Clone)]
struct Linear {
    w: Tensor,
    b: Option<Tensor>,
}

impl Linear {
    fn forward(&self, x: &Tensor, kernels: Kernels) -> Result<Tensor> {
        linear(x, &self.w, self.b.as_ref(), kernels)
    }
}

/// SwiGLU MLP: `down(silu(gate(x)) * up(x))`.
#[derive(Debug, Clone)]
struct Mlp {
    gate: Linear,
    up: Linear,
    down: Linear,
}

impl Mlp {
    fn forward(&self, x: &Tensor, kernels: Kernels) -> Result<Tensor> {
        let act = gate_up(x, &self.gate.w, &self.up.w, kernels)?;
        self.down.forward(&act, kernels)
    }
}

/// Per-forward data shared by every layer.
struct Step<'a> {
    /// RoPE angles at each token's position.
    rope: &'a RopeAt,
    /// `[B, 1, T, S]` additive mask, if any.
    bias: Option<&'a AttnBias>,
    kernels: Kernels,
}

/// Grouped-query self-attention.
#[derive(Debug, Clone)]
struct Attention {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
}

impl Attention {
    fn forward(
        &self,
        x: &Tensor,
        step: &Step<'_>,
        cache: Option<(&mut KvCache, usize)>,
    ) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        let (h, kvh, hd) = (self.heads, self.kv_heads, self.head_dim);
        let kn = step.kernels;
        let (q, k, v) = (
            self.q.forward(x, kn)?,
            self.k.forward(x, kn)?,
            self.v.forward(x, kn)?,
        );
        if attention_is_fused(kn, x, cache.is_some()) {
            let ctx = attention(&q, &k, &v, h, kvh, step.rope, step.bias, cache, kn)?;
            return self.o.forward(&ctx, kn);
        }
        let q = q.reshape((b, t, h, hd))?;
        let k = k.reshape((b, t, kvh, hd))?;
        let v = v.reshape((b, t, kvh, hd))?.transpose(1, 2)?;
        // Scaling q inside RoPE is cheaper than scaling the T x S scores.
        let q = rope(&q, step.rope, 1.0 / (hd as f64).sqrt(), step.kernels)?;
        let k = rope(&k, step.rope, 1.0, step.kernels)?.contiguous()?;
        let v = v.contiguous()?;
        let (k, v) = match cache {
            Some((c, layer)) => c.append(layer, k, v)?,
            None => (k, v),
        };
        let s = k.dim(2)?;
        // GQA without repeating K/V: fold the `rep` query heads of a group into the row axis.
        let rep = h / kvh;
        let q = q.contiguous()?.reshape((b, kvh, rep * t, hd))?;
        let scores = q.matmul(&k.t()?)?.reshape((b, h, t, s))?;
        let probs =
            attention_probs(&scores, step.bias, step.kernels)?.reshape((b, kvh, rep * t, s))?;
        let ctx = probs.matmul(&v)?.reshape((b, h, t, hd))?;
        let ctx = ctx.transpose(1, 2)?.reshape((b, t, h * hd))?;
        self.o.forward(&ctx, kn)
    }
}

/// One pre-norm decoder block.
#[derive(Debug, Clone)]
struct Block {
    attn: Attention,
    mlp: Mlp,
    input_norm: Tensor,
    post_norm: Tensor,
}

/// The decoder: embeddings, blocks, final norm and LM head, over a fixed set of weights.
#[derive(Debug, Clone)]
pub struct Transformer {
    cfg: ModelConfig,
    embed: Tensor,
    blocks: Vec<Block>,
    norm: Tensor,
    lm_head: Tensor,
    /// `[max_positions, head_dim/2]` RoPE tables in the model dtype.
    cos: Tensor,
    sin: Tensor,
    /// The same tables as host f32 values (for the custom CPU kernels).
    cos_host: Arc<Vec<f32>>,
    sin_host: Arc<Vec<f32>>,
}

impl Transformer {
    /// Builds the network from named weights (HF names, see
    /// [`crate::model::weights::weight_shapes`]); `get` returns the tensor of a name. With tied
    /// embeddings the head reuses `model.embed_tokens.weight`.
    pub fn new(cfg: &ModelConfig, get: &dyn Fn(&str) -> Result<Tensor>) -> Result<Self> {
        let lin = |name: &str, bias: bool| -> Result<Linear> {
            Ok(Linear {
                w: get(&format!("{name}.weight"))?,
                b: if bias {
                    Some(get(&format!("{name}.bias"))?)
                } else {
                    None
                },
            })
        };
        let mut blocks = Vec::with_capacity(cfg.num_hidden_layers);
        for i in 0..cfg.num_hidden_layers {
            let p = format!("model.layers.{i}");
            blocks.push(Block {
                attn: Attention {
                    q: lin(&format!("{p}.self_attn.q_proj"), cfg.qkv_bias())?,
                    k: lin(&format!("{p}.self_attn.k_proj"), cfg.qkv_bias())?,
                    v: lin(&format!("{p}.self_attn.v_proj"), cfg.qkv_bias())?,
                    o: lin(&format!("{p}.self_attn.o_proj"), cfg.o_bias())?,
                    heads: cfg.num_attention_heads,
                    kv_heads: cfg.kv_heads(),
                    head_dim: cfg.head_dim(),
                },
                mlp: Mlp {
                    gate: lin(&format!("{p}.mlp.gate_proj"), false)?,
                    up: lin(&format!("{p}.mlp.up_proj"), false)?,
                    down: lin(&format!("{p}.mlp.down_proj"), false)?,
                },
                input_norm: get(&format!("{p}.input_layernorm.weight"))?,
                post_norm: get(&format!("{p}.post_attention_layernorm.weight"))?,
            });
        }
        let embed = get("model.embed_tokens.weight")?;
        let lm_head = if cfg.tie_word_embeddings {
            embed.clone()
        } else {
            get("lm_head.weight")?
        };
        let (cos_host, sin_host) = rope_tables(cfg);
        let half = cfg.head_dim() / 2;
        let n = cfg.max_position_embeddings;
        let dev = embed.device();
        let cos = Tensor::from_slice(&cos_host, (n, half), dev)?.to_dtype(embed.dtype())?;
        let sin = Tensor::from_slice(&sin_host, (n, half), dev)?.to_dtype(embed.dtype())?;
        Ok(Self {
            cfg: cfg.clone(),
            embed,
            blocks,
            norm: get("model.norm.weight")?,
            lm_head,
            cos,
            sin,
            cos_host: Arc::new(cos_host),
            sin_host: Arc::new(sin_host),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    /// Device of the weights.
    pub fn device(&self) -> &Device {
        self.embed.device()
    }

    /// Dtype of the weights.
    pub fn dtype(&self) -> DType {
        self.embed.dtype()
    }

    /// Logits `[B, T, vocab]` for every position of `ids` (`[B, T]`, u32).
    ///
    /// `layout` gives per-token positions and padding; `None` means all tokens are real and
    /// row positions continue from the cache (or start at 0). With a `cache`, keys/values of the
    /// new tokens are appended to it and the new queries also attend to what it holds.
    pub fn forward(
        &self,
        ids: &Tensor,
        layout: Option<&BatchLayout>,
        cache: Option<&mut KvCache>,
        kernels: Kernels,
    ) -> Result<Tensor> {
        let h = self.hidden(ids, layout, cache, kernels)?;
        self.logits(&h)
    }

    /// The final-normed hidden states `[B, T, hidden]` (the forward without the LM head), so
    /// callers that need only some positions apply [`Self::logits`] to a slice.
    pub fn hidden(
        &self,
        ids: &Tensor,
        layout: Option<&BatchLayout>,
        mut cache: Option<&mut KvCache>,
        kernels: Kernels,
    ) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let owned;
        let layout = match layout {
            Some(l) => l,
            None => {
                let start = match cache.as_deref() {
                    Some(c) if !c.is_empty() => c.next_pos.clone(),
                    _ => vec![0; b],
                };
                owned = BatchLayout::continuing(&start, t);
                &owned
            }
        };
        if layout.batch() != b || layout.seq() != t {
            return Err(ModelError::InvalidInput(format!(
                "layout is {}x{} but ids are {b}x{t}",
                layout.batch(),
                layout.seq()
            )));
        }
        let (past, past_real) = match cache.as_deref() {
            Some(c) if !c.is_empty() => {
                if c.batch_size() != b {
                    return Err(ModelError::InvalidInput(format!(
                        "cache holds {} rows but the batch has {b}",
                        c.batch_size()
                    )));
                }
                (c.len, c.real.clone())
            }
            _ => (0, Vec::new()),
        };
        let max_pos = self.cos.dim(0)?;
        if let Some(&p) = layout.positions().iter().max() {
            if p as usize >= max_pos {
                return Err(ModelError::InvalidInput(format!(
                    "position {p} exceeds max_position_embeddings {max_pos}"
                )));
            }
        }
        let dev = self.device();
        let half = self.cfg.head_dim() / 2;
        let tensors = if kernels.needs_tensors(dev) {
            let pos = Tensor::new(layout.positions(), dev)?;
            let cos = self.cos.index_select(&pos, 0)?.reshape((b, t, half))?;
            let sin = self.sin.index_select(&pos, 0)?.reshape((b, t, half))?;
            Some((cos, sin))
        } else {
            None
        };
        let gather = |table: &[f32]| -> Arc<Vec<f32>> {
            let mut out = Vec::with_capacity(b * t * half);
            for &p in layout.positions() {
                let p = p as usize;
                out.extend_from_slice(&table[p * half..(p + 1) * half]);
            }
            Arc::new(out)
        };
        let rope_at = RopeAt {
            tensors,
            cos_host: gather(&self.cos_host),
            sin_host: gather(&self.sin_host),
        };
        let bias = match attention_bias(&past_real, past, layout) {
            Some(v) => Some(AttnBias {
                tensor: if kernels.needs_tensors(dev) {
                    Some(Tensor::from_slice(&v, (b, 1, t, past + t), dev)?.to_dtype(self.dtype())?)
                } else {
                    None
                },
                host: Arc::new(v),
            }),
            None => None,
        };
        let step = Step {
            rope: &rope_at,
            bias: bias.as_ref(),
            kernels,
        };
        let eps = self.cfg.rms_norm_eps;
        let mut x = self
            .embed
            .index_select(&ids.flatten_all()?, 0)?
            .reshape((b, t, ()))?;
        for (i, block) in self.blocks.iter().enumerate() {
            let slot = cache.as_deref_mut().map(|c| (c, i));
            let a =
                block
                    .attn
                    .forward(&rms_norm(&x, &block.input_norm, eps, kernels)?, &step, slot)?;
            x = (x + a)?;
            let m = block
                .mlp
                .forward(&rms_norm(&x, &block.post_norm, eps, kernels)?, kernels)?;
            x = (x + m)?;
        }
        if let Some(c) = cache {
            if c.is_empty() {
                c.real = vec![Vec::new(); b];
            }
            for row in 0..b {
                c.real[row].extend_from_slice(&layout.real()[row * t..(row + 1) * t]);
            }
            c.next_pos = (0..b)
                .map(|row| layout.positions()[row * t + t - 1] + 1)
                .collect();
            c.len = past + t;
        }
        rms_norm(&x, &self.norm, eps, kernels)
    }

    /// Applies the LM head to hidden states `[B, T, hidden]`, giving `[B, T, vocab]`
    /// (differentiable).
    pub fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        hidden.dims3()?;
        linear(hidden, &self.lm_head, None, Kernels::Differentiable)
    }
}

/// RoPE cos/sin tables `[max_position_embeddings, head_dim/2]`, row-major, computed in f64.
fn rope_tables(cfg: &ModelConfig) -> (Vec<f32>, Vec<f32>) {
    let hd = cfg.head_dim();
    let half = hd / 2;
    let n = cfg.max_position_embeddings;
    let inv: Vec<f64> = (0..half)
        .map(|i| 1.0 / cfg.rope_theta.powf((2 * i) as f64 / hd as f64))
        .collect();
    let mut cos = Vec::with_capacity(n * half);
    let mut sin = Vec::with_capacity(n * half);
    for p in 0..n {
        for f in &inv {
            let a = p as f64 * f;
            cos.push(a.cos() as f32);
            sin.push(a.sin() as f32);
        }
    }
    (cos, sin)
}

/// Convenience used across the module: a `[B, T]` u32 tensor from row-major ids.
pub(crate) fn ids_tensor(ids: &[u32], b: usize, t: usize, dev: &Device) -> Result<Tensor> {
    Ok(Tensor::from_slice(ids, (b, t), dev)?)
}

/// The log-softmax of logits over the vocabulary in f32.
pub(crate) fn log_softmax_f32(logits: &Tensor) -> Result<Tensor> {
    Ok(candle_nn::ops::log_softmax(
        &logits.to_dtype(DType::F32)?,
        D::Minus1,
    )?)
}
