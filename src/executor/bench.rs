//! Executor throughput benchmark: sandboxed executions per second for a trivial and a
//! loop-heavy program, against spawning an unsandboxed `python3 -c` per execution, measured in
//! the same run on the same machine.

use super::{ExecJob, ExecStatus, Executor, ExecutorConfig, ExecutorError, IsolationReport};
use std::fmt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// The trivial program (`f(1)`).
pub const TRIVIAL: &str = "def f(x):\n    return x + 1\n";
/// The loop-heavy program: 100k iterations (`f(100000)`).
pub const LOOP: &str =
    "def f(n):\n    s = 0\n    for i in range(n):\n        s += i * i % 7\n    return s\n";

/// Measured throughput (executions per second, whole machine).
#[derive(Debug, Clone)]
pub struct ExecBenchReport {
    /// Worker processes (= client threads).
    pub workers: usize,
    /// Sandboxed executions per program.
    pub n: usize,
    /// Unsandboxed spawns per program (`min(n, 200)`: spawning is slow).
    pub n_spawn: usize,
    /// Sandboxed trivial executions per second.
    pub trivial_per_s: f64,
    /// Sandboxed loop executions per second.
    pub loop_per_s: f64,
    /// Unsandboxed `python3 -c` spawns per second, trivial program.
    pub spawn_trivial_per_s: f64,
    /// Unsandboxed `python3 -c` spawns per second, loop program.
    pub spawn_loop_per_s: f64,
    /// Sandboxed validations (two children each) per second, trivial program.
    pub validate_per_s: f64,
    /// CPU time per sandboxed trivial execution, in ms, of the whole process tree: this process
    /// (the client threads and the pool) plus every worker and its reaped jobs. Unlike the rates
    /// it does not depend on how much of the machine other processes take, so it bounds the
    /// rate on a quiet machine (`cores / cpu`); kernel work done in kernel threads (deferred
    /// namespace teardown) is not in it.
    pub trivial_cpu_ms: f64,
    /// CPU time per sandboxed loop execution, in ms (see `trivial_cpu_ms`); the difference is
    /// the loop's own CPU time, a yardstick for how much the machine's load inflates CPU times.
    /// Both are NaN when a worker was replaced during the phase (its CPU time is gone).
    pub loop_cpu_ms: f64,
    /// Executions that did not return `ok` (should be 0).
    pub failures: usize,
    /// The isolation the sandboxed numbers ran under.
    pub isolation: IsolationReport,
    /// `/proc/loadavg` (1, 5, 15 minutes) before and after the measurement: the machine may be
    /// shared, so compare against the same-run baseline.
    pub load_before: String,
    /// See `load_before`.
    pub load_after: String,
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|t| t.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

impl fmt::Display for ExecBenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "executor benchmark ({} workers, isolation: {})",
            self.workers, self.isolation.mode
        )?;
        writeln!(
            f,
            "  sandboxed trivial   : {:>9.1} exec/s  (n = {})",
            self.trivial_per_s, self.n
        )?;
        writeln!(
            f,
            "  sandboxed loop100k  : {:>9.1} exec/s  (n = {})",
            self.loop_per_s, self.n
        )?;
        writeln!(
            f,
            "  sandboxed validate  : {:>9.1} tasks/s (n = {}, 2 children each)",
            self.validate_per_s, self.n
        )?;
        writeln!(
            f,
            "  CPU per run (process tree): trivial {:.3} ms, loop100k {:.3} ms",
            self.trivial_cpu_ms, self.loop_cpu_ms
        )?;
        writeln!(
            f,
            "  python3 -c trivial  : {:>9.1} exec/s  (n = {}, unsandboxed spawn)",
            self.spawn_trivial_per_s, self.n_spawn
        )?;
        writeln!(
            f,
            "  python3 -c loop100k : {:>9.1} exec/s  (n = {}, unsandboxed spawn)",
            self.spawn_loop_per_s, self.n_spawn
        )?;
        writeln!(
            f,
            "  trivial sandboxed / spawn ratio: {:.2}x",
            self.trivial_per_s / self.spawn_trivial_per_s.max(1e-9)
        )?;
        writeln!(
            f,
            "  load average before: {}  after: {}",
            self.load_before, self.load_after
        )?;
        let missing = self.isolation.missing();
        writeln!(
            f,
            "  isolation layers missing: {}",
            if missing.is_empty() {
                "none".to_string()
            } else {
                missing.join(", ")
            }
        )?;
        write!(f, "  failures: {}", self.failures)
    }
}

/// CPU seconds used so far by this process and by the executor's live workers, including the
/// jobs they reaped (`/proc/<pid>/stat` utime, stime, cutime, cstime).
fn tree_cpu_s(ex: &Executor) -> f64 {
    // SAFETY: getrusage fills the zeroed struct we own; sysconf has no preconditions.
    let (own, tick) = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
        (
            tv(ru.ru_utime) + tv(ru.ru_stime),
            libc::sysconf(libc::_SC_CLK_TCK).max(1) as f64,
        )
    };
    let workers: f64 = ex
        .worker_pids()
        .iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
        .map(|stat| {
            // Fields after the command name: state is index 0, utime..cstime are 11..=14.
            let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
            rest.split_whitespace()
                .skip(11)
                .take(4)
                .filter_map(|v| v.parse::<f64>().ok())
                .sum::<f64>()
                / tick
        })
        .sum();
    own + workers
}

fn rate(n: usize, t0: Instant) -> f64 {
    n as f64 / t0.elapsed().as_secs_f64().max(1e-9)
}

/// Spawn `python -c "<code>; repr(f(<input>))"` `n` times over `threads` threads; returns the
/// rate and the number of failed spawns.
fn spawn_rate(python: &str, code: &str, input: &str, n: usize, threads: usize) -> (f64, usize) {
    let src = format!("{code}\nprint(repr(f({input})))\n");
    let next = AtomicUsize::new(0);
    let failed = AtomicUsize::new(0);
    let t0 = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| {
                while next.fetch_add(1, Ordering::Relaxed) < n {
                    let ok = Command::new(python)
                        .args(["-c", &src])
                        .stdin(Stdio::null())
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .status()
                        .map(|st| st.success())
                        .unwrap_or(false);
                    if !ok {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    (rate(n, t0), failed.load(Ordering::Relaxed))
}

/// Start an executor with `cfg` and measure `n` executions of each program.
pub fn run(cfg: &ExecutorConfig, n: usize) -> Result<ExecBenchReport, ExecutorError> {
    let load_before = loadavg();
    let ex = Executor::start(cfg.clone())?;
    let n = n.max(1);
    let trivial: Vec<ExecJob> = (0..n)
        .map(|i| ExecJob {
            code: TRIVIAL.into(),
            input: i.to_string(),
        })
        .collect();
    let looping: Vec<ExecJob> = (0..n)
        .map(|_| ExecJob {
            code: LOOP.into(),
            input: "100000".into(),
        })
        .collect();
    // Warm up (first forks fault in pages).
    ex.run_many(&trivial[..n.min(2 * cfg.workers)]);
    let bad =
        |outs: Vec<super::Outcome>| outs.iter().filter(|o| o.status != ExecStatus::Ok).count();
    // A replaced worker takes its CPU time with it: such a phase has no CPU figure (NaN).
    let cpu_ms = |c0: f64, c1: f64, r0: u64, r1: u64| {
        if r0 == r1 {
            (c1 - c0) * 1000.0 / n as f64
        } else {
            f64::NAN
        }
    };
    let (t0, c0, r0) = (Instant::now(), tree_cpu_s(&ex), ex.worker_restarts());
    let mut failures = bad(ex.run_many(&trivial));
    let trivial_per_s = rate(n, t0);
    let (t0, c1, r1) = (Instant::now(), tree_cpu_s(&ex), ex.worker_restarts());
    failures += bad(ex.run_many(&looping));
    let loop_per_s = rate(n, t0);
    let (c2, r2) = (tree_cpu_s(&ex), ex.worker_restarts());
    let trivial_cpu_ms = cpu_ms(c0, c1, r0, r1);
    let loop_cpu_ms = cpu_ms(c1, c2, r1, r2);
    let t0 = Instant::now();
    failures += bad(ex.validate_many(&trivial));
    let validate_per_s = rate(n, t0);
    let n_spawn = n.min(200);
    let (spawn_trivial_per_s, f1) = spawn_rate(&cfg.python, TRIVIAL, "1", n_spawn, cfg.workers);
    let (spawn_loop_per_s, f2) = spawn_rate(&cfg.python, LOOP, "100000", n_spawn, cfg.workers);
    Ok(ExecBenchReport {
        workers: cfg.workers,
        n,
        n_spawn,
        trivial_per_s,
        loop_per_s,
        spawn_trivial_per_s,
        spawn_loop_per_s,
        validate_per_s,
        trivial_cpu_ms,
        loop_cpu_ms,
        failures: failures + f1 + f2,
        isolation: ex.isolation().clone(),
        load_before,
        load_after: loadavg(),
    })
}
