//! The training run as a dataflow: it builds the channels, the rollout engine, the learner
//! thread and the supervised actors, starts one admission source per batch key, and waits until
//! the learner says the run is done (or a fatal error, or a stop request). There is no step
//! loop: a step is one learner update, reported by the learner actor.
//!
//! ```text
//!  source(k) --admission--> task_store --propose_jobs--> proposer --proposals--> executor
//!     (one per task x role)      |                                              |      |
//!                                |                           estimates <--------+      |
//!                                +--solve_jobs--> solver      estimator                |
//!                                                   |  answers    | answers    answers |
//!                                                   +---------> reward <---------------+
//!                                                                 | rollouts
//!                         evaluator <--eval-- learner actor <-----+
//!                                               | batches
//!                                         learner thread --weights vN--> rollout engine
//! ```
//!
//! ## Staleness
//! See [`admission`]: a slot of key `k` starts only while `admitted_k + 1 <= (S + v + 1) q_k`,
//! so every trained rollout is at most `S` versions old; `S = 0` is strictly on-policy.
//!
//! ## Backpressure
//! Every arrow above is a bounded `flume` channel ([`crate::config::RunSection`]); a full
//! channel suspends its producer, and a busy learner thread (queue `batches`, capacity 1)
//! suspends the learner actor, then the reward actor, and so on up to the admission sources.
//!
//! ## Evaluation
//! When an evaluation is due after a version (`evaluator.every`; version 0 with
//! `evaluator.at_start`), the learner thread's publish hook keeps that version's snapshot
//! ([`crate::actors::evaluator::Published`]); the evaluator scores exactly that snapshot on a
//! rollout engine of its own, so training neither waits for it nor changes the weights under it.
//! With a cluster, an evaluator node scores it when one is free ([`crate::cluster::eval`]).
//!
//! ## Checkpoints
//! The learner thread writes weights + optimizer right after the update of a due step (before
//! it can train the next batch); the learner actor then adds `state.json`: step, version, the
//! task store's buffers and random stream, counters, restarts. A resumed run admits from the
//! checkpointed step on; slots that were in flight are generated again.

pub mod admission;
pub mod batch;
pub mod checkpoint;
pub mod dump;
pub mod summary;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use azr_core::executor::Executor;
use azr_core::model::{SamplingParams, Snapshot};
use azr_core::tasks::TaskRegistry;
use azr_core::types::{PolicyVersion, Role, TaskKind};
use ractor::Actor;
use rand_chacha::ChaCha8Rng;
use tokio::sync::{mpsc, watch};

use crate::actors::estimator::{Estimator, EstimatorMsg};
use crate::actors::evaluator::{Benchmark, EvalSettings, Evaluator, EvaluatorMsg, Published};
use crate::actors::executor::{ExecutorActor, ExecutorMsg};
use crate::actors::faults::FaultPlan;
use crate::actors::learner::{
    EvalRequest, LearnerActor, LearnerMsg, LearnerSettings, LearnerState,
};
use crate::actors::proposer::{Proposer, ProposerMsg};
use crate::actors::reward::{Reward, RewardMsg};
use crate::actors::solver::{Solver, SolverMsg};
use crate::actors::store::{Source, StoreMsg, StoreState, TaskStore};
use crate::actors::supervisor::{Supervisor, SupervisorArgs, SupervisorMsg};
use crate::actors::{self, Ctx};
use crate::builder::{Replacement, Wiring};
use crate::compute::learner::{LearnerCmd, StepReport};
use crate::compute::{self, EngineHandle};
use crate::config::{self, Config};
use crate::engine::{SharedCodec, Trainer};
use crate::service::{feed, Registry, ServiceHandle};
use crate::telemetry;
use admission::{Admission, Key};
use checkpoint::{Counters, RunState};

/// The compute side of a run: built by [`crate::backend`] (or by tests).
pub struct Engines<T: Trainer> {
    /// The trainer (moves to the learner thread).
    pub trainer: T,
    /// The weights the rollout engine starts from (those of `state.version`).
    pub weights: Snapshot,
    /// Token ids that end a generation.
    pub stop_token_ids: Vec<u32>,
    /// The tokenizer.
    pub codec: SharedCodec,
}

/// Services shared with the actors.
pub struct Services {
    /// Task types.
    pub registry: Arc<TaskRegistry>,
    /// Sandboxed executor.
    pub executor: Arc<Executor>,
    /// Held-out sets the evaluator scores every `evaluator.every` steps.
    pub benchmarks: Arc<Vec<Benchmark>>,
    /// User actors replacing built-in ones by name ([`crate::PipelineBuilder::replace_actor`]).
    pub replacements: Vec<Replacement>,
    /// Several machines: the head whose executor members validate the proposals (instead of
    /// the local executor actor alone).
    pub cluster: Option<Arc<crate::cluster::head::ClusterHead>>,
}

/// How a run ended.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunOutcome {
    /// Steps completed (over the whole run, resumes included).
    pub steps: u64,
    /// Policy version at the end.
    pub version: PolicyVersion,
    /// Worker restarts over the whole run.
    pub restarts: BTreeMap<String, u64>,
    /// Wall time of each step completed in this process (learner report to report).
    pub step_seconds: Vec<f64>,
    /// Per step: share of it the learner thread waited for its batch.
    pub trainer_idle: Vec<f64>,
    /// Per step: share of it the rollout engine had nothing to decode.
    pub rollout_idle: Vec<f64>,
    /// Per step: rollouts in the trained batch.
    pub samples: Vec<u64>,
}

/// The training sampling settings of a config, stopping at `stop_token_ids`.
pub fn train_sampling(cfg: &Config, stop_token_ids: Vec<u32>) -> SamplingParams {
    let s = &cfg.raw.sampling;
    SamplingParams {
        temperature: s.temperature as f32,
        top_p: s.top_p as f32,
        top_k: s.top_k,
        max_new_tokens: s.max_new_tokens,
        stop_token_ids,
        seed: 0,
        use_cache: true,
    }
}

/// The evaluator's decoding settings of a config.
pub fn eval_settings(cfg: &Config, stop_token_ids: Vec<u32>) -> EvalSettings {
    let ev = &cfg.raw.evaluator;
    EvalSettings {
        samples: ev.samples,
        params: SamplingParams {
            temperature: ev.temperature as f32,
            top_p: 1.0,
            top_k: 0,
            max_new_tokens: ev.max_new_tokens,
            stop_token_ids,
            seed: 0,
            use_cache: true,
        },
        seed: cfg.raw.run.seed ^ 0xE7A1,
    }
}

/// The batch composition of a config: slots per batch of every (task kind, role) key.
pub fn quotas(cfg: &Config) -> BTreeMap<Key, u64> {
    let sp = &cfg.raw.selfplay;
    match sp.mode {
        config::Mode::Azr => {
            let mut q = BTreeMap::new();
            for &kind in &sp.task_kinds {
                if sp.train_propose {
                    q.insert((kind, Role::Propose), sp.propose_batch as u64);
                }
                q.insert((kind, Role::Solve), sp.solve_batch as u64);
            }
            q
        }
        config::Mode::Rlvr => {
            BTreeMap::from([((TaskKind::Math, Role::Solve), cfg.raw.rlvr.batch as u64)])
        }
    }
}

/// A fresh run state.
pub fn fresh_state(seed: u64) -> RunState {
    use rand::SeedableRng;
    RunState {
        step: 0,
        version: 0,
        rng: ChaCha8Rng::seed_from_u64(seed),
        mode_state: serde_json::Value::Null,
        counters: Counters::default(),
        restarts: BTreeMap::new(),
    }
}

/// Samples `(depth, capacity)` of a channel.
type Probe = Box<dyn Fn() -> (usize, usize) + Send + Sync>;

fn probe<T: Send + 'static>(tx: &flume::Sender<T>) -> Probe {
    let tx = tx.clone();
    Box::new(move || (tx.len(), tx.capacity().unwrap_or(0)))
}

/// Run training until `run.max_steps`, a stop request on `stop`, or a fatal error.
///
/// `state` is the restored state of a resumed run or the fresh state of a new one; `source`
/// holds the buffers or the RLVR examples (restored from `state.mode_state` by the caller).
pub async fn run<T: Trainer>(
    cfg: Arc<Config>,
    engines: Engines<T>,
    services: Services,
    state: RunState,
    source: Source,
    mut stop: watch::Receiver<bool>,
    progress: Option<indicatif::ProgressBar>,
) -> Result<RunOutcome> {
    let run_cfg = &cfg.raw.run;
    let run_dir = cfg.run_dir().to_path_buf();
    std::fs::create_dir_all(&run_dir)
        .with_context(|| format!("creating run dir {}", run_dir.display()))?;
    std::fs::write(run_dir.join("config.toml"), cfg.to_toml())?;
    let timeout = Duration::from_secs(run_cfg.request_timeout_s);
    let cap = run_cfg.channel_capacity;

    // Evaluations score pinned snapshots: the starting weights (`evaluator.at_start`) and
    // those of every version an evaluation is due at, kept as the learner thread publishes them.
    let eval_every = if services.benchmarks.is_empty() {
        0
    } else {
        cfg.raw.evaluator.every
    };
    let eval_at_start =
        !services.benchmarks.is_empty() && cfg.raw.evaluator.at_start && state.step == 0;
    let published = Published::default();
    if eval_at_start {
        published.keep(state.version, engines.weights.clone());
    }

    // The rollout engine and the learner thread.
    let first_weights = services.cluster.as_ref().map(|_| engines.weights.clone());
    let (engine, engine_join) =
        compute::spawn_engine(engines.weights, state.version, cfg.raw.engine.clone())
            .context("starting the rollout engine (config section `[engine]`)")?;
    // Several machines: generations go to the least-loaded engine, this one or a rollout
    // node's, and every published version is sent to the nodes (see `crate::cluster::rollout`).
    let rollout = match (&services.cluster, &first_weights) {
        (Some(head), Some(w)) => Some(
            head.rollout_router(engine.clone(), state.version, w)
                .context("starting the cluster's rollout router")?,
        ),
        _ => None,
    };
    drop(first_weights);
    if let Some(head) = &services.cluster {
        // `--cluster-min-nodes`: rollout nodes get their first snapshot before training starts.
        if let Err(e) = head.wait_for_rollout_weights().await {
            engine.shutdown();
            let _ = tokio::task::spawn_blocking(move || engine_join.join()).await;
            return Err(anyhow::Error::from(e).context("waiting for the cluster's rollout nodes"));
        }
    }
    let quotas = quotas(&cfg);
    let max_batches = (run_cfg.max_steps > 0).then_some(run_cfg.max_steps);
    let e = engine.clone();
    let admission = Arc::new(Admission::new(
        quotas.clone(),
        run_cfg.staleness,
        state.step,
        max_batches,
        Box::new(move || e.version()),
    ));
    let (batches_tx, batches_rx) = flume::bounded::<LearnerCmd>(1);
    let (report_tx, mut reports) = mpsc::unbounded_channel::<StepReport>();
    let a = admission.clone();
    let learner_join = compute::learner::spawn(
        engines.trainer,
        batches_rx,
        engine.clone(),
        Box::new({
            let published = published.clone();
            let rollout = rollout.clone();
            move |version, weights| {
                if let (Some(r), Some(w)) = (&rollout, weights) {
                    r.publish(version, w);
                }
                a.notify();
                if let Some(w) = weights.filter(|_| eval_every > 0 && version % eval_every == 0) {
                    published.keep(version, w.clone());
                }
            }
        }),
        report_tx,
        state.version,
    )?;

    // Channels.
    let (propose_tx, propose_rx) = flume::bounded(cap);
    let (solve_tx, solve_rx) = flume::bounded(cap);
    let (proposals_tx, proposals_rx) = flume::bounded(cap);
    let (estimates_tx, estimates_rx) = flume::bounded(cap);
    let (answers_tx, answers_rx) = flume::bounded(cap);
    let (rollouts_tx, rollouts_rx) = flume::bounded(run_cfg.learner_queue);
    let (eval_tx, eval_rx) = flume::bounded::<EvalRequest>(4);
    let e = engine.clone();
    let mut probes: Vec<(&'static str, Probe)> = vec![
        ("propose_jobs", probe(&propose_tx)),
        ("solve_jobs", probe(&solve_tx)),
        ("proposals", probe(&proposals_tx)),
        ("estimates", probe(&estimates_tx)),
        ("answers", probe(&answers_tx)),
        ("rollouts", probe(&rollouts_tx)),
        ("batches", probe(&batches_tx)),
        ("eval", probe(&eval_tx)),
    ];
    let waiting = cfg.raw.engine.max_waiting;
    probes.push(("engine", Box::new(move || (e.stats().waiting, waiting))));

    let ctx = Arc::new(Ctx {
        registry: services.registry.clone(),
        executor: services.executor.clone(),
        codec: engines.codec,
        engine: engine.clone(),
        sampling: train_sampling(&cfg, engines.stop_token_ids.clone()),
        rewards: cfg.raw.tasks.rewards.clone(),
        faults: FaultPlan::new(
            cfg.raw.faults.panic_actor.clone(),
            cfg.raw.faults.panic_at_step,
        ),
        seed: run_cfg.seed,
        train_estimates: cfg.raw.selfplay.train_estimator_samples,
        greedy_probe: cfg.raw.tasks.buffer.prefer_greedy_miss,
        staleness: run_cfg.staleness,
        rollout,
    });
    let (fatal_tx, mut fatal) = watch::channel::<Option<String>>(None);
    let (done_tx, mut done) = watch::channel(None);
    let restarts = Arc::new(Mutex::new(state.restarts.clone()));
    let evals_pending = Arc::new(AtomicUsize::new(0));

    // The actors, as data: a registry of factories.
    let store_h = ServiceHandle::<StoreMsg>::new(actors::store::NAME, timeout);
    let mut registry = Registry::new();
    registry
        .add(Arc::new(ExecutorActor::new(
            ctx.clone(),
            estimates_tx.clone(),
            answers_tx.clone(),
        )))
        .add(Arc::new(Reward::new(ctx.clone(), rollouts_tx.clone())))
        .add(Arc::new(LearnerActor::new(
            LearnerSettings {
                run_dir: run_dir.clone(),
                checkpoint_every: run_cfg.checkpoint_every,
                keep_every: run_cfg.keep_every,
                max_steps: run_cfg.max_steps,
                dump_rollouts: run_cfg.dump_rollouts,
                eval_every,
                max_new_tokens: cfg.raw.sampling.max_new_tokens,
            },
            LearnerState::new(quotas.clone(), &state),
            batches_tx,
            eval_tx.clone(),
            store_h.clone(),
            engine.clone(),
            admission.clone(),
            restarts.clone(),
            fatal_tx.clone(),
            done_tx,
            progress.clone(),
            evals_pending.clone(),
        )))
        .add(Arc::new(
            Evaluator::new(
                ctx.clone(),
                services.benchmarks.clone(),
                eval_settings(&cfg, engines.stop_token_ids),
                published,
                cfg.raw.engine.clone(),
                run_dir.join("eval.jsonl"),
                evals_pending.clone(),
            )
            .with_cluster(services.cluster.clone()),
        ))
        .add(Arc::new(TaskStore::new(
            ctx.clone(),
            StoreState {
                source,
                rng: state.rng.clone(),
            },
            propose_tx.clone(),
            solve_tx.clone(),
            rollouts_tx.clone(),
        )))
        .add(Arc::new(Estimator::new(
            ctx.clone(),
            store_h.clone(),
            answers_tx.clone(),
        )))
        .add(Arc::new(Solver::new(ctx.clone(), answers_tx.clone())))
        .add(Arc::new(Proposer::new(
            ctx.clone(),
            proposals_tx.clone(),
            answers_tx.clone(),
        )));
    // User replacements, wired to the same context and channels as the actors they replace.
    let wiring = Wiring {
        ctx: ctx.clone(),
        propose_jobs: propose_tx.clone(),
        solve_jobs: solve_tx.clone(),
        proposals: proposals_tx.clone(),
        estimates: estimates_tx.clone(),
        answers: answers_tx.clone(),
        rollouts: rollouts_tx.clone(),
        request_timeout: timeout,
    };
    for build in services.replacements {
        let factory = build(&wiring);
        let name = factory.name;
        if let Err(e) = registry.replace(factory) {
            drop((registry, wiring, ctx));
            shutdown_threads(&engine, engine_join, learner_join).await;
            return Err(e.into());
        }
        tracing::info!(actor = name, "actor replaced");
    }
    drop(wiring);
    debug_assert!(
        registry
            .names()
            .iter()
            .all(|n| azr_core::metrics::ACTORS.contains(n)),
        "every actor name is in the metric catalogue's actor list"
    );
    // Several machines: the cluster's dispatcher validates proposals (see `crate::cluster`).
    let cluster_exec = services
        .cluster
        .clone()
        .map(|head| (head, estimates_tx.clone(), answers_tx.clone()));
    if eval_at_start {
        evals_pending.fetch_add(1, Ordering::SeqCst);
        let start = EvalRequest {
            step: None,
            version: state.version,
        };
        if eval_tx.try_send(start).is_err() {
            evals_pending.fetch_sub(1, Ordering::SeqCst);
        }
    }
    // The channels live in the actors from here on (closing when they stop).
    drop((
        propose_tx,
        solve_tx,
        proposals_tx,
        estimates_tx,
        answers_tx,
        rollouts_tx,
        eval_tx,
    ));

    let (sup, sup_join) = Actor::spawn(
        Some(format!("azr-supervisor-{}", std::process::id())),
        Supervisor,
        SupervisorArgs {
            registry,
            budget: run_cfg.restart_budget,
            restarts: restarts.clone(),
            fatal: fatal_tx.clone(),
        },
    )
    .await
    .context("starting the supervisor")?;
    // Workers are spawned in `post_start`; one round trip means all are registered.
    ractor::call!(sup, SupervisorMsg::Restarts).context("waiting for the actors to start")?;

    // Feeders: channel -> actor, with bounded concurrency and counted retries.
    let wide = 256;
    let workers = cfg.raw.executor.workers.max(1);
    let mut tasks: Vec<tokio::task::JoinHandle<()>> = vec![
        feed(
            propose_rx,
            wide,
            ServiceHandle::<ProposerMsg>::new(actors::proposer::NAME, timeout),
            |job, reply| ProposerMsg::Propose { job, reply },
            fatal_tx.clone(),
        ),
        feed(
            solve_rx,
            wide,
            ServiceHandle::<SolverMsg>::new(actors::solver::NAME, timeout),
            |job, reply| SolverMsg::Solve { job, reply },
            fatal_tx.clone(),
        ),
        match cluster_exec {
            Some((head, etx, rtx)) => {
                head.dispatch_executor(proposals_rx, etx, rtx, fatal_tx.clone())
            }
            None => feed(
                proposals_rx,
                workers,
                ServiceHandle::<ExecutorMsg>::new(actors::executor::NAME, timeout),
                |item, reply| ExecutorMsg::Validate { item, reply },
                fatal_tx.clone(),
            ),
        },
        feed(
            estimates_rx,
            wide,
            ServiceHandle::<EstimatorMsg>::new(actors::estimator::NAME, timeout),
            |job, reply| EstimatorMsg::Estimate { job, reply },
            fatal_tx.clone(),
        ),
        feed(
            answers_rx,
            workers * 2,
            ServiceHandle::<RewardMsg>::new(actors::reward::NAME, timeout),
            |item, reply| RewardMsg::Score { item, reply },
            fatal_tx.clone(),
        ),
        feed(
            rollouts_rx,
            1,
            ServiceHandle::<LearnerMsg>::new(actors::learner::NAME, timeout),
            |scored, reply| LearnerMsg::Accept { scored, reply },
            fatal_tx.clone(),
        ),
        feed(
            eval_rx,
            1,
            ServiceHandle::<EvaluatorMsg>::new(actors::evaluator::NAME, timeout),
            |req, reply| EvaluatorMsg::Evaluate { req, reply },
            fatal_tx.clone(),
        ),
    ];
    // Learner reports -> the learner actor.
    let learner_h = ServiceHandle::<LearnerMsg>::new(actors::learner::NAME, timeout);
    let (lh, ft) = (learner_h.clone(), fatal_tx.clone());
    tasks.push(tokio::spawn(async move {
        while let Some(r) = reports.recv().await {
            let res = lh
                .request(|reply| LearnerMsg::Report {
                    report: r.clone(),
                    reply,
                })
                .await;
            if let Err(e) = res {
                let _ = ft.send(Some(e.to_string()));
            }
        }
    }));
    // One admission source per batch key.
    for key in quotas.keys().copied() {
        let (adm, store, ft) = (admission.clone(), store_h.clone(), fatal_tx.clone());
        tasks.push(tokio::spawn(async move {
            while let Some(slot) = adm.acquire(key).await {
                let r = store
                    .request(|reply| StoreMsg::Produce { slot, reply })
                    .await;
                if let Err(e) = r {
                    let _ = ft.send(Some(e.to_string()));
                    break;
                }
            }
        }));
    }
    // Queue depths.
    tasks.push(tokio::spawn(async move {
        loop {
            for (name, p) in &probes {
                let (depth, capacity) = p();
                telemetry::queue(name, depth, capacity);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }));

    tracing::info!(
        start_step = state.step,
        version = state.version,
        staleness = run_cfg.staleness,
        max_steps = run_cfg.max_steps,
        batch = quotas.values().sum::<u64>(),
        run_dir = %run_dir.display(),
        "training started"
    );

    // Wait for the learner to finish, a fatal error or a stop request.
    let mut stopping = false;
    let result: Result<actors::learner::Finished> = loop {
        tokio::select! {
            r = done.changed() => {
                if r.is_err() { break Err(anyhow::anyhow!("the learner actor is gone")); }
                if let Some(f) = done.borrow().clone() { break Ok(f); }
            }
            r = fatal.changed() => {
                if r.is_err() { break Err(anyhow::anyhow!("the supervisor is gone")); }
                if let Some(reason) = fatal.borrow().clone() { break Err(anyhow::anyhow!(reason)); }
            }
            r = stop.changed(), if !stopping => {
                if r.is_ok() && *stop.borrow() {
                    stopping = true;
                    admission.close();
                    if let Err(e) = learner_h.request(|reply| LearnerMsg::Finish { reply }).await {
                        break Err(anyhow::anyhow!(e.to_string()));
                    }
                }
            }
        }
    };

    // Shutdown: admit nothing, let due evaluations finish, stop the actors and threads.
    admission.close();
    if result.is_ok() {
        let t0 = std::time::Instant::now();
        while evals_pending.load(Ordering::SeqCst) > 0 && t0.elapsed() < timeout {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let final_restarts = restarts.lock().map(|r| r.clone()).unwrap_or_default();
    let _ = sup
        .call(SupervisorMsg::Shutdown, Some(Duration::from_secs(15)))
        .await;
    sup.stop(None);
    let _ = sup_join.await;
    for t in &tasks {
        t.abort();
    }
    drop(ctx);
    shutdown_threads(&engine, engine_join, learner_join).await;
    let f = result?;
    Ok(RunOutcome {
        steps: f.steps,
        version: f.version,
        restarts: final_restarts,
        step_seconds: f.step_seconds,
        trainer_idle: f.trainer_idle,
        rollout_idle: f.rollout_idle,
        samples: f.samples,
    })
}

/// Stop the engine and wait (bounded) for both compute threads.
async fn shutdown_threads(
    engine: &EngineHandle,
    engine_join: std::thread::JoinHandle<()>,
    learner_join: std::thread::JoinHandle<()>,
) {
    engine.shutdown();
    let joined = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::task::spawn_blocking(move || {
            let _ = engine_join.join();
            let _ = learner_join.join();
        }),
    )
    .await;
    if joined.is_err() {
        tracing::warn!("compute threads did not stop within 30 s; leaving them");
    }
}
