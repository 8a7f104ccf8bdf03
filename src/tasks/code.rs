//! Shared machinery of the code task types: the single-input kinds (deduction and abduction
//! propose the same thing, a program plus one input, and differ only in what the solver is
//! shown and answers: see [`IoMode`]), the `[seed]` section, validation in the sandbox, gold
//! values and the literal-only guard for solver-written inputs.

use super::parse::{answer_region, first_block, normalize_program, required_block};
use super::template::{render, require, Field, TemplateError, TemplateSet};
use super::{
    Answer, FormatError, Invalid, IoPair, Proposal, Proposer, ProposerPrompt, Provenance, Score,
    Task, TaskError, TaskType,
};
use crate::executor::{ExecJob, ExecStatus, Executor, Outcome, PyValue};
use crate::types::TaskKind;
use serde::{Deserialize, Serialize};
use std::marker::PhantomData;
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

/// Validate `f(input)` for every input in one sandbox batch and return the gold pairs in input
/// order, or why the first failing one is invalid.
pub fn validated_pairs(
    exec: &Executor,
    program: &str,
    inputs: &[String],
) -> Result<Vec<IoPair>, Invalid> {
    let jobs: Vec<ExecJob> = inputs
        .iter()
        .map(|input| ExecJob {
            code: program.to_string(),
            input: input.clone(),
        })
        .collect();
    let outcomes = exec.validate_many(&jobs);
    if outcomes.len() != inputs.len() {
        return Err(Invalid::Exec {
            index: outcomes.len(),
            status: ExecStatus::SandboxFailure,
            detail: "missing validation outcomes".to_string(),
        });
    }
    inputs
        .iter()
        .zip(&outcomes)
        .enumerate()
        .map(|(i, (input, o))| pair_from_outcome(i, input, o))
        .collect()
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

/// `[seed]`: the zero task the code kinds' buffers start from (AZR: the identity function).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedTemplates {
    /// Seed program.
    pub program: String,
    /// Seed input of the deduction/abduction seed task.
    pub input: String,
    /// Inputs of the induction seed task.
    pub induction_inputs: Vec<String>,
    /// Message of the induction seed task.
    pub induction_message: String,
}

/// The section of a single-pair code kind (`[deduction]`, `[abduction]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeTemplates {
    /// Proposer prompt: `{references}`, `{num_references}`.
    pub propose: String,
    /// One reference: `{index}`, `{program}`, `{input}`, `{output}`.
    pub reference: String,
    /// Solver prompt (deduction: `{program}` `{input}`; abduction: `{program}` `{output}`).
    pub solve: String,
    /// A perfect proposer reply: `{program}`, `{input}`, `{output}`.
    pub proposal: String,
    /// A perfect solver reply (deduction: `{output}`; abduction: `{input}`).
    pub answer: String,
}

/// What distinguishes the single-pair code kinds: which half of the pair the solver sees, which
/// it answers, and how an answer is checked. [`deduction`](super::deduction) and
/// [`abduction`](super::abduction) are the two implementations.
pub trait IoMode: Send + Sync + 'static {
    /// The kind.
    const KIND: TaskKind;
    /// The field the solver answers in (deduction: output; abduction: input).
    const ANSWER: Field;
    /// Placeholder the solver prompt shows besides `{program}`, and the one the perfect answer
    /// fills (deduction: `input` / `output`; abduction: `output` / `input`).
    const SHOWN: &'static str;
    /// See [`IoMode::SHOWN`].
    const ANSWERED: &'static str;
    /// Check an answer text against the task's pair.
    fn check(task: &Task, pair: &IoPair, answer: &str, exec: &Executor) -> Score;
}

fn pair_field<'p>(pair: &'p IoPair, name: &str) -> &'p str {
    if name == "input" {
        &pair.input
    } else {
        &pair.output
    }
}

/// A single-pair code kind (deduction or abduction): proposes a program plus one input; the
/// solver sees the program and one half of the pair and answers the other.
pub struct SingleIo<M: IoMode> {
    templates: Arc<TemplateSet>,
    section: CodeTemplates,
    seed: SeedTemplates,
    references: usize,
    reject_multiple: bool,
    propose_prefix: String,
    solve_prefix: String,
    mode: PhantomData<M>,
}

impl<M: IoMode> std::fmt::Debug for SingleIo<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SingleIo")
            .field("kind", &M::KIND)
            .field("references", &self.references)
            .finish()
    }
}

impl<M: IoMode> SingleIo<M> {
    /// Read the kind's section (and `[seed]`) from `templates`, with `references` references per
    /// proposer prompt.
    pub fn new(
        templates: Arc<TemplateSet>,
        references: usize,
        reject_multiple: bool,
    ) -> Result<Self, TemplateError> {
        let name = M::KIND.as_str();
        let section: CodeTemplates = templates.section(name)?;
        let key = |k: &str| format!("{name}.{k}");
        require(&key("proposal"), &section.proposal, &["program", "input"])?;
        require(&key("answer"), &section.answer, &[M::ANSWERED])?;
        require(&key("propose"), &section.propose, &["references"])?;
        require(
            &key("reference"),
            &section.reference,
            &["program", "input", "output"],
        )?;
        require(&key("solve"), &section.solve, &["program", M::SHOWN])?;
        let seed: SeedTemplates = templates.section("seed")?;
        let propose_prefix = templates.response_prefix(&section.propose, true);
        let solve_prefix = templates.response_prefix(&section.solve, true);
        Ok(Self {
            templates,
            section,
            seed,
            references,
            reject_multiple,
            propose_prefix,
            solve_prefix,
            mode: PhantomData,
        })
    }

    /// The single pair of a task of this kind.
    fn pair_of<'t>(&self, task: &'t Task) -> Result<&'t IoPair, TaskError> {
        if task.kind != M::KIND {
            return Err(TaskError::WrongKind {
                expected: M::KIND,
                got: task.kind,
            });
        }
        task.pair().ok_or(TaskError::MissingReferences {
            kind: M::KIND,
            need: 1,
            got: 0,
        })
    }
}

impl<M: IoMode> TaskType for SingleIo<M> {
    fn kind(&self) -> TaskKind {
        M::KIND
    }

    fn solver_prompt(&self, task: &Task) -> Result<String, TaskError> {
        let pair = self.pair_of(task)?;
        let body = render(
            &self.section.solve,
            &[
                ("program", task.program.trim_end()),
                (M::SHOWN, pair_field(pair, M::SHOWN)),
            ],
        );
        Ok(self.templates.wrap(&body))
    }

    fn parse_answer(&self, text: &str) -> Result<Answer, FormatError> {
        let f = &self.templates.format;
        let region = answer_region(f, &self.solve_prefix, text, true)?;
        Ok(Answer {
            kind: M::KIND,
            text: required_block(f, &region, M::ANSWER)?,
        })
    }

    fn check(&self, task: &Task, answer: &Answer, exec: &Executor) -> Score {
        match task.pair() {
            Some(pair) => M::check(task, pair, &answer.text, exec),
            None => Score::wrong(),
        }
    }

    fn answer_text(&self, task: &Task) -> Result<String, TaskError> {
        let pair = self.pair_of(task)?;
        Ok(render(
            &self.section.answer,
            &[(M::ANSWERED, pair_field(pair, M::ANSWERED))],
        ))
    }

    fn proposer(&self) -> Option<&dyn Proposer> {
        Some(self)
    }

    fn example(&self, program: &str, pairs: &[IoPair], _message: &str) -> Option<Task> {
        let pair = pairs.first()?.clone();
        Some(Task::code(M::KIND, program, pair, Provenance::seed()))
    }
}

impl<M: IoMode> Proposer for SingleIo<M> {
    fn num_references(&self) -> usize {
        self.references
    }

    /// Every reference is shown.
    fn proposer_prompt(&self, references: &[Task]) -> Result<ProposerPrompt, TaskError> {
        let t = &self.section;
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
        Ok(ProposerPrompt {
            kind: M::KIND,
            text: self.templates.wrap(&body),
            program: None,
        })
    }

    /// A program and one input.
    fn parse_proposal(
        &self,
        _prompt: &ProposerPrompt,
        text: &str,
    ) -> Result<Proposal, FormatError> {
        let f = &self.templates.format;
        let region = answer_region(f, &self.propose_prefix, text, true)?;
        let program = first_block(f, &region, Field::Program)?;
        let program = normalize_program(&program, self.reject_multiple)?;
        let input = first_block(f, &region, Field::Input)?;
        Ok(Proposal {
            kind: M::KIND,
            program,
            inputs: vec![input],
            message: String::new(),
        })
    }

    fn validate_proposal(
        &self,
        proposal: &Proposal,
        exec: &Executor,
        provenance: Provenance,
    ) -> Result<Task, Invalid> {
        if proposal.kind != M::KIND {
            return Err(Invalid::WrongKind {
                expected: M::KIND,
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
            M::KIND,
            proposal.program.clone(),
            pair,
            provenance,
        ))
    }

    fn proposal_text(&self, task: &Task) -> Result<String, TaskError> {
        let pair = self.pair_of(task)?;
        Ok(render(
            &self.section.proposal,
            &[
                ("program", task.program.trim_end()),
                ("input", &pair.input),
                ("output", &pair.output),
            ],
        ))
    }

    /// `f(seed.input)` of the `[seed]` program.
    fn seed_tasks(&self, exec: &Executor) -> Result<Vec<Task>, Invalid> {
        let pair = validated_pair(exec, &self.seed.program, &self.seed.input, 0)?;
        Ok(vec![Task::code(
            M::KIND,
            self.seed.program.clone(),
            pair,
            Provenance::seed(),
        )])
    }
}
