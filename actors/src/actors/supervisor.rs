//! The root supervisor: spawns every worker actor linked to itself, restarts a failed worker
//! within a per-worker restart budget, counts restarts, and reports a run-ending failure when a
//! budget is exhausted.
//!
//! ractor's default `handle_supervisor_evt` stops the supervisor when any child exits; this one
//! overrides it (see `reference/candle-ractor-metrics.md`, section 4.2).

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use tokio::sync::watch;

use crate::telemetry;

/// Spawns the worker called `name`, linked to `supervisor`.
pub type SpawnFn = Arc<
    dyn Fn(
            &'static str,
            ActorCell,
        ) -> Pin<Box<dyn Future<Output = Result<ActorCell, ActorProcessingErr>> + Send>>
        + Send
        + Sync,
>;

/// The root supervisor (empty struct; state in [`SupervisorState`]).
pub struct Supervisor;

/// Arguments of [`Supervisor`].
pub struct SupervisorArgs {
    /// Names of the workers to spawn, in order.
    pub workers: Vec<&'static str>,
    /// How to spawn one of them.
    pub spawn: SpawnFn,
    /// Restarts allowed per worker.
    pub budget: u32,
    /// Restart counts carried over from a checkpoint.
    pub restarts: BTreeMap<String, u64>,
    /// Set to `Some(reason)` when the run must end because a budget was exhausted.
    pub fatal: watch::Sender<Option<String>>,
}

/// State of [`Supervisor`].
pub struct SupervisorState {
    workers: Vec<&'static str>,
    spawn: SpawnFn,
    budget: u32,
    /// Restarts since this process started, per worker (the budget applies to these).
    session_restarts: BTreeMap<&'static str, u32>,
    /// Restarts over the whole run, per worker (checkpointed).
    restarts: BTreeMap<String, u64>,
    fatal: watch::Sender<Option<String>>,
    stopping: bool,
}

/// Messages of [`Supervisor`].
pub enum SupervisorMsg {
    /// Restart counts per worker over the whole run.
    Restarts(RpcReplyPort<BTreeMap<String, u64>>),
    /// Stop the workers (graceful shutdown); restarts are off from now on.
    Shutdown(RpcReplyPort<()>),
}

impl Actor for Supervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: SupervisorArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(SupervisorState {
            session_restarts: args.workers.iter().map(|w| (*w, 0)).collect(),
            workers: args.workers,
            spawn: args.spawn,
            budget: args.budget,
            restarts: args.restarts,
            fatal: args.fatal,
            stopping: false,
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        for name in state.workers.clone() {
            (state.spawn)(name, myself.get_cell()).await?;
            telemetry::actor_restarts_register(name, state.restarts.get(name).copied());
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SupervisorMsg::Restarts(reply) => {
                let _ = reply.send(state.restarts.clone());
            }
            SupervisorMsg::Shutdown(reply) => {
                state.stopping = true;
                myself
                    .stop_children_and_wait(None, Some(std::time::Duration::from_secs(10)))
                    .await;
                let _ = reply.send(());
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let (cell, why) = match event {
            SupervisionEvent::ActorFailed(cell, err) => (cell, err.to_string()),
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                if state.stopping {
                    return Ok(());
                }
                (cell, format!("stopped unexpectedly ({reason:?})"))
            }
            _ => return Ok(()),
        };
        let Some(name) = cell
            .get_name()
            .and_then(|n| state.workers.iter().copied().find(|w| *w == n))
        else {
            return Ok(());
        };
        let session = state.session_restarts.entry(name).or_insert(0);
        if *session >= state.budget {
            let reason = format!(
                "worker `{name}` failed ({why}) and its restart budget ({}) is spent",
                state.budget
            );
            tracing::error!("{reason}");
            let _ = state.fatal.send(Some(reason));
            return Ok(());
        }
        *session += 1;
        *state.restarts.entry(name.to_string()).or_insert(0) += 1;
        telemetry::actor_restarted(name);
        tracing::warn!(worker = name, error = %why, restart = *session, "restarting worker");
        (state.spawn)(name, myself.get_cell()).await?;
        Ok(())
    }
}
