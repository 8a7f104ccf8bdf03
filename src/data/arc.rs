//! The AI2 Reasoning Challenge test sets (Clark et al. 2018), in the Hugging Face
//! `allenai/ai2_arc` layout: one JSON object per line with `id`, `question`,
//! `choices` {`text`: [...], `label`: [...]} and `answerKey`.
//!
//! | set | file | items |
//! |---|---|---|
//! | ARC-Easy | `ARC-Easy-test.jsonl` | 2,376 |
//! | ARC-Challenge | `ARC-Challenge-test.jsonl` | 1,172 |
//!
//! Most questions are labelled `A`-`D` (a few `A`-`C` or `A`-`E`); 22 Challenge and 97 Easy
//! questions use `1`-`4` (or `1`-`3`). Items keep the labels of the file and are scored by label,
//! never by position. The loader checks that the two choice lists have the same length, that the
//! labels are distinct and that `answerKey` is one of them.

use super::{read_jsonl, DataError};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::Path;

/// Default folder relative to the project root.
pub const DEFAULT_DIR: &str = "../shared/data/arc";

/// One of the two ARC test sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ArcSet {
    /// ARC-Easy test (2,376 questions).
    Easy,
    /// ARC-Challenge test (1,172 questions).
    Challenge,
}

impl ArcSet {
    /// Both sets.
    pub const ALL: [ArcSet; 2] = [ArcSet::Easy, ArcSet::Challenge];

    /// Benchmark name (`arc-easy`, `arc-challenge`): config values and report lines. The metric
    /// label is the same with `_` (`arc_easy`).
    pub fn name(self) -> &'static str {
        match self {
            ArcSet::Easy => "arc-easy",
            ArcSet::Challenge => "arc-challenge",
        }
    }

    /// File name inside the ARC data folder.
    pub fn file_name(self) -> &'static str {
        match self {
            ArcSet::Easy => "ARC-Easy-test.jsonl",
            ArcSet::Challenge => "ARC-Challenge-test.jsonl",
        }
    }

    /// The set a benchmark name denotes: `arc-easy` / `arc-challenge`, `_` for `-` accepted,
    /// case-insensitive. `None` for any other name.
    pub fn from_name(name: &str) -> Option<Self> {
        let norm = name.trim().to_ascii_lowercase().replace('_', "-");
        ArcSet::ALL.into_iter().find(|s| s.name() == norm)
    }
}

impl std::str::FromStr for ArcSet {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ArcSet::from_name(s).ok_or_else(|| {
            format!("unknown ARC set `{s}` (expected `arc-easy` or `arc-challenge`)")
        })
    }
}

/// One answer option.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArcChoice {
    /// Label as in the file (`A`-`E` or `1`-`4`).
    pub label: String,
    /// Option text.
    pub text: String,
}

/// One ARC question.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArcItem {
    /// Set it comes from.
    pub set: ArcSet,
    /// Item id (`Mercury_417466`, ...).
    pub id: String,
    /// Question text.
    pub question: String,
    /// Options in file order.
    pub choices: Vec<ArcChoice>,
    /// Label of the correct option (`answerKey`); always one of `choices`' labels.
    pub answer: String,
}

impl ArcItem {
    /// The labels of the options, in order.
    pub fn labels(&self) -> Vec<&str> {
        self.choices.iter().map(|c| c.label.as_str()).collect()
    }

    /// Position of the correct option in `choices`.
    pub fn answer_index(&self) -> Option<usize> {
        self.choices.iter().position(|c| c.label == self.answer)
    }
}

fn string_list(v: Option<&Value>) -> Option<Vec<String>> {
    v?.as_array()?
        .iter()
        .map(|x| match x {
            Value::String(s) => Some(s.trim().to_string()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
        .collect()
}

/// Load the set's file from `dir` (e.g. [`DEFAULT_DIR`]).
///
/// # Errors
/// [`DataError`] when the file cannot be read, a line is not JSON, or a field is missing or
/// inconsistent (`choices` lists of different lengths, repeated or empty labels, an
/// `answerKey` that is not one of the labels).
pub fn load_arc(set: ArcSet, dir: impl AsRef<Path>) -> Result<Vec<ArcItem>, DataError> {
    let path = dir.as_ref().join(set.file_name());
    let shown = path.display().to_string();
    let rows = read_jsonl(&path)?;
    let mut out = Vec::with_capacity(rows.len());
    for (line, v) in rows {
        let bad = |field: &'static str| DataError::Field {
            path: shown.clone(),
            line,
            field,
        };
        let text = |field: &'static str| {
            match v.get(field) {
                Some(Value::String(s)) => Some(s.trim().to_string()),
                Some(Value::Number(n)) => Some(n.to_string()),
                _ => None,
            }
            .filter(|s| !s.is_empty())
            .ok_or_else(|| bad(field))
        };
        let choices = v.get("choices");
        let texts =
            string_list(choices.and_then(|c| c.get("text"))).ok_or_else(|| bad("choices"))?;
        let labels =
            string_list(choices.and_then(|c| c.get("label"))).ok_or_else(|| bad("choices"))?;
        let mut distinct = labels.clone();
        distinct.sort();
        distinct.dedup();
        if texts.is_empty()
            || texts.len() != labels.len()
            || distinct.len() != labels.len()
            || labels.iter().any(|l| l.is_empty())
        {
            return Err(bad("choices"));
        }
        let answer = text("answerKey")?;
        if !labels.contains(&answer) {
            return Err(bad("answerKey"));
        }
        out.push(ArcItem {
            set,
            id: text("id")?,
            question: text("question")?,
            choices: labels
                .into_iter()
                .zip(texts)
                .map(|(label, text)| ArcChoice { label, text })
                .collect(),
            answer,
        });
    }
    Ok(out)
}
