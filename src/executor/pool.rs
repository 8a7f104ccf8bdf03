//! The pool of worker slots: check a worker out, run a request, and kill + replace any worker
//! that misbehaves (silent past the deadline, protocol violation, dead pipe).

use super::sandbox::SpawnPlan;
use super::worker::{Done, WorkerProc};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// Metric: workers killed and replaced (counter).
pub const METRIC_WORKER_RESTARTS: &str = "azr_executor_worker_restarts_total";

/// Fixed pool of fork-server workers.
pub(crate) struct Pool {
    slots: Mutex<Vec<Option<WorkerProc>>>,
    available: Condvar,
    plan: Arc<SpawnPlan>,
    python: String,
    config_json: String,
    restarts: AtomicU64,
}

impl Pool {
    /// A pool around already started workers.
    pub(crate) fn new(
        workers: Vec<WorkerProc>,
        plan: Arc<SpawnPlan>,
        python: String,
        config_json: String,
    ) -> Self {
        Pool {
            slots: Mutex::new(workers.into_iter().map(Some).collect()),
            available: Condvar::new(),
            plan,
            python,
            config_json,
            restarts: AtomicU64::new(0),
        }
    }

    /// Start one more worker with the pool's plan.
    pub(crate) fn spawn(&self) -> Result<WorkerProc, String> {
        WorkerProc::spawn(
            &self.python,
            &self.config_json,
            Arc::clone(&self.plan),
            Duration::from_secs(20),
        )
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Option<WorkerProc>>> {
        // A poisoned lock only means another caller panicked while holding the Vec; its
        // contents (workers) are still valid.
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Workers killed and replaced since start.
    pub(crate) fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }

    /// Pids of the live workers (for diagnostics and tests).
    pub(crate) fn worker_pids(&self) -> Vec<i32> {
        self.lock().iter().flatten().map(WorkerProc::pid).collect()
    }

    /// Run `req` on some worker. `Err` carries why the sandbox failed (the worker has been
    /// replaced); program failures are inside `Done`.
    pub(crate) fn request(
        &self,
        req: serde_json::Map<String, serde_json::Value>,
        timeout: Duration,
        grace: Duration,
    ) -> Result<Done, String> {
        let slot = {
            let mut slots = self.lock();
            loop {
                if let Some(slot) = slots.pop() {
                    break slot;
                }
                slots = self
                    .available
                    .wait(slots)
                    .unwrap_or_else(|p| p.into_inner());
            }
        };
        let mut worker = match slot {
            Some(w) => w,
            None => match self.spawn() {
                Ok(w) => w,
                Err(e) => {
                    self.give_back(None);
                    return Err(format!("cannot restart worker: {e}"));
                }
            },
        };
        match worker.request(req, timeout, grace) {
            Ok(done) => {
                self.give_back(Some(worker));
                Ok(done)
            }
            Err(fault) => {
                tracing::warn!(pid = worker.pid(), %fault, "executor worker misbehaved; killing and replacing it");
                worker.kill();
                drop(worker);
                self.restarts.fetch_add(1, Ordering::Relaxed);
                metrics::counter!(METRIC_WORKER_RESTARTS).increment(1);
                let replacement = match self.spawn() {
                    Ok(w) => Some(w),
                    Err(e) => {
                        tracing::error!(error = %e, "executor worker could not be restarted");
                        None
                    }
                };
                self.give_back(replacement);
                Err(fault.to_string())
            }
        }
    }

    /// Add a started worker to the pool.
    pub(crate) fn add(&self, worker: WorkerProc) {
        self.give_back(Some(worker));
    }

    fn give_back(&self, slot: Option<WorkerProc>) {
        self.lock().push(slot);
        self.available.notify_one();
    }
}
