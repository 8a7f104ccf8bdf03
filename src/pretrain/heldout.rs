//! The held-out evaluation set: deduction, abduction and induction tasks in the style of the
//! pretraining corpus that the training stream can never contain.
//!
//! It is drawn from its own seed on the held-out side of the split (see
//! [`generator`](super::generator)): every (program, input) pair of it lies in the held-out hash
//! bucket that the training stream drops, and it includes the templates flagged `unseen` and the
//! whole `compose` family, which the training stream never draws. Tasks are deduplicated within
//! the set. It serialises to JSONL, one [`HeldoutTask`] per line.

use super::chains::ChainSplit;
use super::error::PretrainError;
use super::generator::{label_each, stream_seed, IoPair, ProgramGenerator, Split};
use super::templates::Family;
use crate::executor::Executor;
use crate::types::TaskKind;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::io::{BufRead, Write};
use std::path::Path;

/// How the held-out set is drawn (`[eval]` in `config/tiny-pretrain.toml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HeldoutConfig {
    /// Seed of the held-out generator; must differ from the training seed. Default 12345.
    pub seed: u64,
    /// Tasks per (task kind, family). Default 25 (9 families x 3 kinds = 675 tasks).
    pub per_family: usize,
    /// Pairs shown to the induction solver. Default 3.
    pub induction_visible: usize,
    /// Hidden pairs an induction answer must also pass. Default 2.
    pub induction_hidden: usize,
    /// Longest accepted output `repr`, in characters. Default 40.
    pub max_output_chars: usize,
    /// The corpus's `chain_unseen`: which chain shapes the chain set ([`chain_set`]) counts as
    /// unseen. Default 0.25.
    pub chain_unseen: f64,
}

impl Default for HeldoutConfig {
    fn default() -> Self {
        Self {
            seed: 12345,
            per_family: 25,
            induction_visible: 3,
            induction_hidden: 2,
            max_output_chars: 40,
            chain_unseen: 0.25,
        }
    }
}

/// One held-out task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldoutTask {
    /// Deduction, abduction or induction.
    pub kind: TaskKind,
    /// Family of the template.
    pub family: Family,
    /// Template name.
    pub template: String,
    /// Whether the template never occurs in training.
    pub unseen_template: bool,
    /// The induction message (the template's description; shown to induction solvers).
    pub message: String,
    /// Python source defining `f`.
    pub code: String,
    /// Deduction/abduction: one pair. Induction: the visible pairs, then the hidden ones.
    pub pairs: Vec<IoPair>,
    /// Number of leading pairs shown in the prompt (1 for deduction/abduction).
    pub visible: usize,
}

/// The held-out set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldoutSet {
    /// All tasks, grouped by kind then family.
    pub tasks: Vec<HeldoutTask>,
}

impl HeldoutConfig {
    /// Rejects settings no evaluation set can be drawn with.
    fn check(&self) -> Result<(), PretrainError> {
        if self.induction_visible < 1 {
            return Err(PretrainError::Invalid {
                key: "eval.induction_visible",
                message: "must be at least 1".into(),
            });
        }
        if ChainSplit::from_share(self.chain_unseen).is_none() {
            return Err(PretrainError::Invalid {
                key: "corpus.chain_unseen",
                message: format!("must be one of {:?}", ChainSplit::SHARES),
            });
        }
        Ok(())
    }

    /// Labelled pairs per task of `kind` and how many of them the prompt shows.
    fn pairs_of(&self, kind: TaskKind) -> (usize, usize) {
        match kind {
            TaskKind::Induction => (
                self.induction_visible + self.induction_hidden,
                self.induction_visible,
            ),
            _ => (1, 1),
        }
    }
}

/// The kinds of the evaluation sets, in file order (each set's stream seeds follow this order).
const SET_KINDS: [TaskKind; 3] = [
    TaskKind::Deduction,
    TaskKind::Abduction,
    TaskKind::Induction,
];

/// Rounds of generation per (kind, family) before settling for fewer tasks (templates with a
/// small input space can run out of distinct held-out pairs).
const ROUNDS: usize = 8;

/// Build the held-out set with the sandboxed executor computing every output.
pub fn heldout_set(executor: &Executor, cfg: &HeldoutConfig) -> Result<HeldoutSet, PretrainError> {
    cfg.check()?;
    let mut tasks = Vec::new();
    for (ki, kind) in SET_KINDS.into_iter().enumerate() {
        let (n_inputs, visible) = cfg.pairs_of(kind);
        for (fi, family) in Family::ALL.into_iter().enumerate() {
            // A distinct stream per (kind, family), derived from the eval seed.
            let seed = stream_seed(cfg.seed, (ki * 16 + fi) as u64);
            let mut generator = ProgramGenerator::with_families(seed, Split::Heldout, &[family]);
            let drawn = draw_tasks(
                executor,
                &mut generator,
                kind,
                cfg.per_family,
                n_inputs,
                visible,
                cfg.max_output_chars,
            );
            let got = drawn.len();
            tasks.extend(drawn);
            if got < cfg.per_family {
                tracing::warn!(
                    kind = kind.as_str(),
                    family = family.as_str(),
                    got,
                    wanted = cfg.per_family,
                    "held-out set: fewer distinct tasks than asked"
                );
            }
        }
    }
    Ok(HeldoutSet { tasks })
}

/// The chain evaluation set: for each task kind, `per_side` tasks whose program is a
/// [chain](super::chains) of a shape pretraining never showed, then `per_side` of a shape it
/// showed, every (program, input) pair on the held-out side of the pair split (so no task of
/// either half was ever a pretraining sample). The unseen half measures recombination of known
/// operations into new shapes; the seen half, the same operations in familiar shapes. Tasks carry
/// family `chain` and `unseen_template` = the side. Settings (seed, induction pairs, output
/// length) come from `cfg`; its `per_family` is not used.
pub fn chain_set(
    executor: &Executor,
    cfg: &HeldoutConfig,
    per_side: usize,
) -> Result<HeldoutSet, PretrainError> {
    cfg.check()?;
    let mut tasks = Vec::new();
    for (ki, kind) in SET_KINDS.into_iter().enumerate() {
        let (n_inputs, visible) = cfg.pairs_of(kind);
        for unseen in [true, false] {
            // Streams 64.. of the eval seed: the template sets use 0..48.
            let seed = stream_seed(cfg.seed, 64 + (ki * 2 + usize::from(unseen)) as u64);
            let split = ChainSplit::from_share(cfg.chain_unseen).unwrap_or_default();
            let mut generator =
                ProgramGenerator::held_out_chains(seed, unseen).with_chain_split(split);
            let drawn = draw_tasks(
                executor,
                &mut generator,
                kind,
                per_side,
                n_inputs,
                visible,
                cfg.max_output_chars,
            );
            if drawn.len() < per_side {
                tracing::warn!(
                    kind = kind.as_str(),
                    unseen,
                    got = drawn.len(),
                    wanted = per_side,
                    "chain set: fewer distinct tasks than asked"
                );
            }
            tasks.extend(drawn);
        }
    }
    Ok(HeldoutSet { tasks })
}

/// Up to `want` distinct tasks of `kind` from `generator`, each with `n_inputs` labelled pairs
/// (outputs computed in the sandbox), the first `visible` of them shown. Tries [`ROUNDS`] rounds
/// before settling for fewer (templates with a small input space can run out of distinct pairs).
pub fn draw_tasks(
    executor: &Executor,
    generator: &mut ProgramGenerator,
    kind: TaskKind,
    want: usize,
    n_inputs: usize,
    visible: usize,
    max_output_chars: usize,
) -> Vec<HeldoutTask> {
    let mut tasks = Vec::with_capacity(want);
    let mut seen = HashSet::new();
    for _ in 0..ROUNDS {
        if tasks.len() >= want {
            break;
        }
        let specs: Vec<_> = (0..(want - tasks.len()) * 2)
            .filter_map(|_| generator.next_program(n_inputs))
            .collect();
        for program in label_each(executor, &specs, max_output_chars)
            .into_iter()
            .flatten()
        {
            if tasks.len() >= want || program.pairs.len() < n_inputs {
                continue;
            }
            if !seen.insert((program.code.clone(), program.pairs.clone())) {
                continue;
            }
            tasks.push(HeldoutTask {
                kind,
                family: program.family,
                template: program.template,
                unseen_template: program.unseen_template,
                message: program.message,
                code: program.code,
                visible,
                pairs: program.pairs,
            });
        }
    }
    tasks
}

impl HeldoutTask {
    /// The task as the `tasks` module's [`Task`](crate::tasks::Task) (provenance: benchmark
    /// `tiny-heldout`, id `<kind>-<index>`), so evaluators can score it with the compact
    /// templates.
    pub fn to_task(&self, index: usize) -> crate::tasks::Task {
        crate::tasks::Task {
            kind: self.kind,
            program: self.code.clone(),
            pairs: self
                .pairs
                .iter()
                .map(|p| crate::tasks::IoPair {
                    input: p.input.clone(),
                    output: p.output.clone(),
                    value: None,
                })
                .collect(),
            visible: self.visible,
            message: if self.kind == TaskKind::Induction {
                self.message.clone()
            } else {
                String::new()
            },
            problem: String::new(),
            answer: String::new(),
            provenance: crate::tasks::Provenance::benchmark(
                "tiny-heldout",
                format!("{}-{index}", self.kind),
            ),
        }
    }
}

impl HeldoutSet {
    /// This set without the tasks of `other` (same kind, program and pairs), e.g. a validation
    /// split kept disjoint from the held-out set it is tuned beside.
    pub fn without(mut self, other: &HeldoutSet) -> HeldoutSet {
        let drop: HashSet<(TaskKind, &str, &[IoPair])> = other
            .tasks
            .iter()
            .map(|t| (t.kind, t.code.as_str(), t.pairs.as_slice()))
            .collect();
        self.tasks
            .retain(|t| !drop.contains(&(t.kind, t.code.as_str(), t.pairs.as_slice())));
        self
    }

    /// Tasks of one kind.
    pub fn of_kind(&self, kind: TaskKind) -> impl Iterator<Item = &HeldoutTask> {
        self.tasks.iter().filter(move |t| t.kind == kind)
    }

    /// Write as JSONL (one task per line).
    pub fn write_jsonl(&self, mut w: impl Write) -> Result<(), PretrainError> {
        for t in &self.tasks {
            serde_json::to_writer(&mut w, t)?;
            w.write_all(b"\n")
                .map_err(|e| PretrainError::io("writing", "<jsonl>", e))?;
        }
        Ok(())
    }

    /// Read JSONL written by [`HeldoutSet::write_jsonl`] (blank lines are skipped).
    pub fn read_jsonl(r: impl BufRead) -> Result<Self, PretrainError> {
        let mut tasks = Vec::new();
        for line in r.lines() {
            let line = line.map_err(|e| PretrainError::io("reading", "<jsonl>", e))?;
            if !line.trim().is_empty() {
                tasks.push(serde_json::from_str(&line)?);
            }
        }
        Ok(Self { tasks })
    }

    /// Save to a JSONL file.
    pub fn save(&self, path: &Path) -> Result<(), PretrainError> {
        let f = std::fs::File::create(path).map_err(|e| PretrainError::io("creating", path, e))?;
        let mut w = std::io::BufWriter::new(f);
        self.write_jsonl(&mut w)?;
        w.flush().map_err(|e| PretrainError::io("writing", path, e))
    }

    /// Load from a JSONL file.
    pub fn load(path: &Path) -> Result<Self, PretrainError> {
        let f = std::fs::File::open(path).map_err(|e| PretrainError::io("opening", path, e))?;
        Self::read_jsonl(std::io::BufReader::new(f))
    }
}
