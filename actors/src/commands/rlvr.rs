//! `azr rlvr`: 1-shot RLVR training (GRPO on a few selected math examples), or with
//! `--eval-only` the configured math benchmarks scored on a model.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Result;

use crate::observe;
use crate::rlvr::config::RlvrConfig;
use crate::rlvr::train;

/// `azr rlvr`.
#[derive(Debug, Clone, clap::Args)]
pub struct RlvrArgs {
    /// TOML config (`config/one-shot-rlvr.toml` for a real model, `config/one-shot-tiny.toml`
    /// for the CPU demo).
    #[arg(long, default_value = "config/one-shot-rlvr.toml")]
    pub config: PathBuf,
    /// Stop after this many steps (overrides `run.max_steps`).
    #[arg(long)]
    pub max_steps: Option<u64>,
    /// Run directory (overrides `run.run_dir`).
    #[arg(long)]
    pub run_dir: Option<PathBuf>,
    /// Model directory (overrides `model.path`).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Training examples by `extra_info.index`, comma-separated (overrides `rlvr.examples`;
    /// `all` = the whole dataset).
    #[arg(long)]
    pub examples: Option<String>,
    /// Training dataset JSONL (overrides `rlvr.dataset`).
    #[arg(long)]
    pub dataset: Option<PathBuf>,
    /// Items per eval benchmark (overrides `eval.limit`; 0 = all).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Only score the `[eval]` sets on the model (or `--checkpoint`) and exit.
    #[arg(long)]
    pub eval_only: bool,
    /// With `--eval-only`: a checkpoint directory (`.../checkpoints/step_XXXXXX`) to score.
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
}

/// The config of `args`, overrides applied and checked.
pub fn resolve_config(args: &RlvrArgs) -> Result<RlvrConfig> {
    let mut cfg = RlvrConfig::load(&args.config)?;
    if let Some(n) = args.max_steps {
        cfg.run.max_steps = n;
    }
    if let Some(d) = &args.run_dir {
        cfg.run.run_dir = d.clone();
    }
    if let Some(m) = &args.model {
        cfg.model.path = m.clone();
    }
    if let Some(d) = &args.dataset {
        cfg.rlvr.dataset = d.clone();
    }
    if let Some(l) = args.limit {
        cfg.eval.limit = l;
    }
    if let Some(e) = &args.examples {
        cfg.rlvr.examples = if e.trim() == "all" {
            Vec::new()
        } else {
            e.split(',')
                .map(|s| s.trim().parse::<usize>())
                .collect::<Result<_, _>>()
                .map_err(|err| anyhow::anyhow!("--examples `{e}`: {err}"))?
        };
    }
    cfg.validate()?;
    Ok(cfg)
}

/// Run `azr rlvr`.
pub async fn rlvr(args: RlvrArgs) -> Result<()> {
    let cfg = resolve_config(&args)?;
    if args.eval_only {
        let dir = match &args.checkpoint {
            Some(c) => c.join(crate::backend::MODEL_DIR),
            None => cfg.model.path.clone(),
        };
        let suite = train::eval_only(cfg, dir).await?;
        print!("{}", suite.render());
        return Ok(());
    }
    if let Some(addr) = cfg.metrics_addr()? {
        observe::install_metrics(addr)?;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            tracing::warn!("stop requested: finishing the current step");
            flag.store(true, Ordering::SeqCst);
        }
    });
    let out = train::train(cfg, stop).await?;
    println!(
        "rlvr: {} steps, {} epochs recorded in {}",
        out.steps,
        out.epochs,
        out.history_path.display()
    );
    if let Some((step, suite)) = &out.last_eval {
        println!("eval at step {step}:");
        print!("{}", suite.render());
    }
    Ok(())
}
