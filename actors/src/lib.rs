//! # azr
//!
//! The actor pipeline of **azr** (ractor + tokio around `azr_core`), as a library, and the
//! command line the `azr` binary runs (`src/main.rs` is a thin `main` over [`run_cli`]).
//!
//! Embedding crates start a training run with a [`PipelineBuilder`]: a [`Config`] plus, when
//! they want them, their own task types ([`PipelineBuilder::task_type`], with their template
//! sections, [`PipelineBuilder::template_sections`]), their own implementation of any actor
//! ([`PipelineBuilder::replace_actor`], a [`service::Service`] speaking the built-in actor's
//! message type) and their own compute ([`PipelineBuilder::compute`], defaulting to the built-in
//! model and learner of [`backend`]). `azr run` goes through the same builder.
//!
//! ```no_run
//! # async fn demo() -> Result<(), azr::BuildError> {
//! let cfg = azr::Config::load(std::path::Path::new("config/smoke.toml"))?;
//! let outcome = azr::PipelineBuilder::new(cfg).run().await?;
//! println!("trained {} steps", outcome.steps);
//! # Ok(()) }
//! ```
//!
//! `examples/custom-task/` is a complete crate that adds a task kind and a reward actor.
//!
//! | module | what it holds |
//! |---|---|
//! | [`service`] | the actor trait ([`service::Service`]), the generic supervised actor, handles, the actor registry |
//! | [`actors`] | the pipeline's actors, their messages and the context they share ([`actors::Ctx`]) |
//! | [`config`] | the run configuration (TOML, `--set` overrides, validation) |
//! | [`engine`] | the compute boundary: the [`engine::Trainer`] and [`engine::Codec`] traits |
//! | [`backend`] | the built-in compute: the model as trainer and tokenizer |
//! | [`cli`] | the command line of the `azr` binary |

pub mod actors;
pub mod backend;
mod builder;
pub mod cli;
mod cluster;
mod commands;
mod compute;
pub mod config;
pub mod engine;
mod observe;
mod pipeline;
pub mod service;
mod telemetry;

pub use builder::{
    BoxError, BuildError, ComputeContext, PipelineBuilder, TaskContext, TaskTypeFactory, Wiring,
};
pub use commands::run::stop_signal;
pub use config::Config;
pub use pipeline::dump::DumpRecord;
pub use pipeline::{Engines, RunOutcome};

/// Run a parsed command line: logging, a multi-threaded tokio runtime, then the command
/// (`azr` with no subcommand is `azr run` on the embedded default config).
pub fn run_cli(cli: cli::Cli) -> anyhow::Result<()> {
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

/// Install the `tracing` subscriber the binary uses (level from `RUST_LOG`, default `info`,
/// on stderr); does nothing when one is installed already.
pub fn init_logging() {
    observe::init_logging();
}
