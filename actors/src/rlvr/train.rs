//! The 1-shot RLVR driver: each step the solver (the rollout engine) samples
//! `samples_per_prompt` responses for every prompt of the batch, the reward (the math grader)
//! scores them 0/1, and the learner thread takes one GRPO step on the whole batch; the driver
//! waits for the new weights before the next step (strictly on-policy, as verl).
//!
//! Outputs in the run directory: the per-example training accuracy history
//! (`rlvr.history_file`, `{"<index>": [accuracy per epoch, ...]}`, rewritten at every epoch
//! end), `train.jsonl` (one line per step), `eval.jsonl` (the evaluator's scores) and
//! `checkpoints/step_XXXXXX/` (weights, optimizer, `state.json` holding the history), the
//! pipeline's checkpoint layout. A run directory with a checkpoint resumes from it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use azr_core::eval::{MathPrompt, SuiteScore};
use azr_core::model::{self, Model, Snapshot};
use azr_core::oneshot::dataset::{load_jsonl, MathRow};
use azr_core::oneshot::history::{AccuracyHistory, EpochTally};
use azr_core::types::{Role, ScoredRollout, TaskKind};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::config::RlvrConfig;
use super::evaluator::{self, EvalSet};
use super::plan::EpochQueue;
use crate::backend::{self, MODEL_DIR};
use crate::compute::learner::LearnerCmd;
use crate::compute::{self, learner, GenRequest};
use crate::pipeline::checkpoint::{self, Counters, RunState};
use crate::telemetry;

/// One training example, tokenised once.
#[derive(Debug, Clone)]
pub struct Example {
    /// History key (`extra_info.index`).
    pub index: String,
    /// Prompt token ids.
    pub prompt_ids: Vec<u32>,
    /// Reference answer.
    pub answer: String,
}

/// The rows of `dataset` the run trains on: those whose `extra_info.index` is listed in
/// `examples` (in that order), or every row when `examples` is empty.
pub fn select_rows(dataset: Vec<MathRow>, examples: &[usize]) -> Result<Vec<MathRow>> {
    if examples.is_empty() {
        return Ok(dataset);
    }
    examples
        .iter()
        .map(|i| {
            let key = i.to_string();
            dataset
                .iter()
                .find(|r| r.index == key)
                .cloned()
                .with_context(|| format!("config key `rlvr.examples`: no row has index {i}"))
        })
        .collect()
}

/// What a checkpoint keeps besides weights and optimizer (`state.json` `mode_state`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct ModeState {
    /// The accuracy history, closed epochs only.
    history: AccuracyHistory,
    /// Epochs started.
    epoch: u64,
}

/// Summary of a finished run.
#[derive(Debug, Clone)]
pub struct RlvrOutcome {
    /// Steps completed (resumes included).
    pub steps: u64,
    /// Epochs recorded in the history.
    pub epochs: u64,
    /// Where the history was written.
    pub history_path: PathBuf,
    /// The last evaluation, if any.
    pub last_eval: Option<(u64, SuiteScore)>,
}

#[derive(Serialize)]
struct TrainLine {
    step: u64,
    epoch: u64,
    reward_mean: f64,
    /// Share of groups whose rewards are not all equal (they carry a gradient).
    groups_with_signal: f64,
    pg_loss: f64,
    kl: f64,
    entropy: f64,
    grad_norm: f64,
    lr: f64,
    response_tokens_mean: f64,
    wall_s: f64,
}

/// Load a model directory with the `[model]` device and dtype.
pub fn load_model(cfg: &RlvrConfig, dir: &Path) -> Result<Model> {
    let device = model::parse_device(&cfg.model.device)
        .with_context(|| format!("config key `model.device`: `{}`", cfg.model.device))?;
    let dtype = model::parse_dtype(&cfg.model.dtype)
        .with_context(|| format!("config key `model.dtype`: `{}`", cfg.model.dtype))?;
    Model::load(dir, &device, dtype)
        .with_context(|| format!("loading the model from {}", dir.display()))
}

/// Scores the configured `[eval]` sets on the weights at `model_dir`, without training.
pub async fn eval_only(cfg: RlvrConfig, model_dir: PathBuf) -> Result<SuiteScore> {
    let sets = evaluator::load_sets(&cfg)?;
    let prompt = cfg.prompt.clone();
    tokio::task::spawn_blocking(move || {
        let snap = load_model(&cfg, &model_dir)?.snapshot()?;
        evaluator::score(&snap, &prompt, &sets)
    })
    .await?
}

fn spawn_eval(
    snap: Snapshot,
    prompt: Arc<MathPrompt>,
    sets: Arc<Vec<EvalSet>>,
    step: u64,
) -> JoinHandle<Result<(u64, SuiteScore)>> {
    tokio::task::spawn_blocking(move || Ok((step, evaluator::score(&snap, &prompt, &sets)?)))
}

async fn finish_eval(
    pending: &mut Option<JoinHandle<Result<(u64, SuiteScore)>>>,
    path: &Path,
    last: &mut Option<(u64, SuiteScore)>,
) -> Result<()> {
    if let Some(h) = pending.take() {
        let (step, suite) = h.await??;
        evaluator::record(path, step, &suite)?;
        *last = Some((step, suite));
    }
    Ok(())
}

/// The weights the learner thread holds now (the version just published).
async fn latest_snapshot(learner_tx: &flume::Sender<LearnerCmd>) -> Result<Snapshot> {
    let (reply, rx) = oneshot::channel();
    learner_tx
        .send_async(LearnerCmd::Snapshot { reply })
        .await
        .map_err(|_| anyhow::anyhow!("the learner thread is gone"))?;
    rx.await
        .context("the learner thread dropped the snapshot")?
        .map_err(|e| anyhow::anyhow!("{e}"))
}

/// Train until `run.max_steps` or until `stop` is set.
pub async fn train(cfg: RlvrConfig, stop: Arc<AtomicBool>) -> Result<RlvrOutcome> {
    let run_dir = cfg.run.run_dir.clone();
    std::fs::create_dir_all(&run_dir)
        .with_context(|| format!("creating run dir {}", run_dir.display()))?;
    std::fs::write(run_dir.join("config.toml"), toml::to_string(&cfg)?)?;
    let resume = checkpoint::latest(&run_dir)?;
    let (mut state, mut mode) = match &resume {
        Some(ckpt) => {
            let st = checkpoint::load_state(ckpt)?;
            let mode: ModeState = serde_json::from_value(st.mode_state.clone())
                .with_context(|| format!("reading the RLVR state of {}", ckpt.display()))?;
            tracing::info!(checkpoint = %ckpt.display(), step = st.step, "resuming");
            (st, mode)
        }
        None => (
            RunState {
                step: 0,
                version: 0,
                rng: ChaCha8Rng::seed_from_u64(cfg.run.seed),
                mode_state: serde_json::Value::Null,
                counters: Counters::default(),
                restarts: Default::default(),
            },
            ModeState::default(),
        ),
    };

    let model_dir = match &resume {
        Some(c) => c.join(MODEL_DIR),
        None => cfg.model.path.clone(),
    };
    let model = load_model(&cfg, &model_dir)?;
    let prompt = Arc::new(cfg.prompt.clone());
    let rows = select_rows(
        load_jsonl(&cfg.rlvr.dataset).with_context(|| {
            format!("config key `rlvr.dataset`: {}", cfg.rlvr.dataset.display())
        })?,
        &cfg.rlvr.examples,
    )?;
    if rows.is_empty() {
        bail!("config key `rlvr.dataset`: no training rows");
    }
    let examples: Vec<Example> = rows
        .iter()
        .map(|r| {
            Ok(Example {
                index: r.index.clone(),
                prompt_ids: model.tokenizer().encode(&prompt.render(&r.prompt), true)?,
                answer: r.answer.clone(),
            })
        })
        .collect::<Result<_, azr_core::model::ModelError>>()?;
    tracing::info!(
        examples = examples.len(),
        batch = cfg.rlvr.batch,
        samples = cfg.rlvr.samples_per_prompt,
        "1-shot RLVR training set"
    );
    let eval_sets = Arc::new(evaluator::load_sets(&cfg)?);
    let eval_on = !eval_sets.is_empty();

    // Compute threads: the pipeline's inference (solver) and learner threads.
    let initial = model.snapshot()?;
    let stop_ids = azr_core::eval::stop_token_ids(&initial, &prompt);
    let codec = backend::codec(&model);
    // The KL reference is the run's starting model (`model.path`), also after a resume.
    let reference = if cfg.learner.loss.kl_coef > 0.0 {
        Some(load_model(&cfg, &cfg.model.path)?.snapshot()?)
    } else {
        None
    };
    let trainer = backend::ModelTrainer::new(model, cfg.learner, resume.as_deref(), reference)?;
    let (engine, engine_join) = compute::spawn_engine(
        initial.clone(),
        state.version,
        compute::EngineConfig::default(),
    )?;
    let (learner_tx, learner_rx) = flume::bounded::<LearnerCmd>(1);
    let (reports_tx, mut reports) = mpsc::unbounded_channel();
    let learner_join = learner::spawn(
        trainer,
        learner_rx,
        engine.clone(),
        Box::new(|_| {}),
        reports_tx,
        state.version,
    )?;

    let history_path = run_dir.join(&cfg.rlvr.history_file);
    let eval_path = run_dir.join("eval.jsonl");
    let mut train_log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(run_dir.join("train.jsonl"))?;
    let params = model::SamplingParams {
        temperature: cfg.sampling.temperature as f32,
        top_p: cfg.sampling.top_p as f32,
        top_k: cfg.sampling.top_k,
        max_new_tokens: cfg.sampling.max_new_tokens,
        stop_token_ids: stop_ids,
        seed: 0,
        use_cache: true,
    };
    let n = cfg.rlvr.samples_per_prompt;
    let mut queue = EpochQueue::starting_at(mode.epoch);
    let mut tally = EpochTally::new();
    // Whether `tally` holds samples of an epoch not yet closed.
    let mut tally_open = false;
    let mut pending_eval = None;
    let mut last_eval = None;
    if eval_on && cfg.eval.at_start && state.step == 0 {
        pending_eval = Some(spawn_eval(
            initial.clone(),
            prompt.clone(),
            eval_sets.clone(),
            0,
        ));
    }

    let result: Result<()> = async {
        while (cfg.run.max_steps == 0 || state.step < cfg.run.max_steps)
            && !stop.load(Ordering::SeqCst)
        {
            let t0 = Instant::now();
            let step = state.step;
            let (batch, _) = queue.next(examples.len(), cfg.rlvr.batch, &mut state.rng);
            // Solver: one engine request of n samples per prompt, all submitted at once.
            let prompts: Vec<Vec<u32>> = batch
                .iter()
                .flat_map(|&e| std::iter::repeat_n(examples[e].prompt_ids.clone(), n))
                .collect();
            let seed: u64 = state.rng.random();
            let mut tickets = Vec::with_capacity(batch.len());
            for (i, &e) in batch.iter().enumerate() {
                tickets.push(engine.submit(GenRequest {
                    prompt: examples[e].prompt_ids.clone(),
                    n,
                    params: model::SamplingParams {
                        seed: seed.wrapping_add((i * n) as u64),
                        ..params.clone()
                    },
                    priority: 0,
                })?);
            }
            let mut gens = Vec::with_capacity(prompts.len());
            for t in tickets {
                for s in t.recv_async().await? {
                    gens.push(crate::actors::Generated::decode(s, &codec)?);
                }
            }
            // Reward: binary math grading.
            let mut rollouts = Vec::with_capacity(gens.len());
            let mut lengths = Vec::with_capacity(gens.len());
            for (j, (g, p)) in gens.into_iter().zip(prompts).enumerate() {
                let ex = &examples[batch[j / n]];
                let correct = prompt.grade(&g.text, &ex.answer);
                tally.add(&ex.index, correct);
                tally_open = true;
                lengths.push(g.tokens.len());
                rollouts.push(ScoredRollout {
                    prompt_ids: p,
                    response_ids: g.tokens,
                    sample_logprobs: g.logprobs,
                    reward: if correct { 1.0 } else { 0.0 },
                    task: TaskKind::Math,
                    role: Role::Solve,
                    group: step * batch.len() as u64 + (j / n) as u64,
                    policy_version: g.first_version,
                });
            }
            let rewards: Vec<f32> = rollouts.iter().map(|r| r.reward).collect();
            let reward_mean =
                rewards.iter().map(|&r| f64::from(r)).sum::<f64>() / rewards.len() as f64;
            let with_signal = rewards
                .chunks(n)
                .filter(|g| g.iter().any(|&r| r != g[0]))
                .count() as f64
                / batch.len() as f64;
            state.counters.sequences += rollouts.len() as u64;
            state.counters.tokens += lengths.iter().sum::<usize>() as u64;
            state.counters.answers += rollouts.len() as u64;
            state.counters.correct_answers += rewards.iter().filter(|&&r| r > 0.0).count() as u64;
            telemetry::rewards(TaskKind::Math, Role::Solve, &rewards);
            let correct = rewards.iter().filter(|&&r| r > 0.0).count();
            telemetry::answers(TaskKind::Math, Role::Solve, rewards.len(), correct);
            let max_new = cfg.sampling.max_new_tokens;
            let truncated = lengths.iter().filter(|&&l| l >= max_new).count();
            telemetry::responses(TaskKind::Math, Role::Solve, &lengths, truncated);
            // Learner: one GRPO step; wait for the new weights (on-policy).
            learner_tx
                .send_async(LearnerCmd::Train {
                    batch: step,
                    rollouts,
                    save: None,
                })
                .await
                .map_err(|_| anyhow::anyhow!("the learner thread is gone"))?;
            let report = reports
                .recv()
                .await
                .context("the learner thread ended early")?;
            let stats = report
                .stats
                .map_err(|e| anyhow::anyhow!("learner step {step}: {e}"))?;
            state.step += 1;
            state.version = report.version;
            let wall = t0.elapsed();
            telemetry::step_done(state.step, state.version, wall);
            let line = TrainLine {
                step: state.step,
                epoch: queue.epoch,
                reward_mean,
                groups_with_signal: with_signal,
                pg_loss: stats.pg_loss,
                kl: stats.kl,
                entropy: stats.entropy,
                grad_norm: stats.grad_norm,
                lr: stats.lr,
                response_tokens_mean: lengths.iter().sum::<usize>() as f64 / lengths.len() as f64,
                wall_s: wall.as_secs_f64(),
            };
            writeln!(train_log, "{}", serde_json::to_string(&line)?)?;
            tracing::info!(
                step = state.step,
                epoch = queue.epoch,
                reward = reward_mean,
                signal = with_signal,
                entropy = stats.entropy,
                wall_s = wall.as_secs_f64(),
                "rlvr step"
            );
            if queue.epoch_done() {
                mode.history
                    .close_epoch(std::mem::take(&mut tally))
                    .context("recording the epoch")?;
                tally_open = false;
                mode.history.save(&history_path)?;
            }
            mode.epoch = queue.epoch;
            let last = cfg.run.max_steps != 0 && state.step == cfg.run.max_steps;
            if eval_on && cfg.eval.every > 0 && (state.step % cfg.eval.every == 0 || last) {
                finish_eval(&mut pending_eval, &eval_path, &mut last_eval).await?;
                pending_eval = Some(spawn_eval(
                    latest_snapshot(&learner_tx).await?,
                    prompt.clone(),
                    eval_sets.clone(),
                    state.step,
                ));
            }
            if (cfg.run.checkpoint_every > 0 && state.step % cfg.run.checkpoint_every == 0) || last
            {
                save_checkpoint(&run_dir, &learner_tx, &mut state, &mode).await?;
            }
        }
        Ok(())
    }
    .await;

    // Record a partial epoch of an interrupted run too, so its history is not lost.
    if tally_open {
        mode.history.close_epoch(std::mem::take(&mut tally))?;
    }
    mode.history.save(&history_path)?;
    let eval_result = finish_eval(&mut pending_eval, &eval_path, &mut last_eval).await;
    drop(learner_tx);
    engine.shutdown();
    let _ = tokio::task::spawn_blocking(move || {
        let _ = learner_join.join();
        let _ = engine_join.join();
    })
    .await;
    result?;
    eval_result?;
    Ok(RlvrOutcome {
        steps: state.step,
        epochs: mode
            .history
            .iter()
            .map(|(_, v)| v.len() as u64)
            .max()
            .unwrap_or(0),
        history_path,
        last_eval,
    })
}

async fn save_checkpoint(
    run_dir: &Path,
    learner_tx: &flume::Sender<LearnerCmd>,
    state: &mut RunState,
    mode: &ModeState,
) -> Result<()> {
    let pending = checkpoint::begin(run_dir, state.step)?;
    let (reply, rx) = oneshot::channel();
    learner_tx
        .send_async(LearnerCmd::Save {
            dir: pending.dir().to_path_buf(),
            reply,
        })
        .await
        .map_err(|_| anyhow::anyhow!("the learner thread is gone"))?;
    rx.await
        .context("the learner thread dropped the save")?
        .map_err(|e| anyhow::anyhow!("saving the checkpoint: {e}"))?;
    state.mode_state = serde_json::to_value(mode)?;
    let path = pending.commit(state)?;
    telemetry::checkpoint_written();
    tracing::info!(checkpoint = %path.display(), "checkpoint");
    Ok(())
}
