//! Historical-variance ranking of training examples (1-shot RLVR paper Eq. 1-2): score each
//! example by the variance of its per-epoch training accuracy `v_i = var(L_i)` and sort
//! descending; rank 1 is pi_1.
//!
//! The reference code (`data/data_selection.py`, `acc_score(method='std')`) uses `np.std`, the
//! **population** std (`ddof = 0`); `var` is its square, so both give the same order. On the
//! shipped `acc_step_500.json` this reproduces pi_1 = index 124 (std 0.4068) and pi_13 = index
//! 682. Ties keep file order (Python's `sorted(..., reverse=True)` is stable).

use serde::{Deserialize, Serialize};

use crate::oneshot::dataset::MathRow;
use crate::oneshot::history::AccuracyHistory;

/// The score to rank by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SelectionMethod {
    /// Population variance of the accuracies (paper Eq. 2). Default.
    #[default]
    Var,
    /// Population std (`np.std`, the reference script's default); same order as `Var`.
    Std,
}

impl std::str::FromStr for SelectionMethod {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "var" => Ok(Self::Var),
            "std" => Ok(Self::Std),
            other => Err(format!(
                "unknown selection method `{other}` (expected var or std)"
            )),
        }
    }
}

/// One ranked example.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ranked {
    /// 1-based rank (1 = highest score = pi_1).
    pub rank: usize,
    /// The example's index (the history key, e.g. DSR-sub `extra_info.index`).
    pub index: String,
    /// Its score under the method.
    pub score: f64,
}

/// Population variance `sum (x - mean)^2 / n`, or its square root for `Std`. An empty history
/// scores 0.
pub fn score(values: &[f64], method: SelectionMethod) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    match method {
        SelectionMethod::Var => var,
        SelectionMethod::Std => var.sqrt(),
    }
}

/// Every example of `history`, scored and sorted by descending score (stable: ties keep the
/// history's order), with 1-based ranks.
pub fn rank(history: &AccuracyHistory, method: SelectionMethod) -> Vec<Ranked> {
    let mut scored: Vec<(String, f64)> = history
        .iter()
        .map(|(k, v)| (k.to_string(), score(v, method)))
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1));
    scored
        .into_iter()
        .enumerate()
        .map(|(i, (index, score))| Ranked {
            rank: i + 1,
            index,
            score,
        })
        .collect()
}

/// The first `top` rows of `ranked` as a text table (`rank  index  score`), one line each; with
/// a dataset, each line adds the answer and the first `preview_chars` characters of the prompt
/// (newlines flattened). This is what `azr select` prints.
pub fn render_table(
    ranked: &[Ranked],
    top: usize,
    dataset: Option<&[MathRow]>,
    preview_chars: usize,
) -> String {
    let mut out = String::new();
    out.push_str(if dataset.is_some() {
        "rank\tindex\tscore\tanswer\tproblem\n"
    } else {
        "rank\tindex\tscore\n"
    });
    for r in ranked.iter().take(top) {
        out.push_str(&format!("{}\t{}\t{:.6}", r.rank, r.index, r.score));
        if let Some(rows) = dataset {
            match rows.iter().find(|row| row.index == r.index) {
                Some(row) => {
                    let preview: String = row
                        .prompt
                        .chars()
                        .take(preview_chars)
                        .map(|c| if c.is_whitespace() { ' ' } else { c })
                        .collect();
                    let ellipsis = if row.prompt.chars().count() > preview_chars {
                        "..."
                    } else {
                        ""
                    };
                    out.push_str(&format!("\t{}\t{preview}{ellipsis}", row.answer));
                }
                None => out.push_str("\t-\t(not in dataset)"),
            }
        }
        out.push('\n');
    }
    out
}
