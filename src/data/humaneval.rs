//! HumanEval (164 hand-written Python problems) as [`synthesis`](crate::tasks::synthesis) tasks.
//!
//! Each item becomes a synthesis task: the spec is the item's `prompt` (imports, signature and
//! docstring), the reference is `prompt + canonical_solution`, and the tests are the distinct
//! calls `candidate(ARGS)` of the item's `check` function, all hidden. Their gold outputs come
//! from running the reference on them in the sandbox ([`attach_gold`]); calls whose arguments
//! need the test's local variables (random tests in loops) cannot run outside it and are
//! dropped. A solver answer is graded by the synthesis check (the fraction of tests passed);
//! pass@1 counts answers that pass all of them.
//!
//! The file is `HumanEval.jsonl.gz` (decompressed with the system's `gzip -dc`) or a plain
//! `.jsonl`.

use super::DataError;
use crate::executor::{ExecJob, ExecStatus, Executor};
use crate::tasks::synthesis::KIND;
use crate::tasks::{IoPair, Provenance, Task};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Default location, relative to the project root.
pub const DEFAULT_PATH: &str = "../shared/data/humaneval/HumanEval.jsonl.gz";

/// One HumanEval problem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HumanEvalItem {
    /// `HumanEval/N`.
    pub task_id: String,
    /// Imports, signature and docstring.
    pub prompt: String,
    /// The body completing `prompt`.
    pub canonical_solution: String,
    /// Test code defining `check(candidate)`.
    pub test: String,
    /// Name of the function under test.
    pub entry_point: String,
}

impl HumanEvalItem {
    /// The distinct argument texts of the `candidate(...)` calls in the test code, in order.
    pub fn test_inputs(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut rest = self.test.as_str();
        while let Some(i) = rest.find("candidate(") {
            let before_ok = rest[..i]
                .chars()
                .next_back()
                .is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
            let after = &rest[i + "candidate(".len()..];
            match balanced_args(after) {
                Some(args) if before_ok => {
                    let text = args.trim().to_string();
                    if !text.is_empty() && !out.contains(&text) {
                        out.push(text);
                    }
                    rest = &after[args.len()..];
                }
                _ => rest = after,
            }
        }
        out
    }

    /// The task, without gold values yet (see [`attach_gold`]); outputs hold the expected
    /// expression of `== EXPR` asserts where there is one.
    pub fn task(&self) -> Task {
        let pairs = self
            .test_inputs()
            .into_iter()
            .map(|input| IoPair {
                input,
                output: String::new(),
                value: None,
            })
            .collect();
        Task {
            kind: KIND,
            program: format!("{}{}", self.prompt, self.canonical_solution),
            pairs,
            visible: 0,
            message: self.prompt.trim_end().to_string(),
            problem: String::new(),
            answer: String::new(),
            provenance: Provenance::benchmark("humaneval", self.task_id.clone()),
        }
    }
}

/// The text up to the parenthesis closing an argument list that starts right after `(`,
/// skipping brackets and string literals; `None` if it never closes.
fn balanced_args(s: &str) -> Option<&str> {
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '\'' | '"' => quote = Some(c),
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => {
                if depth == 0 {
                    return (c == ')').then(|| &s[..i]);
                }
                depth -= 1;
            }
            _ => {}
        }
    }
    None
}

/// Load HumanEval items (`.jsonl.gz` through `gzip -dc`, or plain `.jsonl`).
pub fn load_humaneval(path: impl AsRef<Path>) -> Result<Vec<HumanEvalItem>, DataError> {
    let path = path.as_ref();
    let shown = path.display().to_string();
    let text = if path.extension().is_some_and(|e| e == "gz") {
        let out = std::process::Command::new("gzip")
            .arg("-dc")
            .arg(path)
            .output()
            .map_err(|source| DataError::Io {
                path: shown.clone(),
                source,
            })?;
        if !out.status.success() {
            return Err(DataError::Io {
                path: shown,
                source: std::io::Error::other(String::from_utf8_lossy(&out.stderr).to_string()),
            });
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    } else {
        std::fs::read_to_string(path).map_err(|source| DataError::Io {
            path: shown.clone(),
            source,
        })?
    };
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|source| DataError::Json {
                path: shown.clone(),
                line: i + 1,
                source,
            })
        })
        .collect()
}

/// Compute every test's gold output by running the task's reference on it in the sandbox
/// (inputs evaluated as the benchmark writes them); tests the reference cannot run are dropped.
/// Returns the tasks that keep at least one test.
pub fn attach_gold(tasks: Vec<Task>, exec: &Executor) -> Vec<Task> {
    let mut jobs = Vec::new();
    let mut owners = Vec::new();
    for (t, task) in tasks.iter().enumerate() {
        let entry = crate::tasks::parse::defined_functions(&task.message)
            .pop()
            .unwrap_or_else(|| "f".to_string());
        let code = format!("{}\n\nf = {entry}\n", task.program);
        for (p, pair) in task.pairs.iter().enumerate() {
            jobs.push(ExecJob {
                code: code.clone(),
                input: pair.input.clone(),
            });
            owners.push((t, p));
        }
    }
    let outcomes = exec.run_many_trusted(&jobs);
    let mut tasks = tasks;
    let mut keep: Vec<Vec<bool>> = tasks.iter().map(|t| vec![false; t.pairs.len()]).collect();
    for ((t, p), o) in owners.into_iter().zip(outcomes) {
        if let (ExecStatus::Ok, Some(value), Some(repr)) = (o.status, o.value, o.repr) {
            let pair = &mut tasks[t].pairs[p];
            pair.output = repr;
            pair.value = Some(value);
            keep[t][p] = true;
        }
    }
    tasks
        .into_iter()
        .zip(keep)
        .filter_map(|(mut task, keep)| {
            let mut k = keep.into_iter();
            task.pairs.retain(|_| k.next().unwrap_or(false));
            (!task.pairs.is_empty()).then_some(task)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_calls_are_extracted_with_nested_brackets_and_strings() {
        let item = HumanEvalItem {
            task_id: "x".into(),
            prompt: "def g(a, b):\n    \"\"\"doc\"\"\"\n".into(),
            canonical_solution: "    return a\n".into(),
            test: "def check(candidate):\n    assert candidate([1, (2, 3)], ')') == 1\n    \
                   assert abs(candidate(2.0, 'a\\'b') - 1) < 1e-6\n    assert candidate([1, (2, 3)], ')') == 1\n    \
                   assert not_candidate(3)\n"
                .into(),
            entry_point: "g".into(),
        };
        assert_eq!(
            item.test_inputs(),
            vec!["[1, (2, 3)], ')'".to_string(), "2.0, 'a\\'b'".to_string()]
        );
        let t = item.task();
        assert_eq!(t.kind, KIND);
        assert_eq!(t.visible, 0);
        assert_eq!(t.pairs.len(), 2);
        assert!(t.program.ends_with("return a\n"));
    }

    #[test]
    fn the_shipped_file_loads() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/data/humaneval/HumanEval.jsonl.gz"
        );
        if !Path::new(path).exists() {
            return;
        }
        let items = load_humaneval(path).unwrap();
        assert_eq!(items.len(), 164);
        assert!(items.iter().all(|i| !i.test_inputs().is_empty()));
    }
}
