//! The math benchmarks, each normalised to (problem, reference answer):
//!
//! | set | file | problem | answer |
//! |---|---|---|---|
//! | MATH500 | `math500.jsonl` | `problem` | `answer` |
//! | AIME24 / AIME25 | `aime24.jsonl`, `aime25.jsonl` | `problem` | `answer` |
//! | AMC23 | `amc23.jsonl` | `problem` | `answer` (a number; `27.0` -> `27`) |
//! | Minerva | `minerva_math.jsonl` | `problem` | last `\boxed{}` of `solution` |
//! | OlympiadBench | `olympiadbench.jsonl` | `question` | `final_answer` list, `$` removed, joined by `, ` |
//! | GSM8K | `gsm8k.jsonl` | `question` | the number after `####` in `answer`, commas removed |

use super::{read_jsonl, DataError};
use crate::tasks::parse::last_boxed;
use crate::tasks::{Provenance, Task};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::Path;

/// Default folder relative to the project root.
pub const DEFAULT_DIR: &str = "../shared/data/math";

/// A math benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MathSet {
    /// MATH500.
    Math500,
    /// AIME 2024.
    Aime24,
    /// AIME 2025.
    Aime25,
    /// AMC 2023.
    Amc23,
    /// Minerva math.
    Minerva,
    /// OlympiadBench (math, English, text-only).
    OlympiadBench,
    /// GSM8K test.
    Gsm8k,
}

impl MathSet {
    /// All sets.
    pub const ALL: [MathSet; 7] = [
        MathSet::Math500,
        MathSet::Aime24,
        MathSet::Aime25,
        MathSet::Amc23,
        MathSet::Minerva,
        MathSet::OlympiadBench,
        MathSet::Gsm8k,
    ];

    /// Lower-case name (config values, metric labels).
    pub fn name(self) -> &'static str {
        match self {
            MathSet::Math500 => "math500",
            MathSet::Aime24 => "aime24",
            MathSet::Aime25 => "aime25",
            MathSet::Amc23 => "amc23",
            MathSet::Minerva => "minerva",
            MathSet::OlympiadBench => "olympiadbench",
            MathSet::Gsm8k => "gsm8k",
        }
    }

    /// File name inside the math data folder.
    pub fn file_name(self) -> &'static str {
        match self {
            MathSet::Math500 => "math500.jsonl",
            MathSet::Aime24 => "aime24.jsonl",
            MathSet::Aime25 => "aime25.jsonl",
            MathSet::Amc23 => "amc23.jsonl",
            MathSet::Minerva => "minerva_math.jsonl",
            MathSet::OlympiadBench => "olympiadbench.jsonl",
            MathSet::Gsm8k => "gsm8k.jsonl",
        }
    }
}

impl std::str::FromStr for MathSet {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        MathSet::ALL
            .into_iter()
            .find(|m| m.name() == s || m.file_name().trim_end_matches(".jsonl") == s)
            .ok_or_else(|| format!("unknown math set `{s}`"))
    }
}

/// One math problem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MathProblem {
    /// Benchmark.
    pub set: MathSet,
    /// Item id (the file's id field, or the 0-based line index).
    pub id: String,
    /// Problem statement.
    pub problem: String,
    /// Reference answer (no `\boxed{}`).
    pub answer: String,
}

impl MathProblem {
    /// As a math task.
    pub fn task(&self) -> Task {
        Task::math(
            self.problem.clone(),
            self.answer.clone(),
            Provenance::benchmark(self.set.name(), self.id.clone()),
        )
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.trim().to_string()),
        Value::Number(n) => {
            let f = n.as_f64()?;
            Some(if f.fract() == 0.0 && f.abs() < 1e15 {
                format!("{}", f as i64)
            } else {
                n.to_string()
            })
        }
        _ => None,
    }
}

fn strip_dollars(s: &str) -> String {
    let t = s.trim();
    t.strip_prefix('$')
        .and_then(|x| x.strip_suffix('$'))
        .unwrap_or(t)
        .trim()
        .to_string()
}

/// Load the set's file from `dir` (e.g. [`DEFAULT_DIR`]).
pub fn load_math(set: MathSet, dir: impl AsRef<Path>) -> Result<Vec<MathProblem>, DataError> {
    let path = dir.as_ref().join(set.file_name());
    let shown = path.display().to_string();
    let rows = read_jsonl(&path)?;
    let mut out = Vec::with_capacity(rows.len());
    for (index, (line, v)) in rows.into_iter().enumerate() {
        let missing = |field: &'static str| DataError::Field {
            path: shown.clone(),
            line,
            field,
        };
        let get = |field: &'static str| v.get(field).and_then(text).ok_or_else(|| missing(field));
        let (problem, answer) = match set {
            MathSet::Math500 | MathSet::Aime24 | MathSet::Aime25 | MathSet::Amc23 => {
                (get("problem")?, get("answer")?)
            }
            MathSet::Minerva => (
                get("problem")?,
                last_boxed(&get("solution")?).ok_or_else(|| missing("solution"))?,
            ),
            MathSet::OlympiadBench => {
                let answers: Vec<String> = v
                    .get("final_answer")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(text)
                            .map(|s| strip_dollars(&s))
                            .collect()
                    })
                    .unwrap_or_default();
                if answers.is_empty() {
                    return Err(missing("final_answer"));
                }
                (get("question")?, answers.join(", "))
            }
            MathSet::Gsm8k => {
                let full = get("answer")?;
                let ans = full
                    .rsplit_once("####")
                    .map(|(_, a)| a.trim().replace(',', ""))
                    .filter(|a| !a.is_empty())
                    .ok_or_else(|| missing("answer"))?;
                (get("question")?, ans)
            }
        };
        let id = ["unique_id", "id", "idx"]
            .iter()
            .find_map(|k| v.get(*k).and_then(text))
            .unwrap_or_else(|| index.to_string());
        out.push(MathProblem {
            set,
            id,
            problem,
            answer,
        });
    }
    Ok(out)
}
