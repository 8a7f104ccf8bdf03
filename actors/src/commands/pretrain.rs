//! `azr pretrain`: next-token pretraining of the tiny base model (`azr_core::pretrain`).

use std::io::IsTerminal;
use std::path::Path;

use anyhow::{bail, Context, Result};
use azr_core::executor::Executor;
use azr_core::pretrain::{
    chain_set, heldout_set, pretrain as run_pretrain, HeldoutSet, PretrainConfig,
};

use crate::cli::PretrainArgs;

/// `azr pretrain --config F` (or, with `--eval-set-seed`, only an evaluation set).
pub async fn pretrain(args: PretrainArgs) -> Result<()> {
    let cfg = PretrainConfig::load(&args.config)
        .with_context(|| format!("loading {}", args.config.display()))?;
    if let (Some(seed), Some(out)) = (args.eval_set_seed, args.out.clone()) {
        return eval_set(&cfg, seed, &out, args.exclude.as_deref(), args.chains).await;
    }
    let outcome = tokio::task::spawn_blocking(move || {
        let bar = std::io::stderr().is_terminal().then(|| {
            let pb = indicatif::ProgressBar::new(1000);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{bar:40} {percent:>3}% [{elapsed_precise}<{eta_precise}] {msg}",
            ) {
                pb.set_style(style);
            }
            pb
        });
        let mut last_log = std::time::Instant::now();
        let out = run_pretrain(&cfg, |p| {
            let msg = format!(
                "step {} loss {:.4} lr {:.2e} {:.0} tok/s",
                p.step, p.loss, p.lr, p.tokens_per_second
            );
            match &bar {
                Some(pb) => {
                    pb.set_position((p.fraction * 1000.0) as u64);
                    pb.set_message(msg);
                }
                None if last_log.elapsed().as_secs() >= 10 => {
                    last_log = std::time::Instant::now();
                    tracing::info!("{msg}");
                }
                None => {}
            }
        });
        if let Some(pb) = bar {
            pb.finish_and_clear();
        }
        out
    })
    .await??;
    println!("{}", serde_json::to_string_pretty(&outcome)?);
    Ok(())
}

/// `azr pretrain --eval-set-seed S --out F [--exclude G] [--chains N]`: an evaluation set drawn
/// like the held-out one with seed `S` (or, with `--chains N`, the chain set: N tasks per kind
/// of unseen chain shapes and N of seen ones), without the tasks of `G`.
async fn eval_set(
    cfg: &PretrainConfig,
    seed: u64,
    out: &Path,
    exclude: Option<&Path>,
    chains: Option<usize>,
) -> Result<()> {
    if seed == cfg.eval.seed {
        bail!("--eval-set-seed {seed} is the held-out set's own seed (`eval.seed`); pick another");
    }
    let excluded = match exclude {
        Some(p) => Some(HeldoutSet::load(p).with_context(|| format!("loading {}", p.display()))?),
        None => None,
    };
    let mut settings = cfg.eval.heldout(&cfg.corpus);
    settings.seed = seed;
    let executor = cfg.executor.clone();
    let set = tokio::task::spawn_blocking(move || -> Result<HeldoutSet> {
        let executor = Executor::start(executor).context("starting the sandboxed executor")?;
        Ok(match chains {
            Some(per_side) => chain_set(&executor, &settings, per_side)?,
            None => heldout_set(&executor, &settings)?,
        })
    })
    .await??;
    let drawn = set.tasks.len();
    let set = match &excluded {
        Some(x) => set.without(x),
        None => set,
    };
    set.save(out)
        .with_context(|| format!("writing {}", out.display()))?;
    println!(
        "{}: {} tasks (seed {seed}; {} dropped as already in the excluded set)",
        out.display(),
        set.tasks.len(),
        drawn - set.tasks.len()
    );
    Ok(())
}
