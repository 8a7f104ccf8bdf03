//! `cargo run --release -p azr-example-custom-task [-- --max-steps N --set KEY=VALUE ...]`:
//! self-play with the `reverse` kind and the length-penalty reward actor, on `config.toml`
//! (or `--config FILE`), from the workspace root.

use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;

/// Train with the example's task kind and reward actor.
#[derive(Debug, Parser)]
struct Args {
    /// Config file (default: the example's `config.toml`).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Override any config key, as `azr run --set` does (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Stop after this many steps (overrides `run.max_steps`).
    #[arg(long)]
    max_steps: Option<u64>,
    /// Length penalty of an answer `sampling.max_new_tokens` long.
    #[arg(long, default_value_t = 0.2)]
    length_penalty: f32,
}

#[tokio::main]
async fn main() -> Result<()> {
    azr::init_logging();
    let args = Args::parse();
    let mut set = args.set;
    if let Some(n) = args.max_steps {
        set.push(format!("run.max_steps={n}"));
    }
    let cfg = match &args.config {
        Some(path) => azr::Config::load_with_overrides(Some(path), &set)?,
        None => azr::Config::from_toml_str_with_overrides(
            azr_example_custom_task::CONFIG_TOML,
            "examples/custom-task/config.toml",
            &set,
        )?,
    };
    let outcome = azr_example_custom_task::builder(cfg, args.length_penalty)
        .stop(azr::stop_signal())
        .progress(true)
        .run()
        .await?;
    println!(
        "trained {} steps (policy version {})",
        outcome.steps, outcome.version
    );
    Ok(())
}
