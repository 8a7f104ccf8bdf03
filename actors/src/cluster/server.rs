//! The one actor shape every node role's worker has: a [`Server`] answers each [`Call`] on a task
//! of its own, so it takes the next call while earlier ones run (the head bounds how many are in
//! flight on a node). A role supplies only what one request does, as a [`Serve`] implementation.

use std::future::Future;
use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef};

use super::wire::Call;
use super::ClusterError;

/// What a role's worker does with one request.
pub trait Serve: Send + Sync + 'static {
    /// The request.
    type Req: Send + 'static;
    /// The reply.
    type Rep: Send + 'static;

    /// Answer one request.
    fn serve(self: Arc<Self>, req: Self::Req) -> impl Future<Output = Self::Rep> + Send;
}

/// A worker actor over a shared [`Serve`] implementation.
pub struct Server<S>(pub Arc<S>);

impl<S: Serve> Server<S>
where
    Call<S::Req, S::Rep>: ractor::Message,
{
    /// Spawn the worker and make it a member of the process group `group` (visible to the head).
    pub async fn spawn_in(
        self,
        group: &str,
    ) -> Result<ActorRef<Call<S::Req, S::Rep>>, ClusterError> {
        let (actor, _join) = Actor::spawn(None, self, ())
            .await
            .map_err(|e| ClusterError::Spawn(e.to_string()))?;
        ractor::pg::join(group.to_string(), vec![actor.get_cell()]);
        Ok(actor)
    }
}

impl<S: Serve> Actor for Server<S>
where
    Call<S::Req, S::Rep>: ractor::Message,
{
    type Msg = Call<S::Req, S::Rep>;
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _me: ActorRef<Self::Msg>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle(
        &self,
        _me: ActorRef<Self::Msg>,
        msg: Self::Msg,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        let serving = self.0.clone();
        // Spawned: the worker stays responsive while this request runs.
        tokio::spawn(async move {
            let reply = serving.serve(msg.req).await;
            let _ = msg.reply.send(reply);
        });
        Ok(())
    }
}
