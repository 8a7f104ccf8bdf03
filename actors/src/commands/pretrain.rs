//! `azr pretrain`: next-token pretraining of the tiny base model (`azr_core::pretrain`).

use std::io::IsTerminal;

use anyhow::{Context, Result};
use azr_core::pretrain::{pretrain as run_pretrain, PretrainConfig};

use crate::cli::PretrainArgs;

/// `azr pretrain --config F`.
pub async fn pretrain(args: PretrainArgs) -> Result<()> {
    let cfg = PretrainConfig::load(&args.config)
        .with_context(|| format!("loading {}", args.config.display()))?;
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
