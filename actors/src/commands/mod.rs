//! One module per subcommand.

pub mod bench;
pub mod eval;
pub mod exec;
pub mod generate;
pub mod node;
pub mod pretrain;
pub mod rlvr;
pub mod run;
pub mod select;

use std::path::Path;

use anyhow::Result;

use crate::cli::Command;
use crate::config::Config;

/// Run a parsed command.
pub async fn dispatch(command: Command) -> Result<()> {
    match command {
        Command::Run(args) => run::run(args).await.map(|_| ()),
        Command::Eval(args) => eval::eval(args).await,
        Command::Exec(args) => exec::exec(args).await,
        Command::Generate(args) => generate::generate(args).await,
        Command::Bench(args) => bench::bench(args).await,
        Command::Pretrain(args) => pretrain::pretrain(args).await,
        Command::Select(args) => select::select(args).await,
        Command::Rlvr(args) => rlvr::rlvr(args).await,
        Command::Node(args) => node::node(args).await,
    }
}

/// The config at `path`, or the embedded default.
pub fn load_config(path: Option<&Path>) -> Result<Config> {
    Ok(match path {
        Some(p) => Config::load(p)?,
        None => Config::embedded_default()?,
    })
}
