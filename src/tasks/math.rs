//! Math (1-shot RLVR and the math benchmarks): a problem with a reference answer; the solver's
//! answer is the last `\boxed{}` of its response, graded by [`math_grader::is_equiv`].
//!
//! Math tasks are not proposed by the policy: they come from data files (see `crate::data`).

use super::math_grader;
use super::parse::{answer_region, last_boxed, required_block};
use super::template::{render, BlockStyle, Field, TemplateSet};
use super::{
    Answer, FormatError, Invalid, Proposal, ProposerPrompt, Provenance, Task, TaskError, TaskType,
    Verdict,
};
use crate::executor::Executor;
use crate::types::TaskKind;
use std::sync::Arc;

/// The math task type.
#[derive(Debug, Clone)]
pub struct Math {
    templates: Arc<TemplateSet>,
    solve_prefix: String,
}

impl Math {
    /// Math with the given templates.
    pub fn new(templates: Arc<TemplateSet>) -> Self {
        let solve_prefix = templates.response_prefix(&templates.math.solve, templates.math.wrapped);
        Self {
            templates,
            solve_prefix,
        }
    }
}

impl TaskType for Math {
    fn kind(&self) -> TaskKind {
        TaskKind::Math
    }

    fn can_propose(&self) -> bool {
        false
    }

    fn num_references(&self) -> usize {
        0
    }

    fn proposer_prompt(&self, _references: &[Task]) -> Result<ProposerPrompt, TaskError> {
        Err(TaskError::NotProposable(TaskKind::Math))
    }

    fn parse_proposal(
        &self,
        _prompt: &ProposerPrompt,
        _text: &str,
    ) -> Result<Proposal, FormatError> {
        Err(FormatError::NotProposable)
    }

    fn validate_proposal(
        &self,
        _proposal: &Proposal,
        _exec: &Executor,
        _provenance: Provenance,
    ) -> Result<Task, Invalid> {
        Err(Invalid::NotProposable(TaskKind::Math))
    }

    fn solver_prompt(&self, task: &Task) -> Result<String, TaskError> {
        if task.kind != TaskKind::Math {
            return Err(TaskError::WrongKind {
                expected: TaskKind::Math,
                got: task.kind,
            });
        }
        let body = render(
            &self.templates.math.solve,
            &[("problem", task.problem.trim())],
        );
        Ok(if self.templates.math.wrapped {
            self.templates.wrap(&body)
        } else {
            body
        })
    }

    fn proposal_text(&self, _task: &Task) -> Result<String, TaskError> {
        Err(TaskError::NotProposable(TaskKind::Math))
    }

    fn answer_text(&self, task: &Task) -> Result<String, TaskError> {
        Ok(render(
            &self.templates.math.answer,
            &[("answer", task.answer.trim())],
        ))
    }

    /// The last `\boxed{}` of the answer region; in the tagged style an unboxed answer segment
    /// (`42<end>`) is accepted too.
    fn parse_answer(&self, text: &str) -> Result<Answer, FormatError> {
        let f = &self.templates.format;
        let region = answer_region(f, &self.solve_prefix, text, self.templates.math.wrapped)?;
        let boxed = last_boxed(&region).filter(|b| !b.trim().is_empty());
        let text = match (boxed, f.style) {
            (Some(b), _) => b,
            (None, BlockStyle::Tagged) => required_block(f, &region, Field::Output)?,
            (None, BlockStyle::Fenced) => return Err(FormatError::NoBoxed),
        };
        Ok(Answer {
            kind: TaskKind::Math,
            text,
        })
    }

    fn check(&self, task: &Task, answer: &Answer, _exec: &Executor) -> Verdict {
        if math_grader::is_equiv(&answer.text, &task.answer) {
            Verdict::Correct
        } else {
            Verdict::Wrong
        }
    }
}
