//! Task buffers: one per task type, deduplicated, capped (keeping the newest tasks), with uniform
//! reference sampling and solver batches that mix the newest tasks with uniform samples.
//!
//! Differences from AZR, on purpose: AZR's cap keeps the *oldest* 16,384 programs, so a long run
//! stops learning from new proposals; here the oldest are evicted. Every method that draws takes a
//! caller-owned RNG, so a run is reproducible from its seed and the RNG state can be checkpointed.

use super::novelty::{ShapeMemory, ShapeSeen};
use super::registry::{RegistryError, TaskRegistry};
use super::{Invalid, Task, TaskType};
use crate::executor::Executor;
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
    /// Difficulty targeting: solver draws take only tasks whose estimated solve rate was
    /// strictly between 0 and 1 (or unknown, as for seeds) while the buffer holds any; see
    /// [`SolverTargeting::Learnable`]. Default false (AZR draws regardless of difficulty).
    pub prefer_learnable: bool,
    /// Greedy-miss targeting: the estimator also decodes each valid proposal greedily, and solver
    /// draws take only tasks whose greedy answer was wrong while some Monte Carlo sample was
    /// right (or unknown, as for seeds); see [`SolverTargeting::GreedyMiss`]. Takes precedence
    /// over `prefer_learnable`. Default false.
    pub prefer_greedy_miss: bool,
}

impl Default for BufferConfig {
    fn default() -> Self {
        Self {
            capacity: 16384,
            newest_window: 1,
            prefer_learnable: false,
            prefer_greedy_miss: false,
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
        draw_solver_batch(
            self.tasks.len(),
            |i| &self.tasks[i],
            n,
            current_step,
            window,
            rng,
        )
    }

    /// [`TaskBuffer::solver_batch`] over the tasks `targeting` admits. Falls back to the plain
    /// draw when none is admitted (early in a run, or with [`SolverTargeting::Any`]).
    pub fn targeted_solver_batch<R: Rng + ?Sized>(
        &self,
        targeting: SolverTargeting,
        n: usize,
        current_step: u64,
        window: u64,
        rng: &mut R,
    ) -> Vec<Task> {
        let admitted: Vec<&Task> = match targeting {
            SolverTargeting::Any => Vec::new(),
            _ => self.tasks.iter().filter(|t| targeting.admits(t)).collect(),
        };
        if admitted.is_empty() {
            return self.solver_batch(n, current_step, window, rng);
        }
        draw_solver_batch(
            admitted.len(),
            |i| admitted[i],
            n,
            current_step,
            window,
            rng,
        )
    }

    /// Drop tasks created after `step` (used when resuming from a checkpoint).
    pub fn truncate_after(&mut self, step: u64) {
        self.tasks.retain(|t| t.provenance.step <= step);
        self.keys = self.tasks.iter().map(Task::dedup_key).collect();
    }
}

/// Which buffered tasks solver draws take ([`TaskBuffer::targeted_solver_batch`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SolverTargeting {
    /// Every task (AZR).
    #[default]
    Any,
    /// Difficulty targeting: tasks whose estimated solve rate was strictly between 0 and 1, or
    /// unknown (seeds). A task every estimator sample solved, or none did, gives a group with no
    /// spread in reward; this spends the solver's batch on the others (as R-Zero's band around
    /// 0.5, or DAPO's dynamic sampling).
    Learnable,
    /// Greedy-miss targeting: tasks whose greedy answer was wrong while at least one Monte Carlo
    /// sample was right, the items where sharpening the policy can flip its greedy answer (the
    /// gap between greedy accuracy and pass@k). Tasks rated without a greedy probe fall back to
    /// the learnable test; unrated tasks (seeds) are admitted.
    GreedyMiss,
}

impl SolverTargeting {
    /// The targeting `[tasks.buffer]` asks for (`prefer_greedy_miss` before `prefer_learnable`).
    pub fn of(cfg: &BufferConfig) -> Self {
        if cfg.prefer_greedy_miss {
            Self::GreedyMiss
        } else if cfg.prefer_learnable {
            Self::Learnable
        } else {
            Self::Any
        }
    }

    /// Whether solver draws may take `task`.
    pub fn admits(self, task: &Task) -> bool {
        let Some(p) = task.provenance.solve_rate else {
            return true;
        };
        let learnable = p > 0.0 && p < 1.0;
        match self {
            Self::Any => true,
            Self::Learnable => learnable,
            Self::GreedyMiss => match task.provenance.greedy_correct {
                Some(greedy) => !greedy && p > 0.0,
                None => learnable,
            },
        }
    }
}

/// The draw of [`TaskBuffer::solver_batch`] over a pool of `len` tasks, `task(i)` the i-th
/// (oldest first).
fn draw_solver_batch<'a, R: Rng + ?Sized>(
    len: usize,
    task: impl Fn(usize) -> &'a Task,
    n: usize,
    current_step: u64,
    window: u64,
    rng: &mut R,
) -> Vec<Task> {
    if len == 0 || n == 0 {
        return Vec::new();
    }
    let since = current_step.saturating_sub(window);
    let recent: Vec<&Task> = (0..len)
        .map(&task)
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
        let i = rng.random_range(0..len);
        batch.push(task(i).clone());
    }
    batch.shuffle(rng);
    batch
}

/// Errors of the buffer set: a task or a kind without a buffer is an error, never a silent drop.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BufferError {
    /// A task of a kind that has no buffer.
    #[error("no task buffer for kind `{0}` (buffers are created from the registry at start)")]
    NoBuffer(TaskKind),
    /// A kind cannot have a buffer (unknown or solve only).
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// A seed task failed validation in the sandbox.
    #[error("seed task of `{kind}` is invalid: {source}")]
    Seed {
        /// Kind.
        kind: TaskKind,
        /// Why.
        source: Invalid,
    },
    /// A proposable kind has no seed task, so its proposer would never get references.
    #[error("task kind `{0}` has no seed task")]
    NoSeed(TaskKind),
}

/// The buffers of the proposable task types, with the memory of the program shapes they were
/// given ([`ShapeMemory`]: it outlives evictions and is checkpointed with the buffers).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(from = "TaskBuffersRepr")]
pub struct TaskBuffers {
    buffers: BTreeMap<TaskKind, TaskBuffer>,
    shapes: ShapeMemory,
}

/// Serialised form of [`TaskBuffers`]: a checkpoint written before the shape memory existed has
/// none, and gets one rebuilt from the tasks its buffers hold.
#[derive(Deserialize)]
struct TaskBuffersRepr {
    buffers: BTreeMap<TaskKind, TaskBuffer>,
    #[serde(default)]
    shapes: Option<ShapeMemory>,
}

impl From<TaskBuffersRepr> for TaskBuffers {
    fn from(r: TaskBuffersRepr) -> Self {
        let mut b = Self {
            buffers: r.buffers,
            shapes: r.shapes.unwrap_or_default(),
        };
        if b.shapes == ShapeMemory::default() {
            let kinds = b.kinds();
            for k in kinds {
                b.remember_contents(k);
            }
        }
        b
    }
}

/// What [`TaskBuffers::admit`] did with a task.
#[derive(Debug, Clone, PartialEq)]
pub struct Admitted {
    /// Added to its buffer (false: a duplicate).
    pub added: bool,
    /// Its program's shape and whether it was novel (`None` for a task without a program).
    pub shape: Option<ShapeSeen>,
}

impl TaskBuffers {
    /// Empty buffers for the given kinds.
    pub fn new(kinds: &[TaskKind], cfg: &BufferConfig) -> Self {
        Self {
            buffers: kinds
                .iter()
                .map(|k| (*k, TaskBuffer::new(*k, cfg.capacity)))
                .collect(),
            shapes: ShapeMemory::default(),
        }
    }

    /// Remember the program shapes of the tasks `kind`'s buffer holds.
    fn remember_contents(&mut self, kind: TaskKind) {
        if let Some(b) = self.buffers.get(&kind) {
            for t in b.iter().filter(|t| !t.program.is_empty()) {
                self.shapes.observe(kind, &t.program);
            }
        }
    }

    /// The memory of the program shapes given to the buffers.
    pub fn shapes(&self) -> &ShapeMemory {
        &self.shapes
    }

    /// Judge novelty against a base that held out the chain shapes of `split`
    /// ([`ShapeMemory::set_chain_split`]; the run sets it from `tasks.chain_unseen`).
    pub fn set_chain_split(&mut self, split: crate::pretrain::chains::ChainSplit) {
        self.shapes.set_chain_split(split);
    }

    /// One buffer per kind in `kinds` (which must be registered and proposable), each holding
    /// that kind's seed tasks ([`Proposer::seed_tasks`](super::Proposer::seed_tasks), validated
    /// in the sandbox), plus the buffers those kinds draw references from.
    pub fn seeded(
        registry: &TaskRegistry,
        kinds: &[TaskKind],
        cfg: &BufferConfig,
        exec: &Executor,
    ) -> Result<Self, BufferError> {
        let mut b = Self::default();
        b.ensure(registry, kinds, cfg, exec)?;
        Ok(b)
    }

    /// Create and seed the buffers of `kinds` (and of the kinds they draw references from) that
    /// do not exist yet, e.g. after resuming a checkpoint made before a kind was added; returns
    /// the kinds created. Existing buffers are left alone.
    pub fn ensure(
        &mut self,
        registry: &TaskRegistry,
        kinds: &[TaskKind],
        cfg: &BufferConfig,
        exec: &Executor,
    ) -> Result<Vec<TaskKind>, BufferError> {
        registry.check_proposable(kinds)?;
        let mut wanted: Vec<TaskKind> = Vec::new();
        for &k in kinds {
            let sources = registry
                .proposer(k)
                .map(|p| p.reference_sources())
                .unwrap_or_default();
            for s in std::iter::once(k).chain(sources) {
                if !wanted.contains(&s) {
                    wanted.push(s);
                }
            }
        }
        let mut created = Vec::new();
        for kind in wanted {
            if self.buffers.contains_key(&kind) {
                continue;
            }
            let proposer = registry
                .proposer(kind)
                .ok_or(RegistryError::NotProposable(kind))?;
            let seeds = proposer
                .seed_tasks(exec)
                .map_err(|source| BufferError::Seed { kind, source })?;
            if seeds.is_empty() {
                return Err(BufferError::NoSeed(kind));
            }
            let mut buffer = TaskBuffer::new(kind, cfg.capacity);
            for t in seeds {
                if t.kind != kind {
                    return Err(BufferError::NoBuffer(t.kind));
                }
                buffer.push(t);
            }
            tracing::info!(%kind, tasks = buffer.len(), "task buffer created and seeded");
            self.buffers.insert(kind, buffer);
            self.remember_contents(kind);
            created.push(kind);
        }
        Ok(created)
    }

    /// Check that every kind in `kinds` has a buffer.
    pub fn check_covers(&self, kinds: &[TaskKind]) -> Result<(), BufferError> {
        match kinds.iter().find(|k| !self.buffers.contains_key(k)) {
            Some(k) => Err(BufferError::NoBuffer(*k)),
            None => Ok(()),
        }
    }

    /// Kinds that have a buffer.
    pub fn kinds(&self) -> Vec<TaskKind> {
        self.buffers.keys().copied().collect()
    }

    /// The buffer of `kind`.
    pub fn get(&self, kind: TaskKind) -> Option<&TaskBuffer> {
        self.buffers.get(&kind)
    }

    /// The buffer of `kind`, mutably.
    pub fn get_mut(&mut self, kind: TaskKind) -> Option<&mut TaskBuffer> {
        self.buffers.get_mut(&kind)
    }

    /// Add a task to its kind's buffer: `Ok(false)` for a duplicate, an error for a kind without
    /// a buffer.
    pub fn push(&mut self, task: Task) -> Result<bool, BufferError> {
        self.admit(task).map(|a| a.added)
    }

    /// Add a task to its kind's buffer, as [`TaskBuffers::push`], and remember its program's
    /// shape, saying whether it was novel (in neither the pretraining corpus nor the memory).
    /// A duplicate is remembered too: its shape is not novel.
    pub fn admit(&mut self, task: Task) -> Result<Admitted, BufferError> {
        let kind = task.kind;
        let b = self
            .buffers
            .get_mut(&kind)
            .ok_or(BufferError::NoBuffer(kind))?;
        let shape = (!task.program.is_empty()).then(|| self.shapes.observe(kind, &task.program));
        Ok(Admitted {
            added: b.push(task),
            shape,
        })
    }

    /// Sizes per kind.
    pub fn sizes(&self) -> BTreeMap<TaskKind, usize> {
        self.buffers.iter().map(|(k, b)| (*k, b.len())).collect()
    }

    /// Reference tasks for a proposer prompt: `num_references()` tasks drawn uniformly without
    /// replacement from the union of the buffers named by `reference_sources()` (none for a
    /// solve-only type).
    pub fn references<R: Rng + ?Sized>(&self, task_type: &dyn TaskType, rng: &mut R) -> Vec<Task> {
        let Some(proposer) = task_type.proposer() else {
            return Vec::new();
        };
        let pool: Vec<&Task> = proposer
            .reference_sources()
            .iter()
            .filter_map(|k| self.buffers.get(k))
            .flat_map(|b| b.iter())
            .collect();
        let k = proposer.num_references().min(pool.len());
        index::sample(rng, pool.len(), k)
            .into_iter()
            .map(|i| pool[i].clone())
            .collect()
    }

    /// Drop tasks created after `step` in every buffer (the shape memory keeps their shapes).
    pub fn truncate_after(&mut self, step: u64) {
        for b in self.buffers.values_mut() {
            b.truncate_after(step);
        }
    }
}

/// The seed tasks of every proposable kind of `registry` (each kind's
/// [`Proposer::seed_tasks`](super::Proposer::seed_tasks)).
pub fn seed_tasks(registry: &TaskRegistry, exec: &Executor) -> Result<Vec<Task>, BufferError> {
    let mut out = Vec::new();
    for kind in registry.proposable() {
        if let Some(p) = registry.proposer(kind) {
            out.extend(
                p.seed_tasks(exec)
                    .map_err(|source| BufferError::Seed { kind, source })?,
            );
        }
    }
    Ok(out)
}
