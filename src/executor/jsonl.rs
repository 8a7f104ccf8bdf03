//! JSON front ends used by `azr exec`: one outcome as a JSON object, and a JSON-lines batch.
//!
//! Each outcome prints as `{"status", "value", "repr", "error", "millis"}` where `value` is the
//! canonical [`PyValue`](super::PyValue) JSON (`{"t": "int", "v": "3"}` ...) or `null`.

use super::{ExecJob, ExecStatus, Executor, Outcome};
use serde::Deserialize;
use std::io::{self, BufRead, Write};

/// How many lines a batch reads before running them (bounds memory on huge files).
const CHUNK: usize = 1024;

/// One outcome as a single-line JSON object.
pub fn outcome_json(outcome: &Outcome) -> String {
    serde_json::to_string(outcome).unwrap_or_else(|e| {
        // Serializing plain data cannot fail; fall back to a valid line anyway.
        format!(
            r#"{{"status":"sandbox_failure","value":null,"repr":null,"error":{:?},"millis":0.0}}"#,
            e.to_string()
        )
    })
}

/// Run `f(<input>)` once and return the outcome as one JSON line (what `azr exec --code` prints).
pub fn exec_one_json(executor: &Executor, code: &str, input: &str) -> String {
    outcome_json(&executor.run(code, input))
}

/// Totals of a batch run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchSummary {
    /// Lines read (and outcomes written).
    pub lines: usize,
    /// Outcomes with status `ok`.
    pub ok: usize,
}

#[derive(Deserialize)]
struct Line {
    code: String,
    input: String,
}

/// Read JSON lines `{"code": ..., "input": ...}` and write one outcome JSON per line, in order,
/// running each chunk of lines across the pool. A line that is not such an object yields an
/// `invalid` outcome at its position; blank lines are skipped.
pub fn batch_from_jsonl<R: BufRead, W: Write>(
    reader: R,
    mut writer: W,
    executor: &Executor,
) -> io::Result<BatchSummary> {
    let mut summary = BatchSummary::default();
    let mut pending: Vec<Result<ExecJob, String>> = Vec::with_capacity(CHUNK);
    let mut lines = reader.lines();
    loop {
        let line = lines.next().transpose()?;
        let at_end = line.is_none();
        if let Some(line) = line {
            if !line.trim().is_empty() {
                pending.push(
                    serde_json::from_str::<Line>(&line)
                        .map(|l| ExecJob {
                            code: l.code,
                            input: l.input,
                        })
                        .map_err(|e| format!("bad batch line: {e}")),
                );
            }
        }
        if pending.len() >= CHUNK || (at_end && !pending.is_empty()) {
            let jobs: Vec<ExecJob> = pending
                .iter()
                .filter_map(|p| p.as_ref().ok().cloned())
                .collect();
            let mut outcomes = executor.run_many(&jobs).into_iter();
            for p in pending.drain(..) {
                let out = match p {
                    Ok(_) => outcomes.next().unwrap_or_else(|| {
                        Outcome::failed(ExecStatus::SandboxFailure, "result lost", 0.0)
                    }),
                    Err(why) => Outcome::failed(ExecStatus::Invalid, why, 0.0),
                };
                summary.lines += 1;
                summary.ok += usize::from(out.status == ExecStatus::Ok);
                writeln!(writer, "{}", outcome_json(&out))?;
            }
            writer.flush()?;
        }
        if at_end {
            return Ok(summary);
        }
    }
}
