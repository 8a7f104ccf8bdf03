//! Dedicated OS threads for heavy compute: the rollout engine (`azr_core::engine`: continuous
//! batching for every actor's generations) and the learner thread (updates). Actors talk to
//! them through tickets and bounded `flume` channels, so candle never runs on a tokio worker
//! and a full queue suspends the sender instead of blocking a runtime thread.

pub mod learner;

pub use azr_core::engine::{
    spawn as spawn_engine, EngineConfig, EngineError, EngineHandle, GenRequest, SampleOut,
};
