//! A one-request-at-a-time generator with the rollout engine's API (`azr_core::engine`:
//! [`GenRequest`] in, a [`Ticket`] resolving to [`SampleOut`]s, [`EngineHandle::publish`] of
//! versioned weights). One OS thread owns the weights and serves requests in arrival order, each
//! as one `model::generate` call over its `n` samples; new weights are taken between requests.
//!
//! This is the baseline the continuous-batching engine is measured against
//! (`azr bench pipeline`, `engine_speedup`), and the generator the pipeline falls back to when
//! the engine is not built in.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use azr_core::model::{self, SamplingParams, Snapshot, StopReason};
use azr_core::types::PolicyVersion;

/// One generation request: `n` samples of `prompt`, sample `i` seeded `params.seed + i`.
#[derive(Debug, Clone)]
pub struct GenRequest {
    /// Prompt token ids.
    pub prompt: Vec<u32>,
    /// Samples of this prompt.
    pub n: usize,
    /// Sampling settings (temperature, top-p/k, budget, stop ids, seed).
    pub params: SamplingParams,
    /// Ordering hint, higher first (part of the engine's API; served in arrival order here).
    #[allow(dead_code)]
    pub priority: i32,
}

/// One generated sample.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleOut {
    /// Generated ids (the stop token included).
    pub tokens: Vec<u32>,
    /// Log-prob of each generated id under the sampling policy (temperature 1, unfiltered).
    pub logprobs: Vec<f32>,
    /// Why it ended.
    pub stop: StopReason,
    /// Version of the weights that produced the first token.
    pub first_version: PolicyVersion,
    /// Version of the weights that produced the last token.
    pub last_version: PolicyVersion,
}

/// Errors of the generator.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EngineError {
    /// The generator thread is gone (shut down or crashed).
    #[error("the generator has shut down")]
    Closed,
    /// The model failed on this request.
    #[error("generation failed: {0}")]
    Model(String),
}

/// Generator statistics.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct EngineStats {
    /// Sequences being decoded now.
    pub active: usize,
    /// Requests waiting.
    pub waiting: usize,
    /// Tokens generated since start.
    pub tokens_generated: u64,
    /// Time spent generating.
    pub busy: Duration,
    /// Time spent waiting for requests.
    pub idle: Duration,
}

enum Cmd {
    Gen(
        GenRequest,
        flume::Sender<Result<Vec<SampleOut>, EngineError>>,
    ),
    Stop,
}

struct Shared {
    version: AtomicU64,
    published: Mutex<Option<(PolicyVersion, Snapshot)>>,
    stats: Mutex<EngineStats>,
}

/// A cloneable handle to the generator thread.
#[derive(Clone)]
pub struct EngineHandle {
    tx: flume::Sender<Cmd>,
    shared: Arc<Shared>,
}

/// The pending result of one request.
pub struct Ticket {
    rx: flume::Receiver<Result<Vec<SampleOut>, EngineError>>,
}

impl Ticket {
    /// Await the samples.
    pub async fn recv_async(self) -> Result<Vec<SampleOut>, EngineError> {
        self.rx
            .recv_async()
            .await
            .map_err(|_| EngineError::Closed)?
    }
}

impl EngineHandle {
    /// Queue a request (never blocks on generation).
    pub fn submit(&self, req: GenRequest) -> Result<Ticket, EngineError> {
        let (tx, rx) = flume::bounded(1);
        self.tx
            .send(Cmd::Gen(req, tx))
            .map_err(|_| EngineError::Closed)?;
        Ok(Ticket { rx })
    }

    /// Publish new weights; taken before the next request (at once when idle).
    pub fn publish(&self, version: PolicyVersion, weights: Snapshot) {
        if let Ok(mut p) = self.shared.published.lock() {
            *p = Some((version, weights));
        }
        // Wake an idle thread so it takes the weights now (a no-op request).
        let _ = self.tx.send(Cmd::Gen(
            GenRequest {
                prompt: Vec::new(),
                n: 0,
                params: SamplingParams::default(),
                priority: 0,
            },
            flume::bounded(1).0,
        ));
    }

    /// The version being decoded now.
    pub fn version(&self) -> PolicyVersion {
        self.shared.version.load(Ordering::SeqCst)
    }

    /// Statistics.
    pub fn stats(&self) -> EngineStats {
        let mut s = self.shared.stats.lock().map(|s| *s).unwrap_or_default();
        s.waiting = self.tx.len();
        s
    }

    /// Stop the thread after the request in progress.
    pub fn shutdown(&self) {
        let _ = self.tx.send(Cmd::Stop);
    }
}

/// Start the generator thread on `weights` (version `version`).
pub fn spawn(
    weights: Snapshot,
    version: PolicyVersion,
) -> std::io::Result<(EngineHandle, JoinHandle<()>)> {
    let (tx, rx) = flume::unbounded::<Cmd>();
    let shared = Arc::new(Shared {
        version: AtomicU64::new(version),
        published: Mutex::new(None),
        stats: Mutex::new(EngineStats::default()),
    });
    let s = shared.clone();
    let join = std::thread::Builder::new()
        .name("azr-generate".to_string())
        .spawn(move || {
            let mut snap = weights;
            loop {
                let t_idle = Instant::now();
                let Ok(cmd) = rx.recv() else { break };
                let idle = t_idle.elapsed();
                let (req, reply) = match cmd {
                    Cmd::Gen(req, reply) => (req, reply),
                    Cmd::Stop => break,
                };
                if let Some((v, w)) = s.published.lock().ok().and_then(|mut p| p.take()) {
                    snap = w;
                    s.version.store(v, Ordering::SeqCst);
                }
                if req.n == 0 {
                    continue;
                }
                let v = s.version.load(Ordering::SeqCst);
                let t0 = Instant::now();
                if let Ok(mut st) = s.stats.lock() {
                    st.active = req.n;
                    st.idle += idle;
                }
                let prompts = vec![req.prompt.clone(); req.n];
                let out = model::generate(&snap, &prompts, &req.params)
                    .map_err(|e| EngineError::Model(e.to_string()))
                    .map(|gens| {
                        gens.into_iter()
                            .map(|g| SampleOut {
                                stop: g.stop,
                                tokens: g.tokens,
                                logprobs: g.logprobs,
                                first_version: v,
                                last_version: v,
                            })
                            .collect::<Vec<_>>()
                    });
                if let Ok(mut st) = s.stats.lock() {
                    st.active = 0;
                    st.busy += t0.elapsed();
                    if let Ok(o) = &out {
                        st.tokens_generated += o.iter().map(|x| x.tokens.len() as u64).sum::<u64>();
                    }
                }
                // The requester may be gone; nothing to do then.
                let _ = reply.send(out);
            }
        })?;
    Ok((EngineHandle { tx, shared }, join))
}
