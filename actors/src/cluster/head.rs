//! The head of a cluster: `azr run --cluster-listen HOST:PORT --cookie-file FILE`.
//!
//! It listens for nodes (`ractor_cluster` node server, cookie, optional TLS), admits them
//! (Hello: version and protocol check, then the run's config), tracks their sessions, and
//! dispatches the executor work of the pipeline to the members of [`EXECUTOR_GROUP`], its own
//! worker included.
//!
//! ## Work, loss and re-issue
//! The dispatcher takes a proposal from the pipeline's `proposals` channel only once some
//! member has a free unit of capacity (so backpressure reaches the proposer as in one process),
//! calls that member and, on the reply, pushes the result downstream exactly as the local
//! executor actor does. When the call fails (the node's session ended and took the remote actor
//! with it, the send failed, or it timed out) the attempt is counted as lost on that node and
//! the same job is issued again to another member, up to [`MAX_ATTEMPTS`] times. Only the reply
//! awaited is ever delivered (a late reply of a timed-out attempt has no receiver), and
//! validation has no side effects, so a job is neither lost nor delivered twice. At the end
//! `cluster.json` in the run directory holds the counts, which reconcile:
//! `sum(issued) = sum(completed) + sum(lost) + sum(in_flight)`, `sum(lost) = reissued`,
//! `jobs = delivered + cancelled` (cancelled: still in flight when the run ended, i.e. work of
//! slots admitted ahead that the run stopped before training).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use azr_core::executor::Executor;
use azr_core::tasks::TaskRegistry;
use ractor::rpc::CallResult;
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef};
use ractor_cluster::node::NodeConnectionMode;
use ractor_cluster::{IncomingEncryptionMode, NodeServer, NodeServerMessage};
use serde::Serialize;
use tokio::sync::{watch, Notify};

use super::events::{self, SessionEvent, SessionEventKind};
use super::wire::{Call, ExecJob, ExecReply, Hello, NodeRole, Welcome, HEAD_GROUP, PROTOCOL};
use super::worker::{self, ExecCall, ExecWorker};
use super::ClusterError;
use crate::actors::executor::deliver;
use crate::actors::{EstimateJob, ProposalItem, ToReward};
use crate::service::MAX_ATTEMPTS;

/// The name the head's own executor worker is reported under.
pub const HEAD_NODE: &str = "head";

/// How to run the head.
#[derive(Debug, Clone)]
pub struct HeadOptions {
    /// `HOST:PORT` to listen on for nodes.
    pub listen: String,
    /// The magic cookie.
    pub cookie: String,
    /// TLS certificate chain and key (PEM) to serve, if any.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Wait for this many nodes to join before training starts.
    pub min_nodes: usize,
    /// How long to wait for them.
    pub min_nodes_timeout: Duration,
    /// Per-attempt timeout of a dispatched job.
    pub timeout: Duration,
}

/// What the head knows of one node (and, at the end, `cluster.json`'s entry for it).
#[derive(Debug, Clone, Default, Serialize)]
pub struct NodeReport {
    /// Roles it hosts.
    pub roles: Vec<NodeRole>,
    /// Jobs it runs at once.
    pub capacity: usize,
    /// Its `/metrics` address.
    pub metrics_addr: Option<String>,
    /// Whether it is admitted and its session is up.
    pub up: bool,
    /// Times it joined (1 + times it came back).
    pub joins: u64,
    /// Sessions of it that ended.
    pub disconnects: u64,
    /// Jobs sent to it.
    pub issued: u64,
    /// Jobs it answered.
    pub completed: u64,
    /// Jobs lost on it (its session ended, the send failed or the call timed out).
    pub lost: u64,
    /// Jobs in flight on it now (at the end of a run: cancelled with the run).
    pub in_flight: u64,
    /// Rollout: generation requests sent to its engine (the head's own engine: `head`).
    pub gen_issued: u64,
    /// Rollout: requests it answered with samples that were delivered.
    pub gen_completed: u64,
    /// Rollout: requests lost with it (session ended, send failed, timed out), then re-issued.
    pub gen_lost: u64,
    /// Rollout: requests it refused (its weights older than the staleness bound allows) or
    /// failed, then re-issued.
    pub gen_refused: u64,
    /// Rollout: requests in flight on it now, or abandoned by their requester (at the end of a
    /// run: cancelled with it).
    pub gen_in_flight: u64,
    /// Rollout: samples it generated (delivered).
    pub gen_samples: u64,
    /// Rollout: policy version of the last snapshot its engine installed (none before the
    /// first of its current join).
    pub weights_version: Option<u64>,
    /// Rollout and evaluator: snapshots sent to it.
    pub weight_syncs: u64,
    /// Rollout and evaluator: bytes of weights sent to it.
    pub weights_bytes: u64,
    /// Evaluator: evaluations issued to it (the head: scored by its own evaluator).
    pub eval_issued: u64,
    /// Evaluator: evaluations it scored (their scores were recorded).
    pub eval_completed: u64,
    /// Evaluator: evaluations lost with it (session ended, send failed, timed out) while its
    /// snapshot or its request was in flight, then re-issued (the head: failed, not re-issued).
    pub eval_lost: u64,
    /// Evaluator: evaluations it refused or failed (no snapshot of the version, a failed
    /// evaluation), then re-issued.
    pub eval_refused: u64,
    /// Evaluator: evaluations in flight on it now (at the end of a run: cut off with it).
    pub eval_in_flight: u64,
    /// Units of its capacity held by the dispatcher (in flight, or about to be).
    #[serde(skip)]
    reserved: u64,
    /// `ractor_cluster` session id of its live session.
    #[serde(skip)]
    pub(super) session: Option<u64>,
    /// Rollout: samples of the requests in flight on it (the router's load measure).
    #[serde(skip)]
    pub(super) gen_load: u64,
    /// Rollout: a snapshot is being sent to it.
    #[serde(skip)]
    pub(super) syncing: bool,
    /// Rollout: no new sync before this time (after a failed one).
    #[serde(skip)]
    pub(super) sync_after: Option<Instant>,
}

/// The cluster's counts at the end of a run (`cluster.json`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct ClusterReport {
    /// Per node (the head's own worker is `head`).
    pub nodes: BTreeMap<String, NodeReport>,
    /// Distinct jobs dispatched.
    pub jobs: u64,
    /// Jobs whose result went downstream.
    pub delivered: u64,
    /// Jobs still in flight when the run ended (work of slots it would not train).
    pub cancelled: u64,
    /// Attempts issued again after a loss (equal to the losses unless a job failed for good,
    /// which ends the run).
    pub reissued: u64,
    /// Connections closed before the cookie handshake succeeded.
    pub auth_failures: u64,
    /// Nodes refused at Hello, with the reason.
    pub refused: Vec<String>,
    /// Rollout: distinct generation requests routed (to the head's engine or a node's).
    pub generations: u64,
    /// Rollout: requests whose samples went back to their requester.
    pub gen_delivered: u64,
    /// Rollout: requests the head's own engine failed (the error went to the requester; at
    /// the end of a run: requests cut off by the engine's shutdown).
    pub gen_failed: u64,
    /// Rollout: attempts issued again after a loss or refusal (equal to the sum of the nodes'
    /// `gen_lost + gen_refused`, less the head's own failures).
    pub gen_reissued: u64,
    /// Evaluator: distinct evaluations (due versions) scored in the cluster run.
    pub evaluations: u64,
    /// Evaluator: evaluations whose scores came back (from a node or the head's own
    /// evaluator) and were recorded, each once.
    pub eval_delivered: u64,
    /// Evaluator: evaluations the head's own evaluator failed after any node attempts.
    pub eval_failed: u64,
    /// Evaluator: node attempts issued again after a loss or refusal (equal to the sum of the
    /// nodes' `eval_lost + eval_refused`, less the head's own failures).
    pub eval_reissued: u64,
}

#[derive(Debug, Clone)]
pub(super) struct Session {
    pub(super) peer: Option<String>,
    addr: String,
    authenticated: bool,
}

#[derive(Default)]
pub(super) struct HeadState {
    pub(super) sessions: HashMap<u64, Session>,
    pub(super) report: ClusterReport,
}

impl HeadState {
    /// The admitted node a (remote) member actor belongs to, if its session is the node's
    /// live one.
    pub(super) fn node_of(&self, cell: &ActorCell) -> Option<String> {
        let id = cell.get_id();
        if id.is_local() {
            return Some(HEAD_NODE.to_string());
        }
        let name = self.sessions.get(&id.node())?.peer.clone()?;
        let n = self.report.nodes.get(&name)?;
        (n.up && n.session == Some(id.node())).then_some(name)
    }
}

/// State shared by the head's actor, its event task and its dispatchers.
pub(super) struct Shared {
    state: Mutex<HeadState>,
    pub(super) changed: Notify,
    config_toml: String,
    pub(super) next_id: AtomicU64,
}

impl Shared {
    pub(super) fn lock(&self) -> MutexGuard<'_, HeadState> {
        // A panic while holding the lock leaves plain counters behind: keep using them.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn on_event(&self, ev: SessionEvent) {
        let mut st = self.lock();
        match ev.kind {
            SessionEventKind::Opened => {
                tracing::info!(addr = %ev.addr, session = ev.node_id, "cluster connection opened");
                st.sessions.insert(
                    ev.node_id,
                    Session {
                        peer: ev.peer,
                        addr: ev.addr,
                        authenticated: false,
                    },
                );
            }
            SessionEventKind::Authenticated | SessionEventKind::Ready => {
                let s = st.sessions.entry(ev.node_id).or_insert(Session {
                    peer: None,
                    addr: ev.addr.clone(),
                    authenticated: false,
                });
                s.authenticated = true;
                if ev.peer.is_some() {
                    s.peer = ev.peer;
                }
            }
            SessionEventKind::Disconnected => {
                let s = st.sessions.remove(&ev.node_id);
                let authenticated = s.as_ref().is_some_and(|s| s.authenticated);
                let addr = s.as_ref().map_or(ev.addr.clone(), |s| s.addr.clone());
                let peer = s.and_then(|s| s.peer).or(ev.peer);
                if !authenticated {
                    st.report.auth_failures += 1;
                    tracing::error!(
                        %addr,
                        peer = peer.as_deref().unwrap_or("?"),
                        "refused a node: the connection closed before the cookie handshake \
                         succeeded (wrong cookie, or not an azr node)"
                    );
                } else if let Some(name) = peer {
                    if let Some(n) = st.report.nodes.get_mut(&name) {
                        if n.session == Some(ev.node_id) {
                            n.up = false;
                            n.session = None;
                            n.disconnects += 1;
                            tracing::warn!(
                                node = %name,
                                %addr,
                                in_flight = n.in_flight,
                                "node lost; its in-flight work is re-issued elsewhere"
                            );
                        }
                    }
                }
                super::head::publish_nodes_up(&st.report);
            }
        }
        drop(st);
        self.changed.notify_waiters();
    }

    fn hello(&self, h: Hello) -> Welcome {
        if let Err(reason) = check_hello(&h) {
            tracing::error!(node = %h.node, %reason, "refused a node");
            self.lock()
                .report
                .refused
                .push(format!("{}: {reason}", h.node));
            return Welcome::Refused { reason };
        }
        let mut st = self.lock();
        let sessions: Vec<u64> = st
            .sessions
            .iter()
            .filter(|(_, s)| s.authenticated && s.peer.as_deref() == Some(h.node.as_str()))
            .map(|(id, _)| *id)
            .collect();
        if sessions.len() > 1 {
            let reason = format!(
                "node name `{}` is already in use by another connected node (give each node its \
                 own --name)",
                h.node
            );
            tracing::error!(node = %h.node, %reason, "refused a node");
            st.report.refused.push(format!("{}: {reason}", h.node));
            return Welcome::Refused { reason };
        }
        let session = sessions.into_iter().max();
        let n = st.report.nodes.entry(h.node.clone()).or_default();
        let rejoined = n.joins > 0;
        n.roles = h.roles.clone();
        n.capacity = h.capacity;
        n.metrics_addr = h.metrics_addr.clone();
        n.up = true;
        n.joins += 1;
        n.session = session;
        // A node that joins again (restarted, or reconnected) gets a full snapshot first.
        n.weights_version = None;
        n.syncing = false;
        n.sync_after = None;
        let roles: Vec<&str> = h.roles.iter().map(|r| r.as_str()).collect();
        tracing::info!(
            node = %h.node,
            capacity = h.capacity,
            roles = %roles.join(","),
            rejoined,
            "node joined"
        );
        publish_nodes_up(&st.report);
        drop(st);
        self.changed.notify_waiters();
        Welcome::Accepted {
            config_toml: self.config_toml.clone(),
            rejoined,
        }
    }

    /// A member of the executor group with free capacity, least loaded first.
    fn try_acquire(&self) -> Option<Lease> {
        let members = worker::members();
        let mut st = self.lock();
        let mut best: Option<(f64, ActorCell, String)> = None;
        for cell in members {
            let Some(name) = st.node_of(&cell) else {
                continue;
            };
            let Some(n) = st.report.nodes.get(&name) else {
                continue;
            };
            if !n.up || n.capacity == 0 || n.reserved >= n.capacity as u64 {
                continue;
            }
            let load = n.reserved as f64 / n.capacity as f64;
            if best.as_ref().is_none_or(|(l, _, _)| load < *l) {
                best = Some((load, cell, name));
            }
        }
        let (_, cell, node) = best?;
        if let Some(n) = st.report.nodes.get_mut(&node) {
            n.reserved += 1;
        }
        Some(Lease { cell, node })
    }

    /// Wait for a member with free capacity.
    async fn acquire(&self) -> Lease {
        let mut waited = Instant::now();
        loop {
            // Registered before looking, so a release between the look and the wait wakes us.
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(l) = self.try_acquire() {
                return l;
            }
            // Process-group changes do not notify: poll as well.
            let _ = tokio::time::timeout(Duration::from_millis(100), notified).await;
            if waited.elapsed() > Duration::from_secs(10) {
                tracing::warn!("no executor capacity in the cluster: waiting for nodes");
                waited = Instant::now();
            }
        }
    }

    fn finish(&self, lease: &Lease, completed: bool) {
        let mut st = self.lock();
        if let Some(n) = st.report.nodes.get_mut(&lease.node) {
            n.reserved = n.reserved.saturating_sub(1);
            n.in_flight = n.in_flight.saturating_sub(1);
            if completed {
                n.completed += 1;
            } else {
                n.lost += 1;
            }
        }
        drop(st);
        count_job(
            &lease.node,
            "executor",
            if completed { "completed" } else { "lost" },
        );
        self.changed.notify_one();
    }

    /// Nodes up and ready: each of their roles' workers visible here (executor: a member of
    /// its group; rollout: its weights receiver, and with `weights` a first snapshot
    /// installed; evaluator: its worker and its weights receiver).
    fn nodes_ready(&self, weights: bool) -> usize {
        let executors = worker::members();
        let receivers = ractor::pg::get_members(&super::wire::WEIGHTS_GROUP.to_string());
        let evaluators = ractor::pg::get_members(&super::wire::EVAL_GROUP.to_string());
        let eval_receivers = ractor::pg::get_members(&super::wire::EVAL_WEIGHTS_GROUP.to_string());
        let st = self.lock();
        let has = |cells: &[ActorCell], name: &str| {
            cells
                .iter()
                .any(|c| !c.get_id().is_local() && st.node_of(c).as_deref() == Some(name))
        };
        st.report
            .nodes
            .iter()
            .filter(|(name, n)| {
                n.up && name.as_str() != HEAD_NODE
                    && (!n.roles.contains(&NodeRole::Executor) || has(&executors, name))
                    && (!n.roles.contains(&NodeRole::Rollout)
                        || (has(&receivers, name) && (!weights || n.weights_version.is_some())))
                    && (!n.roles.contains(&NodeRole::Evaluator)
                        || (has(&evaluators, name) && has(&eval_receivers, name)))
            })
            .count()
    }
}

/// Check a node's Hello: same protocol and azr version, at least one role, some capacity.
pub fn check_hello(h: &Hello) -> Result<(), String> {
    let ours = env!("CARGO_PKG_VERSION");
    if h.protocol != PROTOCOL {
        return Err(format!(
            "incompatible cluster protocol: node speaks {}, head speaks {PROTOCOL} (run the same \
             azr version on every machine)",
            h.protocol
        ));
    }
    if h.azr_version != ours {
        return Err(format!(
            "incompatible version: node runs azr {}, head runs azr {ours} (run the same azr \
             version on every machine)",
            h.azr_version
        ));
    }
    if h.node.is_empty() || h.node == HEAD_NODE || h.node.contains('@') {
        return Err(format!(
            "invalid node name `{}` (not empty, not `{HEAD_NODE}`, no `@`)",
            h.node
        ));
    }
    if h.roles.is_empty() {
        return Err("the node hosts no role".into());
    }
    if h.capacity == 0 {
        return Err("the node has no capacity".into());
    }
    Ok(())
}

/// One unit of a member's capacity, held while a job runs there.
struct Lease {
    cell: ActorCell,
    node: String,
}

/// The head's control actor (group [`HEAD_GROUP`]): answers Hello.
struct HeadActor(Arc<Shared>);

impl Actor for HeadActor {
    type Msg = Call<Hello, Welcome>;
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _me: ActorRef<Self::Msg>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle(
        &self,
        _me: ActorRef<Self::Msg>,
        msg: Self::Msg,
        _state: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        let w = self.0.hello(msg.req);
        let _ = msg.reply.send(w);
        Ok(())
    }
}

/// A running head.
pub struct ClusterHead {
    shared: Arc<Shared>,
    server: ActorRef<NodeServerMessage>,
    head_actor: ActorRef<Call<Hello, Welcome>>,
    local: Option<ActorRef<ExecCall>>,
    events: tokio::task::JoinHandle<()>,
    pub(super) timeout: Duration,
    /// Background tasks to end with the head (the rollout router's weight broadcaster).
    pub(super) tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    min_nodes: usize,
    min_nodes_timeout: Duration,
}

impl ClusterHead {
    /// Listen for nodes; `config_toml` is the run's config sent to every node that joins;
    /// `local` (task types and executor) runs an executor worker on the head itself.
    pub async fn start(
        opts: HeadOptions,
        config_toml: String,
        local: Option<(Arc<TaskRegistry>, Arc<Executor>)>,
    ) -> Result<Arc<Self>, ClusterError> {
        let addr = super::resolve(&opts.listen)?;
        let enc = match &opts.tls {
            Some((cert, key)) => Some(IncomingEncryptionMode::Tls(super::tls::acceptor(
                cert, key,
            )?)),
            None => None,
        };
        let server = NodeServer::new(
            addr.port(),
            opts.cookie.clone(),
            HEAD_NODE.to_string(),
            addr.ip().to_string(),
            enc,
            Some(NodeConnectionMode::Isolated),
        )
        .with_listen_addr(addr.ip());
        let (server, _) = Actor::spawn(None, server, ())
            .await
            .map_err(|e| ClusterError::Spawn(e.to_string()))?;
        let mut rx = events::subscribe(&server, "azr-head")?;
        let shared = Arc::new(Shared {
            state: Mutex::new(HeadState::default()),
            changed: Notify::new(),
            config_toml,
            next_id: AtomicU64::new(0),
        });
        let s = shared.clone();
        let events = tokio::spawn(async move {
            while let Some(ev) = rx.recv().await {
                s.on_event(ev);
            }
        });
        let (head_actor, _) = Actor::spawn(None, HeadActor(shared.clone()), ())
            .await
            .map_err(|e| ClusterError::Spawn(e.to_string()))?;
        ractor::pg::join(HEAD_GROUP.to_string(), vec![head_actor.get_cell()]);
        let local = if let Some((registry, executor)) = local {
            let capacity = executor.config().workers.max(1);
            {
                let mut st = shared.lock();
                let n = st.report.nodes.entry(HEAD_NODE.to_string()).or_default();
                n.roles = vec![NodeRole::Executor];
                n.capacity = capacity;
                n.up = true;
                n.joins = 1;
            }
            Some(
                ExecWorker {
                    node: HEAD_NODE.to_string(),
                    registry,
                    executor,
                    simulate: Duration::ZERO,
                }
                .spawn()
                .await?,
            )
        } else {
            None
        };
        tracing::info!(%addr, tls = opts.tls.is_some(), "cluster head listening");
        let head = Arc::new(Self {
            shared,
            server,
            head_actor,
            local,
            events,
            timeout: opts.timeout,
            tasks: Mutex::new(Vec::new()),
            min_nodes: opts.min_nodes,
            min_nodes_timeout: opts.min_nodes_timeout,
        });
        if opts.min_nodes > 0 {
            head.wait_for_nodes(opts.min_nodes, opts.min_nodes_timeout)
                .await?;
        }
        Ok(head)
    }

    /// Wait until `n` nodes are up with their workers (or fail after `timeout`).
    pub async fn wait_for_nodes(&self, n: usize, timeout: Duration) -> Result<(), ClusterError> {
        self.wait_ready(n, timeout, false).await
    }

    /// With `--cluster-min-nodes N`: wait until `N` nodes are ready, rollout nodes with their
    /// first snapshot installed (called once the rollout router runs).
    pub async fn wait_for_rollout_weights(&self) -> Result<(), ClusterError> {
        match self.min_nodes {
            0 => Ok(()),
            n => self.wait_ready(n, self.min_nodes_timeout, true).await,
        }
    }

    async fn wait_ready(
        &self,
        n: usize,
        timeout: Duration,
        weights: bool,
    ) -> Result<(), ClusterError> {
        let t0 = Instant::now();
        tracing::info!(nodes = n, weights, "waiting for nodes to be ready");
        loop {
            let up = self.shared.nodes_ready(weights);
            if up >= n {
                return Ok(());
            }
            if t0.elapsed() > timeout {
                return Err(ClusterError::Protocol(format!(
                    "only {up} of {n} nodes joined and were ready within {} s",
                    timeout.as_secs()
                )));
            }
            // Process-group changes do not notify: poll as well.
            let _ =
                tokio::time::timeout(Duration::from_millis(100), self.shared.changed.notified())
                    .await;
        }
    }

    /// The state shared with the head's dispatchers and routers.
    pub(super) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The counts so far.
    pub fn report(&self) -> ClusterReport {
        self.shared.lock().report.clone()
    }

    /// Dispatch every proposal of `rx` to the executor members, pushing results to
    /// `estimates_tx` / `reward_tx` (replaces the local executor's feeder). A job that fails
    /// on every attempt is reported on `fatal`.
    pub fn dispatch_executor(
        self: &Arc<Self>,
        rx: flume::Receiver<ProposalItem>,
        estimates_tx: flume::Sender<EstimateJob>,
        reward_tx: flume::Sender<ToReward>,
        fatal: watch::Sender<Option<String>>,
    ) -> tokio::task::JoinHandle<()> {
        let head = self.clone();
        tokio::spawn(async move {
            let mut running = tokio::task::JoinSet::new();
            loop {
                let lease = head.shared.acquire().await;
                let item = match rx.recv_async().await {
                    Ok(item) => item,
                    Err(_) => {
                        head.shared.release_unused(&lease);
                        break;
                    }
                };
                let id = head.shared.next_id.fetch_add(1, Ordering::SeqCst);
                head.shared.lock().report.jobs += 1;
                let (h, etx, rtx, fatal) = (
                    head.clone(),
                    estimates_tx.clone(),
                    reward_tx.clone(),
                    fatal.clone(),
                );
                running.spawn(async move {
                    if let Err(e) = h.run_job(lease, item, id, &etx, &rtx).await {
                        tracing::error!(job = id, error = %e, "executor job failed");
                        let _ = fatal.send(Some(e));
                    }
                });
                while running.try_join_next().is_some() {}
            }
            while running.join_next().await.is_some() {}
        })
    }

    async fn run_job(
        &self,
        lease: Lease,
        item: ProposalItem,
        id: u64,
        etx: &flume::Sender<EstimateJob>,
        rtx: &flume::Sender<ToReward>,
    ) -> Result<(), String> {
        let job = ExecJob {
            id,
            parsed: item.parsed.clone(),
            batch: item.slot.batch,
            first_version: item.generated.first_version,
        };
        let rep = self.execute_with(Some(lease), job).await?;
        deliver(item, rep.validated, etx, rtx)
            .await
            .map_err(|e| e.to_string())?;
        self.shared.lock().report.delivered += 1;
        Ok(())
    }

    /// Run every job of `jobs` on the members, as the dispatcher does (each job starts once
    /// some member has free capacity; a job whose member is lost is re-issued); the replies
    /// in completion order.
    pub async fn execute_all(
        self: &Arc<Self>,
        jobs: impl IntoIterator<Item = ExecJob>,
    ) -> Result<Vec<ExecReply>, String> {
        let mut running = tokio::task::JoinSet::new();
        for job in jobs {
            let lease = self.shared.acquire().await;
            let h = self.clone();
            running.spawn(async move { h.execute_with(Some(lease), job).await });
        }
        let mut out = Vec::new();
        while let Some(r) = running.join_next().await {
            out.push(r.map_err(|e| e.to_string())??);
        }
        Ok(out)
    }

    async fn execute_with(&self, lease: Option<Lease>, job: ExecJob) -> Result<ExecReply, String> {
        let id = job.id;
        let mut lease = lease;
        let mut last = String::new();
        for attempt in 1..=MAX_ATTEMPTS {
            let l = match lease.take() {
                Some(l) => l,
                None => self.shared.acquire().await,
            };
            self.shared.issue(&l);
            let actor: ActorRef<ExecCall> = l.cell.clone().into();
            let r = actor
                .call(
                    |reply| Call {
                        req: job.clone(),
                        reply,
                    },
                    Some(self.timeout),
                )
                .await;
            match r {
                Ok(CallResult::Success(rep)) => {
                    self.shared.finish(&l, true);
                    return Ok(rep);
                }
                Ok(CallResult::Timeout) => last = "timed out".into(),
                Ok(CallResult::SenderError) => last = "the member went away before replying".into(),
                Err(e) => last = format!("could not send: {e}"),
            }
            self.shared.finish(&l, false);
            if attempt < MAX_ATTEMPTS {
                self.shared.lock().report.reissued += 1;
                tracing::warn!(job = id, node = %l.node, attempt, reason = %last, "executor job lost; re-issuing");
            }
        }
        Err(format!(
            "executor job {id} failed on {MAX_ATTEMPTS} attempts (last: {last})"
        ))
    }

    /// Write the counts to `cluster.json` in `run_dir` and stop listening.
    pub fn finish(&self, run_dir: &Path) -> std::io::Result<ClusterReport> {
        let mut report = self.report();
        report.cancelled = report.jobs.saturating_sub(report.delivered);
        let text = serde_json::to_string_pretty(&report).map_err(std::io::Error::other)?;
        std::fs::write(run_dir.join("cluster.json"), text)?;
        tracing::info!(
            jobs = report.jobs,
            delivered = report.delivered,
            reissued = report.reissued,
            "cluster work reconciled"
        );
        self.stop();
        Ok(report)
    }

    /// Stop the head's actors and its node server (nodes see the session end).
    pub fn stop(&self) {
        if let Some(l) = &self.local {
            l.stop(None);
        }
        self.head_actor.stop(None);
        self.server.stop(None);
        self.events.abort();
        for t in self
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            t.abort();
        }
    }
}

impl Shared {
    /// Count a call about to be made under `lease`.
    fn issue(&self, lease: &Lease) {
        let mut st = self.lock();
        if let Some(n) = st.report.nodes.get_mut(&lease.node) {
            n.in_flight += 1;
            n.issued += 1;
        }
    }

    /// Give back a lease that was never used (the channel closed).
    fn release_unused(&self, lease: &Lease) {
        let mut st = self.lock();
        if let Some(n) = st.report.nodes.get_mut(&lease.node) {
            n.reserved = n.reserved.saturating_sub(1);
        }
        drop(st);
        self.changed.notify_one();
    }
}

/// Publish the number of nodes up (metrics).
pub(super) fn publish_nodes_up(report: &ClusterReport) {
    let up = report
        .nodes
        .iter()
        .filter(|(name, n)| n.up && name.as_str() != HEAD_NODE)
        .count();
    azr_core::metrics::CLUSTER_NODES_UP
        .gauge(&[])
        .set(up as f64);
}

/// Count one finished attempt of `work` (`executor`, `rollout` or `eval`) on `node` (metrics: one
/// series per node that ever did work, so the label stays as bounded as the cluster).
pub(super) fn count_job(node: &str, work: &'static str, outcome: &'static str) {
    azr_core::metrics::CLUSTER_JOBS_TOTAL
        .counter_for_node(node, &[("work", work), ("outcome", outcome)])
        .increment(1);
    tracing::trace!(node, work, outcome, "cluster job attempt finished");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello() -> Hello {
        Hello {
            node: "n1".into(),
            azr_version: env!("CARGO_PKG_VERSION").into(),
            protocol: PROTOCOL,
            roles: vec![NodeRole::Executor],
            capacity: 2,
            metrics_addr: None,
        }
    }

    #[test]
    fn hello_of_the_same_version_is_accepted() {
        assert_eq!(check_hello(&hello()), Ok(()));
    }

    #[test]
    fn other_versions_and_protocols_are_refused_with_the_reason() {
        let mut h = hello();
        h.azr_version = "0.0.1".into();
        let e = check_hello(&h).expect_err("refused");
        assert!(
            e.contains("incompatible version") && e.contains("0.0.1"),
            "{e}"
        );
        let mut h = hello();
        h.protocol = PROTOCOL + 1;
        let e = check_hello(&h).expect_err("refused");
        assert!(e.contains("incompatible cluster protocol"), "{e}");
        let mut h = hello();
        h.node = HEAD_NODE.into();
        assert!(check_hello(&h).is_err());
        let mut h = hello();
        h.roles.clear();
        assert!(check_hello(&h).is_err());
    }
}
