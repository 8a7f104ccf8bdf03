//! Reading math training rows in the verl/DeepScaleR JSONL layout used by 1-shot RLVR
//! (`dsr_sub.jsonl`, `pi1.jsonl`): `{"prompt": [{"content", "role"}], "reward_model":
//! {"ground_truth"}, "extra_info": {"index"}, ...}`. Unknown fields are ignored (this is data,
//! not configuration).

use std::path::Path;

use serde::Deserialize;

use crate::oneshot::OneShotError;

/// One math example.
#[derive(Debug, Clone, PartialEq)]
pub struct MathRow {
    /// `extra_info.index` as a string (the accuracy-history key).
    pub index: String,
    /// The user prompt (content of the first `user` message, else the first message).
    pub prompt: String,
    /// `reward_model.ground_truth`.
    pub answer: String,
}

#[derive(Deserialize)]
struct RawMessage {
    content: String,
    #[serde(default)]
    role: String,
}

#[derive(Deserialize)]
struct RawRewardModel {
    ground_truth: serde_json::Value,
}

#[derive(Deserialize)]
struct RawExtra {
    index: serde_json::Value,
}

#[derive(Deserialize)]
struct RawRow {
    prompt: Vec<RawMessage>,
    reward_model: RawRewardModel,
    extra_info: RawExtra,
}

fn value_to_string(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Parses one JSONL line.
pub fn parse_row(line: &str) -> Result<MathRow, serde_json::Error> {
    let raw: RawRow = serde_json::from_str(line)?;
    let prompt = raw
        .prompt
        .iter()
        .find(|m| m.role == "user")
        .or_else(|| raw.prompt.first())
        .map(|m| m.content.clone())
        .unwrap_or_default();
    Ok(MathRow {
        index: value_to_string(&raw.extra_info.index),
        prompt,
        answer: value_to_string(&raw.reward_model.ground_truth),
    })
}

/// Reads every non-empty line of a JSONL file.
pub fn load_jsonl(path: impl AsRef<Path>) -> Result<Vec<MathRow>, OneShotError> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|source| OneShotError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            parse_row(l).map_err(|source| OneShotError::JsonLine {
                path: path.to_path_buf(),
                line: i + 1,
                source,
            })
        })
        .collect()
}
