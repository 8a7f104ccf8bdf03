//! Next-token pretraining of the tiny base model on the procedural corpus.
//!
//! [`pretrain`] builds the tokenizer, starts the sandboxed executor, initialises the model from
//! the seed and trains it on packed rows of the training stream with AdamW ([`crate::rl::optim`]) (linear warm-up,
//! constant, linear decay over the final part of a step budget), global-norm gradient
//! clipping and a masked next-token loss (every non-pad target). It writes into `out_dir`:
//!
//! * `tokenizer.json` and `config.resolved.json` (the full config, defaults included);
//! * `loss.csv`: `step,lr,loss,tokens,samples,train_seconds,tokens_per_second`, one row per
//!   `log_every` steps (loss averaged over those steps);
//! * `checkpoints/step-NNNNNN/` every `checkpoint_every` steps and `final/` at the end, each an
//!   HF model directory (`config.json`, `model.safetensors`, `tokenizer.json`);
//! * `heldout.jsonl` and `eval.json`: the held-out set and its greedy scores per task kind.
//!
//! The budget counts training-step time only (data generation and evaluation excluded). With a
//! step budget the run is reproducible from the seed on the same hardware.

use super::config::{PretrainConfig, TrainConfig};
use super::corpus::{RowStream, SampleStream};
use super::error::PretrainError;
use super::eval::{evaluate, EvalLimits, EvalReport};
use super::heldout::heldout_set;
use super::tokenizer::TinyTokenizer;
use crate::executor::Executor;
use crate::model::{parse_device, train_shards, Model, Tokenizer};
use crate::rl::optim::{clip_coefficient, shard_ranges, sharded_gradients, AdamW, AdamWConfig};
use candle_core::{DType, Device, Tensor, D};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What [`pretrain`] reports after every step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PretrainProgress {
    /// Steps done (1-based).
    pub step: u64,
    /// The step budget (0 = time budget only).
    pub max_steps: u64,
    /// Loss of this step (mean next-token cross-entropy per real token, nats).
    pub loss: f32,
    /// Learning rate used for this step.
    pub lr: f64,
    /// Real tokens trained on so far.
    pub tokens: u64,
    /// Training-step seconds so far (data and evaluation excluded).
    pub train_seconds: f64,
    /// Real tokens per training second so far.
    pub tokens_per_second: f64,
    /// Fraction of the budget used, in `[0, 1]`.
    pub fraction: f64,
}

/// The result of a pretraining run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PretrainOutcome {
    /// Steps done.
    pub steps: u64,
    /// Real tokens trained on.
    pub tokens: u64,
    /// Samples consumed.
    pub samples: u64,
    /// Training-step seconds (data and evaluation excluded).
    pub train_seconds: f64,
    /// Seconds spent generating and labelling data.
    pub data_seconds: f64,
    /// Mean loss over the last `log_every` steps.
    pub final_loss: f32,
    /// Trainable parameters.
    pub params: usize,
    /// The final HF checkpoint directory.
    pub checkpoint: PathBuf,
    /// Greedy held-out scores (if `eval.at_end`).
    pub eval: Option<EvalReport>,
}

fn model_err(e: impl std::fmt::Display) -> PretrainError {
    PretrainError::Model(e.to_string())
}

/// Build the model of `cfg` (random weights from `cfg.seed`) with the tiny tokenizer.
pub fn init_model(
    cfg: &PretrainConfig,
    tokenizer: &TinyTokenizer,
    device: &Device,
) -> Result<Model, PretrainError> {
    let mcfg = cfg
        .model
        .to_model_config(tokenizer.vocab_size(), tokenizer.end_id);
    Model::random(
        mcfg,
        Tokenizer::from_tokenizers(tokenizer.inner().clone()),
        device,
        DType::F32,
        cfg.seed,
    )
    .map_err(model_err)
}

/// Inputs, targets and the loss mask of a batch of packed rows: inputs are `row[..T-1]`,
/// targets `row[1..]`, and the mask is 1 where the target is not padding.
pub fn batch_tensors(
    rows: &[Vec<u32>],
    pad_id: u32,
    device: &Device,
) -> Result<(Tensor, Tensor, Tensor, usize), PretrainError> {
    let b = rows.len();
    let t = rows.first().map_or(0, |r| r.len()).saturating_sub(1);
    let mut inputs = Vec::with_capacity(b * t);
    let mut targets = Vec::with_capacity(b * t);
    let mut mask = Vec::with_capacity(b * t);
    for row in rows {
        inputs.extend_from_slice(&row[..t]);
        for &y in &row[1..=t] {
            targets.push(y);
            mask.push(if y == pad_id { 0f32 } else { 1f32 });
        }
    }
    let real = mask.iter().filter(|m| **m > 0.0).count();
    Ok((
        Tensor::from_vec(inputs, (b, t), device)?,
        Tensor::from_vec(targets, (b * t,), device)?,
        Tensor::from_vec(mask, (b * t,), device)?,
        real,
    ))
}

/// Mean masked next-token cross-entropy of `logits` (`[B, T, V]`) against `targets` and
/// `mask` (both `[B*T]`), over `real` unmasked tokens.
pub fn masked_loss(
    logits: &Tensor,
    targets: &Tensor,
    mask: &Tensor,
    real: usize,
) -> Result<Tensor, PretrainError> {
    let (b, t, v) = logits.dims3()?;
    let logp = candle_nn::ops::log_softmax(&logits.reshape((b * t, v))?, D::Minus1)?;
    let picked = logp.gather(&targets.unsqueeze(1)?, 1)?.squeeze(1)?;
    let nll = (picked * mask)?.sum_all()?.neg()?;
    Ok((nll / real.max(1) as f64)?)
}

/// One model and its optimiser: the inner loop of [`pretrain`], usable on any rows.
pub struct Trainer {
    model: Model,
    vars: Vec<(String, candle_core::Var)>,
    opt: AdamW,
    cfg: TrainConfig,
    pad_id: u32,
    step: u64,
}

impl std::fmt::Debug for Trainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trainer")
            .field("step", &self.step)
            .field("params", &self.model.num_params())
            .finish()
    }
}

impl Trainer {
    /// A trainer for `model` with the schedule of `cfg`; `pad_id` targets carry no loss.
    pub fn new(model: Model, cfg: TrainConfig, pad_id: u32) -> Result<Self, PretrainError> {
        let vars = model.named_vars();
        let opt = AdamW::new(
            vars.clone(),
            AdamWConfig {
                lr: cfg.lr,
                beta1: cfg.beta1,
                beta2: cfg.beta2,
                eps: cfg.eps,
                weight_decay: cfg.weight_decay,
            },
        )?;
        Ok(Self {
            model,
            vars,
            opt,
            cfg,
            pad_id,
            step: 0,
        })
    }

    /// The model being trained.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Steps done so far.
    pub fn steps_done(&self) -> u64 {
        self.step
    }

    /// One optimiser step on packed rows (all the same length). Returns the loss (mean over
    /// real target tokens, before the update), the lr used and the number of real tokens.
    pub fn step(&mut self, rows: &[Vec<u32>]) -> Result<StepStats, PretrainError> {
        let lr = self.cfg.lr_at(self.step);
        let device = self.model.device().clone();
        // Data parallel: one shard of rows per compute thread, each shard's loss divided by
        // the whole batch's real tokens, so the shard losses and gradients sum to the batch's.
        let real: usize = rows
            .iter()
            .map(|r| r.iter().skip(1).filter(|&&y| y != self.pad_id).count())
            .sum();
        let shards = shard_ranges(rows.len(), train_shards(rows.len(), &device));
        let (grads, outs) = sharded_gradients(&self.vars, shards.len(), |i| {
            let (inputs, targets, mask, _) =
                batch_tensors(&rows[shards[i].clone()], self.pad_id, &device)?;
            let logits = self.model.forward(&inputs, None, None).map_err(model_err)?;
            Ok::<_, PretrainError>((masked_loss(&logits, &targets, &mask, real)?, ()))
        })?;
        let grad_norm = grads.global_norm()?;
        let coef = clip_coefficient(grad_norm, self.cfg.grad_clip);
        self.opt.step(&grads, lr, coef)?;
        self.step += 1;
        let loss: f32 = outs.iter().map(|o| o.loss).sum();
        if !loss.is_finite() {
            return Err(PretrainError::Model(format!(
                "loss became {loss} at step {}",
                self.step
            )));
        }
        Ok(StepStats {
            loss,
            lr,
            real_tokens: real,
            grad_norm,
        })
    }
}

/// What one [`Trainer::step`] did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepStats {
    /// Loss before the update.
    pub loss: f32,
    /// Learning rate used.
    pub lr: f64,
    /// Real (non-pad) target tokens.
    pub real_tokens: usize,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
}

fn write_json(path: &Path, value: &impl Serialize) -> Result<(), PretrainError> {
    let text = serde_json::to_string_pretty(value)?;
    std::fs::write(path, text).map_err(|e| PretrainError::io("writing", path, e))
}

/// Pretrain the tiny model as configured, calling `progress` after every step. See the module
/// docs for what is written into `cfg.out_dir`.
pub fn pretrain(
    cfg: &PretrainConfig,
    mut progress: impl FnMut(PretrainProgress),
) -> Result<PretrainOutcome, PretrainError> {
    cfg.validate()?;
    if cfg.train.tune_allocator {
        super::alloc::tune_for_training();
    }
    let out = cfg.out_dir.clone();
    std::fs::create_dir_all(&out).map_err(|e| PretrainError::io("creating", &out, e))?;
    write_json(&out.join("config.resolved.json"), cfg)?;

    let tokenizer = TinyTokenizer::build()?;
    tokenizer.save(&out.join("tokenizer.json"))?;
    let device = parse_device(&cfg.device).map_err(model_err)?;
    let executor = Executor::start(cfg.executor.clone())?;
    let model = init_model(cfg, &tokenizer, &device)?;
    tracing::info!(
        params = model.num_params(),
        vocab = tokenizer.vocab_size(),
        out = %out.display(),
        "pretraining the tiny model"
    );
    let t = &cfg.train;
    let params = model.num_params();
    let mut trainer = Trainer::new(model, t.clone(), tokenizer.pad_id)?;

    let samples = SampleStream::new(cfg.seed, cfg.corpus.clone())?;
    let mut rows = RowStream::new(samples, t.seq_len, tokenizer.pad_id);
    let loss_path = out.join("loss.csv");
    let mut loss_csv = std::io::BufWriter::new(
        std::fs::File::create(&loss_path)
            .map_err(|e| PretrainError::io("creating", &loss_path, e))?,
    );
    writeln!(
        loss_csv,
        "step,lr,loss,tokens,samples,train_seconds,tokens_per_second"
    )
    .map_err(|e| PretrainError::io("writing", &loss_path, e))?;

    let budget_s = t.max_minutes * 60.0;
    let mut train_s = 0f64;
    let mut data_s = 0f64;
    let mut tokens = 0u64;
    let mut step = 0u64;
    let mut window = (0f64, 0u64);
    let mut final_loss = f32::NAN;
    loop {
        if t.max_steps > 0 && step >= t.max_steps {
            break;
        }
        if budget_s > 0.0 && train_s >= budget_s {
            break;
        }
        let d0 = Instant::now();
        let batch = (0..t.batch_size)
            .map(|_| rows.next_row(&executor, &tokenizer))
            .collect::<Result<Vec<_>, _>>()?;
        data_s += d0.elapsed().as_secs_f64();

        let s0 = Instant::now();
        let stats = trainer.step(&batch)?;
        train_s += s0.elapsed().as_secs_f64();
        step += 1;
        tokens += stats.real_tokens as u64;
        let (loss_v, lr) = (stats.loss, stats.lr);

        window.0 += f64::from(loss_v);
        window.1 += 1;
        let tps = tokens as f64 / train_s.max(1e-9);
        let fraction = if t.max_steps > 0 {
            step as f64 / t.max_steps as f64
        } else {
            (train_s / budget_s).min(1.0)
        };
        progress(PretrainProgress {
            step,
            max_steps: t.max_steps,
            loss: loss_v,
            lr,
            tokens,
            train_seconds: train_s,
            tokens_per_second: tps,
            fraction,
        });
        let last =
            (t.max_steps > 0 && step >= t.max_steps) || (budget_s > 0.0 && train_s >= budget_s);
        if step % t.log_every == 0 || last {
            final_loss = (window.0 / window.1 as f64) as f32;
            writeln!(
                loss_csv,
                "{step},{lr:.6e},{final_loss:.5},{tokens},{},{train_s:.2},{tps:.1}",
                rows.samples()
            )
            .map_err(|e| PretrainError::io("writing", &loss_path, e))?;
            loss_csv
                .flush()
                .map_err(|e| PretrainError::io("writing", &loss_path, e))?;
            tracing::info!(
                step,
                loss = final_loss,
                lr,
                tokens,
                tokens_per_s = tps,
                "pretrain"
            );
            window = (0.0, 0);
        }
        if t.checkpoint_every > 0 && step % t.checkpoint_every == 0 && !last {
            let dir = out.join("checkpoints").join(format!("step-{step:06}"));
            trainer.model().save_hf_dir(&dir).map_err(model_err)?;
        }
    }
    let checkpoint = out.join("final");
    trainer
        .model()
        .save_hf_dir(&checkpoint)
        .map_err(model_err)?;
    tracing::info!(
        steps = step,
        tokens,
        skipped_long_samples = rows.skipped(),
        train_seconds = train_s,
        data_seconds = data_s,
        "pretraining done"
    );

    let eval = if cfg.eval.at_end {
        let set = heldout_set(&executor, &cfg.eval.heldout(&cfg.corpus))?;
        set.save(&out.join("heldout.jsonl"))?;
        let snap = trainer.model().snapshot().map_err(model_err)?;
        let report = evaluate(
            &snap,
            &tokenizer,
            &executor,
            &set,
            EvalLimits {
                max_answer_tokens: cfg.eval.max_answer_tokens,
                max_program_tokens: cfg.eval.max_program_tokens,
                batch: 32,
            },
        )?;
        write_json(&out.join("eval.json"), &report)?;
        tracing::info!("held-out greedy accuracy\n{}", report.summary());
        Some(report)
    } else {
        None
    };

    Ok(PretrainOutcome {
        steps: step,
        tokens,
        samples: rows.samples(),
        train_seconds: train_s,
        data_seconds: data_s,
        final_loss,
        params,
        checkpoint,
        eval,
    })
}
