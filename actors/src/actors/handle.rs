//! Typed handles to supervised worker actors.
//!
//! A [`WorkerHandle`] names a worker rather than holding its `ActorRef`: every request looks the
//! actor up in ractor's registry, so a request made after the supervisor restarted the worker
//! reaches the new instance. A request whose worker died while holding it (the reply port was
//! dropped) or that found no worker is **retried**, up to a bound, and every retry is counted:
//! in-flight work is never silently lost.

use std::marker::PhantomData;
use std::time::Duration;

use ractor::rpc::CallResult;
use ractor::{ActorRef, Message, RpcReplyPort};

use crate::telemetry;

/// How many times one request is attempted before it fails the step.
pub const MAX_ATTEMPTS: u32 = 8;

/// Errors of a request to a worker.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The worker was absent or died on every attempt.
    #[error("worker `{name}` did not answer after {attempts} attempts (last: {last})")]
    Exhausted {
        /// Worker name.
        name: &'static str,
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        last: String,
    },
    /// The worker answered with an error (a real failure of the work, not of the actor).
    #[error("worker `{name}` failed: {message}")]
    Failed {
        /// Worker name.
        name: &'static str,
        /// Its error text.
        message: String,
    },
}

/// A handle to the worker registered under `name`, speaking message type `M`.
pub struct WorkerHandle<M> {
    name: &'static str,
    timeout: Duration,
    _msg: PhantomData<fn() -> M>,
}

impl<M> Clone for WorkerHandle<M> {
    fn clone(&self) -> Self {
        Self {
            name: self.name,
            timeout: self.timeout,
            _msg: PhantomData,
        }
    }
}

impl<M: Message> WorkerHandle<M> {
    /// A handle to the worker named `name`; each attempt may take up to `timeout`.
    pub fn new(name: &'static str, timeout: Duration) -> Self {
        Self {
            name,
            timeout,
            _msg: PhantomData,
        }
    }

    /// Send a request built by `build` and wait for its reply, retrying when the worker is
    /// missing (being restarted) or dies before replying. `build` is called once per attempt,
    /// so it must clone whatever it moves into the message.
    pub async fn request<R, F>(&self, build: F) -> Result<R, RequestError>
    where
        R: Send + 'static,
        F: Fn(RpcReplyPort<Result<R, String>>) -> M,
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
                Ok(CallResult::Success(Err(message))) => {
                    return Err(RequestError::Failed {
                        name: self.name,
                        message,
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
