//! The `reverse` task kind: a task is a short string, its answer the string reversed.
//!
//! The solving side ([`TaskType`]) builds the solver prompt from the `[reverse]` template
//! section, parses the answer (a Python string literal ending at the next tag) and checks it in
//! Rust with partial credit: the share of positions that hold the right character. The
//! proposing side ([`Proposer`]) asks the policy for a new string, parses it and validates it in
//! Rust (a quoted string of printable ASCII, at most `max_len` characters), so no program runs.

use std::sync::Arc;

use azr_core::executor::{ExecStatus, Executor};
use azr_core::tasks::template::{render, require};
use azr_core::tasks::{
    Answer, FormatError, Invalid, Proposal, Proposer, ProposerPrompt, Provenance, Score, Task,
    TaskError, TaskType, TasksConfig, TemplateError, TemplateSet,
};
use azr_core::types::TaskKind;
use serde::Deserialize;

/// The kind's registry name: `selfplay.task_kinds = ["reverse"]`, the `task` metric label, the
/// template section and the `[tasks.kind.reverse]` settings table.
pub const KIND: TaskKind = TaskKind::from_static("reverse");

/// The `[reverse]` template section (see `templates/compact.toml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Section {
    /// One reference task in a proposer prompt: `{input}`, `{output}`.
    reference: String,
    /// The proposer prompt: `{references}`.
    propose: String,
    /// A perfect proposer reply: `{input}`, `{output}`.
    proposal: String,
    /// The solver prompt: `{input}`.
    solve: String,
    /// A perfect solver reply: `{output}`.
    answer: String,
    /// The strings the kind's buffer starts from.
    seeds: Vec<String>,
}

/// `[tasks.kind.reverse]` settings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReverseSettings {
    /// Longest string a proposal may use.
    pub max_len: usize,
}

impl Default for ReverseSettings {
    fn default() -> Self {
        Self { max_len: 16 }
    }
}

/// The `reverse` task type.
pub struct Reverse {
    templates: Arc<TemplateSet>,
    section: Section,
    settings: ReverseSettings,
    references: usize,
}

impl Reverse {
    /// The task type over a template set that has a `[reverse]` section; `tasks.references`
    /// reference tasks per proposer prompt, settings from `[tasks.kind.reverse]`.
    pub fn new(templates: Arc<TemplateSet>, tasks: &TasksConfig) -> Result<Self, TemplateError> {
        let section: Section = templates.section(KIND.as_str())?;
        require(
            "reverse.reference",
            &section.reference,
            &["input", "output"],
        )?;
        require("reverse.propose", &section.propose, &["references"])?;
        require("reverse.proposal", &section.proposal, &["input", "output"])?;
        require("reverse.solve", &section.solve, &["input"])?;
        require("reverse.answer", &section.answer, &["output"])?;
        let settings: ReverseSettings = tasks.kind_settings(KIND.as_str())?;
        if settings.max_len == 0 {
            return Err(TemplateError::Settings {
                kind: KIND.to_string(),
                message: "max_len must be at least 1".to_string(),
            });
        }
        Ok(Self {
            templates,
            section,
            settings,
            references: tasks.references,
        })
    }

    /// The text before the first tag of the template set's format (the end of a generated
    /// field); a format error when no tag ends it (the generation ran out of tokens).
    fn field<'t>(&self, text: &'t str) -> Result<&'t str, FormatError> {
        let tags = self.templates.format.tags();
        let end = tags
            .iter()
            .filter(|t| !t.is_empty())
            .filter_map(|t| text.find(t))
            .min()
            .ok_or_else(|| FormatError::Unterminated(self.templates.format.end.clone()))?;
        let field = text[..end].trim();
        if field.is_empty() {
            return Err(FormatError::EmptyBlock(self.templates.format.input.clone()));
        }
        Ok(field)
    }

    /// A task of `word` (the gold answer is its reverse).
    fn task(word: &str, provenance: Provenance) -> Task {
        Task {
            kind: KIND,
            program: String::new(),
            pairs: Vec::new(),
            visible: 0,
            message: String::new(),
            problem: word.to_string(),
            answer: word.chars().rev().collect(),
            provenance,
        }
    }

    fn check_kind(task: &Task) -> Result<(), TaskError> {
        if task.kind == KIND {
            Ok(())
        } else {
            Err(TaskError::WrongKind {
                expected: KIND,
                got: task.kind,
            })
        }
    }

    /// Build a task from a proposed string, or say why it is not one.
    fn validate_word(&self, word: &str, provenance: Provenance) -> Result<Task, Invalid> {
        let invalid = |detail: String| Invalid::Exec {
            index: 0,
            status: ExecStatus::Invalid,
            detail,
        };
        let len = word.chars().count();
        if len == 0 || len > self.settings.max_len {
            return Err(invalid(format!(
                "a string of 1 to {} characters is needed, got {len}",
                self.settings.max_len
            )));
        }
        if !word.chars().all(plain_char) {
            return Err(invalid(
                "only printable ASCII without quotes or backslashes".to_string(),
            ));
        }
        Ok(Self::task(word, provenance))
    }
}

/// A character a task string may hold: its Python `repr` is then `'...'` with nothing escaped.
fn plain_char(c: char) -> bool {
    (' '..='~').contains(&c) && c != '\'' && c != '"' && c != '\\'
}

/// Python's `repr` of a plain string.
fn repr(s: &str) -> String {
    format!("'{s}'")
}

/// The contents of a quoted string literal without escapes (`'abc'` or `"abc"`).
fn unquote(text: &str) -> Option<&str> {
    let q = text.chars().next()?;
    if !(q == '\'' || q == '"') || text.len() < 2 || !text.ends_with(q) {
        return None;
    }
    let inner = &text[1..text.len() - 1];
    (!inner.contains(q) && !inner.contains('\\')).then_some(inner)
}

impl TaskType for Reverse {
    fn kind(&self) -> TaskKind {
        KIND
    }

    fn solver_prompt(&self, task: &Task) -> Result<String, TaskError> {
        Self::check_kind(task)?;
        let body = render(&self.section.solve, &[("input", &repr(&task.problem))]);
        Ok(self.templates.wrap(&body))
    }

    fn parse_answer(&self, text: &str) -> Result<Answer, FormatError> {
        Ok(Answer {
            kind: KIND,
            text: self.field(text)?.to_string(),
        })
    }

    /// Partial credit: the share of positions (of the longer of answer and gold) holding the
    /// gold character; an answer that is not a string literal is wrong.
    fn check(&self, task: &Task, answer: &Answer, _exec: &Executor) -> Score {
        let Some(got) = unquote(&answer.text) else {
            return Score::wrong();
        };
        let gold: Vec<char> = task.answer.chars().collect();
        let got: Vec<char> = got.chars().collect();
        let hits = gold.iter().zip(&got).filter(|(a, b)| a == b).count();
        Score::fraction(hits, gold.len().max(got.len()))
    }

    fn answer_text(&self, task: &Task) -> Result<String, TaskError> {
        Self::check_kind(task)?;
        Ok(render(
            &self.section.answer,
            &[("output", &repr(&task.answer))],
        ))
    }

    fn proposer(&self) -> Option<&dyn Proposer> {
        Some(self)
    }
}

impl Proposer for Reverse {
    fn num_references(&self) -> usize {
        self.references
    }

    fn proposer_prompt(&self, references: &[Task]) -> Result<ProposerPrompt, TaskError> {
        if references.is_empty() {
            return Err(TaskError::MissingReferences {
                kind: KIND,
                need: 1,
                got: 0,
            });
        }
        let mut rendered = String::new();
        for r in references {
            Self::check_kind(r)?;
            rendered.push_str(&render(
                &self.section.reference,
                &[("input", &repr(&r.problem)), ("output", &repr(&r.answer))],
            ));
        }
        let body = render(&self.section.propose, &[("references", &rendered)]);
        Ok(ProposerPrompt {
            kind: KIND,
            text: self.templates.wrap(&body),
            program: None,
        })
    }

    fn parse_proposal(
        &self,
        _prompt: &ProposerPrompt,
        text: &str,
    ) -> Result<Proposal, FormatError> {
        Ok(Proposal {
            kind: KIND,
            program: String::new(),
            inputs: vec![self.field(text)?.to_string()],
            message: String::new(),
        })
    }

    fn validate_proposal(
        &self,
        proposal: &Proposal,
        _exec: &Executor,
        provenance: Provenance,
    ) -> Result<Task, Invalid> {
        if proposal.kind != KIND {
            return Err(Invalid::WrongKind {
                expected: KIND,
                got: proposal.kind,
            });
        }
        let [input] = proposal.inputs.as_slice() else {
            return Err(Invalid::InputCount {
                need: 1,
                got: proposal.inputs.len(),
            });
        };
        let word = unquote(input).ok_or_else(|| Invalid::Exec {
            index: 0,
            status: ExecStatus::Invalid,
            detail: format!("not a string literal: {input}"),
        })?;
        self.validate_word(word, provenance)
    }

    fn proposal_text(&self, task: &Task) -> Result<String, TaskError> {
        Self::check_kind(task)?;
        Ok(render(
            &self.section.proposal,
            &[
                ("input", &repr(&task.problem)),
                ("output", &repr(&task.answer)),
            ],
        ))
    }

    fn seed_tasks(&self, _exec: &Executor) -> Result<Vec<Task>, Invalid> {
        self.section
            .seeds
            .iter()
            .map(|w| self.validate_word(w, Provenance::seed()))
            .collect()
    }
}
