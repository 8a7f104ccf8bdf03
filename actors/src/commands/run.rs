//! `azr run`: the training job, a [`PipelineBuilder`] with the built-in components.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::sync::watch;

use crate::actors::evaluator::Benchmark;
use crate::cli::RunArgs;
use crate::config::{Config, RawConfig};
use crate::pipeline::RunOutcome;
use crate::PipelineBuilder;
use azr_core::oneshot::dataset::load_jsonl;
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

/// `azr run`: the config with its overrides, through [`PipelineBuilder`] with the built-in
/// components, stopping on Ctrl-C / SIGTERM.
pub async fn run(args: RunArgs) -> Result<RunOutcome> {
    let base = Config::load_with_overrides(args.config.as_deref(), &args.set)?;
    let mut raw = base.raw;
    apply_overrides(&mut raw, &args);
    let cfg = Config::validate(raw)?;
    let request_timeout_s = cfg.raw.run.request_timeout_s;
    let mut builder = PipelineBuilder::new(cfg).stop(stop_signal()).progress(true);
    if let Some(dir) = &args.resume {
        builder = builder.resume(dir);
    }
    let cluster = args
        .cluster
        .head_options(Duration::from_secs(request_timeout_s))?;
    Ok(builder.cluster(cluster).run().await?)
}

/// Train `cfg` with the built-in components (see [`PipelineBuilder`]). `resume` is an explicit
/// checkpoint or run directory.
pub async fn train(
    cfg: Arc<Config>,
    resume: Option<&Path>,
    stop: watch::Receiver<bool>,
    show_progress: bool,
) -> Result<RunOutcome> {
    let mut builder = PipelineBuilder::new(Config::clone(&cfg))
        .stop(stop)
        .progress(show_progress);
    if let Some(dir) = resume {
        builder = builder.resume(dir);
    }
    Ok(builder.run().await?)
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
