//! The learner thread: owns the [`Trainer`] (weights + optimizer), takes one batch per step
//! from a bounded queue, updates, bumps the policy version and publishes a deep-copied
//! snapshot for the rollout side.

use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use azr_core::types::{PolicyVersion, ScoredRollout};
use tokio::sync::{mpsc, oneshot, watch};

use super::Published;
use crate::engine::{Trainer, UpdateStats};
use crate::telemetry;

/// A command for the learner thread.
pub enum LearnerCmd {
    /// Train on the rollouts of `step`.
    Train {
        /// Step index.
        step: u64,
        /// All sub-batches of the step, concatenated.
        rollouts: Vec<ScoredRollout>,
    },
    /// Save weights and optimizer state into a directory.
    Save {
        /// Target directory.
        dir: PathBuf,
        /// Done (or the error).
        reply: oneshot::Sender<Result<(), String>>,
    },
}

/// What the learner thread reports after each update.
#[derive(Debug, Clone)]
pub struct StepReport {
    /// Step index.
    pub step: u64,
    /// Policy version after the update.
    pub version: PolicyVersion,
    /// Update statistics, or the error.
    pub stats: Result<UpdateStats, String>,
    /// Wall time of the update.
    pub wall: Duration,
    /// Largest version lag of a rollout in the batch.
    pub staleness: u64,
}

/// Start the learner thread. Versions start at `start_version`; each update publishes
/// `version + 1` on `weights` and reports on `reports`.
pub fn spawn<T: Trainer>(
    mut trainer: T,
    rx: flume::Receiver<LearnerCmd>,
    weights: watch::Sender<Published<T::Weights>>,
    reports: mpsc::UnboundedSender<StepReport>,
    start_version: PolicyVersion,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("azr-learner".to_string())
        .spawn(move || {
            let mut version = start_version;
            let mut last_step: Option<u64> = None;
            let capacity = rx.capacity().unwrap_or(0);
            loop {
                let t_wait = Instant::now();
                let Ok(cmd) = rx.recv() else { break };
                telemetry::rollout_queue(rx.len(), capacity);
                match cmd {
                    LearnerCmd::Train { step, rollouts } => {
                        // A retried submission (the learner actor died after enqueueing)
                        // must not train twice on the same step.
                        if last_step.is_some_and(|l| step <= l) {
                            tracing::warn!(step, "duplicate learner batch ignored");
                            continue;
                        }
                        last_step = Some(step);
                        telemetry::phase("wait", t_wait.elapsed());
                        let t0 = Instant::now();
                        let lags: Vec<u64> = rollouts
                            .iter()
                            .map(|r| version.saturating_sub(r.policy_version))
                            .collect();
                        let staleness = lags.iter().copied().max().unwrap_or(0);
                        telemetry::staleness(&lags);
                        let stats = trainer.update(&rollouts);
                        telemetry::phase("update", t0.elapsed());
                        if let Ok(s) = &stats {
                            telemetry::learner(s);
                            let mut per_key = std::collections::BTreeMap::new();
                            for r in &rollouts {
                                *per_key.entry((r.task, r.role)).or_insert(0usize) += 1;
                            }
                            for ((task, role), n) in per_key {
                                telemetry::rollouts_consumed(task, role, n);
                            }
                            version += 1;
                            let t_pub = Instant::now();
                            match trainer.snapshot() {
                                Ok(w) => {
                                    weights.send_replace(Some((version, Arc::new(w))));
                                }
                                Err(e) => tracing::error!(error = %e, "cannot snapshot weights"),
                            }
                            telemetry::phase("publish", t_pub.elapsed());
                        }
                        let wall = t0.elapsed();
                        telemetry::busy("learner", wall);
                        let report = StepReport {
                            step,
                            version,
                            stats,
                            wall,
                            staleness,
                        };
                        if reports.send(report).is_err() {
                            break;
                        }
                    }
                    LearnerCmd::Save { dir, reply } => {
                        let t0 = Instant::now();
                        let r = trainer.save(&dir);
                        telemetry::busy("learner", t0.elapsed());
                        let _ = reply.send(r);
                    }
                }
            }
        })
}
