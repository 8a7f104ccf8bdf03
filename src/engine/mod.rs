//! The continuous-batching rollout engine.
//!
//! One OS thread owns the policy weights (a [`Snapshot`]) and a pool of `max_slots` KV-cache
//! rows. Requesters on any thread [`EngineHandle::submit`] a [`GenRequest`] (a prompt, its
//! number of samples `n` and its own [`SamplingParams`]) and get a [`Ticket`] that resolves to
//! the `n` [`SampleOut`]s. The engine thread loops:
//!
//! 1. take commands (new requests, published weights, shutdown); block only when idle;
//! 2. take a newly published weight version if the [`WeightSync`] policy allows it now;
//! 3. admit waiting samples into free slots, highest [`GenRequest::priority`] first (then
//!    arrival order); a prompt is prefilled **once** and its KV rows copied into the slots of
//!    its `n` samples (a request with more samples than free slots keeps its prefill until all
//!    its samples got a slot);
//! 4. advance **every** active sequence by one token in **one** batched forward: the slots are
//!    preallocated KV buffers written in place, rows of different lengths share one write
//!    column with the columns before each row's start masked, and each row keeps its own RoPE
//!    positions (see `slots.rs`);
//! 5. finished samples leave their slot; a ticket resolves when all its samples finished.
//!
//! Results do not depend on the batch a sequence shared: each sample draws from its own RNG
//! seeded `params.seed + i` (as [`crate::model::generate`] does), and the token choice uses the
//! same per-row selection function as `generate`. Greedy output equals decoding the sequence
//! alone with `generate` (up to float-rounding ties).
//!
//! # Weight updates
//! [`EngineHandle::publish`] hands a new version to the engine. With
//! [`WeightSync::InFlight`] (PipelineRL's in-flight update) it is taken between two decode
//! iterations: running sequences continue with the new weights and **keep the KV cache the
//! old weights computed** (no re-prefill, as PipelineRL does); each sample records the first and
//! the last policy version that produced its tokens ([`SampleOut::first_version`],
//! [`SampleOut::last_version`]). With [`WeightSync::SequenceBoundary`] the engine stops
//! admitting new samples once a version is pending, lets the running ones finish and swaps when
//! no sequence is active, so every sample is produced by exactly one version (prefills kept for
//! not yet admitted samples are recomputed under the new weights).
//!
//! The engine is device generic: tensors live on the snapshot's device in its dtype.

pub mod bench;
mod config;
mod error;
mod handle;
mod request;
mod slots;
mod stats;
mod worker;

pub use crate::model::sampling::{SamplingParams, StopReason};
pub use crate::model::Snapshot;
pub use bench::{bench, bench_load, EngineBenchConfig, EngineBenchReport};
pub use config::{EngineConfig, WeightSync, DEFAULT_MAX_SEQ_LEN};
pub use error::EngineError;
pub use handle::{spawn, EngineHandle};
pub use request::{GenRequest, SampleOut, Ticket};
pub use stats::EngineStats;
