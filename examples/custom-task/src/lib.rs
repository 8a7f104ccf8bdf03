//! Extending azr from another crate, without editing it: a new task kind and a reward actor.
//!
//! * [`reverse`]: the `reverse` task kind (reverse a string; partial credit per position), a
//!   `TaskType` with a `Proposer`, its template section in `templates/compact.toml`.
//! * [`reward`]: a reward actor that adds a length penalty to the built-in rewards, replacing
//!   the pipeline's `reward` actor.
//! * [`builder`]: the [`azr::PipelineBuilder`] with both plugged in.
//!
//! `cargo run --release -p azr-example-custom-task` trains on `config.toml` (the tiny model);
//! `tests/two_steps.rs` runs two self-play steps and checks what came out.

pub mod reverse;
pub mod reward;

use azr::{Config, PipelineBuilder};

pub use reverse::{Reverse, KIND};
pub use reward::{LengthPenalty, LengthPenaltyReward};

/// The `[reverse]` section of the `compact` template set.
pub const COMPACT_SECTIONS: &str = include_str!("../templates/compact.toml");

/// The example's config (`config.toml`): paths are relative to the workspace root.
pub const CONFIG_TOML: &str = include_str!("../config.toml");

/// A run of `cfg` with the `reverse` kind registered and the length-penalty reward actor in
/// place of the built-in one (penalty `coef` for an answer of `sampling.max_new_tokens`).
pub fn builder(cfg: Config, coef: f32) -> PipelineBuilder {
    let penalty = LengthPenalty {
        coef,
        max_tokens: cfg.raw.sampling.max_new_tokens,
    };
    PipelineBuilder::new(cfg)
        .template_sections("compact", COMPACT_SECTIONS)
        .task_type(|t| Ok(Box::new(Reverse::new(t.templates.clone(), t.tasks)?)))
        .replace_actor(move |w| LengthPenaltyReward::new(w, penalty))
}
