//! Pretrain the tiny base model from a config file, printing progress to stderr. The `azr
//! pretrain` command wraps the same library call ([`azr_core::pretrain::pretrain`]).
//!
//! `RAYON_NUM_THREADS=1 cargo run --release -p azr-core --example pretrain -- config/tiny-pretrain.toml`

use azr_core::pretrain::{pretrain, PretrainConfig};
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .map_or_else(|| PathBuf::from("config/tiny-pretrain.toml"), PathBuf::from);
    let cfg = PretrainConfig::load(&path)?;
    let every = cfg.train.log_every;
    let out = pretrain(&cfg, |p| {
        if p.step % every == 0 || p.step == 1 {
            eprintln!(
                "step {:>5} ({:>5.1}%)  loss {:.4}  lr {:.2e}  tokens {:>9}  {:>6.0} tok/s  {:>7.1} s",
                p.step,
                p.fraction * 100.0,
                p.loss,
                p.lr,
                p.tokens,
                p.tokens_per_second,
                p.train_seconds
            );
        }
    })?;
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}
