//! The TOML file of `azr rlvr` (`config/one-shot-rlvr.toml`, `config/one-shot-tiny.toml`).
//!
//! Sections shared with `azr run` reuse its types: `[model]`, `[sampling]`, `[rlvr]`,
//! `[metrics]` ([`crate::config`]) and `[learner]` (`azr_core::rl::learner::LearnerConfig`).
//! `[run]`, `[prompt]` (`azr_core::eval::MathPrompt`) and `[eval]` are specific to this mode.
//!
//! Defaults are the paper's settings for Qwen2.5-Math-1.5B: 128 prompts x 8 samples at
//! temperature 0.6, 3072 response tokens, GRPO + KL k3 (0.001) + entropy bonus (0.001) + clip
//! 0.2, lr 1e-6 constant, 2000 steps, checkpoint and evaluation every 20 steps. A section given
//! in the file starts from that section type's own defaults (e.g. a `[learner]` table starts from
//! `LearnerConfig::default()`, the AZR settings), so the shipped configs spell out every key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use azr_core::data::MathSet;
use azr_core::eval::{ArcPrompt, EvalSettings, MathPrompt};
use azr_core::rl::learner::LearnerConfig;
use serde::{Deserialize, Serialize};

use crate::config::{MetricsSection, ModelSection, RlvrSection, SamplingSection};

/// `[run]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunSection {
    /// Seed of the shuffling and sampling streams (default 42).
    pub seed: u64,
    /// Steps to train (one learner update each); 0 = until stopped (default 2000, the paper's
    /// pi_1 run).
    pub max_steps: u64,
    /// Output directory: history, `train.jsonl`, `eval.jsonl`, checkpoints (default
    /// `runs/rlvr`).
    pub run_dir: PathBuf,
    /// Checkpoint every N steps; 0 = only at the end (default 20, the paper's `save_freq`).
    pub checkpoint_every: u64,
    /// Capacity of the generation request queue (default 4).
    pub inference_queue: usize,
}

impl Default for RunSection {
    fn default() -> Self {
        Self {
            seed: 42,
            max_steps: 2000,
            run_dir: PathBuf::from("runs/rlvr"),
            checkpoint_every: 20,
            inference_queue: 4,
        }
    }
}

/// `[eval]`: benchmarks scored on the side during training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvalSection {
    /// Evaluate every N steps (and at the end); 0 = never (default 20, the paper's
    /// `test_freq`).
    pub every: u64,
    /// Also evaluate the starting weights (default true).
    pub at_start: bool,
    /// Folder of the math benchmark files (default `../shared/data/math`).
    pub data_dir: PathBuf,
    /// Benchmarks, in order: the math sets `math500`, `aime24`, `aime25`, `amc23`, `minerva`,
    /// `olympiadbench`, `gsm8k`, and `arc-easy`, `arc-challenge` (default `["math500"]`, the
    /// paper's validation set during training).
    pub benchmarks: Vec<String>,
    /// Further held-out sets in the training-row layout (`prompt`, `reward_model.ground_truth`,
    /// `extra_info.index`), each named by its file stem (default none).
    pub files: Vec<PathBuf>,
    /// Use the paper's decoding per benchmark (AIME/AMC avg@8 at temperature 0.6, the rest
    /// greedy); false = `temperature` and `samples` for every set (default true).
    pub paper_protocol: bool,
    /// Temperature when `paper_protocol` is false (default 0 = greedy).
    pub temperature: f32,
    /// Samples per item (avg@k) when `paper_protocol` is false (default 1).
    pub samples: usize,
    /// Longest response (default 3072).
    pub max_new_tokens: usize,
    /// Items per benchmark; 0 = all (default 0).
    pub limit: usize,
    /// Sequences per generation call (default 16).
    pub batch_size: usize,
    /// Folder of the ARC files, for `arc-easy` / `arc-challenge` (default
    /// `../shared/data/arc`). ARC is decoded like a file set: `temperature` and `samples`.
    pub arc_dir: PathBuf,
    /// `[eval.arc]`: the ARC prompt (`azr_core::eval::ArcPrompt`; default the plain
    /// `Question: ... Answer:` format).
    pub arc: ArcPrompt,
}

impl Default for EvalSection {
    fn default() -> Self {
        Self {
            every: 20,
            at_start: true,
            data_dir: PathBuf::from(azr_core::data::math::DEFAULT_DIR),
            benchmarks: vec!["math500".to_string()],
            files: Vec::new(),
            paper_protocol: true,
            temperature: 0.0,
            samples: 1,
            max_new_tokens: 3072,
            limit: 0,
            batch_size: 16,
            arc_dir: PathBuf::from(azr_core::data::arc::DEFAULT_DIR),
            arc: ArcPrompt::default(),
        }
    }
}

impl EvalSection {
    /// Decoding settings of `set` (`None` = a file set).
    pub fn settings(&self, set: Option<MathSet>, seed: u64) -> EvalSettings {
        let base = match set {
            Some(s) if self.paper_protocol => EvalSettings::paper(s),
            _ => EvalSettings::sampled(self.samples, self.temperature, self.max_new_tokens),
        };
        EvalSettings {
            max_new_tokens: self.max_new_tokens,
            limit: self.limit,
            seed,
            batch_size: self.batch_size,
            ..base
        }
    }
}

/// The whole file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RlvrConfig {
    /// `[run]`.
    pub run: RunSection,
    /// `[model]`: weights directory, device, dtype.
    pub model: ModelSection,
    /// `[sampling]`: decoding of the training rollouts (default temperature 0.6, 3072 tokens).
    pub sampling: SamplingSection,
    /// `[rlvr]`: dataset, selected examples, batch (default 128), samples per prompt (default 8),
    /// history file.
    pub rlvr: RlvrSection,
    /// `[prompt]`: math prompt template and answer extraction.
    pub prompt: MathPrompt,
    /// `[learner]` (default `LearnerConfig::one_shot_rlvr()`).
    pub learner: LearnerConfig,
    /// `[eval]`.
    pub eval: EvalSection,
    /// `[metrics]`: the Prometheus exporter.
    pub metrics: MetricsSection,
}

impl Default for RlvrConfig {
    fn default() -> Self {
        Self {
            run: RunSection::default(),
            model: ModelSection::default(),
            sampling: SamplingSection {
                temperature: 0.6,
                max_new_tokens: 3072,
                ..SamplingSection::default()
            },
            rlvr: RlvrSection {
                batch: 128,
                samples_per_prompt: 8,
                ..RlvrSection::default()
            },
            prompt: MathPrompt::default(),
            learner: LearnerConfig::one_shot_rlvr(),
            eval: EvalSection::default(),
            metrics: MetricsSection::default(),
        }
    }
}

impl RlvrConfig {
    /// Parse and check TOML text; `origin` names it in errors.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Self> {
        let cfg: Self = toml::from_str(text).with_context(|| format!("config {origin}"))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Read and check a file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        Self::from_toml_str(&text, &path.display().to_string())
    }

    /// The math sets named in `eval.benchmarks` (ARC names are skipped: see
    /// `azr_core::eval::arc`).
    pub fn eval_sets(&self) -> Result<Vec<MathSet>> {
        self.eval
            .benchmarks
            .iter()
            .filter(|b| !azr_core::eval::arc::is_arc_benchmark(b))
            .map(|b| {
                b.parse::<MathSet>()
                    .map_err(|e| anyhow::anyhow!("config key `eval.benchmarks`: {e}"))
            })
            .collect()
    }

    /// The metrics listen address, when metrics are enabled.
    pub fn metrics_addr(&self) -> Result<Option<SocketAddr>> {
        if !self.metrics.enabled {
            return Ok(None);
        }
        let addr = self
            .metrics
            .addr
            .parse()
            .with_context(|| format!("config key `metrics.addr`: `{}`", self.metrics.addr))?;
        Ok(Some(addr))
    }

    /// Checks every value; the error names the key.
    pub fn validate(&self) -> Result<()> {
        fn bad(key: &str, msg: &str) -> Result<()> {
            bail!("config key `{key}`: {msg}")
        }
        if self.rlvr.batch == 0 {
            return bad("rlvr.batch", "must be >= 1");
        }
        if self.rlvr.samples_per_prompt < 2 {
            return bad(
                "rlvr.samples_per_prompt",
                "must be >= 2 (group-relative advantages need a group)",
            );
        }
        if !(self.sampling.temperature > 0.0 && self.sampling.temperature.is_finite()) {
            return bad(
                "sampling.temperature",
                "must be > 0 (training rollouts sample)",
            );
        }
        if !(self.sampling.top_p > 0.0 && self.sampling.top_p <= 1.0) {
            return bad("sampling.top_p", "must be in (0, 1]");
        }
        if self.sampling.max_new_tokens == 0 {
            return bad("sampling.max_new_tokens", "must be >= 1");
        }
        if !self.prompt.is_valid() {
            return bad("prompt.template", "must contain `{problem}`");
        }
        if self.run.inference_queue == 0 {
            return bad("run.inference_queue", "must be >= 1");
        }
        if self.eval.batch_size == 0 {
            return bad("eval.batch_size", "must be >= 1");
        }
        if self.eval.max_new_tokens == 0 {
            return bad("eval.max_new_tokens", "must be >= 1");
        }
        if !self.eval.paper_protocol && self.eval.samples == 0 {
            return bad("eval.samples", "must be >= 1");
        }
        self.eval_sets()?;
        if let Err(e) = self.eval.arc.validate() {
            return bad("eval.arc", &e.to_string());
        }
        self.learner
            .validate()
            .map_err(|e| anyhow::anyhow!("config section `learner`: {e}"))?;
        self.metrics_addr()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_paper_settings() {
        let c = RlvrConfig::from_toml_str("", "<test>").unwrap();
        assert_eq!((c.rlvr.batch, c.rlvr.samples_per_prompt), (128, 8));
        assert_eq!(c.sampling.temperature, 0.6);
        assert_eq!(c.learner, LearnerConfig::one_shot_rlvr());
        assert_eq!(c.learner.optimizer.lr, 1e-6);
        let aime = c.eval.settings(Some(MathSet::Aime24), 0);
        assert_eq!((aime.samples, aime.temperature), (8, 0.6));
    }

    #[test]
    fn shipped_configs_parse() {
        for f in ["one-shot-rlvr.toml", "one-shot-tiny.toml"] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../config")
                .join(f);
            let c = RlvrConfig::load(&path).unwrap();
            assert_eq!(c.learner.loss.kl_coef, 0.001, "{f}");
            assert_eq!(c.learner.loss.entropy_coeff, 0.001, "{f}");
        }
        let paper = RlvrConfig::load(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/one-shot-rlvr.toml"),
        )
        .unwrap();
        let mut expected = RlvrConfig {
            model: paper.model.clone(),
            eval: paper.eval.clone(),
            ..RlvrConfig::default()
        };
        expected.rlvr.examples = vec![124];
        assert_eq!(paper, expected);
    }

    #[test]
    fn bad_values_name_their_key() {
        let e = RlvrConfig::from_toml_str("[rlvr]\nsamples_per_prompt = 1\n", "<t>").unwrap_err();
        assert!(e.to_string().contains("rlvr.samples_per_prompt"), "{e}");
        let e = RlvrConfig::from_toml_str("[eval]\nbenchmarks = [\"mmlu\"]\n", "<t>").unwrap_err();
        assert!(e.to_string().contains("eval.benchmarks"), "{e}");
        assert!(RlvrConfig::from_toml_str("[run]\nbogus = 1\n", "<t>").is_err());
    }
}
