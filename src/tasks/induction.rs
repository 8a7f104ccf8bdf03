//! Induction (AZR `code_f`): the proposer writes `num_inputs` inputs and a message for a program
//! taken from the deduction/abduction buffers; the solver sees the first `num_visible`
//! input/output pairs plus the message and writes a program, which must reproduce every hidden
//! pair (run in the sandbox, values compared).

use super::code::{gold_value, invalid_from, validated_pairs, SeedTemplates};
use super::config::InductionConfig;
use super::parse::{answer_region, blocks, first_block, normalize_program, required_block};
use super::template::{render, require, Field, TemplateError, TemplateSet};
use super::IoPair;
use super::{
    Answer, FormatError, Invalid, Proposal, Proposer, ProposerPrompt, Provenance, Score, Task,
    TaskError, TaskType,
};
use crate::executor::{ExecJob, ExecStatus, Executor, Outcome};
use crate::types::TaskKind;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The `[induction]` template section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InductionTemplates {
    /// Proposer prompt: `{program}`, `{num_inputs}`.
    pub propose: String,
    /// One visible pair: `{index}`, `{input}`, `{output}`.
    pub pair: String,
    /// Solver prompt: `{pairs}`, `{message}`.
    pub solve: String,
    /// A perfect proposer reply: `{inputs}` (each rendered with `proposal_input`), `{message}`.
    pub proposal: String,
    /// One input of a proposer reply: `{input}`.
    pub proposal_input: String,
    /// A perfect solver reply: `{program}`.
    pub answer: String,
}

/// The induction task type.
#[derive(Debug, Clone)]
pub struct Induction {
    templates: Arc<TemplateSet>,
    section: InductionTemplates,
    seed: SeedTemplates,
    cfg: InductionConfig,
    propose_prefix: String,
    solve_prefix: String,
}

impl Induction {
    /// Induction with the given sizes, reading `[induction]` and `[seed]`.
    pub fn new(templates: Arc<TemplateSet>, cfg: InductionConfig) -> Result<Self, TemplateError> {
        let section: InductionTemplates = templates.section("induction")?;
        require(
            "induction.proposal",
            &section.proposal,
            &["inputs", "message"],
        )?;
        require(
            "induction.proposal_input",
            &section.proposal_input,
            &["input"],
        )?;
        require("induction.answer", &section.answer, &["program"])?;
        require("induction.propose", &section.propose, &["program"])?;
        require("induction.pair", &section.pair, &["input", "output"])?;
        require("induction.solve", &section.solve, &["pairs", "message"])?;
        let seed: SeedTemplates = templates.section("seed")?;
        let propose_prefix = templates.response_prefix(&section.propose, true);
        let solve_prefix = templates.response_prefix(&section.solve, true);
        Ok(Self {
            templates,
            section,
            seed,
            cfg,
            propose_prefix,
            solve_prefix,
        })
    }

    fn check_kind(&self, task: &Task) -> Result<(), TaskError> {
        if task.kind == TaskKind::Induction {
            Ok(())
        } else {
            Err(TaskError::WrongKind {
                expected: TaskKind::Induction,
                got: task.kind,
            })
        }
    }

    /// Build an induction task from a program, its inputs and a message, validating each input
    /// in the sandbox; the first `visible` pairs are shown to the solver.
    pub fn task_from_inputs(
        exec: &Executor,
        program: &str,
        inputs: &[String],
        message: &str,
        visible: usize,
        provenance: Provenance,
    ) -> Result<Task, Invalid> {
        let pairs = validated_pairs(exec, program, inputs)?;
        Ok(Task {
            kind: TaskKind::Induction,
            program: program.to_string(),
            pairs,
            visible,
            message: message.trim().to_string(),
            problem: String::new(),
            answer: String::new(),
            provenance,
        })
    }
}

impl TaskType for Induction {
    fn kind(&self) -> TaskKind {
        TaskKind::Induction
    }

    fn solver_prompt(&self, task: &Task) -> Result<String, TaskError> {
        self.check_kind(task)?;
        let pairs: String = task
            .visible_pairs()
            .iter()
            .enumerate()
            .map(|(i, p)| {
                render(
                    &self.section.pair,
                    &[
                        ("index", &(i + 1).to_string()),
                        ("input", &p.input),
                        ("output", &p.output),
                    ],
                )
            })
            .collect();
        let body = render(
            &self.section.solve,
            &[("pairs", &pairs), ("message", &task.message)],
        );
        Ok(self.templates.wrap(&body))
    }

    fn parse_answer(&self, text: &str) -> Result<Answer, FormatError> {
        let f = &self.templates.format;
        let region = answer_region(f, &self.solve_prefix, text, true)?;
        let program = required_block(f, &region, Field::Program)?;
        Ok(Answer {
            kind: TaskKind::Induction,
            text: normalize_program(&program, false)?,
        })
    }

    /// Correct iff the program reproduces every hidden pair (AZR's binary `code_f` reward).
    fn check(&self, task: &Task, answer: &Answer, exec: &Executor) -> Score {
        let hidden = task.hidden_pairs();
        if hidden.is_empty() {
            return Score::wrong();
        }
        let passes = |p: &IoPair, o: &Outcome, i: usize| {
            if o.status != ExecStatus::Ok {
                tracing::trace!(pair = i, reason = %invalid_from(i, o), "induction answer failed");
                return false;
            }
            match (gold_value(exec, p), &o.value) {
                (Some(gold), Some(v)) => v.same_as(&gold),
                _ => false,
            }
        };
        // The first hidden pair alone, so a wrong or looping program costs one execution; then
        // the rest in parallel across the pool.
        let first = exec.run(&answer.text, &hidden[0].input);
        if !passes(&hidden[0], &first, 0) {
            return Score::wrong();
        }
        let jobs: Vec<ExecJob> = hidden[1..]
            .iter()
            .map(|p| ExecJob {
                code: answer.text.clone(),
                input: p.input.clone(),
            })
            .collect();
        let outcomes = exec.run_many(&jobs);
        let all = outcomes.len() == jobs.len()
            && hidden[1..]
                .iter()
                .zip(&outcomes)
                .enumerate()
                .all(|(i, (p, o))| passes(p, o, i + 1));
        Score::binary(all)
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

    /// The program with all `pairs` (the first half visible) and the description as message.
    fn example(&self, program: &str, pairs: &[IoPair], message: &str) -> Option<Task> {
        if pairs.len() < 2 {
            return None;
        }
        Some(Task {
            kind: TaskKind::Induction,
            program: program.to_string(),
            pairs: pairs.to_vec(),
            visible: pairs.len(),
            message: message.to_string(),
            problem: String::new(),
            answer: String::new(),
            provenance: Provenance::seed(),
        })
    }

    fn example_pairs(&self, many: usize) -> usize {
        many
    }
}

impl Proposer for Induction {
    fn num_references(&self) -> usize {
        1
    }

    fn reference_sources(&self) -> Vec<TaskKind> {
        vec![TaskKind::Deduction, TaskKind::Abduction]
    }

    fn writes_program(&self) -> bool {
        false
    }

    fn proposer_prompt(&self, references: &[Task]) -> Result<ProposerPrompt, TaskError> {
        let program = references
            .iter()
            .find(|r| !r.program.trim().is_empty())
            .map(|r| r.program.trim_end().to_string())
            .ok_or(TaskError::MissingReferences {
                kind: TaskKind::Induction,
                need: 1,
                got: 0,
            })?;
        let body = render(
            &self.section.propose,
            &[
                ("program", &program),
                ("num_inputs", &self.cfg.num_inputs.to_string()),
            ],
        );
        Ok(ProposerPrompt {
            kind: TaskKind::Induction,
            text: self.templates.wrap(&body),
            program: Some(program),
        })
    }

    /// Needs at least `num_inputs` distinct closed input blocks (the last `num_inputs` are kept,
    /// as in AZR) and a message block; the program comes from the prompt.
    fn parse_proposal(&self, prompt: &ProposerPrompt, text: &str) -> Result<Proposal, FormatError> {
        let f = &self.templates.format;
        let program = prompt
            .program
            .clone()
            .ok_or_else(|| FormatError::MissingBlock(f.program.clone()))?;
        let region = answer_region(f, &self.propose_prefix, text, true)?;
        let mut inputs: Vec<String> = Vec::new();
        for b in blocks(f, &region, Field::Input) {
            if b.terminated && !b.content.trim().is_empty() && !inputs.contains(&b.content) {
                inputs.push(b.content);
            }
        }
        if inputs.len() < self.cfg.num_inputs {
            return Err(FormatError::TooFewInputs {
                need: self.cfg.num_inputs,
                got: inputs.len(),
            });
        }
        let inputs = inputs.split_off(inputs.len() - self.cfg.num_inputs);
        let message = first_block(f, &region, Field::Message)?;
        Ok(Proposal {
            kind: TaskKind::Induction,
            program,
            inputs,
            message,
        })
    }

    fn validate_proposal(
        &self,
        proposal: &Proposal,
        exec: &Executor,
        provenance: Provenance,
    ) -> Result<Task, Invalid> {
        if proposal.kind != TaskKind::Induction {
            return Err(Invalid::WrongKind {
                expected: TaskKind::Induction,
                got: proposal.kind,
            });
        }
        if proposal.inputs.len() != self.cfg.num_inputs {
            return Err(Invalid::InputCount {
                need: self.cfg.num_inputs,
                got: proposal.inputs.len(),
            });
        }
        Self::task_from_inputs(
            exec,
            &proposal.program,
            &proposal.inputs,
            &proposal.message,
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
            &[("inputs", &inputs), ("message", &task.message)],
        ))
    }

    /// The `[seed]` program on `seed.induction_inputs` (half of them visible) with
    /// `seed.induction_message`.
    fn seed_tasks(&self, exec: &Executor) -> Result<Vec<Task>, Invalid> {
        let seed = &self.seed;
        Ok(vec![Self::task_from_inputs(
            exec,
            &seed.program,
            &seed.induction_inputs,
            &seed.induction_message,
            seed.induction_inputs.len() / 2,
            Provenance::seed(),
        )?])
    }
}
