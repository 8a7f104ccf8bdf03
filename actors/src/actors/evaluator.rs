//! The evaluator: scores held-out benchmarks on the latest snapshot. Its requests go through the
//! same inference queue as training but are issued from a background task, so training never
//! waits for an evaluation.

use std::sync::Arc;
use std::time::Duration;

use azr_core::tasks::{Task, Verdict};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::{Deserialize, Serialize};

use super::handle::{RequestError, WorkerHandle};
use super::{serve, Ctx};
use crate::engine::Decoding;

/// Registered name.
pub const NAME: &str = "evaluator";

/// A named held-out set.
#[derive(Debug, Clone)]
pub struct Benchmark {
    /// Name (metric label).
    pub name: String,
    /// Items.
    pub tasks: Vec<Task>,
}

/// The score of one benchmark.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Score {
    /// Benchmark name.
    pub benchmark: String,
    /// Mean accuracy over items and samples (avg@k).
    pub accuracy: f64,
    /// Items scored.
    pub items: usize,
    /// Samples per item.
    pub samples: usize,
    /// Policy version evaluated.
    pub policy_version: u64,
}

/// Messages of [`Evaluator`].
pub enum EvaluatorMsg {
    /// Score benchmarks with `samples` answers per item.
    Evaluate {
        /// Step (fault injection, logs).
        step: u64,
        /// Sets to score.
        benchmarks: Arc<Vec<Benchmark>>,
        /// Samples per item.
        samples: usize,
        /// Decoding settings.
        decoding: Decoding,
        /// Seed.
        seed: u64,
        /// Reply: one score per benchmark.
        reply: RpcReplyPort<Result<Vec<Score>, String>>,
    },
}

/// The evaluator actor.
pub struct Evaluator;

/// State of [`Evaluator`].
pub struct EvaluatorState {
    ctx: Arc<Ctx>,
}

impl Actor for Evaluator {
    type Msg = EvaluatorMsg;
    type State = EvaluatorState;
    type Arguments = Arc<Ctx>;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        ctx: Arc<Ctx>,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(EvaluatorState { ctx })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let EvaluatorMsg::Evaluate {
            step,
            benchmarks,
            samples,
            decoding,
            seed,
            reply,
        } = msg;
        state.ctx.faults.maybe_panic(NAME, step);
        let ctx = state.ctx.clone();
        serve(NAME, reply, async move {
            evaluate(&ctx, &benchmarks, samples, decoding, seed).await
        });
        Ok(())
    }
}

/// Score every benchmark: `samples` answers per item, graded by the task types.
pub async fn evaluate(
    ctx: &Arc<Ctx>,
    benchmarks: &[Benchmark],
    samples: usize,
    decoding: Decoding,
    seed: u64,
) -> Result<Vec<Score>, String> {
    let mut scores = Vec::with_capacity(benchmarks.len());
    for (i, b) in benchmarks.iter().enumerate() {
        let version = ctx.inference.version();
        let outs = super::solver::solve(
            ctx,
            &b.tasks,
            samples,
            decoding,
            seed.wrapping_add(i as u64),
        )
        .await?;
        let items: Vec<(Task, String)> = outs
            .iter()
            .map(|o| (b.tasks[o.task_index].clone(), o.generated.text.clone()))
            .collect();
        // branch `arc` (issue #17): ARC answers are labels, graded by `azr_core::eval::arc`.
        let verdicts: Vec<Verdict> = if azr_core::eval::arc::is_arc_benchmark(&b.name) {
            let grade = |(t, r): &(Task, String)| azr_core::eval::arc::task_verdict(t, r);
            items.iter().map(grade).collect()
        } else {
            let c = ctx.clone();
            tokio::task::spawn_blocking(move || super::reward::grade(&c, &items))
                .await
                .map_err(|e| format!("grading task failed: {e}"))??
        };
        let correct = verdicts.iter().filter(|v| **v == Verdict::Correct).count();
        let accuracy = correct as f64 / verdicts.len().max(1) as f64;
        crate::telemetry::eval(&b.name, accuracy, version);
        scores.push(Score {
            benchmark: b.name.clone(),
            accuracy,
            items: b.tasks.len(),
            samples,
            policy_version: version,
        });
    }
    Ok(scores)
}

/// Typed handle to the evaluator.
#[derive(Clone)]
pub struct EvaluatorHandle(WorkerHandle<EvaluatorMsg>);

impl EvaluatorHandle {
    /// A handle with a per-attempt timeout.
    pub fn new(timeout: Duration) -> Self {
        Self(WorkerHandle::new(NAME, timeout))
    }

    /// Score benchmarks.
    pub async fn evaluate(
        &self,
        step: u64,
        benchmarks: Arc<Vec<Benchmark>>,
        samples: usize,
        decoding: Decoding,
        seed: u64,
    ) -> Result<Vec<Score>, RequestError> {
        self.0
            .request(|reply| EvaluatorMsg::Evaluate {
                step,
                benchmarks: benchmarks.clone(),
                samples,
                decoding,
                seed,
                reply,
            })
            .await
    }
}
