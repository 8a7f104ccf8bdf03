//! The executor worker: a ractor actor speaking [`Call<ExecJob, ExecReply>`], member of
//! [`EXECUTOR_GROUP`]. Every node with the executor role runs one, and so does the head (unless
//! told not to), so the dispatcher treats local and remote capacity alike.

use std::sync::Arc;
use std::time::{Duration, Instant};

use azr_core::executor::{ExecStatus, Executor};
use azr_core::tasks::TaskRegistry;
use ractor::{ActorCell, ActorRef};

use super::server::{Serve, Server};
use super::wire::{Call, ExecJob, ExecReply, EXECUTOR_GROUP};
use crate::actors::executor::{validate_parsed, Validated};
use crate::actors::ProposalResult;
use crate::telemetry;

/// The executor worker's message.
pub type ExecCall = Call<ExecJob, ExecReply>;

/// An executor worker.
pub struct ExecWorker {
    /// The node it runs on (echoed in replies).
    pub node: String,
    /// Task types (validation rules).
    pub registry: Arc<TaskRegistry>,
    /// The sandboxed executor.
    pub executor: Arc<Executor>,
    /// Simulated I/O per execution (a sleep after validating; 0 = none). For scaling
    /// measurements: a fixed wait that holds one unit of the node's capacity, as a call to a
    /// remote sandbox service would.
    pub simulate: Duration,
}

impl ExecWorker {
    /// Spawn a worker and make it a member of [`EXECUTOR_GROUP`] (visible to the head).
    pub async fn spawn(self) -> Result<ActorRef<ExecCall>, super::ClusterError> {
        Server(Arc::new(self)).spawn_in(EXECUTOR_GROUP).await
    }
}

impl Serve for ExecWorker {
    type Req = ExecJob;
    type Rep = ExecReply;

    /// Validate `job` here (blocking executor on the blocking pool) and build the reply.
    async fn serve(self: Arc<Self>, job: ExecJob) -> ExecReply {
        let t0 = Instant::now();
        let (registry, executor) = (self.registry.clone(), self.executor.clone());
        let id = job.id;
        let (validated, status) = tokio::task::spawn_blocking(move || {
            validate_parsed(
                &registry,
                &executor,
                &job.parsed,
                job.batch,
                job.first_version,
            )
        })
        .await
        .unwrap_or_else(|e| {
            (
                Validated::Rejected(ProposalResult::NoReward(format!(
                    "validation task failed: {e}"
                ))),
                ExecStatus::SandboxFailure,
            )
        });
        if !self.simulate.is_zero() {
            tokio::time::sleep(self.simulate).await;
        }
        telemetry::busy(crate::actors::executor::NAME, t0.elapsed());
        tracing::debug!(job = id, status = status.as_str(), "executed job");
        ExecReply {
            id,
            node: self.node.clone(),
            status,
            seconds: t0.elapsed().as_secs_f64(),
            validated,
        }
    }
}

/// The members of [`EXECUTOR_GROUP`] as seen from this process (local and remote).
pub fn members() -> Vec<ActorCell> {
    ractor::pg::get_members(&EXECUTOR_GROUP.to_string())
}
