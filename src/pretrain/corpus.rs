//! The pretraining corpus: labelled programs rendered in the compact templates, and packing of
//! whole samples into fixed-length rows for next-token training.
//!
//! Samples are rendered *through the task types* of a [`TaskRegistry`] built on the compact
//! template set (`config/templates/compact.toml`): a solve sample is the type's solver prompt
//! followed by its perfect answer ([`TaskType::answer_text`]), a proposal sample the proposer
//! prompt followed by the perfect proposal ([`Proposer::proposal_text`]); a kind takes part
//! through [`TaskType::example`]. The free functions below spell the same formats out by hand
//! for tests and documentation; [`render_sample`] is checked against them. `CODE` is the program source (1-space indent),
//! `ARGS` an argument text, `REPR` the `repr` of the output, `MSG` a short description:
//!
//! | sample | text | the prompt ends after |
//! |---|---|---|
//! | deduction solve | `<prog>CODE\n<in>ARGS<out>REPR<end>` | `<out>` |
//! | abduction solve | `<prog>CODE\n<out>REPR<in>ARGS<end>` | `<in>` |
//! | induction solve | `<in>ARGS<out>REPR` (per pair) `<msg>MSG<prog>CODE\n<end>` | `<prog>` |
//! | deduction/abduction proposal | 1-N reference items, each followed by `\n`, then a new item | `<prog>` |
//! | induction proposal | `<prog>CODE\n<msg>MSG<in>ARGS<in>ARGS...<end>` | `<msg>` |
//!
//! The loss covers every token, so solve samples also teach the model to write programs and
//! inputs, and proposal samples teach it to continue from reference tasks.

use super::chains::ChainSplit;
use super::error::PretrainError;
use super::generator::{label_each, IoPair, LabeledProgram, ProgramGenerator, Split};
use super::tokenizer::{TinyTokenizer, END, IN, MSG, OUT, PROG};
use crate::executor::Executor;
use crate::tasks::{TaskRegistry, TaskType, TasksConfig, TemplateSet};
use crate::types::{Role, TaskKind};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The pretraining config kept beside a shipped base model's weights ([`CorpusConfig::of_base`]).
pub const BASE_CONFIG_FILE: &str = "pretrain-config.toml";

/// Relative weights of the three sample kinds in the training stream, and induction's size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorpusConfig {
    /// Weight of deduction samples. Default 0.5.
    pub deduction: f64,
    /// Weight of abduction samples. Default 0.25.
    pub abduction: f64,
    /// Weight of induction samples. Default 0.25.
    pub induction: f64,
    /// Weights of further registered kinds, by name (drawn after the three above, in name
    /// order). Default empty.
    pub kinds: BTreeMap<String, f64>,
    /// Fraction of samples that are proposals rather than solutions. Default 0.2.
    pub propose: f64,
    /// Most reference items before a deduction/abduction proposal (1..=this). Default 2.
    pub proposal_references: usize,
    /// Input/output pairs shown in an induction sample; induction proposals write this many
    /// to this many + 3 inputs. Default 3.
    pub induction_pairs: usize,
    /// Longest accepted output `repr`, in characters. Default 40.
    pub max_output_chars: usize,
    /// Programs labelled per executor batch. Default 512.
    pub chunk_programs: usize,
    /// Share of programs that are [chains](super::chains) of typed operations (seen chains
    /// only) instead of template programs, in `[0, 1)`. Default 0: the template corpus alone.
    pub chain: f64,
    /// Share of the chain shapes held out of the corpus ([`ChainSplit`]): 0.25, 0.5 or 0.75.
    /// Default 0.25 (`assets/chain-base`). A run on a base pretrained with another share must
    /// set `tasks.chain_unseen` to the same value, so novelty counts the base's own corpus.
    pub chain_unseen: f64,
}

impl Default for CorpusConfig {
    fn default() -> Self {
        Self {
            deduction: 0.5,
            abduction: 0.25,
            induction: 0.25,
            kinds: BTreeMap::new(),
            propose: 0.2,
            proposal_references: 2,
            induction_pairs: 3,
            max_output_chars: 40,
            chunk_programs: 512,
            chain: 0.0,
            chain_unseen: 0.25,
        }
    }
}

impl CorpusConfig {
    /// The kind mix in draw order: deduction, abduction, induction, then `kinds` by name.
    /// Names that are not valid kind names are dropped (the registry check reports them).
    pub fn weights(&self) -> Vec<(TaskKind, f64)> {
        let mut w = vec![
            (TaskKind::Deduction, self.deduction),
            (TaskKind::Abduction, self.abduction),
            (TaskKind::Induction, self.induction),
        ];
        w.extend(
            self.kinds
                .iter()
                .filter_map(|(k, v)| TaskKind::new(k).ok().map(|k| (k, *v))),
        );
        w
    }

    /// The `[corpus]` section a base model was pretrained with, read from the
    /// `pretrain-config.toml` kept beside its weights (`assets/*-base/`); `None` when the
    /// directory has no such file (a checkpoint, an imported model). Absent keys take their
    /// defaults, as when the base was pretrained.
    pub fn of_base(model_dir: &std::path::Path) -> Result<Option<Self>, PretrainError> {
        let path = model_dir.join(BASE_CONFIG_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(PretrainError::Io {
                    action: "reading",
                    path,
                    source,
                })
            }
        };
        let config = |message: String| PretrainError::Config {
            path: path.display().to_string(),
            message,
        };
        let mut table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| config(e.to_string()))?;
        match table.remove("corpus") {
            None => Ok(Some(Self::default())),
            Some(corpus) => corpus
                .try_into()
                .map(Some)
                .map_err(|e: toml::de::Error| config(format!("[corpus]: {}", e.message()))),
        }
    }

    /// The chain split of `chain_unseen` (the default quarter if the value is not one of
    /// [`ChainSplit::SHARES`]; [`Self::validate`] rejects such a value).
    pub fn chain_split(&self) -> ChainSplit {
        ChainSplit::from_share(self.chain_unseen).unwrap_or_default()
    }

    /// Check ranges; errors name the key under `[corpus]`.
    pub fn validate(&self) -> Result<(), PretrainError> {
        let ws: Vec<f64> = self.weights().into_iter().map(|(_, w)| w).collect();
        if ws.iter().any(|w| !w.is_finite() || *w < 0.0) || ws.iter().sum::<f64>() <= 0.0 {
            return Err(PretrainError::Invalid {
                key: "corpus.deduction/abduction/induction",
                message: "weights must be finite, non-negative and not all zero".into(),
            });
        }
        if !(0.0..=1.0).contains(&self.propose) {
            return Err(PretrainError::Invalid {
                key: "corpus.propose",
                message: "must be in [0, 1]".into(),
            });
        }
        if self.proposal_references == 0 {
            return Err(PretrainError::Invalid {
                key: "corpus.proposal_references",
                message: "must be at least 1".into(),
            });
        }
        if self.induction_pairs < 2 {
            return Err(PretrainError::Invalid {
                key: "corpus.induction_pairs",
                message: "must be at least 2".into(),
            });
        }
        if !(0.0..1.0).contains(&self.chain) {
            return Err(PretrainError::Invalid {
                key: "corpus.chain",
                message: "must be in [0, 1)".into(),
            });
        }
        if ChainSplit::from_share(self.chain_unseen).is_none() {
            return Err(PretrainError::Invalid {
                key: "corpus.chain_unseen",
                message: format!("must be one of {:?}", ChainSplit::SHARES),
            });
        }
        if self.chunk_programs == 0 {
            return Err(PretrainError::Invalid {
                key: "corpus.chunk_programs",
                message: "must be positive".into(),
            });
        }
        Ok(())
    }
}

/// One rendered training sample.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sample {
    /// The task kind it renders.
    pub kind: TaskKind,
    /// Whether it is a solution or a proposal.
    pub role: Role,
    /// The full text, special tokens included.
    pub text: String,
}

/// The deduction prompt: `<prog>CODE\n<in>ARGS<out>`.
pub fn deduction_prompt(code: &str, input: &str) -> String {
    format!("{PROG}{code}\n{IN}{input}{OUT}")
}

/// A deduction sample: the prompt, then `REPR<end>`.
pub fn render_deduction(code: &str, pair: &IoPair) -> String {
    format!(
        "{}{}{END}",
        deduction_prompt(code, &pair.input),
        pair.output
    )
}

/// The abduction prompt: `<prog>CODE\n<out>REPR<in>`.
pub fn abduction_prompt(code: &str, output: &str) -> String {
    format!("{PROG}{code}\n{OUT}{output}{IN}")
}

/// An abduction sample: the prompt, then `ARGS<end>`.
pub fn render_abduction(code: &str, pair: &IoPair) -> String {
    format!(
        "{}{}{END}",
        abduction_prompt(code, &pair.output),
        pair.input
    )
}

/// The induction prompt: `<in>ARGS<out>REPR` for each shown pair, then `<msg>MSG<prog>`.
pub fn induction_prompt(pairs: &[IoPair], message: &str) -> String {
    let mut s = String::new();
    for p in pairs {
        s.push_str(IN);
        s.push_str(&p.input);
        s.push_str(OUT);
        s.push_str(&p.output);
    }
    s.push_str(MSG);
    s.push_str(message);
    s.push_str(PROG);
    s
}

/// An induction sample: the prompt, then `CODE\n<end>`.
pub fn render_induction(code: &str, pairs: &[IoPair], message: &str) -> String {
    format!("{}{code}\n{END}", induction_prompt(pairs, message))
}

/// The induction proposal prompt: `<prog>CODE\n<msg>`. It must not share a prefix with the
/// deduction/abduction items (`<prog>CODE\n<in>ARGS<out>`): with inputs first, the model could
/// not tell an induction proposal from a deduction item and always continued with `<out>`.
pub fn induction_proposal_prompt(code: &str) -> String {
    format!("{PROG}{code}\n{MSG}")
}

/// An induction proposal: the prompt, then `MSG<in>ARGS<in>ARGS...<end>`.
pub fn render_induction_proposal(code: &str, inputs: &[String], message: &str) -> String {
    let mut s = format!("{PROG}{code}\n{MSG}{message}");
    for input in inputs {
        s.push_str(IN);
        s.push_str(input);
    }
    s.push_str(END);
    s
}

/// A deduction or abduction proposal: each reference item followed by `\n`, then the new item
/// (the proposer's prompt ends at the new item's `<prog>`).
pub fn render_proposal(
    kind: TaskKind,
    references: &[&LabeledProgram],
    new: &LabeledProgram,
) -> Option<String> {
    // Deduction and abduction proposals share one item layout in the compact templates
    // (`<prog>P\n<in>I<out>O<end>`, see `config/templates/compact.toml`).
    if kind != TaskKind::Deduction && kind != TaskKind::Abduction {
        return None;
    }
    let item = |p: &LabeledProgram| -> Option<String> {
        let pair = p.pairs.first()?;
        Some(render_deduction(&p.code, pair))
    };
    let mut s = String::new();
    for r in references {
        s.push_str(&item(r)?);
        s.push('\n');
    }
    s.push_str(&item(new)?);
    Some(s)
}

/// The task registry over the compact templates that the corpus renders through (the built-in
/// task types; induction shows every pair it is given).
pub fn compact_registry() -> Result<TaskRegistry, PretrainError> {
    let templates = TemplateSet::builtin("compact")
        .map_err(|e| PretrainError::EmptyCorpus(format!("compact templates: {e}")))?;
    let cfg = TasksConfig {
        templates: "compact".into(),
        ..TasksConfig::default()
    };
    TaskRegistry::builtin(Arc::new(templates), &cfg)
        .map_err(|e| PretrainError::EmptyCorpus(format!("compact task types: {e}")))
}

fn task_pairs(p: &LabeledProgram) -> Vec<crate::tasks::IoPair> {
    p.pairs
        .iter()
        .map(|x| crate::tasks::IoPair {
            input: x.input.clone(),
            output: x.output.clone(),
            value: None,
        })
        .collect()
}

fn example(tt: &dyn TaskType, p: &LabeledProgram) -> Option<crate::tasks::Task> {
    tt.example(&p.code, &task_pairs(p), &p.message)
}

/// Render one sample through the task type of `kind`: a solve sample of `new` (solver prompt +
/// perfect answer), or a proposal sample (proposer prompt over `references`, or over `new` itself
/// when there are none, + the perfect proposal of `new`). `None` when the kind is not
/// registered, has no examples, does not propose, or a program lacks the pairs it needs.
pub fn render_sample(
    registry: &TaskRegistry,
    kind: TaskKind,
    role: Role,
    new: &LabeledProgram,
    references: &[LabeledProgram],
) -> Option<String> {
    let tt = registry.get(kind)?;
    let task = example(tt, new)?;
    match role {
        Role::Solve => {
            let prompt = tt.solver_prompt(&task).ok()?;
            Some(prompt + &tt.answer_text(&task).ok()?)
        }
        Role::Propose => {
            let proposer = tt.proposer()?;
            let refs: Vec<crate::tasks::Task> = if references.is_empty() {
                vec![task.clone()]
            } else {
                references
                    .iter()
                    .map(|r| example(tt, r))
                    .collect::<Option<_>>()?
            };
            let prompt = proposer.proposer_prompt(&refs).ok()?;
            Some(prompt.text + &proposer.proposal_text(&task).ok()?)
        }
    }
}

/// Render one labelled program as a solve sample of `kind` through the compact task types
/// (deduction/abduction use the first pair, induction all pairs). `None` for kinds without
/// examples (math) or a program without pairs.
pub fn render(kind: TaskKind, program: &LabeledProgram) -> Option<Sample> {
    thread_local! {
        static REGISTRY: Option<TaskRegistry> = compact_registry().ok();
    }
    let text = REGISTRY.with(|r| render_sample(r.as_ref()?, kind, Role::Solve, program, &[]))?;
    Some(Sample {
        kind,
        role: Role::Solve,
        text,
    })
}

/// What one planned sample needs from the generator.
#[derive(Debug, Clone, Copy)]
struct Plan {
    kind: TaskKind,
    role: Role,
    programs: usize,
    inputs: usize,
}

/// The training stream: a seeded generator on the training side of the split, labelled by the
/// executor chunk by chunk, rendered with the kind mix of a [`CorpusConfig`].
///
/// The stream is a pure function of the seed and the config (the executor is deterministic on
/// these programs), so a pretraining run is reproducible.
#[derive(Debug)]
pub struct SampleStream {
    cfg: CorpusConfig,
    registry: Arc<TaskRegistry>,
    generator: ProgramGenerator,
    rng: ChaCha8Rng,
    pending: std::collections::VecDeque<Sample>,
    produced: u64,
}

impl SampleStream {
    /// A stream seeded with `seed` (the kind mix uses a separate RNG derived from it), rendered
    /// through the built-in task types over the compact templates.
    pub fn new(seed: u64, cfg: CorpusConfig) -> Result<Self, PretrainError> {
        Self::with_registry(seed, cfg, Arc::new(compact_registry()?))
    }

    /// A stream rendered through the task types of `registry` (which must hold every kind of
    /// the mix).
    pub fn with_registry(
        seed: u64,
        cfg: CorpusConfig,
        registry: Arc<TaskRegistry>,
    ) -> Result<Self, PretrainError> {
        cfg.validate()?;
        for (kind, _) in cfg.weights() {
            if registry.get(kind).is_none() {
                return Err(PretrainError::Invalid {
                    key: "corpus.kinds",
                    message: format!("task kind `{kind}` is not registered"),
                });
            }
        }
        Ok(Self {
            registry,
            generator: ProgramGenerator::new(seed, Split::Train)
                .with_chains(cfg.chain)
                .with_chain_split(cfg.chain_split()),
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_c0de_0000_0001),
            pending: std::collections::VecDeque::new(),
            produced: 0,
            cfg,
        })
    }

    /// Samples handed out so far.
    pub fn produced(&self) -> u64 {
        self.produced
    }

    fn draw_plan(&mut self) -> Plan {
        let c = &self.cfg;
        let weights = c.weights();
        let total = weights.iter().fold(0.0, |t, (_, w)| t + w);
        let x = self.rng.random::<f64>() * total;
        let mut kind = weights[weights.len() - 1].0;
        let mut cumulative = 0.0;
        for (k, w) in &weights {
            cumulative += w;
            if x < cumulative {
                kind = *k;
                break;
            }
        }
        let role = if self.rng.random::<f64>() < c.propose {
            Role::Propose
        } else {
            Role::Solve
        };
        let many = self
            .registry
            .get(kind)
            .map_or(1, |t| t.example_pairs(c.induction_pairs));
        let (programs, inputs) = match role {
            Role::Solve => (1, many),
            Role::Propose if many > 1 => (1, self.rng.random_range(many..=many + 3)),
            Role::Propose => (1 + self.rng.random_range(1..=c.proposal_references), 1),
        };
        Plan {
            kind,
            role,
            programs,
            inputs,
        }
    }

    /// Generate, label and render the next chunk of about `chunk_programs` programs.
    pub fn next_chunk(&mut self, executor: &Executor) -> Result<Vec<Sample>, PretrainError> {
        let mut plans = Vec::new();
        let mut specs = Vec::with_capacity(self.cfg.chunk_programs + 4);
        while specs.len() < self.cfg.chunk_programs {
            let plan = self.draw_plan();
            for _ in 0..plan.programs {
                let spec = self.generator.next_program(plan.inputs).ok_or_else(|| {
                    PretrainError::EmptyCorpus("no template on the training side".into())
                })?;
                specs.push(spec);
            }
            plans.push(plan);
        }
        let labeled = label_each(executor, &specs, self.cfg.max_output_chars);
        let mut labeled = labeled.into_iter();
        let mut out = Vec::with_capacity(plans.len());
        for plan in plans {
            let programs: Vec<LabeledProgram> =
                labeled.by_ref().take(plan.programs).flatten().collect();
            let Some((new, refs)) = programs.split_last() else {
                continue;
            };
            let Some(text) = render_sample(&self.registry, plan.kind, plan.role, new, refs) else {
                continue;
            };
            out.push(Sample {
                kind: plan.kind,
                role: plan.role,
                text,
            });
        }
        if out.is_empty() {
            return Err(PretrainError::EmptyCorpus(
                "every program of a chunk failed in the executor".into(),
            ));
        }
        Ok(out)
    }

    /// The next sample, labelling a new chunk when the buffer is empty.
    pub fn next_sample(&mut self, executor: &Executor) -> Result<Sample, PretrainError> {
        if self.pending.is_empty() {
            let chunk = self.next_chunk(executor)?;
            self.pending.extend(chunk);
        }
        self.produced += 1;
        self.pending
            .pop_front()
            .ok_or_else(|| PretrainError::EmptyCorpus("empty chunk".into()))
    }
}

/// Packs whole tokenised samples into rows of exactly `row_len` ids, padding the tail of each
/// row. A sample never straddles two rows.
#[derive(Debug, Clone)]
pub struct RowPacker {
    row_len: usize,
    pad_id: u32,
    current: Vec<u32>,
}

impl RowPacker {
    /// A packer for rows of `row_len` ids, padded with `pad_id`.
    pub fn new(row_len: usize, pad_id: u32) -> Self {
        Self {
            row_len,
            pad_id,
            current: Vec::with_capacity(row_len),
        }
    }

    /// Whether a sample of `len` tokens fits in what is left of the current row.
    pub fn fits(&self, len: usize) -> bool {
        self.current.len() + len <= self.row_len
    }

    /// Add a sample. If it does not fit in the current row, the current row is padded and
    /// returned, and the sample starts the next one. Errors if the sample is longer than a row.
    pub fn push(&mut self, sample: &[u32]) -> Result<Option<Vec<u32>>, PretrainError> {
        if sample.len() > self.row_len {
            return Err(PretrainError::SampleTooLong {
                len: sample.len(),
                row: self.row_len,
            });
        }
        let finished = if self.fits(sample.len()) {
            None
        } else {
            self.finish()
        };
        self.current.extend_from_slice(sample);
        Ok(finished)
    }

    /// Pad and return the current row, if it holds anything.
    pub fn finish(&mut self) -> Option<Vec<u32>> {
        if self.current.is_empty() {
            return None;
        }
        let mut row = std::mem::replace(&mut self.current, Vec::with_capacity(self.row_len));
        row.resize(self.row_len, self.pad_id);
        Some(row)
    }
}

/// Pack a list of tokenised samples into rows (see [`RowPacker`]).
pub fn pack(
    samples: &[Vec<u32>],
    row_len: usize,
    pad_id: u32,
) -> Result<Vec<Vec<u32>>, PretrainError> {
    let mut packer = RowPacker::new(row_len, pad_id);
    let mut rows = Vec::new();
    for s in samples {
        rows.extend(packer.push(s)?);
    }
    rows.extend(packer.finish());
    Ok(rows)
}

/// A stream of packed rows: samples from a [`SampleStream`], tokenised and packed. Samples
/// longer than a row (rare: proposals with long references) are skipped and counted.
#[derive(Debug)]
pub struct RowStream {
    samples: SampleStream,
    packer: RowPacker,
    row_len: usize,
    tokens: u64,
    skipped: u64,
}

impl RowStream {
    /// Rows of `row_len` ids from `samples`.
    pub fn new(samples: SampleStream, row_len: usize, pad_id: u32) -> Self {
        Self {
            samples,
            packer: RowPacker::new(row_len, pad_id),
            row_len,
            tokens: 0,
            skipped: 0,
        }
    }

    /// Samples skipped because they were longer than a row.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Real (non-pad) tokens packed so far.
    pub fn tokens(&self) -> u64 {
        self.tokens
    }

    /// Samples consumed so far.
    pub fn samples(&self) -> u64 {
        self.samples.produced()
    }

    /// The next full row.
    pub fn next_row(
        &mut self,
        executor: &Executor,
        tokenizer: &TinyTokenizer,
    ) -> Result<Vec<u32>, PretrainError> {
        loop {
            let sample = self.samples.next_sample(executor)?;
            let ids = tokenizer.encode(&sample.text)?;
            if ids.len() > self.row_len {
                self.skipped += 1;
                continue;
            }
            self.tokens += ids.len() as u64;
            if let Some(row) = self.packer.push(&ids)? {
                return Ok(row);
            }
        }
    }
}
