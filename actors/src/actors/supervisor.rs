//! The root supervisor: spawns every actor of a [`Registry`] linked to itself, restarts a failed
//! actor within a per-actor restart budget, counts restarts, and reports a run-ending failure when
//! a budget is exhausted or a stateful actor (whose state a restart cannot rebuild) fails.
//!
//! ractor's default `handle_supervisor_evt` stops the supervisor when any child exits; this one
//! overrides it (see `reference/candle-ractor-metrics.md`, section 4.2).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use tokio::sync::watch;

use crate::service::Registry;
use crate::telemetry;

/// The root supervisor (empty struct; state in [`SupervisorState`]).
pub struct Supervisor;

/// Arguments of [`Supervisor`].
pub struct SupervisorArgs {
    /// The actors to spawn, in order.
    pub registry: Registry,
    /// Restarts allowed per actor.
    pub budget: u32,
    /// Restart counts over the whole run (carried over from a checkpoint; updated here, read by
    /// whoever writes checkpoints).
    pub restarts: Arc<Mutex<BTreeMap<String, u64>>>,
    /// Set to `Some(reason)` when the run must end (a budget exhausted, a stateful actor failed).
    pub fatal: watch::Sender<Option<String>>,
}

/// State of [`Supervisor`].
pub struct SupervisorState {
    registry: Registry,
    budget: u32,
    /// Restarts since this process started, per actor (the budget applies to these).
    session_restarts: BTreeMap<&'static str, u32>,
    /// Restarts over the whole run, per actor (checkpointed).
    restarts: Arc<Mutex<BTreeMap<String, u64>>>,
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
            session_restarts: args.registry.names().into_iter().map(|w| (w, 0)).collect(),
            registry: args.registry,
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
        let carried = state.restarts.lock().map(|r| r.clone()).unwrap_or_default();
        for f in state.registry.factories().to_vec() {
            (f.spawn)(myself.get_cell()).await?;
            telemetry::actor_restarts_register(
                f.name,
                Some(carried.get(f.name).copied().unwrap_or(0)),
            );
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
                let _ = reply.send(state.restarts.lock().map(|r| r.clone()).unwrap_or_default());
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
        let Some(factory) = cell
            .get_name()
            .and_then(|n| state.registry.get(&n).cloned())
        else {
            return Ok(());
        };
        let name = factory.name;
        if factory.stateful {
            let reason = format!(
                "actor `{name}` failed ({why}); its state cannot be rebuilt by a restart: \
                 resume from the last checkpoint"
            );
            tracing::error!("{reason}");
            let _ = state.fatal.send(Some(reason));
            return Ok(());
        }
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
        if let Ok(mut r) = state.restarts.lock() {
            *r.entry(name.to_string()).or_insert(0) += 1;
        }
        telemetry::actor_restarted(name);
        tracing::warn!(worker = name, error = %why, restart = *session, "restarting worker");
        (factory.spawn)(myself.get_cell()).await?;
        Ok(())
    }
}
