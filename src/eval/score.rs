//! Pure scoring: avg@k over graded samples, per-benchmark scores and the six-benchmark average.

use serde::{Deserialize, Serialize};

use super::{EvalError, EvalSettings};
use crate::data::MathSet;

/// The six benchmarks whose mean is the 1-shot RLVR paper's headline average.
pub const SIX_BENCHMARKS: [MathSet; 6] = [
    MathSet::Math500,
    MathSet::Aime24,
    MathSet::Aime25,
    MathSet::Amc23,
    MathSet::Minerva,
    MathSet::OlympiadBench,
];

/// The name of a set in reports and metric labels: its file stem (`minerva_math`, ...), as in
/// [`crate::metrics::BENCHMARKS`].
pub fn benchmark_name(set: MathSet) -> &'static str {
    set.file_name().trim_end_matches(".jsonl")
}

/// avg@k: the mean over items of the share of that item's samples graded correct (with one
/// sample per item, plain accuracy). No items score 0.
pub fn avg_at_k(graded: &[Vec<bool>]) -> f64 {
    if graded.is_empty() {
        return 0.0;
    }
    let per_item = graded.iter().map(|g| {
        if g.is_empty() {
            0.0
        } else {
            g.iter().filter(|&&c| c).count() as f64 / g.len() as f64
        }
    });
    per_item.sum::<f64>() / graded.len() as f64
}

/// pass@k with k = the samples per item: the share of items with at least one sample graded
/// correct (equal to [`avg_at_k`] with one sample per item). No items score 0. The gap between
/// the two separates sharpening (avg@k rises towards pass@k) from new capability (pass@k rises).
pub fn pass_at_k(graded: &[Vec<bool>]) -> f64 {
    if graded.is_empty() {
        return 0.0;
    }
    graded.iter().filter(|g| g.iter().any(|&c| c)).count() as f64 / graded.len() as f64
}

/// The score of one benchmark.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchmarkScore {
    /// Benchmark name (file stem for the math sets).
    pub benchmark: String,
    /// Items scored.
    pub items: usize,
    /// Samples per item (k of avg@k).
    pub samples: usize,
    /// Correct samples over all items.
    pub correct: usize,
    /// avg@k (greedy accuracy when `samples` is 1).
    pub accuracy: f64,
    /// Decoding temperature used.
    pub temperature: f32,
}

impl BenchmarkScore {
    /// The score of graded samples (`graded[item][sample]`); every item must have
    /// `settings.effective_samples()` samples.
    ///
    /// # Errors
    /// [`EvalError::Invalid`] when an item has another number of samples.
    pub fn from_graded(
        benchmark: impl Into<String>,
        graded: &[Vec<bool>],
        settings: &EvalSettings,
    ) -> Result<Self, EvalError> {
        let k = settings.effective_samples();
        if let Some((i, g)) = graded.iter().enumerate().find(|(_, g)| g.len() != k) {
            return Err(EvalError::Invalid(format!(
                "item {i} has {} graded samples, expected {k}",
                g.len()
            )));
        }
        Ok(Self {
            benchmark: benchmark.into(),
            items: graded.len(),
            samples: k,
            correct: graded.iter().flatten().filter(|&&c| c).count(),
            accuracy: avg_at_k(graded),
            temperature: if settings.is_greedy() {
                0.0
            } else {
                settings.temperature
            },
        })
    }
}

/// The 1-shot RLVR paper's headline number: the unweighted mean accuracy over
/// [`SIX_BENCHMARKS`], from `(benchmark name, accuracy)` pairs (a set's name, `minerva`, or its
/// file stem, `minerva_math`); `None` unless all six are present.
pub fn six_average<'a>(scores: impl IntoIterator<Item = (&'a str, f64)>) -> Option<f64> {
    let scores: Vec<(MathSet, f64)> = scores
        .into_iter()
        .filter_map(|(name, acc)| name.parse::<MathSet>().ok().map(|s| (s, acc)))
        .collect();
    let accs: Option<Vec<f64>> = SIX_BENCHMARKS
        .iter()
        .map(|set| scores.iter().find(|(s, _)| s == set).map(|(_, a)| *a))
        .collect();
    accs.map(|a| a.iter().sum::<f64>() / a.len() as f64)
}
