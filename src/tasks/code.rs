//! Shared machinery of the code task types: single-input proposals (deduction and abduction
//! propose the same thing, a program plus one input), validation in the sandbox, gold values and
//! the literal-only guard for solver-written inputs.

use super::parse::{answer_region, first_block, normalize_program};
use super::template::{render, CodeTemplates, Field, TemplateSet};
use super::{FormatError, Invalid, IoPair, Proposal, ProposerPrompt, Provenance, Task, TaskError};
use crate::executor::{ExecStatus, Executor, Outcome, PyValue};
use crate::types::TaskKind;
use std::sync::Arc;

/// Turn a failed executor outcome into an [`Invalid`].
pub fn invalid_from(index: usize, outcome: &Outcome) -> Invalid {
    Invalid::Exec {
        index,
        status: outcome.status,
        detail: outcome.error.clone().unwrap_or_default(),
    }
}

/// Validate `f(input)` in the sandbox (parse, banned imports, determinism) and return the gold
/// pair.
pub fn validated_pair(
    exec: &Executor,
    program: &str,
    input: &str,
    index: usize,
) -> Result<IoPair, Invalid> {
    pair_from_outcome(index, input, &exec.validate(program, input))
}

/// The gold pair of a validation outcome, or why it is invalid.
pub fn pair_from_outcome(index: usize, input: &str, outcome: &Outcome) -> Result<IoPair, Invalid> {
    match (&outcome.status, &outcome.value, &outcome.repr) {
        (ExecStatus::Ok, Some(value), Some(repr)) => Ok(IoPair {
            input: input.trim().to_string(),
            output: repr.clone(),
            value: Some(value.clone()),
        }),
        (ExecStatus::Ok, _, _) => Err(Invalid::Exec {
            index,
            status: ExecStatus::SandboxFailure,
            detail: "ok outcome without a value".to_string(),
        }),
        _ => Err(invalid_from(index, outcome)),
    }
}

/// The canonical gold value of a pair: the stored one, or its `repr` parsed as a literal in the
/// sandbox (items loaded from files). `None` when the repr is not a literal.
pub fn gold_value(exec: &Executor, pair: &IoPair) -> Option<PyValue> {
    match &pair.value {
        Some(v) => Some(v.clone()),
        None => exec.parse_literal(&pair.output).ok(),
    }
}

/// Run `program` on `input` and compare the result with `gold`. The executor parses `input`
/// strictly as the argument list of one call `f(...)` whose arguments are all literals, so
/// solver-written inputs such as `4) or (True` are rejected, never evaluated.
pub fn output_matches(exec: &Executor, program: &str, input: &str, gold: &PyValue) -> bool {
    let outcome = exec.run(program, input);
    outcome.status == ExecStatus::Ok && outcome.value.as_ref().is_some_and(|v| v.same_as(gold))
}

/// Proposal side of a single-input code kind (deduction, abduction).
#[derive(Debug, Clone)]
pub struct SingleIo {
    /// The kind (deduction or abduction).
    pub kind: TaskKind,
    /// Template set.
    pub templates: Arc<TemplateSet>,
    /// References shown to the proposer.
    pub references: usize,
    /// Reject programs with more than one `def`.
    pub reject_multiple: bool,
    /// Response prefix of the proposer prompt.
    pub propose_prefix: String,
    /// Response prefix of the solver prompt.
    pub solve_prefix: String,
}

impl SingleIo {
    /// Set up for `kind` (deduction or abduction).
    pub fn new(
        kind: TaskKind,
        templates: Arc<TemplateSet>,
        references: usize,
        reject_multiple: bool,
    ) -> Self {
        let t = Self::kind_templates_of(&templates, kind);
        let propose_prefix = templates.response_prefix(&t.propose, true);
        let solve_prefix = templates.response_prefix(&t.solve, true);
        Self {
            kind,
            templates,
            references,
            reject_multiple,
            propose_prefix,
            solve_prefix,
        }
    }

    fn kind_templates_of(templates: &TemplateSet, kind: TaskKind) -> &CodeTemplates {
        if kind == TaskKind::Abduction {
            &templates.abduction
        } else {
            &templates.deduction
        }
    }

    /// This kind's templates.
    pub fn kind_templates(&self) -> &CodeTemplates {
        Self::kind_templates_of(&self.templates, self.kind)
    }

    /// Proposer prompt with the given references (all of them are shown).
    pub fn proposer_prompt(&self, references: &[Task]) -> ProposerPrompt {
        let t = self.kind_templates();
        let rendered: String = references
            .iter()
            .filter_map(|r| r.pair().map(|p| (r, p)))
            .enumerate()
            .map(|(i, (r, p))| {
                render(
                    &t.reference,
                    &[
                        ("index", &(i + 1).to_string()),
                        ("program", r.program.trim_end()),
                        ("input", &p.input),
                        ("output", &p.output),
                    ],
                )
            })
            .collect();
        let body = render(
            &t.propose,
            &[
                ("references", &rendered),
                ("num_references", &references.len().to_string()),
            ],
        );
        ProposerPrompt {
            kind: self.kind,
            text: self.templates.wrap(&body),
            program: None,
        }
    }

    /// The single pair of a deduction/abduction task.
    pub fn pair_of<'t>(&self, task: &'t Task) -> Result<&'t IoPair, TaskError> {
        if task.kind != TaskKind::Deduction && task.kind != TaskKind::Abduction {
            return Err(TaskError::WrongKind {
                expected: self.kind,
                got: task.kind,
            });
        }
        task.pair().ok_or(TaskError::MissingReferences {
            kind: self.kind,
            need: 1,
            got: 0,
        })
    }

    /// A perfect proposer reply for `task`.
    pub fn proposal_text(&self, task: &Task) -> Result<String, TaskError> {
        let pair = self.pair_of(task)?;
        Ok(render(
            &self.kind_templates().proposal,
            &[
                ("program", task.program.trim_end()),
                ("input", &pair.input),
                ("output", &pair.output),
            ],
        ))
    }

    /// Parse a program + one input.
    pub fn parse_proposal(&self, text: &str) -> Result<Proposal, FormatError> {
        let f = &self.templates.format;
        let region = answer_region(f, &self.propose_prefix, text, true)?;
        let program = first_block(f, &region, Field::Program)?;
        let program = normalize_program(&program, self.reject_multiple)?;
        let input = first_block(f, &region, Field::Input)?;
        Ok(Proposal {
            kind: self.kind,
            program,
            inputs: vec![input],
            message: String::new(),
        })
    }

    /// Validate a proposal into a task.
    pub fn validate(
        &self,
        proposal: &Proposal,
        exec: &Executor,
        provenance: Provenance,
    ) -> Result<Task, Invalid> {
        if proposal.kind != self.kind {
            return Err(Invalid::WrongKind {
                expected: self.kind,
                got: proposal.kind,
            });
        }
        if proposal.inputs.len() != 1 {
            return Err(Invalid::InputCount {
                need: 1,
                got: proposal.inputs.len(),
            });
        }
        let pair = validated_pair(exec, &proposal.program, &proposal.inputs[0], 0)?;
        Ok(Task::code(
            self.kind,
            proposal.program.clone(),
            pair,
            provenance,
        ))
    }
}
