//! The trainable [`Model`] (weights are candle `Var`s) and its detached, immutable
//! [`Snapshot`] used by samplers and as the reference policy.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use candle_core::{DType, Device, Tensor, Var};

use super::cache::KvCache;
use super::config::ModelConfig;
use super::device::torch_dtype_name;
use super::error::{ModelError, Result};
use super::kernels::Kernels;
use super::layout::BatchLayout;
use super::tokenizer::Tokenizer;
use super::transformer::Transformer;
use super::weights::{check_and_convert, load_safetensors_dir, random_tensors, save_safetensors};

/// The policy network with trainable weights, its tokenizer, device and dtype.
///
/// `forward` runs the differentiable path over the `Var`s, so a loss built from its output
/// backpropagates into every weight; optimizers take [`Model::vars`]. Cloning is cheap and the
/// clone shares the same `Var`s.
#[derive(Debug, Clone)]
pub struct Model {
    vars: Vec<(String, Var)>,
    net: Transformer,
    tokenizer: Arc<Tokenizer>,
    dtype: DType,
}

impl Model {
    /// A randomly initialised model (see [`super::weights::random_tensors`]), deterministic in
    /// `seed`.
    pub fn random(
        config: ModelConfig,
        tokenizer: Tokenizer,
        device: &Device,
        dtype: DType,
        seed: u64,
    ) -> Result<Model> {
        config.validate()?;
        let tensors = random_tensors(&config, device, dtype, seed)?;
        Self::from_tensors(config, tensors, tokenizer, device, dtype)
    }

    /// A model from named HF tensors (any dtype/device; converted to `dtype` on `device`).
    ///
    /// # Errors
    /// A missing weight or a shape that disagrees with `config`.
    pub fn from_tensors(
        config: ModelConfig,
        tensors: HashMap<String, Tensor>,
        tokenizer: Tokenizer,
        device: &Device,
        dtype: DType,
    ) -> Result<Model> {
        config.validate()?;
        super::tune_allocator();
        let tensors = check_and_convert(&config, &tensors, device, dtype)?;
        let mut vars = tensors
            .into_iter()
            .map(|(name, t)| Ok((name, Var::from_tensor(&t)?)))
            .collect::<Result<Vec<_>>>()?;
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let lookup: HashMap<&str, &Var> = vars.iter().map(|(n, v)| (n.as_str(), v)).collect();
        let net = Transformer::new(&config, &|name| {
            lookup
                .get(name)
                .map(|v| v.as_tensor().clone())
                .ok_or_else(|| ModelError::MissingWeight(name.to_string()))
        })?;
        Ok(Model {
            vars,
            net,
            tokenizer: Arc::new(tokenizer),
            dtype,
        })
    }

    /// Loads an HF model directory: `config.json`, `model.safetensors` (or shards plus
    /// `model.safetensors.index.json`) and `tokenizer.json`.
    pub fn load_hf_dir(dir: &Path, device: &Device, dtype: DType) -> Result<Model> {
        let config = ModelConfig::load(&dir.join("config.json"))?;
        let tokenizer = Tokenizer::from_file(&dir.join("tokenizer.json"))?;
        let tensors = load_safetensors_dir(dir, device)?;
        tracing::info!(dir = %dir.display(), tensors = tensors.len(), "loaded HF checkpoint");
        Self::from_tensors(config, tensors, tokenizer, device, dtype)
    }

    /// Loads a checkpoint: a directory is read as an HF model directory.
    ///
    /// # Errors
    /// Anything that is not a directory; GGUF files are not handled by this build of the
    /// module yet.
    pub fn load(path: &Path, device: &Device, dtype: DType) -> Result<Model> {
        if path.is_dir() {
            return Self::load_hf_dir(path, device, dtype);
        }
        if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
        {
            let g = crate::model::gguf::load_gguf(path, device)?;
            let tokenizer = Tokenizer::from_tokenizers(g.tokenizer);
            return Self::from_tensors(g.config, g.tensors, tokenizer, device, dtype);
        }
        Err(ModelError::UnsupportedCheckpoint {
            path: path.to_path_buf(),
            reason: "expected an HF model directory or a .gguf file".into(),
        })
    }

    /// Writes an HF model directory (`config.json`, `model.safetensors`, `tokenizer.json`)
    /// that HF transformers and vLLM can load. A tied head is not written separately.
    pub fn save_hf_dir(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
        self.config()
            .save(&dir.join("config.json"), torch_dtype_name(self.dtype))?;
        save_safetensors(dir, &self.tensors()?)?;
        self.tokenizer.save(&dir.join("tokenizer.json"))?;
        tracing::info!(dir = %dir.display(), "saved HF checkpoint");
        Ok(())
    }

    /// The configuration.
    pub fn config(&self) -> &ModelConfig {
        self.net.config()
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The device of the weights.
    pub fn device(&self) -> &Device {
        self.net.device()
    }

    /// The dtype of the weights.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// All trainable variables (sorted by name), for an optimizer.
    pub fn vars(&self) -> Vec<Var> {
        self.vars.iter().map(|(_, v)| v.clone()).collect()
    }

    /// All trainable variables with their HF names, sorted by name.
    pub fn named_vars(&self) -> Vec<(String, Var)> {
        self.vars.clone()
    }

    /// Total number of trainable parameters.
    pub fn num_params(&self) -> usize {
        self.vars.iter().map(|(_, v)| v.elem_count()).sum()
    }

    /// Detached deep copies of the current weights by HF name (for checkpoints).
    pub fn tensors(&self) -> Result<HashMap<String, Tensor>> {
        self.vars
            .iter()
            .map(|(n, v)| Ok((n.clone(), v.as_tensor().copy()?.detach())))
            .collect()
    }

    /// Overwrites the weights in place from named tensors (e.g. a checkpoint being resumed).
    /// Every variable must be present with the right shape; extra names are ignored.
    pub fn set_tensors(&self, tensors: &HashMap<String, Tensor>) -> Result<()> {
        let converted = check_and_convert(self.config(), tensors, self.device(), self.dtype)?;
        for (name, var) in &self.vars {
            if let Some(t) = converted.get(name) {
                var.set(t)?;
            }
        }
        Ok(())
    }

    /// The differentiable forward: logits `[B, T, vocab]` for every position of `ids` (`[B, T]`
    /// u32). See [`Transformer::forward`] for `layout` and `cache`.
    pub fn forward(
        &self,
        ids: &Tensor,
        layout: Option<&BatchLayout>,
        cache: Option<&mut KvCache>,
    ) -> Result<Tensor> {
        self.net
            .forward(ids, layout, cache, Kernels::Differentiable)
    }

    /// The network over the live `Var`s (differentiable path with [`Kernels::Differentiable`]).
    pub fn transformer(&self) -> &Transformer {
        &self.net
    }

    /// A deep, detached copy of the current weights: later optimizer steps do not affect it.
    pub fn snapshot(&self) -> Result<Snapshot> {
        let copies = self.tensors()?;
        let net = Transformer::new(self.config(), &|name| {
            copies
                .get(name)
                .cloned()
                .ok_or_else(|| ModelError::MissingWeight(name.to_string()))
        })?;
        Ok(Snapshot {
            inner: Arc::new(SnapshotInner {
                net,
                tokenizer: Arc::clone(&self.tokenizer),
                tensors: copies,
            }),
        })
    }
}

#[derive(Debug)]
struct SnapshotInner {
    net: Transformer,
    tokenizer: Arc<Tokenizer>,
    /// The weights by HF name (the same tensors the network runs on, not copies).
    tensors: HashMap<String, Tensor>,
}

/// Frozen weights for inference (sampling, reference log-probs). Cheap to clone (one `Arc`),
/// `Send + Sync`, and its forward uses the fast fused kernels (no gradients).
#[derive(Debug, Clone)]
pub struct Snapshot {
    inner: Arc<SnapshotInner>,
}

impl Snapshot {
    /// The configuration.
    pub fn config(&self) -> &ModelConfig {
        self.inner.net.config()
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.inner.tokenizer
    }

    /// The device of the weights.
    pub fn device(&self) -> &Device {
        self.inner.net.device()
    }

    /// The dtype of the weights.
    pub fn dtype(&self) -> DType {
        self.inner.net.dtype()
    }

    /// The inference forward (fused kernels): logits `[B, T, vocab]` for every position.
    pub fn forward(
        &self,
        ids: &Tensor,
        layout: Option<&BatchLayout>,
        cache: Option<&mut KvCache>,
    ) -> Result<Tensor> {
        self.inner.net.forward(ids, layout, cache, Kernels::Fused)
    }

    /// The frozen network.
    pub fn transformer(&self) -> &Transformer {
        &self.inner.net
    }

    /// An empty cache sized for this model.
    pub fn new_cache(&self) -> KvCache {
        KvCache::new(self.config().num_hidden_layers)
    }

    /// Frozen weights from named HF tensors (any dtype/device; converted to `dtype` on
    /// `device`), e.g. a snapshot received from another machine.
    ///
    /// # Errors
    /// A missing weight or a shape that disagrees with `config`.
    pub fn from_tensors(
        config: ModelConfig,
        tensors: HashMap<String, Tensor>,
        tokenizer: Tokenizer,
        device: &Device,
        dtype: DType,
    ) -> Result<Snapshot> {
        config.validate()?;
        let tensors = check_and_convert(&config, &tensors, device, dtype)?;
        let net = Transformer::new(&config, &|name| {
            tensors
                .get(name)
                .cloned()
                .ok_or_else(|| ModelError::MissingWeight(name.to_string()))
        })?;
        Ok(Snapshot {
            inner: Arc::new(SnapshotInner {
                net,
                tokenizer: Arc::new(tokenizer),
                tensors,
            }),
        })
    }

    /// The weights as one safetensors buffer (HF names, the snapshot's dtype): what
    /// [`Snapshot::from_safetensors`] reads back.
    ///
    /// # Errors
    /// A tensor that cannot be copied to the host.
    pub fn to_safetensors(&self) -> Result<Vec<u8>> {
        let mut named: Vec<(&str, &Tensor)> = self
            .inner
            .tensors
            .iter()
            .map(|(n, t)| (n.as_str(), t))
            .collect();
        named.sort_by(|a, b| a.0.cmp(b.0));
        safetensors::tensor::serialize(named, None).map_err(|e| {
            ModelError::InvalidInput(format!("serializing the snapshot's weights: {e}"))
        })
    }

    /// A snapshot from a [`Snapshot::to_safetensors`] buffer, its model `config` and
    /// `tokenizer`, on `device` in `dtype`.
    ///
    /// # Errors
    /// An unreadable buffer, a missing weight or a wrong shape.
    pub fn from_safetensors(
        config: ModelConfig,
        bytes: &[u8],
        tokenizer: Tokenizer,
        device: &Device,
        dtype: DType,
    ) -> Result<Snapshot> {
        let tensors = candle_core::safetensors::load_buffer(bytes, device)?;
        Self::from_tensors(config, tensors, tokenizer, device, dtype)
    }
}
