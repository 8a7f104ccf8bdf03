//! The RLVR learner: the pipeline's [`TrainModel`] plus a frozen copy of the starting weights
//! as the reference policy of the KL loss (k3, coefficient `loss.kl_coef`), which the
//! pipeline's `ModelTrainer` does not keep.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result};
use azr_core::model::{Model, Snapshot};
use azr_core::rl::learner::{Learner, LearnerConfig};
use azr_core::types::ScoredRollout;
use candle_core::Tensor;

use crate::backend::{TrainModel, MODEL_DIR, OPTIMIZER_FILE};
use crate::engine::{Trainer, UpdateStats};

/// Policy, reference and optimizer.
pub struct RlvrTrainer {
    model: TrainModel,
    reference: Option<TrainModel>,
    learner: Learner,
}

impl RlvrTrainer {
    /// A trainer over `model`; `reference` (the starting weights) is kept only when the KL
    /// loss is on. Optimizer state is restored from `checkpoint` when resuming.
    pub fn new(
        model: Model,
        reference: Option<Model>,
        cfg: LearnerConfig,
        checkpoint: Option<&Path>,
    ) -> Result<Self> {
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
        let reference = if cfg.loss.kl_coef > 0.0 {
            reference.map(TrainModel)
        } else {
            None
        };
        Ok(Self {
            model,
            reference,
            learner,
        })
    }
}

impl Trainer for RlvrTrainer {
    type Weights = Snapshot;

    fn update(&mut self, batch: &[ScoredRollout]) -> Result<UpdateStats, String> {
        let reference = self
            .reference
            .as_ref()
            .map(|r| r as &dyn azr_core::rl::learner::TrainablePolicy);
        let s = self
            .learner
            .step(&self.model, batch, reference)
            .map_err(|e| e.to_string())?;
        Ok(UpdateStats {
            pg_loss: f64::from(s.pg_loss),
            kl: f64::from(s.approx_kl),
            entropy: f64::from(s.entropy),
            clip_fraction: f64::from(s.clip_frac),
            grad_norm: f64::from(s.grad_norm),
            lr: s.lr,
            tokens: s.tokens as usize,
        })
    }

    fn snapshot(&self) -> Result<Snapshot, String> {
        self.model.0.snapshot().map_err(|e| e.to_string())
    }

    fn save(&self, dir: &Path) -> Result<(), String> {
        self.model
            .0
            .save_hf_dir(&dir.join(MODEL_DIR))
            .map_err(|e| e.to_string())?;
        let state = self
            .learner
            .optimizer()
            .state_dict()
            .map_err(|e| e.to_string())?;
        candle_core::safetensors::save(&state, dir.join(OPTIMIZER_FILE)).map_err(|e| e.to_string())
    }
}
