//! `azr bench`: model, executor and pipeline benchmarks.

use std::sync::Arc;

use anyhow::{Context, Result};
use serde::Serialize;
use tokio::sync::watch;

use crate::cli::{BenchArgs, BenchTarget};
use crate::config::Config;

/// One variant of `azr bench pipeline`.
#[derive(Debug, Clone, Serialize)]
pub struct PipelineVariant {
    /// Maximum staleness S of the run.
    pub staleness: u64,
    /// Trained rollouts per second over the steady steps (the first step excluded).
    pub samples_per_second: f64,
    /// Mean wall seconds per step (first step excluded).
    pub step_seconds: f64,
    /// Mean share of a step the learner thread waited for its batch (first step excluded).
    pub trainer_idle_ratio: f64,
    /// Mean share of a step the rollout engine had nothing to decode (first step excluded).
    pub rollout_idle_ratio: f64,
    /// Every step time.
    pub steps: Vec<f64>,
}

/// The result of `azr bench pipeline`: every variant measured in the same process.
#[derive(Debug, Clone, Serialize)]
pub struct PipelineBench {
    /// Steps per variant.
    pub steps: u64,
    /// S = 1 (overlap).
    pub overlap: PipelineVariant,
    /// S = 0 (on-policy).
    pub on_policy: PipelineVariant,
    /// Trained samples per second at S = 1 over S = 0 (goal >= 1.3 on 2 cores).
    pub speedup: f64,
    /// Trainer idle share at S = 1 (goal < 0.10).
    pub trainer_idle_ratio: f64,
    /// Rollout tokens per second of the continuous-batching engine over one-request-at-a-time
    /// generation on the default self-play load (goal >= 2), from `engine`.
    pub engine_speedup: f64,
    /// The engine micro-benchmark (`azr_core::engine::bench`) on the config's model.
    pub engine: azr_core::engine::EngineBenchReport,
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
        BenchTarget::Cluster => {
            let cfg = super::load_config(args.config.as_deref())?;
            let r =
                crate::cluster::bench::bench(&cfg.to_toml(), args.n, args.sleep_ms, args.capacity)
                    .await?;
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
/// temporary run directories, and compare trained samples per second and idle shares.
pub async fn pipeline(base: Config, steps: u64) -> Result<PipelineBench> {
    // The engine against one-request-at-a-time generation, on the model of the config.
    let model = crate::backend::load_model(&base, None)?;
    let snap = model.snapshot()?;
    drop(model);
    let ecfg = azr_core::engine::EngineBenchConfig {
        max_new_tokens: base.raw.sampling.max_new_tokens,
        temperature: base.raw.sampling.temperature as f32,
        max_slots: base.raw.engine.max_slots,
        ..azr_core::engine::EngineBenchConfig::default()
    };
    tracing::info!("bench pipeline: engine vs one request at a time");
    let engine =
        tokio::task::spawn_blocking(move || azr_core::engine::bench(&snap, &ecfg)).await??;
    let mut variants = Vec::new();
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
        let o = super::run::train(cfg, None, stop, false).await?;
        let tail = |xs: &[u64]| -> u64 { xs.iter().skip(1).sum() };
        let secs: f64 = o.step_seconds.iter().skip(1).sum();
        variants.push(PipelineVariant {
            staleness,
            samples_per_second: tail(&o.samples) as f64 / secs.max(1e-9),
            step_seconds: steady_mean(&o.step_seconds),
            trainer_idle_ratio: steady_mean(&o.trainer_idle),
            rollout_idle_ratio: steady_mean(&o.rollout_idle),
            steps: o.step_seconds,
        });
    }
    let on_policy = variants.pop().context("no S = 0 run")?;
    let overlap = variants.pop().context("no S = 1 run")?;
    Ok(PipelineBench {
        steps,
        speedup: overlap.samples_per_second / on_policy.samples_per_second.max(1e-12),
        trainer_idle_ratio: overlap.trainer_idle_ratio,
        engine_speedup: engine.engine_speedup,
        engine,
        overlap,
        on_policy,
    })
}
