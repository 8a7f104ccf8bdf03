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

use azr_core::eval::ArcPrompt;
use azr_core::executor::ExecutorConfig;
use azr_core::rl::learner::LearnerConfig;
use azr_core::tasks::TasksConfig;
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
    /// `[engine]`: the continuous-batching rollout engine every actor generates through
    /// (`azr_core::engine::EngineConfig`: `max_slots` 32, `weight_sync` `"in_flight"`,
    /// `max_waiting` 4096, `max_seq_len` 0 = the model's context).
    pub engine: azr_core::engine::EngineConfig,
    /// `[executor]`: the sandboxed Python executor.
    pub executor: ExecutorConfig,
    /// `[tasks]`: templates, reference counts, induction sizes, rewards, buffers
    /// (`azr_core::tasks::TasksConfig`).
    pub tasks: TasksConfig,
    /// `[learner]`: advantage estimator, loss, optimizer, schedule
    /// (`azr_core::rl::learner::LearnerConfig`).
    pub learner: LearnerConfig,
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
    /// Besides the two newest checkpoints, keep every one whose step is a multiple of N, e.g.
    /// to score a run at several steps afterwards; 0 = keep only the two newest (default 0).
    /// Must be a multiple of `checkpoint_every`.
    pub keep_every: u64,
    /// Maximum staleness S: no generation starts that would be more than S policy versions old
    /// when trained on (admission: `admitted + 1 <= (S + version + 1) x batch` per task x role
    /// key). 0 = strictly on-policy; 1 = the rollouts of step t+1 are generated while the
    /// learner updates on step t (default 1).
    pub staleness: u64,
    /// Capacity of the reward -> learner channel (`rollouts`), in scored prompt groups
    /// (default 2). A full channel suspends the reward actor and, through it, every producer
    /// upstream.
    pub learner_queue: usize,
    /// Capacity of every other bounded channel between actors (`propose_jobs`, `solve_jobs`,
    /// `proposals`, `estimates`, `answers`), in items (default 64).
    pub channel_capacity: usize,
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
            keep_every: 0,
            staleness: 1,
            learner_queue: 2,
            channel_capacity: 64,
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
    /// Train the proposer role too; false = the paper's "solver only" ablation (default true).
    pub train_propose: bool,
    /// Also train the solver on the Monte Carlo estimator's samples of each valid proposal (they
    /// are generated anyway for the learnability reward): `mc_samples` more solve rollouts per
    /// valid proposal, graded like the solver's (default false).
    pub train_estimator_samples: bool,
    /// Share of solver tasks drawn from a replay pool of tasks from the training side of the
    /// tiny model's pretraining corpus instead of the task buffers, to keep the solver's reward
    /// on the base model's own distribution (0 = off, as AZR; default 0). Needs the code kinds
    /// (deduction, abduction, induction).
    pub replay_fraction: f64,
    /// Replay pool size per task kind, drawn at start from a seed derived from `run.seed`
    /// (default 256).
    pub replay_pool: usize,
}

impl Default for SelfPlaySection {
    fn default() -> Self {
        Self {
            mode: Mode::Azr,
            task_kinds: TaskKind::CODE.to_vec(),
            propose_batch: 4,
            solve_batch: 4,
            train_propose: true,
            train_estimator_samples: false,
            replay_fraction: 0.0,
            replay_pool: 256,
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

/// `[evaluator]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvaluatorSection {
    /// Benchmarks to score: `cruxeval-o`, `cruxeval-i`, `humaneval`, `heldout-deduction`,
    /// `heldout-abduction`, `heldout-induction`, `math500`, `aime24`, `aime25`, `amc23`,
    /// `minerva`, `olympiadbench`, `gsm8k`, `arc-easy`, `arc-challenge`, or the path of a
    /// `.jsonl` file of math problems in the 1-shot RLVR row layout (`prompt`,
    /// `reward_model.ground_truth`, `extra_info.index`), named by its file stem (default
    /// `["heldout-deduction", "heldout-abduction", "heldout-induction"]`).
    pub benchmarks: Vec<String>,
    /// Items per benchmark; 0 = all (default 32).
    pub limit: usize,
    /// Evaluate every N learner steps; 0 = never during training (default 10).
    pub every: u64,
    /// Also score the starting weights (version 0) when a run starts from step 0 (default
    /// false).
    pub at_start: bool,
    /// The 1-shot RLVR paper's decoding: `aime24`, `aime25` and `amc23` avg@8 at temperature
    /// 0.6 whatever `temperature` and `samples` say; the other sets use them (default false).
    pub paper_protocol: bool,
    /// Decoding temperature; 0 = greedy (default 0).
    pub temperature: f64,
    /// Samples per item (avg@k; default 1).
    pub samples: usize,
    /// Longest answer in tokens (default 96).
    pub max_new_tokens: usize,
    /// Folder of the math benchmark files (`math500.jsonl`, ...), read for the math sets
    /// (default `../shared/data/math`).
    pub math_dir: PathBuf,
    /// Folder of `ARC-Easy-test.jsonl` and `ARC-Challenge-test.jsonl`, read for the `arc-easy`
    /// and `arc-challenge` benchmarks (default `../shared/data/arc`).
    pub arc_dir: PathBuf,
    /// `[evaluator.arc]`: the ARC prompt (`azr_core::eval::ArcPrompt`: `template` with
    /// `{question}` and `{choices}`, option line `choice` with `{label}` and `{text}`, `stop`
    /// strings; default `"Question: {question}\n{choices}\nAnswer:"`, `"{label}. {text}"`,
    /// `["\nQuestion:", "<|im_end|>", "<|endoftext|>"]`).
    pub arc: ArcPrompt,
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
            at_start: false,
            paper_protocol: false,
            temperature: 0.0,
            samples: 1,
            max_new_tokens: 96,
            math_dir: PathBuf::from(azr_core::data::math::DEFAULT_DIR),
            arc_dir: PathBuf::from(azr_core::data::arc::DEFAULT_DIR),
            arc: ArcPrompt::default(),
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
    /// Name of an actor (one of `azr_core::metrics::ACTORS`: `proposer`, `solver`, `executor`,
    /// `estimator`, `reward`, `evaluator`) that panics while handling its first work item of
    /// step `panic_at_step` (default none). The stateful `task_store` and `learner` end the run
    /// when they fail.
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

/// Set one dotted key of `table` from `key=value` (see [`Config::load_with_overrides`]).
fn apply_override(table: &mut toml::Table, spec: &str) -> Result<(), ConfigError> {
    let bad = |message: &str| ConfigError::invalid(&format!("--set {spec}"), message);
    let (key, value) = spec
        .split_once('=')
        .ok_or_else(|| bad("expected KEY=VALUE, e.g. learner.optimizer.lr=5e-5"))?;
    let path: Vec<&str> = key.trim().split('.').map(str::trim).collect();
    if path.iter().any(|p| p.is_empty()) {
        return Err(bad("empty key segment"));
    }
    let value = value.trim();
    let parsed = match toml::from_str::<toml::Table>(&format!("v = {value}")) {
        Ok(mut t) => t.remove("v").ok_or_else(|| bad("no value"))?,
        Err(_) => toml::Value::String(value.to_string()),
    };
    let (last, parents) = path.split_last().ok_or_else(|| bad("empty key"))?;
    let mut cur = table;
    for (i, seg) in parents.iter().enumerate() {
        let entry = cur
            .entry(seg.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cur = match entry {
            toml::Value::Table(t) => t,
            _ => {
                return Err(bad(&format!(
                    "`{}` is a value, not a section",
                    path[..=i].join(".")
                )))
            }
        };
    }
    cur.insert(last.to_string(), parsed);
    Ok(())
}

/// The raw config of TOML `text` with `defaults` filled in where absent and `overrides` applied
/// (see [`Config::load_raw`]).
fn raw_from_str(
    text: &str,
    origin: &str,
    defaults: &[(&str, &str)],
    overrides: &[String],
) -> Result<RawConfig, ConfigError> {
    let parse_err = |origin: String, e: toml::de::Error| ConfigError::Parse {
        origin,
        message: e.to_string(),
    };
    // Straight to the typed schema first: its errors show the line of a bad key in the file.
    let raw: RawConfig = toml::from_str(text).map_err(|e| parse_err(origin.to_string(), e))?;
    if defaults.is_empty() && overrides.is_empty() {
        return Ok(raw);
    }
    let mut table: toml::Table =
        toml::from_str(text).map_err(|e| parse_err(origin.to_string(), e))?;
    for (key, value) in defaults {
        if !has_key(&table, key) {
            apply_override(&mut table, &format!("{key}={value}"))?;
        }
    }
    for o in overrides {
        apply_override(&mut table, o)?;
    }
    let with = if overrides.is_empty() {
        origin.to_string()
    } else {
        format!("{origin} with --set {}", overrides.join(" --set "))
    };
    toml::Value::Table(table)
        .try_into()
        .map_err(|e: toml::de::Error| parse_err(with, e))
}

/// Whether the dotted `key` is set in `table`.
fn has_key(table: &toml::Table, key: &str) -> bool {
    let mut cur = table;
    let path: Vec<&str> = key.split('.').collect();
    for (i, seg) in path.iter().enumerate() {
        match cur.get(*seg) {
            None => return false,
            Some(_) if i + 1 == path.len() => return true,
            Some(toml::Value::Table(t)) => cur = t,
            Some(_) => return false,
        }
    }
    false
}

/// Names of the actors fault injection may target: the one actor list of the metric catalogue.
pub const WORKER_NAMES: [&str; 8] = azr_core::metrics::ACTORS;

impl Config {
    /// The embedded CPU default.
    pub fn embedded_default() -> Result<Self, ConfigError> {
        Self::from_toml_str(DEFAULT_TOML, "<embedded default>")
    }

    /// Read and validate a TOML file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::load_with_overrides(Some(path), &[])
    }

    /// Read a TOML file (`None`: the embedded default), apply `--set` overrides, validate.
    /// An override value is read as TOML (`5e-5`, `true`, `[1, 2]`, `"text"`); a bare word
    /// that is not valid TOML is taken as a string (`--set model.device=cuda:0`).
    pub fn load_with_overrides(
        path: Option<&Path>,
        overrides: &[String],
    ) -> Result<Self, ConfigError> {
        Self::validate(Self::load_raw(path, &[], overrides)?)
    }

    /// Read a TOML file (`None`: the embedded default) into the raw schema: `defaults`
    /// (`("run.staleness", "0")`, a preset such as `azr rlvr`'s) fill the keys the file does not
    /// set, then the `--set` overrides apply. Not validated yet (the caller may still change
    /// it; then [`Config::validate`]).
    pub fn load_raw(
        path: Option<&Path>,
        defaults: &[(&str, &str)],
        overrides: &[String],
    ) -> Result<RawConfig, ConfigError> {
        match path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                })?;
                raw_from_str(&text, &path.display().to_string(), defaults, overrides)
            }
            None => raw_from_str(DEFAULT_TOML, "<embedded default>", defaults, overrides),
        }
    }

    /// Parse TOML text, apply `section.key=value` overrides (`azr run --set`), then validate
    /// (what [`Config::load_with_overrides`] does with a file; for configs embedded in a
    /// program, such as `examples/custom-task/`).
    pub fn from_toml_str_with_overrides(
        text: &str,
        origin: &str,
        overrides: &[String],
    ) -> Result<Self, ConfigError> {
        Self::validate(raw_from_str(text, origin, &[], overrides)?)
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
        fn err(key: &str, message: impl Into<String>) -> ConfigError {
            ConfigError::invalid(key, message)
        }
        let r = &raw.run;
        if r.learner_queue == 0 {
            return Err(err("run.learner_queue", "must be >= 1"));
        }
        let en = &raw.engine;
        if en.max_slots == 0 {
            return Err(err("engine.max_slots", "must be >= 1"));
        }
        if en.max_waiting == 0 {
            return Err(err("engine.max_waiting", "must be >= 1"));
        }
        if r.channel_capacity == 0 {
            return Err(err("run.channel_capacity", "must be >= 1"));
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
        if r.keep_every > 0 && (r.checkpoint_every == 0 || r.keep_every % r.checkpoint_every != 0) {
            return Err(err(
                "run.keep_every",
                format!(
                    "{} is not a multiple of run.checkpoint_every ({}): no checkpoint would be kept",
                    r.keep_every, r.checkpoint_every
                ),
            ));
        }

        let m = &raw.model;
        if m.path.as_os_str().is_empty() {
            return Err(err("model.path", "must not be empty"));
        }
        let device_ok = m.device == "cpu"
            || m.device
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
            return Err(err(
                "model.dtype",
                "only \"f32\" is supported on the cpu device",
            ));
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

        let cp = raw.tasks.rewards.control_p;
        if !(0.0..=1.0).contains(&cp) {
            return Err(err("tasks.rewards.control_p", "must be in [0, 1]"));
        }
        let sp = &raw.selfplay;
        if sp.mode == Mode::Azr {
            if sp.task_kinds.is_empty() {
                return Err(err(
                    "selfplay.task_kinds",
                    "must name at least one task kind",
                ));
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
            if !(0.0..=1.0).contains(&sp.replay_fraction) {
                return Err(err("selfplay.replay_fraction", "must be in [0, 1]"));
            }
            if sp.replay_fraction > 0.0 {
                if sp.replay_pool == 0 {
                    return Err(err(
                        "selfplay.replay_pool",
                        "must be >= 1 when selfplay.replay_fraction > 0",
                    ));
                }
                if let Some(k) = sp.task_kinds.iter().find(|k| !TaskKind::CODE.contains(k)) {
                    return Err(err(
                        "selfplay.replay_fraction",
                        format!(
                            "replays the pretraining corpus, which has no `{k}` tasks \
                             (only deduction, abduction and induction)"
                        ),
                    ));
                }
            }
            if sp.train_propose && sp.propose_batch == 0 {
                return Err(err(
                    "selfplay.propose_batch",
                    "must be >= 1 when selfplay.train_propose = true",
                ));
            }
            if raw.tasks.rewards.mc_samples < 2 {
                return Err(err(
                    "tasks.rewards.mc_samples",
                    "must be >= 2 (the learnability reward needs a solve rate)",
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

        raw.tasks.validate().map_err(|e| match e {
            azr_core::tasks::config::ConfigError::Invalid { key, reason } => {
                err(&format!("tasks.{key}"), reason)
            }
        })?;
        // Each learner sub-section is checked on its own so the error names the full key.
        let rl_err = |section: &str, e: azr_core::rl::RlError| match e {
            azr_core::rl::RlError::Config { key, reason } => {
                err(&format!("{section}.{key}"), reason)
            }
            other => err(section, other.to_string()),
        };
        let l = &raw.learner;
        l.optimizer
            .validate()
            .map_err(|e| rl_err("learner.optimizer", e))?;
        if l.optimizer.lr <= 0.0 {
            return Err(err("learner.optimizer.lr", "must be > 0"));
        }
        l.loss.validate().map_err(|e| rl_err("learner.loss", e))?;
        l.schedule
            .validate()
            .map_err(|e| rl_err("learner.schedule", e))?;
        l.validate().map_err(|e| rl_err("learner", e))?;

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
        if let Err(e) = ev.arc.validate() {
            return Err(err("evaluator.arc", e.to_string()));
        }

        let metrics_addr = if raw.metrics.enabled {
            let addr: SocketAddr = raw.metrics.addr.parse().map_err(|_| {
                err(
                    "metrics.addr",
                    format!(
                        "`{}` is not an address like 127.0.0.1:9464",
                        raw.metrics.addr
                    ),
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
    fn set_overrides_any_key_and_names_bad_ones() {
        let sets = [
            "learner.optimizer.lr=5e-5".to_string(),
            "selfplay.solve_batch = 32".to_string(),
            "model.device=cpu".to_string(),
            "evaluator.benchmarks=[\"heldout-deduction\"]".to_string(),
        ];
        let cfg = Config::load_with_overrides(None, &sets).unwrap();
        assert_eq!(cfg.raw.learner.optimizer.lr, 5e-5);
        assert_eq!(cfg.raw.selfplay.solve_batch, 32);
        assert_eq!(cfg.raw.evaluator.benchmarks, vec!["heldout-deduction"]);
        // Untouched keys keep the file's values.
        assert_eq!(cfg.raw.run.staleness, 1);

        let err = |s: &str| {
            Config::load_with_overrides(None, &[s.to_string()])
                .unwrap_err()
                .to_string()
        };
        assert!(err("selfplay.solve_batchh=3").contains("solve_batchh"));
        assert!(err("learner.optimizer.lr").contains("KEY=VALUE"));
        assert!(err("run.seed.x=1").contains("`run.seed` is a value"));
        assert!(err("selfplay.solve_batch=0").contains("selfplay.solve_batch"));
        assert!(err("selfplay.solve_batch=many").contains("solve_batch"));
        assert!(err("selfplay.replay_fraction=1.5").contains("selfplay.replay_fraction"));
        let two = |a: &str, b: &str| {
            Config::load_with_overrides(None, &[a.to_string(), b.to_string()])
                .map_err(|e| e.to_string())
        };
        let e = two("selfplay.replay_fraction=0.5", "selfplay.replay_pool=0").unwrap_err();
        assert!(e.contains("selfplay.replay_pool"), "{e}");
        let e = two(
            "selfplay.replay_fraction=0.5",
            "selfplay.task_kinds=[\"sum\"]",
        );
        assert!(e.unwrap_err().contains("no `sum` tasks"));
        // The pool size does not matter while replay is off.
        assert!(two("selfplay.replay_fraction=0", "selfplay.replay_pool=0").is_ok());
    }

    #[test]
    fn preset_defaults_fill_only_absent_keys() {
        let preset = [("run.staleness", "0"), ("selfplay.mode", "\"rlvr\"")];
        let raw = raw_from_str("[run]\nseed = 3\n", "t", &preset, &[]).unwrap();
        assert_eq!((raw.run.seed, raw.run.staleness), (3, 0));
        assert_eq!(raw.selfplay.mode, Mode::Rlvr);
        // The file and --set win over the preset.
        let raw = raw_from_str("[run]\nstaleness = 2\n", "t", &preset, &[]).unwrap();
        assert_eq!(raw.run.staleness, 2);
        let sets = ["run.staleness=1".to_string()];
        let raw = raw_from_str("", "t", &preset, &sets).unwrap();
        assert_eq!(raw.run.staleness, 1);
        // Unknown keys are named, in the file and in --set.
        let e = raw_from_str("[rlvr]\nexampels = [1]\n", "t", &preset, &[]).unwrap_err();
        assert!(e.to_string().contains("exampels"), "{e}");
        let sets = ["rlvr.exampels=[1]".to_string()];
        let e = raw_from_str("", "t", &preset, &sets).unwrap_err();
        assert!(e.to_string().contains("exampels"), "{e}");
    }

    #[test]
    fn every_shipped_experiment_config_is_valid() {
        let mut n = 0;
        for entry in std::fs::read_dir("../config").unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            // The pretraining configs (`azr pretrain`, `*-pretrain.toml`) have their own schema,
            // checked by their tests.
            let own_schema = name.ends_with("-pretrain.toml");
            if path.extension().is_some_and(|e| e == "toml") && !own_schema {
                Config::load(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
                n += 1;
            }
        }
        assert!(n >= 5, "found {n} configs");
        for f in ["one-shot-rlvr.toml", "one-shot-tiny.toml"] {
            let c = Config::load(&Path::new("../config").join(f)).unwrap();
            assert_eq!(c.raw.selfplay.mode, Mode::Rlvr, "{f}");
            assert_eq!(c.raw.run.staleness, 0, "{f}");
            assert_eq!(c.raw.learner.loss.kl_coef, 0.001, "{f}");
            assert_eq!(c.raw.learner.loss.entropy_coeff, 0.001, "{f}");
            assert!(c.raw.evaluator.at_start, "{f}");
        }
        // Their template sets build the math task type (paths are relative to the project root).
        for f in ["one-shot-rlvr.toml", "one-shot-tiny.toml"] {
            let c = Config::load(&Path::new("../config").join(f)).unwrap();
            let t = &c.raw.tasks.templates;
            let t = if t.ends_with(".toml") {
                format!("../{t}")
            } else {
                t.clone()
            };
            let set = std::sync::Arc::new(azr_core::tasks::TemplateSet::resolve(&t).unwrap());
            azr_core::tasks::math::Math::new(set).unwrap_or_else(|e| panic!("{f}: {e}"));
        }
        let rlvr = Config::load(Path::new("../config/one-shot-rlvr.toml")).unwrap();
        assert_eq!(
            (rlvr.raw.rlvr.batch, rlvr.raw.rlvr.samples_per_prompt),
            (128, 8)
        );
        assert_eq!(rlvr.raw.rlvr.examples, vec![124]);
        assert_eq!(rlvr.raw.learner.optimizer.lr, 1e-6);
        assert_eq!(rlvr.raw.sampling.temperature, 0.6);
        let q = Config::load(Path::new("../config/qwen2.5-7b.toml")).unwrap();
        assert_eq!(
            (q.raw.selfplay.propose_batch, q.raw.tasks.rewards.mc_samples),
            (64, 8)
        );
        assert_eq!(q.raw.learner.optimizer.lr, 1e-6);
    }

    #[test]
    fn chain_config_is_the_default_with_another_model_and_run_dir() {
        let default = Config::load(Path::new("../config/default.toml")).unwrap();
        let mut chain = Config::load(Path::new("../config/chain.toml")).unwrap();
        assert_eq!(chain.raw.model.path, Path::new("assets/chain-base"));
        assert_eq!(chain.raw.run.run_dir, Path::new("runs/chain"));
        chain.raw.model.path = default.raw.model.path.clone();
        chain.raw.run.run_dir = default.raw.run.run_dir.clone();
        assert_eq!(chain.raw, default.raw);
        // The half-held-out base: its run config names the base's own split.
        let mut half = Config::load(Path::new("../config/chain-half.toml")).unwrap();
        assert_eq!(half.raw.model.path, Path::new("assets/chain-half-base"));
        assert_eq!(half.raw.run.run_dir, Path::new("runs/chain-half"));
        assert_eq!(half.raw.tasks.chain_unseen, 0.5);
        let pretrain: toml::Table = std::fs::read_to_string("../config/chain-half-pretrain.toml")
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(pretrain["corpus"]["chain_unseen"].as_float(), Some(0.5));
        half.raw.model.path = default.raw.model.path.clone();
        half.raw.run.run_dir = default.raw.run.run_dir.clone();
        half.raw.tasks.chain_unseen = default.raw.tasks.chain_unseen;
        assert_eq!(half.raw, default.raw);
    }

    #[test]
    fn a_chain_split_the_corpus_cannot_have_names_the_key() {
        let e = Config::from_toml_str("[tasks]\nchain_unseen = 0.3\n", "t").unwrap_err();
        assert!(e.to_string().contains("tasks.chain_unseen"), "{e}");
    }

    #[test]
    fn empty_file_gives_documented_defaults() {
        let cfg = Config::from_toml_str("", "t").unwrap();
        assert_eq!(cfg.raw, RawConfig::default());
        assert_eq!(cfg.metrics_addr, Some("127.0.0.1:9464".parse().unwrap()));
    }

    #[test]
    fn unknown_key_names_the_key() {
        let e = Config::from_toml_str("[learner.optimizer]\nlrr = 1.0\n", "t").unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("lrr"), "{msg}");
    }

    #[test]
    fn bad_value_names_the_key() {
        let e = Config::from_toml_str("[learner.optimizer]\nlr = 0.0\n", "t").unwrap_err();
        assert_eq!(
            e.to_string(),
            "config key `learner.optimizer.lr`: must be > 0"
        );
        let e = Config::from_toml_str("[learner.optimizer]\nbeta1 = 1.5\n", "t").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("config key `learner.optimizer.beta1`"),
            "{e}"
        );
        let e = Config::from_toml_str("[learner]\nppo_epochs = 0\n", "t").unwrap_err();
        assert!(
            e.to_string().starts_with("config key `learner.ppo_epochs`"),
            "{e}"
        );
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
        let e = Config::from_toml_str("[tasks.rewards]\nmc_samples = 1\n", "t").unwrap_err();
        assert!(e.to_string().contains("tasks.rewards.mc_samples"), "{e}");
        let e = Config::from_toml_str("[model]\ndtype = \"bf16\"\n", "t").unwrap_err();
        assert!(e.to_string().contains("model.dtype"));
        // keep_every must land on checkpoint steps.
        let e = Config::from_toml_str("[run]\nkeep_every = 25\n", "t").unwrap_err();
        assert!(e.to_string().contains("run.keep_every"), "{e}");
        let e = Config::from_toml_str("[run]\ncheckpoint_every = 0\nkeep_every = 10\n", "t")
            .unwrap_err();
        assert!(e.to_string().contains("run.keep_every"), "{e}");
        assert!(Config::from_toml_str("[run]\nkeep_every = 30\n", "t").is_ok());
    }
}
