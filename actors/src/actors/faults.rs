//! Test-only fault injection (`[faults]` in the config): makes one named worker panic once, at
//! a given step, so the supervision tests can watch a real panic get recovered.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A one-shot planned panic, shared by all workers.
#[derive(Debug, Clone, Default)]
pub struct FaultPlan {
    target: Option<(String, u64)>,
    fired: Arc<AtomicBool>,
}

impl FaultPlan {
    /// A plan that panics `actor` at `step` (none if `actor` is `None`).
    pub fn new(actor: Option<String>, step: Option<u64>) -> Self {
        Self {
            target: actor.map(|a| (a, step.unwrap_or(1))),
            fired: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Panic if this is the planned actor and step and the fault has not fired yet.
    ///
    /// # Panics
    /// That is its purpose: exactly once per plan, when `actor` and `step` match.
    pub fn maybe_panic(&self, actor: &str, step: u64) {
        if let Some((a, s)) = &self.target {
            if a == actor && *s == step && !self.fired.swap(true, Ordering::SeqCst) {
                panic!("fault injection: `{actor}` panics at step {step}");
            }
        }
    }
}
