//! Task types: the self-play (and math) tasks as one object-safe trait.
//!
//! A task type knows how to
//! 1. build a **proposer prompt** from reference tasks drawn from its buffer
//!    ([`TaskType::proposer_prompt`]),
//! 2. **parse** the proposer's generation into a [`Proposal`] ([`TaskType::parse_proposal`]),
//! 3. **validate** the proposal with the sandboxed executor into a [`Task`] with gold answers
//!    ([`TaskType::validate_proposal`]),
//! 4. build the **solver prompt** for a task ([`TaskType::solver_prompt`]),
//! 5. **parse** the solver's generation into an [`Answer`] ([`TaskType::parse_answer`]) and
//! 6. **check** it against the task ([`TaskType::check`]), giving a [`Verdict`].
//!
//! Prompts come from a [`TemplateSet`] (TOML files under `config/templates/`), so the wording can
//! change without recompiling. Parsing is strict about the structure (tags, blocks) and lenient
//! about whitespace; a structural failure is a [`FormatError`], a distinct outcome from a wrong
//! answer. Answers are never evaluated in the host process: literals go through
//! [`Executor::parse_literal`] and programs run inside the sandbox.
//!
//! ## Adding a task type
//! 1. Add a variant to [`TaskKind`] (`src/types.rs`).
//! 2. Write one module implementing [`TaskType`] (see [`deduction`] for a compact example); take
//!    wording from a section of the [`TemplateSet`] (add it to both files under
//!    `config/templates/` and to [`template::TemplateSet`]) so users can edit it.
//! 3. Register it with one line in [`TaskRegistry::builtin`].
//! 4. Add a `Case` to `tests/tasks_conformance.rs`; its `every_registered_kind_has_a_case` test
//!    fails until you do.
//!
//! The actors never change: they only see `&dyn TaskType` from the registry, and buffers hold
//! plain [`Task`] data.
//!
//! ## Text contract
//! Texts handed to `parse_proposal`/`parse_answer` are the decoded *response* only (not the
//! prompt), including the stop sequence/token when the sampler stopped on one (`</answer>` for
//! `paper`, `<end>` for `compact`); see [`template::Format::stop`].

pub mod abduction;
pub mod buffer;
pub mod code;
pub mod config;
pub mod deduction;
pub mod induction;
pub mod math;
pub mod math_grader;
pub mod parse;
pub mod registry;
pub mod rewards;
pub mod template;

pub use buffer::{BufferConfig, TaskBuffer, TaskBuffers};
pub use config::{InductionConfig, TasksConfig};
pub use registry::TaskRegistry;
pub use rewards::{ProposalOutcome, RewardConfig};
pub use template::{TemplateError, TemplateSet};

use crate::executor::{ExecStatus, Executor, PyValue};
use crate::types::{PolicyVersion, TaskKind};
use serde::{Deserialize, Serialize};

/// Where a task came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "source")]
pub enum Source {
    /// The hand-written seed (the identity program).
    Seed,
    /// Proposed by the policy during self-play.
    Proposed,
    /// Loaded from a benchmark file (the name of the benchmark, e.g. `cruxeval`, `math500`).
    Benchmark {
        /// Benchmark name.
        name: String,
    },
}

/// Provenance of a task: where it came from and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    /// Origin of the task.
    #[serde(flatten)]
    pub source: Source,
    /// Self-play step at which it was created (0 for seeds and benchmarks).
    pub step: u64,
    /// Policy version that proposed it (0 for seeds and benchmarks).
    pub policy_version: PolicyVersion,
    /// Benchmark item id, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

impl Provenance {
    /// Provenance of a seed task.
    pub fn seed() -> Self {
        Self {
            source: Source::Seed,
            step: 0,
            policy_version: 0,
            id: None,
        }
    }

    /// Provenance of a proposal made at `step` by policy `policy_version`.
    pub fn proposed(step: u64, policy_version: PolicyVersion) -> Self {
        Self {
            source: Source::Proposed,
            step,
            policy_version,
            id: None,
        }
    }

    /// Provenance of a benchmark item.
    pub fn benchmark(name: &str, id: impl Into<String>) -> Self {
        Self {
            source: Source::Benchmark {
                name: name.to_string(),
            },
            step: 0,
            policy_version: 0,
            id: Some(id.into()),
        }
    }
}

/// One input/output pair of a program: the argument text of a call `f(<input>)` and the `repr` of
/// the result, plus its canonical value when it is known.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IoPair {
    /// Argument text, e.g. `'ab', [1, 2]`.
    pub input: String,
    /// Python `repr` of `f(input)`.
    pub output: String,
    /// Canonical value of the output (from the executor); `None` for items loaded from files,
    /// in which case checkers parse `output` as a literal in the sandbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<PyValue>,
}

/// A verified task: plain serde data, stored in buffers and checkpoints.
///
/// Code kinds use `program` and `pairs` (deduction/abduction: one pair; induction: all pairs, the
/// first `visible` shown to the solver and the rest hidden) and, for induction, `message`. Math uses
/// `problem` and `answer`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Task {
    /// Which task type this is.
    pub kind: TaskKind,
    /// Python source defining `f` (code kinds; empty for math).
    #[serde(default)]
    pub program: String,
    /// Input/output pairs (code kinds).
    #[serde(default)]
    pub pairs: Vec<IoPair>,
    /// Number of leading pairs shown to an induction solver (the rest are hidden checks).
    #[serde(default)]
    pub visible: usize,
    /// The proposer's message for an induction task (empty otherwise).
    #[serde(default)]
    pub message: String,
    /// Math problem statement (empty for code kinds).
    #[serde(default)]
    pub problem: String,
    /// Math reference answer, without `\boxed{}` (empty for code kinds).
    #[serde(default)]
    pub answer: String,
    /// Where and when the task was made.
    pub provenance: Provenance,
}

impl Task {
    /// A single-pair code task (deduction or abduction).
    pub fn code(
        kind: TaskKind,
        program: impl Into<String>,
        pair: IoPair,
        provenance: Provenance,
    ) -> Self {
        Self {
            kind,
            program: program.into(),
            pairs: vec![pair],
            visible: 1,
            message: String::new(),
            problem: String::new(),
            answer: String::new(),
            provenance,
        }
    }

    /// A math task.
    pub fn math(
        problem: impl Into<String>,
        answer: impl Into<String>,
        provenance: Provenance,
    ) -> Self {
        Self {
            kind: TaskKind::Math,
            program: String::new(),
            pairs: Vec::new(),
            visible: 0,
            message: String::new(),
            problem: problem.into(),
            answer: answer.into(),
            provenance,
        }
    }

    /// The first pair (deduction/abduction tasks have exactly one).
    pub fn pair(&self) -> Option<&IoPair> {
        self.pairs.first()
    }

    /// Pairs shown to an induction solver.
    pub fn visible_pairs(&self) -> &[IoPair] {
        &self.pairs[..self.visible.min(self.pairs.len())]
    }

    /// Pairs an induction answer is checked on.
    pub fn hidden_pairs(&self) -> &[IoPair] {
        &self.pairs[self.visible.min(self.pairs.len())..]
    }

    /// Key used to deduplicate buffers: kind, program, inputs and message (the outputs follow
    /// from them).
    pub fn dedup_key(&self) -> String {
        let mut key = format!("{}\u{1f}{}", self.kind, self.program.trim());
        for p in &self.pairs {
            key.push('\u{1f}');
            key.push_str(p.input.trim());
        }
        key.push('\u{1f}');
        key.push_str(self.message.trim());
        key.push('\u{1f}');
        key.push_str(self.problem.trim());
        key
    }
}

/// A parsed (not yet validated) proposal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    /// Task type of the proposal.
    pub kind: TaskKind,
    /// Program defining `f` (for induction: the reference program the proposer was shown).
    pub program: String,
    /// Proposed argument texts (one for deduction/abduction, `num_inputs` for induction).
    pub inputs: Vec<String>,
    /// Induction message (empty otherwise).
    pub message: String,
}

/// A parsed solver answer: the extracted text (an output literal, an argument list, a program, or
/// the contents of the last `\boxed{}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    /// Task type the answer is for.
    pub kind: TaskKind,
    /// Extracted answer text, trimmed.
    pub text: String,
}

/// The outcome of grading one solver generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Well formatted and correct.
    Correct,
    /// Well formatted but wrong (including answers that are not valid literals / programs).
    Wrong,
    /// The generation does not follow the required format.
    FormatError,
}

impl Verdict {
    /// Snake-case name, for metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Correct => "correct",
            Verdict::Wrong => "wrong",
            Verdict::FormatError => "format_error",
        }
    }
}

/// Why a generation does not follow the required format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// The `<think>...</think>` / `<answer>...</answer>` structure is missing or broken.
    #[error("missing or malformed reasoning/answer tags")]
    Wrapper,
    /// A required block is missing (e.g. no ```` ```output ```` block, no `<in>`).
    #[error("missing `{0}` block")]
    MissingBlock(String),
    /// A block was opened but never closed (e.g. the generation ran out of tokens).
    #[error("unterminated `{0}` block")]
    Unterminated(String),
    /// A required block is empty.
    #[error("empty `{0}` block")]
    EmptyBlock(String),
    /// The program defines no function.
    #[error("the program defines no function")]
    NoFunction,
    /// The program defines more than one function (rejected as in AZR).
    #[error("the program defines more than one function")]
    MultipleFunctions,
    /// Too few inputs for an induction proposal.
    #[error("expected {need} distinct inputs, got {got}")]
    TooFewInputs {
        /// Required count.
        need: usize,
        /// Distinct inputs found.
        got: usize,
    },
    /// No `\boxed{...}` in a math answer.
    #[error("no \\boxed{{}} answer")]
    NoBoxed,
    /// The task type takes no proposals (math).
    #[error("this task type takes no proposals")]
    NotProposable,
}

/// Why a well-formatted proposal is not a valid task.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    /// The executor rejected or failed the program on an input.
    #[error("input {index}: {status:?}: {detail}")]
    Exec {
        /// Index of the failing input.
        index: usize,
        /// Executor status.
        status: ExecStatus,
        /// Executor message.
        detail: String,
    },
    /// The task type does not accept proposals (math).
    #[error("task type `{0}` has no proposer")]
    NotProposable(TaskKind),
    /// The proposal is for another task type.
    #[error("proposal of kind `{got}` given to task type `{expected}`")]
    WrongKind {
        /// Kind of this task type.
        expected: TaskKind,
        /// Kind of the proposal.
        got: TaskKind,
    },
    /// The proposal has the wrong number of inputs.
    #[error("expected {need} inputs, got {got}")]
    InputCount {
        /// Required count.
        need: usize,
        /// Found.
        got: usize,
    },
}

/// Misuse of a task type (not a model error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaskError {
    /// The task type does not propose tasks (math).
    #[error("task type `{0}` has no proposer")]
    NotProposable(TaskKind),
    /// Not enough reference tasks to build a prompt.
    #[error("task type `{kind}` needs at least {need} reference task(s), got {got}")]
    MissingReferences {
        /// Task type.
        kind: TaskKind,
        /// Needed.
        need: usize,
        /// Given.
        got: usize,
    },
    /// A task of another kind was given.
    #[error("task of kind `{got}` given to task type `{expected}`")]
    WrongKind {
        /// Kind of this task type.
        expected: TaskKind,
        /// Kind of the task.
        got: TaskKind,
    },
}

/// A proposer prompt plus the context needed to parse its generation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProposerPrompt {
    /// Task type.
    pub kind: TaskKind,
    /// Full prompt text (wrapper included).
    pub text: String,
    /// For induction: the reference program the proposer writes inputs for.
    pub program: Option<String>,
}

/// A graded generation: the verdict and the parsed answer when it parsed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Graded {
    /// Verdict.
    pub verdict: Verdict,
    /// The parsed answer (absent on a format error).
    pub answer: Option<Answer>,
}

/// One task type: prompt building, parsing, validation and checking.
///
/// Object safe and `Send + Sync`, so a registry of `Box<dyn TaskType>` is shared by actors.
pub trait TaskType: Send + Sync {
    /// The kind this type handles.
    fn kind(&self) -> TaskKind;

    /// Whether the policy proposes tasks of this type (math: no).
    fn can_propose(&self) -> bool {
        true
    }

    /// Number of reference tasks the proposer prompt shows (K = 6 by default; induction: 1).
    fn num_references(&self) -> usize;

    /// Buffers the references are drawn from (deduction/abduction: their own; induction: the
    /// deduction and abduction buffers, whose programs it writes inputs for).
    fn reference_sources(&self) -> Vec<TaskKind> {
        vec![self.kind()]
    }

    /// Build the proposer prompt from reference tasks (drawn uniformly from the buffers named by
    /// [`TaskType::reference_sources`]).
    fn proposer_prompt(&self, references: &[Task]) -> Result<ProposerPrompt, TaskError>;

    /// Parse a proposer generation (the decoded response, including any stop sequence).
    fn parse_proposal(&self, prompt: &ProposerPrompt, text: &str) -> Result<Proposal, FormatError>;

    /// Validate a proposal in the sandbox and compute its gold outputs.
    fn validate_proposal(
        &self,
        proposal: &Proposal,
        exec: &Executor,
        provenance: Provenance,
    ) -> Result<Task, Invalid>;

    /// The solver prompt for a task.
    fn solver_prompt(&self, task: &Task) -> Result<String, TaskError>;

    /// Parse a solver generation (the decoded response, including any stop sequence).
    fn parse_answer(&self, text: &str) -> Result<Answer, FormatError>;

    /// Check a parsed answer: `Correct` or `Wrong` (answers that are not valid literals or
    /// programs are `Wrong`, not format errors).
    fn check(&self, task: &Task, answer: &Answer, exec: &Executor) -> Verdict;

    /// The reply a perfect proposer would give for `task`, in this template set's format (empty
    /// reasoning). Used to build pretraining corpora; parsing it gives back the task's proposal.
    fn proposal_text(&self, task: &Task) -> Result<String, TaskError>;

    /// The reply a perfect solver would give for `task` (empty reasoning); it grades `Correct`.
    fn answer_text(&self, task: &Task) -> Result<String, TaskError>;

    /// Parse and check a solver generation in one go.
    fn grade(&self, task: &Task, text: &str, exec: &Executor) -> Graded {
        match self.parse_answer(text) {
            Ok(answer) => Graded {
                verdict: self.check(task, &answer, exec),
                answer: Some(answer),
            },
            Err(_) => Graded {
                verdict: Verdict::FormatError,
                answer: None,
            },
        }
    }
}
