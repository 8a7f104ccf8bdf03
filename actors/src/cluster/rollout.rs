//! The rollout role: rollout engines on other machines, fed by the head's generating actors.
//!
//! ```text
//!  head                                                     node (--roles rollout)
//!   proposer / solver / estimator
//!     └ Ctx::generate_for ──> RolloutRouter ─┬─> own engine (EngineHandle)
//!                                            └─> Call<GenJob, GenReply> ──> Server<RolloutHost> ──> engine
//!   learner thread ── publish(v, snapshot) ──> broadcaster ── WeightsCall chunks ──> WeightsReceiver
//!                         (latest only, never waits)                         └ engine.publish(v) / spawn
//! ```
//!
//! ## Weights
//! After every learner publish the router keeps only the newest snapshot (a `watch` cell: the
//! learner thread hands it over and goes on). A broadcaster task sends it to every admitted
//! rollout node whose engine is older, one node at a time per node, as the safetensors buffer
//! of [`azr_core::model::Snapshot::to_safetensors`] cut in [`WEIGHT_CHUNK_BYTES`] chunks (below
//! `ractor_cluster`'s frame limit); the first snapshot of a join also carries the model config
//! and tokenizer ([`ModelSpec`]), so a node needs no model files. When the last chunk is in, the
//! node builds the snapshot and spawns its engine, or publishes it to the running one (taken
//! between two decode iterations, as on the head). The node acknowledges the version, and only
//! then does the router count the node as having it. A version superseded while it is being
//! sent is finished, then the newest is sent.
//!
//! ## Staleness across machines
//! Each request carries `min_version`, the oldest version allowed to produce its first token:
//! the batch its samples are trained in minus `run.staleness` (admission guarantees the head's
//! own engine is never older). The router sends a request to a node whose acknowledged
//! version is at least that, or whose weights are on their way: it has a snapshot of this
//! join, no failed sync pending, and the newest published version (the one the broadcaster
//! sends it next) is at least `min_version`. Right after a publish every node is in that
//! state for the few milliseconds of its sync, and a batch's requests are issued right after
//! a publish: counting only acknowledged versions would send them all to the head's engine.
//! The node checks again when it submits (waiting up to [`STALE_WAIT`] for a version still
//! being installed) and answers [`GenReply::Stale`] otherwise; the router also checks every returned sample's `first_version`. A refused
//! request is issued elsewhere, at the latest on the head's own engine, and counted. So the
//! bound of [`crate::pipeline::admission`] holds whatever machine generated a sample.
//!
//! ## Loss
//! A node whose session ends takes its actors, and so the pending replies, with it: the call
//! fails, the attempt is counted as lost on that node and the request is issued again to
//! another engine. Only the reply awaited is ever returned to the requester, so a request's
//! samples are delivered (and trained) once.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use azr_core::engine::{EngineConfig, EngineError, EngineHandle, GenRequest, SampleOut};
use azr_core::model::{ModelConfig, Snapshot, Tokenizer};
use azr_core::types::PolicyVersion;
use candle_core::{DType, Device};
use ractor::rpc::CallResult;
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef};
use tokio::sync::watch;

use super::head::{count_job, ClusterHead, Shared, HEAD_NODE};
use super::server::{Serve, Server};
use super::wire::{
    Call, GenJob, GenReply, ModelSpec, NodeRole, WeightChunk, WeightsAck, WeightsCall,
    ROLLOUT_GROUP, WEIGHTS_GROUP, WEIGHT_CHUNK_BYTES,
};
use super::ClusterError;

/// How long a rollout node waits for a version still being installed before it refuses a
/// request as stale.
pub const STALE_WAIT: Duration = Duration::from_secs(5);

/// After a failed weight sync, wait this long before the next try to that node.
const SYNC_RETRY: Duration = Duration::from_secs(2);

/// Why a sync did not start: the node's weights receiver is not visible yet.
const NO_RECEIVER: &str = "the node shows no weights receiver (yet)";

/// The rollout worker's message.
pub type GenCall = Call<GenJob, GenReply>;

// ---------------------------------------------------------------------------------------------
// Head side.

/// The newest published snapshot and its version.
#[derive(Clone)]
struct Latest {
    version: PolicyVersion,
    snapshot: Snapshot,
}

/// Routes the head's generation requests to the least-loaded rollout engine (its own or a
/// node's), and keeps the nodes' weights current. Built by [`ClusterHead::rollout_router`].
pub struct RolloutRouter {
    shared: Arc<Shared>,
    local: EngineHandle,
    timeout: Duration,
    spec: ModelSpec,
    latest: watch::Sender<Option<Latest>>,
    /// The encoded buffer of one version (the newest one asked for).
    encoded: Mutex<Option<(PolicyVersion, Arc<Vec<u8>>)>>,
}

/// Where one attempt of a request goes.
enum Target {
    Local,
    Remote { cell: ActorCell, node: String },
}

/// One attempt's hold on a node's load: released when dropped, so a requester that gives up
/// (an actor restarted mid-request) does not leave the load counted.
struct Hold<'a> {
    shared: &'a Shared,
    node: String,
    samples: u64,
    outcome: Option<&'static str>,
}

impl Hold<'_> {
    fn finish(mut self, outcome: &'static str) {
        self.outcome = Some(outcome);
    }
}

impl Drop for Hold<'_> {
    fn drop(&mut self) {
        let mut st = self.shared.lock();
        if let Some(n) = st.report.nodes.get_mut(&self.node) {
            n.gen_load = n.gen_load.saturating_sub(self.samples);
            if let Some(outcome) = self.outcome {
                n.gen_in_flight = n.gen_in_flight.saturating_sub(1);
                match outcome {
                    "completed" => {
                        n.gen_completed += 1;
                        n.gen_samples += self.samples;
                    }
                    "lost" => n.gen_lost += 1,
                    _ => n.gen_refused += 1,
                }
            }
        }
        drop(st);
        if let Some(outcome) = self.outcome {
            count_job(&self.node, "rollout", outcome);
        }
    }
}

impl ClusterHead {
    /// A router over the head's own engine `local` (and every rollout node that joins);
    /// `weights` (version `version`) is what the nodes get first. Starts the weight
    /// broadcaster (stopped with the head). Every engine has the run's `engine.max_slots`, so
    /// the router compares their loads in samples in flight.
    pub fn rollout_router(
        self: &Arc<Self>,
        local: EngineHandle,
        version: PolicyVersion,
        weights: &Snapshot,
    ) -> Result<Arc<RolloutRouter>, ClusterError> {
        let spec = model_spec(weights)?;
        {
            let mut st = self.shared().lock();
            let n = st.report.nodes.entry(HEAD_NODE.to_string()).or_default();
            if !n.roles.contains(&NodeRole::Rollout) {
                n.roles.push(NodeRole::Rollout);
            }
            n.up = true;
            n.joins = n.joins.max(1);
            n.weights_version = Some(version);
        }
        let (latest, _) = watch::channel(None);
        let router = Arc::new(RolloutRouter {
            shared: self.shared().clone(),
            local,
            timeout: self.timeout,
            spec,
            latest,
            encoded: Mutex::new(None),
        });
        router.publish(version, weights);
        let r = router.clone();
        let task = tokio::spawn(async move { r.broadcast().await });
        self.tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(task);
        Ok(router)
    }
}

impl RolloutRouter {
    /// A new version was published (called on the learner thread: never waits).
    pub fn publish(&self, version: PolicyVersion, snapshot: &Snapshot) {
        self.latest.send_replace(Some(Latest {
            version,
            snapshot: snapshot.clone(),
        }));
        {
            let mut st = self.shared.lock();
            if let Some(n) = st.report.nodes.get_mut(HEAD_NODE) {
                n.weights_version = Some(version);
            }
        }
        azr_core::metrics::CLUSTER_WEIGHTS_VERSION
            .gauge_for_node(HEAD_NODE, &[])
            .set(version as f64);
        self.shared.changed.notify_waiters();
    }

    /// Generate `req` on the least-loaded engine whose weights are at least `min_version`
    /// (the head's own engine always qualifies); a request lost with a node or refused by it
    /// is issued again elsewhere.
    pub async fn generate(
        &self,
        req: GenRequest,
        min_version: PolicyVersion,
    ) -> Result<Vec<SampleOut>, EngineError> {
        let id = self.shared.next_id.fetch_add(1, Ordering::SeqCst);
        self.shared.lock().report.generations += 1;
        let mut excluded: HashSet<String> = HashSet::new();
        loop {
            let (target, hold) = self.pick(req.n as u64, min_version, &excluded);
            match target {
                Target::Local => {
                    let r = match self.local.submit(req.clone()) {
                        Ok(ticket) => ticket.recv_async().await,
                        Err(e) => Err(e),
                    };
                    hold.finish(if r.is_ok() { "completed" } else { "lost" });
                    let mut st = self.shared.lock();
                    if r.is_ok() {
                        st.report.gen_delivered += 1;
                    } else {
                        st.report.gen_failed += 1;
                    }
                    return r;
                }
                Target::Remote { cell, node } => {
                    let actor: ActorRef<GenCall> = cell.into();
                    let job = GenJob {
                        id,
                        req: req.clone(),
                        min_version,
                    };
                    let r = actor
                        .call(|reply| Call { req: job, reply }, Some(self.timeout))
                        .await;
                    let (outcome, why) = match r {
                        Ok(CallResult::Success(GenReply::Samples(s))) => {
                            match check_samples(&s, req.n, min_version) {
                                Ok(()) => {
                                    hold.finish("completed");
                                    self.shared.lock().report.gen_delivered += 1;
                                    return Ok(s);
                                }
                                Err(why) => ("refused", why),
                            }
                        }
                        Ok(CallResult::Success(GenReply::Stale { have, need })) => (
                            "refused",
                            format!("its engine has version {have:?}, the request needs {need}"),
                        ),
                        Ok(CallResult::Success(GenReply::Failed(e))) => ("refused", e),
                        Ok(CallResult::Timeout) => ("lost", "timed out".to_string()),
                        Ok(CallResult::SenderError) => {
                            ("lost", "the node went away before replying".to_string())
                        }
                        Err(e) => ("lost", format!("could not send: {e}")),
                    };
                    hold.finish(outcome);
                    self.shared.lock().report.gen_reissued += 1;
                    tracing::warn!(
                        request = id,
                        %node,
                        outcome,
                        reason = %why,
                        "generation request not served by the node; re-issuing"
                    );
                    excluded.insert(node);
                }
            }
        }
    }

    /// The least-loaded eligible engine, its load taken.
    fn pick(
        &self,
        samples: u64,
        min_version: PolicyVersion,
        excluded: &HashSet<String>,
    ) -> (Target, Hold<'_>) {
        let members = ractor::pg::get_members(&ROLLOUT_GROUP.to_string());
        let published = self.latest.borrow().as_ref().map(|l| l.version);
        let mut st = self.shared.lock();
        let score = |n: &super::head::NodeReport| (n.gen_load, n.gen_issued);
        let mut best: Option<((u64, u64), Target, String)> = st
            .report
            .nodes
            .get(HEAD_NODE)
            .map(|n| (score(n), Target::Local, HEAD_NODE.to_string()));
        for cell in members {
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
            let acknowledged = n.weights_version.is_some_and(|v| v >= min_version);
            let on_its_way = n.weights_version.is_some()
                && n.sync_after.is_none()
                && published.is_some_and(|v| v >= min_version);
            let fresh = acknowledged || on_its_way;
            if !n.roles.contains(&NodeRole::Rollout) || !fresh {
                continue;
            }
            let s = score(n);
            if best.as_ref().is_none_or(|(b, _, _)| s < *b) {
                best = Some((
                    s,
                    Target::Remote {
                        cell,
                        node: name.clone(),
                    },
                    name,
                ));
            }
        }
        let (target, node) = match best {
            Some((_, t, node)) => (t, node),
            None => (Target::Local, HEAD_NODE.to_string()),
        };
        let n = st.report.nodes.entry(node.clone()).or_default();
        n.gen_issued += 1;
        n.gen_in_flight += 1;
        n.gen_load += samples;
        drop(st);
        (
            target,
            Hold {
                shared: &self.shared,
                node,
                samples,
                outcome: None,
            },
        )
    }

    /// Send the newest snapshot to every rollout node that lacks it, until the head stops.
    async fn broadcast(self: Arc<Self>) {
        let mut rx = self.latest.subscribe();
        loop {
            let latest = rx.borrow_and_update().clone();
            if let Some(latest) = latest {
                for (node, session, full) in self.due(latest.version) {
                    let r = self.clone();
                    let l = latest.clone();
                    tokio::spawn(async move { r.sync(node, session, l, full).await });
                }
            }
            // Woken by a publish, a node joining, or the poll (process-group changes).
            let changed = self.shared.changed.notified();
            tokio::select! {
                r = rx.changed() => if r.is_err() { return },
                _ = changed => {}
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
    }

    /// The rollout nodes to send `version` to now (marked as syncing), with their session and
    /// whether each needs the model spec (its first snapshot of this join).
    fn due(&self, version: PolicyVersion) -> Vec<(String, Option<u64>, bool)> {
        let mut st = self.shared.lock();
        let now = Instant::now();
        let mut out = Vec::new();
        for (name, n) in st.report.nodes.iter_mut() {
            if name == HEAD_NODE
                || !n.up
                || !n.roles.contains(&NodeRole::Rollout)
                || n.syncing
                || n.weights_version.is_some_and(|v| v >= version)
                || n.sync_after.is_some_and(|t| now < t)
            {
                continue;
            }
            n.syncing = true;
            out.push((name.clone(), n.session, n.weights_version.is_none()));
        }
        out
    }

    /// The safetensors buffer of `latest` (encoded once per version, off the async threads).
    async fn encoded(&self, latest: &Latest) -> Result<Arc<Vec<u8>>, String> {
        if let Some((v, b)) = self
            .encoded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            if *v == latest.version {
                return Ok(b.clone());
            }
        }
        let snap = latest.snapshot.clone();
        let bytes = tokio::task::spawn_blocking(move || snap.to_safetensors())
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        let bytes = Arc::new(bytes);
        *self.encoded.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((latest.version, bytes.clone()));
        Ok(bytes)
    }

    /// Send `latest` to `node` (in its session `session`); on success record the version it
    /// installed. A node that joined again meanwhile is left to the sync of its new session.
    async fn sync(self: Arc<Self>, node: String, session: Option<u64>, latest: Latest, full: bool) {
        let t0 = Instant::now();
        let result = self.send(&node, &latest, full).await;
        let mut st = self.shared.lock();
        let Some(n) = st.report.nodes.get_mut(&node) else {
            return;
        };
        if n.session != session {
            return;
        }
        n.syncing = false;
        match result {
            Ok((sent_session, bytes)) if Some(sent_session) == session => {
                n.weights_version = Some(latest.version);
                n.weight_syncs += 1;
                n.weights_bytes += bytes;
                n.sync_after = None;
                drop(st);
                azr_core::metrics::CLUSTER_WEIGHTS_VERSION
                    .gauge_for_node(&node, &[])
                    .set(latest.version as f64);
                azr_core::metrics::CLUSTER_WEIGHTS_SENT_BYTES_TOTAL
                    .counter_for_node(&node, &[])
                    .increment(bytes);
                tracing::info!(
                    %node,
                    version = latest.version,
                    bytes,
                    full,
                    secs = t0.elapsed().as_secs_f64(),
                    "weights sent to a rollout node"
                );
            }
            Ok(_) => {}
            Err(e) if e == NO_RECEIVER => {
                // Its workers start right after it joined: look again at the next poll.
                n.sync_after = Some(Instant::now() + Duration::from_millis(100));
            }
            Err(e) => {
                n.sync_after = Some(Instant::now() + SYNC_RETRY);
                drop(st);
                tracing::warn!(%node, version = latest.version, error = %e, "weight sync failed; retrying");
            }
        }
        self.shared.changed.notify_waiters();
    }

    /// The chunks of `latest` to `node`'s weights receiver; its session and the bytes sent.
    async fn send(&self, node: &str, latest: &Latest, full: bool) -> Result<(u64, u64), String> {
        let bytes = self.encoded(latest).await?;
        let spec = full.then_some(&self.spec);
        match send_snapshot(
            &self.shared,
            WEIGHTS_GROUP,
            node,
            latest.version,
            &bytes,
            spec,
            self.timeout,
        )
        .await
        {
            Ok(sent) => Ok(sent),
            Err(SyncError::NoReceiver) => Err(NO_RECEIVER.to_string()),
            Err(SyncError::Refused(why)) => {
                if !full {
                    // The node lost its engine's spec (restarted under the same session
                    // name): send the spec next time.
                    let mut st = self.shared.lock();
                    if let Some(n) = st.report.nodes.get_mut(node) {
                        n.weights_version = None;
                    }
                }
                Err(format!("refused: {why}"))
            }
            Err(SyncError::Failed(why)) => Err(why),
        }
    }
}

/// The model config and tokenizer of `weights`, as a node needs them to build a snapshot.
pub(super) fn model_spec(weights: &Snapshot) -> Result<ModelSpec, ClusterError> {
    Ok(ModelSpec {
        config_json: serde_json::to_string(weights.config())
            .map_err(|e| ClusterError::Protocol(format!("model config: {e}")))?,
        tokenizer_json: weights
            .tokenizer()
            .to_json()
            .map_err(|e| ClusterError::Protocol(format!("tokenizer: {e}")))?,
    })
}

/// Why a snapshot did not reach a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum SyncError {
    /// The node shows no member of the receivers' group (yet, or any more).
    NoReceiver,
    /// Its receiver refused it (the reason).
    Refused(String),
    /// A chunk was lost (the node went away, the call timed out or could not be sent).
    Failed(String),
}

impl std::fmt::Display for SyncError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SyncError::NoReceiver => f.write_str(NO_RECEIVER),
            SyncError::Refused(why) => write!(f, "refused: {why}"),
            SyncError::Failed(why) => f.write_str(why),
        }
    }
}

/// Send the safetensors buffer `bytes` of `version` to `node`'s member of the receivers'
/// `group` in [`WEIGHT_CHUNK_BYTES`] chunks, `spec` with the first one; the node's session
/// and the bytes sent. The one weight path of the cluster: rollout nodes get every version
/// this way, evaluator nodes the pinned version of each evaluation.
pub(super) async fn send_snapshot(
    shared: &Shared,
    group: &str,
    node: &str,
    version: PolicyVersion,
    bytes: &[u8],
    spec: Option<&ModelSpec>,
    timeout: Duration,
) -> Result<(u64, u64), SyncError> {
    let (cell, session) = {
        let st = shared.lock();
        ractor::pg::get_members(&group.to_string())
            .into_iter()
            .filter(|c| !c.get_id().is_local())
            .find(|c| st.node_of(c).as_deref() == Some(node))
            .map(|c| {
                let s = c.get_id().node();
                (c, s)
            })
            .ok_or(SyncError::NoReceiver)?
    };
    let actor: ActorRef<WeightsCall> = cell.into();
    let count = bytes.len().div_ceil(WEIGHT_CHUNK_BYTES).max(1);
    for (i, chunk) in bytes.chunks(WEIGHT_CHUNK_BYTES).enumerate() {
        let req = WeightChunk {
            version,
            index: i as u32,
            count: count as u32,
            total_bytes: bytes.len() as u64,
            spec: spec.filter(|_| i == 0).cloned(),
            data: chunk.to_vec(),
        };
        let r = actor
            .call(|reply| WeightsCall { req, reply }, Some(timeout))
            .await;
        match r {
            Ok(CallResult::Success(WeightsAck::Chunk)) if i + 1 < count => {}
            Ok(CallResult::Success(WeightsAck::Installed { version: v }))
                if i + 1 == count && v == version =>
            {
                return Ok((session, bytes.len() as u64));
            }
            Ok(CallResult::Success(WeightsAck::Refused(why))) => {
                return Err(SyncError::Refused(why))
            }
            Ok(CallResult::Success(other)) => {
                return Err(SyncError::Failed(format!(
                    "unexpected acknowledgement {other:?} of chunk {i}"
                )))
            }
            Ok(CallResult::Timeout) => {
                return Err(SyncError::Failed(format!("chunk {i} timed out")))
            }
            Ok(CallResult::SenderError) => {
                return Err(SyncError::Failed("the node went away".into()))
            }
            Err(e) => return Err(SyncError::Failed(format!("could not send: {e}"))),
        }
    }
    Err(SyncError::Failed("no chunk was sent".into()))
}

/// Check a node's samples: `n` of them, none started by a version older than `min_version`.
fn check_samples(s: &[SampleOut], n: usize, min_version: PolicyVersion) -> Result<(), String> {
    if s.len() != n {
        return Err(format!("{} samples for a request of {n}", s.len()));
    }
    if let Some(old) = s.iter().find(|x| x.first_version < min_version) {
        return Err(format!(
            "a sample started at version {}, the request needs {min_version}",
            old.first_version
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Node side.

/// A rollout node's engine, once its first snapshot arrived.
pub struct RolloutHost {
    engine: Mutex<Option<EngineHandle>>,
    joins: Mutex<Vec<std::thread::JoinHandle<()>>>,
    engine_cfg: EngineConfig,
    /// Simulated extra time per generation (tests: holds a request in flight; 0 = none).
    simulate: Duration,
}

impl RolloutHost {
    /// A host that will build its engine with `engine_cfg`; each generation is held `simulate`
    /// longer before its reply (tests; zero for none).
    pub fn new(engine_cfg: EngineConfig, simulate: Duration) -> Arc<Self> {
        Arc::new(Self {
            engine: Mutex::new(None),
            joins: Mutex::new(Vec::new()),
            engine_cfg,
            simulate,
        })
    }

    fn engine(&self) -> Option<EngineHandle> {
        self.engine
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Stop the engine (outstanding requests fail) and let its thread end on its own.
    pub fn shutdown(&self) {
        if let Some(e) = self.engine.lock().unwrap_or_else(|p| p.into_inner()).take() {
            e.shutdown();
        }
        // The thread ends once it has answered what is outstanding; nothing waits for it.
        self.joins.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

/// Where a node's weights receiver hands each snapshot it assembled.
pub trait WeightSink: Send + Sync + 'static {
    /// Take `snapshot` as policy version `version` (the reason when it cannot).
    fn install(&self, version: PolicyVersion, snapshot: Snapshot) -> Result<(), String>;
}

impl WeightSink for RolloutHost {
    /// Install `snapshot` as `version`: spawn the engine or publish to it.
    fn install(&self, version: PolicyVersion, snapshot: Snapshot) -> Result<(), String> {
        let mut engine = self.engine.lock().unwrap_or_else(|p| p.into_inner());
        match engine.as_ref() {
            Some(e) => e.publish(version, snapshot),
            None => {
                let (e, join) = azr_core::engine::spawn(snapshot, version, self.engine_cfg.clone())
                    .map_err(|e| format!("starting the rollout engine: {e}"))?;
                *engine = Some(e);
                self.joins
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(join);
            }
        }
        Ok(())
    }
}

/// A snapshot being received.
#[derive(Default)]
pub struct Assembly {
    version: PolicyVersion,
    next: u32,
    buf: Vec<u8>,
    spec: Option<ModelSpec>,
}

/// What a weights receiver builds snapshots with and hands them to.
pub struct Installer {
    /// Where the snapshots go.
    sink: Arc<dyn WeightSink>,
    /// Device and dtype of the snapshots (the run's `model.device` and `model.dtype`).
    device: Device,
    dtype: DType,
    /// The model spec (kept for versions sent without it).
    spec: Mutex<Option<ModelSpec>>,
}

/// A node's weights receiver (group [`WEIGHTS_GROUP`] for a rollout engine,
/// [`super::wire::EVAL_WEIGHTS_GROUP`] for an evaluator): assembles the chunks of a snapshot,
/// builds it and hands it to its sink.
pub struct WeightsReceiver(Arc<Installer>);

impl WeightsReceiver {
    /// A receiver building snapshots on `device` in `dtype` for `sink`.
    pub fn new(sink: Arc<dyn WeightSink>, device: Device, dtype: DType) -> Self {
        Self(Arc::new(Installer {
            sink,
            device,
            dtype,
            spec: Mutex::new(None),
        }))
    }

    /// Spawn it as a member of `group`.
    pub async fn spawn(self, group: &str) -> Result<ActorRef<WeightsCall>, ClusterError> {
        let (receiver, _) = Actor::spawn(None, self, ())
            .await
            .map_err(|e| ClusterError::Spawn(e.to_string()))?;
        ractor::pg::join(group.to_string(), vec![receiver.get_cell()]);
        Ok(receiver)
    }
}

impl Actor for WeightsReceiver {
    type Msg = WeightsCall;
    type State = Assembly;
    type Arguments = ();

    async fn pre_start(
        &self,
        _me: ActorRef<WeightsCall>,
        _: (),
    ) -> Result<Assembly, ActorProcessingErr> {
        Ok(Assembly::default())
    }

    async fn handle(
        &self,
        _me: ActorRef<WeightsCall>,
        msg: WeightsCall,
        st: &mut Assembly,
    ) -> Result<(), ActorProcessingErr> {
        let c = msg.req;
        if c.index == 0 {
            *st = Assembly {
                version: c.version,
                next: 0,
                buf: Vec::with_capacity(c.total_bytes as usize),
                spec: c.spec.clone(),
            };
        } else if c.version != st.version || c.index != st.next {
            let _ = msg.reply.send(WeightsAck::Refused(format!(
                "chunk {} of version {} out of order (expected chunk {} of version {})",
                c.index, c.version, st.next, st.version
            )));
            *st = Assembly::default();
            return Ok(());
        }
        st.buf.extend_from_slice(&c.data);
        st.next = c.index + 1;
        if st.next < c.count {
            let _ = msg.reply.send(WeightsAck::Chunk);
            return Ok(());
        }
        let done = std::mem::take(st);
        let host = self.0.clone();
        let ack = tokio::task::spawn_blocking(move || install(&host, done))
            .await
            .unwrap_or_else(|e| Err(format!("installing the snapshot: {e}")));
        let _ = msg.reply.send(match ack {
            Ok(version) => WeightsAck::Installed { version },
            Err(e) => {
                tracing::error!(error = %e, "weight snapshot refused");
                WeightsAck::Refused(e)
            }
        });
        Ok(())
    }
}

/// Build the received snapshot and hand it to the sink.
fn install(host: &Installer, a: Assembly) -> Result<PolicyVersion, String> {
    let spec = {
        let mut kept = host.spec.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = a.spec {
            *kept = Some(s);
        }
        kept.clone()
            .ok_or("no model spec before the first snapshot (the head sends it first)")?
    };
    let config: ModelConfig =
        serde_json::from_str(&spec.config_json).map_err(|e| format!("model config: {e}"))?;
    let tokenizer = Tokenizer::from_json(&spec.tokenizer_json).map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    let snap = Snapshot::from_safetensors(config, &a.buf, tokenizer, &host.device, host.dtype)
        .map_err(|e| format!("the snapshot: {e}"))?;
    host.sink.install(a.version, snap)?;
    tracing::info!(
        version = a.version,
        bytes = a.buf.len(),
        secs = t0.elapsed().as_secs_f64(),
        "weights installed"
    );
    Ok(a.version)
}

impl Serve for RolloutHost {
    type Req = GenJob;
    type Rep = GenReply;

    async fn serve(self: Arc<Self>, req: GenJob) -> GenReply {
        serve(&self, req).await
    }
}

/// Generate one job on the node's engine, if its weights are recent enough.
async fn serve(host: &RolloutHost, job: GenJob) -> GenReply {
    let t0 = Instant::now();
    let engine = loop {
        let e = host.engine();
        let have = e.as_ref().map(|e| e.version());
        if let (Some(e), Some(v)) = (&e, have) {
            if v >= job.min_version {
                break e.clone();
            }
        }
        if t0.elapsed() > STALE_WAIT {
            tracing::warn!(
                request = job.id,
                have = ?have,
                need = job.min_version,
                "generation refused: the weights here are older than the staleness bound allows"
            );
            return GenReply::Stale {
                have,
                need: job.min_version,
            };
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let id = job.id;
    tracing::debug!(request = id, "generation started");
    let r = match engine.submit(job.req) {
        Ok(ticket) => ticket.recv_async().await,
        Err(e) => Err(e),
    };
    if !host.simulate.is_zero() {
        tokio::time::sleep(host.simulate).await;
    }
    match r {
        Ok(s) => {
            tracing::debug!(request = id, secs = t0.elapsed().as_secs_f64(), "generated");
            GenReply::Samples(s)
        }
        Err(e) => GenReply::Failed(e.to_string()),
    }
}

/// Spawn the rollout worker and the weights receiver (building snapshots on `device` in
/// `dtype`) of a node and make them members of their groups; the host's engine starts with the
/// first snapshot.
pub async fn spawn_node_actors(
    host: Arc<RolloutHost>,
    device: Device,
    dtype: DType,
) -> Result<(ActorRef<GenCall>, ActorRef<WeightsCall>), ClusterError> {
    let receiver = WeightsReceiver::new(host.clone(), device, dtype)
        .spawn(WEIGHTS_GROUP)
        .await?;
    let worker = Server(host).spawn_in(ROLLOUT_GROUP).await?;
    Ok((worker, receiver))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(first: PolicyVersion) -> SampleOut {
        SampleOut {
            tokens: vec![1, 2],
            logprobs: vec![-0.5, -0.25],
            stop: azr_core::engine::StopReason::Length,
            first_version: first,
            last_version: first + 1,
        }
    }

    #[test]
    fn samples_older_than_the_bound_or_missing_are_refused() {
        assert!(check_samples(&[sample(3), sample(4)], 2, 3).is_ok());
        let e = check_samples(&[sample(3), sample(2)], 2, 3).expect_err("too old");
        assert!(e.contains("version 2"), "{e}");
        assert!(check_samples(&[sample(3)], 2, 0).is_err());
    }
}
