//! The evaluator: scores held-out benchmarks on the weights the learner publishes. Its
//! generations go through the same rollout engine as training, at low priority, and it runs on
//! its own, so training never waits for an evaluation. `azr eval` uses [`evaluate`] too.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use azr_core::model::SamplingParams;
use azr_core::tasks::{Task, Verdict};
use ractor::RpcReplyPort;
use serde::{Deserialize, Serialize};

use super::learner::EvalRequest;
use super::{Ctx, WorkError};
use crate::service::Service;
use crate::telemetry;

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
    /// Oldest policy version that produced an evaluated token.
    pub policy_version: u64,
}

/// How the evaluator decodes.
#[derive(Debug, Clone)]
pub struct EvalSettings {
    /// Samples per item (avg@k).
    pub samples: usize,
    /// Decoding (temperature, budget, stop ids; the seed is set per run).
    pub params: SamplingParams,
    /// Seed of the evaluation stream.
    pub seed: u64,
}

/// Messages of the evaluator.
pub enum EvaluatorMsg {
    /// Score every benchmark on the current weights; replies when written.
    Evaluate {
        /// What to evaluate.
        req: EvalRequest,
        /// Reply.
        reply: RpcReplyPort<Result<(), WorkError>>,
    },
}

/// The evaluator service.
pub struct Evaluator {
    ctx: Arc<Ctx>,
    benchmarks: Arc<Vec<Benchmark>>,
    settings: EvalSettings,
    out: PathBuf,
    pending: Arc<AtomicUsize>,
}

impl Evaluator {
    /// An evaluator of `benchmarks` appending to `out` (`eval.jsonl`); `pending` counts the
    /// requested evaluations not finished yet (decremented here).
    pub fn new(
        ctx: Arc<Ctx>,
        benchmarks: Arc<Vec<Benchmark>>,
        settings: EvalSettings,
        out: PathBuf,
        pending: Arc<AtomicUsize>,
    ) -> Self {
        Self {
            ctx,
            benchmarks,
            settings,
            out,
            pending,
        }
    }
}

/// Score every benchmark: `samples` answers per item through the engine, graded by the task
/// types. All items are submitted at once so the engine batches them.
pub async fn evaluate(
    ctx: &Arc<Ctx>,
    benchmarks: &[Benchmark],
    settings: &EvalSettings,
) -> Result<Vec<Score>, WorkError> {
    let mut scores = Vec::with_capacity(benchmarks.len());
    for (b_i, b) in benchmarks.iter().enumerate() {
        let mut jobs = Vec::with_capacity(b.tasks.len());
        for (i, task) in b.tasks.iter().enumerate() {
            let (_, ids) = super::solver::prompt(ctx, task)?;
            let params = SamplingParams {
                seed: settings
                    .seed
                    .wrapping_add((b_i as u64) << 32)
                    .wrapping_add(i as u64 * settings.samples as u64),
                ..settings.params.clone()
            };
            let c = ctx.clone();
            let n = settings.samples;
            jobs.push(tokio::spawn(async move {
                c.generate_with(ids, n, params, -1).await
            }));
        }
        let mut items: Vec<(Task, String)> = Vec::new();
        let mut version = u64::MAX;
        for (job, task) in jobs.into_iter().zip(&b.tasks) {
            let gens = job.await.map_err(|e| WorkError::Join(e.to_string()))??;
            for g in gens {
                version = version.min(g.first_version);
                items.push((task.clone(), g.text));
            }
        }
        // branch `arc` (issue #17): ARC answers are labels, graded by `azr_core::eval::arc`.
        let verdicts: Vec<Verdict> = if azr_core::eval::arc::is_arc_benchmark(&b.name) {
            let grade = |(t, r): &(Task, String)| azr_core::eval::arc::task_verdict(t, r);
            items.iter().map(grade).collect()
        } else {
            let c = ctx.clone();
            tokio::task::spawn_blocking(move || {
                items
                    .iter()
                    .map(|(t, text)| super::reward::grade(&c, t, text).map(|s| s.verdict))
                    .collect::<Result<Vec<Verdict>, WorkError>>()
            })
            .await
            .map_err(|e| WorkError::Join(e.to_string()))??
        };
        let correct = verdicts.iter().filter(|v| **v == Verdict::Correct).count();
        let accuracy = correct as f64 / verdicts.len().max(1) as f64;
        let version = if version == u64::MAX { 0 } else { version };
        telemetry::eval(&b.name, accuracy, version);
        scores.push(Score {
            benchmark: b.name.clone(),
            accuracy,
            items: b.tasks.len(),
            samples: settings.samples,
            policy_version: version,
        });
    }
    Ok(scores)
}

impl Service for Evaluator {
    type Msg = EvaluatorMsg;
    type State = ();
    type Error = WorkError;

    fn name(&self) -> &'static str {
        NAME
    }

    async fn init(&self) -> Result<(), WorkError> {
        Ok(())
    }

    async fn handle(&self, msg: EvaluatorMsg, _state: &mut ()) -> Result<(), WorkError> {
        let EvaluatorMsg::Evaluate { req, reply } = msg;
        self.ctx.faults.maybe_panic(NAME, req.step);
        let (ctx, benchmarks, out) = (self.ctx.clone(), self.benchmarks.clone(), self.out.clone());
        let pending = self.pending.clone();
        let settings = EvalSettings {
            seed: self
                .settings
                .seed
                .wrapping_add(req.step.wrapping_mul(0x9E37)),
            ..self.settings.clone()
        };
        tokio::spawn(async move {
            let t0 = Instant::now();
            let r = async {
                let scores = evaluate(&ctx, &benchmarks, &settings).await?;
                let mut lines = String::new();
                for s in &scores {
                    tracing::info!(
                        step = req.step,
                        published = req.version,
                        benchmark = %s.benchmark,
                        accuracy = s.accuracy,
                        version = s.policy_version,
                        "eval"
                    );
                    let mut v = serde_json::to_value(s).unwrap_or_default();
                    v["step"] = serde_json::json!(req.step);
                    lines.push_str(&v.to_string());
                    lines.push('\n');
                }
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&out)
                    .and_then(|mut f| f.write_all(lines.as_bytes()))
                    .map_err(|e| WorkError::Join(format!("writing {}: {e}", out.display())))
            }
            .await;
            telemetry::busy(NAME, t0.elapsed());
            if let Err(e) = &r {
                tracing::warn!(error = %e, "evaluation failed");
            }
            pending.fetch_sub(1, Ordering::SeqCst);
            // An evaluation failure is logged, not fatal to training.
            let _ = reply.send(Ok(()));
        });
        Ok(())
    }
}
