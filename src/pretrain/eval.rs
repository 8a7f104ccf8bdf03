//! Greedy evaluation of a snapshot on the held-out set, per task kind.
//!
//! Answers are the generated text before `<end>`; a generation that never emits `<end>` is
//! wrong. Deduction is an exact match against the gold `repr`. Abduction runs the program on
//! the proposed argument text and compares the `repr` of the result with the gold output.
//! Induction runs the proposed program on every pair, visible and hidden, and needs all of
//! them to match. Both run in the sandboxed executor; model text never runs in this process.

use super::corpus::compact_registry;
use super::error::PretrainError;
use super::heldout::{HeldoutSet, HeldoutTask};
use super::tokenizer::TinyTokenizer;
use crate::executor::{ExecJob, ExecStatus, Executor};
use crate::model::{generate, SamplingParams, Snapshot, StopReason};
use crate::tasks::{TaskRegistry, Verdict};
use crate::types::TaskKind;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Correct answers out of a total.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    /// Correct answers.
    pub correct: usize,
    /// Tasks scored.
    pub total: usize,
}

impl Tally {
    /// `correct / total` (0 for an empty tally).
    pub fn accuracy(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.correct as f64 / self.total as f64
        }
    }

    fn add(&mut self, ok: bool) {
        self.total += 1;
        self.correct += usize::from(ok);
    }
}

/// Scores of one task kind.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KindReport {
    /// All tasks of the kind.
    pub all: Tally,
    /// Tasks whose template occurs in training.
    pub seen_templates: Tally,
    /// Tasks whose template never occurs in training.
    pub unseen_templates: Tally,
    /// Per family.
    pub families: BTreeMap<String, Tally>,
}

/// Greedy held-out scores per task kind.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// Per kind (`deduction`, `abduction`, `induction`).
    pub kinds: BTreeMap<TaskKind, KindReport>,
}

impl EvalReport {
    /// Accuracy over all tasks of one kind (0 if absent).
    pub fn accuracy(&self, kind: TaskKind) -> f64 {
        self.kinds.get(&kind).map_or(0.0, |k| k.all.accuracy())
    }

    /// One line per kind, for logs and reports.
    pub fn summary(&self) -> String {
        self.kinds
            .iter()
            .map(|(k, r)| {
                format!(
                    "{k}: {:.3} ({}/{}; seen templates {:.3}, unseen {:.3})",
                    r.all.accuracy(),
                    r.all.correct,
                    r.all.total,
                    r.seen_templates.accuracy(),
                    r.unseen_templates.accuracy()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Decoding limits of [`evaluate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EvalLimits {
    /// New-token limit for deduction and abduction answers.
    pub max_answer_tokens: usize,
    /// New-token limit for induction programs.
    pub max_program_tokens: usize,
    /// Prompts decoded together.
    pub batch: usize,
}

thread_local! {
    static COMPACT: Option<TaskRegistry> = compact_registry().ok();
}

/// The solver prompt of a held-out task: its task type's prompt over the compact templates
/// (`None` for kinds that are not registered there).
pub fn prompt_of(task: &HeldoutTask) -> Option<String> {
    COMPACT.with(|r| {
        let tt = r.as_ref()?.get(task.kind)?;
        tt.solver_prompt(&task.to_task(0)).ok()
    })
}

/// Greedily answer every task of `set` with `snap` and score the answers.
pub fn evaluate(
    snap: &Snapshot,
    tokenizer: &TinyTokenizer,
    executor: &Executor,
    set: &HeldoutSet,
    limits: EvalLimits,
) -> Result<EvalReport, PretrainError> {
    let mut report = EvalReport::default();
    let mut kinds: Vec<TaskKind> = Vec::new();
    for t in &set.tasks {
        if !kinds.contains(&t.kind) {
            kinds.push(t.kind);
        }
    }
    for kind in kinds {
        let tasks: Vec<&HeldoutTask> = set.of_kind(kind).collect();
        // Tasks with hidden pairs are answered with a program.
        let max_new = if tasks.iter().any(|t| t.visible < t.pairs.len()) {
            limits.max_program_tokens
        } else {
            limits.max_answer_tokens
        };
        let mut answers: Vec<Option<String>> = Vec::with_capacity(tasks.len());
        for chunk in tasks.chunks(limits.batch.max(1)) {
            let prompts = chunk
                .iter()
                .map(|t| {
                    let p = prompt_of(t).unwrap_or_default();
                    tokenizer.encode(&p)
                })
                .collect::<Result<Vec<_>, _>>()?;
            let params = SamplingParams {
                stop_token_ids: vec![tokenizer.end_id],
                ..SamplingParams::greedy(max_new)
            };
            let gens = generate(snap, &prompts, &params)
                .map_err(|e| PretrainError::Model(e.to_string()))?;
            for g in gens {
                answers.push(match g.stop {
                    StopReason::StopToken(_) => {
                        Some(tokenizer.decode(&g.tokens[..g.tokens.len() - 1])?)
                    }
                    StopReason::Length => None,
                });
            }
        }
        let verdicts = score(kind, &tasks, &answers, executor);
        let kr = report.kinds.entry(kind).or_default();
        for (task, ok) in tasks.iter().zip(verdicts) {
            kr.all.add(ok);
            if task.unseen_template {
                kr.unseen_templates.add(ok);
            } else {
                kr.seen_templates.add(ok);
            }
            kr.families
                .entry(task.family.as_str().to_string())
                .or_default()
                .add(ok);
        }
    }
    Ok(report)
}

/// Score answers (aligned with `tasks`; `None` = no `<end>`) of one kind. Deduction is an exact
/// `repr` match, abduction and induction run in the sandbox as described above; any other kind
/// is graded by its compact task type (full credit counts as correct).
pub fn score(
    kind: TaskKind,
    tasks: &[&HeldoutTask],
    answers: &[Option<String>],
    executor: &Executor,
) -> Vec<bool> {
    match kind {
        TaskKind::Deduction => tasks
            .iter()
            .zip(answers)
            .map(|(t, a)| matches!((a, t.pairs.first()), (Some(a), Some(p)) if *a == p.output))
            .collect(),
        TaskKind::Abduction | TaskKind::Induction => {
            // One executor job per (task, pair to check); tasks without an answer get none.
            let mut jobs = Vec::new();
            let mut owners = Vec::new();
            for (i, (t, a)) in tasks.iter().zip(answers).enumerate() {
                let Some(a) = a else { continue };
                if kind == TaskKind::Abduction {
                    if let Some(p) = t.pairs.first() {
                        jobs.push(ExecJob {
                            code: t.code.clone(),
                            input: a.clone(),
                        });
                        owners.push((i, p.output.clone()));
                    }
                } else {
                    let code = a.trim_end().to_string();
                    for p in &t.pairs {
                        jobs.push(ExecJob {
                            code: code.clone(),
                            input: p.input.clone(),
                        });
                        owners.push((i, p.output.clone()));
                    }
                }
            }
            let outcomes = executor.run_many(&jobs);
            let mut ok: Vec<bool> = answers.iter().map(Option::is_some).collect();
            for ((i, gold), out) in owners.into_iter().zip(outcomes) {
                let good = out.status == ExecStatus::Ok && out.repr.as_deref() == Some(&gold);
                ok[i] &= good;
            }
            ok
        }
        _ => COMPACT.with(|r| {
            let tt = r.as_ref().and_then(|r| r.get(kind));
            tasks
                .iter()
                .zip(answers)
                .map(|(t, a)| match (tt, a) {
                    (Some(tt), Some(a)) => {
                        let end = crate::pretrain::tokenizer::END;
                        tt.grade(&t.to_task(0), &format!("{a}{end}"), executor)
                            .score
                            .verdict
                            == Verdict::Correct
                    }
                    _ => false,
                })
                .collect()
        }),
    }
}
