//! RL math as pure functions, and the learner step built from them.
//!
//! | module | what it holds |
//! |---|---|
//! | [`advantage`] | GRPO, REINFORCE++, task-relative REINFORCE++ (AZR's TRR++), RLOO; reward shuffling |
//! | [`loss`] | PPO clipped surrogate (clip-higher, dual-clip), `loss_agg_mode`, entropy bonus, KL k1/k2/k3 |
//! | [`offpolicy`] | off-policy correction for stale rollouts: truncated IS, decoupled PPO weights, ESS |
//! | [`optim`] | AdamW (fused in-place on CPU), gradient accumulation, global-norm clipping |
//! | [`schedule`] | learning-rate schedules: constant, warmup + constant, warmup + cosine |
//! | [`learner`] | the [`learner::TrainablePolicy`] trait and the [`learner::Learner`] step |
//! | [`error`] | [`RlError`] |
//!
//! Semantics follow verl's `core_algos.py` (the trainer both AZR and 1-shot RLVR are built on);
//! each function's docs give the equation, tensor shapes, and any deliberate deviation.

pub mod advantage;
pub mod error;
pub mod learner;
pub mod loss;
pub mod offpolicy;
pub mod optim;
pub mod schedule;

pub use error::RlError;
