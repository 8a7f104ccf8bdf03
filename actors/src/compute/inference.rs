//! The inference thread: owns a [`Policy`], serves generation jobs from a bounded queue, and
//! switches to newly published weights between jobs (never mid-sequence).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use azr_core::types::PolicyVersion;
use tokio::sync::{oneshot, watch};

use super::Published;
use crate::engine::{Decoding, Generated, Policy, SharedCodec};

/// One generation job.
struct GenJob {
    prompts: Vec<Vec<u32>>,
    decoding: Decoding,
    seed: u64,
    reply: oneshot::Sender<Result<Vec<Generated>, String>>,
}

/// A cloneable handle to the inference thread.
#[derive(Clone)]
pub struct InferenceHandle {
    tx: flume::Sender<GenJob>,
    version: Arc<AtomicU64>,
}

impl InferenceHandle {
    /// Generate one response per prompt. Suspends (without blocking the runtime) while the
    /// queue is full.
    pub async fn generate(
        &self,
        prompts: Vec<Vec<u32>>,
        decoding: Decoding,
        seed: u64,
    ) -> Result<Vec<Generated>, String> {
        if prompts.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, rx) = oneshot::channel();
        let job = GenJob {
            prompts,
            decoding,
            seed,
            reply,
        };
        self.tx
            .send_async(job)
            .await
            .map_err(|_| "inference thread is gone".to_string())?;
        rx.await
            .map_err(|_| "inference thread dropped the job".to_string())?
    }

    /// The policy version the thread is running now.
    pub fn version(&self) -> PolicyVersion {
        self.version.load(Ordering::SeqCst)
    }
}

/// Start the inference thread. It runs `policy` (whose weights are version `start_version`)
/// and loads every snapshot published on `weights` before the next job. It ends when every
/// handle is dropped.
pub fn spawn<P: Policy>(
    mut policy: P,
    codec: SharedCodec,
    mut weights: watch::Receiver<Published<P::Weights>>,
    start_version: PolicyVersion,
    capacity: usize,
) -> std::io::Result<(InferenceHandle, JoinHandle<()>)> {
    let (tx, rx) = flume::bounded::<GenJob>(capacity);
    let version = Arc::new(AtomicU64::new(start_version));
    let thread_version = version.clone();
    let join = std::thread::Builder::new()
        .name("azr-inference".to_string())
        .spawn(move || {
            while let Ok(job) = rx.recv() {
                if weights.has_changed().unwrap_or(false) {
                    let published = weights.borrow_and_update().clone();
                    if let Some((v, w)) = published {
                        match policy.load(&w) {
                            Ok(()) => thread_version.store(v, Ordering::SeqCst),
                            Err(e) => {
                                tracing::error!(version = v, error = %e, "cannot load weights")
                            }
                        }
                    }
                }
                let v = thread_version.load(Ordering::SeqCst);
                let result = policy
                    .generate(&job.prompts, &job.decoding, job.seed)
                    .and_then(|outs| {
                        outs.into_iter()
                            .map(|(ids, logprobs)| {
                                Ok(Generated {
                                    text: codec.decode(&ids)?,
                                    response_ids: ids,
                                    logprobs,
                                    policy_version: v,
                                })
                            })
                            .collect()
                    });
                // The requester may have given up (timeout); nothing to do then.
                let _ = job.reply.send(result);
            }
        })?;
    Ok((InferenceHandle { tx, version }, join))
}
