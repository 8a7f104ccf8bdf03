//! The run configuration, in two stages.
//!
//! 1. [`RawConfig`]: the serde image of a TOML file. Every struct denies unknown fields and every
//!    field has a documented default, so a file only needs the keys it changes.
//! 2. [`Config`]: the validated configuration. [`Config::from_toml_str`] parses, then checks every
//!    value and every cross-field rule, and fails with an error naming the offending key
//!    (`config key `learner.lr`: must be > 0`).
//!
//! The embedded CPU default ([`DEFAULT_TOML`], `config/default.toml`) is what `azr run` uses when
//! no `--config` is given.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use azr_core::executor::ExecutorConfig;
use azr_core::types::TaskKind;
use serde::{Deserialize, Serialize};

/// `config/default.toml`, embedded in the binary so that `azr run` works with no arguments.
pub const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

/// A configuration error. The message always names the key (or the file) at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TOML did not parse or did not match the schema (unknown key, wrong type).
    #[error("config {origin}: {message}")]
    Parse {
        /// The file name or `<embedded default>`.
        origin: String,
        /// The parser's message, which names the key and shows the line.
        message: String,
    },
    /// A value is out of range or inconsistent with another one.
    #[error("config key `{key}`: {message}")]
    Invalid {
        /// Dotted key, e.g. `learner.lr`.
        key: String,
        /// What is wrong with it.
        message: String,
    },
}

impl ConfigError {
    fn invalid(key: &str, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            key: key.to_string(),
            message: message.into(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Stage 1: raw serde structs
// ---------------------------------------------------------------------------------------------

/// The whole TOML file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    /// `[run]`: seed, step budget, run directory, checkpoints, overlap, channels.
    pub run: RunSection,
    /// `[model]`: weights directory, device, dtype.
    pub model: ModelSection,
    /// `[sampling]`: decoding settings of the training rollouts.
    pub sampling: SamplingSection,
    /// `[selfplay]`: what one step generates.
    pub selfplay: SelfPlaySection,
    /// `[rlvr]`: the 1-shot RLVR mode (used when `selfplay.mode = "rlvr"`).
    pub rlvr: RlvrSection,
    /// `[executor]`: the sandboxed Python executor.
    pub executor: ExecutorConfig,
    /// `[learner]`: optimizer and loss settings.
    pub learner: LearnerSection,
    /// `[rewards]`: reward shaping of both roles.
    pub rewards: RewardsSection,
    /// `[templates]`: which prompt templates to use.
    pub templates: TemplatesSection,
    /// `[evaluator]`: held-out evaluation during training.
    pub evaluator: EvaluatorSection,
    /// `[metrics]`: the Prometheus exporter.
    pub metrics: MetricsSection,
    /// `[faults]`: test-only fault injection (all off by default).
    pub faults: FaultsSection,
}

/// `[run]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunSection {
    /// Seed of every random stream of the run (default 42).
    pub seed: u64,
    /// Stop after this many learner steps; 0 = run until stopped (default 0).
    pub max_steps: u64,
    /// Directory for checkpoints, rollout dumps and logs (default `runs/default`).
    pub run_dir: PathBuf,
    /// Write a checkpoint every N steps; 0 = only at shutdown (default 10).
    pub checkpoint_every: u64,
    /// How many policy versions a rollout may lag behind the learner: 0 = strictly on-policy,
    /// 1 = generation of step t+1 overlaps the update of step t (default 1).
    pub staleness: u64,
    /// Capacity, in steps' worth of sub-batches, of the rollout -> learner channel (default 2).
    pub learner_queue: usize,
    /// Capacity of the generation request queue of the inference thread (default 64).
    pub inference_queue: usize,
    /// Write `rollouts/step_XXXXXX.jsonl` with prompts, responses and rewards (default true).
    pub dump_rollouts: bool,
    /// Restarts allowed per worker actor before the run fails (default 5).
    pub restart_budget: u32,
    /// Seconds a request to a worker actor may take before it is retried (default 600).
    pub request_timeout_s: u64,
    /// Resume from the latest checkpoint in `run_dir` if there is one (default true).
    pub auto_resume: bool,
}

impl Default for RunSection {
    fn default() -> Self {
        Self {
            seed: 42,
            max_steps: 0,
            run_dir: PathBuf::from("runs/default"),
            checkpoint_every: 10,
            staleness: 1,
            learner_queue: 2,
            inference_queue: 64,
            dump_rollouts: true,
            restart_budget: 5,
            request_timeout_s: 600,
            auto_resume: true,
        }
    }
}

/// `[model]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelSection {
    /// HF-format model directory (`config.json`, `*.safetensors`, `tokenizer.json`), relative to
    /// the working directory (default `assets/tiny-base`).
    pub path: PathBuf,
    /// `"cpu"` or `"cuda:N"` (default `"cpu"`).
    pub device: String,
    /// `"f32"`, `"bf16"` or `"f16"` (default `"f32"`).
    pub dtype: String,
}

impl Default for ModelSection {
    fn default() -> Self {
        Self {
            path: PathBuf::from("assets/tiny-base"),
            device: "cpu".to_string(),
            dtype: "f32".to_string(),
        }
    }
}

/// `[sampling]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SamplingSection {
    /// Training temperature (default 1.0, as AZR).
    pub temperature: f64,
    /// Nucleus threshold; 1.0 = off (default 1.0).
    pub top_p: f64,
    /// Top-k cut; 0 = off (default 0).
    pub top_k: usize,
    /// Longest response in tokens (default 96).
    pub max_new_tokens: usize,
}

impl Default for SamplingSection {
    fn default() -> Self {
        Self {
            temperature: 1.0,
            top_p: 1.0,
            top_k: 0,
            max_new_tokens: 96,
        }
    }
}

/// Which training loop a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Absolute Zero self-play: propose + solve on the code task types.
    Azr,
    /// 1-shot RLVR: GRPO on a few dataset examples, solve role only.
    Rlvr,
}

/// `[selfplay]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SelfPlaySection {
    /// `"azr"` or `"rlvr"` (default `"azr"`).
    pub mode: Mode,
    /// Task kinds that take part (default abduction, deduction, induction).
    pub task_kinds: Vec<TaskKind>,
    /// Proposals per task kind per step (AZR: 64; default 4).
    pub propose_batch: usize,
    /// Solver tasks per task kind per step (AZR: 64; default 4).
    pub solve_batch: usize,
    /// Monte Carlo solver samples per valid proposal for the learnability reward (AZR: 8; default 4).
    pub mc_samples: usize,
    /// Reference tasks from the buffer shown in a proposer prompt (AZR: 6; default 3).
    pub k_refs: usize,
    /// Largest number of tasks kept per buffer (AZR: 16384; default 4096).
    pub buffer_cap: usize,
    /// Train the proposer role too; false = the paper's "solver only" ablation (default true).
    pub train_propose: bool,
}

impl Default for SelfPlaySection {
    fn default() -> Self {
        Self {
            mode: Mode::Azr,
            task_kinds: TaskKind::CODE.to_vec(),
            propose_batch: 4,
            solve_batch: 4,
            mc_samples: 4,
            k_refs: 3,
            buffer_cap: 4096,
            train_propose: true,
        }
    }
}

/// `[rlvr]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RlvrSection {
    /// JSONL training set (`prompt`/`problem` + `answer`/`ground_truth`) (default the 1-shot
    /// RLVR paper's `dsr_sub.jsonl`).
    pub dataset: PathBuf,
    /// Indices of the training examples to use; empty = the whole dataset (default `[]`).
    pub examples: Vec<usize>,
    /// Prompts per step (the selected examples are repeated to fill it; paper: 128; default 4).
    pub batch: usize,
    /// Samples per prompt, the GRPO group size (paper: 8; default 4).
    pub samples_per_prompt: usize,
    /// Where to record the per-example accuracy history (`{"<index>": [acc per epoch]}`),
    /// relative to the run directory (default `accuracy_history.json`).
    pub history_file: PathBuf,
}

impl Default for RlvrSection {
    fn default() -> Self {
        Self {
            dataset: PathBuf::from("../shared/data/one-shot-rlvr/dsr_sub.jsonl"),
            examples: Vec::new(),
            batch: 4,
            samples_per_prompt: 4,
            history_file: PathBuf::from("accuracy_history.json"),
        }
    }
}

/// `[learner]`: the optimizer and loss settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LearnerSection {
    /// AdamW learning rate (AZR: 1e-6 on 7B; default 1e-4 for the tiny model).
    pub lr: f64,
    /// AdamW beta1 (default 0.9).
    pub beta1: f64,
    /// AdamW beta2 (default 0.999).
    pub beta2: f64,
    /// AdamW epsilon (default 1e-8).
    pub eps: f64,
    /// Decoupled weight decay (default 0.01).
    pub weight_decay: f64,
    /// Global gradient-norm clip; 0 = off (default 1.0).
    pub grad_clip: f64,
    /// PPO clip range, lower side (default 0.2).
    pub clip_low: f64,
    /// PPO clip range, upper side (default 0.2; DAPO-style clip-higher uses 0.28).
    pub clip_high: f64,
    /// Entropy bonus coefficient (default 0.001).
    pub entropy_coef: f64,
    /// KL-to-reference coefficient; 0 = no reference model (default 0).
    pub kl_coef: f64,
    /// KL estimator: `"k1"`, `"k2"` or `"k3"` (default `"k3"`).
    pub kl_estimator: String,
    /// Advantage estimator: `"trr++"` (AZR, per task x role), `"grpo"` or `"rloo"` (default `"trr++"`).
    pub advantage: String,
    /// Loss aggregation: `"token-mean"`, `"seq-mean-token-mean"` or `"seq-mean-token-sum"`
    /// (default `"token-mean"`).
    pub loss_agg: String,
    /// Sequences per optimizer micro-batch (default 8).
    pub micro_batch: usize,
    /// Optimizer steps per learner step (PPO mini-batches; default 1).
    pub mini_batches: usize,
}

impl Default for LearnerSection {
    fn default() -> Self {
        Self {
            lr: 1e-4,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
            grad_clip: 1.0,
            clip_low: 0.2,
            clip_high: 0.2,
            entropy_coef: 0.001,
            kl_coef: 0.0,
            kl_estimator: "k3".to_string(),
            advantage: "trr++".to_string(),
            loss_agg: "token-mean".to_string(),
            micro_batch: 8,
            mini_batches: 1,
        }
    }
}

/// `[rewards]`: AZR's reward values (section 1.8 of the AZR reference).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RewardsSection {
    /// Proposer reward of an invalid proposal or a bad format (default -1.0).
    pub propose_invalid: f32,
    /// Proposer reward of a valid task that every or no MC sample solves (default -0.5, as AZR's
    /// code; the paper's formula gives 0).
    pub propose_trivial: f32,
    /// Solver reward of an unparsable answer (default -1.0).
    pub solve_format_error: f32,
    /// Solver reward of a well-formed wrong answer (default -0.5).
    pub solve_wrong: f32,
}

impl Default for RewardsSection {
    fn default() -> Self {
        Self {
            propose_invalid: -1.0,
            propose_trivial: -0.5,
            solve_format_error: -1.0,
            solve_wrong: -0.5,
        }
    }
}

/// `[templates]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TemplatesSection {
    /// A built-in template set (`"compact"` for the tiny model, `"azr"` for the paper's prompts)
    /// or a path to a template TOML file (default `"compact"`).
    pub name: String,
}

impl Default for TemplatesSection {
    fn default() -> Self {
        Self {
            name: "compact".to_string(),
        }
    }
}

/// `[evaluator]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvaluatorSection {
    /// Benchmarks to score: `cruxeval-o`, `cruxeval-i`, `heldout-deduction`, `heldout-abduction`,
    /// `heldout-induction`, `math500`, `aime24`, `aime25`, `amc23`, `minerva`, `olympiadbench`,
    /// `gsm8k` (default `["heldout-deduction", "heldout-abduction", "heldout-induction"]`).
    pub benchmarks: Vec<String>,
    /// Items per benchmark; 0 = all (default 32).
    pub limit: usize,
    /// Evaluate every N learner steps; 0 = never during training (default 10).
    pub every: u64,
    /// Decoding temperature; 0 = greedy (default 0).
    pub temperature: f64,
    /// Samples per item (avg@k; default 1).
    pub samples: usize,
    /// Longest answer in tokens (default 96).
    pub max_new_tokens: usize,
}

impl Default for EvaluatorSection {
    fn default() -> Self {
        Self {
            benchmarks: vec![
                "heldout-deduction".to_string(),
                "heldout-abduction".to_string(),
                "heldout-induction".to_string(),
            ],
            limit: 32,
            every: 10,
            temperature: 0.0,
            samples: 1,
            max_new_tokens: 96,
        }
    }
}

/// `[metrics]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSection {
    /// Serve `/metrics` (default true).
    pub enabled: bool,
    /// Listen address (default `127.0.0.1:9464`, loopback only).
    pub addr: String,
}

impl Default for MetricsSection {
    fn default() -> Self {
        Self {
            enabled: true,
            addr: "127.0.0.1:9464".to_string(),
        }
    }
}

/// `[faults]`: fault injection for the supervision tests. Never set these in real runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FaultsSection {
    /// Name of a worker actor (`proposer`, `solver`, `executor`, `estimator`, `reward`) that
    /// panics while handling its first request of step `panic_at_step` (default none).
    pub panic_actor: Option<String>,
    /// The step at which `panic_actor` panics once (default 1).
    pub panic_at_step: Option<u64>,
}

// ---------------------------------------------------------------------------------------------
// Stage 2: validated config
// ---------------------------------------------------------------------------------------------

/// A validated configuration: every value in range and consistent. Built only by
/// [`Config::from_toml_str`] / [`Config::load`].
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The checked file contents (also written to `run_dir/config.toml`).
    pub raw: RawConfig,
    /// `metrics.addr`, parsed.
    pub metrics_addr: Option<SocketAddr>,
}

/// Names of the worker actors that fault injection may target.
pub const WORKER_NAMES: [&str; 5] = ["proposer", "solver", "executor", "estimator", "reward"];

impl Config {
    /// The embedded CPU default.
    pub fn embedded_default() -> Result<Self, ConfigError> {
        Self::from_toml_str(DEFAULT_TOML, "<embedded default>")
    }

    /// Read and validate a TOML file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml_str(&text, &path.display().to_string())
    }

    /// Parse and validate TOML text; `origin` names it in errors.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            origin: origin.to_string(),
            message: e.to_string(),
        })?;
        Self::validate(raw)
    }

    /// Check a raw config (after command-line overrides were applied to it).
    pub fn validate(raw: RawConfig) -> Result<Self, ConfigError> {
        let err = ConfigError::invalid;
        let r = &raw.run;
        if r.learner_queue == 0 {
            return Err(err("run.learner_queue", "must be >= 1"));
        }
        if r.inference_queue == 0 {
            return Err(err("run.inference_queue", "must be >= 1"));
        }
        if r.staleness > 8 {
            return Err(err("run.staleness", "must be <= 8 (0 = on-policy)"));
        }
        if r.request_timeout_s == 0 {
            return Err(err("run.request_timeout_s", "must be > 0"));
        }
        if r.run_dir.as_os_str().is_empty() {
            return Err(err("run.run_dir", "must not be empty"));
        }

        let m = &raw.model;
        if m.path.as_os_str().is_empty() {
            return Err(err("model.path", "must not be empty"));
        }
        let device_ok = m.device == "cpu"
            || m
                .device
                .strip_prefix("cuda:")
                .is_some_and(|n| n.parse::<usize>().is_ok());
        if !device_ok {
            return Err(err(
                "model.device",
                format!("`{}`: expected \"cpu\" or \"cuda:N\"", m.device),
            ));
        }
        if !["f32", "bf16", "f16"].contains(&m.dtype.as_str()) {
            return Err(err(
                "model.dtype",
                format!("`{}`: expected \"f32\", \"bf16\" or \"f16\"", m.dtype),
            ));
        }
        if m.device == "cpu" && m.dtype != "f32" {
            return Err(err("model.dtype", "only \"f32\" is supported on the cpu device"));
        }

        let s = &raw.sampling;
        if !(s.temperature > 0.0 && s.temperature.is_finite()) {
            return Err(err(
                "sampling.temperature",
                "must be > 0 (training rollouts sample)",
            ));
        }
        if !(s.top_p > 0.0 && s.top_p <= 1.0) {
            return Err(err("sampling.top_p", "must be in (0, 1]"));
        }
        if s.max_new_tokens == 0 {
            return Err(err("sampling.max_new_tokens", "must be >= 1"));
        }

        let sp = &raw.selfplay;
        if sp.mode == Mode::Azr {
            if sp.task_kinds.is_empty() {
                return Err(err("selfplay.task_kinds", "must name at least one task kind"));
            }
            if sp.task_kinds.contains(&TaskKind::Math) {
                return Err(err(
                    "selfplay.task_kinds",
                    "`math` has no proposer; use selfplay.mode = \"rlvr\"",
                ));
            }
            let mut seen = sp.task_kinds.clone();
            seen.sort();
            seen.dedup();
            if seen.len() != sp.task_kinds.len() {
                return Err(err("selfplay.task_kinds", "lists a task kind twice"));
            }
            if sp.solve_batch == 0 {
                return Err(err("selfplay.solve_batch", "must be >= 1"));
            }
            if sp.train_propose && sp.propose_batch == 0 {
                return Err(err(
                    "selfplay.propose_batch",
                    "must be >= 1 when selfplay.train_propose = true",
                ));
            }
            if sp.mc_samples < 2 {
                return Err(err(
                    "selfplay.mc_samples",
                    "must be >= 2 (the learnability reward needs a solve rate)",
                ));
            }
            if sp.buffer_cap < sp.solve_batch.max(sp.k_refs).max(1) {
                return Err(err(
                    "selfplay.buffer_cap",
                    "must be >= max(selfplay.solve_batch, selfplay.k_refs)",
                ));
            }
        } else {
            let rl = &raw.rlvr;
            if rl.batch == 0 {
                return Err(err("rlvr.batch", "must be >= 1"));
            }
            if rl.samples_per_prompt < 2 {
                return Err(err(
                    "rlvr.samples_per_prompt",
                    "must be >= 2 (group-relative advantages need a group)",
                ));
            }
            if rl.dataset.as_os_str().is_empty() {
                return Err(err("rlvr.dataset", "must not be empty"));
            }
        }

        let e = &raw.executor;
        if e.workers == 0 {
            return Err(err("executor.workers", "must be >= 1"));
        }
        if e.timeout_ms == 0 {
            return Err(err("executor.timeout_ms", "must be > 0"));
        }
        if e.memory_mb < 16 {
            return Err(err("executor.memory_mb", "must be >= 16"));
        }

        let l = &raw.learner;
        if !(l.lr > 0.0 && l.lr.is_finite()) {
            return Err(err("learner.lr", "must be > 0"));
        }
        if !(0.0..1.0).contains(&l.beta1) {
            return Err(err("learner.beta1", "must be in [0, 1)"));
        }
        if !(0.0..1.0).contains(&l.beta2) {
            return Err(err("learner.beta2", "must be in [0, 1)"));
        }
        if l.eps <= 0.0 {
            return Err(err("learner.eps", "must be > 0"));
        }
        if l.weight_decay < 0.0 {
            return Err(err("learner.weight_decay", "must be >= 0"));
        }
        if l.grad_clip < 0.0 {
            return Err(err("learner.grad_clip", "must be >= 0 (0 = off)"));
        }
        if !(l.clip_low > 0.0 && l.clip_low < 1.0) {
            return Err(err("learner.clip_low", "must be in (0, 1)"));
        }
        if l.clip_high <= 0.0 {
            return Err(err("learner.clip_high", "must be > 0"));
        }
        if l.entropy_coef < 0.0 {
            return Err(err("learner.entropy_coef", "must be >= 0"));
        }
        if l.kl_coef < 0.0 {
            return Err(err("learner.kl_coef", "must be >= 0"));
        }
        if !["k1", "k2", "k3"].contains(&l.kl_estimator.as_str()) {
            return Err(err("learner.kl_estimator", "expected \"k1\", \"k2\" or \"k3\""));
        }
        if !["trr++", "grpo", "rloo"].contains(&l.advantage.as_str()) {
            return Err(err(
                "learner.advantage",
                "expected \"trr++\", \"grpo\" or \"rloo\"",
            ));
        }
        if !["token-mean", "seq-mean-token-mean", "seq-mean-token-sum"]
            .contains(&l.loss_agg.as_str())
        {
            return Err(err(
                "learner.loss_agg",
                "expected \"token-mean\", \"seq-mean-token-mean\" or \"seq-mean-token-sum\"",
            ));
        }
        if l.micro_batch == 0 {
            return Err(err("learner.micro_batch", "must be >= 1"));
        }
        if l.mini_batches == 0 {
            return Err(err("learner.mini_batches", "must be >= 1"));
        }

        if raw.templates.name.is_empty() {
            return Err(err("templates.name", "must not be empty"));
        }

        let ev = &raw.evaluator;
        if ev.every > 0 && ev.benchmarks.is_empty() {
            return Err(err(
                "evaluator.benchmarks",
                "must name a benchmark when evaluator.every > 0",
            ));
        }
        if ev.samples == 0 {
            return Err(err("evaluator.samples", "must be >= 1"));
        }
        if ev.temperature < 0.0 {
            return Err(err("evaluator.temperature", "must be >= 0 (0 = greedy)"));
        }
        if ev.max_new_tokens == 0 {
            return Err(err("evaluator.max_new_tokens", "must be >= 1"));
        }

        let metrics_addr = if raw.metrics.enabled {
            let addr: SocketAddr = raw.metrics.addr.parse().map_err(|_| {
                err(
                    "metrics.addr",
                    format!("`{}` is not an address like 127.0.0.1:9464", raw.metrics.addr),
                )
            })?;
            Some(addr)
        } else {
            None
        };

        let f = &raw.faults;
        if let Some(actor) = &f.panic_actor {
            if !WORKER_NAMES.contains(&actor.as_str()) {
                return Err(err(
                    "faults.panic_actor",
                    format!("`{actor}`: expected one of {}", WORKER_NAMES.join(", ")),
                ));
            }
        } else if f.panic_at_step.is_some() {
            return Err(err(
                "faults.panic_at_step",
                "set faults.panic_actor as well",
            ));
        }

        Ok(Config { raw, metrics_addr })
    }

    /// The run directory.
    pub fn run_dir(&self) -> &Path {
        &self.raw.run.run_dir
    }

    /// The config as TOML text (written next to checkpoints).
    pub fn to_toml(&self) -> String {
        // Serializing plain structs of strings/numbers/vecs cannot fail.
        toml::to_string_pretty(&self.raw).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_is_valid() {
        let cfg = Config::embedded_default().unwrap();
        assert_eq!(cfg.raw.run.staleness, 1);
        assert_eq!(cfg.raw.model.device, "cpu");
    }

    #[test]
    fn empty_file_gives_documented_defaults() {
        let cfg = Config::from_toml_str("", "t").unwrap();
        assert_eq!(cfg.raw, RawConfig::default());
        assert_eq!(cfg.metrics_addr, Some("127.0.0.1:9464".parse().unwrap()));
    }

    #[test]
    fn unknown_key_names_the_key() {
        let e = Config::from_toml_str("[learner]\nlrr = 1.0\n", "t").unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("lrr"), "{msg}");
    }

    #[test]
    fn bad_value_names_the_key() {
        let e = Config::from_toml_str("[learner]\nlr = -1.0\n", "t").unwrap_err();
        assert_eq!(e.to_string(), "config key `learner.lr`: must be > 0");
        let e = Config::from_toml_str("[model]\ndevice = \"tpu\"\n", "t").unwrap_err();
        assert!(e.to_string().starts_with("config key `model.device`"));
        let e = Config::from_toml_str("[metrics]\naddr = \"nope\"\n", "t").unwrap_err();
        assert!(e.to_string().starts_with("config key `metrics.addr`"));
    }

    #[test]
    fn cross_field_rules() {
        let e = Config::from_toml_str("[selfplay]\ntask_kinds = [\"math\"]\n", "t").unwrap_err();
        assert!(e.to_string().contains("selfplay.task_kinds"));
        let e = Config::from_toml_str("[faults]\npanic_at_step = 2\n", "t").unwrap_err();
        assert!(e.to_string().contains("faults.panic_at_step"));
        let e = Config::from_toml_str("[selfplay]\nbuffer_cap = 2\nsolve_batch = 4\n", "t")
            .unwrap_err();
        assert!(e.to_string().contains("selfplay.buffer_cap"));
        let e = Config::from_toml_str("[model]\ndtype = \"bf16\"\n", "t").unwrap_err();
        assert!(e.to_string().contains("model.dtype"));
    }
}
