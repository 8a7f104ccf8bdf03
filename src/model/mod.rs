//! The trainable decoder model. See submodules.
pub mod config;
pub mod gguf;
