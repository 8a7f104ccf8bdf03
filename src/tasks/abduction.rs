//! Abduction (AZR `code_i`): given a program and an output, find an input producing it.
//!
//! Any input works: the predicted arguments (which must be plain literals, as the executor
//! enforces) are run through the
//! program inside the sandbox and the result is compared with the gold value.

use super::code::{gold_value, output_matches, SingleIo};
use super::parse::{answer_region, required_block};
use super::template::{render, Field, TemplateSet};
use super::{
    Answer, FormatError, Invalid, Proposal, ProposerPrompt, Provenance, Task, TaskError, TaskType,
    Verdict,
};
use crate::executor::Executor;
use crate::types::TaskKind;
use std::sync::Arc;

/// The abduction task type.
#[derive(Debug, Clone)]
pub struct Abduction {
    io: SingleIo,
}

impl Abduction {
    /// Abduction with `references` references per proposer prompt.
    pub fn new(templates: Arc<TemplateSet>, references: usize, reject_multiple: bool) -> Self {
        Self {
            io: SingleIo::new(TaskKind::Abduction, templates, references, reject_multiple),
        }
    }
}

impl TaskType for Abduction {
    fn kind(&self) -> TaskKind {
        TaskKind::Abduction
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
                expected: TaskKind::Abduction,
                got: task.kind,
            });
        }
        let pair = task.pair().ok_or(TaskError::MissingReferences {
            kind: TaskKind::Abduction,
            need: 1,
            got: 0,
        })?;
        let body = render(
            &self.io.kind_templates().solve,
            &[
                ("program", task.program.trim_end()),
                ("output", &pair.output),
            ],
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
            &[("input", &pair.input)],
        ))
    }

    fn parse_answer(&self, text: &str) -> Result<Answer, FormatError> {
        let f = &self.io.templates.format;
        let region = answer_region(f, &self.io.solve_prefix, text, true)?;
        Ok(Answer {
            kind: TaskKind::Abduction,
            text: required_block(f, &region, Field::Input)?,
        })
    }

    fn check(&self, task: &Task, answer: &Answer, exec: &Executor) -> Verdict {
        let Some(gold) = task.pair().and_then(|p| gold_value(exec, p)) else {
            return Verdict::Wrong;
        };
        if output_matches(exec, &task.program, &answer.text, &gold) {
            Verdict::Correct
        } else {
            Verdict::Wrong
        }
    }
}
