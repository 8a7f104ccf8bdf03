//! Deduction (AZR `code_o`): given a program and an input, predict the output.
//!
//! The answer is parsed as a Python literal in the sandbox and compared with the gold value by
//! [`PyValue::same_as`](crate::executor::PyValue::same_as); nothing is evaluated in the host.

use super::code::{gold_value, SingleIo};
use super::parse::{answer_region, required_block};
use super::template::{render, Field, TemplateSet};
use super::{
    Answer, FormatError, Invalid, Proposal, ProposerPrompt, Provenance, Task, TaskError, TaskType,
    Verdict,
};
use crate::executor::Executor;
use crate::types::TaskKind;
use std::sync::Arc;

/// The deduction task type.
#[derive(Debug, Clone)]
pub struct Deduction {
    io: SingleIo,
}

impl Deduction {
    /// Deduction with `references` references per proposer prompt.
    pub fn new(templates: Arc<TemplateSet>, references: usize, reject_multiple: bool) -> Self {
        Self {
            io: SingleIo::new(TaskKind::Deduction, templates, references, reject_multiple),
        }
    }
}

impl TaskType for Deduction {
    fn kind(&self) -> TaskKind {
        TaskKind::Deduction
    }

    fn num_references(&self) -> usize {
        self.io.references
    }

    fn proposer_prompt(&self, references: &[Task]) -> Result<ProposerPrompt, TaskError> {
        Ok(self.io.proposer_prompt(references))
    }

    fn parse_proposal(
        &self,
        _prompt: &ProposerPrompt,
        text: &str,
    ) -> Result<Proposal, FormatError> {
        self.io.parse_proposal(text)
    }

    fn validate_proposal(
        &self,
        proposal: &Proposal,
        exec: &Executor,
        provenance: Provenance,
    ) -> Result<Task, Invalid> {
        self.io.validate(proposal, exec, provenance)
    }

    fn solver_prompt(&self, task: &Task) -> Result<String, TaskError> {
        if task.kind != TaskKind::Deduction && task.kind != TaskKind::Abduction {
            return Err(TaskError::WrongKind {
                expected: TaskKind::Deduction,
                got: task.kind,
            });
        }
        let pair = task.pair().ok_or(TaskError::MissingReferences {
            kind: TaskKind::Deduction,
            need: 1,
            got: 0,
        })?;
        let body = render(
            &self.io.kind_templates().solve,
            &[("program", task.program.trim_end()), ("input", &pair.input)],
        );
        Ok(self.io.templates.wrap(&body))
    }

    fn proposal_text(&self, task: &Task) -> Result<String, TaskError> {
        self.io.proposal_text(task)
    }

    fn answer_text(&self, task: &Task) -> Result<String, TaskError> {
        let pair = self.io.pair_of(task)?;
        Ok(render(
            &self.io.kind_templates().answer,
            &[("output", &pair.output)],
        ))
    }

    fn parse_answer(&self, text: &str) -> Result<Answer, FormatError> {
        let f = &self.io.templates.format;
        let region = answer_region(f, &self.io.solve_prefix, text, true)?;
        Ok(Answer {
            kind: TaskKind::Deduction,
            text: required_block(f, &region, Field::Output)?,
        })
    }

    fn check(&self, task: &Task, answer: &Answer, exec: &Executor) -> Verdict {
        let Some(gold) = task.pair().and_then(|p| gold_value(exec, p)) else {
            return Verdict::Wrong;
        };
        match exec.parse_literal(&answer.text) {
            Ok(v) if v.same_as(&gold) => Verdict::Correct,
            _ => Verdict::Wrong,
        }
    }
}
