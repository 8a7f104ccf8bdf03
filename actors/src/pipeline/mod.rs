//! The training driver: starts the compute threads and the supervised actors, runs steps with
//! bounded staleness, logs, dumps, evaluates, checkpoints, and shuts down cleanly.
//!
//! ## Overlap
//! Versions count learner updates: the weights after step `t` are version `t + 1`. The rollout
//! phase of step `t` may start once version `t - staleness` is published, so with staleness 1
//! the rollouts of step `t + 1` are generated while the learner updates on step `t`, and with
//! staleness 0 every step is strictly on-policy. The learner queue is bounded
//! (`run.learner_queue`); a full queue suspends the driver.
//!
//! ## Checkpoints
//! At a checkpoint step the driver drains the learner (every submitted step reported), then
//! saves weights + optimizer (learner thread), buffers, RNG, counters and restarts.

pub mod checkpoint;
pub mod dump;
pub mod rlvr;
pub mod selfplay;
pub mod summary;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use azr_core::executor::Executor;
use azr_core::tasks::TaskRegistry;
use azr_core::types::PolicyVersion;
use ractor::Actor;
use rand_chacha::ChaCha8Rng;
use tokio::sync::{mpsc, watch};

use crate::actors::evaluator::Benchmark;
use crate::actors::faults::FaultPlan;
use crate::actors::supervisor::{Supervisor, SupervisorArgs, SupervisorMsg};
use crate::actors::{self, Ctx, Handles};
use crate::compute::learner::{LearnerCmd, StepReport};
use crate::compute::{inference, learner};
use crate::config::Config;
use crate::engine::{Decoding, Policy, SharedCodec, Trainer};
use crate::telemetry;
use checkpoint::{Counters, RunState};
use rlvr::Rlvr;
use selfplay::{SelfPlay, StepBatch};
use summary::StepSummary;

/// The training loop's mode: where a step's rollouts come from and what state it checkpoints.
pub enum Mode {
    /// AZR self-play (task buffers).
    SelfPlay(SelfPlay),
    /// 1-shot RLVR (accuracy history).
    Rlvr(Rlvr),
}

impl Mode {
    /// The rollout phase of `step`.
    async fn rollout(
        &mut self,
        handles: &Handles,
        step: u64,
        decoding: Decoding,
        rng: &mut ChaCha8Rng,
    ) -> Result<StepBatch> {
        match self {
            Mode::SelfPlay(m) => m.rollout(handles, step, decoding, rng).await,
            Mode::Rlvr(m) => m.rollout(handles, step, decoding, rng).await,
        }
    }

    /// The checkpointed state (buffers or accuracy history).
    fn state(&self) -> Result<serde_json::Value> {
        Ok(match self {
            Mode::SelfPlay(m) => serde_json::to_value(&m.buffers)?,
            Mode::Rlvr(m) => serde_json::from_str(&m.history.to_json_string())?,
        })
    }
}

/// The compute side of a run: built by [`crate::backend`] (or by tests).
pub struct Engines<P: Policy, T: Trainer<Weights = P::Weights>> {
    /// The rollout policy (moves to the inference thread).
    pub policy: P,
    /// The trainer (moves to the learner thread).
    pub trainer: T,
    /// The tokenizer.
    pub codec: SharedCodec,
}

/// Services shared with the actors.
pub struct Services {
    /// Task types.
    pub registry: Arc<TaskRegistry>,
    /// Sandboxed executor.
    pub executor: Arc<Executor>,
    /// Held-out sets the evaluator scores every `evaluator.every` steps.
    pub benchmarks: Arc<Vec<Benchmark>>,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOutcome {
    /// Steps completed (over the whole run, resumes included).
    pub steps: u64,
    /// Policy version at the end.
    pub version: PolicyVersion,
    /// Worker restarts over the whole run.
    pub restarts: BTreeMap<String, u64>,
    /// Wall time of each step completed in this process (learner report to report).
    pub step_seconds: Vec<f64>,
}

/// The training decoding settings of a config.
pub fn train_decoding(cfg: &Config) -> Decoding {
    let s = &cfg.raw.sampling;
    Decoding {
        temperature: s.temperature,
        top_p: s.top_p,
        top_k: s.top_k,
        max_new_tokens: s.max_new_tokens,
    }
}

/// Run training until `max_steps`, a stop request on `stop`, or a fatal error.
///
/// `state` is the restored state of a resumed run or the fresh state of a new one;
/// `mode` holds the buffers (restored from `state.mode_state` by the caller).
pub async fn run<P, T>(
    cfg: Arc<Config>,
    engines: Engines<P, T>,
    services: Services,
    mut state: RunState,
    mut mode: Mode,
    stop: watch::Receiver<bool>,
    progress: Option<indicatif::ProgressBar>,
) -> Result<RunOutcome>
where
    P: Policy,
    T: Trainer<Weights = P::Weights>,
{
    let run_cfg = &cfg.raw.run;
    let run_dir = cfg.run_dir().to_path_buf();
    std::fs::create_dir_all(&run_dir)
        .with_context(|| format!("creating run dir {}", run_dir.display()))?;
    std::fs::write(run_dir.join("config.toml"), cfg.to_toml())?;

    // Compute threads.
    let (weights_tx, weights_rx) = watch::channel(None);
    let (inference, inference_join) = inference::spawn(
        engines.policy,
        engines.codec.clone(),
        weights_rx,
        state.version,
        run_cfg.inference_queue,
    )?;
    let (learner_tx, learner_rx) = flume::bounded::<LearnerCmd>(run_cfg.learner_queue);
    let (report_tx, mut reports) = mpsc::unbounded_channel::<StepReport>();
    let learner_join = learner::spawn(
        engines.trainer,
        learner_rx,
        weights_tx,
        report_tx,
        state.version,
    )?;

    // Actors.
    let timeout = Duration::from_secs(run_cfg.request_timeout_s);
    let ctx = Arc::new(Ctx {
        registry: services.registry.clone(),
        executor: services.executor.clone(),
        codec: engines.codec,
        inference: inference.clone(),
        learner_tx,
        faults: FaultPlan::new(
            cfg.raw.faults.panic_actor.clone(),
            cfg.raw.faults.panic_at_step,
        ),
        timeout,
    });
    let spawn_ctx = ctx.clone();
    let (fatal_tx, mut fatal) = watch::channel(None);
    let (sup, sup_join) = Actor::spawn(
        Some(format!("azr-supervisor-{}", std::process::id())),
        Supervisor,
        SupervisorArgs {
            workers: actors::WORKERS.to_vec(),
            spawn: Arc::new(move |name, sup| {
                let ctx = spawn_ctx.clone();
                Box::pin(async move { actors::spawn_worker(name, ctx, sup).await })
            }),
            budget: run_cfg.restart_budget,
            restarts: state.restarts.clone(),
            fatal: fatal_tx,
        },
    )
    .await
    .context("starting the supervisor")?;
    // The supervisor spawns its workers in `post_start`, which ractor runs after `spawn`
    // returns; its first message is handled only once that is done, so one round trip means
    // every worker is registered and the first requests need no retry.
    ractor::call!(sup, SupervisorMsg::Restarts).context("waiting for the workers to start")?;
    let handles = Handles::new(timeout);

    let decoding = train_decoding(&cfg);
    let staleness = run_cfg.staleness;
    let max_steps = run_cfg.max_steps;
    let start_step = state.step;
    let mut version = state.version;
    let mut submitted = state.step; // steps handed to the learner
    let mut pending: BTreeMap<u64, (StepSummary, Instant)> = BTreeMap::new();
    let mut step_seconds = Vec::new();
    let mut last_report = Instant::now();
    let mut evals = tokio::task::JoinSet::new();
    let mut result: Result<()> = Ok(());

    tracing::info!(
        start_step,
        version,
        staleness,
        max_steps,
        run_dir = %run_dir.display(),
        "training started"
    );

    'steps: loop {
        let step = submitted;
        if (max_steps > 0 && step >= max_steps) || *stop.borrow() {
            break;
        }
        // Staleness gate: wait for version >= step - staleness.
        while version + staleness < step {
            tokio::select! {
                r = reports.recv() => {
                    let Some(r) = r else { result = Err(anyhow::anyhow!("learner thread ended")); break 'steps; };
                    if let Err(e) = on_report(&r, &mut version, &mut pending, &mut state, &mut step_seconds, &mut last_report, progress.as_ref()) { result = Err(e); break 'steps; }
                    evaluate_due(&cfg, &handles, &services.benchmarks, [r.step], &mut evals, &mut state.rng);
                }
                _ = fatal.changed() => {
                    result = Err(anyhow::anyhow!(fatal.borrow().clone().unwrap_or_default()));
                    break 'steps;
                }
            }
        }
        let t0 = Instant::now();
        let batch = tokio::select! {
            b = mode.rollout(&handles, step, decoding, &mut state.rng) => b,
            _ = fatal.changed() => Err(anyhow::anyhow!(fatal.borrow().clone().unwrap_or_default())),
        };
        let mut batch = match batch {
            Ok(b) => b,
            Err(e) => {
                result = Err(e.context(format!("rollouts of step {step}")));
                break;
            }
        };
        batch.summary.rollout_seconds = t0.elapsed().as_secs_f64();
        state.counters.sequences += batch.summary.sequences() as u64;
        state.counters.tokens += batch.summary.tokens() as u64;
        for ((_, role), s) in &batch.summary.sub {
            match role {
                azr_core::types::Role::Propose => {
                    state.counters.proposals += s.count as u64;
                    state.counters.valid_proposals += s.hits as u64;
                }
                azr_core::types::Role::Solve => {
                    state.counters.answers += s.count as u64;
                    state.counters.correct_answers += s.hits as u64;
                }
            }
        }
        if run_cfg.dump_rollouts {
            dump::write(&run_dir, step, &batch.records)?;
        }
        if let Err(e) = handles.learner.submit(step, batch.rollouts).await {
            result = Err(anyhow::anyhow!(e));
            break;
        }
        pending.insert(step, (batch.summary, t0));
        submitted = step + 1;

        // Non-blocking: take whatever reports are ready.
        while let Ok(r) = reports.try_recv() {
            if let Err(e) = on_report(
                &r,
                &mut version,
                &mut pending,
                &mut state,
                &mut step_seconds,
                &mut last_report,
                progress.as_ref(),
            ) {
                result = Err(e);
                break 'steps;
            }
            evaluate_due(
                &cfg,
                &handles,
                &services.benchmarks,
                [r.step],
                &mut evals,
                &mut state.rng,
            );
        }
        if run_cfg.checkpoint_every > 0 && submitted % run_cfg.checkpoint_every == 0 {
            match drain(
                &mut reports,
                submitted,
                &mut version,
                &mut pending,
                &mut state,
                &mut step_seconds,
                &mut last_report,
                progress.as_ref(),
            )
            .await
            {
                // Steps reported while draining are due for evaluation like any other.
                Ok(steps) => evaluate_due(
                    &cfg,
                    &handles,
                    &services.benchmarks,
                    steps,
                    &mut evals,
                    &mut state.rng,
                ),
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
            if let Err(e) = save(
                &run_dir, &handles, &sup, &mut state, &mode, submitted, version,
            )
            .await
            {
                result = Err(e);
                break;
            }
        }
    }

    // Shutdown: finish submitted steps, final checkpoint, stop actors and threads.
    let clean = result.is_ok();
    if clean {
        let last = drain(
            &mut reports,
            submitted,
            &mut version,
            &mut pending,
            &mut state,
            &mut step_seconds,
            &mut last_report,
            progress.as_ref(),
        )
        .await?;
        evaluate_due(
            &cfg,
            &handles,
            &services.benchmarks,
            last,
            &mut evals,
            &mut state.rng,
        );
        if state.step > start_step || checkpoint::latest(&run_dir)?.is_none() {
            save(
                &run_dir, &handles, &sup, &mut state, &mode, submitted, version,
            )
            .await?;
        }
        while let Some(r) = evals.join_next().await {
            if let Ok(Err(e)) = r {
                tracing::warn!(error = %e, "evaluation failed");
            }
        }
    } else {
        evals.abort_all();
    }
    let restarts = sup
        .call(SupervisorMsg::Restarts, Some(Duration::from_secs(5)))
        .await
        .ok()
        .and_then(|r| r.success_or(()).ok())
        .unwrap_or_else(|| state.restarts.clone());
    let _ = sup
        .call(SupervisorMsg::Shutdown, Some(Duration::from_secs(15)))
        .await;
    sup.stop(None);
    let _ = sup_join.await;
    drop(ctx);
    drop(inference);
    // The learner thread ends when its queue's last sender (held by the context) is gone.
    let _ = tokio::task::spawn_blocking(move || {
        let _ = learner_join.join();
        let _ = inference_join.join();
    })
    .await;
    result?;
    Ok(RunOutcome {
        steps: state.step,
        version,
        restarts,
        step_seconds,
    })
}

/// Handle one learner report: bump the version, log the step line, update counters.
fn on_report(
    r: &StepReport,
    version: &mut PolicyVersion,
    pending: &mut BTreeMap<u64, (StepSummary, Instant)>,
    state: &mut RunState,
    step_seconds: &mut Vec<f64>,
    last_report: &mut Instant,
    progress: Option<&indicatif::ProgressBar>,
) -> Result<()> {
    let stats = match &r.stats {
        Ok(s) => s.clone(),
        Err(e) => bail!("learner update of step {} failed: {e}", r.step),
    };
    *version = r.version;
    state.step = r.step + 1;
    state.version = r.version;
    let wall = last_report.elapsed();
    *last_report = Instant::now();
    step_seconds.push(wall.as_secs_f64());
    let process = telemetry::step_done(state.step, r.version, wall);
    let (summary, started) = pending.remove(&r.step).unwrap_or_default_pair();
    // Resident memory on every line, so a long run's log shows whether memory stays flat.
    let rss_mib = process.map_or(f64::NAN, |p| p.resident_bytes as f64 / (1024.0 * 1024.0));
    let line = format!(
        "step {:>5} v{} | {} | pg {:+.4} ent {:.3} gn {:.2e} | rollout {:.2}s learn {:.2}s step {:.2}s | stale {} | rss {:.0} MiB",
        r.step,
        r.version,
        summary.compact(),
        stats.pg_loss,
        stats.entropy,
        stats.grad_norm,
        summary.rollout_seconds,
        r.wall.as_secs_f64(),
        started.elapsed().as_secs_f64(),
        r.staleness,
        rss_mib,
    );
    match progress {
        Some(pb) => {
            pb.set_position(r.step + 1);
            pb.println(&line);
        }
        None => tracing::info!("{line}"),
    }
    Ok(())
}

/// `Option<(StepSummary, Instant)>` with a neutral default for a step whose summary is gone
/// (cannot happen in one process; kept total for safety).
trait OrDefaultPair {
    fn unwrap_or_default_pair(self) -> (StepSummary, Instant);
}

impl OrDefaultPair for Option<(StepSummary, Instant)> {
    fn unwrap_or_default_pair(self) -> (StepSummary, Instant) {
        self.unwrap_or_else(|| (StepSummary::default(), Instant::now()))
    }
}

/// Wait until every submitted step is reported.
#[allow(clippy::too_many_arguments)]
async fn drain(
    reports: &mut mpsc::UnboundedReceiver<StepReport>,
    submitted: u64,
    version: &mut PolicyVersion,
    pending: &mut BTreeMap<u64, (StepSummary, Instant)>,
    state: &mut RunState,
    step_seconds: &mut Vec<f64>,
    last_report: &mut Instant,
    progress: Option<&indicatif::ProgressBar>,
) -> Result<Vec<u64>> {
    let mut steps = Vec::new();
    while state.step < submitted {
        let r = reports.recv().await.context("learner thread ended")?;
        on_report(
            &r,
            version,
            pending,
            state,
            step_seconds,
            last_report,
            progress,
        )?;
        steps.push(r.step);
    }
    Ok(steps)
}

/// Write a checkpoint of the drained state.
async fn save(
    run_dir: &std::path::Path,
    handles: &Handles,
    sup: &ractor::ActorRef<SupervisorMsg>,
    state: &mut RunState,
    mode: &Mode,
    step: u64,
    version: PolicyVersion,
) -> Result<()> {
    let t0 = Instant::now();
    let pending = checkpoint::begin(run_dir, step)?;
    handles
        .learner
        .save(pending.dir().to_path_buf())
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    if let Ok(r) = sup
        .call(SupervisorMsg::Restarts, Some(Duration::from_secs(5)))
        .await
    {
        if let Ok(restarts) = r.success_or(()) {
            state.restarts = restarts;
        }
    }
    state.step = step;
    state.version = version;
    state.mode_state = mode.state().context("serializing the mode state")?;
    let path = pending.commit(state)?;
    telemetry::checkpoint_written();
    telemetry::phase("checkpoint", t0.elapsed());
    tracing::info!(step, path = %path.display(), "checkpoint written");
    Ok(())
}

/// Start a background evaluation after each of the reported `steps` that is due. Every path
/// that consumes learner reports (the staleness gate, the non-blocking poll, the checkpoint and
/// shutdown drains) goes through here, so no due step is skipped.
fn evaluate_due(
    cfg: &Config,
    handles: &Handles,
    benchmarks: &Arc<Vec<Benchmark>>,
    steps: impl IntoIterator<Item = u64>,
    evals: &mut tokio::task::JoinSet<Result<()>>,
    rng: &mut ChaCha8Rng,
) {
    for step in steps {
        maybe_evaluate(cfg, handles, benchmarks, step, evals, rng);
    }
}

/// Start a background evaluation after `step` when it is due.
fn maybe_evaluate(
    cfg: &Config,
    handles: &Handles,
    benchmarks: &Arc<Vec<Benchmark>>,
    step: u64,
    evals: &mut tokio::task::JoinSet<Result<()>>,
    rng: &mut ChaCha8Rng,
) {
    let ev = &cfg.raw.evaluator;
    if ev.every == 0 || benchmarks.is_empty() || (step + 1) % ev.every != 0 {
        return;
    }
    let seed: u64 = rand::Rng::random(rng);
    let decoding = Decoding {
        temperature: ev.temperature,
        top_p: 1.0,
        top_k: 0,
        max_new_tokens: ev.max_new_tokens,
    };
    let h = handles.evaluator.clone();
    let b = benchmarks.clone();
    let samples = ev.samples;
    let path = cfg.run_dir().join("eval.jsonl");
    evals.spawn(async move {
        let scores = h
            .evaluate(step, b, samples, decoding, seed)
            .await
            .map_err(|e| anyhow::anyhow!(e))?;
        let mut lines = String::new();
        for s in &scores {
            tracing::info!(
                step,
                benchmark = %s.benchmark,
                accuracy = s.accuracy,
                version = s.policy_version,
                "eval"
            );
            let mut v = serde_json::to_value(s)?;
            v["step"] = serde_json::json!(step);
            lines.push_str(&v.to_string());
            lines.push('\n');
        }
        use std::io::Write;
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?
            .write_all(lines.as_bytes())?;
        Ok(())
    });
}

/// A fresh run state.
pub fn fresh_state(seed: u64) -> RunState {
    use rand::SeedableRng;
    RunState {
        step: 0,
        version: 0,
        rng: ChaCha8Rng::seed_from_u64(seed),
        mode_state: serde_json::Value::Null,
        counters: Counters::default(),
        restarts: BTreeMap::new(),
    }
}
