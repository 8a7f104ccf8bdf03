//! A stand-in for `azr run --metrics-addr ADDR`: installs the Prometheus exporter exactly as the
//! binary should (explicit buckets from [`metrics::buckets`], every metric described and
//! registered) and then moves **every** series with synthetic values shaped like a self-play
//! run (rewards that drift upward, a loss that falls, executions of every status, ...).
//!
//! It exists to test the Prometheus side (scrape config, `promtool check metrics`, the live
//! dashboard check, the dashboard renderer) without a model. The values are made up; the
//! names, labels, kinds and buckets are the real ones from `azr_core::metrics`.
//!
//! ```text
//! cargo run --release --example metrics_exporter -- --addr 127.0.0.1:19464 --steps 0 --step-ms 250
//! ```
//! `--steps 0` runs until killed.

use azr_core::executor::IsolationReport;
use azr_core::metrics::{self, *};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::net::SocketAddr;
use std::time::Duration;

struct Args {
    addr: SocketAddr,
    steps: u64,
    step_ms: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        addr: "127.0.0.1:19464".parse().map_err(|e| format!("{e}"))?,
        steps: 0,
        step_ms: 250,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--addr" => args.addr = value.parse().map_err(|e| format!("--addr: {e}"))?,
            "--steps" => args.steps = value.parse().map_err(|e| format!("--steps: {e}"))?,
            "--step-ms" => args.step_ms = value.parse().map_err(|e| format!("--step-ms: {e}"))?,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(args)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args()?;
    let mut builder = PrometheusBuilder::new().with_http_listener(args.addr);
    for (name, buckets) in metrics::buckets() {
        builder = builder.set_buckets_for_metric(Matcher::Full(name.to_string()), buckets)?;
    }
    builder.install()?;
    describe_all();
    register_all();
    record_isolation(&IsolationReport {
        network: true,
        filesystem: true,
        empty_env: true,
        non_root: true,
        seccomp: true,
        rlimits: false,
        ..Default::default()
    });
    for (queue, _) in QUEUES {
        QUEUE_CAPACITY.gauge(&[("queue", queue)]).set(64.0);
    }
    eprintln!("metrics_exporter: serving on http://{}/metrics", args.addr);

    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut step: u64 = 0;
    while args.steps == 0 || step < args.steps {
        std::thread::sleep(Duration::from_millis(args.step_ms));
        step += 1;
        simulate_step(step, args.step_ms as f64 / 1000.0, &mut rng);
    }
    eprintln!("metrics_exporter: done after {step} steps");
    Ok(())
}

/// Move every metric once, as one pipeline step would.
fn simulate_step(step: u64, step_s: f64, rng: &mut ChaCha8Rng) {
    let progress = 1.0 - (-(step as f64) / 200.0).exp(); // 0 -> 1 over the run
    for (task, role) in task_roles() {
        let tr = [("task", task.as_str()), ("role", role.as_str())];
        let n = 8;
        let mut correct = 0;
        let mut reward_sum = 0.0;
        for _ in 0..n {
            let ok = rng.random_bool(0.2 + 0.5 * progress);
            correct += u64::from(ok);
            let r = if ok { 1.0 } else { -rng.random_range(0.0..0.5) };
            reward_sum += r;
            REWARD.histogram(&tr).record(r);
            let len = rng.random_range(20.0..(200.0 + 300.0 * progress));
            RESPONSE_LENGTH_TOKENS.histogram(&tr).record(len);
            TOKENS_GENERATED_TOTAL.counter(&tr).increment(len as u64);
        }
        REWARD_MEAN.gauge(&tr).set(reward_sum / n as f64);
        ANSWERS_TOTAL.counter(&tr).increment(n);
        ANSWERS_CORRECT_TOTAL.counter(&tr).increment(correct);
        ACCURACY_RATIO.gauge(&tr).set(correct as f64 / n as f64);
        RESPONSES_TOTAL.counter(&tr).increment(n);
        RESPONSES_TRUNCATED_TOTAL
            .counter(&tr)
            .increment(u64::from(rng.random_bool(0.1)));
        ROLLOUTS_TOTAL.counter(&tr).increment(n);
    }
    for task in task_kinds() {
        let t = [("task", task.as_str())];
        let proposed = 8;
        let valid = rng.random_range(3..=proposed);
        PROPOSALS_TOTAL.counter(&t).increment(proposed);
        PROPOSALS_VALID_TOTAL.counter(&t).increment(valid);
        VALID_PROPOSAL_RATIO
            .gauge(&t)
            .set(valid as f64 / proposed as f64);
        // Solver tasks by source: mostly proposals, some replayed corpus tasks.
        let replayed = rng.random_range(0..=8);
        SOLVER_TASKS_TOTAL
            .counter(&[("task", task.as_str()), ("source", "proposed")])
            .increment(32 - replayed);
        SOLVER_TASKS_TOTAL
            .counter(&[("task", task.as_str()), ("source", "replay")])
            .increment(replayed);
        // Greedy-miss targeting's probe: one greedy answer per valid proposal.
        GREEDY_PROBES_TOTAL.counter(&t).increment(valid);
        GREEDY_PROBES_CORRECT_TOTAL
            .counter(&t)
            .increment(rng.random_range(0..=valid));
        for _ in 0..valid {
            LEARNABILITY_REWARD
                .histogram(&t)
                .record(rng.random_range(0.0..1.0));
        }
        BUFFER_TASKS
            .gauge(&t)
            .set((64 + step * valid).min(4096) as f64);
    }

    STEPS_TOTAL.counter(&[]).increment(1);
    POLICY_VERSION.gauge(&[]).set(step as f64);
    PG_LOSS
        .gauge(&[])
        .set(0.5 * (1.0 - progress) + rng.random_range(-0.05..0.05));
    KL.gauge(&[])
        .set(0.001 + 0.01 * progress * rng.random_range(0.5..1.5));
    ENTROPY.gauge(&[]).set(1.2 - 0.6 * progress);
    PG_CLIPPED_RATIO.gauge(&[]).set(rng.random_range(0.0..0.08));
    GRAD_NORM.gauge(&[]).set(rng.random_range(0.2..1.5));
    LEARNING_RATE
        .gauge(&[])
        .set(1e-6 * (step as f64 / 10.0).min(1.0));
    TOKENS_TRAINED_TOTAL
        .counter(&[])
        .increment(rng.random_range(2000..4000));
    let step_time = step_s * rng.random_range(0.9..1.1);
    observe_step(step_time);
    for (phase, _) in PHASES {
        if phase == "checkpoint" && step % 20 != 0 {
            continue;
        }
        observe_phase(phase, step_s * rng.random_range(0.05..0.4));
    }
    let mut max_stale = 0;
    for _ in 0..16 {
        let s = rng.random_range(0..=1u64);
        max_stale = max_stale.max(s);
        ROLLOUT_STALENESS.histogram(&[]).record(s as f64);
    }
    POLICY_STALENESS.gauge(&[]).set(max_stale as f64);
    if step % 20 == 0 {
        CHECKPOINTS_TOTAL.counter(&[]).increment(1);
    }

    for status in EXEC_STATUSES {
        let s = [("status", status.as_str())];
        let n = match status.as_str() {
            "ok" => rng.random_range(20..40),
            "error" | "invalid" => rng.random_range(1..6),
            _ => u64::from(rng.random_bool(0.2)),
        };
        EXECUTIONS_TOTAL.counter(&s).increment(n);
        for _ in 0..n {
            EXECUTION_DURATION_SECONDS
                .histogram(&[])
                .record(rng.random_range(0.002..0.08));
        }
    }

    for (queue, _) in QUEUES {
        QUEUE_DEPTH
            .gauge(&[("queue", queue)])
            .set(rng.random_range(0..64) as f64);
    }
    for actor in ACTORS {
        let a = [("actor", actor)];
        for _ in 0..rng.random_range(1..4) {
            observe_actor_work(actor, step_s * rng.random_range(0.05..0.3));
        }
        if step % 50 == 0 && actor == "executor" {
            ACTOR_RESTARTS_TOTAL.counter(&a).increment(1);
            WORK_RETRIES_TOTAL.counter(&a).increment(3);
        }
    }
    if step % 5 == 0 {
        for (i, bench) in BENCHMARKS.iter().enumerate() {
            let b = [("benchmark", *bench)];
            EVAL_RUNS_TOTAL.counter(&b).increment(1);
            EVAL_POLICY_VERSION.gauge(&b).set(step as f64);
            EVAL_ACCURACY_RATIO
                .gauge(&b)
                .set((0.1 + 0.05 * i as f64 + 0.3 * progress).min(1.0));
        }
    }
    if let Ok(p) = ProcessStats::read() {
        p.record();
    }
}
