//! Generating responses with a [`Snapshot`] and scoring whole benchmarks.

use std::path::Path;

use super::score::benchmark_name;
use super::{BenchmarkScore, EvalError, EvalSettings, MathPrompt, SuiteScore};
use crate::data::{load_math, MathProblem, MathSet};
use crate::model::{generate, SamplingParams, Snapshot};
use crate::oneshot::dataset::MathRow;

/// One item to score: an id, a problem statement and its reference answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Item id.
    pub id: String,
    /// Problem statement (what the template's `{problem}` becomes).
    pub problem: String,
    /// Reference answer.
    pub answer: String,
}

impl From<&MathProblem> for Problem {
    fn from(p: &MathProblem) -> Self {
        Self {
            id: p.id.clone(),
            problem: p.problem.clone(),
            answer: p.answer.clone(),
        }
    }
}

impl From<&MathRow> for Problem {
    fn from(r: &MathRow) -> Self {
        Self {
            id: r.index.clone(),
            problem: r.prompt.clone(),
            answer: r.answer.clone(),
        }
    }
}

/// Stop token ids for `prompt` on `snap`: the model's EOS ids plus the stop strings that are
/// single tokens of its vocabulary.
pub fn stop_token_ids(snap: &Snapshot, prompt: &MathPrompt) -> Vec<u32> {
    let mut ids: Vec<u32> = snap
        .config()
        .eos_token_id
        .as_ref()
        .map(|t| t.to_vec())
        .unwrap_or_default();
    ids.extend(
        prompt
            .stop
            .iter()
            .filter_map(|s| snap.tokenizer().token_to_id(s)),
    );
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// Decoded responses `out[item][sample]` of `snap` to `problems` under `settings`.
/// Sequence `j` overall (item-major) is sampled with seed `settings.seed + j`, so the result
/// does not depend on `settings.batch_size`.
///
/// # Errors
/// Tokenising, generation or decoding failures; a zero batch size.
pub fn generate_responses(
    snap: &Snapshot,
    prompt: &MathPrompt,
    problems: &[Problem],
    settings: &EvalSettings,
) -> Result<Vec<Vec<String>>, EvalError> {
    if settings.batch_size == 0 {
        return Err(EvalError::Invalid("batch_size must be >= 1".to_string()));
    }
    let k = settings.effective_samples();
    let tok = snap.tokenizer();
    let mut seqs: Vec<Vec<u32>> = Vec::with_capacity(problems.len() * k);
    for p in problems {
        let ids = tok.encode(&prompt.render(&p.problem), true)?;
        seqs.extend(std::iter::repeat_n(ids, k));
    }
    let stop_token_ids = stop_token_ids(snap, prompt);
    let mut texts: Vec<String> = Vec::with_capacity(seqs.len());
    for (c, chunk) in seqs.chunks(settings.batch_size).enumerate() {
        let params = SamplingParams {
            temperature: settings.temperature.max(0.0),
            top_p: settings.top_p,
            top_k: 0,
            max_new_tokens: settings.max_new_tokens,
            stop_token_ids: stop_token_ids.clone(),
            seed: settings.seed + (c * settings.batch_size) as u64,
            use_cache: true,
        };
        for g in generate(snap, chunk, &params)? {
            texts.push(tok.decode(&g.tokens, false)?);
        }
    }
    let mut it = texts.into_iter();
    Ok(problems
        .iter()
        .map(|_| it.by_ref().take(k).collect())
        .collect())
}

/// Scores `problems` (at most `settings.limit` of them; 0 = all) as benchmark `name`.
///
/// # Errors
/// As [`generate_responses`].
pub fn evaluate_problems(
    snap: &Snapshot,
    prompt: &MathPrompt,
    name: &str,
    problems: &[Problem],
    settings: &EvalSettings,
) -> Result<BenchmarkScore, EvalError> {
    let n = if settings.limit == 0 {
        problems.len()
    } else {
        settings.limit.min(problems.len())
    };
    let problems = &problems[..n];
    let responses = generate_responses(snap, prompt, problems, settings)?;
    let references: Vec<String> = problems.iter().map(|p| p.answer.clone()).collect();
    let score = BenchmarkScore::from_responses(name, prompt, &references, &responses, settings)?;
    tracing::info!(
        benchmark = name,
        accuracy = score.accuracy,
        items = score.items,
        samples = score.samples,
        "evaluated"
    );
    Ok(score)
}

/// Loads `set` from `dir` and scores it.
///
/// # Errors
/// Reading the benchmark file, or as [`generate_responses`].
pub fn evaluate_set(
    snap: &Snapshot,
    prompt: &MathPrompt,
    set: MathSet,
    dir: &Path,
    settings: &EvalSettings,
) -> Result<BenchmarkScore, EvalError> {
    let problems: Vec<Problem> = load_math(set, dir)?.iter().map(Problem::from).collect();
    evaluate_problems(snap, prompt, benchmark_name(set), &problems, settings)
}

/// Scores every set of `sets` from `dir`, each with `settings_for(set)` (e.g.
/// [`EvalSettings::paper`] with a limit applied).
///
/// # Errors
/// The first failing benchmark's error.
pub fn evaluate_suite(
    snap: &Snapshot,
    prompt: &MathPrompt,
    dir: &Path,
    sets: &[MathSet],
    settings_for: impl Fn(MathSet) -> EvalSettings,
) -> Result<SuiteScore, EvalError> {
    let mut suite = SuiteScore::default();
    for &set in sets {
        suite
            .scores
            .push(evaluate_set(snap, prompt, set, dir, &settings_for(set))?);
    }
    Ok(suite)
}
