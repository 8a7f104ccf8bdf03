//! Synthesis: program synthesis from a specification, with partial credit.
//!
//! The proposer writes a function **specification** (signature and docstring), a **reference
//! solution** and **test inputs**. Validation runs the reference on every input in the sandbox
//! (each call must succeed, be deterministic across two processes and import nothing banned),
//! which gives the gold outputs. The solver sees the specification and the first `num_visible`
//! tests as examples and writes the function; its score is the fraction of the other (hidden)
//! tests it passes ([`Score::fraction`]), so a partly right program earns partial credit.
//!
//! Benchmark tasks (HumanEval, see `crate::data::humaneval`) are synthesis tasks too: the spec
//! is the benchmark prompt, the tests are its calls, and their inputs (written by the benchmark's
//! authors, not the policy) may be expressions ([`Executor::run_trusted`]).
//!
//! Templates: the `[synthesis]` section (see [`SynthesisTemplates`]); settings:
//! `[tasks.kind.synthesis]` (see [`SynthesisConfig`]).

use super::code::{gold_value, validated_pairs};
use super::parse::{answer_region, blocks, defined_functions, first_block, normalize_program};
use super::template::{render, require, Field, TemplateError, TemplateSet};
use super::{
    Answer, FormatError, Invalid, IoPair, Proposal, Proposer, ProposerPrompt, Provenance, Score,
    Source, Task, TaskError, TaskType, TasksConfig,
};
use crate::executor::{ExecJob, ExecStatus, Executor};
use crate::types::TaskKind;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The synthesis kind.
pub const KIND: TaskKind = TaskKind::from_static("synthesis");

/// `[tasks.kind.synthesis]` settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SynthesisConfig {
    /// Test inputs a proposal must give (default 6).
    pub num_tests: usize,
    /// How many of them the solver sees as examples; the rest are hidden (default 2).
    pub num_visible: usize,
    /// Reference tasks shown to the proposer (default 3).
    pub references: usize,
}

impl Default for SynthesisConfig {
    fn default() -> Self {
        Self {
            num_tests: 6,
            num_visible: 2,
            references: 3,
        }
    }
}

/// The `[synthesis]` template section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SynthesisTemplates {
    /// Proposer prompt: `{references}`, `{num_references}`, `{num_tests}`.
    pub propose: String,
    /// One reference task: `{index}`, `{spec}`, `{program}`, `{tests}`.
    pub reference: String,
    /// One test (in references and solver examples): `{input}`, `{output}`.
    pub test: String,
    /// Solver prompt: `{spec}`, `{examples}`.
    pub solve: String,
    /// A perfect proposer reply: `{spec}`, `{program}`, `{inputs}`.
    pub proposal: String,
    /// One input of a proposer reply: `{input}`.
    pub proposal_input: String,
    /// A perfect solver reply: `{program}`.
    pub answer: String,
    /// Seed task: specification.
    pub seed_spec: String,
    /// Seed task: reference solution.
    pub seed_program: String,
    /// Seed task: test inputs.
    pub seed_inputs: Vec<String>,
}

/// The synthesis task type.
#[derive(Debug, Clone)]
pub struct Synthesis {
    templates: Arc<TemplateSet>,
    section: SynthesisTemplates,
    cfg: SynthesisConfig,
    reject_multiple: bool,
    propose_prefix: String,
    solve_prefix: String,
}

impl Synthesis {
    /// Read `[synthesis]` from `templates` and `[tasks.kind.synthesis]` from `cfg`.
    pub fn new(templates: Arc<TemplateSet>, cfg: &TasksConfig) -> Result<Self, TemplateError> {
        let section: SynthesisTemplates = templates.section(KIND.as_str())?;
        let settings: SynthesisConfig = cfg.kind_settings(KIND.as_str())?;
        if settings.num_visible >= settings.num_tests {
            return Err(TemplateError::Settings {
                kind: KIND.to_string(),
                message: "num_visible must be below num_tests (some tests stay hidden)".into(),
            });
        }
        let k = |s: &str| format!("synthesis.{s}");
        require(&k("propose"), &section.propose, &["references"])?;
        require(&k("reference"), &section.reference, &["spec", "tests"])?;
        require(&k("test"), &section.test, &["input", "output"])?;
        require(&k("solve"), &section.solve, &["spec", "examples"])?;
        require(
            &k("proposal"),
            &section.proposal,
            &["spec", "program", "inputs"],
        )?;
        require(&k("proposal_input"), &section.proposal_input, &["input"])?;
        require(&k("answer"), &section.answer, &["program"])?;
        let propose_prefix = templates.response_prefix(&section.propose, true);
        let solve_prefix = templates.response_prefix(&section.solve, true);
        Ok(Self {
            templates,
            section,
            cfg: settings,
            reject_multiple: cfg.reject_multiple_functions,
            propose_prefix,
            solve_prefix,
        })
    }

    fn check_kind(&self, task: &Task) -> Result<(), TaskError> {
        if task.kind == KIND {
            Ok(())
        } else {
            Err(TaskError::WrongKind {
                expected: KIND,
                got: task.kind,
            })
        }
    }

    fn tests(&self, pairs: &[IoPair]) -> String {
        pairs
            .iter()
            .map(|p| {
                render(
                    &self.section.test,
                    &[("input", &p.input), ("output", &p.output)],
                )
            })
            .collect()
    }

    /// A synthesis task from a spec, a reference program and test inputs, validating each input
    /// in the sandbox (all must pass, deterministically, with no banned import); the first
    /// `visible` tests are shown to the solver.
    pub fn task_from_tests(
        exec: &Executor,
        spec: &str,
        program: &str,
        inputs: &[String],
        visible: usize,
        provenance: Provenance,
    ) -> Result<Task, Invalid> {
        let pairs = validated_pairs(exec, program, inputs)?;
        Ok(Task {
            kind: KIND,
            program: program.to_string(),
            pairs,
            visible,
            message: spec.trim().to_string(),
            problem: String::new(),
            answer: String::new(),
            provenance,
        })
    }
}

/// The function the tests call: the last function the spec defines (benchmark prompts may
/// define helpers first), else `f`.
fn entry_point(spec: &str) -> String {
    defined_functions(spec)
        .pop()
        .unwrap_or_else(|| "f".to_string())
}

/// The program to run for an answer: as written when it defines `f`, with `f` bound to the
/// spec's entry point when it defines that, else with its first function renamed to `f`.
fn runnable(answer: &str, entry: &str) -> String {
    let names = defined_functions(answer);
    if names.iter().any(|n| n == "f") {
        answer.to_string()
    } else if names.iter().any(|n| n == entry) {
        format!("{answer}\n\nf = {entry}\n")
    } else {
        normalize_program(answer, false).unwrap_or_else(|_| answer.to_string())
    }
}

impl TaskType for Synthesis {
    fn kind(&self) -> TaskKind {
        KIND
    }

    fn solver_prompt(&self, task: &Task) -> Result<String, TaskError> {
        self.check_kind(task)?;
        let body = render(
            &self.section.solve,
            &[
                ("spec", &task.message),
                ("examples", &self.tests(task.visible_pairs())),
            ],
        );
        Ok(self.templates.wrap(&body))
    }

    /// The program block; it must define a function (its name is resolved at check time).
    fn parse_answer(&self, text: &str) -> Result<Answer, FormatError> {
        let f = &self.templates.format;
        let region = answer_region(f, &self.solve_prefix, text, true)?;
        let program = first_block(f, &region, Field::Program)?;
        if defined_functions(&program).is_empty() {
            return Err(FormatError::NoFunction);
        }
        Ok(Answer {
            kind: KIND,
            text: program.trim_end().to_string(),
        })
    }

    /// The fraction of hidden tests whose output equals the gold value (all tests when none is
    /// hidden). Each test runs in the sandbox; a crash, timeout or wrong value fails it.
    fn check(&self, task: &Task, answer: &Answer, exec: &Executor) -> Score {
        let hidden = match task.hidden_pairs() {
            [] => &task.pairs[..],
            h => h,
        };
        if hidden.is_empty() {
            return Score::wrong();
        }
        let code = runnable(&answer.text, &entry_point(&task.message));
        let trusted = matches!(task.provenance.source, Source::Benchmark { .. });
        let jobs: Vec<(ExecJob, bool)> = hidden
            .iter()
            .map(|p| {
                (
                    ExecJob {
                        code: code.clone(),
                        input: p.input.clone(),
                    },
                    trusted,
                )
            })
            .collect();
        let outcomes = exec.run_many_mixed(&jobs);
        let passed = hidden
            .iter()
            .zip(&outcomes)
            .filter(|(p, o)| {
                o.status == ExecStatus::Ok
                    && matches!((gold_value(exec, p), &o.value), (Some(g), Some(v)) if v.same_as(&g))
            })
            .count();
        Score::fraction(passed, hidden.len())
    }

    fn answer_text(&self, task: &Task) -> Result<String, TaskError> {
        self.check_kind(task)?;
        Ok(render(
            &self.section.answer,
            &[("program", task.program.trim_end())],
        ))
    }

    fn proposer(&self) -> Option<&dyn Proposer> {
        Some(self)
    }

    /// The program with the description as docstring of its signature, and its pairs as tests.
    fn example(&self, program: &str, pairs: &[IoPair], message: &str) -> Option<Task> {
        if pairs.len() < 2 {
            return None;
        }
        let signature = program.lines().find(|l| l.starts_with("def "))?;
        let spec = format!("{signature}\n    \"\"\"{}\"\"\"", message.trim());
        Some(Task {
            kind: KIND,
            program: program.to_string(),
            pairs: pairs.to_vec(),
            visible: (pairs.len() / 2).max(1),
            message: spec,
            problem: String::new(),
            answer: String::new(),
            provenance: Provenance::seed(),
        })
    }

    fn example_pairs(&self, many: usize) -> usize {
        many
    }
}

impl Proposer for Synthesis {
    fn num_references(&self) -> usize {
        self.cfg.references
    }

    fn proposer_prompt(&self, references: &[Task]) -> Result<ProposerPrompt, TaskError> {
        let rendered: String = references
            .iter()
            .enumerate()
            .map(|(i, r)| {
                render(
                    &self.section.reference,
                    &[
                        ("index", &(i + 1).to_string()),
                        ("spec", &r.message),
                        ("program", r.program.trim_end()),
                        ("tests", &self.tests(&r.pairs)),
                    ],
                )
            })
            .collect();
        let body = render(
            &self.section.propose,
            &[
                ("references", &rendered),
                ("num_references", &references.len().to_string()),
                ("num_tests", &self.cfg.num_tests.to_string()),
            ],
        );
        Ok(ProposerPrompt {
            kind: KIND,
            text: self.templates.wrap(&body),
            program: None,
        })
    }

    /// A spec (message block) defining a function, a reference program and at least
    /// `num_tests` distinct closed input blocks (the first `num_tests` are kept).
    fn parse_proposal(
        &self,
        _prompt: &ProposerPrompt,
        text: &str,
    ) -> Result<Proposal, FormatError> {
        let f = &self.templates.format;
        let region = answer_region(f, &self.propose_prefix, text, true)?;
        let spec = first_block(f, &region, Field::Message)?;
        if defined_functions(&spec).is_empty() {
            return Err(FormatError::NoFunction);
        }
        let spec = normalize_program(&spec, false)?;
        let program = first_block(f, &region, Field::Program)?;
        let program = normalize_program(&program, self.reject_multiple)?;
        let mut inputs: Vec<String> = Vec::new();
        for b in blocks(f, &region, Field::Input) {
            if b.terminated && !b.content.trim().is_empty() && !inputs.contains(&b.content) {
                inputs.push(b.content);
            }
        }
        if inputs.len() < self.cfg.num_tests {
            return Err(FormatError::TooFewInputs {
                need: self.cfg.num_tests,
                got: inputs.len(),
            });
        }
        inputs.truncate(self.cfg.num_tests);
        Ok(Proposal {
            kind: KIND,
            program,
            inputs,
            message: spec,
        })
    }

    fn validate_proposal(
        &self,
        proposal: &Proposal,
        exec: &Executor,
        provenance: Provenance,
    ) -> Result<Task, Invalid> {
        if proposal.kind != KIND {
            return Err(Invalid::WrongKind {
                expected: KIND,
                got: proposal.kind,
            });
        }
        if proposal.inputs.len() != self.cfg.num_tests {
            return Err(Invalid::InputCount {
                need: self.cfg.num_tests,
                got: proposal.inputs.len(),
            });
        }
        Self::task_from_tests(
            exec,
            &proposal.message,
            &proposal.program,
            &proposal.inputs,
            self.cfg.num_visible,
            provenance,
        )
    }

    fn proposal_text(&self, task: &Task) -> Result<String, TaskError> {
        self.check_kind(task)?;
        let inputs: String = task
            .pairs
            .iter()
            .map(|p| render(&self.section.proposal_input, &[("input", &p.input)]))
            .collect();
        Ok(render(
            &self.section.proposal,
            &[
                ("spec", &task.message),
                ("program", task.program.trim_end()),
                ("inputs", &inputs),
            ],
        ))
    }

    /// The `seed_*` keys of `[synthesis]`, with the configured number of visible tests.
    fn seed_tasks(&self, exec: &Executor) -> Result<Vec<Task>, Invalid> {
        let s = &self.section;
        let visible = self
            .cfg
            .num_visible
            .min(s.seed_inputs.len().saturating_sub(1));
        Ok(vec![Self::task_from_tests(
            exec,
            &s.seed_spec,
            &s.seed_program,
            &s.seed_inputs,
            visible,
            Provenance::seed(),
        )?])
    }
}
