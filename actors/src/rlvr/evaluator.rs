//! The evaluator on the side: the held-out sets of `[eval]`, scored with
//! [`azr_core::eval`] on a weight snapshot, recorded in `eval.jsonl` and as
//! `azr_eval_accuracy_ratio{benchmark}`.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use azr_core::data::{load_arc, load_math, ArcItem, ArcSet, MathSet};
use azr_core::eval::{
    arc, benchmark_name, evaluate_problems, ArcPrompt, EvalSettings, MathPrompt, Problem,
    SuiteScore,
};
use azr_core::model::Snapshot;
use azr_core::oneshot::dataset::load_jsonl;
use serde::Serialize;

use super::config::RlvrConfig;
use crate::telemetry;

/// One held-out set and how it is decoded.
#[derive(Debug, Clone)]
pub struct EvalSet {
    /// Benchmark name (file stem).
    pub name: String,
    /// Items (all of them; `settings.limit` applies when scoring).
    pub problems: Vec<Problem>,
    /// ARC sets: `[eval.arc]` and the questions (`problems` is then empty).
    pub arc: Option<(ArcPrompt, Vec<ArcItem>)>,
    /// Decoding and limit.
    pub settings: EvalSettings,
}

/// The sets of `[eval]`: the named benchmarks in order, then the extra files.
pub fn load_sets(cfg: &RlvrConfig) -> Result<Vec<EvalSet>> {
    let mut out = Vec::new();
    for name in &cfg.eval.benchmarks {
        // branch `arc` (issue #17): ARC sets are scored by `azr_core::eval::arc`.
        if let Some(set) = ArcSet::from_name(name) {
            let items = load_arc(set, &cfg.eval.arc_dir)
                .with_context(|| format!("loading benchmark {}", set.name()))?;
            out.push(EvalSet {
                name: set.name().to_string(),
                problems: Vec::new(),
                arc: Some((cfg.eval.arc.clone(), items)),
                settings: cfg.eval.settings(None::<MathSet>, cfg.run.seed),
            });
            continue;
        }
        let set: MathSet = name
            .parse()
            .map_err(|e| anyhow::anyhow!("config key `eval.benchmarks`: {e}"))?;
        let problems = load_math(set, &cfg.eval.data_dir)
            .with_context(|| format!("loading benchmark {}", set.name()))?
            .iter()
            .map(Problem::from)
            .collect();
        out.push(EvalSet {
            name: benchmark_name(set).to_string(),
            problems,
            arc: None,
            settings: cfg.eval.settings(Some(set), cfg.run.seed),
        });
    }
    for path in &cfg.eval.files {
        let problems = load_jsonl(path)
            .with_context(|| format!("loading eval file {}", path.display()))?
            .iter()
            .map(Problem::from)
            .collect();
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        out.push(EvalSet {
            name,
            problems,
            arc: None,
            settings: cfg.eval.settings(None::<MathSet>, cfg.run.seed),
        });
    }
    Ok(out)
}

/// Scores every set on `snap` (synchronous; run it on a blocking thread).
pub fn score(snap: &Snapshot, prompt: &MathPrompt, sets: &[EvalSet]) -> Result<SuiteScore> {
    let mut suite = SuiteScore::default();
    for s in sets {
        let score = match &s.arc {
            Some((arc_prompt, items)) => {
                arc::evaluate_items(snap, arc_prompt, &s.name, items, &s.settings)
            }
            None => evaluate_problems(snap, prompt, &s.name, &s.problems, &s.settings),
        };
        suite
            .scores
            .push(score.with_context(|| format!("evaluating {}", s.name))?);
    }
    Ok(suite)
}

#[derive(Serialize)]
struct EvalLine<'a> {
    step: u64,
    benchmark: &'a str,
    accuracy: f64,
    items: usize,
    samples: usize,
    temperature: f32,
}

/// Appends the scores of `step` to `path` (one JSON line per benchmark, plus `six_avg` when
/// all six were scored) and sets the accuracy gauges of the benchmarks the metric catalogue
/// names.
pub fn record(path: &Path, step: u64, suite: &SuiteScore) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    for s in &suite.scores {
        let line = EvalLine {
            step,
            benchmark: &s.benchmark,
            accuracy: s.accuracy,
            items: s.items,
            samples: s.samples,
            temperature: s.temperature,
        };
        writeln!(f, "{}", serde_json::to_string(&line)?)?;
        telemetry::eval(&s.benchmark, s.accuracy, step);
        tracing::info!(step, benchmark = %s.benchmark, accuracy = s.accuracy, "eval");
    }
    if let Some(avg) = suite.six_average() {
        let line = serde_json::json!({"step": step, "benchmark": "six_avg", "accuracy": avg});
        writeln!(f, "{line}")?;
    }
    Ok(())
}
