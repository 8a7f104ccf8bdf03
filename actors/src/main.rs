//! The `azr` binary: the ractor actor pipeline around `azr_core`, and its command line.
//!
//! `azr` with no arguments is `azr run` on the embedded CPU default config.

mod actors;
mod backend;
mod cli;
mod commands;
mod compute;
mod config;
mod engine;
mod observe;
mod pipeline;
mod service;
mod telemetry;

use clap::Parser;

fn main() -> anyhow::Result<()> {
    let cli = cli::Cli::parse();
    observe::init_logging();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("azr-rt")
        .build()?;
    let command = cli
        .command
        .unwrap_or(cli::Command::Run(cli::RunArgs::default()));
    runtime.block_on(commands::dispatch(command))
}
