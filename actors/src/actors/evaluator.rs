//! The evaluator: scores held-out benchmarks on a weight snapshot the learner published. Every
//! evaluation pins one version: it runs a rollout engine of its own (`azr_core::engine`) on that
//! snapshot, so what it scores is exactly the weights of that version (recorded in `eval.jsonl`,
//! the log line and `azr_eval_policy_version`), and training never waits for it.
//! `azr eval` and `azr rlvr --eval-only` use [`evaluate`] too, on the weights they load.
//!
//! With a cluster head whose nodes host the evaluator role, a due evaluation is first offered
//! to one of them ([`crate::cluster::eval`]): the node gets the pinned snapshot and the items,
//! scores them with its own engine and executor through [`evaluate`], and the head records the
//! scores here exactly as its own, tagged with the node. An evaluation no node completes is
//! scored on the head.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use azr_core::eval::ArcPrompt;
use azr_core::model::{SamplingParams, Snapshot};
use azr_core::tasks::{Task, Verdict};
use azr_core::types::PolicyVersion;
use ractor::RpcReplyPort;
use serde::{Deserialize, Serialize};

use super::learner::EvalRequest;
use super::{Ctx, Generated, WorkError};
use crate::cluster::head::{ClusterHead, HEAD_NODE};
use crate::compute::{self, EngineConfig, EngineHandle, GenRequest};
use crate::service::Service;
use crate::telemetry;

/// Registered name.
pub const NAME: &str = "evaluator";

/// A named held-out set (plain data: a remote evaluator gets it in its request).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Benchmark {
    /// Name (metric label).
    pub name: String,
    /// Items.
    pub tasks: Vec<Task>,
    /// ARC sets: each task's `problem` is the whole prompt, rendered by this `[evaluator.arc]`
    /// prompt, and a response is graded by label after its stop cut
    /// (`azr_core::eval::arc::task_verdict`). Other sets are prompted and graded by their task
    /// type.
    pub arc: Option<ArcPrompt>,
    /// `(samples, temperature)` replacing the evaluator's decoding for this set (the 1-shot
    /// RLVR paper's avg@8 at 0.6 on AIME and AMC: `evaluator.paper_protocol`).
    pub sampled: Option<(usize, f32)>,
}

impl Benchmark {
    /// A set prompted and graded by its task type, with the evaluator's decoding.
    pub fn new(name: impl Into<String>, tasks: Vec<Task>) -> Self {
        Self {
            name: name.into(),
            tasks,
            arc: None,
            sampled: None,
        }
    }
}

/// The score of one benchmark.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Score {
    /// Benchmark name.
    pub benchmark: String,
    /// Mean accuracy over items and samples (avg@k).
    pub accuracy: f64,
    /// Share of items with at least one correct sample (pass@k, k = `samples`; the accuracy
    /// when greedy).
    #[serde(default)]
    pub pass_at_k: f64,
    /// Items scored.
    pub items: usize,
    /// Samples per item (1 when greedy).
    pub samples: usize,
    /// Decoding temperature (0 = greedy).
    pub temperature: f32,
    /// The policy version of the weights scored (oldest version that produced a token).
    pub policy_version: u64,
    /// FNV-1a (64 bits, 16 hex digits) of the generated token ids, answer by answer in item
    /// and sample order: two evaluations with the same digest decoded the same answers.
    #[serde(default)]
    pub answers_digest: String,
    /// Correct samples of each item, in item order (`azr eval --items` writes them; not part
    /// of `eval.jsonl` rows, and empty in scores that crossed the cluster wire).
    #[serde(skip)]
    pub item_correct: Vec<usize>,
}

/// How the evaluator decodes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvalSettings {
    /// Samples per item (avg@k; 1 when greedy).
    pub samples: usize,
    /// Decoding (temperature, budget, stop ids; the seed is set per item).
    pub params: SamplingParams,
    /// Seed of the evaluation stream.
    pub seed: u64,
}

/// The weight snapshots published for a due evaluation, by version, until the evaluator takes
/// them (one copy of the weights per pending evaluation; snapshots share nothing with the
/// learner's live weights).
#[derive(Debug, Clone, Default)]
pub struct Published {
    inner: Arc<Mutex<BTreeMap<PolicyVersion, Snapshot>>>,
}

impl Published {
    /// Keep `weights` of `version` for an evaluation.
    pub fn keep(&self, version: PolicyVersion, weights: Snapshot) {
        // A poisoned lock only means a panic elsewhere mid-insert; the map is still usable.
        let mut m = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        m.insert(version, weights);
    }

    /// Take the snapshot of `version`, if it was kept.
    pub fn take(&self, version: PolicyVersion) -> Option<Snapshot> {
        let mut m = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        m.remove(&version)
    }
}

/// Messages of the evaluator.
pub enum EvaluatorMsg {
    /// Score every benchmark on the published weights of `req.version`; replies at once (the
    /// evaluation runs on its own).
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
    cluster: Option<Arc<ClusterHead>>,
    benchmarks: Arc<Vec<Benchmark>>,
    settings: EvalSettings,
    published: Published,
    engine: EngineConfig,
    out: PathBuf,
    pending: Arc<AtomicUsize>,
}

impl Evaluator {
    /// An evaluator of `benchmarks` appending to `out` (`eval.jsonl`), scoring the snapshots
    /// kept in `published` with engines configured by `engine`; `pending` counts the requested
    /// evaluations not finished yet (decremented here).
    pub fn new(
        ctx: Arc<Ctx>,
        benchmarks: Arc<Vec<Benchmark>>,
        settings: EvalSettings,
        published: Published,
        engine: EngineConfig,
        out: PathBuf,
        pending: Arc<AtomicUsize>,
    ) -> Self {
        Self {
            ctx,
            cluster: None,
            benchmarks,
            settings,
            published,
            engine,
            out,
            pending,
        }
    }

    /// Offer each due evaluation to the evaluator nodes of `cluster` first (the head's own
    /// evaluator scores it when none does); `None`: always here.
    pub fn with_cluster(mut self, cluster: Option<Arc<ClusterHead>>) -> Self {
        self.cluster = cluster;
        self
    }
}

/// The last `keep` tokens of `ids` (a prompt longer than the engine's sequence budget minus the
/// answer budget is cut on the left, as lm-evaluation-harness does).
fn left_truncate(mut ids: Vec<u32>, keep: usize) -> Vec<u32> {
    if ids.len() > keep {
        ids.drain(..ids.len() - keep);
    }
    ids
}

/// 64-bit FNV-1a.
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    /// One answer: its length, then its token ids (so answers cannot run into each other).
    fn answer(&mut self, tokens: &[u32]) {
        self.write(&(tokens.len() as u64).to_le_bytes());
        for t in tokens {
            self.write(&t.to_le_bytes());
        }
    }

    fn hex(&self) -> String {
        format!("{:016x}", self.0)
    }
}

/// Score every benchmark: `samples` answers per item generated by `engine`, graded by the task
/// types (ARC: by label). All items of a benchmark are submitted at once, so the engine batches
/// them. Records nothing: the caller does ([`record`] in a run).
pub async fn evaluate(
    ctx: &Arc<Ctx>,
    engine: &EngineHandle,
    benchmarks: &[Benchmark],
    settings: &EvalSettings,
) -> Result<Vec<Score>, WorkError> {
    let mut scores = Vec::with_capacity(benchmarks.len());
    for (b_i, b) in benchmarks.iter().enumerate() {
        let (samples, temperature) = b
            .sampled
            .unwrap_or((settings.samples, settings.params.temperature));
        let samples = if temperature <= 0.0 {
            1
        } else {
            samples.max(1)
        };
        let keep = engine
            .max_seq_len()
            .saturating_sub(settings.params.max_new_tokens)
            .max(engine.max_seq_len() / 2)
            .max(1);
        let mut tickets = Vec::with_capacity(b.tasks.len());
        for (i, task) in b.tasks.iter().enumerate() {
            let ids = match &b.arc {
                Some(_) => ctx.codec.encode(&task.problem)?,
                None => super::solver::prompt(ctx, task)?.1,
            };
            let params = SamplingParams {
                temperature,
                seed: settings
                    .seed
                    .wrapping_add((b_i as u64) << 32)
                    .wrapping_add(i as u64 * samples as u64),
                ..settings.params.clone()
            };
            tickets.push(engine.submit(GenRequest {
                prompt: left_truncate(ids, keep),
                n: samples,
                params,
                priority: -1,
            })?);
        }
        let mut items: Vec<(Task, String)> = Vec::with_capacity(b.tasks.len() * samples);
        let mut version = u64::MAX;
        let mut digest = Fnv::new();
        for (ticket, task) in tickets.into_iter().zip(&b.tasks) {
            for s in ticket.recv_async().await? {
                digest.answer(&s.tokens);
                let g = Generated::decode(s, &ctx.codec)?;
                version = version.min(g.first_version);
                items.push((task.clone(), g.text));
            }
        }
        let verdicts: Vec<Verdict> = match &b.arc {
            Some(p) => items
                .iter()
                .map(|(t, r)| azr_core::eval::arc::task_verdict(t, p.cut(r)))
                .collect(),
            None => {
                let c = ctx.clone();
                tokio::task::spawn_blocking(move || {
                    items
                        .iter()
                        .map(|(t, text)| super::reward::grade(&c, t, text).map(|s| s.verdict))
                        .collect::<Result<Vec<Verdict>, WorkError>>()
                })
                .await
                .map_err(|e| WorkError::Join(e.to_string()))??
            }
        };
        // Samples come item by item, `samples` each.
        let graded: Vec<Vec<bool>> = verdicts
            .chunks(samples.max(1))
            .map(|c| c.iter().map(|v| *v == Verdict::Correct).collect())
            .collect();
        let accuracy = azr_core::eval::avg_at_k(&graded);
        let pass_at_k = azr_core::eval::pass_at_k(&graded);
        let version = if version == u64::MAX {
            engine.version()
        } else {
            version
        };
        scores.push(Score {
            benchmark: b.name.clone(),
            accuracy,
            pass_at_k,
            items: b.tasks.len(),
            samples,
            temperature: temperature.max(0.0),
            policy_version: version,
            answers_digest: digest.hex(),
            item_correct: graded
                .iter()
                .map(|g| g.iter().filter(|&&c| c).count())
                .collect(),
        });
    }
    Ok(scores)
}

/// The score lines of one evaluation for `eval.jsonl` (`step` absent for the evaluation of
/// the starting weights; `node`, the cluster node that scored it, only in a cluster run).
fn lines(scores: &[Score], step: Option<u64>, node: Option<&str>) -> String {
    let mut out = String::new();
    for s in scores {
        let mut v = serde_json::to_value(s).unwrap_or_default();
        if let Some(step) = step {
            v["step"] = serde_json::json!(step);
        }
        if let Some(node) = node {
            v["node"] = serde_json::json!(node);
        }
        out.push_str(&v.to_string());
        out.push('\n');
    }
    out
}

/// Score `benchmarks` on `weights` (version `req.version`) on an engine of its own here.
async fn score_here(
    ctx: &Arc<Ctx>,
    version: PolicyVersion,
    weights: Snapshot,
    benchmarks: &[Benchmark],
    settings: &EvalSettings,
    engine_cfg: EngineConfig,
) -> Result<Vec<Score>, WorkError> {
    let (engine, join) = compute::spawn_engine(weights, version, engine_cfg)
        .map_err(|e| WorkError::Join(format!("evaluation engine: {e}")))?;
    let scores = evaluate(ctx, &engine, benchmarks, settings).await;
    engine.shutdown();
    let _ = tokio::task::spawn_blocking(move || join.join()).await;
    scores
}

/// Score one due evaluation: on an evaluator node of `cluster` if one completes it, else here;
/// the node that scored it (`None` without a cluster) and the scores.
async fn score_pinned(
    ctx: &Arc<Ctx>,
    cluster: Option<&ClusterHead>,
    req: EvalRequest,
    weights: Snapshot,
    benchmarks: &[Benchmark],
    settings: &EvalSettings,
    engine_cfg: EngineConfig,
) -> Result<(Option<String>, Vec<Score>), WorkError> {
    let Some(head) = cluster else {
        let scores =
            score_here(ctx, req.version, weights, benchmarks, settings, engine_cfg).await?;
        return Ok((None, scores));
    };
    let id = head.evaluation_started();
    if let Some((node, scores)) = head
        .evaluate_remote(id, req.version, req.step, &weights, benchmarks, settings)
        .await
    {
        return Ok((Some(node), scores));
    }
    let hold = head.local_evaluation();
    let r = score_here(ctx, req.version, weights, benchmarks, settings, engine_cfg).await;
    hold.finish(r.is_ok());
    Ok((Some(HEAD_NODE.to_string()), r?))
}

/// Record the scores of one evaluation: the `azr_eval_*` metrics, one `eval` log line per
/// benchmark and the rows appended to `out` (`eval.jsonl`), the same whichever machine scored
/// it (`node`: where, in a cluster run).
fn record(
    scores: &[Score],
    step: Option<u64>,
    node: Option<&str>,
    out: &std::path::Path,
) -> Result<(), WorkError> {
    for s in scores {
        telemetry::eval(&s.benchmark, s.accuracy, s.policy_version);
        tracing::info!(
            step,
            version = s.policy_version,
            benchmark = %s.benchmark,
            accuracy = s.accuracy,
            items = s.items,
            samples = s.samples,
            node = node.unwrap_or("-"),
            "eval"
        );
    }
    let text = lines(scores, step, node);
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(out)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| WorkError::Join(format!("writing {}: {e}", out.display())))
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
        if let Some(step) = req.step {
            self.ctx.faults.maybe_panic(NAME, step);
        }
        let (ctx, benchmarks, out) = (self.ctx.clone(), self.benchmarks.clone(), self.out.clone());
        let pending = self.pending.clone();
        let settings = EvalSettings {
            seed: self
                .settings
                .seed
                .wrapping_add(req.version.wrapping_mul(0x9E37)),
            ..self.settings.clone()
        };
        let weights = self.published.take(req.version);
        let engine_cfg = self.engine.clone();
        let cluster = self.cluster.clone();
        tokio::spawn(async move {
            let t0 = Instant::now();
            let r = async {
                let weights = weights.ok_or_else(|| {
                    WorkError::Join(format!("no published weights of version {}", req.version))
                })?;
                let (node, scores) = score_pinned(
                    &ctx,
                    cluster.as_deref(),
                    req,
                    weights,
                    &benchmarks,
                    &settings,
                    engine_cfg,
                )
                .await?;
                record(&scores, req.step, node.as_deref(), &out)
            }
            .await;
            telemetry::busy(NAME, t0.elapsed());
            if let Err(e) = &r {
                tracing::warn!(error = %e, version = req.version, "evaluation failed");
            }
            pending.fetch_sub(1, Ordering::SeqCst);
            // An evaluation failure is logged, not fatal to training.
            let _ = reply.send(Ok(()));
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_prompts_keep_their_end() {
        assert_eq!(left_truncate(vec![1, 2, 3, 4], 2), vec![3, 4]);
        assert_eq!(left_truncate(vec![1, 2], 4), vec![1, 2]);
    }

    #[test]
    fn start_lines_have_no_step() {
        let s = Score {
            benchmark: "math500".into(),
            accuracy: 0.5,
            pass_at_k: 0.5,
            items: 2,
            samples: 1,
            temperature: 0.0,
            policy_version: 7,
            answers_digest: "00000000000000ff".into(),
            item_correct: vec![1, 0],
        };
        let at_start: serde_json::Value =
            serde_json::from_str(lines(std::slice::from_ref(&s), None, None).trim()).unwrap();
        assert!(at_start.get("step").is_none());
        assert!(at_start.get("node").is_none());
        assert!(
            at_start.get("item_correct").is_none(),
            "per-item results stay out of eval.jsonl"
        );
        assert_eq!(at_start["policy_version"], 7);
        assert_eq!(at_start["answers_digest"], "00000000000000ff");
        let later: serde_json::Value =
            serde_json::from_str(lines(&[s], Some(3), Some("gpu-1")).trim()).unwrap();
        assert_eq!(later["step"], 3);
        assert_eq!(later["node"], "gpu-1");
    }

    #[test]
    fn the_answer_digest_separates_answers_and_orders() {
        let d = |answers: &[&[u32]]| {
            let mut f = Fnv::new();
            for a in answers {
                f.answer(a);
            }
            f.hex()
        };
        // FNV-1a of nothing is its offset basis.
        assert_eq!(Fnv::new().hex(), "cbf29ce484222325");
        assert_eq!(d(&[&[1, 2], &[3]]), d(&[&[1, 2], &[3]]));
        assert_ne!(d(&[&[1, 2], &[3]]), d(&[&[1], &[2, 3]]));
        assert_ne!(d(&[&[1, 2], &[3]]), d(&[&[3], &[1, 2]]));
        assert_eq!(d(&[&[1]]).len(), 16);
    }
}
