//! The seeded procedural generator of small Python programs and their inputs.
//!
//! A [`ProgramGenerator`] draws a family uniformly, then a template of that family, then the
//! template's constants and several distinct inputs. The outputs are never computed here:
//! [`label`] runs every (program, input) pair through the sandboxed
//! [`Executor`](crate::executor::Executor) and keeps the pairs that return a value.
//!
//! **Train/held-out split.** Two mechanisms keep the held-out set out of the training stream,
//! independently of seeds and stream length:
//! * templates flagged `unseen` (and the whole `compose` family) are never drawn for training;
//! * every (program, input) pair is assigned to the held-out side when a stable hash of it
//!   falls in one bucket out of [`HELDOUT_BUCKETS`] ([`is_heldout_pair`]); the training stream
//!   drops those pairs, the held-out set keeps only them.

use super::chains::{draw_chain, Chain, ChainSplit};
use super::templates::{Family, Template, TEMPLATES};
use crate::executor::{ExecJob, ExecStatus, Executor};
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// One in this many (program, input) pairs belongs to the held-out side.
pub const HELDOUT_BUCKETS: u64 = 8;

/// Which side of the train/held-out split a generator draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// Seen templates only, pairs outside the held-out bucket.
    Train,
    /// All templates (seen and unseen), pairs inside the held-out bucket only.
    Heldout,
}

/// 64-bit FNV-1a: a hash that is stable across Rust versions and platforms.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The seed of sub-stream `stream` of a generator seeded with `seed` (each (kind, family) of the
/// held-out set, each kind of a replay pool, gets its own).
pub fn stream_seed(seed: u64, stream: u64) -> u64 {
    seed.wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .wrapping_add(stream)
}

/// Whether the pair `(code, input)` belongs to the held-out side of the split.
pub fn is_heldout_pair(code: &str, input: &str) -> bool {
    let mut key = Vec::with_capacity(code.len() + input.len() + 1);
    key.extend_from_slice(code.as_bytes());
    key.push(0);
    key.extend_from_slice(input.as_bytes());
    stable_hash(&key) % HELDOUT_BUCKETS == 0
}

/// An unlabelled program: its source and the argument texts to run it on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgramSpec {
    /// Family of the template it came from.
    pub family: Family,
    /// Name of the template it came from.
    pub template: String,
    /// Whether the template is held out of training.
    pub unseen_template: bool,
    /// The template's short description (the message of induction samples).
    pub message: String,
    /// Python source defining `f` (no trailing newline).
    pub code: String,
    /// Distinct argument texts, e.g. `9, 'ab'`.
    pub inputs: Vec<String>,
}

/// One input with the `repr` of the output the executor computed for it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct IoPair {
    /// Argument text, e.g. `[3, 1], 2`.
    pub input: String,
    /// Python `repr` of `f(input)`.
    pub output: String,
}

/// A program with executor-computed input/output pairs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabeledProgram {
    /// Family of the template it came from.
    pub family: Family,
    /// Name of the template it came from.
    pub template: String,
    /// Whether the template is held out of training.
    pub unseen_template: bool,
    /// The template's short description (the message of induction samples).
    pub message: String,
    /// Python source defining `f` (no trailing newline).
    pub code: String,
    /// Pairs that ran successfully, in input order.
    pub pairs: Vec<IoPair>,
}

/// A seeded, deterministic stream of [`ProgramSpec`]s for one side of the split.
#[derive(Debug, Clone)]
pub struct ProgramGenerator {
    rng: ChaCha8Rng,
    split: Split,
    families: Vec<(Family, Vec<&'static Template>)>,
    chain: f64,
    /// Which chain shapes are held out of the training side ([`ChainSplit`]).
    chain_split: ChainSplit,
    /// Set by [`ProgramGenerator::held_out_chains`]: every chain is of this side of the chain
    /// split (`true`: unseen shapes) instead of either side at random.
    chain_side: Option<bool>,
}

/// How many input draws per wanted input before a generator gives up on a program.
const INPUT_ATTEMPTS: usize = 24;

impl ProgramGenerator {
    /// A generator for `split`, seeded with `seed`, over every family that has templates on
    /// that side (the training side has no `compose` family).
    pub fn new(seed: u64, split: Split) -> Self {
        Self::with_families(seed, split, &Family::ALL)
    }

    /// A generator restricted to some families (families without templates on `split` are
    /// skipped).
    pub fn with_families(seed: u64, split: Split, families: &[Family]) -> Self {
        let families = families
            .iter()
            .filter_map(|&fam| {
                let ts: Vec<&'static Template> = TEMPLATES
                    .iter()
                    .filter(|t| t.family == fam && (split == Split::Heldout || !t.unseen))
                    .collect();
                (!ts.is_empty()).then_some((fam, ts))
            })
            .collect();
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
            split,
            families,
            chain: 0.0,
            chain_split: ChainSplit::default(),
            chain_side: None,
        }
    }

    /// A generator of chains only, on the held-out side of the pair split, all of one side of
    /// the chain split: shapes pretraining never showed (`unseen = true`) or shapes it showed
    /// with held-out (program, input) pairs (`false`). Used for the chain evaluation set.
    pub fn held_out_chains(seed: u64, unseen: bool) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
            split: Split::Heldout,
            families: Vec::new(),
            chain: 1.0,
            chain_split: ChainSplit::default(),
            chain_side: Some(unseen),
        }
    }

    /// Make a share `chain` of programs [chains](super::chains) instead of template programs
    /// (seen chains on the training side, any chain on the held-out side). At 0 (the default)
    /// the stream is exactly that of a generator without chains: the RNG is not consulted.
    pub fn with_chains(mut self, chain: f64) -> Self {
        self.chain = chain;
        self
    }

    /// Hold out the chain shapes of `split` instead of the default quarter ([`ChainSplit`]):
    /// the training side draws only the other chains, and the chains' `unseen_template` flags
    /// follow `split`.
    pub fn with_chain_split(mut self, split: ChainSplit) -> Self {
        self.chain_split = split;
        self
    }

    /// The side of the split this generator draws from.
    pub fn split(&self) -> Split {
        self.split
    }

    /// The families this generator draws from.
    pub fn families(&self) -> Vec<Family> {
        self.families.iter().map(|(f, _)| *f).collect()
    }

    /// Draw the next program with up to `n_inputs` distinct inputs on this generator's side of
    /// the split. Returns `None` when no family is available; a program may carry fewer inputs
    /// than asked when its input space is small (never zero: such programs are redrawn).
    pub fn next_program(&mut self, n_inputs: usize) -> Option<ProgramSpec> {
        let n_inputs = n_inputs.max(1);
        loop {
            if self.chain > 0.0 && self.rng.random::<f64>() < self.chain {
                // The held-out side may draw either side of the chain split.
                let unseen = match self.chain_side {
                    Some(side) => side,
                    None => self.split == Split::Heldout && self.rng.random::<bool>(),
                };
                if let Some(spec) = draw_chain(&mut self.rng, self.chain_split, unseen)
                    .and_then(|c| self.draw_chain_from(&c, n_inputs))
                {
                    return Some(spec);
                }
                continue;
            }
            let (family, templates) = self.families.choose(&mut self.rng)?;
            let family = *family;
            let template = *templates.choose(&mut self.rng)?;
            if let Some(spec) = self.draw_from(family, template, n_inputs) {
                return Some(spec);
            }
        }
    }

    /// Draw the next program of one given template (used for per-template evaluation sets).
    pub fn next_of_template(
        &mut self,
        template: &'static Template,
        n_inputs: usize,
    ) -> Option<ProgramSpec> {
        let n_inputs = n_inputs.max(1);
        (0..INPUT_ATTEMPTS).find_map(|_| self.draw_from(template.family, template, n_inputs))
    }

    fn draw_chain_from(&mut self, chain: &Chain, n_inputs: usize) -> Option<ProgramSpec> {
        let code = chain.program(&mut self.rng);
        let inputs = self.draw_inputs(&code, n_inputs, |rng| chain.input(rng));
        (!inputs.is_empty()).then(|| ProgramSpec {
            family: Family::Chain,
            template: chain.name(),
            unseen_template: chain.unseen(self.chain_split),
            message: chain.message(),
            code,
            inputs,
        })
    }

    /// Up to `n_inputs` distinct inputs for `code` on this generator's side of the pair split.
    fn draw_inputs(
        &mut self,
        code: &str,
        n_inputs: usize,
        mut draw: impl FnMut(&mut ChaCha8Rng) -> String,
    ) -> Vec<String> {
        let want_heldout = self.split == Split::Heldout;
        let mut seen = HashSet::new();
        let mut inputs = Vec::with_capacity(n_inputs);
        for _ in 0..n_inputs * INPUT_ATTEMPTS {
            if inputs.len() == n_inputs {
                break;
            }
            let input = draw(&mut self.rng);
            if is_heldout_pair(code, &input) == want_heldout && seen.insert(input.clone()) {
                inputs.push(input);
            }
        }
        inputs
    }

    fn draw_from(
        &mut self,
        family: Family,
        template: &'static Template,
        n_inputs: usize,
    ) -> Option<ProgramSpec> {
        let code = template.program(&mut self.rng);
        let inputs = self.draw_inputs(&code, n_inputs, |rng| template.input(rng));
        (!inputs.is_empty()).then(|| ProgramSpec {
            family,
            template: template.name.to_string(),
            unseen_template: template.unseen,
            message: template.message.to_string(),
            code,
            inputs,
        })
    }
}

/// Run every (program, input) pair in the sandboxed executor and keep those that return a
/// value whose `repr` is at most `max_output_chars` long and printable ASCII. Programs left
/// with no pair are dropped. The order of programs and pairs is preserved.
pub fn label(
    executor: &Executor,
    specs: &[ProgramSpec],
    max_output_chars: usize,
) -> Vec<LabeledProgram> {
    label_each(executor, specs, max_output_chars)
        .into_iter()
        .flatten()
        .collect()
}

/// Like [`label`], but aligned with `specs`: `None` where no pair of a program survived.
pub fn label_each(
    executor: &Executor,
    specs: &[ProgramSpec],
    max_output_chars: usize,
) -> Vec<Option<LabeledProgram>> {
    let jobs: Vec<ExecJob> = specs
        .iter()
        .flat_map(|s| {
            s.inputs.iter().map(|i| ExecJob {
                code: s.code.clone(),
                input: i.clone(),
            })
        })
        .collect();
    let mut outcomes = executor.run_many(&jobs).into_iter();
    specs
        .iter()
        .map(|spec| {
            let mut pairs = Vec::with_capacity(spec.inputs.len());
            for input in &spec.inputs {
                let Some(outcome) = outcomes.next() else {
                    break;
                };
                if outcome.status != ExecStatus::Ok {
                    continue;
                }
                let Some(repr) = outcome.repr else { continue };
                if repr.len() <= max_output_chars && repr.bytes().all(|b| (32..127).contains(&b)) {
                    pairs.push(IoPair {
                        input: input.clone(),
                        output: repr,
                    });
                }
            }
            (!pairs.is_empty()).then(|| LabeledProgram {
                family: spec.family,
                template: spec.template.clone(),
                unseen_template: spec.unseen_template,
                message: spec.message.clone(),
                code: spec.code.clone(),
                pairs,
            })
        })
        .collect()
}
