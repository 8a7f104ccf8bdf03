//! Dedicated OS threads for heavy compute: the rollout engine (generation for every actor) and
//! the learner thread (updates). Actors talk to them through bounded `flume` channels and
//! tickets, so candle never runs on a tokio worker and a full queue suspends the sender instead
//! of blocking a runtime thread.

pub mod learner;
pub mod sequential;

pub use sequential::{spawn as spawn_engine, EngineError, EngineHandle, GenRequest, SampleOut};
