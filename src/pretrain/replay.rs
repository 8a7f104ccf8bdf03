//! Replay tasks: deduction, abduction and induction tasks drawn from the training side of the
//! pretraining corpus, mixed into self-play solver batches (`selfplay.replay_fraction`).
//!
//! Self-play moves the policy toward the proposer's task distribution, and per-item analysis of
//! the tiny model's runs showed it losing the same corpus-style items run after run. Replaying
//! tasks of the distribution the base model was pretrained on keeps the solver's reward on that
//! distribution in every batch. The pool comes from [`Split::Train`]: seen templates only, and
//! (program, input) pairs outside the held-out hash bucket, so no replay task can be a held-out or
//! validation item. Outputs are computed in the sandbox like every other label.

use super::corpus::CorpusConfig;
use super::generator::{stream_seed, ProgramGenerator, Split};
use super::heldout::draw_tasks;
use crate::executor::Executor;
use crate::tasks::{Provenance, Task};
use crate::types::TaskKind;
use rand::seq::IndexedRandom;
use rand::Rng;
use std::collections::BTreeMap;

/// How a replay pool is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplaySpec {
    /// Tasks per kind.
    pub per_kind: usize,
    /// Seed of the corpus generator (each kind derives its own stream from it).
    pub seed: u64,
    /// Induction: pairs per task (visible and hidden).
    pub induction_inputs: usize,
    /// Induction: pairs shown to the solver.
    pub induction_visible: usize,
}

/// Up to `spec.per_kind` distinct replay tasks of `kind` (deduction, abduction or induction; an
/// empty pool for any other kind), with provenance [`Provenance::replay`].
pub fn replay_pool(executor: &Executor, kind: TaskKind, spec: &ReplaySpec) -> Vec<Task> {
    let Some(ki) = TaskKind::CODE.iter().position(|&k| k == kind) else {
        return Vec::new();
    };
    let (n_inputs, visible) = if kind == TaskKind::Induction {
        (
            spec.induction_inputs.max(1),
            spec.induction_visible
                .clamp(1, spec.induction_inputs.max(1)),
        )
    } else {
        (1, 1)
    };
    let mut generator = ProgramGenerator::new(stream_seed(spec.seed, ki as u64), Split::Train);
    draw_tasks(
        executor,
        &mut generator,
        kind,
        spec.per_kind,
        n_inputs,
        visible,
        // The training stream's bound: replay tasks are tasks of that stream.
        CorpusConfig::default().max_output_chars,
    )
    .iter()
    .enumerate()
    .map(|(i, t)| Task {
        provenance: Provenance::replay(format!("{kind}-{i}")),
        ..t.to_task(i)
    })
    .collect()
}

/// The replay pools of a run's self-play kinds and the share of solver draws they take.
#[derive(Debug, Clone, Default)]
pub struct Replay {
    fraction: f64,
    pools: BTreeMap<TaskKind, Vec<Task>>,
}

impl Replay {
    /// No replay: [`Replay::pick`] always returns `None` and draws nothing from the RNG.
    pub fn off() -> Self {
        Self::default()
    }

    /// Draw a pool for each of `kinds` (kinds without a corpus get none) and replay them in a
    /// share `fraction` of solver draws. `fraction <= 0` draws nothing and is [`Replay::off`].
    pub fn draw(executor: &Executor, kinds: &[TaskKind], fraction: f64, spec: &ReplaySpec) -> Self {
        if fraction <= 0.0 {
            return Self::off();
        }
        let pools = kinds
            .iter()
            .map(|&k| (k, replay_pool(executor, k, spec)))
            .filter(|(_, pool)| !pool.is_empty())
            .collect();
        Self { fraction, pools }
    }

    /// Pool size of `kind` (0 when it has none).
    pub fn pool_len(&self, kind: TaskKind) -> usize {
        self.pools.get(&kind).map_or(0, Vec::len)
    }

    /// A replay task for the next solver draw of `kind`, with probability `fraction` (uniform
    /// over the kind's pool), or `None`: draw from the task buffer. Uses `rng` only when replay
    /// is on for `kind`, so runs without replay keep their random stream.
    pub fn pick<R: Rng + ?Sized>(&self, kind: TaskKind, rng: &mut R) -> Option<Task> {
        let pool = self.pools.get(&kind)?;
        if rng.random::<f64>() >= self.fraction {
            return None;
        }
        pool.choose(rng).cloned()
    }
}
