//! Math (1-shot RLVR and the math benchmarks): a problem with a reference answer; the solver's
//! answer is the last `\boxed{}` of its response, graded by [`math_grader::is_equiv`].
//!
//! Math is solve only: it implements [`TaskType`] and no [`Proposer`](super::Proposer); its
//! tasks come from data files (see `crate::data`).

use super::math_grader;
use super::parse::{answer_region, last_boxed, required_block};
use super::template::{render, require, BlockStyle, Field, TemplateError, TemplateSet};
use super::{Answer, FormatError, Score, Task, TaskError, TaskType};
use crate::executor::Executor;
use crate::types::TaskKind;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The `[math]` template section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MathTemplates {
    /// Solver prompt: `{problem}`.
    pub solve: String,
    /// A perfect solver reply: `{answer}`.
    pub answer: String,
    /// Embed the prompt in the wrapper and require its tags (default false, as in 1-shot RLVR).
    #[serde(default)]
    pub wrapped: bool,
}

/// The math task type.
#[derive(Debug, Clone)]
pub struct Math {
    templates: Arc<TemplateSet>,
    section: MathTemplates,
    solve_prefix: String,
}

impl Math {
    /// Math with the `[math]` section of `templates`.
    pub fn new(templates: Arc<TemplateSet>) -> Result<Self, TemplateError> {
        let section: MathTemplates = templates.section("math")?;
        require("math.solve", &section.solve, &["problem"])?;
        require("math.answer", &section.answer, &["answer"])?;
        let solve_prefix = templates.response_prefix(&section.solve, section.wrapped);
        Ok(Self {
            templates,
            section,
            solve_prefix,
        })
    }

    /// The section in use.
    pub fn templates(&self) -> &MathTemplates {
        &self.section
    }
}

impl TaskType for Math {
    fn kind(&self) -> TaskKind {
        TaskKind::Math
    }

    fn solver_prompt(&self, task: &Task) -> Result<String, TaskError> {
        if task.kind != TaskKind::Math {
            return Err(TaskError::WrongKind {
                expected: TaskKind::Math,
                got: task.kind,
            });
        }
        let body = render(&self.section.solve, &[("problem", task.problem.trim())]);
        Ok(if self.section.wrapped {
            self.templates.wrap(&body)
        } else {
            body
        })
    }

    fn answer_text(&self, task: &Task) -> Result<String, TaskError> {
        Ok(render(
            &self.section.answer,
            &[("answer", task.answer.trim())],
        ))
    }

    /// The last `\boxed{}` of the answer region; in the tagged style an unboxed answer segment
    /// (`42<end>`) is accepted too.
    fn parse_answer(&self, text: &str) -> Result<Answer, FormatError> {
        let f = &self.templates.format;
        let region = answer_region(f, &self.solve_prefix, text, self.section.wrapped)?;
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

    fn check(&self, task: &Task, answer: &Answer, _exec: &Executor) -> Score {
        Score::binary(math_grader::is_equiv(&answer.text, &task.answer))
    }
}
