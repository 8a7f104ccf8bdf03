//! Rollout dumps: one JSONL file per step (`rollouts/step_XXXXXX.jsonl`) with every trained
//! sequence's prompt, response, reward and outcome, as verl users expect.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use azr_core::types::{PolicyVersion, Role, TaskKind};
use serde::{Deserialize, Serialize};

/// One dumped sequence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DumpRecord {
    /// Step.
    pub step: u64,
    /// Task kind.
    pub task: TaskKind,
    /// Role.
    pub role: Role,
    /// Prompt text.
    pub prompt: String,
    /// Response text.
    pub response: String,
    /// Reward used for training.
    pub reward: f32,
    /// Outcome (`correct`, `wrong`, `format_error`, `valid`, `invalid: ...`).
    pub outcome: String,
    /// Solve rate of a valid proposal (proposer role only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub solve_rate: Option<f64>,
    /// Normalised program shape of a valid proposal (proposer role only; see
    /// `azr_core::tasks::novelty`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shape: Option<String>,
    /// Whether that shape was novel: in neither the pretraining corpus nor the shapes already
    /// admitted to the task buffers (proposer role only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub novel: Option<bool>,
    /// The share of the kind's earlier admitted proposals that had that shape (proposer role
    /// only; the repetition term's input).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shape_share: Option<f32>,
    /// Where the solved task came from: `seed`, `proposed`, `replay` or `benchmark` (solver role
    /// only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Policy version that generated the response.
    pub policy_version: PolicyVersion,
    /// Response length in tokens.
    pub response_tokens: usize,
}

/// Path of the dump of `step`.
pub fn path(run_dir: &Path, step: u64) -> PathBuf {
    run_dir
        .join("rollouts")
        .join(format!("step_{step:06}.jsonl"))
}

/// Write the records of one step (replacing a dump left by a run that died before its
/// checkpoint).
pub fn write(run_dir: &Path, step: u64, records: &[DumpRecord]) -> Result<()> {
    let p = path(run_dir, step);
    if let Some(parent) = p.parent() {
        fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    let mut out = std::io::BufWriter::new(
        fs::File::create(&p).with_context(|| format!("creating {}", p.display()))?,
    );
    for r in records {
        serde_json::to_writer(&mut out, r)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_one_json_object_per_line() {
        let tmp = tempfile::tempdir().unwrap();
        let rec = DumpRecord {
            step: 3,
            task: TaskKind::Deduction,
            role: Role::Solve,
            prompt: "p\nq".into(),
            response: "r".into(),
            reward: -0.5,
            outcome: "wrong".into(),
            solve_rate: None,
            shape: None,
            novel: None,
            shape_share: None,
            source: Some("replay".into()),
            policy_version: 2,
            response_tokens: 1,
        };
        write(tmp.path(), 3, &[rec.clone(), rec.clone()]).unwrap();
        let text = fs::read_to_string(path(tmp.path(), 3)).unwrap();
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        let back: DumpRecord = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(back, rec);
        assert!(!lines[0].contains("solve_rate"));
    }
}
