//! Induction (AZR `code_f`): the proposer writes `num_inputs` inputs and a message for a program
//! taken from the deduction/abduction buffers; the solver sees the first `num_visible`
//! input/output pairs plus the message and writes a program, which must reproduce every hidden
//! pair (run in the sandbox, values compared).

use super::code::{gold_value, invalid_from, pair_from_outcome};
use super::config::InductionConfig;
use super::parse::{answer_region, blocks, first_block, normalize_program, required_block};
use super::template::{render, Field, TemplateSet};
use super::IoPair;
use super::{
    Answer, FormatError, Invalid, Proposal, ProposerPrompt, Provenance, Task, TaskError, TaskType,
    Verdict,
};
use crate::executor::{ExecJob, ExecStatus, Executor, Outcome};
use crate::types::TaskKind;
use std::sync::Arc;

/// The induction task type.
#[derive(Debug, Clone)]
pub struct Induction {
    templates: Arc<TemplateSet>,
    cfg: InductionConfig,
    propose_prefix: String,
    solve_prefix: String,
}

impl Induction {
    /// Induction with the given sizes.
    pub fn new(templates: Arc<TemplateSet>, cfg: InductionConfig) -> Self {
        let propose_prefix = templates.response_prefix(&templates.induction.propose, true);
        let solve_prefix = templates.response_prefix(&templates.induction.solve, true);
        Self {
            templates,
            cfg,
            propose_prefix,
            solve_prefix,
        }
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
        let pairs = inputs
            .iter()
            .zip(&outcomes)
            .enumerate()
            .map(|(i, (input, o))| pair_from_outcome(i, input, o))
            .collect::<Result<Vec<_>, _>>()?;
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

    fn num_references(&self) -> usize {
        1
    }

    fn reference_sources(&self) -> Vec<TaskKind> {
        vec![TaskKind::Deduction, TaskKind::Abduction]
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
            &self.templates.induction.propose,
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

    fn solver_prompt(&self, task: &Task) -> Result<String, TaskError> {
        self.check_kind(task)?;
        let pairs: String = task
            .visible_pairs()
            .iter()
            .enumerate()
            .map(|(i, p)| {
                render(
                    &self.templates.induction.pair,
                    &[
                        ("index", &(i + 1).to_string()),
                        ("input", &p.input),
                        ("output", &p.output),
                    ],
                )
            })
            .collect();
        let body = render(
            &self.templates.induction.solve,
            &[("pairs", &pairs), ("message", &task.message)],
        );
        Ok(self.templates.wrap(&body))
    }

    fn proposal_text(&self, task: &Task) -> Result<String, TaskError> {
        self.check_kind(task)?;
        let inputs: String = task
            .pairs
            .iter()
            .map(|p| {
                render(
                    &self.templates.induction.proposal_input,
                    &[("input", &p.input)],
                )
            })
            .collect();
        Ok(render(
            &self.templates.induction.proposal,
            &[("inputs", &inputs), ("message", &task.message)],
        ))
    }

    fn answer_text(&self, task: &Task) -> Result<String, TaskError> {
        self.check_kind(task)?;
        Ok(render(
            &self.templates.induction.answer,
            &[("program", task.program.trim_end())],
        ))
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
    fn check(&self, task: &Task, answer: &Answer, exec: &Executor) -> Verdict {
        let hidden = task.hidden_pairs();
        if hidden.is_empty() {
            return Verdict::Wrong;
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
            return Verdict::Wrong;
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
        if all {
            Verdict::Correct
        } else {
            Verdict::Wrong
        }
    }
}
