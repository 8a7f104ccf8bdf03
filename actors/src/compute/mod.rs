//! Dedicated OS threads for heavy compute: one inference thread (generation) and one learner
//! thread (updates). Actors talk to them through bounded `flume` channels and `oneshot`
//! replies, so candle never runs on a tokio worker and a full queue suspends the sender
//! instead of blocking a runtime thread.

pub mod inference;
pub mod learner;

use std::sync::Arc;

use azr_core::types::PolicyVersion;

/// The latest published weights: version and snapshot (`None` before the first publication,
/// when the policy runs the weights it was loaded with).
pub type Published<W> = Option<(PolicyVersion, Arc<W>)>;
