//! The pretraining corpus: labelled programs rendered in the compact templates, and packing of
//! whole samples into fixed-length rows for next-token training.
//!
//! Compact formats (one sample each; `CODE` is the program source, `ARGS` an argument text,
//! `REPR` the `repr` of the output, the indent is one space):
//!
//! | kind | text | the solver's prompt ends after |
//! |---|---|---|
//! | deduction | `<prog>CODE\n<in>ARGS<out>REPR<end>` | `<out>` |
//! | abduction | `<prog>CODE\n<out>REPR<in>ARGS<end>` | `<in>` |
//! | induction | `<in>ARGS<out>REPR` (per pair) `<prog>CODE\n<end>` | `<prog>` |
//!
//! Because the loss covers every token, the same samples also teach the proposer its part: a
//! deduction sample *is* a proposal (a program and an input, written after `<prog>`) followed by
//! its answer.

use super::error::PretrainError;
use super::generator::{label_each, IoPair, LabeledProgram, ProgramGenerator, Split};
use super::tokenizer::{END, IN, OUT, PROG, TinyTokenizer};
use crate::executor::Executor;
use crate::types::TaskKind;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

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
    /// Input/output pairs shown in an induction sample. Default 3.
    pub induction_pairs: usize,
    /// Longest accepted output `repr`, in characters. Default 40.
    pub max_output_chars: usize,
    /// Programs labelled per executor batch. Default 512.
    pub chunk_programs: usize,
}

impl Default for CorpusConfig {
    fn default() -> Self {
        Self {
            deduction: 0.5,
            abduction: 0.25,
            induction: 0.25,
            induction_pairs: 3,
            max_output_chars: 40,
            chunk_programs: 512,
        }
    }
}

impl CorpusConfig {
    /// Check ranges; errors name the key under `[corpus]`.
    pub fn validate(&self) -> Result<(), PretrainError> {
        let ws = [self.deduction, self.abduction, self.induction];
        if ws.iter().any(|w| !w.is_finite() || *w < 0.0) || ws.iter().sum::<f64>() <= 0.0 {
            return Err(PretrainError::Invalid {
                key: "corpus.deduction/abduction/induction",
                message: "weights must be finite, non-negative and not all zero".into(),
            });
        }
        if self.induction_pairs < 2 {
            return Err(PretrainError::Invalid {
                key: "corpus.induction_pairs",
                message: "must be at least 2".into(),
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
    /// The full text, special tokens included.
    pub text: String,
}

/// The deduction prompt: `<prog>CODE\n<in>ARGS<out>`.
pub fn deduction_prompt(code: &str, input: &str) -> String {
    format!("{PROG}{code}\n{IN}{input}{OUT}")
}

/// A deduction sample: the prompt, then `REPR<end>`.
pub fn render_deduction(code: &str, pair: &IoPair) -> String {
    format!("{}{}{END}", deduction_prompt(code, &pair.input), pair.output)
}

/// The abduction prompt: `<prog>CODE\n<out>REPR<in>`.
pub fn abduction_prompt(code: &str, output: &str) -> String {
    format!("{PROG}{code}\n{OUT}{output}{IN}")
}

/// An abduction sample: the prompt, then `ARGS<end>`.
pub fn render_abduction(code: &str, pair: &IoPair) -> String {
    format!("{}{}{END}", abduction_prompt(code, &pair.output), pair.input)
}

/// The induction prompt: `<in>ARGS<out>REPR` for each shown pair, then `<prog>`.
pub fn induction_prompt(pairs: &[IoPair]) -> String {
    let mut s = String::new();
    for p in pairs {
        s.push_str(IN);
        s.push_str(&p.input);
        s.push_str(OUT);
        s.push_str(&p.output);
    }
    s.push_str(PROG);
    s
}

/// An induction sample: the prompt, then `CODE\n<end>`.
pub fn render_induction(code: &str, pairs: &[IoPair]) -> String {
    format!("{}{code}\n{END}", induction_prompt(pairs))
}

/// Render one labelled program as a sample of `kind` (deduction/abduction use the first pair,
/// induction all pairs). `None` for `Math` or a program without pairs.
pub fn render(kind: TaskKind, program: &LabeledProgram) -> Option<Sample> {
    let first = program.pairs.first()?;
    let text = match kind {
        TaskKind::Deduction => render_deduction(&program.code, first),
        TaskKind::Abduction => render_abduction(&program.code, first),
        TaskKind::Induction => render_induction(&program.code, &program.pairs),
        TaskKind::Math => return None,
    };
    Some(Sample { kind, text })
}

/// The training stream: a seeded generator on the training side of the split, labelled by the
/// executor chunk by chunk, rendered with the kind mix of a [`CorpusConfig`].
///
/// The stream is a pure function of the seed and the config (the executor is deterministic on
/// these programs), so a pretraining run is reproducible.
#[derive(Debug)]
pub struct SampleStream {
    cfg: CorpusConfig,
    generator: ProgramGenerator,
    rng: ChaCha8Rng,
    pending: std::collections::VecDeque<Sample>,
    produced: u64,
}

impl SampleStream {
    /// A stream seeded with `seed` (the kind mix uses a separate RNG derived from it).
    pub fn new(seed: u64, cfg: CorpusConfig) -> Result<Self, PretrainError> {
        cfg.validate()?;
        Ok(Self {
            generator: ProgramGenerator::new(seed, Split::Train),
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

    fn draw_kind(&mut self) -> TaskKind {
        let c = &self.cfg;
        let total = c.deduction + c.abduction + c.induction;
        let x = self.rng.random::<f64>() * total;
        if x < c.deduction {
            TaskKind::Deduction
        } else if x < c.deduction + c.abduction {
            TaskKind::Abduction
        } else {
            TaskKind::Induction
        }
    }

    /// Generate, label and render the next chunk of `chunk_programs` programs.
    pub fn next_chunk(&mut self, executor: &Executor) -> Result<Vec<Sample>, PretrainError> {
        let mut kinds = Vec::with_capacity(self.cfg.chunk_programs);
        let mut specs = Vec::with_capacity(self.cfg.chunk_programs);
        for _ in 0..self.cfg.chunk_programs {
            let kind = self.draw_kind();
            let n = match kind {
                TaskKind::Induction => self.cfg.induction_pairs,
                _ => 1,
            };
            let spec = self.generator.next_program(n).ok_or_else(|| {
                PretrainError::EmptyCorpus("no template on the training side".into())
            })?;
            kinds.push(kind);
            specs.push(spec);
        }
        let labeled = label_each(executor, &specs, self.cfg.max_output_chars);
        let mut out = Vec::with_capacity(labeled.len());
        for (kind, program) in kinds.into_iter().zip(labeled) {
            let Some(program) = program else { continue };
            // Induction needs at least two pairs to be a task at all.
            if kind == TaskKind::Induction && program.pairs.len() < 2 {
                continue;
            }
            out.extend(render(kind, &program));
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
pub fn pack(samples: &[Vec<u32>], row_len: usize, pad_id: u32) -> Result<Vec<Vec<u32>>, PretrainError> {
    let mut packer = RowPacker::new(row_len, pad_id);
    let mut rows = Vec::new();
    for s in samples {
        rows.extend(packer.push(s)?);
    }
    rows.extend(packer.finish());
    Ok(rows)
}

/// A stream of packed rows: samples from a [`SampleStream`], tokenised and packed.
#[derive(Debug)]
pub struct RowStream {
    samples: SampleStream,
    packer: RowPacker,
    tokens: u64,
}

impl RowStream {
    /// Rows of `row_len` ids from `samples`.
    pub fn new(samples: SampleStream, row_len: usize, pad_id: u32) -> Self {
        Self {
            samples,
            packer: RowPacker::new(row_len, pad_id),
            tokens: 0,
        }
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
            self.tokens += ids.len() as u64;
            if let Some(row) = self.packer.push(&ids)? {
                return Ok(row);
            }
        }
    }
}
