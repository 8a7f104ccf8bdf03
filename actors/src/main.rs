//! The `azr` binary: a thin `main` over the `azr` library ([`azr::run_cli`]).
//!
//! `azr` with no arguments is `azr run` on the embedded CPU default config.

use clap::Parser;

fn main() -> anyhow::Result<()> {
    azr::run_cli(azr::cli::Cli::parse())
}
