//! `ractor::Message` for the actor messages that never leave their process.
//!
//! Depending on `ractor_cluster` turns on ractor's `cluster` feature for the whole build, which
//! removes ractor's blanket `Message` impl: every message type must then implement it itself.
//! The pipeline's messages carry typed reply ports and local channels, so they stay local (the
//! default methods: not serializable); the cluster's own wire messages are in
//! [`super::wire`]. The impls are collected here so the actor modules need no cluster edits.

use crate::actors::estimator::EstimatorMsg;
use crate::actors::evaluator::EvaluatorMsg;
use crate::actors::executor::ExecutorMsg;
use crate::actors::learner::LearnerMsg;
use crate::actors::proposer::ProposerMsg;
use crate::actors::reward::RewardMsg;
use crate::actors::solver::SolverMsg;
use crate::actors::store::StoreMsg;
use crate::actors::supervisor::SupervisorMsg;

impl ractor::Message for EstimatorMsg {}
impl ractor::Message for EvaluatorMsg {}
impl ractor::Message for ExecutorMsg {}
impl ractor::Message for LearnerMsg {}
impl ractor::Message for ProposerMsg {}
impl ractor::Message for RewardMsg {}
impl ractor::Message for SolverMsg {}
impl ractor::Message for StoreMsg {}
impl ractor::Message for SupervisorMsg {}
