//! Task buffers: one per task type, deduplicated, capped (keeping the newest tasks), with uniform
//! reference sampling and solver batches that mix the newest tasks with uniform samples.
//!
//! Differences from AZR, on purpose: AZR's cap keeps the *oldest* 16,384 programs, so a long run
//! stops learning from new proposals; here the oldest are evicted. Every method that draws takes a
//! caller-owned RNG, so a run is reproducible from its seed and the RNG state can be checkpointed.

use super::induction::Induction;
use super::template::TemplateSet;
use super::{Invalid, IoPair, Provenance, Task, TaskType};
use crate::executor::Executor;
use crate::tasks::code::validated_pair;
use crate::types::TaskKind;
use rand::seq::{index, SliceRandom};
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet, VecDeque};

/// Buffer settings (`[tasks.buffer]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BufferConfig {
    /// Most tasks kept per type; the oldest are evicted beyond it (AZR `max_programs`: 16384).
    pub capacity: usize,
    /// Tasks added within this many most recent steps count as "newest" for solver batches
    /// (AZR `past_epoch_window`: 1).
    pub newest_window: u64,
}

impl Default for BufferConfig {
    fn default() -> Self {
        Self {
            capacity: 16384,
            newest_window: 1,
        }
    }
}

/// Serialised form of a [`TaskBuffer`] (the dedup index is rebuilt on load).
#[derive(Serialize, Deserialize)]
struct BufferRepr {
    kind: TaskKind,
    capacity: usize,
    tasks: VecDeque<Task>,
}

/// The tasks of one type, oldest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(from = "BufferRepr", into = "BufferRepr")]
pub struct TaskBuffer {
    kind: TaskKind,
    capacity: usize,
    tasks: VecDeque<Task>,
    keys: HashSet<String>,
}

impl From<BufferRepr> for TaskBuffer {
    fn from(r: BufferRepr) -> Self {
        let keys = r.tasks.iter().map(Task::dedup_key).collect();
        Self {
            kind: r.kind,
            capacity: r.capacity,
            tasks: r.tasks,
            keys,
        }
    }
}

impl From<TaskBuffer> for BufferRepr {
    fn from(b: TaskBuffer) -> Self {
        Self {
            kind: b.kind,
            capacity: b.capacity,
            tasks: b.tasks,
        }
    }
}

impl TaskBuffer {
    /// An empty buffer for `kind` holding at most `capacity` tasks (at least 1).
    pub fn new(kind: TaskKind, capacity: usize) -> Self {
        Self {
            kind,
            capacity: capacity.max(1),
            tasks: VecDeque::new(),
            keys: HashSet::new(),
        }
    }

    /// Task kind held.
    pub fn kind(&self) -> TaskKind {
        self.kind
    }

    /// Number of tasks.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Whether the buffer is empty.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Capacity.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Tasks, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &Task> {
        self.tasks.iter()
    }

    /// Add a task; returns false (and keeps the buffer unchanged) for a duplicate or a task of
    /// another kind. Beyond the capacity the oldest task is evicted.
    pub fn push(&mut self, task: Task) -> bool {
        if task.kind != self.kind {
            return false;
        }
        let key = task.dedup_key();
        if !self.keys.insert(key) {
            return false;
        }
        self.tasks.push_back(task);
        while self.tasks.len() > self.capacity {
            if let Some(old) = self.tasks.pop_front() {
                self.keys.remove(&old.dedup_key());
            }
        }
        true
    }

    /// Up to `k` distinct tasks drawn uniformly without replacement.
    pub fn sample<R: Rng + ?Sized>(&self, k: usize, rng: &mut R) -> Vec<Task> {
        let k = k.min(self.tasks.len());
        index::sample(rng, self.tasks.len(), k)
            .into_iter()
            .map(|i| self.tasks[i].clone())
            .collect()
    }

    /// A solver batch of `n` tasks: the tasks added at steps `> current_step - window` (up to
    /// `n` of them, drawn without replacement if there are more), topped up with tasks drawn
    /// uniformly (with replacement) from the whole buffer; shuffled. Empty if the buffer is.
    pub fn solver_batch<R: Rng + ?Sized>(
        &self,
        n: usize,
        current_step: u64,
        window: u64,
        rng: &mut R,
    ) -> Vec<Task> {
        if self.tasks.is_empty() || n == 0 {
            return Vec::new();
        }
        let since = current_step.saturating_sub(window);
        let recent: Vec<&Task> = self
            .tasks
            .iter()
            .filter(|t| window > 0 && t.provenance.step > since)
            .collect();
        let mut batch: Vec<Task> = if recent.len() > n {
            index::sample(rng, recent.len(), n)
                .into_iter()
                .map(|i| recent[i].clone())
                .collect()
        } else {
            recent.into_iter().cloned().collect()
        };
        while batch.len() < n {
            let i = rng.random_range(0..self.tasks.len());
            batch.push(self.tasks[i].clone());
        }
        batch.shuffle(rng);
        batch
    }

    /// Drop tasks created after `step` (used when resuming from a checkpoint).
    pub fn truncate_after(&mut self, step: u64) {
        self.tasks.retain(|t| t.provenance.step <= step);
        self.keys = self.tasks.iter().map(Task::dedup_key).collect();
    }
}

/// The buffers of all task types.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TaskBuffers {
    buffers: BTreeMap<TaskKind, TaskBuffer>,
}

impl TaskBuffers {
    /// Empty buffers for the given kinds.
    pub fn new(kinds: &[TaskKind], cfg: &BufferConfig) -> Self {
        Self {
            buffers: kinds
                .iter()
                .map(|k| (*k, TaskBuffer::new(*k, cfg.capacity)))
                .collect(),
        }
    }

    /// Buffers for the three code kinds, each holding its seed task (the identity program of the
    /// template set's `[seed]`), validated in the sandbox.
    pub fn seeded(
        templates: &TemplateSet,
        cfg: &BufferConfig,
        exec: &Executor,
    ) -> Result<Self, Invalid> {
        let mut b = Self::new(&TaskKind::CODE, cfg);
        for task in seed_tasks(templates, exec)? {
            b.push(task);
        }
        Ok(b)
    }

    /// The buffer of `kind`.
    pub fn get(&self, kind: TaskKind) -> Option<&TaskBuffer> {
        self.buffers.get(&kind)
    }

    /// The buffer of `kind`, mutably.
    pub fn get_mut(&mut self, kind: TaskKind) -> Option<&mut TaskBuffer> {
        self.buffers.get_mut(&kind)
    }

    /// Add a task to its kind's buffer (false for a duplicate or a kind without a buffer).
    pub fn push(&mut self, task: Task) -> bool {
        match self.buffers.get_mut(&task.kind) {
            Some(b) => b.push(task),
            None => false,
        }
    }

    /// Sizes per kind.
    pub fn sizes(&self) -> BTreeMap<TaskKind, usize> {
        self.buffers.iter().map(|(k, b)| (*k, b.len())).collect()
    }

    /// Reference tasks for a proposer prompt: `num_references()` tasks drawn uniformly without
    /// replacement from the union of the buffers named by `reference_sources()`.
    pub fn references<R: Rng + ?Sized>(&self, task_type: &dyn TaskType, rng: &mut R) -> Vec<Task> {
        let pool: Vec<&Task> = task_type
            .reference_sources()
            .iter()
            .filter_map(|k| self.buffers.get(k))
            .flat_map(|b| b.iter())
            .collect();
        let k = task_type.num_references().min(pool.len());
        index::sample(rng, pool.len(), k)
            .into_iter()
            .map(|i| pool[i].clone())
            .collect()
    }

    /// Drop tasks created after `step` in every buffer.
    pub fn truncate_after(&mut self, step: u64) {
        for b in self.buffers.values_mut() {
            b.truncate_after(step);
        }
    }
}

/// The seed tasks: deduction and abduction get `f(seed.input)` of the seed program, induction the
/// seed program on `seed.induction_inputs` (half of them visible) with `seed.induction_message`.
pub fn seed_tasks(templates: &TemplateSet, exec: &Executor) -> Result<Vec<Task>, Invalid> {
    let seed = &templates.seed;
    let pair: IoPair = validated_pair(exec, &seed.program, &seed.input, 0)?;
    let mut out = vec![
        Task::code(
            TaskKind::Deduction,
            seed.program.clone(),
            pair.clone(),
            Provenance::seed(),
        ),
        Task::code(
            TaskKind::Abduction,
            seed.program.clone(),
            pair,
            Provenance::seed(),
        ),
    ];
    out.push(Induction::task_from_inputs(
        exec,
        &seed.program,
        &seed.induction_inputs,
        &seed.induction_message,
        seed.induction_inputs.len() / 2,
        Provenance::seed(),
    )?);
    Ok(out)
}
