//! `azr run`: the training job.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use azr_core::executor::Executor;
use azr_core::tasks::{TaskBuffers, TaskRegistry, TemplateSet};
use tokio::sync::watch;

use crate::actors::evaluator::Benchmark;
use crate::actors::store::Source;
use crate::backend::{self, ModelTrainer};
use crate::cli::RunArgs;
use crate::config::{self, Config, RawConfig};
use crate::pipeline::checkpoint;
use crate::pipeline::{self, Engines, RunOutcome, Services};
use azr_core::oneshot::dataset::load_jsonl;
use azr_core::oneshot::history::AccuracyHistory;
use azr_core::tasks::{Provenance, Task};

/// Apply command-line overrides to a raw config.
pub fn apply_overrides(raw: &mut RawConfig, args: &RunArgs) {
    if let Some(n) = args.max_steps {
        raw.run.max_steps = n;
    }
    if let Some(d) = &args.run_dir {
        raw.run.run_dir = d.clone();
    }
    if let Some(a) = &args.metrics_addr {
        raw.metrics.addr = a.clone();
        raw.metrics.enabled = true;
    }
    if let Some(s) = args.staleness {
        raw.run.staleness = s;
    }
}

/// `azr run`.
pub async fn run(args: RunArgs) -> Result<RunOutcome> {
    let base = Config::load_with_overrides(args.config.as_deref(), &args.set)?;
    let mut raw = base.raw;
    apply_overrides(&mut raw, &args);
    let cfg = Config::validate(raw)?;
    if let Some(addr) = cfg.metrics_addr {
        crate::observe::install_metrics(addr)?;
    }
    let stop = stop_signal();
    train(Arc::new(cfg), args.resume.as_deref(), stop, true).await
}

/// Build everything from `cfg` and train. `resume` is an explicit checkpoint or run directory.
pub async fn train(
    cfg: Arc<Config>,
    resume: Option<&Path>,
    stop: watch::Receiver<bool>,
    show_progress: bool,
) -> Result<RunOutcome> {
    let checkpoint: Option<PathBuf> = match resume {
        Some(dir) => Some(checkpoint::resolve(dir)?),
        None if cfg.raw.run.auto_resume => checkpoint::latest(cfg.run_dir())?,
        None => None,
    };
    let state = match &checkpoint {
        Some(c) => {
            let s = checkpoint::load_state(c)?;
            tracing::info!(checkpoint = %c.display(), step = s.step, version = s.version, "resuming");
            s
        }
        None => pipeline::fresh_state(cfg.raw.run.seed),
    };

    let exec_cfg = cfg.raw.executor.clone();
    let executor = Arc::new(
        tokio::task::spawn_blocking(move || Executor::start(exec_cfg))
            .await?
            .context("starting the executor (config section `[executor]`)")?,
    );
    azr_core::metrics::record_isolation(executor.isolation());
    crate::telemetry::queue("rollouts", 0, cfg.raw.run.learner_queue);
    let templates = Arc::new(TemplateSet::resolve(&cfg.raw.tasks.templates).with_context(
        || {
            format!(
                "config key `tasks.templates`: `{}`",
                cfg.raw.tasks.templates
            )
        },
    )?);
    let registry = Arc::new(TaskRegistry::builtin(templates.clone(), &cfg.raw.tasks)?);
    azr_core::metrics::use_registry(&registry);

    let model = backend::load_model(&cfg, checkpoint.as_deref())?;
    tracing::info!(
        params = model.num_params(),
        layers = model.config().num_hidden_layers,
        "model loaded"
    );
    let stop_ids = backend::stop_token_ids(&model, &templates.format.stop);
    let codec = backend::codec(&model);
    let snapshot = model.snapshot()?;
    // The KL reference is the base model of `model.path`, also when resuming.
    let reference = if cfg.raw.learner.loss.kl_coef > 0.0 {
        Some(backend::load_model(&cfg, None)?.snapshot()?)
    } else {
        None
    };
    let trainer = ModelTrainer::new(model, cfg.raw.learner, checkpoint.as_deref(), reference)?;

    let source = match cfg.raw.selfplay.mode {
        config::Mode::Azr => {
            // Every self-play kind gets a buffer with its seed tasks; a resumed checkpoint made
            // before a kind existed gets the missing buffers created and seeded.
            let mut buffers: TaskBuffers = if state.mode_state.is_null() {
                TaskBuffers::default()
            } else {
                serde_json::from_value(state.mode_state.clone())
                    .context("restoring the task buffers")?
            };
            let (ex, r) = (executor.clone(), registry.clone());
            let kinds = cfg.raw.selfplay.task_kinds.clone();
            let bc = cfg.raw.tasks.buffer.clone();
            let buffers = tokio::task::spawn_blocking(move || {
                buffers.ensure(&r, &kinds, &bc, &ex).map(|_| buffers)
            })
            .await?
            .context("creating and seeding the task buffers")?;
            Source::SelfPlay {
                buffers,
                window: cfg.raw.tasks.buffer.newest_window,
            }
        }
        config::Mode::Rlvr => {
            let history = if state.mode_state.is_null() {
                AccuracyHistory::new()
            } else {
                AccuracyHistory::from_json_str(&state.mode_state.to_string())
                    .context("restoring the accuracy history")?
            };
            Source::Rlvr {
                examples: rlvr_examples(&cfg)?,
                per_batch: cfg.raw.rlvr.batch as u64,
                n: cfg.raw.rlvr.samples_per_prompt,
                history,
                history_path: cfg.run_dir().join(&cfg.raw.rlvr.history_file),
            }
        }
    };
    let benchmarks = Arc::new(load_benchmarks(&cfg)?);

    let progress = (show_progress && std::io::stderr().is_terminal()).then(|| {
        let pb = indicatif::ProgressBar::new(cfg.raw.run.max_steps);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{spinner} step {pos}/{len} [{elapsed_precise}] {per_sec} {msg}",
        ) {
            pb.set_style(style);
        }
        pb.set_position(state.step);
        pb
    });

    let outcome = pipeline::run(
        cfg.clone(),
        Engines {
            trainer,
            weights: snapshot,
            stop_token_ids: stop_ids,
            codec,
        },
        Services {
            registry,
            executor,
            benchmarks,
        },
        state,
        source,
        stop,
        progress.clone(),
    )
    .await?;
    if let Some(pb) = progress {
        pb.finish_and_clear();
    }
    tracing::info!(
        steps = outcome.steps,
        version = outcome.version,
        "training stopped"
    );
    Ok(outcome)
}

/// The 1-shot RLVR examples of a config (`rlvr.examples`, all rows when empty), as math tasks
/// keyed by their dataset index.
pub fn rlvr_examples(cfg: &Config) -> Result<Vec<(String, Task)>> {
    let rl = &cfg.raw.rlvr;
    let rows = load_jsonl(&rl.dataset)
        .with_context(|| format!("config key `rlvr.dataset`: {}", rl.dataset.display()))?;
    let chosen: Vec<_> =
        if rl.examples.is_empty() {
            rows
        } else {
            rl.examples
                .iter()
                .map(|ex| {
                    let key = ex.to_string();
                    rows.iter().find(|r| r.index == key).cloned().with_context(|| {
                    format!("config key `rlvr.examples`: no row with index {key} in the dataset")
                })
                })
                .collect::<Result<_>>()?
        };
    anyhow::ensure!(!chosen.is_empty(), "config key `rlvr.dataset`: no examples");
    Ok(chosen
        .into_iter()
        .map(|r| {
            let t = Task::math(r.prompt, r.answer, Provenance::benchmark("rlvr", &r.index));
            (r.index, t)
        })
        .collect())
}

/// The evaluator's held-out sets (none when it never runs: `evaluator.every = 0` and no
/// `evaluator.at_start`). A set that cannot be loaded is skipped with a warning.
pub fn load_benchmarks(cfg: &Config) -> Result<Vec<Benchmark>> {
    let ev = &cfg.raw.evaluator;
    let mut out = Vec::new();
    if ev.every == 0 && !ev.at_start {
        return Ok(out);
    }
    for name in &ev.benchmarks {
        match crate::commands::eval::benchmark(cfg, name, ev.limit) {
            Ok(b) => out.push(b),
            Err(e) => {
                tracing::warn!(benchmark = %name, error = %e, "benchmark unavailable; skipped")
            }
        }
    }
    Ok(out)
}

/// A receiver that turns true on the first Ctrl-C or SIGTERM (graceful stop: finish the
/// current step, checkpoint, exit). A second Ctrl-C exits at once.
pub fn stop_signal() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        #[cfg(unix)]
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot watch SIGTERM");
                    None
                }
            };
        #[cfg(unix)]
        let term_fut = async {
            match term.as_mut() {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term_fut = std::future::pending::<()>();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term_fut => {}
        }
        tracing::warn!(
            "stop requested: finishing the current step and checkpointing (Ctrl-C again to abort)"
        );
        let _ = tx.send(true);
        if tokio::signal::ctrl_c().await.is_ok() {
            tracing::error!("aborted");
            std::process::exit(130);
        }
    });
    rx
}
