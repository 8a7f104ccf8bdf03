//! The real compute behind [`crate::engine`]: `azr_core::model` for generation and the
//! tokenizer, `azr_core::rl::learner` for updates.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use azr_core::model::{self, Model, Snapshot, Tokenizer};
use azr_core::rl::learner::{Learner, LearnerConfig, TrainablePolicy};
use azr_core::rl::RlError;
use azr_core::types::ScoredRollout;
use candle_core::{Tensor, Var};

use crate::config::Config;
use crate::engine::{Codec, CodecError, SharedCodec, TrainError, Trainer, UpdateStats};
use crate::pipeline::Engines;

/// File name of the optimizer state inside a checkpoint directory.
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
/// Sub-directory of the HF-format weights inside a checkpoint directory.
pub const MODEL_DIR: &str = "model";

/// The model's tokenizer as a [`Codec`].
pub struct TokenizerCodec(pub Tokenizer);

impl Codec for TokenizerCodec {
    fn encode(&self, text: &str) -> Result<Vec<u32>, CodecError> {
        self.0
            .encode(text, true)
            .map_err(|e| CodecError(e.to_string()))
    }

    fn decode(&self, ids: &[u32]) -> Result<String, CodecError> {
        self.0
            .decode(ids, false)
            .map_err(|e| CodecError(e.to_string()))
    }
}

/// [`Model`] seen by the learner (a newtype: the trait and the type both live in the core).
pub struct TrainModel(pub Model);

impl TrainablePolicy for TrainModel {
    fn named_vars(&self) -> Vec<(String, Var)> {
        self.0.named_vars()
    }

    fn response_logprobs(
        &self,
        batch: &[(Vec<u32>, Vec<u32>)],
    ) -> Result<(Tensor, Tensor, Tensor), RlError> {
        let b =
            model::response_logprobs(&self.0, batch).map_err(|e| RlError::Policy(e.to_string()))?;
        Ok((b.logprobs, b.entropy, b.mask))
    }
}

/// Frozen reference weights for the KL loss (no trainable variables).
pub struct ReferencePolicy(pub Snapshot);

impl TrainablePolicy for ReferencePolicy {
    fn named_vars(&self) -> Vec<(String, Var)> {
        Vec::new()
    }

    fn response_logprobs(
        &self,
        batch: &[(Vec<u32>, Vec<u32>)],
    ) -> Result<(Tensor, Tensor, Tensor), RlError> {
        let b = model::snapshot_response_logprobs(&self.0, batch)
            .map_err(|e| RlError::Policy(e.to_string()))?;
        Ok((b.logprobs, b.entropy, b.mask))
    }
}

/// The learner over the live model.
pub struct ModelTrainer {
    model: TrainModel,
    learner: Learner,
    reference: Option<ReferencePolicy>,
}

impl ModelTrainer {
    /// A trainer over `model` (optionally restoring optimizer state from a checkpoint dir).
    /// `reference` is required when `cfg.loss.kl_coef > 0`.
    pub fn new(
        model: Model,
        cfg: LearnerConfig,
        checkpoint: Option<&Path>,
        reference: Option<Snapshot>,
    ) -> Result<Self> {
        if cfg.loss.kl_coef > 0.0 && reference.is_none() {
            anyhow::bail!("config key `learner.loss.kl_coef` > 0 needs reference weights");
        }
        let model = TrainModel(model);
        let mut learner = Learner::new(cfg, &model).context("creating the learner")?;
        if let Some(dir) = checkpoint {
            let p = dir.join(OPTIMIZER_FILE);
            let state: HashMap<String, Tensor> =
                candle_core::safetensors::load(&p, &candle_core::Device::Cpu)
                    .with_context(|| format!("reading {}", p.display()))?;
            learner
                .optimizer_mut()
                .load_state_dict(&state)
                .with_context(|| format!("restoring {}", p.display()))?;
        }
        Ok(Self {
            model,
            learner,
            reference: reference.map(ReferencePolicy),
        })
    }
}

impl Trainer for ModelTrainer {
    fn update(&mut self, batch: &[ScoredRollout]) -> Result<UpdateStats, TrainError> {
        let s = self
            .learner
            .step(
                &self.model,
                batch,
                self.reference.as_ref().map(|r| r as &dyn TrainablePolicy),
            )
            .map_err(|e| TrainError::Update(e.to_string()))?;
        Ok(UpdateStats {
            pg_loss: f64::from(s.pg_loss),
            kl: f64::from(s.approx_kl),
            kl_reference: f64::from(s.kl),
            entropy: f64::from(s.entropy),
            clip_fraction: f64::from(s.clip_frac),
            grad_norm: f64::from(s.grad_norm),
            lr: s.lr,
            tokens: s.tokens as usize,
            importance_mean: s.importance.mean,
            importance_std: s.importance.std,
            ess: s.importance.ess,
        })
    }

    fn snapshot(&self) -> Result<Snapshot, TrainError> {
        self.model
            .0
            .snapshot()
            .map_err(|e| TrainError::Snapshot(e.to_string()))
    }

    fn save(&self, dir: &Path) -> Result<(), TrainError> {
        let err = |e: &dyn std::fmt::Display| TrainError::Save(e.to_string());
        self.model
            .0
            .save_hf_dir(&dir.join(MODEL_DIR))
            .map_err(|e| err(&e))?;
        let state = self.learner.optimizer().state_dict().map_err(|e| err(&e))?;
        candle_core::safetensors::save(&state, dir.join(OPTIMIZER_FILE)).map_err(|e| err(&e))
    }
}

/// Load the model of a run: from `checkpoint/model` when resuming, else `model.path`.
pub fn load_model(cfg: &Config, checkpoint: Option<&Path>) -> Result<Model> {
    let device = model::parse_device(&cfg.raw.model.device)
        .with_context(|| format!("config key `model.device`: `{}`", cfg.raw.model.device))?;
    let dtype = model::parse_dtype(&cfg.raw.model.dtype)
        .with_context(|| format!("config key `model.dtype`: `{}`", cfg.raw.model.dtype))?;
    let dir = match checkpoint {
        Some(c) => c.join(MODEL_DIR),
        None => cfg.raw.model.path.clone(),
    };
    Model::load(&dir, &device, dtype).with_context(|| {
        format!(
            "loading the model from {} (config key `model.path`)",
            dir.display()
        )
    })
}

/// Stop token ids of a model: its EOS ids plus the template's stop strings that are single
/// tokens of the vocabulary.
pub fn stop_token_ids(model: &Model, stop_strings: &[String]) -> Vec<u32> {
    let mut ids: Vec<u32> = model
        .config()
        .eos_token_id
        .as_ref()
        .map(|t| t.to_vec())
        .unwrap_or_default();
    for s in stop_strings {
        if let Some(id) = model.tokenizer().token_to_id(s) {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// The codec of a model.
pub fn codec(model: &Model) -> SharedCodec {
    Arc::new(TokenizerCodec(model.tokenizer().clone()))
}

/// The built-in compute of a run: the model of `model.path` (or of `checkpoint/model` when
/// resuming, with the optimizer state) as the trainer, its weights, its tokenizer, and as stop
/// tokens its EOS plus the template set's single-token stop strings. With `learner.loss.kl_coef
/// > 0` the KL reference is the base model of `model.path`, also when resuming.
pub fn engines(
    cfg: &Config,
    checkpoint: Option<&Path>,
    templates: &azr_core::tasks::TemplateSet,
) -> Result<Engines<ModelTrainer>> {
    let model = load_model(cfg, checkpoint)?;
    tracing::info!(
        params = model.num_params(),
        layers = model.config().num_hidden_layers,
        "model loaded"
    );
    let stop_token_ids = stop_token_ids(&model, &templates.format.stop);
    let codec = codec(&model);
    let weights = model.snapshot()?;
    let reference = if cfg.raw.learner.loss.kl_coef > 0.0 {
        Some(load_model(cfg, None)?.snapshot()?)
    } else {
        None
    };
    let trainer = ModelTrainer::new(model, cfg.raw.learner, checkpoint, reference)?;
    Ok(Engines {
        trainer,
        weights,
        stop_token_ids,
        codec,
    })
}
