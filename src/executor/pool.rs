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
    /// Pids of the workers checked out of `slots` (running a job right now). Changed only while
    /// `slots` is locked too (lock order: `slots`, then `busy`), so the two together always list
    /// every live worker once.
    busy: Mutex<Vec<i32>>,
    available: Condvar,
    spawner: Spawner,
    restarts: AtomicU64,
}

impl Pool {
    /// A pool around already started workers, replacing dead ones through `spawner`.
    pub(crate) fn new(workers: Vec<WorkerProc>, spawner: Spawner) -> Self {
        Pool {
            slots: Mutex::new(workers.into_iter().map(Some).collect()),
            busy: Mutex::new(Vec::new()),
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

    /// Pids of the live workers, idle or running a job (for diagnostics and tests).
    pub(crate) fn worker_pids(&self) -> Vec<i32> {
        let slots = self.lock();
        let mut pids: Vec<i32> = slots.iter().flatten().map(WorkerProc::pid).collect();
        pids.extend(self.busy().iter().copied());
        pids.sort_unstable();
        pids
    }

    fn busy(&self) -> MutexGuard<'_, Vec<i32>> {
        // Poisoning only means a caller panicked while holding the list; the pids stay valid.
        self.busy.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A checked-out worker `old` was replaced by `new` (either may be absent).
    fn swap_busy(&self, old: Option<i32>, new: Option<i32>) {
        let _slots = self.lock();
        let mut busy = self.busy();
        if let Some(i) = old.and_then(|o| busy.iter().position(|p| *p == o)) {
            busy.swap_remove(i);
        }
        busy.extend(new);
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
                        if let Some(w) = &slot {
                            self.busy().push(w.pid());
                        }
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
                        let old = w.pid();
                        w.kill();
                        drop(w);
                        self.swap_busy(Some(old), None);
                        self.count_replacement();
                        match self.spawn() {
                            Ok(w) => {
                                self.swap_busy(None, Some(w.pid()));
                                w
                            }
                            Err(e) => {
                                self.give_back(None);
                                return Err(format!("cannot restart worker: {e}"));
                            }
                        }
                    }
                },
                None => match self.spawn() {
                    Ok(w) => {
                        self.swap_busy(None, Some(w.pid()));
                        w
                    }
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
                        let pid = worker.pid();
                        self.give_back_busy(pid, Some(worker));
                        return Ok(done);
                    }
                },
                Err(fault) => fault.to_string(),
            };
            tracing::warn!(pid = worker.pid(), %fault, "executor worker misbehaved; killing and replacing it");
            let pid = worker.pid();
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
            self.give_back_busy(pid, replacement);
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

    /// Give back the slot of checked-out worker `pid` (`slot`: it, its replacement or none).
    fn give_back_busy(&self, pid: i32, slot: Option<WorkerProc>) {
        {
            let mut slots = self.lock();
            slots.push(slot);
            let mut busy = self.busy();
            if let Some(i) = busy.iter().position(|p| *p == pid) {
                busy.swap_remove(i);
            }
        }
        self.available.notify_one();
    }
}
