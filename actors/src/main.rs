//! The `azr` binary: a thin `main` over the `azr` library ([`azr::run_cli`]).
//!
//! `azr` with no arguments is `azr run` on the embedded CPU default config.

use clap::Parser;

fn main() -> anyhow::Result<()> {
    // First, while this is the only thread: it sets an environment variable.
    azr_core::model::keep_candle_elementwise_inline();
    azr::run_cli(azr::cli::Cli::parse())
}
