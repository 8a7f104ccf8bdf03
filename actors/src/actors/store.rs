//! The task store: owns the per-kind task buffers (self-play) or the selected examples and their
//! accuracy history (1-shot RLVR), and the run's random stream. For every admitted slot it draws
//! the work (reference tasks for a proposal, a task to solve) and pushes it to the proposer or
//! the solver; valid proposed tasks come back into the buffers. Its state is checkpointed.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use azr_core::oneshot::history::{AccuracyHistory, EpochTally};
use azr_core::pretrain::Replay;
use azr_core::tasks::novelty::ShapeSeen;
use azr_core::tasks::{SolverTargeting, Task, TaskBuffers};
use azr_core::types::Role;
use ractor::RpcReplyPort;
use rand_chacha::ChaCha8Rng;

use super::{Ctx, ProposeJob, Scored, Slot, SolveJob};
use crate::service::Service;
use crate::telemetry;

/// Registered name.
pub const NAME: &str = "task_store";

/// Where the work comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// AZR self-play: tasks from the buffers, references for the proposer.
    SelfPlay {
        /// The buffers.
        buffers: TaskBuffers,
        /// Solver tasks prefer those added in the last `window` steps.
        window: u64,
        /// Which tasks solver draws take (`tasks.buffer.prefer_learnable`, `prefer_greedy_miss`).
        targeting: SolverTargeting,
        /// Corpus tasks replayed in a share of solver draws (`selfplay.replay_fraction`).
        replay: Replay,
    },
    /// 1-shot RLVR: the selected examples repeated in order to fill every batch.
    Rlvr {
        /// `(dataset index, task)` of each selected example.
        examples: Vec<(String, Task)>,
        /// Prompts per batch.
        per_batch: u64,
        /// Samples per prompt.
        n: usize,
        /// Per-example training accuracy, one entry per trained batch.
        history: AccuracyHistory,
        /// Where the history is written after every batch.
        history_path: PathBuf,
    },
}

impl Source {
    /// The checkpointed part (`state.json` `mode_state`): the buffers or the history.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Source::SelfPlay { buffers, .. } => {
                serde_json::to_value(buffers).unwrap_or(serde_json::Value::Null)
            }
            Source::Rlvr { history, .. } => {
                serde_json::from_str(&history.to_json_string()).unwrap_or(serde_json::Value::Null)
            }
        }
    }
}

/// The store's state.
pub struct StoreState {
    /// The work source.
    pub source: Source,
    /// Reference and task draws.
    pub rng: ChaCha8Rng,
}

/// What a checkpoint keeps of the store.
#[derive(Debug, Clone)]
pub struct StoreSnapshot {
    /// Buffers or accuracy history.
    pub mode_state: serde_json::Value,
    /// The random stream.
    pub rng: ChaCha8Rng,
}

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A downstream channel is closed (shutting down).
    #[error("channel `{0}` is closed")]
    Closed(&'static str),
    /// The state was already taken by a previous instance (the store is stateful: a restart
    /// cannot rebuild it).
    #[error("the task store's state is gone (it crashed); resume from the last checkpoint")]
    StateLost,
    /// Writing the accuracy history failed.
    #[error("accuracy history: {0}")]
    History(String),
    /// The slot's task kind has no task type.
    #[error(transparent)]
    Work(#[from] super::WorkError),
    /// A task of a kind without a buffer.
    #[error(transparent)]
    Buffer(#[from] azr_core::tasks::BufferError),
}

/// Messages of the task store.
pub enum StoreMsg {
    /// Draw the work of an admitted slot and push it downstream; replies once it is queued.
    Produce {
        /// The slot.
        slot: Slot,
        /// Reply.
        reply: RpcReplyPort<Result<(), StoreError>>,
    },
    /// Add validated tasks to the buffers; replies with each task's program shape and whether
    /// it was novel (`None` for a task without a program, and for every task in 1-shot RLVR).
    Add {
        /// The tasks.
        tasks: Vec<Task>,
        /// Reply.
        reply: RpcReplyPort<Result<Vec<Option<ShapeSeen>>, StoreError>>,
    },
    /// 1-shot RLVR: record one trained batch's accuracy per example (one epoch).
    Record {
        /// Correct / total per example index.
        tally: EpochTally,
        /// Reply.
        reply: RpcReplyPort<Result<(), StoreError>>,
    },
    /// The checkpointed state.
    Snapshot {
        /// Reply.
        reply: RpcReplyPort<Result<StoreSnapshot, StoreError>>,
    },
}

/// The task store service.
pub struct TaskStore {
    ctx: Arc<Ctx>,
    initial: Mutex<Option<StoreState>>,
    propose_tx: flume::Sender<ProposeJob>,
    solve_tx: flume::Sender<SolveJob>,
    rollouts_tx: flume::Sender<Scored>,
}

impl TaskStore {
    /// A store starting from `state`, pushing to the proposer and solver channels (and straight
    /// to the learner for a slot it has no task for).
    pub fn new(
        ctx: Arc<Ctx>,
        state: StoreState,
        propose_tx: flume::Sender<ProposeJob>,
        solve_tx: flume::Sender<SolveJob>,
        rollouts_tx: flume::Sender<Scored>,
    ) -> Self {
        Self {
            ctx,
            initial: Mutex::new(Some(state)),
            propose_tx,
            solve_tx,
            rollouts_tx,
        }
    }

    fn produce(
        &self,
        slot: Slot,
        state: &mut StoreState,
        reply: RpcReplyPort<Result<(), StoreError>>,
    ) {
        enum Job {
            Propose(ProposeJob),
            // Boxed: a task is several times the size of the other variants.
            Solve(Box<SolveJob>),
            Skip(Scored),
        }
        let job = match &mut state.source {
            Source::SelfPlay {
                buffers,
                window,
                targeting,
                replay,
            } => match slot.role {
                Role::Propose => match self.ctx.task_type(slot.kind) {
                    Ok(tt) => Job::Propose(ProposeJob {
                        slot,
                        references: buffers.references(tt, &mut state.rng),
                    }),
                    Err(e) => {
                        let _ = reply.send(Err(e.into()));
                        return;
                    }
                },
                Role::Solve => {
                    let task = replay.pick(slot.kind, &mut state.rng).or_else(|| {
                        buffers.get(slot.kind).and_then(|b| {
                            b.targeted_solver_batch(
                                *targeting,
                                1,
                                slot.batch,
                                *window,
                                &mut state.rng,
                            )
                            .pop()
                        })
                    });
                    match task {
                        Some(task) => Job::Solve(Box::new(SolveJob {
                            slot,
                            task,
                            n: 1,
                            example: None,
                        })),
                        None => {
                            tracing::warn!(?slot, "no task in the buffer: slot skipped");
                            Job::Skip(Scored {
                                slot,
                                samples: Vec::new(),
                                example: None,
                            })
                        }
                    }
                }
            },
            Source::Rlvr {
                examples,
                per_batch,
                n,
                ..
            } => {
                let i = ((slot.batch * *per_batch + slot.index) % examples.len() as u64) as usize;
                let (index, task) = examples[i].clone();
                Job::Solve(Box::new(SolveJob {
                    slot,
                    task,
                    n: *n,
                    example: Some(index),
                }))
            }
        };
        if let Job::Solve(j) = &job {
            telemetry::solver_task(j.slot.kind, j.task.provenance.source.as_str());
        }
        let (ptx, stx, rtx) = (
            self.propose_tx.clone(),
            self.solve_tx.clone(),
            self.rollouts_tx.clone(),
        );
        // The send may wait on a full channel: off the mailbox, replying once queued.
        tokio::spawn(async move {
            let r = match job {
                Job::Propose(j) => ptx
                    .send_async(j)
                    .await
                    .map_err(|_| StoreError::Closed("propose_jobs")),
                Job::Solve(j) => stx
                    .send_async(*j)
                    .await
                    .map_err(|_| StoreError::Closed("solve_jobs")),
                Job::Skip(s) => rtx
                    .send_async(s)
                    .await
                    .map_err(|_| StoreError::Closed("rollouts")),
            };
            let _ = reply.send(r);
        });
    }
}

impl Service for TaskStore {
    type Msg = StoreMsg;
    type State = StoreState;
    type Error = StoreError;

    fn name(&self) -> &'static str {
        NAME
    }

    fn stateful(&self) -> bool {
        true
    }

    async fn init(&self) -> Result<StoreState, StoreError> {
        let state = self
            .initial
            .lock()
            .ok()
            .and_then(|mut s| s.take())
            .ok_or(StoreError::StateLost)?;
        if let Source::SelfPlay { buffers, .. } = &state.source {
            for (kind, size) in buffers.sizes() {
                telemetry::buffer_size(kind, size);
                telemetry::distinct_shapes(kind, buffers.shapes().distinct(kind));
            }
        }
        Ok(state)
    }

    async fn handle(&self, msg: StoreMsg, state: &mut StoreState) -> Result<(), StoreError> {
        match msg {
            StoreMsg::Produce { slot, reply } => self.produce(slot, state, reply),
            StoreMsg::Add { tasks, reply } => {
                let mut shapes = Vec::with_capacity(tasks.len());
                if let Source::SelfPlay { buffers, .. } = &mut state.source {
                    for t in tasks {
                        // A task without a buffer is an error, never a silent drop.
                        shapes.push(buffers.admit(t)?.shape);
                    }
                    for (kind, size) in buffers.sizes() {
                        telemetry::buffer_size(kind, size);
                        telemetry::distinct_shapes(kind, buffers.shapes().distinct(kind));
                    }
                }
                let _ = reply.send(Ok(shapes));
            }
            StoreMsg::Record { tally, reply } => {
                let r = match &mut state.source {
                    Source::Rlvr {
                        history,
                        history_path,
                        ..
                    } => history
                        .close_epoch(tally)
                        .and_then(|()| history.save(&*history_path))
                        .map_err(|e| StoreError::History(e.to_string())),
                    Source::SelfPlay { .. } => Ok(()),
                };
                let _ = reply.send(r);
            }
            StoreMsg::Snapshot { reply } => {
                let _ = reply.send(Ok(StoreSnapshot {
                    mode_state: state.source.to_json(),
                    rng: state.rng.clone(),
                }));
            }
        }
        Ok(())
    }
}
