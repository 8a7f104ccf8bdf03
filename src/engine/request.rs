//! What requesters send and receive: [`GenRequest`], [`SampleOut`], [`Ticket`].

use serde::{Deserialize, Serialize};

use super::error::EngineError;
use crate::model::sampling::{SamplingParams, StopReason};
use crate::types::PolicyVersion;

/// A prompt to sample `n` continuations of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenRequest {
    /// Prompt token ids (non-empty, inside the vocabulary).
    pub prompt: Vec<u32>,
    /// Number of samples; they share one prefill of the prompt. Sample `i` uses an RNG seeded
    /// `params.seed + i`.
    pub n: usize,
    /// Sampling settings and stop conditions of every sample of this request
    /// (`use_cache` is ignored: the engine always uses its KV cache).
    pub params: SamplingParams,
    /// Ordering hint for admission: higher first, ties in arrival order. Default 0.
    pub priority: i32,
}

impl GenRequest {
    /// `n` samples of `prompt` with `params`, priority 0.
    pub fn new(prompt: Vec<u32>, n: usize, params: SamplingParams) -> Self {
        Self {
            prompt,
            n,
            params,
            priority: 0,
        }
    }

    /// The same request with another priority.
    pub fn with_priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }
}

/// One finished sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleOut {
    /// Generated token ids (prompt excluded, stop token included).
    pub tokens: Vec<u32>,
    /// Log-probability of each generated token under the unmodified temperature-1 policy of
    /// the version that produced it (see [`crate::model::Generation::logprobs`]).
    pub logprobs: Vec<f32>,
    /// Why the sample ended.
    pub stop: StopReason,
    /// Policy version whose forward produced the first token (the prefill's version).
    pub first_version: PolicyVersion,
    /// Policy version whose forward produced the last token; differs from `first_version`
    /// only under [`crate::engine::WeightSync::InFlight`].
    pub last_version: PolicyVersion,
}

/// The reply channel's payload.
pub(crate) type Reply = Result<Vec<SampleOut>, EngineError>;

/// The pending answer to one [`GenRequest`]: its `n` samples, in sample order.
///
/// Dropping a ticket cancels the request: the engine frees its slots at the next iteration.
#[derive(Debug)]
pub struct Ticket {
    pub(crate) rx: flume::Receiver<Reply>,
}

impl Ticket {
    /// Blocks until the samples are ready.
    ///
    /// # Errors
    /// [`EngineError::Shutdown`] if the engine stopped first, [`EngineError::Model`] if a
    /// forward failed.
    pub fn wait(self) -> Result<Vec<SampleOut>, EngineError> {
        self.rx.recv().map_err(|_| EngineError::Shutdown)?
    }

    /// Waits without blocking a thread (any async runtime; no runtime dependency).
    ///
    /// # Errors
    /// As [`Ticket::wait`].
    pub async fn recv_async(self) -> Result<Vec<SampleOut>, EngineError> {
        self.rx
            .recv_async()
            .await
            .map_err(|_| EngineError::Shutdown)?
    }

    /// The samples if they are ready, without waiting; `None` while still running.
    ///
    /// # Errors
    /// As [`Ticket::wait`] (an error is returned once, the ticket is then spent).
    pub fn try_get(&self) -> Option<Result<Vec<SampleOut>, EngineError>> {
        match self.rx.try_recv() {
            Ok(r) => Some(r),
            Err(flume::TryRecvError::Empty) => None,
            Err(flume::TryRecvError::Disconnected) => Some(Err(EngineError::Shutdown)),
        }
    }
}
