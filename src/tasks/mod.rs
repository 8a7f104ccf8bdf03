//! Task types: the self-play (and math) tasks, each one module behind two object-safe traits.
//!
//! Every task type implements [`TaskType`], the **solving** side:
//! 1. build the **solver prompt** for a task ([`TaskType::solver_prompt`]),
//! 2. **parse** the solver's generation into an [`Answer`] ([`TaskType::parse_answer`]) and
//! 3. **check** it against the task ([`TaskType::check`]), giving a [`Score`]: a value in
//!    [0, 1] plus a [`Verdict`] label (correct, partial, wrong, format error) that the
//!    [`RewardConfig`] maps to the reward ([`rewards::solver_reward`]).
//!
//! A kind the policy also *proposes* implements [`Proposer`] too and returns itself from
//! [`TaskType::proposer`]: it builds a **proposer prompt** from reference tasks
//! ([`Proposer::proposer_prompt`]), **parses** the generation into a [`Proposal`]
//! ([`Proposer::parse_proposal`]), **validates** it with the sandboxed executor into a [`Task`]
//! ([`Proposer::validate_proposal`]) and names the **seed tasks** its buffer starts from
//! ([`Proposer::seed_tasks`]). A solve-only kind (math) implements [`TaskType`] alone.
//!
//! Prompts come from a [`TemplateSet`] (TOML files under `config/templates/`): the shared
//! `[format]` and `[wrapper]`, and one section per kind, looked up by the kind's name
//! ([`TemplateSet::section`]); a file may leave out the kinds it does not use. Parsing is strict
//! about the structure (tags, blocks) and lenient about whitespace; a structural failure is a
//! [`FormatError`], a distinct outcome from a wrong answer. Answers are never evaluated in the
//! host process: literals go through [`Executor::parse_literal`] and programs run inside the
//! sandbox.
//!
//! ## Adding a task type
//! 1. Write one module implementing [`TaskType`] (and [`Proposer`] if the policy proposes its
//!    tasks); [`synthesis`] is a complete example, [`math`] a solve-only one. Its kind is a
//!    `const KIND: TaskKind = TaskKind::from_static("name")`.
//! 2. Register it with one line in [`TaskRegistry::builtin`] (or call
//!    [`TaskRegistry::register`] from your own crate).
//! 3. Add its `[name]` section to the template files it runs with (`config/templates/`).
//! 4. Add a `Case` to `tests/tasks_conformance.rs`; `every_registered_kind_has_a_case` fails
//!    until you do.
//!
//! Everything else derives from the registry: buffers and seed tasks
//! ([`TaskBuffers::seeded`]), metric label sets ([`crate::metrics::use_registry`]), group ids
//! ([`crate::types::group_id`]), the pretraining corpus ([`TaskType::example`]) and evaluation.
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
pub mod novelty;
pub mod parse;
pub mod registry;
pub mod rewards;
pub mod synthesis;
pub mod template;

pub use buffer::{Admitted, BufferConfig, BufferError, SolverTargeting, TaskBuffer, TaskBuffers};
pub use config::{InductionConfig, TasksConfig};
pub use registry::{RegistryError, TaskRegistry};
pub use rewards::{ProposalOutcome, RewardConfig, RewardControl, SolveReward};
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
    /// Drawn from the training side of the tiny model's pretraining corpus, for replay in solver
    /// batches (`selfplay.replay_fraction`).
    Replay,
    /// Loaded from a benchmark file (the name of the benchmark, e.g. `cruxeval`, `math500`).
    Benchmark {
        /// Benchmark name.
        name: String,
    },
}

impl Source {
    /// The source's tag as serialised (`seed`, `proposed`, `replay`, `benchmark`).
    pub fn as_str(&self) -> &'static str {
        match self {
            Source::Seed => "seed",
            Source::Proposed => "proposed",
            Source::Replay => "replay",
            Source::Benchmark { .. } => "benchmark",
        }
    }
}

/// Provenance of a task: where it came from and when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    /// The Monte Carlo solve rate the learnability estimator measured when the task was
    /// admitted (proposed tasks; the policy of that step). `None` for seeds and benchmarks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub solve_rate: Option<f32>,
    /// Whether the greedy answer of that policy was correct, when the estimator probed it
    /// (`tasks.buffer.prefer_greedy_miss`). `None` otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub greedy_correct: Option<bool>,
}

impl Provenance {
    /// Provenance of a seed task.
    pub fn seed() -> Self {
        Self {
            source: Source::Seed,
            step: 0,
            policy_version: 0,
            id: None,
            solve_rate: None,
            greedy_correct: None,
        }
    }

    /// Provenance of a proposal made at `step` by policy `policy_version`.
    pub fn proposed(step: u64, policy_version: PolicyVersion) -> Self {
        Self {
            source: Source::Proposed,
            step,
            policy_version,
            id: None,
            solve_rate: None,
            greedy_correct: None,
        }
    }

    /// Provenance of a replay task (`id`: its place in the replay pool).
    pub fn replay(id: impl Into<String>) -> Self {
        Self {
            source: Source::Replay,
            step: 0,
            policy_version: 0,
            id: Some(id.into()),
            solve_rate: None,
            greedy_correct: None,
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
            solve_rate: None,
            greedy_correct: None,
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

/// The label of a graded solver generation (a metric label; the reward comes from the
/// [`Score`]'s value through the [`RewardConfig`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Well formatted and fully correct (score 1).
    Correct,
    /// Well formatted and partly correct (0 < score < 1), e.g. some hidden tests pass.
    Partial,
    /// Well formatted but wrong (score 0; including answers that are not valid literals or
    /// programs).
    Wrong,
    /// The generation does not follow the required format (score 0).
    FormatError,
}

impl Verdict {
    /// Every label, in metric order.
    pub const ALL: [Verdict; 4] = [
        Verdict::Correct,
        Verdict::Partial,
        Verdict::Wrong,
        Verdict::FormatError,
    ];

    /// Snake-case name, for metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Correct => "correct",
            Verdict::Partial => "partial",
            Verdict::Wrong => "wrong",
            Verdict::FormatError => "format_error",
        }
    }
}

/// What a check gives: a score in [0, 1] and its label. Build it with [`Score::correct`],
/// [`Score::wrong`], [`Score::format_error`] or [`Score::fraction`], which keep the two
/// consistent (1 is `Correct`, 0 is `Wrong` or `FormatError`, anything between is `Partial`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Score {
    /// Fraction of credit, in [0, 1].
    pub value: f32,
    /// The label.
    pub verdict: Verdict,
}

impl Score {
    /// Full credit.
    pub fn correct() -> Self {
        Self {
            value: 1.0,
            verdict: Verdict::Correct,
        }
    }

    /// No credit, well formatted.
    pub fn wrong() -> Self {
        Self {
            value: 0.0,
            verdict: Verdict::Wrong,
        }
    }

    /// No credit, broken format.
    pub fn format_error() -> Self {
        Self {
            value: 0.0,
            verdict: Verdict::FormatError,
        }
    }

    /// `passed / total` of a well-formatted answer (`Wrong` when `total` is 0).
    pub fn fraction(passed: usize, total: usize) -> Self {
        if total == 0 || passed == 0 {
            return Self::wrong();
        }
        if passed >= total {
            return Self::correct();
        }
        Self {
            value: passed as f32 / total as f32,
            verdict: Verdict::Partial,
        }
    }

    /// The label's name ([`Verdict::as_str`]).
    pub fn as_str(&self) -> &'static str {
        self.verdict.as_str()
    }

    /// Correct or wrong.
    pub fn binary(correct: bool) -> Self {
        if correct {
            Self::correct()
        } else {
            Self::wrong()
        }
    }
}

/// A score equals a verdict when it carries that label (`score == Verdict::Correct`).
impl PartialEq<Verdict> for Score {
    fn eq(&self, other: &Verdict) -> bool {
        self.verdict == *other
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

/// A graded generation: the score and the parsed answer when it parsed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Graded {
    /// Score and label.
    pub score: Score,
    /// The parsed answer (absent on a format error).
    pub answer: Option<Answer>,
}

impl Graded {
    /// The label.
    pub fn verdict(&self) -> Verdict {
        self.score.verdict
    }
}

/// The solving side of a task type: prompt building, answer parsing and checking. Every task
/// type implements it; a kind the policy also proposes implements [`Proposer`] too.
///
/// Object safe and `Send + Sync`, so a registry of `Box<dyn TaskType>` is shared by actors.
pub trait TaskType: Send + Sync {
    /// The kind this type handles (its registry name).
    fn kind(&self) -> TaskKind;

    /// The solver prompt for a task.
    fn solver_prompt(&self, task: &Task) -> Result<String, TaskError>;

    /// Parse a solver generation (the decoded response, including any stop sequence).
    fn parse_answer(&self, text: &str) -> Result<Answer, FormatError>;

    /// Check a parsed answer: a score in [0, 1] with its label (answers that are not valid
    /// literals or programs score `Wrong`, not format errors; use [`Score::fraction`] for
    /// partial credit).
    fn check(&self, task: &Task, answer: &Answer, exec: &Executor) -> Score;

    /// The reply a perfect solver would give for `task` (empty reasoning); it grades `Correct`.
    /// Used to build pretraining corpora and in the conformance tests.
    fn answer_text(&self, task: &Task) -> Result<String, TaskError>;

    /// The proposing side, when the policy proposes tasks of this kind (`None`: solve only).
    fn proposer(&self) -> Option<&dyn Proposer> {
        None
    }

    /// An example task of this kind made from a labelled program (its code, input/output pairs
    /// and a one-line description), for the pretraining corpus; `None` when the kind has no
    /// such examples (math). The pairs carry `repr`s from the executor.
    fn example(&self, _program: &str, _pairs: &[IoPair], _message: &str) -> Option<Task> {
        None
    }

    /// How many input/output pairs [`TaskType::example`] wants when the corpus offers `many`
    /// for multi-pair kinds (single-pair kinds: 1).
    fn example_pairs(&self, _many: usize) -> usize {
        1
    }

    /// Parse and check a solver generation in one go.
    fn grade(&self, task: &Task, text: &str, exec: &Executor) -> Graded {
        match self.parse_answer(text) {
            Ok(answer) => Graded {
                score: self.check(task, &answer, exec),
                answer: Some(answer),
            },
            Err(_) => Graded {
                score: Score::format_error(),
                answer: None,
            },
        }
    }
}

/// The proposing side of a task type: the policy writes new tasks of this kind, which are
/// validated in the sandbox and kept in the kind's buffer.
pub trait Proposer: TaskType {
    /// Number of reference tasks the proposer prompt shows (K = 6 by default; induction: 1).
    fn num_references(&self) -> usize;

    /// Buffers the references are drawn from (default: the kind's own; induction: the
    /// deduction and abduction buffers, whose programs it writes inputs for).
    fn reference_sources(&self) -> Vec<TaskKind> {
        vec![self.kind()]
    }

    /// Whether the proposer writes the task's program (default: true) rather than reusing a
    /// reference's (induction writes inputs and a message for a buffered program). Only a
    /// program the proposer wrote can be novel, so the diversity and repetition terms of the
    /// proposer reward ([`RewardConfig::proposer_with_shape`](rewards::RewardConfig::proposer_with_shape))
    /// apply only when this is true: otherwise every valid proposal would lose λ whatever it
    /// did, and proposing validly would stop paying.
    fn writes_program(&self) -> bool {
        true
    }

    /// Build the proposer prompt from reference tasks (drawn uniformly from the buffers named by
    /// [`Proposer::reference_sources`]).
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

    /// The reply a perfect proposer would give for `task`, in this template set's format (empty
    /// reasoning). Used to build pretraining corpora; parsing it gives back the task's proposal.
    fn proposal_text(&self, task: &Task) -> Result<String, TaskError>;

    /// The tasks this kind's buffer starts from (validated in the sandbox). Every proposable
    /// kind needs at least one, or its proposer would have no references.
    fn seed_tasks(&self, exec: &Executor) -> Result<Vec<Task>, Invalid>;
}
