//! Every Prometheus metric azr exports, defined once.
//!
//! Each metric is a [`MetricDef`] constant carrying its full exported name (Prometheus naming:
//! `azr_` prefix, `_total` on counters, base units `_seconds` / `_bytes` as suffixes, `_ratio`
//! for 0..1 fractions), its kind, its unit, its help text, the labels it takes and, for
//! histograms, its explicit buckets (azr never exports summaries). [`ALL`] lists them all;
//! `dashboards/` may use only these names and must use each of them
//! (`tools/check_dashboards.py` checks both directions against this file).
//!
//! Labels are bounded enums, never ids: `task` (the kinds of the task registry, see
//! [`use_registry`]), `role` ([`Role`]), `actor`
//! ([`ACTORS`]), plus `status` ([`ExecStatus`]) for executor outcomes, `benchmark`
//! ([`BENCHMARKS`]) for evaluator scores, `layer` ([`ISOLATION_LAYERS`]) for the sandbox
//! layers, `queue` ([`QUEUES`]) for channel depths, `phase` ([`PHASES`]) for step phases and
//! `outcome` ([`CLUSTER_OUTCOMES`]) and `work` ([`CLUSTER_WORK`]) for the cluster head's
//! jobs, and `node` for the cluster's nodes: the one open label, `head` plus the name of every
//! node (`azr node --name`) that did work, so as bounded as the cluster.
//!
//! At start the binary calls [`describe_all`] and [`register_all`] after installing the
//! exporter, and gives the exporter the buckets of [`buckets`]:
//!
//! ```no_run
//! use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let addr: std::net::SocketAddr = "127.0.0.1:9464".parse()?;
//! let mut builder = PrometheusBuilder::new().with_http_listener(addr);
//! for (name, buckets) in azr_core::metrics::buckets() {
//!     builder = builder.set_buckets_for_metric(Matcher::Full(name.to_string()), buckets)?;
//! }
//! builder.install()?;
//! azr_core::metrics::describe_all();
//! azr_core::metrics::register_all();
//! # Ok(())
//! # }
//! ```
//!
//! Do not enable the exporter's `with_recommended_naming`: the names here already carry their
//! suffixes. Emit through the helpers, e.g.
//! `REWARD.histogram(&[("task", task.as_str()), ("role", role.as_str())]).record(r)`, or through
//! the `metrics` macros with `DEF.name`.

use crate::executor::{ExecStatus, IsolationReport};
use crate::tasks::{TaskRegistry, TasksConfig};
use crate::types::{Role, TaskKind};
use metrics::{Counter, Gauge, Histogram, Label, Unit};
use std::time::{SystemTime, UNIX_EPOCH};

/// The kind of a metric, as Prometheus types it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// Monotonic count (`azr_..._total`); panels use `rate()`/`increase()`.
    Counter,
    /// A value that goes up and down, or the last value of something measured per step.
    Gauge,
    /// Observations counted into explicit buckets (`_bucket`, `_sum`, `_count` series).
    Histogram,
}

impl MetricKind {
    /// The word Prometheus writes in `# TYPE` lines.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
            MetricKind::Histogram => "histogram",
        }
    }
}

/// A label key a metric may carry. Every key has a closed set of values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelKey {
    /// Task kind: the registered kinds ([`task_roles`]).
    Task,
    /// Role: `propose`, `solve`. Combined with `task`, solve-only kinds only have `solve`.
    Role,
    /// Actor name, one of [`ACTORS`].
    Actor,
    /// Executor outcome, one of [`ExecStatus::as_str`].
    Status,
    /// Evaluation benchmark, one of [`BENCHMARKS`].
    Benchmark,
    /// Sandbox isolation layer, one of [`ISOLATION_LAYERS`].
    Layer,
    /// Bounded channel, one of [`QUEUES`].
    Queue,
    /// Step phase, one of [`PHASES`].
    Phase,
    /// Outcome of a cluster job, one of [`CLUSTER_OUTCOMES`].
    Outcome,
    /// Kind of cluster job, one of [`CLUSTER_WORK`].
    Work,
    /// Where a solver task came from, one of [`TASK_SOURCES`].
    Source,
    /// Cluster node: [`HEAD_NODE`] (registered at start) or a node's name (created when the
    /// node first does work; see [`MetricDef::counter_for_node`]).
    Node,
}

impl LabelKey {
    /// The label name as exported.
    pub fn key(self) -> &'static str {
        match self {
            LabelKey::Task => "task",
            LabelKey::Role => "role",
            LabelKey::Actor => "actor",
            LabelKey::Status => "status",
            LabelKey::Benchmark => "benchmark",
            LabelKey::Layer => "layer",
            LabelKey::Queue => "queue",
            LabelKey::Phase => "phase",
            LabelKey::Outcome => "outcome",
            LabelKey::Work => "work",
            LabelKey::Source => "source",
            LabelKey::Node => "node",
        }
    }

    /// Every value this label can take.
    pub fn values(self) -> Vec<&'static str> {
        match self {
            LabelKey::Task => task_kinds().iter().map(|t| t.as_str()).collect(),
            LabelKey::Role => Role::ALL.iter().map(|r| r.as_str()).collect(),
            LabelKey::Actor => ACTORS.to_vec(),
            LabelKey::Status => EXEC_STATUSES.iter().map(|s| s.as_str()).collect(),
            LabelKey::Benchmark => BENCHMARKS.to_vec(),
            LabelKey::Layer => ISOLATION_LAYERS.to_vec(),
            LabelKey::Queue => QUEUES.iter().map(|(q, _)| *q).collect(),
            LabelKey::Phase => PHASES.iter().map(|(p, _)| *p).collect(),
            LabelKey::Outcome => CLUSTER_OUTCOMES.to_vec(),
            LabelKey::Work => CLUSTER_WORK.to_vec(),
            LabelKey::Source => TASK_SOURCES.to_vec(),
            LabelKey::Node => vec![HEAD_NODE],
        }
    }
}

/// Where a solver task came from, as `source` label values: the tags of
/// [`Source::as_str`](crate::tasks::Source::as_str).
pub const TASK_SOURCES: &[&str] = &["seed", "proposed", "replay", "benchmark"];

/// Outcomes of one attempt of a job the cluster head dispatched, as `outcome` label values:
/// answered by a member, lost with it, or refused by it (a rollout engine whose weights are
/// older than the staleness bound allows, an evaluator node without the pinned snapshot or whose
/// evaluation failed); lost and refused attempts are issued again.
pub const CLUSTER_OUTCOMES: [&str; 3] = ["completed", "lost", "refused"];

/// Kinds of cluster job, as `work` label values: validating a proposal, generating samples,
/// scoring a due evaluation.
pub const CLUSTER_WORK: [&str; 3] = ["executor", "rollout", "eval"];

/// The `node` label value of the cluster head's own executor worker, rollout engine and
/// evaluator.
pub const HEAD_NODE: &str = "head";

/// The actors of the pipeline, as `actor` label values: the one list of actor names (the
/// binary's supervisor registers these names, `faults.panic_actor` takes them).
pub const ACTORS: [&str; 8] = [
    "task_store",
    "proposer",
    "executor",
    "estimator",
    "solver",
    "reward",
    "learner",
    "evaluator",
];

/// Every executor outcome, as `status` label values (checked exhaustive by a test).
pub const EXEC_STATUSES: [ExecStatus; 8] = [
    ExecStatus::Ok,
    ExecStatus::Error,
    ExecStatus::Timeout,
    ExecStatus::Memory,
    ExecStatus::OutputTooLarge,
    ExecStatus::UnsupportedType,
    ExecStatus::Invalid,
    ExecStatus::SandboxFailure,
];

/// Evaluation benchmarks, as `benchmark` label values: CRUXEval output/input prediction, the
/// math sets in `../shared/data/math/` (file stem) and ARC-Easy / ARC-Challenge.
pub const BENCHMARKS: [&str; 11] = [
    "cruxeval_o",
    "cruxeval_i",
    "aime24",
    "aime25",
    "amc23",
    "gsm8k",
    "math500",
    "minerva_math",
    "olympiadbench",
    // branch `arc` (issue #17): ARC-Easy / ARC-Challenge (`arc-easy`, `arc-challenge`).
    "arc_easy",
    "arc_challenge",
];

/// Sandbox isolation layers, as `layer` label values: the fields of [`IsolationReport`].
pub const ISOLATION_LAYERS: [&str; 11] = [
    "network",
    "filesystem",
    "empty_env",
    "non_root",
    "seccomp",
    "rlimits",
    "job_pid_ns",
    "job_ipc_ns",
    "job_tmp",
    "job_fds",
    "job_no_caps",
];

/// The bounded channels of the pipeline, as `queue` label values, with what flows through them
/// (`dataflow` branch: every one is a real channel of `actors/src/pipeline`).
pub const QUEUES: [(&str, &str); 9] = [
    (
        "propose_jobs",
        "task store -> proposer: admitted reference sets waiting for a proposal",
    ),
    (
        "solve_jobs",
        "task store -> solver: admitted tasks waiting for their answers",
    ),
    (
        "proposals",
        "proposer -> executor: proposals waiting for validation",
    ),
    (
        "estimates",
        "executor -> estimator: valid tasks waiting for Monte Carlo solve samples",
    ),
    (
        "answers",
        "solver/executor/estimator -> reward: generations waiting to be scored",
    ),
    (
        "rollouts",
        "reward -> learner: scored rollouts waiting to join a batch",
    ),
    (
        "batches",
        "learner -> learner thread: full batches waiting for an update",
    ),
    (
        "eval",
        "learner -> evaluator: published versions waiting for evaluation",
    ),
    (
        "engine",
        "every requester -> rollout engine: generation requests waiting for a decode slot",
    ),
];

/// The phases of a step, as `phase` label values, with what each one times.
pub const PHASES: [(&str, &str); 9] = [
    (
        "propose",
        "proposer generation of the step's proposals, all task kinds",
    ),
    ("validate", "executor validation of the step's proposals"),
    (
        "estimate",
        "Monte Carlo solver samples for the learnability reward",
    ),
    ("solve", "solver generation on tasks drawn from the buffers"),
    ("reward", "scoring of the step's answers"),
    ("wait", "learner idle, waiting for the step's batch"),
    ("update", "learner forward/backward and optimizer step"),
    (
        "publish",
        "publication of the new weight snapshot to rollout actors",
    ),
    (
        "checkpoint",
        "writing a checkpoint (only on checkpoint steps)",
    ),
];

// ---- task label sets from the registry (branch `extension`) ----

static TASK_ROLES: std::sync::RwLock<Option<Vec<(TaskKind, Role)>>> = std::sync::RwLock::new(None);

/// Take the `task` label values from `registry`: its (kind, role) pairs
/// ([`TaskRegistry::task_roles`]), and create their series (as [`register_all`] does). Call it
/// once the run's registry is built; until then the built-in registry's kinds are used.
pub fn use_registry(registry: &TaskRegistry) {
    let pairs = registry.task_roles();
    // A poisoned lock only means a panic elsewhere while writing a Vec; overwrite it.
    *TASK_ROLES.write().unwrap_or_else(|e| e.into_inner()) = Some(pairs);
    for def in ALL {
        if def.labels.contains(&LabelKey::Task) {
            def.register();
        }
    }
}

/// The (task, role) pairs that exist: every registered kind, proposable kinds in both roles and
/// solve-only kinds (math) as solve. The registry given to [`use_registry`], else the built-in
/// registry with the default templates.
pub fn task_roles() -> Vec<(TaskKind, Role)> {
    if let Some(pairs) = TASK_ROLES
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
    {
        return pairs.clone();
    }
    static BUILTIN: std::sync::OnceLock<Vec<(TaskKind, Role)>> = std::sync::OnceLock::new();
    BUILTIN
        .get_or_init(|| {
            TaskRegistry::from_config(&TasksConfig::default())
                .map(|r| r.task_roles())
                .unwrap_or_default()
        })
        .clone()
}

/// The registered task kinds, in label order (see [`task_roles`]).
pub fn task_kinds() -> Vec<TaskKind> {
    let mut kinds: Vec<TaskKind> = task_roles().into_iter().map(|(k, _)| k).collect();
    kinds.dedup();
    kinds
}

// ---- end of branch `extension` block ----

/// One metric: its exported name, kind, unit, help text, labels and histogram buckets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MetricDef {
    /// Full exported name, suffixes included.
    pub name: &'static str,
    /// Counter, gauge or histogram.
    pub kind: MetricKind,
    /// Base unit, `None` for dimensionless values (ratios, losses, token counts).
    pub unit: Option<Unit>,
    /// Help text (the `# HELP` line).
    pub help: &'static str,
    /// Label keys, in the order they are written.
    pub labels: &'static [LabelKey],
    /// Explicit bucket upper bounds, strictly increasing; empty unless a histogram.
    pub buckets: &'static [f64],
}

impl MetricDef {
    /// Every label set this metric takes, in a fixed order (one empty set if it has no labels).
    /// `task` together with `role` yields only the pairs of [`task_roles`].
    pub fn label_sets(&self) -> Vec<Vec<(&'static str, &'static str)>> {
        let mut sets: Vec<Vec<(&'static str, &'static str)>> = vec![Vec::new()];
        let paired = self.labels.contains(&LabelKey::Task) && self.labels.contains(&LabelKey::Role);
        for &key in self.labels {
            let choices: Vec<Vec<(&'static str, &'static str)>> = match key {
                LabelKey::Role if paired => continue,
                LabelKey::Task if paired => task_roles()
                    .into_iter()
                    .map(|(t, r)| vec![("task", t.as_str()), ("role", r.as_str())])
                    .collect(),
                _ => key
                    .values()
                    .into_iter()
                    .map(|v| vec![(key.key(), v)])
                    .collect(),
            };
            sets = sets
                .iter()
                .flat_map(|set| {
                    choices.iter().map(move |c| {
                        let mut s = set.clone();
                        s.extend_from_slice(c);
                        s
                    })
                })
                .collect();
        }
        sets
    }

    /// The counter with these labels on the current recorder.
    pub fn counter(&self, labels: &[(&'static str, &'static str)]) -> Counter {
        self.debug_check(MetricKind::Counter, labels);
        metrics::counter!(self.name, to_labels(labels))
    }

    /// The gauge with these labels on the current recorder.
    pub fn gauge(&self, labels: &[(&'static str, &'static str)]) -> Gauge {
        self.debug_check(MetricKind::Gauge, labels);
        metrics::gauge!(self.name, to_labels(labels))
    }

    /// The histogram with these labels on the current recorder.
    pub fn histogram(&self, labels: &[(&'static str, &'static str)]) -> Histogram {
        self.debug_check(MetricKind::Histogram, labels);
        metrics::histogram!(self.name, to_labels(labels))
    }

    /// The counter of cluster node `node` (the open `node` label) with these other labels.
    pub fn counter_for_node(&self, node: &str, labels: &[(&'static str, &'static str)]) -> Counter {
        let (all, labels) = with_node(node, labels);
        self.debug_check(MetricKind::Counter, &all);
        metrics::counter!(self.name, labels)
    }

    /// The gauge of cluster node `node` (the open `node` label) with these other labels.
    pub fn gauge_for_node(&self, node: &str, labels: &[(&'static str, &'static str)]) -> Gauge {
        let (all, labels) = with_node(node, labels);
        self.debug_check(MetricKind::Gauge, &all);
        metrics::gauge!(self.name, labels)
    }

    /// In debug builds, catch a metric used as the wrong kind or with undeclared labels.
    fn debug_check(&self, kind: MetricKind, labels: &[(&'static str, &'static str)]) {
        debug_assert_eq!(self.kind, kind, "{} is a {}", self.name, self.kind.as_str());
        debug_assert!(
            labels.len() == self.labels.len()
                && self
                    .labels
                    .iter()
                    .all(|k| labels.iter().any(|(l, _)| *l == k.key())),
            "{} takes labels {:?}, got {:?}",
            self.name,
            self.labels,
            labels
        );
    }

    /// Register the metric in the current recorder's description table.
    fn describe(&self) {
        match (self.kind, self.unit) {
            (MetricKind::Counter, Some(u)) => metrics::describe_counter!(self.name, u, self.help),
            (MetricKind::Counter, None) => metrics::describe_counter!(self.name, self.help),
            (MetricKind::Gauge, Some(u)) => metrics::describe_gauge!(self.name, u, self.help),
            (MetricKind::Gauge, None) => metrics::describe_gauge!(self.name, self.help),
            (MetricKind::Histogram, Some(u)) => {
                metrics::describe_histogram!(self.name, u, self.help)
            }
            (MetricKind::Histogram, None) => metrics::describe_histogram!(self.name, self.help),
        }
    }

    /// Create every series of this metric (value zero / empty histogram) without changing
    /// series that already exist.
    fn register(&self) {
        for set in self.label_sets() {
            let labels = to_labels(&set);
            match self.kind {
                MetricKind::Counter => drop(metrics::counter!(self.name, labels)),
                MetricKind::Gauge => drop(metrics::gauge!(self.name, labels)),
                MetricKind::Histogram => drop(metrics::histogram!(self.name, labels)),
            }
        }
    }
}

fn to_labels(labels: &[(&'static str, &'static str)]) -> Vec<Label> {
    labels.iter().map(|&(k, v)| Label::new(k, v)).collect()
}

/// `labels` with `node` first: the keys for the debug check (the node's value replaced by a
/// placeholder) and the exported labels.
fn with_node(
    node: &str,
    labels: &[(&'static str, &'static str)],
) -> (Vec<(&'static str, &'static str)>, Vec<Label>) {
    let mut keys = vec![("node", HEAD_NODE)];
    keys.extend_from_slice(labels);
    let mut out = vec![Label::new("node", node.to_string())];
    out.extend(to_labels(labels));
    (keys, out)
}

const TR: &[LabelKey] = &[LabelKey::Task, LabelKey::Role];
const T: &[LabelKey] = &[LabelKey::Task];
const NONE: &[LabelKey] = &[];

/// Buckets for per-rollout rewards (AZR rewards lie in [-1, 1]).
pub const REWARD_BUCKETS: &[f64] = &[-1.0, -0.75, -0.5, -0.25, 0.0, 0.25, 0.5, 0.75, 1.0];
/// Buckets for the learnability reward `1 - solve rate` (0 for always/never solved tasks).
pub const LEARNABILITY_BUCKETS: &[f64] = &[0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0];
/// Buckets for response lengths in tokens (powers of two).
pub const LENGTH_BUCKETS: &[f64] = &[
    8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0, 8192.0, 16384.0,
];
/// Buckets for step and phase durations in seconds (tiny CPU runs to large GPU steps).
pub const STEP_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0,
    1000.0, 2500.0,
];
/// Buckets for one sandboxed execution in seconds (timeouts default to a few seconds).
pub const EXEC_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Buckets for one unit of actor work in seconds (a message, a generation, an update).
pub const WORK_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 50.0, 100.0, 500.0,
];
/// Buckets for rollout staleness in policy versions.
pub const STALENESS_BUCKETS: &[f64] = &[0.0, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 16.0];

// ----- self-play: rollouts, rewards, accuracy ------------------------------------------------

/// Per-rollout reward.
pub const REWARD: MetricDef = MetricDef {
    name: "azr_reward",
    kind: MetricKind::Histogram,
    unit: None,
    help: "Reward of each scored rollout, by task kind and role.",
    labels: TR,
    buckets: REWARD_BUCKETS,
};
/// Mean reward of the last step's sub-batch.
pub const REWARD_MEAN: MetricDef = MetricDef {
    name: "azr_reward_mean",
    kind: MetricKind::Gauge,
    unit: None,
    help: "Mean reward of the last step's sub-batch, by task kind and role.",
    labels: TR,
    buckets: &[],
};
/// Answers checked (solver attempts; estimator samples for role=propose).
pub const ANSWERS_TOTAL: MetricDef = MetricDef {
    name: "azr_answers_total",
    kind: MetricKind::Counter,
    unit: None,
    help: "Answers checked: solver attempts (role=solve) and Monte Carlo estimator samples on new proposals (role=propose).",
    labels: TR,
    buckets: &[],
};
/// Answers that were correct.
pub const ANSWERS_CORRECT_TOTAL: MetricDef = MetricDef {
    name: "azr_answers_correct_total",
    kind: MetricKind::Counter,
    unit: None,
    help: "Answers checked and found correct, same labels as azr_answers_total.",
    labels: TR,
    buckets: &[],
};
/// Accuracy of the last step.
pub const ACCURACY_RATIO: MetricDef = MetricDef {
    name: "azr_accuracy_ratio",
    kind: MetricKind::Gauge,
    unit: None,
    help: "Share of correct answers in the last step (role=propose: the estimator's solve rate on new proposals).",
    labels: TR,
    buckets: &[],
};
/// Proposals produced.
pub const PROPOSALS_TOTAL: MetricDef = MetricDef {
    name: "azr_proposals_total",
    kind: MetricKind::Counter,
    unit: None,
    help: "Proposals produced by the proposer, by task kind.",
    labels: T,
    buckets: &[],
};
/// Proposals the executor accepted.
pub const PROPOSALS_VALID_TOTAL: MetricDef = MetricDef {
    name: "azr_proposals_valid_total",
    kind: MetricKind::Counter,
    unit: None,
    help: "Proposals the executor validated into tasks, by task kind.",
    labels: T,
    buckets: &[],
};
/// Valid-proposal rate of the last step.
pub const VALID_PROPOSAL_RATIO: MetricDef = MetricDef {
    name: "azr_valid_proposal_ratio",
    kind: MetricKind::Gauge,
    unit: None,
    help: "Share of the last step's proposals that were valid, by task kind.",
    labels: T,
    buckets: &[],
};
/// Learnability reward per valid proposal.
pub const LEARNABILITY_REWARD: MetricDef = MetricDef {
    name: "azr_learnability_reward",
    kind: MetricKind::Histogram,
    unit: None,
    help: "Learnability reward of each valid proposal (1 - Monte Carlo solve rate, 0 if always or never solved).",
    labels: T,
    buckets: LEARNABILITY_BUCKETS,
};
/// Valid proposals with a novel program shape.
pub const PROPOSALS_NOVEL_TOTAL: MetricDef = MetricDef {
    name: "azr_proposals_novel_total",
    kind: MetricKind::Counter,
    unit: None,
    help: "Valid proposals whose normalised program shape was novel: in neither the pretraining corpus nor the shapes already admitted to the task buffers, by task kind (a subset of azr_proposals_valid_total).",
    labels: T,
    buckets: &[],
};
/// Solver tasks drawn, by where they came from.
pub const SOLVER_TASKS_TOTAL: MetricDef = MetricDef {
    name: "azr_solver_tasks_total",
    kind: MetricKind::Counter,
    unit: None,
    help: "Solver tasks the task store drew, by task kind and source: seed, proposed (the task buffers), replay (the pretraining-corpus pool of selfplay.replay_fraction) or benchmark (1-shot RLVR examples).",
    labels: &[LabelKey::Task, LabelKey::Source],
    buckets: &[],
};
/// Greedy answers the estimator checked on new proposals.
pub const GREEDY_PROBES_TOTAL: MetricDef = MetricDef {
    name: "azr_greedy_probes_total",
    kind: MetricKind::Counter,
    unit: None,
    help: "Valid proposals whose task the estimator also answered greedily (only with tasks.buffer.prefer_greedy_miss), by task kind.",
    labels: T,
    buckets: &[],
};
/// Greedy answers found correct.
pub const GREEDY_PROBES_CORRECT_TOTAL: MetricDef = MetricDef {
    name: "azr_greedy_probes_correct_total",
    kind: MetricKind::Counter,
    unit: None,
    help: "Greedy probes whose answer was correct, by task kind (a subset of azr_greedy_probes_total).",
    labels: T,
    buckets: &[],
};
/// Novel share of the last step's valid proposals.
pub const NOVEL_PROPOSAL_RATIO: MetricDef = MetricDef {
    name: "azr_novel_proposal_ratio",
    kind: MetricKind::Gauge,
    unit: None,
    help: "Share of the last step's valid proposals whose program shape was novel, by task kind.",
    labels: T,
    buckets: &[],
};
/// Mean shape share of the last step's valid proposals.
pub const PROPOSAL_SHAPE_SHARE: MetricDef = MetricDef {
    name: "azr_proposal_shape_share",
    kind: MetricKind::Gauge,
    unit: None,
    help: "Mean, over the last step's valid proposals, of the share of the kind's earlier admitted proposals that had the same normalised program shape (the repetition term's input; rising = the proposer collapsing onto few shapes), by task kind.",
    labels: T,
    buckets: &[],
};
/// Distinct program shapes in the task store's memory.
pub const PROGRAM_SHAPES: MetricDef = MetricDef {
    name: "azr_program_shapes",
    kind: MetricKind::Gauge,
    unit: None,
    help: "Distinct normalised program shapes admitted to the task buffer over the run (the task store's shape memory, which outlives evictions), by task kind.",
    labels: T,
    buckets: &[],
};
/// Sequences generated by the policy.
pub const RESPONSES_TOTAL: MetricDef = MetricDef {
    name: "azr_responses_total",
    kind: MetricKind::Counter,
    unit: None,
    help: "Sequences generated by the policy (proposals, solver answers and estimator samples), by task kind and role.",
    labels: TR,
    buckets: &[],
};
/// Sequences cut at the token limit.
pub const RESPONSES_TRUNCATED_TOTAL: MetricDef = MetricDef {
    name: "azr_responses_truncated_total",
    kind: MetricKind::Counter,
    unit: None,
    help:
        "Generated sequences that hit max_new_tokens without a stop token (clip ratio numerator).",
    labels: TR,
    buckets: &[],
};
/// Response lengths.
pub const RESPONSE_LENGTH_TOKENS: MetricDef = MetricDef {
    name: "azr_response_length_tokens",
    kind: MetricKind::Histogram,
    unit: None,
    help: "Length in tokens of each generated sequence, by task kind and role.",
    labels: TR,
    buckets: LENGTH_BUCKETS,
};
/// Tokens generated.
pub const TOKENS_GENERATED_TOTAL: MetricDef = MetricDef {
    name: "azr_tokens_generated_total",
    kind: MetricKind::Counter,
    unit: None,
    help: "Tokens sampled by the policy, by task kind and role.",
    labels: TR,
    buckets: &[],
};
/// Rollouts given to the learner.
pub const ROLLOUTS_TOTAL: MetricDef = MetricDef {
    name: "azr_rollouts_total",
    kind: MetricKind::Counter,
    unit: None,
    help: "Scored rollouts consumed by the learner, by task kind and role.",
    labels: TR,
    buckets: &[],
};
/// Task buffer sizes.
pub const BUFFER_TASKS: MetricDef = MetricDef {
    name: "azr_buffer_tasks",
    kind: MetricKind::Gauge,
    unit: None,
    help: "Validated tasks held in the task buffer, by task kind.",
    labels: T,
    buckets: &[],
};

// ----- learner --------------------------------------------------------------------------------

/// Optimizer steps.
pub const STEPS_TOTAL: MetricDef = MetricDef {
    name: "azr_steps_total",
    kind: MetricKind::Counter,
    unit: None,
    help: "Optimizer steps completed (continues across resume).",
    labels: NONE,
    buckets: &[],
};
/// Current policy version.
pub const POLICY_VERSION: MetricDef = MetricDef {
    name: "azr_policy_version",
    kind: MetricKind::Gauge,
    unit: None,
    help: "Version of the latest published policy snapshot.",
    labels: NONE,
    buckets: &[],
};
/// Policy-gradient loss.
pub const PG_LOSS: MetricDef = MetricDef {
    name: "azr_pg_loss",
    kind: MetricKind::Gauge,
    unit: None,
    help: "Policy-gradient (PPO-clip) loss of the last step.",
    labels: NONE,
    buckets: &[],
};
/// KL to the sampling policy.
pub const KL: MetricDef = MetricDef {
    name: "azr_kl",
    kind: MetricKind::Gauge,
    unit: None,
    help: "Mean per-token KL of the last step's policy to the policy that sampled its rollouts (PPO approx_kl, token mean of old_logp - logp).",
    labels: NONE,
    buckets: &[],
};
/// KL to the reference weights.
pub const KL_REFERENCE: MetricDef = MetricDef {
    name: "azr_kl_reference",
    kind: MetricKind::Gauge,
    unit: None,
    help: "Mean per-token KL of the last step's policy to the reference weights (the run's initial weights) under learner.loss.kl_estimator; 0 when learner.loss.kl_coef = 0 (no reference is kept).",
    labels: NONE,
    buckets: &[],
};
/// Entropy.
pub const ENTROPY: MetricDef = MetricDef {
    name: "azr_entropy",
    kind: MetricKind::Gauge,
    unit: None,
    help: "Mean per-token policy entropy in nats over the last step's response tokens.",
    labels: NONE,
    buckets: &[],
};
/// PPO clip fraction.
pub const PG_CLIPPED_RATIO: MetricDef = MetricDef {
    name: "azr_pg_clipped_ratio",
    kind: MetricKind::Gauge,
    unit: None,
    help: "Share of the last step's response tokens whose importance ratio was clipped (clip fraction).",
    labels: NONE,
    buckets: &[],
};
/// Gradient norm.
pub const GRAD_NORM: MetricDef = MetricDef {
    name: "azr_grad_norm",
    kind: MetricKind::Gauge,
    unit: None,
    help: "Global L2 norm of the last step's gradient, before clipping.",
    labels: NONE,
    buckets: &[],
};
/// Learning rate.
pub const LEARNING_RATE: MetricDef = MetricDef {
    name: "azr_learning_rate",
    kind: MetricKind::Gauge,
    unit: None,
    help: "Learning rate used by the last optimizer step.",
    labels: NONE,
    buckets: &[],
};
/// Tokens trained on.
pub const TOKENS_TRAINED_TOTAL: MetricDef = MetricDef {
    name: "azr_tokens_trained_total",
    kind: MetricKind::Counter,
    unit: None,
    help: "Response tokens the learner computed the loss and gradient on.",
    labels: NONE,
    buckets: &[],
};
/// Step wall time.
pub const STEP_DURATION_SECONDS: MetricDef = MetricDef {
    name: "azr_step_duration_seconds",
    kind: MetricKind::Histogram,
    unit: Some(Unit::Seconds),
    help: "Wall time between the ends of consecutive optimizer steps.",
    labels: NONE,
    buckets: STEP_BUCKETS,
};
/// Last step wall time.
pub const LAST_STEP_DURATION_SECONDS: MetricDef = MetricDef {
    name: "azr_last_step_duration_seconds",
    kind: MetricKind::Gauge,
    unit: Some(Unit::Seconds),
    help: "Wall time of the last step (last value of azr_step_duration_seconds).",
    labels: NONE,
    buckets: &[],
};
/// Phase wall time.
pub const PHASE_DURATION_SECONDS: MetricDef = MetricDef {
    name: "azr_phase_duration_seconds",
    kind: MetricKind::Histogram,
    unit: Some(Unit::Seconds),
    help: "Wall time of each phase of a step; phases of consecutive steps overlap.",
    labels: &[LabelKey::Phase],
    buckets: STEP_BUCKETS,
};
/// Last phase wall time.
pub const LAST_PHASE_DURATION_SECONDS: MetricDef = MetricDef {
    name: "azr_last_phase_duration_seconds",
    kind: MetricKind::Gauge,
    unit: Some(Unit::Seconds),
    help: "Wall time of the last completed instance of each phase.",
    labels: &[LabelKey::Phase],
    buckets: &[],
};
/// Staleness per consumed rollout.
pub const ROLLOUT_STALENESS: MetricDef = MetricDef {
    name: "azr_rollout_staleness",
    kind: MetricKind::Histogram,
    unit: None,
    help: "Policy versions between the learner and the policy that sampled each consumed rollout.",
    labels: NONE,
    buckets: STALENESS_BUCKETS,
};
/// Maximum staleness in the last batch.
pub const POLICY_STALENESS: MetricDef = MetricDef {
    name: "azr_policy_staleness",
    kind: MetricKind::Gauge,
    unit: None,
    help: "Largest staleness (learner version - sampling version) in the last step's batch.",
    labels: NONE,
    buckets: &[],
};
/// Checkpoints written.
pub const CHECKPOINTS_TOTAL: MetricDef = MetricDef {
    name: "azr_checkpoints_total",
    kind: MetricKind::Counter,
    unit: None,
    help: "Checkpoints written (periodic and on shutdown).",
    labels: NONE,
    buckets: &[],
};

// ----- dataflow branch: off-policy correction, idle ratios, rollouts without reward ----------

/// Mean importance weight of the off-policy correction.
pub const IMPORTANCE_WEIGHT_MEAN: MetricDef = MetricDef {
    name: "azr_importance_weight_mean",
    kind: MetricKind::Gauge,
    unit: None,
    help: "Mean per-token importance weight (proximal / behaviour policy, truncated or masked) of the last update; about 1 when healthy, warn below 0.5 or above 2.",
    labels: NONE,
    buckets: &[],
};
/// Std of the importance weights.
pub const IMPORTANCE_WEIGHT_STD: MetricDef = MetricDef {
    name: "azr_importance_weight_std",
    kind: MetricKind::Gauge,
    unit: None,
    help: "Standard deviation of the per-token importance weights of the last update; below 0.5 good, above 1 bad.",
    labels: NONE,
    buckets: &[],
};
/// Normalised effective sample size.
pub const EFFECTIVE_SAMPLE_SIZE: MetricDef = MetricDef {
    name: "azr_effective_sample_size",
    kind: MetricKind::Gauge,
    unit: None,
    help: "Normalised effective sample size (sum w)^2 / (n sum w^2) of the last update's importance weights, in (0, 1]; above 0.5 good, below 0.3 bad.",
    labels: NONE,
    buckets: &[],
};
/// Trainer idle share.
pub const TRAINER_IDLE_RATIO: MetricDef = MetricDef {
    name: "azr_trainer_idle_ratio",
    kind: MetricKind::Gauge,
    unit: None,
    help: "Share of the last step the learner thread waited for its batch (0 = always training).",
    labels: NONE,
    buckets: &[],
};
/// Rollout engine idle share.
pub const ROLLOUT_IDLE_RATIO: MetricDef = MetricDef {
    name: "azr_rollout_idle_ratio",
    kind: MetricKind::Gauge,
    unit: None,
    help:
        "Share of the last step the rollout engine had nothing to decode (0 = always generating).",
    labels: NONE,
    buckets: &[],
};
/// Rollouts without a reward.
pub const ROLLOUTS_UNREWARDED_TOTAL: MetricDef = MetricDef {
    name: "azr_rollouts_unrewarded_total",
    kind: MetricKind::Counter,
    unit: None,
    help: "Generations left without a reward because the sandbox, the executor or the engine failed; excluded from training and advantage statistics, never scored 0.",
    labels: TR,
    buckets: &[],
};

// ----- executor -------------------------------------------------------------------------------

/// Executions by outcome.
pub const EXECUTIONS_TOTAL: MetricDef = MetricDef {
    name: "azr_executions_total",
    kind: MetricKind::Counter,
    unit: None,
    help: "Sandboxed Python executions, by outcome status.",
    labels: &[LabelKey::Status],
    buckets: &[],
};
/// Execution latency.
pub const EXECUTION_DURATION_SECONDS: MetricDef = MetricDef {
    name: "azr_execution_duration_seconds",
    kind: MetricKind::Histogram,
    unit: Some(Unit::Seconds),
    help: "Wall time of one sandboxed execution, queueing for a worker included.",
    labels: NONE,
    buckets: EXEC_BUCKETS,
};
/// Isolation layers active.
pub const EXECUTOR_ISOLATION_LAYER: MetricDef = MetricDef {
    name: "azr_executor_isolation_layer",
    kind: MetricKind::Gauge,
    unit: None,
    help: "1 if the sandbox isolation layer was found active at executor start, else 0.",
    labels: &[LabelKey::Layer],
    buckets: &[],
};
// executor branch (issue #11): fork servers replaced after a failed health check or a fault.
/// Executor workers replaced.
pub const EXECUTOR_WORKER_REPLACEMENTS_TOTAL: MetricDef = MetricDef {
    name: "azr_executor_worker_replacements_total",
    kind: MetricKind::Counter,
    unit: None,
    help: "Executor fork-server workers killed and replaced: dead, hung, protocol violation, failed job setup, or changed rlimits/nice/affinity/scheduler/I/O priority (per-job health check).",
    labels: NONE,
    buckets: &[],
};

// ----- actors and system ----------------------------------------------------------------------

/// Queue depths.
pub const QUEUE_DEPTH: MetricDef = MetricDef {
    name: "azr_queue_depth",
    kind: MetricKind::Gauge,
    unit: None,
    help: "Items waiting in a bounded pipeline channel.",
    labels: &[LabelKey::Queue],
    buckets: &[],
};
/// Queue capacities.
pub const QUEUE_CAPACITY: MetricDef = MetricDef {
    name: "azr_queue_capacity",
    kind: MetricKind::Gauge,
    unit: None,
    help: "Capacity of a bounded pipeline channel, as configured.",
    labels: &[LabelKey::Queue],
    buckets: &[],
};
/// Actor work items and busy time.
pub const ACTOR_WORK_DURATION_SECONDS: MetricDef = MetricDef {
    name: "azr_actor_work_duration_seconds",
    kind: MetricKind::Histogram,
    unit: Some(Unit::Seconds),
    help: "Duration of each unit of work an actor handled; rate(_sum) is its busy fraction of wall time.",
    labels: &[LabelKey::Actor],
    buckets: WORK_BUCKETS,
};
/// Actor restarts.
pub const ACTOR_RESTARTS_TOTAL: MetricDef = MetricDef {
    name: "azr_actor_restarts_total",
    kind: MetricKind::Counter,
    unit: None,
    help: "Restarts of an actor by the supervisor after a panic or failure.",
    labels: &[LabelKey::Actor],
    buckets: &[],
};
/// Retried work items.
pub const WORK_RETRIES_TOTAL: MetricDef = MetricDef {
    name: "azr_work_retries_total",
    kind: MetricKind::Counter,
    unit: None,
    help: "In-flight work items re-sent to an actor after it was restarted.",
    labels: &[LabelKey::Actor],
    buckets: &[],
};
/// Worker nodes the cluster head admitted whose session is up.
pub const CLUSTER_NODES_UP: MetricDef = MetricDef {
    name: "azr_cluster_nodes_up",
    kind: MetricKind::Gauge,
    unit: None,
    help: "Worker nodes (azr node) admitted by the head whose session is up.",
    labels: &[],
    buckets: &[],
};
/// Attempts of jobs the cluster head dispatched, by node, kind of work and outcome.
pub const CLUSTER_JOBS_TOTAL: MetricDef = MetricDef {
    name: "azr_cluster_jobs_total",
    kind: MetricKind::Counter,
    unit: None,
    help: "Job attempts the cluster head dispatched, by node (head: its own executor worker, rollout engine and evaluator), work (executor: validating a proposal; rollout: one generation request; eval: one due evaluation, scored on the pinned weights) and outcome: completed, lost with the node, or refused by it (rollout weights too old for the staleness bound; an evaluator without the pinned snapshot or whose evaluation failed); lost and refused attempts are re-issued (an evaluation at the latest on the head, where a failure counts as lost).",
    labels: &[LabelKey::Node, LabelKey::Work, LabelKey::Outcome],
    buckets: &[],
};
/// Policy version each rollout engine of the cluster decodes with.
pub const CLUSTER_WEIGHTS_VERSION: MetricDef = MetricDef {
    name: "azr_cluster_weights_version",
    kind: MetricKind::Gauge,
    unit: None,
    help: "Policy version of the last weight snapshot each rollout engine installed, by node (head: the version the learner published last).",
    labels: &[LabelKey::Node],
    buckets: &[],
};
/// Bytes of weight snapshots the head sent to each rollout or evaluator node.
pub const CLUSTER_WEIGHTS_SENT_BYTES_TOTAL: MetricDef = MetricDef {
    name: "azr_cluster_weights_sent_bytes_total",
    kind: MetricKind::Counter,
    unit: Some(Unit::Bytes),
    help: "Bytes of weight snapshots (safetensors, in chunks) the head sent to rollout nodes (every version) and evaluator nodes (the pinned version of each evaluation), by node.",
    labels: &[LabelKey::Node],
    buckets: &[],
};
/// Evaluator accuracy.
pub const EVAL_ACCURACY_RATIO: MetricDef = MetricDef {
    name: "azr_eval_accuracy_ratio",
    kind: MetricKind::Gauge,
    unit: None,
    help: "Accuracy of the latest evaluation on a benchmark (0 until azr_eval_runs_total moves).",
    labels: &[LabelKey::Benchmark],
    buckets: &[],
};
/// Evaluator runs.
pub const EVAL_RUNS_TOTAL: MetricDef = MetricDef {
    name: "azr_eval_runs_total",
    kind: MetricKind::Counter,
    unit: None,
    help: "Completed evaluations of a snapshot on a benchmark.",
    labels: &[LabelKey::Benchmark],
    buckets: &[],
};
/// Policy version evaluated.
pub const EVAL_POLICY_VERSION: MetricDef = MetricDef {
    name: "azr_eval_policy_version",
    kind: MetricKind::Gauge,
    unit: None,
    help: "Policy version of the snapshot behind azr_eval_accuracy_ratio.",
    labels: &[LabelKey::Benchmark],
    buckets: &[],
};
/// Process start time.
pub const START_TIME_SECONDS: MetricDef = MetricDef {
    name: "azr_start_time_seconds",
    kind: MetricKind::Gauge,
    unit: Some(Unit::Seconds),
    help: "Unix time at which this azr process registered its metrics.",
    labels: NONE,
    buckets: &[],
};
/// Resident memory.
pub const PROCESS_RESIDENT_MEMORY_BYTES: MetricDef = MetricDef {
    name: "azr_process_resident_memory_bytes",
    kind: MetricKind::Gauge,
    unit: Some(Unit::Bytes),
    help: "Resident set size of the azr process.",
    labels: NONE,
    buckets: &[],
};
/// CPU time.
pub const PROCESS_CPU_SECONDS_TOTAL: MetricDef = MetricDef {
    name: "azr_process_cpu_seconds_total",
    kind: MetricKind::Counter,
    unit: Some(Unit::Seconds),
    help: "User plus system CPU time of the azr process, in whole seconds.",
    labels: NONE,
    buckets: &[],
};

/// Every metric azr exports.
pub const ALL: &[&MetricDef] = &[
    &REWARD,
    &REWARD_MEAN,
    &ANSWERS_TOTAL,
    &ANSWERS_CORRECT_TOTAL,
    &ACCURACY_RATIO,
    &PROPOSALS_TOTAL,
    &PROPOSALS_VALID_TOTAL,
    &VALID_PROPOSAL_RATIO,
    &LEARNABILITY_REWARD,
    &PROPOSALS_NOVEL_TOTAL,
    &NOVEL_PROPOSAL_RATIO,
    &SOLVER_TASKS_TOTAL,
    &GREEDY_PROBES_TOTAL,
    &GREEDY_PROBES_CORRECT_TOTAL,
    &PROPOSAL_SHAPE_SHARE,
    &PROGRAM_SHAPES,
    &RESPONSES_TOTAL,
    &RESPONSES_TRUNCATED_TOTAL,
    &RESPONSE_LENGTH_TOKENS,
    &TOKENS_GENERATED_TOTAL,
    &ROLLOUTS_TOTAL,
    &BUFFER_TASKS,
    &STEPS_TOTAL,
    &POLICY_VERSION,
    &PG_LOSS,
    &KL,
    &KL_REFERENCE,
    &ENTROPY,
    &PG_CLIPPED_RATIO,
    &GRAD_NORM,
    &LEARNING_RATE,
    &TOKENS_TRAINED_TOTAL,
    &STEP_DURATION_SECONDS,
    &LAST_STEP_DURATION_SECONDS,
    &PHASE_DURATION_SECONDS,
    &LAST_PHASE_DURATION_SECONDS,
    &ROLLOUT_STALENESS,
    &POLICY_STALENESS,
    &CHECKPOINTS_TOTAL,
    &IMPORTANCE_WEIGHT_MEAN,
    &IMPORTANCE_WEIGHT_STD,
    &EFFECTIVE_SAMPLE_SIZE,
    &TRAINER_IDLE_RATIO,
    &ROLLOUT_IDLE_RATIO,
    &ROLLOUTS_UNREWARDED_TOTAL,
    &EXECUTIONS_TOTAL,
    &EXECUTION_DURATION_SECONDS,
    &EXECUTOR_ISOLATION_LAYER,
    &EXECUTOR_WORKER_REPLACEMENTS_TOTAL,
    &QUEUE_DEPTH,
    &QUEUE_CAPACITY,
    &ACTOR_WORK_DURATION_SECONDS,
    &ACTOR_RESTARTS_TOTAL,
    &WORK_RETRIES_TOTAL,
    &CLUSTER_NODES_UP,
    &CLUSTER_JOBS_TOTAL,
    &CLUSTER_WEIGHTS_VERSION,
    &CLUSTER_WEIGHTS_SENT_BYTES_TOTAL,
    &EVAL_ACCURACY_RATIO,
    &EVAL_RUNS_TOTAL,
    &EVAL_POLICY_VERSION,
    &START_TIME_SECONDS,
    &PROCESS_RESIDENT_MEMORY_BYTES,
    &PROCESS_CPU_SECONDS_TOTAL,
];

/// Give every metric its help text and unit on the current recorder.
pub fn describe_all() {
    for def in ALL {
        def.describe();
    }
}

/// Create every series of every metric with its zero value on the current recorder, so that
/// dashboards show zero rather than "no data" from the first scrape, and set
/// [`START_TIME_SECONDS`] to now. Existing series keep their values.
pub fn register_all() {
    for def in ALL {
        def.register();
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    START_TIME_SECONDS.gauge(&[]).set(now);
}

/// The explicit buckets of every histogram, for
/// `PrometheusBuilder::set_buckets_for_metric(Matcher::Full(name.into()), buckets)`.
pub fn buckets() -> Vec<(&'static str, &'static [f64])> {
    ALL.iter()
        .filter(|d| d.kind == MetricKind::Histogram)
        .map(|d| (d.name, d.buckets))
        .collect()
}

/// Record one step's wall time: [`STEP_DURATION_SECONDS`] and [`LAST_STEP_DURATION_SECONDS`].
pub fn observe_step(seconds: f64) {
    STEP_DURATION_SECONDS.histogram(&[]).record(seconds);
    LAST_STEP_DURATION_SECONDS.gauge(&[]).set(seconds);
}

/// Record one phase's wall time (`phase` from [`PHASES`]): [`PHASE_DURATION_SECONDS`] and
/// [`LAST_PHASE_DURATION_SECONDS`].
pub fn observe_phase(phase: &'static str, seconds: f64) {
    debug_assert!(
        PHASES.iter().any(|(p, _)| *p == phase),
        "unknown phase {phase}"
    );
    PHASE_DURATION_SECONDS
        .histogram(&[("phase", phase)])
        .record(seconds);
    LAST_PHASE_DURATION_SECONDS
        .gauge(&[("phase", phase)])
        .set(seconds);
}

/// Record one unit of work of an actor (`actor` from [`ACTORS`]) in
/// [`ACTOR_WORK_DURATION_SECONDS`]; its `_sum` rate is the actor's busy fraction.
pub fn observe_actor_work(actor: &'static str, seconds: f64) {
    debug_assert!(ACTORS.contains(&actor), "unknown actor {actor}");
    ACTOR_WORK_DURATION_SECONDS
        .histogram(&[("actor", actor)])
        .record(seconds);
}

/// Set [`EXECUTOR_ISOLATION_LAYER`] from the executor's start-up probe.
pub fn record_isolation(report: &IsolationReport) {
    for (layer, on) in report.required_layers() {
        EXECUTOR_ISOLATION_LAYER
            .gauge(&[("layer", layer)])
            .set(if on { 1.0 } else { 0.0 });
    }
}

/// Resident memory and CPU time of this process, read from `/proc/self`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcessStats {
    /// Resident set size in bytes.
    pub resident_bytes: u64,
    /// User plus system CPU time in seconds.
    pub cpu_seconds: f64,
}

/// Errors reading `/proc/self`.
#[derive(Debug, thiserror::Error)]
pub enum ProcessStatsError {
    /// A `/proc` file could not be read (not Linux, or no procfs).
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// A `/proc` file did not have the expected layout.
    #[error("unexpected layout of {0}")]
    Parse(&'static str),
}

impl ProcessStats {
    /// Read the current values.
    pub fn read() -> Result<Self, ProcessStatsError> {
        let read = |path: &'static str| {
            std::fs::read_to_string(path).map_err(|source| ProcessStatsError::Read { path, source })
        };
        // SAFETY: sysconf only reads a process-wide constant.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        // SAFETY: as above.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        if page <= 0 || ticks <= 0 {
            return Err(ProcessStatsError::Parse("sysconf"));
        }
        let statm = read("/proc/self/statm")?;
        let resident_pages: u64 = statm
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or(ProcessStatsError::Parse("/proc/self/statm"))?;
        let stat = read("/proc/self/stat")?;
        Ok(Self {
            resident_bytes: resident_pages * page as u64,
            cpu_seconds: parse_stat_cpu_ticks(&stat)
                .ok_or(ProcessStatsError::Parse("/proc/self/stat"))?
                as f64
                / ticks as f64,
        })
    }

    /// Write the values to [`PROCESS_RESIDENT_MEMORY_BYTES`] and [`PROCESS_CPU_SECONDS_TOTAL`].
    pub fn record(&self) {
        PROCESS_RESIDENT_MEMORY_BYTES
            .gauge(&[])
            .set(self.resident_bytes as f64);
        // Counters are integers: whole CPU seconds.
        PROCESS_CPU_SECONDS_TOTAL
            .counter(&[])
            .absolute(self.cpu_seconds as u64);
    }
}

/// utime + stime (fields 14 and 15) of a `/proc/<pid>/stat` line, in clock ticks. The command
/// name (field 2) is in parentheses and may contain spaces, so fields are counted after it.
fn parse_stat_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11); // field 3 is the first after ')'
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusRecorder};
    use std::collections::HashSet;
    use std::io::Write;
    use std::process::{Command, Stdio};

    fn recorder() -> PrometheusRecorder {
        let mut builder = PrometheusBuilder::new();
        for (name, b) in buckets() {
            builder = builder
                .set_buckets_for_metric(Matcher::Full(name.to_string()), b)
                .unwrap();
        }
        builder.build_recorder()
    }

    fn render_registered() -> String {
        let rec = recorder();
        let handle = rec.handle();
        metrics::with_local_recorder(&rec, || {
            describe_all();
            register_all();
        });
        handle.render()
    }

    #[test]
    fn catalogue_follows_prometheus_naming() {
        let mut names = HashSet::new();
        for d in ALL {
            assert!(names.insert(d.name), "{} defined twice", d.name);
            assert!(d.name.starts_with("azr_"), "{}", d.name);
            assert!(
                d.name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{} is not snake_case",
                d.name
            );
            assert!(!d.help.is_empty(), "{} has no help", d.name);
            assert_eq!(
                d.kind == MetricKind::Counter,
                d.name.ends_with("_total"),
                "{}: counters and only counters end in _total",
                d.name
            );
            let base = d.name.trim_end_matches("_total");
            assert_eq!(
                base.ends_with("_seconds"),
                d.unit == Some(Unit::Seconds),
                "{}",
                d.name
            );
            assert_eq!(
                base.ends_with("_bytes"),
                d.unit == Some(Unit::Bytes),
                "{}",
                d.name
            );
            for bad in [
                "_ms",
                "_milliseconds",
                "_gb",
                "_mb",
                "_percent",
                "_count",
                "_sum",
                "_bucket",
            ] {
                assert!(!d.name.ends_with(bad), "{} ends in {bad}", d.name);
            }
            let keys: HashSet<_> = d.labels.iter().map(|k| k.key()).collect();
            assert_eq!(keys.len(), d.labels.len(), "{} repeats a label", d.name);
            if d.kind == MetricKind::Histogram {
                assert!(!d.buckets.is_empty(), "{} has no buckets", d.name);
                assert!(d.buckets.windows(2).all(|w| w[0] < w[1]), "{}", d.name);
            } else {
                assert!(d.buckets.is_empty(), "{} is not a histogram", d.name);
            }
        }
    }

    #[test]
    fn label_sets_are_the_bounded_products() {
        assert_eq!(STEPS_TOTAL.label_sets(), vec![Vec::<(&str, &str)>::new()]);
        // Proposable kinds x 2 roles + math/solve, from the registry.
        let tr = REWARD.label_sets();
        assert_eq!(tr.len(), task_roles().len());
        assert!(tr.contains(&vec![("task", "abduction"), ("role", "propose")]));
        assert!(tr.contains(&vec![("task", "math"), ("role", "solve")]));
        assert!(!tr.contains(&vec![("task", "math"), ("role", "propose")]));
        assert_eq!(BUFFER_TASKS.label_sets().len(), task_kinds().len());
        assert_eq!(EXECUTIONS_TOTAL.label_sets().len(), 8);
        assert_eq!(ACTOR_RESTARTS_TOTAL.label_sets().len(), ACTORS.len());
        assert_eq!(PHASE_DURATION_SECONDS.label_sets().len(), PHASES.len());
        let total: usize = ALL.iter().map(|d| d.label_sets().len()).sum();
        assert!(total < 400, "{total} label sets: cardinality grew");
    }

    #[test]
    fn status_labels_cover_every_exec_status() {
        // The match is exhaustive: a new ExecStatus variant fails to compile here until it is
        // added to EXEC_STATUSES.
        for s in EXEC_STATUSES {
            match s {
                ExecStatus::Ok
                | ExecStatus::Error
                | ExecStatus::Timeout
                | ExecStatus::Memory
                | ExecStatus::OutputTooLarge
                | ExecStatus::UnsupportedType
                | ExecStatus::Invalid
                | ExecStatus::SandboxFailure => {}
            }
        }
        let names: HashSet<_> = EXEC_STATUSES.iter().map(|s| s.as_str()).collect();
        assert_eq!(names.len(), 8);
    }

    #[test]
    fn buckets_cover_exactly_the_histograms() {
        let b = buckets();
        let hist: Vec<_> = ALL
            .iter()
            .filter(|d| d.kind == MetricKind::Histogram)
            .map(|d| d.name)
            .collect();
        assert_eq!(b.iter().map(|(n, _)| *n).collect::<Vec<_>>(), hist);
        assert!(b.contains(&("azr_execution_duration_seconds", EXEC_BUCKETS)));
    }

    #[test]
    fn exposition_has_every_series_after_register_all() {
        let text = render_registered();
        for d in ALL {
            assert!(
                text.contains(&format!("# TYPE {} {}\n", d.name, d.kind.as_str())),
                "{} missing or mistyped in:\n{text}",
                d.name
            );
            assert!(
                text.contains(&format!("# HELP {} {}\n", d.name, d.help)),
                "{}",
                d.name
            );
            for set in d.label_sets() {
                let labels: Vec<String> = set.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
                let line = match d.kind {
                    MetricKind::Histogram => {
                        let mut l = labels.clone();
                        l.push("le=\"+Inf\"".into());
                        format!("{}_bucket{{{}}} 0\n", d.name, l.join(","))
                    }
                    _ if labels.is_empty() => format!("{} ", d.name),
                    _ => format!("{}{{{}}} 0\n", d.name, labels.join(",")),
                };
                assert!(text.contains(&line), "missing `{}`", line.trim_end());
            }
        }
        assert!(
            !text.contains("quantile="),
            "a histogram was rendered as a summary"
        );
        // Explicit buckets: the reward histogram has a bucket at -0.5.
        assert!(
            text.contains("azr_reward_bucket{task=\"deduction\",role=\"solve\",le=\"-0.5\"} 0\n")
        );
    }

    #[test]
    fn helpers_record_into_the_named_series() {
        let rec = recorder();
        let handle = rec.handle();
        metrics::with_local_recorder(&rec, || {
            register_all();
            REWARD
                .histogram(&[("task", "deduction"), ("role", "solve")])
                .record(0.3);
            EXECUTIONS_TOTAL
                .counter(&[("status", "timeout")])
                .increment(2);
            observe_phase("update", 3.0);
            observe_phase("update", 7.0);
            observe_step(12.0);
            record_isolation(&IsolationReport {
                network: true,
                seccomp: true,
                ..Default::default()
            });
        });
        let text = handle.render();
        // 0.3 falls in the le=0.5 bucket and above, not in le=0.25.
        assert!(
            text.contains("azr_reward_bucket{task=\"deduction\",role=\"solve\",le=\"0.25\"} 0\n")
        );
        assert!(
            text.contains("azr_reward_bucket{task=\"deduction\",role=\"solve\",le=\"0.5\"} 1\n")
        );
        assert!(text.contains("azr_reward_sum{task=\"deduction\",role=\"solve\"} 0.3\n"));
        assert!(text.contains("azr_executions_total{status=\"timeout\"} 2\n"));
        assert!(text.contains("azr_executions_total{status=\"ok\"} 0\n"));
        assert!(text.contains("azr_phase_duration_seconds_bucket{phase=\"update\",le=\"5\"} 1\n"));
        assert!(text.contains("azr_phase_duration_seconds_sum{phase=\"update\"} 10\n"));
        assert!(text.contains("azr_last_phase_duration_seconds{phase=\"update\"} 7\n"));
        assert!(text.contains("azr_last_phase_duration_seconds{phase=\"solve\"} 0\n"));
        assert!(text.contains("azr_step_duration_seconds_count 1\n"));
        assert!(text.contains("azr_last_step_duration_seconds 12\n"));
        assert!(text.contains("azr_executor_isolation_layer{layer=\"network\"} 1\n"));
        assert!(text.contains("azr_executor_isolation_layer{layer=\"seccomp\"} 1\n"));
        assert!(!text.contains("layer=\"landlock\""));
        assert!(text.contains("azr_executor_isolation_layer{layer=\"rlimits\"} 0\n"));
    }

    #[test]
    fn node_series_are_created_per_node_and_the_head_is_registered() {
        let rec = recorder();
        let handle = rec.handle();
        metrics::with_local_recorder(&rec, || {
            register_all();
            CLUSTER_JOBS_TOTAL
                .counter_for_node("gpu-7", &[("work", "rollout"), ("outcome", "refused")])
                .increment(2);
            CLUSTER_WEIGHTS_VERSION
                .gauge_for_node("gpu-7", &[])
                .set(5.0);
        });
        let text = handle.render();
        assert!(text.contains(
            "azr_cluster_jobs_total{node=\"gpu-7\",work=\"rollout\",outcome=\"refused\"} 2\n"
        ));
        assert!(text.contains(
            "azr_cluster_jobs_total{node=\"head\",work=\"executor\",outcome=\"completed\"} 0\n"
        ));
        assert!(text
            .contains("azr_cluster_jobs_total{node=\"head\",work=\"eval\",outcome=\"lost\"} 0\n"));
        assert!(text.contains("azr_cluster_weights_version{node=\"gpu-7\"} 5\n"));
        assert!(text.contains("azr_cluster_weights_version{node=\"head\"} 0\n"));
    }

    #[test]
    fn register_all_keeps_existing_values() {
        let rec = recorder();
        let handle = rec.handle();
        metrics::with_local_recorder(&rec, || {
            STEPS_TOTAL.counter(&[]).increment(5);
            POLICY_VERSION.gauge(&[]).set(7.0);
            register_all();
        });
        let text = handle.render();
        assert!(text.contains("azr_steps_total 5\n"), "{text}");
        assert!(text.contains("azr_policy_version 7\n"));
    }

    #[test]
    fn stat_line_cpu_ticks() {
        // pid (comm with ) and spaces) state ppid pgrp session tty tpgid flags minflt cminflt
        // majflt cmajflt utime stime ...
        let line = "42 (a b) c) S 1 42 42 0 -1 4194304 100 0 0 0 250 50 0 0 20 0 1 0";
        assert_eq!(parse_stat_cpu_ticks(line), Some(300));
        assert_eq!(parse_stat_cpu_ticks("garbage"), None);
    }

    #[test]
    fn process_stats_are_read_from_proc() {
        let s = ProcessStats::read().unwrap();
        assert!(s.resident_bytes > 1 << 20, "{s:?}");
        assert!(s.cpu_seconds >= 0.0);
    }

    /// `promtool check metrics` on the exposition after registration and one recorded value
    /// per histogram. Set AZR_REQUIRE_PROMTOOL=1 (CI does) to fail when promtool is missing.
    #[test]
    fn promtool_accepts_the_exposition() {
        let rec = recorder();
        let handle = rec.handle();
        metrics::with_local_recorder(&rec, || {
            describe_all();
            register_all();
            STEP_DURATION_SECONDS.histogram(&[]).record(1.5);
        });
        let text = handle.render();
        let child = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        let mut child = match child {
            Ok(c) => c,
            Err(e) => {
                assert!(
                    std::env::var_os("AZR_REQUIRE_PROMTOOL").is_none(),
                    "promtool required but not runnable: {e}"
                );
                eprintln!("promtool not found ({e}); skipping the lint");
                return;
            }
        };
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "promtool check metrics failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
