//! The learner actor: assembles scored slots into batches of the configured task x role
//! composition ([`crate::pipeline::batch`]), hands each full batch to the learner thread (a full
//! thread queue suspends it, and with it every producer upstream), and on every update report
//! logs the step line, records metrics, dumps the batch, commits checkpoints, asks for due
//! evaluations and tells the run when it is done. It is stateful: its partial batches cannot be
//! rebuilt after a crash, so a crash ends the run (resume from the last checkpoint).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use azr_core::oneshot::history::EpochTally;
use azr_core::types::{PolicyVersion, Role, ScoredRollout};
use ractor::RpcReplyPort;
use tokio::sync::{oneshot, watch};

use super::store::StoreMsg;
use super::Scored;
use crate::compute::learner::{LearnerCmd, StepReport};
use crate::compute::EngineHandle;
use crate::pipeline::admission::{Admission, Key};
use crate::pipeline::batch::Assembler;
use crate::pipeline::checkpoint::{self, Counters, Pending, RunState};
use crate::pipeline::dump::{self, DumpRecord};
use crate::pipeline::summary::StepSummary;
use crate::service::{Service, ServiceHandle};
use crate::telemetry;

/// Registered name.
pub const NAME: &str = "learner";

/// Errors of the learner actor.
#[derive(Debug, thiserror::Error)]
pub enum LearnerError {
    /// The learner thread is gone.
    #[error("the learner thread is gone")]
    ThreadGone,
    /// The state was taken by a previous instance (the actor is stateful).
    #[error("the learner's state is gone (it crashed); resume from the last checkpoint")]
    StateLost,
    /// Writing a dump or checkpoint failed.
    #[error("{0}")]
    Io(String),
}

/// A request to evaluate the published weights of `version`.
#[derive(Debug, Clone, Copy)]
pub struct EvalRequest {
    /// The step just trained (`None`: the starting weights, before any step).
    pub step: Option<u64>,
    /// The version to score (the one that step published).
    pub version: PolicyVersion,
}

/// How a run ended, as the learner saw it.
#[derive(Debug, Clone, Default)]
pub struct Finished {
    /// Steps completed (over the whole run).
    pub steps: u64,
    /// Policy version at the end.
    pub version: PolicyVersion,
    /// Wall seconds between consecutive update reports, in this process.
    pub step_seconds: Vec<f64>,
    /// Per step: share of the interval the learner thread waited for its batch.
    pub trainer_idle: Vec<f64>,
    /// Per step: share of the interval the rollout engine had nothing to decode.
    pub rollout_idle: Vec<f64>,
    /// Rollouts per trained batch, per step.
    pub samples: Vec<u64>,
    /// Final state (for the caller's summary).
    pub counters: Counters,
}

/// Settings of the learner actor.
#[derive(Debug, Clone)]
pub struct LearnerSettings {
    /// Run directory (dumps, checkpoints).
    pub run_dir: PathBuf,
    /// Checkpoint every N steps (0 = only at the end).
    pub checkpoint_every: u64,
    /// Also keep the checkpoints of steps that are multiples of N (0 = only the two newest).
    pub keep_every: u64,
    /// Stop after this many steps (0 = never).
    pub max_steps: u64,
    /// Write the rollout dumps.
    pub dump_rollouts: bool,
    /// Evaluate every N steps (0 = never).
    pub eval_every: u64,
    /// Response budget (truncation counts).
    pub max_new_tokens: usize,
}

/// Per sample: reward, rewarded, hit, response tokens.
type SampleFacts = (f32, bool, bool, usize);

struct SentBatch {
    summary: StepSummary,
    tally: Option<EpochTally>,
    checkpoint: Option<Pending>,
    samples: u64,
}

/// State of the learner actor.
pub struct LearnerState {
    asm: Assembler,
    sent: BTreeMap<u64, SentBatch>,
    counters: Counters,
    step: u64,
    version: PolicyVersion,
    checkpointed: u64,
    last_report: Instant,
    finishing: bool,
    engine_last: (f64, f64),
    finished: Finished,
}

impl LearnerState {
    /// The state of a run resumed at `state` (or fresh), batches of `quotas`.
    pub fn new(quotas: BTreeMap<Key, u64>, state: &RunState) -> Self {
        Self {
            asm: Assembler::new(quotas, state.step),
            sent: BTreeMap::new(),
            counters: state.counters.clone(),
            step: state.step,
            version: state.version,
            checkpointed: state.step,
            last_report: Instant::now(),
            finishing: false,
            engine_last: Default::default(),
            finished: Finished::default(),
        }
    }
}

/// Messages of the learner actor.
pub enum LearnerMsg {
    /// One scored slot.
    Accept {
        /// The slot.
        scored: Scored,
        /// Reply (once taken; a full batch is queued to the thread first).
        reply: RpcReplyPort<Result<(), LearnerError>>,
    },
    /// The learner thread's report of one update.
    Report {
        /// The report.
        report: StepReport,
        /// Reply.
        reply: RpcReplyPort<Result<(), LearnerError>>,
    },
    /// Graceful stop: train nothing new, checkpoint after the updates in flight, then finish.
    Finish {
        /// Reply.
        reply: RpcReplyPort<Result<(), LearnerError>>,
    },
}

/// The learner service.
pub struct LearnerActor {
    settings: LearnerSettings,
    initial: Mutex<Option<LearnerState>>,
    batches_tx: flume::Sender<LearnerCmd>,
    eval_tx: flume::Sender<EvalRequest>,
    store: ServiceHandle<StoreMsg>,
    engine: EngineHandle,
    admission: Arc<Admission>,
    restarts: Arc<Mutex<BTreeMap<String, u64>>>,
    fatal: watch::Sender<Option<String>>,
    done: watch::Sender<Option<Finished>>,
    progress: Option<indicatif::ProgressBar>,
    evals_pending: Arc<AtomicUsize>,
}

impl LearnerActor {
    /// A learner actor; `done` receives the outcome, `fatal` a run-ending error.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        settings: LearnerSettings,
        state: LearnerState,
        batches_tx: flume::Sender<LearnerCmd>,
        eval_tx: flume::Sender<EvalRequest>,
        store: ServiceHandle<StoreMsg>,
        engine: EngineHandle,
        admission: Arc<Admission>,
        restarts: Arc<Mutex<BTreeMap<String, u64>>>,
        fatal: watch::Sender<Option<String>>,
        done: watch::Sender<Option<Finished>>,
        progress: Option<indicatif::ProgressBar>,
        evals_pending: Arc<AtomicUsize>,
    ) -> Self {
        Self {
            settings,
            initial: Mutex::new(Some(state)),
            batches_tx,
            eval_tx,
            store,
            engine,
            admission,
            restarts,
            fatal,
            done,
            progress,
            evals_pending,
        }
    }

    fn due(&self, steps_done: u64) -> bool {
        let s = &self.settings;
        (s.checkpoint_every > 0 && steps_done % s.checkpoint_every == 0)
            || (s.max_steps > 0 && steps_done == s.max_steps)
    }

    /// Send every complete batch to the learner thread, in order.
    async fn send_ready(&self, st: &mut LearnerState) -> Result<(), LearnerError> {
        while !st.finishing {
            let Some((j, slots)) = st.asm.pop_ready() else {
                break;
            };
            let mut summary = StepSummary::default();
            let mut records: Vec<DumpRecord> = Vec::new();
            let mut rollouts: Vec<ScoredRollout> = Vec::new();
            let mut tally: Option<EpochTally> = None;
            let mut per_key: BTreeMap<Key, Vec<SampleFacts>> = BTreeMap::new();
            let mut samples = 0u64;
            for s in slots {
                for x in s.samples {
                    samples += 1;
                    // Keyed by the sample's own role: a proposal slot may carry the
                    // estimator's solver samples (`selfplay.train_estimator_samples`).
                    let key = (x.rollout.task, x.rollout.role);
                    let e = summary.entry(key.0, key.1);
                    e.count += 1;
                    e.tokens += x.rollout.response_ids.len();
                    e.hits += usize::from(x.hit);
                    if x.rewarded {
                        e.reward_sum += f64::from(x.rollout.reward);
                        if key.1 == Role::Propose && x.hit {
                            e.learnability_sum += f64::from(x.rollout.reward);
                        }
                    } else {
                        e.unrewarded += 1;
                    }
                    if let Some(ex) = &s.example {
                        tally.get_or_insert_with(EpochTally::new).add(ex, x.hit);
                    }
                    per_key.entry(key).or_default().push((
                        x.rollout.reward,
                        x.rewarded,
                        x.hit,
                        x.rollout.response_ids.len(),
                    ));
                    records.push(x.record);
                    if x.rewarded {
                        rollouts.push(x.rollout);
                    }
                }
            }
            for ((kind, role), xs) in &per_key {
                let rewards: Vec<f32> = xs.iter().filter(|x| x.1).map(|x| x.0).collect();
                if !rewards.is_empty() {
                    telemetry::rewards(*kind, *role, &rewards);
                }
                let lengths: Vec<usize> = xs.iter().map(|x| x.3).collect();
                let max = self.settings.max_new_tokens;
                telemetry::responses(
                    *kind,
                    *role,
                    &lengths,
                    lengths.iter().filter(|&&l| l >= max).count(),
                );
                let hits = xs.iter().filter(|x| x.2).count();
                match role {
                    Role::Solve => telemetry::answers(*kind, *role, xs.len(), hits),
                    Role::Propose => {
                        let learn: Vec<f32> =
                            xs.iter().filter(|x| x.1 && x.2).map(|x| x.0).collect();
                        telemetry::proposals(*kind, xs.len(), &learn);
                    }
                }
                telemetry::rollouts_consumed(*kind, *role, xs.len());
            }
            telemetry::novel_proposals(&records);
            if self.settings.dump_rollouts {
                dump::write(&self.settings.run_dir, j, &records)
                    .map_err(|e| LearnerError::Io(format!("{e:#}")))?;
            }
            let checkpoint = if self.due(j + 1) {
                Some(
                    checkpoint::begin(&self.settings.run_dir, j + 1)
                        .map_err(|e| LearnerError::Io(format!("{e:#}")))?,
                )
            } else {
                None
            };
            let save = checkpoint.as_ref().map(|p| p.dir().to_path_buf());
            st.sent.insert(
                j,
                SentBatch {
                    summary,
                    tally,
                    checkpoint,
                    samples,
                },
            );
            self.batches_tx
                .send_async(LearnerCmd::Train {
                    batch: j,
                    rollouts,
                    save,
                })
                .await
                .map_err(|_| LearnerError::ThreadGone)?;
        }
        Ok(())
    }

    async fn on_report(&self, st: &mut LearnerState, r: StepReport) -> Result<(), LearnerError> {
        let stats = match &r.stats {
            Ok(s) => s.clone(),
            Err(e) => {
                let _ = self.fatal.send(Some(format!(
                    "learner update of step {} failed: {e}",
                    r.step
                )));
                return Ok(());
            }
        };
        let sent = st.sent.remove(&r.step);
        let (summary, tally, pending, samples) = match sent {
            Some(b) => (b.summary, b.tally, b.checkpoint, b.samples),
            None => (StepSummary::default(), None, None, 0),
        };
        st.version = r.version;
        st.step = r.step + 1;
        self.admission.notify();
        let wall = st.last_report.elapsed();
        st.last_report = Instant::now();
        let c = &mut st.counters;
        c.sequences += summary.sequences() as u64;
        c.tokens += summary.tokens() as u64;
        for ((_, role), s) in &summary.sub {
            match role {
                Role::Propose => {
                    c.proposals += s.count as u64;
                    c.valid_proposals += s.hits as u64;
                }
                Role::Solve => {
                    c.answers += s.count as u64;
                    c.correct_answers += s.hits as u64;
                }
            }
        }
        // Idle shares over this step's interval.
        let trainer_idle = r.idle.as_secs_f64() / (r.idle + r.wall).as_secs_f64().max(1e-9);
        let es = self.engine.stats();
        let (busy0, idle0) = st.engine_last;
        st.engine_last = (es.busy_secs, es.idle_secs);
        let (db, di) = (
            (es.busy_secs - busy0).max(0.0),
            (es.idle_secs - idle0).max(0.0),
        );
        let rollout_idle = if db + di > 0.0 { di / (db + di) } else { 0.0 };
        telemetry::staleness(&r.lags);
        telemetry::learner(&stats);
        telemetry::idle(trainer_idle, rollout_idle);
        let process = telemetry::step_done(st.step, r.version, wall);
        let f = &mut st.finished;
        f.step_seconds.push(wall.as_secs_f64());
        f.trainer_idle.push(trainer_idle);
        f.rollout_idle.push(rollout_idle);
        f.samples.push(samples);
        let rss_mib = process.map_or(f64::NAN, |p| p.resident_bytes as f64 / (1024.0 * 1024.0));
        let line = format!(
            "step {:>5} v{} | {} | pg {:+.4} ent {:.3} gn {:.2e} | is {:.2}±{:.2} ess {:.2} | wait {:.2}s learn {:.2}s step {:.2}s | stale {} | rss {:.0} MiB",
            r.step,
            r.version,
            summary.compact(),
            stats.pg_loss,
            stats.entropy,
            stats.grad_norm,
            stats.importance_mean,
            stats.importance_std,
            stats.ess,
            r.idle.as_secs_f64(),
            r.wall.as_secs_f64(),
            wall.as_secs_f64(),
            r.lags.iter().copied().max().unwrap_or(0),
            rss_mib,
        );
        match &self.progress {
            Some(pb) => {
                pb.set_position(st.step);
                pb.println(&line);
            }
            None => tracing::info!("{line}"),
        }
        // One JSON line per step, for plots and scripts.
        let row = serde_json::json!({
            "step": r.step,
            "version": r.version,
            "sequences": summary.sequences(),
            "reward_mean": summary
                .sub
                .iter()
                .map(|((k, role), s)| (format!("{k}/{role}"), s.reward_mean()))
                .collect::<BTreeMap<_, _>>(),
            "pg_loss": stats.pg_loss,
            "kl": stats.kl,
            "kl_reference": stats.kl_reference,
            "entropy": stats.entropy,
            "grad_norm": stats.grad_norm,
            "lr": stats.lr,
            "importance_weight_mean": stats.importance_mean,
            "importance_weight_std": stats.importance_std,
            "effective_sample_size": stats.ess,
            "staleness_max": r.lags.iter().copied().max().unwrap_or(0),
            "trainer_idle_ratio": trainer_idle,
            "rollout_idle_ratio": rollout_idle,
            "wall_s": wall.as_secs_f64(),
        });
        let path = self.settings.run_dir.join("train.jsonl");
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, format!("{row}\n").as_bytes()));
        if let Err(e) = written {
            tracing::warn!(path = %path.display(), error = %e, "cannot append the step row");
        }
        if let Some(t) = tally {
            let rec: Result<(), _> = self
                .store
                .request(|reply| StoreMsg::Record {
                    tally: t.clone(),
                    reply,
                })
                .await;
            if let Err(e) = rec {
                let _ = self.fatal.send(Some(e.to_string()));
            }
        }
        match (r.saved, pending) {
            (Some(Ok(_)), Some(p)) => self.commit(st, p).await?,
            (Some(Err(e)), _) => {
                let _ = self.fatal.send(Some(format!("checkpoint failed: {e}")));
            }
            _ => {}
        }
        let every = self.settings.eval_every;
        if every > 0 && (r.step + 1) % every == 0 {
            let tx = self.eval_tx.clone();
            let req = EvalRequest {
                step: Some(r.step),
                version: r.version,
            };
            self.evals_pending.fetch_add(1, Ordering::SeqCst);
            let pending = self.evals_pending.clone();
            tokio::spawn(async move {
                if tx.send_async(req).await.is_err() {
                    pending.fetch_sub(1, Ordering::SeqCst);
                }
            });
        }
        let max = self.settings.max_steps;
        if (max > 0 && st.step >= max) || (st.finishing && st.sent.is_empty()) {
            self.finish(st).await?;
        }
        Ok(())
    }

    /// Write `state.json` of a checkpoint whose weights the thread saved.
    async fn commit(&self, st: &mut LearnerState, p: Pending) -> Result<(), LearnerError> {
        let t0 = Instant::now();
        let snap = self
            .store
            .request(|reply| StoreMsg::Snapshot { reply })
            .await
            .map_err(|e| LearnerError::Io(e.to_string()))?;
        let state = RunState {
            step: st.step,
            version: st.version,
            rng: snap.rng,
            mode_state: snap.mode_state,
            counters: st.counters.clone(),
            restarts: self.restarts.lock().map(|r| r.clone()).unwrap_or_default(),
        };
        let path = p
            .commit(&state, self.settings.keep_every)
            .map_err(|e| LearnerError::Io(format!("{e:#}")))?;
        st.checkpointed = st.step;
        telemetry::checkpoint_written();
        telemetry::phase("checkpoint", t0.elapsed());
        tracing::info!(step = st.step, path = %path.display(), "checkpoint written");
        Ok(())
    }

    /// Final checkpoint (unless this step has one) and the outcome.
    async fn finish(&self, st: &mut LearnerState) -> Result<(), LearnerError> {
        st.finishing = true;
        let none_yet = checkpoint::latest(&self.settings.run_dir)
            .map_err(|e| LearnerError::Io(format!("{e:#}")))?
            .is_none();
        if st.checkpointed < st.step || none_yet {
            let p = checkpoint::begin(&self.settings.run_dir, st.step)
                .map_err(|e| LearnerError::Io(format!("{e:#}")))?;
            let (reply, rx) = oneshot::channel();
            self.batches_tx
                .send_async(LearnerCmd::Save {
                    dir: p.dir().to_path_buf(),
                    reply,
                })
                .await
                .map_err(|_| LearnerError::ThreadGone)?;
            rx.await
                .map_err(|_| LearnerError::ThreadGone)?
                .map_err(|e| LearnerError::Io(e.to_string()))?;
            self.commit(st, p).await?;
        }
        let mut f = std::mem::take(&mut st.finished);
        f.steps = st.step;
        f.version = st.version;
        f.counters = st.counters.clone();
        let _ = self.done.send(Some(f));
        Ok(())
    }
}

impl Service for LearnerActor {
    type Msg = LearnerMsg;
    type State = LearnerState;
    type Error = LearnerError;

    fn name(&self) -> &'static str {
        NAME
    }

    fn stateful(&self) -> bool {
        true
    }

    async fn init(&self) -> Result<LearnerState, LearnerError> {
        let st = self
            .initial
            .lock()
            .ok()
            .and_then(|mut s| s.take())
            .ok_or(LearnerError::StateLost)?;
        let es = self.engine.stats();
        let mut st = st;
        st.engine_last = (es.busy_secs, es.idle_secs);
        Ok(st)
    }

    async fn handle(&self, msg: LearnerMsg, st: &mut LearnerState) -> Result<(), LearnerError> {
        match msg {
            LearnerMsg::Accept { scored, reply } => {
                let t0 = Instant::now();
                if let Err(e) = st.asm.insert(scored) {
                    tracing::warn!(error = %e, "scored slot dropped");
                }
                let r = self.send_ready(st).await;
                telemetry::busy(NAME, t0.elapsed());
                let _ = reply.send(r);
            }
            LearnerMsg::Report { report, reply } => {
                let r = self.on_report(st, report).await;
                let _ = reply.send(r);
            }
            LearnerMsg::Finish { reply } => {
                st.finishing = true;
                let r = if st.sent.is_empty() {
                    self.finish(st).await
                } else {
                    Ok(())
                };
                let _ = reply.send(r);
            }
        }
        Ok(())
    }
}
