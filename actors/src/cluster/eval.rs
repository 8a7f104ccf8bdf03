//! The evaluator role: due evaluations scored on other machines.
//!
//! ```text
//!  head                                                       node (--roles evaluator)
//!   learner publish (due version v) ──> Published ──> evaluator actor
//!     └ ClusterHead::evaluate_remote ─┬─ WeightsCall chunks of v ──> WeightsReceiver ──> EvalHost
//!                                     └─ Call<EvalJob, EvalReply> ──> Server<EvalHost>: engine on v,
//!                                          benchmarks + settings        evaluate(), own executor
//!   scores ──> record (metrics, `eval` log line, eval.jsonl row tagged with the node)
//!   no evaluator node free, or every one lost or refused it ──> the head's own evaluator
//! ```
//!
//! ## Weights
//! The pinned snapshot goes the way rollout weights go ([`super::rollout::send_snapshot`]: the
//! safetensors buffer in [`super::wire::WEIGHT_CHUNK_BYTES`] chunks, model config and tokenizer
//! with the first), to the node's receiver in [`EVAL_WEIGHTS_GROUP`], which keeps it by version
//! until the evaluation request for that version takes it.
//!
//! ## Items
//! The request carries the benchmark items and the decoding settings (stop ids and the
//! evaluation's seed included), so a node scores exactly what the head would, whatever data
//! files it has, and needs none (the `heldout-*` sets live next to the head's model files).
//!
//! ## Loss
//! An evaluation is issued to one free evaluator node (one evaluation at a time per node, the
//! least used first; while every evaluator node is busy it waits for one, on its own task).
//! When its snapshot or its request does not come back (the node's session ended, a call
//! timed out: lost; the node had no snapshot or its evaluation failed: refused)
//! the attempt is counted on that node (`azr_cluster_jobs_total{work="eval"}`) and the
//! evaluation is issued again to another evaluator node, at the latest to the head's own
//! evaluator. Only the reply awaited is ever recorded, so an evaluation is recorded once. The
//! learner never waits for any of this: evaluations run on their own task, as local ones do.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use azr_core::executor::Executor;
use azr_core::model::Snapshot;
use azr_core::tasks::{RewardConfig, TaskRegistry};
use azr_core::types::PolicyVersion;
use candle_core::{DType, Device};
use ractor::rpc::CallResult;
use ractor::{ActorCell, ActorRef};

use super::head::{count_job, ClusterHead, Shared, HEAD_NODE};
use super::rollout::{model_spec, send_snapshot, SyncError, WeightSink, WeightsReceiver};
use super::server::{Serve, Server};
use super::wire::{
    Call, EvalJob, EvalReply, NodeRole, WeightsCall, EVAL_GROUP, EVAL_WEIGHTS_GROUP,
};
use super::ClusterError;
use crate::actors::evaluator::{evaluate, Benchmark, EvalSettings, Score};
use crate::actors::faults::FaultPlan;
use crate::actors::Ctx;
use crate::compute::{self, EngineConfig};

/// The evaluator worker's message.
pub type EvalCall = Call<EvalJob, EvalReply>;

/// Largest evaluation request (its benchmark items as JSON) sent to a node, well below
/// `ractor_cluster`'s 16 MiB frame limit; a larger evaluation is scored on the head.
pub const MAX_EVAL_JOB_BYTES: usize = 12 << 20;

/// Snapshots an evaluator node keeps at most (the head sends one per evaluation, right before
/// its request; an older one left by a lost attempt is dropped first).
const KEEP_SNAPSHOTS: usize = 2;

// ---------------------------------------------------------------------------------------------
// Head side.

/// One evaluation attempt's hold on a node: counted when finished; one dropped unfinished stays
/// in flight (cut off with the run).
struct Hold<'a> {
    shared: &'a Shared,
    node: String,
    outcome: Option<&'static str>,
}

impl Hold<'_> {
    fn finish(mut self, outcome: &'static str) {
        self.outcome = Some(outcome);
    }
}

impl Drop for Hold<'_> {
    fn drop(&mut self) {
        let Some(outcome) = self.outcome else {
            return;
        };
        let mut st = self.shared.lock();
        if let Some(n) = st.report.nodes.get_mut(&self.node) {
            n.eval_in_flight = n.eval_in_flight.saturating_sub(1);
            match outcome {
                "completed" => n.eval_completed += 1,
                "lost" => n.eval_lost += 1,
                _ => n.eval_refused += 1,
            }
        }
        drop(st);
        count_job(&self.node, "eval", outcome);
        self.shared.changed.notify_waiters();
    }
}

/// The head's own evaluator scoring an evaluation of a cluster run: counted under
/// [`HEAD_NODE`] when finished.
pub struct LocalEvaluation {
    shared: Arc<Shared>,
}

impl LocalEvaluation {
    /// The evaluation ended: scored (`ok`) or failed.
    pub fn finish(self, ok: bool) {
        let mut st = self.shared.lock();
        if let Some(n) = st.report.nodes.get_mut(HEAD_NODE) {
            n.eval_in_flight = n.eval_in_flight.saturating_sub(1);
            if ok {
                n.eval_completed += 1;
            } else {
                n.eval_lost += 1;
            }
        }
        if ok {
            st.report.eval_delivered += 1;
        } else {
            st.report.eval_failed += 1;
        }
        drop(st);
        count_job(HEAD_NODE, "eval", if ok { "completed" } else { "lost" });
    }
}

impl ClusterHead {
    /// Count a new evaluation of the run; its id (for logs and the request).
    pub fn evaluation_started(&self) -> u64 {
        let shared = self.shared();
        let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
        shared.lock().report.evaluations += 1;
        id
    }

    /// The head's own evaluator takes evaluation `id` (no evaluator node completed it).
    pub fn local_evaluation(&self) -> LocalEvaluation {
        let shared = self.shared().clone();
        {
            let mut st = shared.lock();
            let n = st.report.nodes.entry(HEAD_NODE.to_string()).or_default();
            if !n.roles.contains(&NodeRole::Evaluator) {
                n.roles.push(NodeRole::Evaluator);
            }
            n.up = true;
            n.joins = n.joins.max(1);
            n.eval_issued += 1;
            n.eval_in_flight += 1;
        }
        LocalEvaluation { shared }
    }

    /// Score `benchmarks` on `weights` (policy version `version`, published by `step`) on an
    /// evaluator node: the node that scored it and the scores, or `None` when no evaluator node
    /// is free or every one tried lost or refused it (the caller then scores it itself).
    pub async fn evaluate_remote(
        &self,
        id: u64,
        version: PolicyVersion,
        step: Option<u64>,
        weights: &Snapshot,
        benchmarks: &[Benchmark],
        settings: &EvalSettings,
    ) -> Option<(String, Vec<Score>)> {
        let shared = self.shared();
        // Nothing to encode while no evaluator node could take it.
        if let Pick::None = pick(shared, &HashSet::new(), false) {
            return None;
        }
        match serde_json::to_vec(benchmarks) {
            Ok(b) if b.len() <= MAX_EVAL_JOB_BYTES => {}
            Ok(b) => {
                tracing::warn!(
                    evaluation = id,
                    bytes = b.len(),
                    limit = MAX_EVAL_JOB_BYTES,
                    "benchmark items too large for one cluster message; evaluating on the head"
                );
                return None;
            }
            Err(e) => {
                tracing::warn!(evaluation = id, error = %e, "benchmarks not encodable; evaluating on the head");
                return None;
            }
        }
        let spec = match model_spec(weights) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(evaluation = id, error = %e, "evaluating on the head");
                return None;
            }
        };
        let snap = weights.clone();
        let bytes = match tokio::task::spawn_blocking(move || snap.to_safetensors()).await {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => {
                tracing::warn!(evaluation = id, error = %e, "weights not encodable; evaluating on the head");
                return None;
            }
            Err(e) => {
                tracing::warn!(evaluation = id, error = %e, "evaluating on the head");
                return None;
            }
        };
        let payload = Payload {
            id,
            version,
            step,
            bytes,
            spec,
            benchmarks,
            settings,
        };
        let mut excluded = HashSet::new();
        let mut waited = Instant::now();
        loop {
            // Registered before looking, so an attempt finishing between the look and the wait
            // wakes us.
            let notified = shared.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let (cell, node) = match pick(shared, &excluded, true) {
                Pick::Free(cell, node) => (cell, node),
                Pick::None => return None,
                Pick::Busy => {
                    // Wait for one (the learner does not: this is the evaluation's own task);
                    // process-group changes do not notify, so poll as well.
                    let _ = tokio::time::timeout(Duration::from_millis(100), notified).await;
                    if waited.elapsed() > Duration::from_secs(30) {
                        tracing::info!(
                            evaluation = id,
                            version,
                            "waiting for a free evaluator node"
                        );
                        waited = Instant::now();
                    }
                    continue;
                }
            };
            let hold = Hold {
                shared,
                node: node.clone(),
                outcome: None,
            };
            let (outcome, why) = match self.attempt(shared, &cell, &node, &payload).await {
                Ok(scores) => {
                    hold.finish("completed");
                    shared.lock().report.eval_delivered += 1;
                    tracing::info!(evaluation = id, version, %node, "evaluation scored on a node");
                    return Some((node, scores));
                }
                Err(e) => e,
            };
            hold.finish(outcome);
            shared.lock().report.eval_reissued += 1;
            tracing::warn!(
                evaluation = id,
                version,
                %node,
                outcome,
                reason = %why,
                "evaluation not scored by the node; re-issuing"
            );
            excluded.insert(node);
        }
    }

    /// One attempt of `p` on `node` (its evaluator worker `cell`): the snapshot, then the
    /// request; the scores, or the attempt's outcome (`lost` or `refused`) and why.
    async fn attempt(
        &self,
        shared: &Shared,
        cell: &ActorCell,
        node: &str,
        p: &Payload<'_>,
    ) -> Result<Vec<Score>, (&'static str, String)> {
        let (version, benchmarks) = (p.version, p.benchmarks);
        let t0 = Instant::now();
        let sent = send_snapshot(
            shared,
            EVAL_WEIGHTS_GROUP,
            node,
            version,
            &p.bytes,
            Some(&p.spec),
            self.timeout,
        )
        .await;
        match sent {
            Ok((_, n)) => {
                {
                    let mut st = shared.lock();
                    if let Some(r) = st.report.nodes.get_mut(node) {
                        r.weight_syncs += 1;
                        r.weights_bytes += n;
                    }
                }
                azr_core::metrics::CLUSTER_WEIGHTS_SENT_BYTES_TOTAL
                    .counter_for_node(node, &[])
                    .increment(n);
                tracing::info!(
                    %node,
                    version,
                    bytes = n,
                    secs = t0.elapsed().as_secs_f64(),
                    "weights sent to an evaluator node"
                );
            }
            Err(SyncError::Refused(why)) => return Err(("refused", format!("weights: {why}"))),
            Err(e) => return Err(("lost", format!("weights: {e}"))),
        }
        let job = EvalJob {
            id: p.id,
            version,
            step: p.step,
            benchmarks: benchmarks.to_vec(),
            settings: p.settings.clone(),
        };
        let actor: ActorRef<EvalCall> = cell.clone().into();
        let r = actor
            .call(|reply| Call { req: job, reply }, Some(self.timeout))
            .await;
        match r {
            Ok(CallResult::Success(EvalReply::Scores(scores))) => {
                check_scores(&scores, benchmarks).map_err(|why| ("refused", why))?;
                Ok(scores)
            }
            Ok(CallResult::Success(EvalReply::NoWeights { version })) => Err((
                "refused",
                format!("the node holds no snapshot of version {version}"),
            )),
            Ok(CallResult::Success(EvalReply::Failed(e))) => Err(("refused", e)),
            Ok(CallResult::Timeout) => Err(("lost", "timed out".into())),
            Ok(CallResult::SenderError) => {
                Err(("lost", "the node went away before replying".into()))
            }
            Err(e) => Err(("lost", format!("could not send: {e}"))),
        }
    }
}

/// What every attempt of one evaluation sends.
struct Payload<'a> {
    id: u64,
    version: PolicyVersion,
    step: Option<u64>,
    /// The pinned snapshot as safetensors (encoded once per evaluation).
    bytes: Vec<u8>,
    spec: super::wire::ModelSpec,
    benchmarks: &'a [Benchmark],
    settings: &'a EvalSettings,
}

/// What [`pick`] found.
enum Pick {
    /// A free evaluator node (its evaluator worker and name).
    Free(ActorCell, String),
    /// Evaluator nodes are up, all busy with another evaluation.
    Busy,
    /// No evaluator node is up (besides those excluded).
    None,
}

/// A free evaluator node not in `excluded` (the least used first: fewest evaluations issued),
/// with its evaluator worker; with `take`, the attempt is counted as issued and in flight there.
fn pick(shared: &Shared, excluded: &HashSet<String>, take: bool) -> Pick {
    let workers = ractor::pg::get_members(&EVAL_GROUP.to_string());
    let receivers = ractor::pg::get_members(&EVAL_WEIGHTS_GROUP.to_string());
    let mut st = shared.lock();
    let mut best: Option<(u64, String, ActorCell)> = None;
    let mut busy = false;
    for cell in workers {
        if cell.get_id().is_local() {
            continue;
        }
        let Some(name) = st.node_of(&cell) else {
            continue;
        };
        if excluded.contains(&name) {
            continue;
        }
        let Some(n) = st.report.nodes.get(&name) else {
            continue;
        };
        if !n.roles.contains(&NodeRole::Evaluator) {
            continue;
        }
        let receiver = receivers
            .iter()
            .any(|c| !c.get_id().is_local() && st.node_of(c).as_deref() == Some(name.as_str()));
        if !receiver {
            continue;
        }
        if n.eval_in_flight > 0 {
            busy = true;
            continue;
        }
        let key = (n.eval_issued, name.clone());
        if best.as_ref().is_none_or(|(i, b, _)| key < (*i, b.clone())) {
            best = Some((n.eval_issued, name, cell));
        }
    }
    let Some((_, name, cell)) = best else {
        return if busy { Pick::Busy } else { Pick::None };
    };
    if take {
        let n = st.report.nodes.entry(name.clone()).or_default();
        n.eval_issued += 1;
        n.eval_in_flight += 1;
    }
    Pick::Free(cell, name)
}

/// Check a node's scores: one per benchmark, in order.
fn check_scores(scores: &[Score], benchmarks: &[Benchmark]) -> Result<(), String> {
    if scores.len() != benchmarks.len() {
        return Err(format!(
            "{} scores for {} benchmarks",
            scores.len(),
            benchmarks.len()
        ));
    }
    for (s, b) in scores.iter().zip(benchmarks) {
        if s.benchmark != b.name || s.items != b.tasks.len() {
            return Err(format!(
                "a score of {} ({} items) where {} ({} items) was expected",
                s.benchmark,
                s.items,
                b.name,
                b.tasks.len()
            ));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Node side.

/// What an evaluator node scores with: the snapshots it received, its engine settings, task
/// types and executor.
pub struct EvalHost {
    snapshots: Mutex<BTreeMap<PolicyVersion, Snapshot>>,
    engine_cfg: EngineConfig,
    registry: Arc<TaskRegistry>,
    executor: Arc<Executor>,
    rewards: RewardConfig,
    /// Simulated extra time per evaluation, before the reply (tests: holds one in flight).
    simulate: Duration,
}

impl EvalHost {
    /// A host scoring with engines of `engine_cfg`, the task types of `registry` (rewards
    /// `rewards`) and `executor`; each evaluation is held `simulate` longer before its reply
    /// (tests; zero for none).
    pub fn new(
        engine_cfg: EngineConfig,
        registry: Arc<TaskRegistry>,
        executor: Arc<Executor>,
        rewards: RewardConfig,
        simulate: Duration,
    ) -> Arc<Self> {
        Arc::new(Self {
            snapshots: Mutex::new(BTreeMap::new()),
            engine_cfg,
            registry,
            executor,
            rewards,
            simulate,
        })
    }

    fn take(&self, version: PolicyVersion) -> Option<Snapshot> {
        self.snapshots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&version)
    }
}

impl WeightSink for EvalHost {
    /// Keep `snapshot` for the evaluation of `version` (dropping the oldest beyond
    /// [`KEEP_SNAPSHOTS`]).
    fn install(&self, version: PolicyVersion, snapshot: Snapshot) -> Result<(), String> {
        let mut m = self.snapshots.lock().unwrap_or_else(|p| p.into_inner());
        m.insert(version, snapshot);
        while m.len() > KEEP_SNAPSHOTS {
            m.pop_first();
        }
        Ok(())
    }
}

impl Serve for EvalHost {
    type Req = EvalJob;
    type Rep = EvalReply;

    async fn serve(self: Arc<Self>, req: EvalJob) -> EvalReply {
        serve(&self, req).await
    }
}

/// Score one evaluation on an engine of its own over the received snapshot.
async fn serve(host: &EvalHost, job: EvalJob) -> EvalReply {
    let t0 = Instant::now();
    let (id, version) = (job.id, job.version);
    tracing::info!(
        evaluation = id,
        version,
        step = job.step,
        "evaluation started"
    );
    let Some(snapshot) = host.take(version) else {
        tracing::warn!(
            evaluation = id,
            version,
            "evaluation refused: no snapshot of its version"
        );
        return EvalReply::NoWeights { version };
    };
    let codec: crate::engine::SharedCodec =
        Arc::new(crate::backend::TokenizerCodec(snapshot.tokenizer().clone()));
    let (engine, join) = match compute::spawn_engine(snapshot, version, host.engine_cfg.clone()) {
        Ok(e) => e,
        Err(e) => return EvalReply::Failed(format!("evaluation engine: {e}")),
    };
    let ctx = Arc::new(Ctx {
        registry: host.registry.clone(),
        executor: host.executor.clone(),
        codec,
        engine: engine.clone(),
        sampling: job.settings.params.clone(),
        rewards: host.rewards.clone(),
        faults: FaultPlan::default(),
        seed: job.settings.seed,
        train_estimates: false,
        greedy_probe: false,
        staleness: 0,
        rollout: None,
    });
    let r = evaluate(&ctx, &engine, &job.benchmarks, &job.settings).await;
    drop(ctx);
    engine.shutdown();
    let _ = tokio::task::spawn_blocking(move || join.join()).await;
    if !host.simulate.is_zero() {
        tokio::time::sleep(host.simulate).await;
    }
    match r {
        Ok(scores) => {
            for s in &scores {
                tracing::info!(
                    evaluation = id,
                    version = s.policy_version,
                    benchmark = %s.benchmark,
                    accuracy = s.accuracy,
                    items = s.items,
                    "scored"
                );
            }
            tracing::info!(
                evaluation = id,
                secs = t0.elapsed().as_secs_f64(),
                "evaluated"
            );
            EvalReply::Scores(scores)
        }
        Err(e) => {
            tracing::warn!(evaluation = id, error = %e, "evaluation failed");
            EvalReply::Failed(e.to_string())
        }
    }
}

/// Spawn the evaluator worker and its weights receiver (building snapshots on `device` in
/// `dtype`) and make them members of their groups.
pub async fn spawn_node_actors(
    host: Arc<EvalHost>,
    device: Device,
    dtype: DType,
) -> Result<(ActorRef<EvalCall>, ActorRef<WeightsCall>), ClusterError> {
    let receiver = WeightsReceiver::new(host.clone(), device, dtype)
        .spawn(EVAL_WEIGHTS_GROUP)
        .await?;
    let worker = Server(host).spawn_in(EVAL_GROUP).await?;
    Ok((worker, receiver))
}

#[cfg(test)]
mod tests {
    use super::*;
    use azr_core::tasks::{Provenance, Task};

    fn score(name: &str, items: usize) -> Score {
        Score {
            benchmark: name.into(),
            accuracy: 0.5,
            pass_at_k: 0.5,
            items,
            samples: 1,
            temperature: 0.0,
            policy_version: 3,
            item_correct: Vec::new(),
            answers_digest: String::new(),
        }
    }

    #[test]
    fn scores_must_match_the_benchmarks_in_order() {
        let task = |i: usize| {
            Task::math(
                format!("{i}+1"),
                format!("{}", i + 1),
                Provenance::benchmark("t", i.to_string()),
            )
        };
        let b = vec![
            Benchmark::new("a", vec![task(1), task(2)]),
            Benchmark::new("b", vec![task(3)]),
        ];
        assert!(check_scores(&[score("a", 2), score("b", 1)], &b).is_ok());
        assert!(check_scores(&[score("b", 1), score("a", 2)], &b).is_err());
        assert!(check_scores(&[score("a", 2)], &b).is_err());
        assert!(check_scores(&[score("a", 1), score("b", 1)], &b).is_err());
    }
}
