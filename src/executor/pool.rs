//! The pool of worker slots: check a worker out, run a request, and kill + replace any worker
//! that misbehaves (silent past the deadline, protocol violation, dead pipe) or fails its
//! per-job health check.

use super::sandbox::SpawnPlan;
use super::worker::{Done, Ending, WorkerProc};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

type SpawnReply = mpsc::Sender<Result<WorkerProc, String>>;

/// Starts workers from one dedicated, long-lived thread. Workers carry
/// `PR_SET_PDEATHSIG = SIGKILL`, which fires when the *thread* that forked them exits; spawning
/// from short-lived caller threads (e.g. `run_many`'s) would kill healthy workers.
pub(crate) struct Spawner {
    tx: mpsc::Sender<SpawnReply>,
}

impl Spawner {
    /// Start the spawner thread for workers of `plan`.
    pub(crate) fn new(
        python: String,
        config_json: String,
        plan: Arc<SpawnPlan>,
    ) -> Result<Self, String> {
        let (tx, rx) = mpsc::channel::<SpawnReply>();
        std::thread::Builder::new()
            .name("azr-exec-spawner".into())
            .spawn(move || {
                for reply in rx {
                    let w = WorkerProc::spawn(
                        &python,
                        &config_json,
                        Arc::clone(&plan),
                        Duration::from_secs(20),
                    );
                    let _ = reply.send(w);
                }
            })
            .map_err(|e| format!("cannot start the spawner thread: {e}"))?;
        Ok(Spawner { tx })
    }

    /// Start one worker (blocking).
    pub(crate) fn spawn(&self) -> Result<WorkerProc, String> {
        let (rtx, rrx) = mpsc::channel();
        let gone = |_| "executor spawner thread is gone".to_string();
        self.tx.send(rtx).map_err(|_| gone(()))?;
        rrx.recv().map_err(|_| gone(()))?
    }
}

/// Fixed pool of fork-server workers.
pub(crate) struct Pool {
    slots: Mutex<Vec<Option<WorkerProc>>>,
    available: Condvar,
    spawner: Spawner,
    restarts: AtomicU64,
}

impl Pool {
    /// A pool around already started workers, replacing dead ones through `spawner`.
    pub(crate) fn new(workers: Vec<WorkerProc>, spawner: Spawner) -> Self {
        Pool {
            slots: Mutex::new(workers.into_iter().map(Some).collect()),
            available: Condvar::new(),
            spawner,
            restarts: AtomicU64::new(0),
        }
    }

    /// Start one more worker with the pool's plan.
    pub(crate) fn spawn(&self) -> Result<WorkerProc, String> {
        self.spawner.spawn()
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

    /// Run one job on some worker. `Err` carries why the sandbox failed; program failures are
    /// inside `Done`.
    ///
    /// Before the job, the worker's health (alive; rlimits, nice value, affinity, scheduler and
    /// I/O priority as at start) is checked; a worker that fails is replaced first. A worker
    /// that faults (silent, dead, protocol violation) or whose job setup failed is replaced too,
    /// and the job runs once more on the replacement (a job cannot reach its worker, so a fault
    /// is never the job's doing); only a second fault becomes a `sandbox_failure` outcome.
    pub(crate) fn request(
        &self,
        job: &[u8],
        max_record: usize,
        timeout: Duration,
        grace: Duration,
    ) -> Result<Done, String> {
        let mut last_err = String::new();
        for _attempt in 0..2 {
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
                Some(mut w) => match w.check_health() {
                    Ok(()) => w,
                    Err(why) => {
                        tracing::warn!(pid = w.pid(), %why, "executor worker failed its health check; replacing it");
                        w.kill();
                        drop(w);
                        self.count_replacement();
                        match self.spawn() {
                            Ok(w) => w,
                            Err(e) => {
                                self.give_back(None);
                                return Err(format!("cannot restart worker: {e}"));
                            }
                        }
                    }
                },
                None => match self.spawn() {
                    Ok(w) => w,
                    Err(e) => {
                        self.give_back(None);
                        return Err(format!("cannot restart worker: {e}"));
                    }
                },
            };
            let fault = match worker.request(job, max_record, timeout, grace) {
                Ok(done) => match &done.ending {
                    Ending::SetupFailed(why) => {
                        // Not the program's fault (none of its text ran): the worker's
                        // environment is broken. Replace it and run the job again.
                        format!("job setup failed: {why}")
                    }
                    _ => {
                        self.give_back(Some(worker));
                        return Ok(done);
                    }
                },
                Err(fault) => fault.to_string(),
            };
            tracing::warn!(pid = worker.pid(), %fault, "executor worker misbehaved; killing and replacing it");
            worker.kill();
            drop(worker);
            self.count_replacement();
            let replacement = match self.spawn() {
                Ok(w) => Some(w),
                Err(e) => {
                    tracing::error!(error = %e, "executor worker could not be restarted");
                    None
                }
            };
            self.give_back(replacement);
            last_err = fault;
        }
        Err(last_err)
    }

    fn count_replacement(&self) {
        self.restarts.fetch_add(1, Ordering::Relaxed);
        crate::metrics::EXECUTOR_WORKER_REPLACEMENTS_TOTAL
            .counter(&[])
            .increment(1);
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
