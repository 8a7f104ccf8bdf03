//! The command line (`clap` derive; every `///` is the `--help` text).

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// azr: Absolute Zero self-play and 1-shot RLVR for small reasoning LLMs, as an actor pipeline.
#[derive(Debug, Parser)]
#[command(name = "azr", version, about)]
pub struct Cli {
    /// What to do (default: `run` with the embedded CPU config).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train: self-play (or 1-shot RLVR) until stopped or `--max-steps`.
    Run(RunArgs),
    /// Score a model or checkpoint on a benchmark, offline.
    Eval(EvalArgs),
    /// Run Python through the sandboxed executor and print the outcome as JSON.
    Exec(ExecArgs),
    /// Sample a continuation from a model.
    Generate(GenerateArgs),
    /// Benchmarks: model forward/sampling speed, executor throughput, pipeline overlap.
    Bench(BenchArgs),
    /// Pretrain the tiny base model on the procedural program corpus.
    Pretrain(PretrainArgs),
    /// Rank training examples by the variance of their accuracy history (1-shot RLVR).
    Select(SelectArgs),
    /// 1-shot RLVR: GRPO on selected math examples (or score math benchmarks: --eval-only).
    Rlvr(crate::commands::rlvr::RlvrArgs),
    /// Host executor work for a head on another machine (`azr run --cluster-listen`).
    Node(crate::commands::node::NodeArgs),
}

/// `azr run`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RunArgs {
    /// TOML config; default: the embedded CPU default (`config/default.toml`).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Stop after this many steps (overrides `run.max_steps`).
    #[arg(long)]
    pub max_steps: Option<u64>,
    /// Run directory (overrides `run.run_dir`).
    #[arg(long)]
    pub run_dir: Option<PathBuf>,
    /// Prometheus listen address (overrides `metrics.addr`), e.g. 127.0.0.1:9464.
    #[arg(long)]
    pub metrics_addr: Option<String>,
    /// Resume from this checkpoint or run directory (default: the latest checkpoint in the run
    /// directory when `run.auto_resume` is true).
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Max policy lag of rollouts (overrides `run.staleness`; 0 = on-policy).
    #[arg(long)]
    pub staleness: Option<u64>,
    /// Override any config key, e.g. `--set learner.optimizer.lr=5e-5 --set
    /// selfplay.solve_batch=32` (repeatable; applied before validation).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Several machines: make this run the head of a cluster.
    #[command(flatten)]
    pub cluster: crate::commands::node::ClusterArgs,
}

/// `azr eval`.
#[derive(Debug, Clone, clap::Args)]
pub struct EvalArgs {
    /// TOML config (model, sampling, executor); default: the embedded CPU default.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Benchmark name (e.g. cruxeval-o, cruxeval-i, math500, arc-easy, heldout-deduction).
    #[arg(long)]
    pub benchmark: String,
    /// Items to score (default: `evaluator.limit`; 0 = all).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Checkpoint or run directory whose weights to score (default: `model.path`).
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// Print the score as one JSON row, the layout of the in-run evaluator's `eval.jsonl` rows
    /// (without `step`), instead of the text line.
    #[arg(long)]
    pub json: bool,
    /// Also write one JSON line per item to this file: `benchmark`, `index` (item order),
    /// `id`, `correct` (correct samples) and `samples`.
    #[arg(long)]
    pub items: Option<PathBuf>,
}

/// `azr exec`.
#[derive(Debug, Clone, clap::Args)]
pub struct ExecArgs {
    /// Python file defining `f`.
    #[arg(long, conflicts_with = "batch", requires = "input")]
    pub code: Option<PathBuf>,
    /// Argument text of the call `f(<input>)`, e.g. "'ab', [1, 2]".
    #[arg(long)]
    pub input: Option<String>,
    /// JSONL of `{"code": ..., "input": ...}` jobs; prints one outcome per line.
    #[arg(long)]
    pub batch: Option<PathBuf>,
    /// Validate as a proposal (two runs, determinism, banned imports) instead of running once.
    #[arg(long)]
    pub validate: bool,
    /// Config whose `[executor]` section to use (default: the embedded CPU default).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// `azr generate`.
#[derive(Debug, Clone, clap::Args)]
pub struct GenerateArgs {
    /// HF model directory.
    #[arg(long)]
    pub model: PathBuf,
    /// Prompt text.
    #[arg(long)]
    pub prompt: String,
    /// Most new tokens.
    #[arg(long, default_value_t = 64)]
    pub max_tokens: usize,
    /// Temperature (0 = greedy).
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f64,
    /// Sampling seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Device: cpu or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

/// What `azr bench` measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchTarget {
    /// Forward and sampling throughput of a model.
    Model,
    /// Executor executions per second.
    Executor,
    /// Wall time per step with overlap (staleness 1) vs on-policy (staleness 0).
    Pipeline,
    /// Executions per second of a simulated I/O-bound executor on 1 node, then 2 (loopback).
    Cluster,
}

/// `azr bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// What to measure.
    pub target: BenchTarget,
    /// Config: the run config (pipeline, executor) or a model-benchmark TOML (model).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Steps per variant (pipeline).
    #[arg(long, default_value_t = 4)]
    pub steps: u64,
    /// Executions per program (executor); jobs per variant (cluster).
    #[arg(long, default_value_t = 500)]
    pub n: usize,
    /// Where to write the JSON result (default: print only).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// (model) A Python with `torch` and `transformers`: also measure PyTorch eager with the
    /// same shapes and thread count in the same run, and report the ratios.
    #[arg(long)]
    pub reference_python: Option<PathBuf>,
    /// (cluster) Simulated I/O per execution, in milliseconds.
    #[arg(long, default_value_t = 200)]
    pub sleep_ms: u64,
    /// (cluster) Executions each node runs at once.
    #[arg(long, default_value_t = 4)]
    pub capacity: usize,
}

/// `azr pretrain`.
#[derive(Debug, Clone, clap::Args)]
pub struct PretrainArgs {
    /// Pretraining config.
    #[arg(long, default_value = "config/tiny-pretrain.toml")]
    pub config: PathBuf,
    /// Train nothing: draw an evaluation set like the held-out one (the config's `[eval]`
    /// settings, held-out side of the split) with this seed instead, e.g. a validation split
    /// to tune on (`azr eval --benchmark valid-KIND` reads `validation.jsonl` of the model).
    #[arg(long, requires = "out")]
    pub eval_set_seed: Option<u64>,
    /// Where `--eval-set-seed` writes the set (JSONL).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Tasks also in this set (e.g. the shipped `heldout.jsonl`) are left out of the new one.
    #[arg(long)]
    pub exclude: Option<PathBuf>,
    /// With `--eval-set-seed`: draw the chain evaluation set instead, this many tasks per task
    /// kind of chain shapes pretraining never showed and as many of shapes it showed
    /// (`azr eval --benchmark chain-KIND` reads `chains.jsonl` of the model).
    #[arg(long, requires = "eval_set_seed")]
    pub chains: Option<usize>,
}

/// Ranking method of `azr select`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SelectMethod {
    /// Variance of the accuracy history.
    Var,
    /// Standard deviation (same order as variance).
    Std,
}

/// `azr select`.
#[derive(Debug, Clone, clap::Args)]
pub struct SelectArgs {
    /// History JSON (`{"<index>": [accuracy per epoch, ...]}`).
    #[arg(long)]
    pub history: PathBuf,
    /// How many examples to print.
    #[arg(long, default_value_t = 10)]
    pub top: usize,
    /// Ranking score.
    #[arg(long, value_enum, default_value_t = SelectMethod::Var)]
    pub method: SelectMethod,
    /// Training set JSONL, to print each selected problem and answer.
    #[arg(long)]
    pub dataset: Option<PathBuf>,
}
