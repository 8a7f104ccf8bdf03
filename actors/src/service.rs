//! One generic service actor: the trait every pipeline actor implements, the ractor actor that
//! runs it under supervision, a typed handle that finds it by name and retries, a feeder that
//! moves work from a bounded channel into it, and the registry of actor factories a pipeline is
//! built from.
//!
//! ```text
//!   bounded flume channel --feed()--> ServiceHandle::request --(by name)--> ServiceActor<S>
//!        (queue depth metric)          (retries, counted)                    S::handle(msg, &mut S::State)
//! ```
//!
//! * A [`Service`] is a value holding what survives restarts (its channels, the engine handle,
//!   the executor, config); [`Service::init`] builds the per-instance [`Service::State`] at every
//!   (re)start and [`Service::handle`] handles one message. Errors are typed
//!   ([`Service::Error`], a `thiserror` enum per service); an `Err` from `handle` fails the actor
//!   and the supervisor restarts it.
//! * [`ServiceActor`] is the one ractor actor around any service.
//! * [`ServiceHandle`] names an actor instead of holding its `ActorRef`: each request looks it
//!   up, so a request made while the supervisor restarts it reaches the new instance. A request
//!   whose actor was missing or died before replying is retried up to [`MAX_ATTEMPTS`] times and
//!   every retry is counted (`azr_work_retries_total`), so in-flight work is never lost.
//! * [`feed`] pulls items from a bounded channel with at most `concurrency` requests in flight:
//!   when the actor is slow the channel fills and its producers wait (backpressure).
//! * A [`Registry`] is the list of [`ActorFactory`]s a pipeline runs: data, so an embedding crate
//!   can [`Registry::replace`] any actor by name with its own [`Service`].

use std::any::TypeId;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use ractor::rpc::CallResult;
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, Message, RpcReplyPort};

use crate::telemetry;

/// How many times one request is attempted before it fails.
pub const MAX_ATTEMPTS: u32 = 8;

/// A pipeline actor: its messages, its state and how it handles one message.
///
/// Implementors are plain structs holding what must survive a restart (channels, handles,
/// config); the state is rebuilt by [`Service::init`] after every restart.
///
/// ```ignore
/// struct Echo { out: flume::Sender<String> }
/// impl Service for Echo {
///     type Msg = String;
///     type State = u64;                      // messages seen by this instance
///     type Error = EchoError;
///     fn name(&self) -> &'static str { "echo" }
///     async fn init(&self) -> Result<u64, EchoError> { Ok(0) }
///     async fn handle(&self, msg: String, seen: &mut u64) -> Result<(), EchoError> {
///         *seen += 1;
///         self.out.send_async(msg).await.map_err(|_| EchoError::Closed)
///     }
/// }
/// ```
pub trait Service: Send + Sync + Sized + 'static {
    /// The messages the actor handles (requests carry their own reply port).
    type Msg: Message;
    /// State of one running instance, built by [`Service::init`].
    type State: Send + 'static;
    /// Why `init` or `handle` failed (the actor then fails and is restarted).
    type Error: std::error::Error + Send + Sync + 'static;

    /// The registered name: the lookup key of [`ServiceHandle`], the `actor` metric label and
    /// the name in the supervisor's restart counts (one of [`azr_core::metrics::ACTORS`]).
    fn name(&self) -> &'static str;

    /// Whether the state cannot be rebuilt after a crash (the task store's buffers, the learner's
    /// partial batches): the supervisor then ends the run (resume from the last checkpoint)
    /// instead of restarting the actor with empty state. Default false.
    fn stateful(&self) -> bool {
        false
    }

    /// Build the state of a new instance (at start and after every restart).
    fn init(&self) -> impl Future<Output = Result<Self::State, Self::Error>> + Send;

    /// Handle one message. Long work should be spawned (replying from the task), so the mailbox
    /// stays responsive.
    fn handle(
        &self,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

/// The ractor actor running a [`Service`] (the service value is shared by every restart).
pub struct ServiceActor<S: Service>(pub Arc<S>);

impl<S: Service> Actor for ServiceActor<S> {
    type Msg = S::Msg;
    type State = S::State;
    type Arguments = ();

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        _args: (),
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(self.0.init().await?)
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        Ok(self.0.handle(msg, state).await?)
    }
}

/// A boxed future of a spawned actor cell.
pub type SpawnFuture = Pin<Box<dyn Future<Output = Result<ActorCell, ActorProcessingErr>> + Send>>;

/// Spawns one actor linked to the given supervisor.
pub type SpawnFn = Arc<dyn Fn(ActorCell) -> SpawnFuture + Send + Sync>;

/// How to (re)start one named actor.
#[derive(Clone)]
pub struct ActorFactory {
    /// Registered name.
    pub name: &'static str,
    /// See [`Service::stateful`].
    pub stateful: bool,
    /// Spawns it linked to a supervisor.
    pub spawn: SpawnFn,
    /// The actor's message type ([`Service::Msg`]): a replacement must speak the same one, since
    /// the pipeline's handles send it by name.
    msg_type: TypeId,
    /// Its name, for errors.
    msg_type_name: &'static str,
}

impl ActorFactory {
    /// The factory of a service: every spawn runs a [`ServiceActor`] over the same value.
    pub fn of<S: Service>(service: Arc<S>) -> Self {
        let name = service.name();
        let stateful = service.stateful();
        Self {
            name,
            stateful,
            msg_type: TypeId::of::<S::Msg>(),
            msg_type_name: std::any::type_name::<S::Msg>(),
            spawn: Arc::new(move |sup: ActorCell| {
                let s = service.clone();
                Box::pin(async move {
                    let (r, _) =
                        Actor::spawn_linked(Some(name.to_string()), ServiceActor(s), (), sup)
                            .await?;
                    Ok(r.get_cell())
                })
            }),
        }
    }
}

/// The actors of a pipeline, in spawn order.
#[derive(Clone, Default)]
pub struct Registry {
    factories: Vec<ActorFactory>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a service (spawned after the ones already added).
    pub fn add<S: Service>(&mut self, service: Arc<S>) -> &mut Self {
        self.factories.push(ActorFactory::of(service));
        self
    }

    /// Replace the actor registered as `factory.name` (e.g. a user's own reward actor). The
    /// replacement must handle the same message type as the actor it replaces (the pipeline's
    /// handles and feeders send that type to the name).
    pub fn replace(&mut self, factory: ActorFactory) -> Result<(), ReplaceError> {
        let Some(slot) = self.factories.iter_mut().find(|f| f.name == factory.name) else {
            return Err(ReplaceError::UnknownActor {
                name: factory.name.to_string(),
                registered: self.names().join(", "),
            });
        };
        if slot.msg_type != factory.msg_type {
            return Err(ReplaceError::MessageType {
                name: factory.name,
                expected: slot.msg_type_name,
                got: factory.msg_type_name,
            });
        }
        *slot = factory;
        Ok(())
    }

    /// The names, in spawn order.
    pub fn names(&self) -> Vec<&'static str> {
        self.factories.iter().map(|f| f.name).collect()
    }

    /// The factory of `name`.
    pub fn get(&self, name: &str) -> Option<&ActorFactory> {
        self.factories.iter().find(|f| f.name == name)
    }

    /// Every factory, in spawn order.
    pub fn factories(&self) -> &[ActorFactory] {
        &self.factories
    }
}

/// Why [`Registry::replace`] refused a factory.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplaceError {
    /// No actor of the pipeline has this name.
    #[error("no actor named `{name}` to replace (actors: {registered})")]
    UnknownActor {
        /// The name asked for.
        name: String,
        /// The registered names, comma separated.
        registered: String,
    },
    /// The replacement handles another message type than the actor it replaces.
    #[error(
        "the replacement of actor `{name}` handles `{got}`, but the pipeline sends it `{expected}`"
    )]
    MessageType {
        /// Actor name.
        name: &'static str,
        /// The message type of the built-in actor.
        expected: &'static str,
        /// The message type of the replacement.
        got: &'static str,
    },
}

/// Errors of a request through a [`ServiceHandle`].
#[derive(Debug, thiserror::Error)]
pub enum RequestError<E: std::error::Error + 'static> {
    /// The actor was absent or died on every attempt.
    #[error("actor `{name}` did not answer after {attempts} attempts (last: {last})")]
    Exhausted {
        /// Actor name.
        name: &'static str,
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        last: String,
    },
    /// The actor answered with an error of the work itself.
    #[error("actor `{name}` failed: {source}")]
    Failed {
        /// Actor name.
        name: &'static str,
        /// Its error.
        #[source]
        source: E,
    },
}

/// A typed handle to the actor registered under `name`, speaking `M`.
pub struct ServiceHandle<M> {
    name: &'static str,
    timeout: Duration,
    _msg: PhantomData<fn() -> M>,
}

impl<M> Clone for ServiceHandle<M> {
    fn clone(&self) -> Self {
        Self {
            name: self.name,
            timeout: self.timeout,
            _msg: PhantomData,
        }
    }
}

impl<M: Message> ServiceHandle<M> {
    /// A handle to the actor named `name`; each attempt may take up to `timeout`.
    pub fn new(name: &'static str, timeout: Duration) -> Self {
        Self {
            name,
            timeout,
            _msg: PhantomData,
        }
    }

    /// The actor's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Send a request built by `build` and wait for its reply, retrying (counted) when the actor
    /// is missing (being restarted), dies before replying or times out. `build` is called once
    /// per attempt, so it clones whatever it moves into the message.
    pub async fn request<R, E, F>(&self, build: F) -> Result<R, RequestError<E>>
    where
        R: Send + 'static,
        E: std::error::Error + Send + 'static,
        F: Fn(RpcReplyPort<Result<R, E>>) -> M,
    {
        let mut last = String::new();
        for attempt in 1..=MAX_ATTEMPTS {
            if attempt > 1 {
                telemetry::request_retried(self.name);
                tracing::warn!(worker = self.name, attempt, reason = %last, "retrying request");
                tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
            }
            let Some(actor) = ActorRef::<M>::where_is(self.name) else {
                last = "not running".to_string();
                continue;
            };
            match actor.call(&build, Some(self.timeout)).await {
                Ok(CallResult::Success(Ok(value))) => return Ok(value),
                Ok(CallResult::Success(Err(source))) => {
                    return Err(RequestError::Failed {
                        name: self.name,
                        source,
                    })
                }
                Ok(CallResult::Timeout) => last = "timed out".to_string(),
                Ok(CallResult::SenderError) => last = "died before replying".to_string(),
                Err(e) => last = format!("could not send: {e}"),
            }
        }
        Err(RequestError::Exhausted {
            name: self.name,
            attempts: MAX_ATTEMPTS,
            last,
        })
    }
}

/// Move every item of `rx` into the actor behind `handle`, with at most `concurrency` requests
/// in flight; the item is cloned into each attempt, so a retried request re-delivers it. Ends
/// when `rx` is closed and drained and every request finished. A request that fails for good
/// (retries exhausted, or an error reply) is reported on `fatal` (the run ends), never dropped
/// silently.
pub fn feed<T, M, R, E, F>(
    rx: flume::Receiver<T>,
    concurrency: usize,
    handle: ServiceHandle<M>,
    build: F,
    fatal: tokio::sync::watch::Sender<Option<String>>,
) -> tokio::task::JoinHandle<()>
where
    T: Clone + Send + Sync + 'static,
    M: Message,
    R: Send + 'static,
    E: std::error::Error + Send + 'static,
    F: Fn(T, RpcReplyPort<Result<R, E>>) -> M + Send + Sync + 'static,
{
    let build = Arc::new(build);
    let permits = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    tokio::spawn(async move {
        let mut running = tokio::task::JoinSet::new();
        loop {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                break;
            };
            let item = match rx.recv_async().await {
                Ok(item) => item,
                Err(_) => break,
            };
            let (h, b, fatal) = (handle.clone(), build.clone(), fatal.clone());
            running.spawn(async move {
                let r = h.request(|reply| b(item.clone(), reply)).await;
                drop(permit);
                if let Err(e) = r {
                    tracing::error!(actor = h.name(), error = %e, "work item failed");
                    let _ = fatal.send(Some(e.to_string()));
                }
            });
            while running.try_join_next().is_some() {}
        }
        while running.join_next().await.is_some() {}
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("never")]
    struct Never;

    /// A service named `name` handling `M`.
    struct Named<M>(&'static str, PhantomData<fn() -> M>);

    impl<M: Message> Service for Named<M> {
        type Msg = M;
        type State = ();
        type Error = Never;

        fn name(&self) -> &'static str {
            self.0
        }

        async fn init(&self) -> Result<(), Never> {
            Ok(())
        }

        async fn handle(&self, _msg: M, _state: &mut ()) -> Result<(), Never> {
            Ok(())
        }
    }

    fn named<M: Message>(name: &'static str) -> Arc<Named<M>> {
        Arc::new(Named(name, PhantomData))
    }

    #[test]
    fn replace_checks_the_name_and_the_message_type() {
        let mut r = Registry::new();
        r.add(named::<String>("reward")).add(named::<u64>("solver"));
        assert_eq!(r.names(), ["reward", "solver"]);

        let e = r
            .replace(ActorFactory::of(named::<String>("rewards")))
            .unwrap_err();
        assert!(
            matches!(&e, ReplaceError::UnknownActor { name, registered }
                if name == "rewards" && registered == "reward, solver"),
            "{e}"
        );
        let e = r
            .replace(ActorFactory::of(named::<u64>("reward")))
            .unwrap_err();
        assert_eq!(
            e,
            ReplaceError::MessageType {
                name: "reward",
                expected: "alloc::string::String",
                got: "u64",
            }
        );
        // A fitting replacement takes the slot (and keeps the spawn order).
        let fitting = ActorFactory::of(named::<String>("reward"));
        let spawn = fitting.spawn.clone();
        r.replace(fitting).unwrap();
        assert_eq!(r.names(), ["reward", "solver"]);
        assert!(r
            .get("reward")
            .is_some_and(|f| Arc::ptr_eq(&f.spawn, &spawn)));
    }
}
