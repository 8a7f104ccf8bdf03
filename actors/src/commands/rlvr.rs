//! `azr rlvr`: 1-shot RLVR (Wang et al. 2025) as a preset of `azr run`. The config is the main
//! schema ([`Config`]) with `selfplay.mode = "rlvr"` forced and `run.staleness = 0` unless the
//! file or a `--set` says otherwise; the run is the same dataflow as `azr run` (the math task
//! type, the selected examples duplicated to fill the batch, the per-example accuracy history,
//! the in-run evaluator). `--eval-only` scores the configured `[evaluator]` benchmarks on the
//! model or a checkpoint with the evaluator's code, and exits.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;

use crate::config::{Config, Mode};

/// `azr rlvr`.
#[derive(Debug, Clone, clap::Args)]
pub struct RlvrArgs {
    /// TOML config in the `azr run` schema (`config/one-shot-rlvr.toml` for a real model,
    /// `config/one-shot-tiny.toml` for the CPU demo).
    #[arg(long, default_value = "config/one-shot-rlvr.toml")]
    pub config: PathBuf,
    /// Training examples by `extra_info.index`, comma-separated (overrides `rlvr.examples`;
    /// `all` = the whole dataset).
    #[arg(long)]
    pub examples: Option<String>,
    /// Training dataset JSONL (overrides `rlvr.dataset`).
    #[arg(long)]
    pub dataset: Option<PathBuf>,
    /// Stop after this many steps (overrides `run.max_steps`).
    #[arg(long)]
    pub max_steps: Option<u64>,
    /// Run directory (overrides `run.run_dir`).
    #[arg(long)]
    pub run_dir: Option<PathBuf>,
    /// Only score the `[evaluator]` benchmarks on the model (or `--checkpoint`) and exit.
    #[arg(long)]
    pub eval_only: bool,
    /// With `--eval-only`: the checkpoint or run directory whose weights to score (default
    /// `model.path`).
    #[arg(long, requires = "eval_only")]
    pub checkpoint: Option<PathBuf>,
    /// Items per benchmark (overrides `evaluator.limit`; 0 = all).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Override any config key, e.g. `--set learner.optimizer.lr=1e-6 --set rlvr.batch=64`
    /// (repeatable; applied after the preset, before validation).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

/// The preset: keys `azr rlvr` sets when the config file does not (`--set` still overrides
/// them). `selfplay.mode` is always `"rlvr"`.
pub const PRESET: [(&str, &str); 1] = [("run.staleness", "0")];

/// The comma-separated indices of `--examples` (`all`: empty = the whole dataset).
pub fn parse_examples(text: &str) -> Result<Vec<usize>> {
    if text.trim() == "all" {
        return Ok(Vec::new());
    }
    text.split(',')
        .map(|s| s.trim().parse::<usize>())
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("--examples `{text}`: {e} (expected 124,682 or all)"))
}

/// The config of `args`: the file with the preset, `--set` and the flags applied, checked.
pub fn resolve_config(args: &RlvrArgs) -> Result<Config> {
    let mut raw = Config::load_raw(Some(&args.config), &PRESET, &args.set)?;
    raw.selfplay.mode = Mode::Rlvr;
    if let Some(e) = &args.examples {
        raw.rlvr.examples = parse_examples(e)?;
    }
    if let Some(d) = &args.dataset {
        raw.rlvr.dataset = d.clone();
    }
    if let Some(n) = args.max_steps {
        raw.run.max_steps = n;
    }
    if let Some(d) = &args.run_dir {
        raw.run.run_dir = d.clone();
    }
    if let Some(l) = args.limit {
        raw.evaluator.limit = l;
    }
    Ok(Config::validate(raw)?)
}

/// Run `azr rlvr`.
pub async fn rlvr(args: RlvrArgs) -> Result<()> {
    let cfg = resolve_config(&args)?;
    if args.eval_only {
        let ev = &cfg.raw.evaluator;
        anyhow::ensure!(
            !ev.benchmarks.is_empty(),
            "config key `evaluator.benchmarks`: --eval-only needs a benchmark"
        );
        let benchmarks = ev
            .benchmarks
            .iter()
            .map(|name| super::eval::benchmark(&cfg, name, ev.limit))
            .collect::<Result<Vec<_>>>()?;
        let scored = super::eval::score(&cfg, args.checkpoint.as_deref(), benchmarks).await?;
        for s in &scored.scores {
            println!("{}", scored.line(s));
        }
        if let Some(avg) = scored.six_average() {
            println!("six_avg: accuracy {avg:.4}");
        }
        return Ok(());
    }
    if let Some(addr) = cfg.metrics_addr {
        crate::observe::install_metrics(addr)?;
    }
    let history = cfg.run_dir().join(&cfg.raw.rlvr.history_file);
    let eval_log = cfg.run_dir().join("eval.jsonl");
    let stop = super::run::stop_signal();
    let out = super::run::train(Arc::new(cfg), None, stop, true).await?;
    println!(
        "rlvr: {} steps (version {}); accuracy history in {}",
        out.steps,
        out.version,
        history.display()
    );
    if eval_log.exists() {
        println!("evaluations in {}", eval_log.display());
    }
    Ok(())
}
