//! The requesters' side: [`EngineHandle`] and [`spawn`].

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use super::config::EngineConfig;
use super::error::EngineError;
use super::request::{GenRequest, Ticket};
use super::stats::EngineStats;
use super::worker::{Cmd, Submitted, Worker};
use crate::model::Snapshot;
use crate::types::PolicyVersion;

/// State shared by the handles and the engine thread.
#[derive(Debug)]
pub(crate) struct Shared {
    /// Version decoding now.
    pub version: AtomicU64,
    /// Sequences submitted and not yet admitted (or dropped).
    pub waiting: AtomicUsize,
    /// Set by [`EngineHandle::shutdown`]: `submit` refuses from then on.
    pub closed: AtomicBool,
    /// The latest statistics the engine published.
    pub stats: Mutex<EngineStats>,
    /// Vocabulary size, to validate prompts at submission.
    pub vocab_size: usize,
    /// Maximum context, to validate prompts at submission.
    pub max_ctx: usize,
    /// [`EngineConfig::max_waiting`].
    pub max_waiting: usize,
    /// Requests accepted so far (also their ids).
    pub submitted: AtomicU64,
    /// A clone of the engine's command receiver, so whoever sees the engine closed can fail
    /// the requests still queued (their tickets would otherwise wait forever).
    pub rx: flume::Receiver<Cmd>,
}

impl Shared {
    /// Locks the statistics (a panic while holding the lock leaves plain counters behind, so
    /// a poisoned lock is still usable).
    pub fn stats(&self) -> std::sync::MutexGuard<'_, EngineStats> {
        self.stats.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Marks the engine closed and fails every request still queued in the channel.
    pub fn close_and_drain(&self) {
        self.closed.store(true, Ordering::SeqCst);
        for cmd in self.rx.drain() {
            if let Cmd::Submit(s) = cmd {
                self.waiting.fetch_sub(s.req.n, Ordering::SeqCst);
                let _ = s.reply.send(Err(EngineError::Shutdown));
            }
        }
    }
}

/// A cloneable, thread-safe handle to the engine thread.
#[derive(Debug, Clone)]
pub struct EngineHandle {
    tx: flume::Sender<Cmd>,
    shared: Arc<Shared>,
}

impl EngineHandle {
    /// Queues a request; never waits for generation. The returned [`Ticket`] resolves to the
    /// `n` samples in sample order (`n = 0` resolves at once to no samples).
    ///
    /// # Errors
    /// [`EngineError::InvalidRequest`] for an empty prompt, a token outside the vocabulary or
    /// a prompt longer than the model's context; [`EngineError::QueueFull`] while
    /// [`EngineConfig::max_waiting`] sequences wait; [`EngineError::Shutdown`] after
    /// [`EngineHandle::shutdown`].
    pub fn submit(&self, req: GenRequest) -> Result<Ticket, EngineError> {
        if self.shared.closed.load(Ordering::SeqCst) {
            return Err(EngineError::Shutdown);
        }
        if req.prompt.is_empty() {
            return Err(EngineError::InvalidRequest("empty prompt".into()));
        }
        if let Some(&bad) = req
            .prompt
            .iter()
            .find(|&&t| t as usize >= self.shared.vocab_size)
        {
            return Err(EngineError::InvalidRequest(format!(
                "token {bad} is outside the vocabulary of {}",
                self.shared.vocab_size
            )));
        }
        if req.prompt.len() > self.shared.max_ctx {
            return Err(EngineError::InvalidRequest(format!(
                "prompt of {} tokens exceeds the model's context of {}",
                req.prompt.len(),
                self.shared.max_ctx
            )));
        }
        let (reply, rx) = flume::bounded(1);
        if req.n == 0 {
            // The receiver is alive and the channel empty, so this cannot fail.
            let _ = reply.send(Ok(Vec::new()));
            return Ok(Ticket { rx });
        }
        let waiting = self.shared.waiting.load(Ordering::SeqCst);
        if waiting >= self.shared.max_waiting {
            return Err(EngineError::QueueFull {
                waiting,
                max: self.shared.max_waiting,
            });
        }
        self.shared.waiting.fetch_add(req.n, Ordering::SeqCst);
        let id = self.shared.submitted.fetch_add(1, Ordering::SeqCst);
        let cmd = Cmd::Submit(Submitted { id, req, reply });
        if self.tx.send(cmd).is_err() {
            return Err(EngineError::Shutdown);
        }
        // The engine may have closed between the check above and the send: then nobody will
        // take the request from the channel, so fail it here (the ticket sees `Shutdown`).
        if self.shared.closed.load(Ordering::SeqCst) {
            self.shared.close_and_drain();
        }
        Ok(Ticket { rx })
    }

    /// Hands a new weight version to the engine, taken according to
    /// [`EngineConfig::weight_sync`]. If several are published before the engine takes one,
    /// only the last is used. A snapshot whose architecture, device or dtype differs from
    /// the running one is refused (logged). Does nothing after shutdown.
    pub fn publish(&self, version: PolicyVersion, weights: Snapshot) {
        let _ = self.tx.send(Cmd::Publish(version, weights));
    }

    /// Parks the engine between two decode iterations and returns once it is parked: no
    /// sequence advances and none is admitted until [`EngineHandle::resume`]; submissions,
    /// publications and cancellations are still taken. This is the colocated-training hook
    /// (verl's sleep / wake-up): pause the rollouts while the learner needs the compute. It is
    /// also what makes admission order observable in tests. Pausing a paused engine is a
    /// no-op; if every handle is dropped while paused, the engine resumes to answer what is
    /// outstanding.
    ///
    /// # Errors
    /// [`EngineError::Shutdown`] if the engine has stopped.
    pub fn pause(&self) -> Result<(), EngineError> {
        if self.shared.closed.load(Ordering::SeqCst) {
            return Err(EngineError::Shutdown);
        }
        let (parked, rx) = flume::bounded(1);
        self.tx
            .send(Cmd::Pause(parked))
            .map_err(|_| EngineError::Shutdown)?;
        rx.recv().map_err(|_| EngineError::Shutdown)
    }

    /// Leaves a pause ([`EngineHandle::pause`]); a no-op on a running engine.
    pub fn resume(&self) {
        let _ = self.tx.send(Cmd::Resume);
    }

    /// The longest sequence (prompt + generated tokens) a slot holds: longer prompts are
    /// refused by [`EngineHandle::submit`].
    pub fn max_seq_len(&self) -> usize {
        self.shared.max_ctx
    }

    /// The policy version decoding now.
    pub fn version(&self) -> PolicyVersion {
        self.shared.version.load(Ordering::SeqCst)
    }

    /// The latest statistics (updated after every engine iteration).
    pub fn stats(&self) -> EngineStats {
        let mut s = self.shared.stats().clone();
        s.waiting = self.shared.waiting.load(Ordering::SeqCst);
        s
    }

    /// Stops the engine: outstanding tickets fail with [`EngineError::Shutdown`], later
    /// submissions are refused, and the thread ends (join its `JoinHandle` to wait for it).
    pub fn shutdown(&self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        let _ = self.tx.send(Cmd::Shutdown);
    }
}

/// Starts the engine thread, which owns `weights` (as version `version`) and the KV slots.
///
/// The thread ends after [`EngineHandle::shutdown`], or when every handle is dropped and the
/// outstanding requests are answered.
///
/// # Errors
/// The KV slot buffers could not be allocated on the snapshot's device, or the OS refused to
/// start the thread.
pub fn spawn(
    weights: Snapshot,
    version: PolicyVersion,
    cfg: EngineConfig,
) -> std::io::Result<(EngineHandle, JoinHandle<()>)> {
    let mcfg = weights.config();
    let model_ctx = mcfg.max_position_embeddings;
    let max_ctx = match cfg.max_seq_len {
        0 => model_ctx.min(super::config::DEFAULT_MAX_SEQ_LEN),
        n => n.min(model_ctx),
    };
    let (tx, rx) = flume::unbounded();
    let shared = Arc::new(Shared {
        version: AtomicU64::new(version),
        waiting: AtomicUsize::new(0),
        closed: AtomicBool::new(false),
        stats: Mutex::new(EngineStats {
            max_slots: cfg.max_slots.max(1),
            version,
            ..EngineStats::default()
        }),
        vocab_size: mcfg.vocab_size,
        max_ctx,
        max_waiting: cfg.max_waiting.max(1),
        submitted: AtomicU64::new(0),
        rx: rx.clone(),
    });
    let worker = Worker::new(weights, version, cfg, rx, Arc::clone(&shared), max_ctx)
        .map_err(std::io::Error::other)?;
    let join = std::thread::Builder::new()
        .name("azr-engine".into())
        .spawn(move || worker.run())?;
    Ok((EngineHandle { tx, shared }, join))
}
