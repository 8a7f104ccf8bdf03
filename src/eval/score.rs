//! Pure scoring: avg@k over graded samples, per-benchmark scores and the six-benchmark average.

use serde::{Deserialize, Serialize};

use super::{EvalError, EvalSettings, MathPrompt};
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

    /// Grades `responses[item][sample]` against `references[item]` with `prompt` and scores them.
    ///
    /// # Errors
    /// [`EvalError::Invalid`] when the counts do not match.
    pub fn from_responses(
        benchmark: impl Into<String>,
        prompt: &MathPrompt,
        references: &[String],
        responses: &[Vec<String>],
        settings: &EvalSettings,
    ) -> Result<Self, EvalError> {
        if references.len() != responses.len() {
            return Err(EvalError::Invalid(format!(
                "{} references but {} response lists",
                references.len(),
                responses.len()
            )));
        }
        let graded: Vec<Vec<bool>> = references
            .iter()
            .zip(responses)
            .map(|(r, rs)| rs.iter().map(|t| prompt.grade(t, r)).collect())
            .collect();
        Self::from_graded(benchmark, &graded, settings)
    }
}

/// Scores of several benchmarks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SuiteScore {
    /// One score per benchmark, in evaluation order.
    pub scores: Vec<BenchmarkScore>,
}

impl SuiteScore {
    /// The score of a benchmark by name.
    pub fn get(&self, benchmark: &str) -> Option<&BenchmarkScore> {
        self.scores.iter().find(|s| s.benchmark == benchmark)
    }

    /// The unweighted mean over [`SIX_BENCHMARKS`], when all six were scored.
    pub fn six_average(&self) -> Option<f64> {
        let accs: Option<Vec<f64>> = SIX_BENCHMARKS
            .iter()
            .map(|s| self.get(benchmark_name(*s)).map(|b| b.accuracy))
            .collect();
        accs.map(|a| a.iter().sum::<f64>() / a.len() as f64)
    }

    /// One line per benchmark (`name  accuracy  items x samples  T`), then the six average.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for s in &self.scores {
            out.push_str(&format!(
                "{:<14} {:>6.2}%  ({} items x {} samples, T={})\n",
                s.benchmark,
                100.0 * s.accuracy,
                s.items,
                s.samples,
                s.temperature
            ));
        }
        if let Some(avg) = self.six_average() {
            out.push_str(&format!("{:<14} {:>6.2}%\n", "six_avg", 100.0 * avg));
        }
        out
    }
}
