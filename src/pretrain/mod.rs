//! Tiny-model pretraining.
