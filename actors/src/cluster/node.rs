//! A worker node: `azr node --join HOST:PORT --cookie-file FILE`.
//!
//! It connects to the head (cookie handshake, TLS when `--tls-ca` is given), says Hello, takes
//! the run's config from the Welcome, starts the actors of its roles and makes them members of
//! their process groups, where the head's dispatchers find them (executor, rollout and
//! evaluator roles). When the head goes away it
//! reconnects (for up to `retry_for`) and says Hello again: it rejoins under the same name with
//! the workers it already has (or new ones when the head's config changed).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use azr_core::executor::Executor;
use azr_core::tasks::{TaskRegistry, TemplateSet};
use ractor::rpc::CallResult;
use ractor::{Actor, ActorRef};
use ractor_cluster::node::NodeConnectionMode;
use ractor_cluster::NodeServer;
use tokio::sync::{mpsc, watch};

use super::eval::{EvalCall, EvalHost};
use super::events::{self, SessionEvent, SessionEventKind};
use super::rollout::{GenCall, RolloutHost};
use super::wire::{announced_protocol, Call, Hello, NodeRole, WeightsCall, Welcome, HEAD_GROUP};
use super::worker::{ExecCall, ExecWorker};
use super::ClusterError;
use crate::config::Config;

/// How to run a node.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// The head's `HOST:PORT`.
    pub join: String,
    /// The magic cookie.
    pub cookie: String,
    /// This node's name (unique in the cluster; keep it to rejoin as the same node).
    pub name: String,
    /// Roles to host.
    pub roles: Vec<NodeRole>,
    /// Jobs run at once.
    pub capacity: usize,
    /// Where this node serves `/metrics` (told to the head).
    pub metrics_addr: Option<String>,
    /// Trust these certificates (PEM) and speak TLS to the head.
    pub tls_ca: Option<PathBuf>,
    /// The name the head's certificate must carry (default: the host of `join`).
    pub tls_server_name: Option<String>,
    /// Simulated I/O per execution (scaling measurements).
    pub simulate: Duration,
    /// Simulated extra time per generation (tests: a request held in flight).
    pub simulate_gen: Duration,
    /// Simulated extra time per evaluation (tests: an evaluation held in flight).
    pub simulate_eval: Duration,
    /// Give up after the head has been unreachable this long (0 = never).
    pub retry_for: Duration,
}

/// What a node did, when it stops.
#[derive(Debug, Clone, Default)]
pub struct NodeSummary {
    /// Times it joined the head.
    pub joins: u64,
}

/// The actors of a node's rollout role.
struct Rollout {
    host: Arc<RolloutHost>,
    worker: ActorRef<GenCall>,
    receiver: ActorRef<WeightsCall>,
}

/// The actors of a node's evaluator role.
struct Evaluation {
    worker: ActorRef<EvalCall>,
    receiver: ActorRef<WeightsCall>,
}

/// The workers of one config.
struct Workers {
    config_toml: String,
    executor: Option<ActorRef<ExecCall>>,
    rollout: Option<Rollout>,
    evaluator: Option<Evaluation>,
}

impl Workers {
    fn stop(&self) {
        if let Some(e) = &self.executor {
            e.stop(None);
        }
        if let Some(e) = &self.evaluator {
            e.worker.stop(None);
            e.receiver.stop(None);
        }
        if let Some(r) = &self.rollout {
            r.worker.stop(None);
            r.receiver.stop(None);
            r.host.shutdown();
        }
    }
}

/// How one session with the head ended.
enum SessionEnd {
    /// The head went away: reconnect.
    Lost,
    /// Stop requested: exit.
    Stopped,
}

/// Run the node until `stop` turns true or the head is gone for good.
pub async fn run(
    opts: NodeOptions,
    mut stop: watch::Receiver<bool>,
) -> Result<NodeSummary, ClusterError> {
    let head_addr = super::resolve(&opts.join)?;
    let tls = match &opts.tls_ca {
        Some(ca) => {
            let host = opts.tls_server_name.clone().unwrap_or_else(|| {
                opts.join
                    .rsplit_once(':')
                    .map_or(opts.join.clone(), |(h, _)| h.to_string())
            });
            Some(super::tls::connector(ca, &host)?)
        }
        None => None,
    };
    // A node needs no inbound connections: listen on loopback, any port.
    let server = NodeServer::new(
        0,
        opts.cookie.clone(),
        opts.name.clone(),
        "localhost".to_string(),
        None,
        Some(NodeConnectionMode::Isolated),
    )
    .with_listen_addr(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
    let (server, _) = Actor::spawn(None, server, ())
        .await
        .map_err(|e| ClusterError::Spawn(e.to_string()))?;
    let mut events = events::subscribe(&server, "azr-node")?;
    let mut workers: Option<Workers> = None;
    let mut summary = NodeSummary::default();
    let mut unreachable_since = Instant::now();
    let result = loop {
        if *stop.borrow() {
            break Ok(());
        }
        let connected = match &tls {
            Some((connector, name)) => {
                ractor_cluster::client_connect_enc(
                    &server,
                    head_addr,
                    connector.clone(),
                    name.clone(),
                )
                .await
            }
            None => ractor_cluster::client_connect(&server, head_addr).await,
        };
        if let Err(e) = connected {
            if !opts.retry_for.is_zero() && unreachable_since.elapsed() > opts.retry_for {
                break Err(ClusterError::Connect {
                    addr: opts.join.clone(),
                    reason: format!("{e} (gave up after {} s)", opts.retry_for.as_secs()),
                });
            }
            tracing::warn!(head = %opts.join, error = %e, "head unreachable; retrying");
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        match session(&opts, &mut events, &mut workers, &mut stop).await {
            Ok(SessionEnd::Stopped) => break Ok(()),
            Ok(SessionEnd::Lost) => {
                summary.joins += 1;
                unreachable_since = Instant::now();
                tracing::warn!(head = %opts.join, "lost the head; reconnecting");
            }
            Err(e) => break Err(e),
        }
    };
    if let Some(w) = &workers {
        w.stop();
    }
    server.stop(None);
    result.map(|_| summary)
}

/// Wait for the next event of `kind` (any session), or a disconnect.
async fn next_event(
    events: &mut mpsc::UnboundedReceiver<SessionEvent>,
    within: Duration,
) -> Option<SessionEvent> {
    tokio::time::timeout(within, events.recv())
        .await
        .ok()
        .flatten()
}

/// One session: authenticate, Hello, host the workers until the session ends.
async fn session(
    opts: &NodeOptions,
    events: &mut mpsc::UnboundedReceiver<SessionEvent>,
    workers: &mut Option<Workers>,
    stop: &mut watch::Receiver<bool>,
) -> Result<SessionEnd, ClusterError> {
    // The cookie handshake.
    let handshake = Duration::from_secs(10);
    let session_id = loop {
        match next_event(events, handshake).await {
            Some(ev) if ev.kind == SessionEventKind::Authenticated => break ev.node_id,
            Some(ev) if ev.kind == SessionEventKind::Disconnected => {
                return Err(ClusterError::Auth(format!("the head at {}", opts.join)));
            }
            Some(_) => continue,
            None => {
                return Err(ClusterError::Protocol(format!(
                    "no cookie handshake with {} within {} s",
                    opts.join,
                    handshake.as_secs()
                )))
            }
        }
    };
    tracing::info!(head = %opts.join, "authenticated with the head");
    // The head's control actor appears once process groups are exchanged.
    let head = {
        let t0 = Instant::now();
        loop {
            let found = ractor::pg::get_members(&HEAD_GROUP.to_string())
                .into_iter()
                .find(|c| c.get_id().node() == session_id);
            if let Some(c) = found {
                break ActorRef::<Call<Hello, Welcome>>::from(c);
            }
            if t0.elapsed() > handshake {
                return Err(ClusterError::Protocol(format!(
                    "{} authenticated but shows no azr head (is it `azr run --cluster-listen`?)",
                    opts.join
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let hello = Hello {
        node: opts.name.clone(),
        azr_version: env!("CARGO_PKG_VERSION").to_string(),
        protocol: announced_protocol(),
        roles: opts.roles.clone(),
        capacity: opts.capacity,
        metrics_addr: opts.metrics_addr.clone(),
    };
    let welcome = match head
        .call(|reply| Call { req: hello, reply }, Some(handshake))
        .await
    {
        Ok(CallResult::Success(w)) => w,
        Ok(CallResult::Timeout) => return Err(ClusterError::Protocol("Hello timed out".into())),
        Ok(CallResult::SenderError) | Err(_) => return Ok(SessionEnd::Lost),
    };
    let (config_toml, rejoined) = match welcome {
        Welcome::Accepted {
            config_toml,
            rejoined,
        } => (config_toml, rejoined),
        Welcome::Refused { reason } => return Err(ClusterError::Refused(reason)),
    };
    let same = workers
        .as_ref()
        .is_some_and(|w| w.config_toml == config_toml);
    if !same {
        if let Some(w) = workers.take() {
            w.stop();
        }
        *workers = Some(start_workers(opts, config_toml).await?);
    }
    tracing::info!(node = %opts.name, head = %opts.join, rejoined, roles = ?opts.roles, "joined the head");
    // Host until the session ends.
    loop {
        tokio::select! {
            ev = events.recv() => match ev {
                Some(ev) if ev.kind == SessionEventKind::Disconnected && ev.node_id == session_id => {
                    return Ok(SessionEnd::Lost)
                }
                Some(_) => {}
                None => return Ok(SessionEnd::Lost),
            },
            r = stop.changed() => {
                if r.is_err() || *stop.borrow() {
                    return Ok(SessionEnd::Stopped);
                }
            }
        }
    }
}

/// Start the workers of the node's roles for the run config `config_toml`.
async fn start_workers(opts: &NodeOptions, config_toml: String) -> Result<Workers, ClusterError> {
    let cfg = Config::from_toml_str(&config_toml, "the head's config")
        .map_err(|e| ClusterError::Protocol(format!("the head's config: {e}")))?;
    // Task types and the sandboxed executor: validation (executor role) and grading
    // (evaluator role) share them.
    let sandbox =
        if opts.roles.contains(&NodeRole::Executor) || opts.roles.contains(&NodeRole::Evaluator) {
            let templates = Arc::new(
                TemplateSet::resolve(&cfg.raw.tasks.templates)
                    .map_err(|e| ClusterError::Protocol(format!("tasks.templates: {e}")))?,
            );
            let registry = Arc::new(
                TaskRegistry::builtin(templates, &cfg.raw.tasks)
                    .map_err(|e| ClusterError::Protocol(format!("task types: {e}")))?,
            );
            let mut exec_cfg = cfg.raw.executor.clone();
            exec_cfg.workers = opts.capacity.max(1);
            let ex = tokio::task::spawn_blocking(move || Executor::start(exec_cfg))
                .await
                .map_err(|e| ClusterError::Spawn(e.to_string()))?
                .map_err(|e| ClusterError::Spawn(format!("the executor: {e}")))?;
            azr_core::metrics::record_isolation(ex.isolation());
            azr_core::metrics::use_registry(&registry);
            Some((registry, Arc::new(ex)))
        } else {
            None
        };
    let mut executor = None;
    if let (true, Some((registry, ex))) = (opts.roles.contains(&NodeRole::Executor), &sandbox) {
        executor = Some(
            ExecWorker {
                node: opts.name.clone(),
                registry: registry.clone(),
                executor: ex.clone(),
                simulate: opts.simulate,
            }
            .spawn()
            .await?,
        );
    }
    // Where snapshots are built (the run's device and dtype): only roles that decode need it.
    let model = || -> Result<(candle_core::Device, candle_core::DType), ClusterError> {
        let device = azr_core::model::parse_device(&cfg.raw.model.device)
            .map_err(|e| ClusterError::Protocol(format!("model.device: {e}")))?;
        let dtype = azr_core::model::parse_dtype(&cfg.raw.model.dtype)
            .map_err(|e| ClusterError::Protocol(format!("model.dtype: {e}")))?;
        Ok((device, dtype))
    };
    let mut rollout = None;
    if opts.roles.contains(&NodeRole::Rollout) {
        let (device, dtype) = model()?;
        let host = RolloutHost::new(cfg.raw.engine.clone(), opts.simulate_gen);
        let (worker, receiver) =
            super::rollout::spawn_node_actors(host.clone(), device, dtype).await?;
        rollout = Some(Rollout {
            host,
            worker,
            receiver,
        });
    }
    let mut evaluator = None;
    if let (true, Some((registry, ex))) = (opts.roles.contains(&NodeRole::Evaluator), &sandbox) {
        let host = EvalHost::new(
            cfg.raw.engine.clone(),
            registry.clone(),
            ex.clone(),
            cfg.raw.tasks.rewards.clone(),
            opts.simulate_eval,
        );
        let (device, dtype) = model()?;
        let (worker, receiver) = super::eval::spawn_node_actors(host, device, dtype).await?;
        evaluator = Some(Evaluation { worker, receiver });
    }
    Ok(Workers {
        config_toml,
        executor,
        rollout,
        evaluator,
    })
}
