//! The learner thread: owns the [`Trainer`] (weights + optimizer), takes one full batch at a
//! time from a bounded queue (`batches`), updates, bumps the policy version and publishes a
//! snapshot to the rollout engine. Batch `j` is trained at version `j` and publishes `j + 1`.

use std::path::PathBuf;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use azr_core::model::Snapshot;
use azr_core::types::{PolicyVersion, ScoredRollout};
use tokio::sync::{mpsc, oneshot};

use super::EngineHandle;
use crate::engine::{TrainError, Trainer, UpdateStats};
use crate::telemetry;

/// A command for the learner thread.
pub enum LearnerCmd {
    /// Train on batch `batch` (its rewarded rollouts), then save into `save` when given.
    Train {
        /// Batch index (= the version it is trained at).
        batch: u64,
        /// Every rewarded rollout of the batch.
        rollouts: Vec<ScoredRollout>,
        /// Checkpoint directory to write weights + optimizer into after this update.
        save: Option<PathBuf>,
    },
    /// Save weights and optimizer state into a directory (after every queued batch).
    Save {
        /// Target directory.
        dir: PathBuf,
        /// Done (or the error).
        reply: oneshot::Sender<Result<(), TrainError>>,
    },
}

/// What the learner thread reports after each update.
#[derive(Debug, Clone)]
pub struct StepReport {
    /// Batch index (= step).
    pub step: u64,
    /// Policy version after the update.
    pub version: PolicyVersion,
    /// Update statistics, or the error.
    pub stats: Result<UpdateStats, TrainError>,
    /// Wall time of the update.
    pub wall: Duration,
    /// Time the thread waited for this batch (idle).
    pub idle: Duration,
    /// Staleness (`step - behaviour version`) of every rollout of the batch.
    pub lags: Vec<u64>,
    /// Outcome of the save requested with the batch.
    pub saved: Option<Result<PathBuf, TrainError>>,
}

/// Called by the learner thread after each publish with the new version and its snapshot (none
/// when taking the snapshot failed).
pub type OnPublish = Box<dyn Fn(PolicyVersion, Option<&Snapshot>) + Send>;

/// Start the learner thread at `start_version`. Each update publishes `version + 1` to
/// `engine`, calls `on_publish` with it and its snapshot (none when the snapshot failed), and
/// reports on `reports`. A batch without any rewarded
/// rollout is not trained but still bumps the version (versions count consumed batches).
pub fn spawn<T: Trainer>(
    mut trainer: T,
    rx: flume::Receiver<LearnerCmd>,
    engine: EngineHandle,
    on_publish: OnPublish,
    reports: mpsc::UnboundedSender<StepReport>,
    start_version: PolicyVersion,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("azr-learner".to_string())
        .spawn(move || {
            let mut version = start_version;
            loop {
                let t_wait = Instant::now();
                let Ok(cmd) = rx.recv() else { break };
                let idle = t_wait.elapsed();
                match cmd {
                    LearnerCmd::Train {
                        batch,
                        rollouts,
                        save,
                    } => {
                        telemetry::phase("wait", idle);
                        let t0 = Instant::now();
                        let lags: Vec<u64> = rollouts
                            .iter()
                            .map(|r| batch.saturating_sub(r.policy_version))
                            .collect();
                        let stats = if rollouts.is_empty() {
                            tracing::warn!(batch, "no rewarded rollout in the batch: no update");
                            Ok(UpdateStats {
                                importance_mean: 1.0,
                                ess: 1.0,
                                ..UpdateStats::default()
                            })
                        } else {
                            trainer.update(&rollouts)
                        };
                        telemetry::phase("update", t0.elapsed());
                        let mut saved = None;
                        if stats.is_ok() {
                            version = batch + 1;
                            let t_pub = Instant::now();
                            match trainer.snapshot() {
                                Ok(w) => {
                                    engine.publish(version, w.clone());
                                    on_publish(version, Some(&w));
                                }
                                Err(e) => {
                                    tracing::error!(error = %e, "cannot snapshot weights");
                                    on_publish(version, None);
                                }
                            }
                            telemetry::phase("publish", t_pub.elapsed());
                            if let Some(dir) = save {
                                let t_save = Instant::now();
                                saved = Some(trainer.save(&dir).map(|()| dir));
                                telemetry::phase("checkpoint", t_save.elapsed());
                            }
                        }
                        let wall = t0.elapsed();
                        telemetry::busy("learner", wall);
                        let report = StepReport {
                            step: batch,
                            version,
                            stats,
                            wall,
                            idle,
                            lags,
                            saved,
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
