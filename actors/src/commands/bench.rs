//! `azr bench`: model, executor and pipeline benchmarks.

use std::sync::Arc;

use anyhow::{Context, Result};
use serde::Serialize;
use tokio::sync::watch;

use crate::cli::{BenchArgs, BenchTarget};
use crate::config::Config;

/// The result of `azr bench pipeline`.
#[derive(Debug, Clone, Serialize)]
pub struct PipelineBench {
    /// Steps per variant.
    pub steps: u64,
    /// Mean wall seconds per step with staleness 1 (overlap), first step excluded.
    pub overlap_step_seconds: f64,
    /// Mean wall seconds per step with staleness 0 (on-policy), first step excluded.
    pub on_policy_step_seconds: f64,
    /// `on_policy / overlap`.
    pub speedup: f64,
    /// Every step time of the overlap run.
    pub overlap_steps: Vec<f64>,
    /// Every step time of the on-policy run.
    pub on_policy_steps: Vec<f64>,
}

/// `azr bench model|executor|pipeline`.
pub async fn bench(args: BenchArgs) -> Result<()> {
    match args.target {
        BenchTarget::Executor => {
            let cfg = super::load_config(args.config.as_deref())?;
            let n = args.n;
            let report = tokio::task::spawn_blocking(move || {
                azr_core::executor::bench::run(&cfg.raw.executor, n)
            })
            .await??;
            println!("{report}");
            if let Some(out) = &args.out {
                std::fs::write(out, report.to_string())?;
            }
            Ok(())
        }
        BenchTarget::Model => {
            let mut cfg: azr_core::model::bench::BenchConfig = match &args.config {
                Some(p) => {
                    let text = std::fs::read_to_string(p)
                        .with_context(|| format!("reading {}", p.display()))?;
                    toml::from_str(&text).with_context(|| format!("parsing {}", p.display()))?
                }
                None => azr_core::model::bench::BenchConfig::default(),
            };
            if let Some(py) = &args.reference_python {
                cfg.reference_python = Some(py.clone());
            }
            let report =
                tokio::task::spawn_blocking(move || azr_core::model::bench::run(&cfg)).await??;
            println!("{report}");
            if let Some(out) = &args.out {
                std::fs::write(out, serde_json::to_string_pretty(&report)?)?;
            }
            Ok(())
        }
        BenchTarget::Pipeline => {
            let cfg = super::load_config(args.config.as_deref())?;
            let r = pipeline(cfg, args.steps).await?;
            let json = serde_json::to_string_pretty(&r)?;
            println!("{json}");
            if let Some(out) = &args.out {
                std::fs::write(out, &json)?;
            }
            Ok(())
        }
    }
}

/// Mean of `xs[1..]` (the first step pays warm-up costs), or of `xs` when it has one entry.
fn steady_mean(xs: &[f64]) -> f64 {
    let tail = if xs.len() > 1 { &xs[1..] } else { xs };
    tail.iter().sum::<f64>() / tail.len().max(1) as f64
}

/// Run the same config for `steps` steps with staleness 1 and with staleness 0, in fresh
/// temporary run directories, and compare wall time per step.
pub async fn pipeline(base: Config, steps: u64) -> Result<PipelineBench> {
    let mut times = Vec::new();
    for staleness in [1u64, 0] {
        let dir = tempfile::tempdir()?;
        let mut raw = base.raw.clone();
        raw.run.staleness = staleness;
        raw.run.max_steps = steps;
        raw.run.run_dir = dir.path().to_path_buf();
        raw.run.checkpoint_every = 0;
        raw.run.dump_rollouts = false;
        raw.run.auto_resume = false;
        raw.evaluator.every = 0;
        raw.metrics.enabled = false;
        let cfg = Arc::new(Config::validate(raw)?);
        let (_tx, stop) = watch::channel(false);
        tracing::info!(staleness, steps, "bench pipeline: running");
        let outcome = super::run::train(cfg, None, stop, false).await?;
        times.push(outcome.step_seconds);
    }
    let overlap = steady_mean(&times[0]);
    let on_policy = steady_mean(&times[1]);
    Ok(PipelineBench {
        steps,
        overlap_step_seconds: overlap,
        on_policy_step_seconds: on_policy,
        speedup: on_policy / overlap.max(1e-12),
        overlap_steps: times[0].clone(),
        on_policy_steps: times[1].clone(),
    })
}
