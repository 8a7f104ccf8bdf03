//! CRUXEval (`cruxeval.jsonl`: `code`, `input`, `output`, `id`): 800 short Python functions with
//! one call each. CRUXEval-O (predict the output) is a deduction task, CRUXEval-I (find an input)
//! an abduction task.

use super::{read_jsonl, DataError};
use crate::tasks::{IoPair, Provenance, Task};
use crate::types::TaskKind;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Default location relative to the project root.
pub const DEFAULT_PATH: &str = "../shared/data/cruxeval/cruxeval.jsonl";

/// One CRUXEval item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CruxItem {
    /// Item id (`sample_0` ...).
    pub id: String,
    /// Python source defining `f`.
    pub code: String,
    /// Argument text of the call `f(<input>)`.
    pub input: String,
    /// `repr` of the result.
    pub output: String,
}

impl CruxItem {
    fn task(&self, kind: TaskKind) -> Task {
        Task::code(
            kind,
            self.code.clone(),
            IoPair {
                input: self.input.clone(),
                output: self.output.clone(),
                value: None,
            },
            Provenance::benchmark("cruxeval", self.id.clone()),
        )
    }

    /// CRUXEval-O: predict the output (deduction).
    pub fn deduction_task(&self) -> Task {
        self.task(TaskKind::Deduction)
    }

    /// CRUXEval-I: find an input producing the output (abduction).
    pub fn abduction_task(&self) -> Task {
        self.task(TaskKind::Abduction)
    }
}

/// Load `cruxeval.jsonl`.
pub fn load_cruxeval(path: impl AsRef<Path>) -> Result<Vec<CruxItem>, DataError> {
    let path = path.as_ref();
    read_jsonl(path)?
        .into_iter()
        .map(|(line, v)| {
            let field = |field: &'static str| {
                v.get(field)
                    .and_then(|x| x.as_str())
                    .map(str::to_string)
                    .ok_or_else(|| DataError::Field {
                        path: path.display().to_string(),
                        line,
                        field,
                    })
            };
            Ok(CruxItem {
                id: field("id")?,
                code: field("code")?,
                input: field("input")?,
                output: field("output")?,
            })
        })
        .collect()
}
