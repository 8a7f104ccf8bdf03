//! 1-shot RLVR (Wang et al. 2025): variance-based example selection and the per-epoch training
//! accuracy history it ranks.
//!
//! | module | what it holds |
//! |---|---|
//! | [`history`] | [`history::AccuracyHistory`]: `{"<index>": [accuracy per epoch, ...]}`, recorded by RLVR runs |
//! | [`select`] | [`select::rank`]: historical variance score, sorted descending (pi_1, pi_2, ...) |
//! | [`dataset`] | reading verl-style math rows (`prompt`, `reward_model.ground_truth`, `extra_info.index`) |
//! | [`error`] | [`OneShotError`] |

pub mod dataset;
pub mod error;
pub mod history;
pub mod select;

pub use error::OneShotError;
