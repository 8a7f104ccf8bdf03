//! Metric emission from the actors, on the definitions of `azr_core::metrics` (names, help,
//! labels and buckets are defined there once). Thin helpers keep call sites to one line and
//! label values inside the closed sets the core declares.

use std::time::Duration;

use azr_core::executor::ExecStatus;
use azr_core::metrics as m;
use azr_core::types::{Role, TaskKind};

fn tr(kind: TaskKind, role: Role) -> [(&'static str, &'static str); 2] {
    [("task", kind.as_str()), ("role", role.as_str())]
}

/// Count restarts of `actor` from `carried` on (the count a checkpoint restored).
pub fn actor_restarts_register(actor: &'static str, carried: Option<u64>) {
    if let Some(n) = carried {
        m::ACTOR_RESTARTS_TOTAL
            .counter(&[("actor", actor)])
            .absolute(n);
    }
}

/// Count one restart of `actor`.
pub fn actor_restarted(actor: &'static str) {
    m::ACTOR_RESTARTS_TOTAL
        .counter(&[("actor", actor)])
        .increment(1);
}

/// Count one retried request to `actor`.
pub fn request_retried(actor: &'static str) {
    m::WORK_RETRIES_TOTAL
        .counter(&[("actor", actor)])
        .increment(1);
}

/// Record one unit of work of `actor` (its busy share is `rate(_sum)`).
pub fn busy(actor: &'static str, d: Duration) {
    m::ACTOR_WORK_DURATION_SECONDS
        .histogram(&[("actor", actor)])
        .record(d.as_secs_f64());
}

/// Set the depth and capacity of a pipeline channel (`queue` from `azr_core::metrics::QUEUES`).
pub fn queue(name: &'static str, depth: usize, capacity: usize) {
    m::QUEUE_DEPTH.gauge(&[("queue", name)]).set(depth as f64);
    m::QUEUE_CAPACITY
        .gauge(&[("queue", name)])
        .set(capacity as f64);
}

/// Count `n` generations of a (kind, role) left without a reward (infrastructure failure).
pub fn unrewarded(kind: TaskKind, role: Role, n: usize) {
    m::ROLLOUTS_UNREWARDED_TOTAL
        .counter(&tr(kind, role))
        .increment(n as u64);
}

/// Set the idle shares of the last step: learner thread and rollout engine.
pub fn idle(trainer: f64, rollout: f64) {
    m::TRAINER_IDLE_RATIO.gauge(&[]).set(trainer);
    m::ROLLOUT_IDLE_RATIO.gauge(&[]).set(rollout);
}

/// Record the staleness of every rollout of a batch and the batch maximum.
pub fn staleness(lags: &[u64]) {
    let h = m::ROLLOUT_STALENESS.histogram(&[]);
    for &l in lags {
        h.record(l as f64);
    }
    m::POLICY_STALENESS
        .gauge(&[])
        .set(lags.iter().copied().max().unwrap_or(0) as f64);
}

/// Record a finished learner step (`steps` = steps over the whole run). Returns the process
/// statistics it recorded (`None` where `/proc` cannot be read).
pub fn step_done(steps: u64, version: u64, wall: Duration) -> Option<m::ProcessStats> {
    m::STEPS_TOTAL.counter(&[]).absolute(steps);
    m::POLICY_VERSION.gauge(&[]).set(version as f64);
    m::STEP_DURATION_SECONDS
        .histogram(&[])
        .record(wall.as_secs_f64());
    m::LAST_STEP_DURATION_SECONDS
        .gauge(&[])
        .set(wall.as_secs_f64());
    let stats = m::ProcessStats::read().ok();
    if let Some(p) = &stats {
        p.record();
    }
    stats
}

/// Record the wall time of a step phase (one of `azr_core::metrics::PHASES`).
pub fn phase(phase: &'static str, d: Duration) {
    m::PHASE_DURATION_SECONDS
        .histogram(&[("phase", phase)])
        .record(d.as_secs_f64());
    m::LAST_PHASE_DURATION_SECONDS
        .gauge(&[("phase", phase)])
        .set(d.as_secs_f64());
}

/// Record the rewards of a (kind, role) sub-batch.
pub fn rewards(kind: TaskKind, role: Role, rewards: &[f32]) {
    let labels = tr(kind, role);
    let h = m::REWARD.histogram(&labels);
    for &r in rewards {
        h.record(f64::from(r));
    }
    let mean = rewards.iter().map(|r| f64::from(*r)).sum::<f64>() / rewards.len().max(1) as f64;
    m::REWARD_MEAN.gauge(&labels).set(mean);
}

/// Record checked answers: solver attempts (`role = solve`) or Monte Carlo samples on new
/// proposals (`role = propose`).
pub fn answers(kind: TaskKind, role: Role, total: usize, correct: usize) {
    let labels = tr(kind, role);
    m::ANSWERS_TOTAL.counter(&labels).increment(total as u64);
    m::ANSWERS_CORRECT_TOTAL
        .counter(&labels)
        .increment(correct as u64);
    if total > 0 {
        m::ACCURACY_RATIO
            .gauge(&labels)
            .set(correct as f64 / total as f64);
    }
}

/// Record one solver task drawn by the task store, by where it came from (`Source::as_str`).
pub fn solver_task(kind: TaskKind, source: &'static str) {
    m::SOLVER_TASKS_TOTAL
        .counter(&[("task", kind.as_str()), ("source", source)])
        .increment(1);
}

/// Record one greedy probe of a new proposal's task and whether its answer was correct.
pub fn greedy_probe(kind: TaskKind, correct: bool) {
    let labels = [("task", kind.as_str())];
    m::GREEDY_PROBES_TOTAL.counter(&labels).increment(1);
    if correct {
        m::GREEDY_PROBES_CORRECT_TOTAL.counter(&labels).increment(1);
    }
}

/// Record a kind's proposals: how many, how many valid, the learnability reward of each valid one.
pub fn proposals(kind: TaskKind, total: usize, learnability: &[f32]) {
    let labels = [("task", kind.as_str())];
    m::PROPOSALS_TOTAL.counter(&labels).increment(total as u64);
    m::PROPOSALS_VALID_TOTAL
        .counter(&labels)
        .increment(learnability.len() as u64);
    if total > 0 {
        m::VALID_PROPOSAL_RATIO
            .gauge(&labels)
            .set(learnability.len() as f64 / total as f64);
    }
    let h = m::LEARNABILITY_REWARD.histogram(&labels);
    for &r in learnability {
        h.record(f64::from(r));
    }
}

/// Record a step's novel proposals from its dump records: per kind, how many valid proposals
/// (those with a solve rate) had a novel program shape, their share of the valid ones, and the
/// mean shape share (repetition) of those that carry one.
pub fn novel_proposals(records: &[crate::pipeline::dump::DumpRecord]) {
    #[derive(Default)]
    struct Tally {
        valid: usize,
        novel: usize,
        shared: usize,
        share_sum: f64,
    }
    let mut per: std::collections::BTreeMap<TaskKind, Tally> = Default::default();
    for r in records
        .iter()
        .filter(|r| r.role == Role::Propose && r.solve_rate.is_some())
    {
        let e = per.entry(r.task).or_default();
        e.valid += 1;
        e.novel += usize::from(r.novel == Some(true));
        if let Some(s) = r.shape_share {
            e.shared += 1;
            e.share_sum += f64::from(s);
        }
    }
    for (kind, t) in per {
        let labels = [("task", kind.as_str())];
        m::PROPOSALS_NOVEL_TOTAL
            .counter(&labels)
            .increment(t.novel as u64);
        m::NOVEL_PROPOSAL_RATIO
            .gauge(&labels)
            .set(t.novel as f64 / t.valid as f64);
        if t.shared > 0 {
            m::PROPOSAL_SHAPE_SHARE
                .gauge(&labels)
                .set(t.share_sum / t.shared as f64);
        }
    }
}

/// Record the distinct program shapes the task store's memory holds for a kind.
pub fn distinct_shapes(kind: TaskKind, n: usize) {
    m::PROGRAM_SHAPES
        .gauge(&[("task", kind.as_str())])
        .set(n as f64);
}

/// Record generated sequences of a (kind, role): their lengths and how many hit the budget.
pub fn responses(kind: TaskKind, role: Role, lengths: &[usize], truncated: usize) {
    let labels = tr(kind, role);
    m::RESPONSES_TOTAL
        .counter(&labels)
        .increment(lengths.len() as u64);
    m::RESPONSES_TRUNCATED_TOTAL
        .counter(&labels)
        .increment(truncated as u64);
    m::TOKENS_GENERATED_TOTAL
        .counter(&labels)
        .increment(lengths.iter().sum::<usize>() as u64);
    let h = m::RESPONSE_LENGTH_TOKENS.histogram(&labels);
    for &l in lengths {
        h.record(l as f64);
    }
}

/// Record rollouts consumed by the learner.
pub fn rollouts_consumed(kind: TaskKind, role: Role, n: usize) {
    m::ROLLOUTS_TOTAL
        .counter(&tr(kind, role))
        .increment(n as u64);
}

/// Record a buffer size.
pub fn buffer_size(kind: TaskKind, size: usize) {
    m::BUFFER_TASKS
        .gauge(&[("task", kind.as_str())])
        .set(size as f64);
}

/// Record the statistics of one learner update.
pub fn learner(stats: &crate::engine::UpdateStats) {
    m::PG_LOSS.gauge(&[]).set(stats.pg_loss);
    m::KL.gauge(&[]).set(stats.kl);
    m::KL_REFERENCE.gauge(&[]).set(stats.kl_reference);
    m::ENTROPY.gauge(&[]).set(stats.entropy);
    m::PG_CLIPPED_RATIO.gauge(&[]).set(stats.clip_fraction);
    m::GRAD_NORM.gauge(&[]).set(stats.grad_norm);
    m::LEARNING_RATE.gauge(&[]).set(stats.lr);
    m::IMPORTANCE_WEIGHT_MEAN
        .gauge(&[])
        .set(stats.importance_mean);
    m::IMPORTANCE_WEIGHT_STD
        .gauge(&[])
        .set(stats.importance_std);
    m::EFFECTIVE_SAMPLE_SIZE.gauge(&[]).set(stats.ess);
    m::TOKENS_TRAINED_TOTAL
        .counter(&[])
        .increment(stats.tokens as u64);
}

/// Record one sandboxed validation and its outcome.
pub fn execution(status: ExecStatus, d: Duration) {
    m::EXECUTIONS_TOTAL
        .counter(&[("status", status.as_str())])
        .increment(1);
    m::EXECUTION_DURATION_SECONDS
        .histogram(&[])
        .record(d.as_secs_f64());
}

/// The `benchmark` label of an evaluator set, if it is one of the declared benchmarks.
fn benchmark_label(name: &str) -> Option<&'static str> {
    let norm = name.replace('-', "_");
    m::BENCHMARKS.iter().copied().find(|b| *b == norm)
}

/// Record an evaluation result.
pub fn eval(benchmark: &str, accuracy: f64, version: u64) {
    if let Some(b) = benchmark_label(benchmark) {
        let labels = [("benchmark", b)];
        m::EVAL_ACCURACY_RATIO.gauge(&labels).set(accuracy);
        m::EVAL_RUNS_TOTAL.counter(&labels).increment(1);
        m::EVAL_POLICY_VERSION.gauge(&labels).set(version as f64);
    }
}

/// Count a checkpoint.
pub fn checkpoint_written() {
    m::CHECKPOINTS_TOTAL.counter(&[]).increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn benchmark_names_map_to_declared_labels() {
        assert_eq!(benchmark_label("cruxeval-o"), Some("cruxeval_o"));
        assert_eq!(benchmark_label("math500"), Some("math500"));
        assert_eq!(benchmark_label("nope"), None);
    }

    #[test]
    fn helpers_emit_declared_names_and_labels() {
        let rec = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = rec.handle();
        metrics::with_local_recorder(&rec, || {
            rewards(TaskKind::Deduction, Role::Solve, &[1.0, -0.5]);
            proposals(TaskKind::Induction, 4, &[0.25]);
            actor_restarted("solver");
            step_done(7, 7, Duration::from_millis(1500));
            solver_task(TaskKind::Abduction, "replay");
            solver_task(TaskKind::Abduction, "replay");
        });
        let text = handle.render();
        assert!(
            text.contains("azr_reward_mean{task=\"deduction\",role=\"solve\"} 0.25"),
            "{text}"
        );
        assert!(
            text.contains("azr_valid_proposal_ratio{task=\"induction\"} 0.25"),
            "{text}"
        );
        assert!(
            text.contains("azr_actor_restarts_total{actor=\"solver\"} 1"),
            "{text}"
        );
        assert!(text.contains("azr_steps_total 7"), "{text}");
        assert!(
            text.contains("azr_solver_tasks_total{task=\"abduction\",source=\"replay\"} 2"),
            "{text}"
        );
        // Every task source is a declared label value.
        use azr_core::tasks::Source;
        let sources = [
            Source::Seed,
            Source::Proposed,
            Source::Replay,
            Source::Benchmark { name: "b".into() },
        ];
        for s in sources {
            assert!(m::TASK_SOURCES.contains(&s.as_str()), "{}", s.as_str());
        }
    }

    #[test]
    fn novel_proposals_count_the_novel_share_of_valid_ones() {
        use crate::pipeline::dump::DumpRecord;
        let rec = |role, solve_rate: Option<f64>, novel: Option<bool>, share| DumpRecord {
            step: 0,
            task: TaskKind::Deduction,
            role,
            prompt: String::new(),
            response: String::new(),
            reward: 0.0,
            outcome: String::new(),
            solve_rate,
            shape: novel.map(|_| "s".to_string()),
            novel,
            shape_share: share,
            source: None,
            policy_version: 0,
            response_tokens: 0,
        };
        let records = [
            rec(Role::Propose, Some(0.5), Some(true), Some(0.0)),
            rec(Role::Propose, Some(0.0), Some(false), Some(0.5)),
            rec(Role::Propose, Some(1.0), Some(false), Some(0.25)),
            rec(Role::Propose, Some(0.25), Some(false), Some(0.25)),
            // Invalid proposals and answers are not valid proposals.
            rec(Role::Propose, None, None, None),
            rec(Role::Solve, None, None, None),
        ];
        let r = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = r.handle();
        metrics::with_local_recorder(&r, || {
            novel_proposals(&records);
            distinct_shapes(TaskKind::Deduction, 9);
        });
        let text = handle.render();
        for needle in [
            "azr_proposals_novel_total{task=\"deduction\"} 1",
            "azr_novel_proposal_ratio{task=\"deduction\"} 0.25",
            // (0 + 0.5 + 0.25 + 0.25) / 4
            "azr_proposal_shape_share{task=\"deduction\"} 0.25",
            "azr_program_shapes{task=\"deduction\"} 9",
        ] {
            assert!(text.contains(needle), "{needle}: {text}");
        }
    }
}
