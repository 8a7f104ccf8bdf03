//! 1,000 mixed executions (ok, errors, timeouts, memory, crashes, oversized, unsupported,
//! validation) through one executor: afterwards there is no zombie, no fd growth in the host
//! process, no worker was replaced, and every worker's private /tmp is empty. Also: a hung
//! (SIGSTOPped) worker is detected by the host's deadline, killed, reaped and replaced.
//!
//! Run: `cargo test --release -p azr-core --test executor_soak` (about 15-25 s).

use azr_core::executor::{ExecJob, ExecStatus, Executor, ExecutorConfig};
use std::collections::HashMap;

/// The tests of this file count process-wide fds and processes: run them one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

/// (pid, ppid, state) of every process.
fn processes() -> Vec<(i32, i32, char)> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // "pid (comm) state ppid ...": comm may contain spaces, so split after the last ')'.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
            continue;
        };
        let mut it = rest.split_whitespace();
        let state = it.next().and_then(|s| s.chars().next()).unwrap_or('?');
        let ppid = it.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        out.push((pid, ppid, state));
    }
    out
}

fn job(code: &str) -> ExecJob {
    ExecJob {
        code: format!(
            "def f(x):\n{}\n",
            code.lines()
                .map(|l| format!("    {l}"))
                .collect::<Vec<_>>()
                .join("\n")
        ),
        input: "3".into(),
    }
}

#[test]
fn thousand_mixed_executions_leave_nothing_behind() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    // 1 s: quick programs must not time out on a loaded 2-core CI machine.
    let cfg = ExecutorConfig {
        timeout_ms: 1000,
        ..ExecutorConfig::default()
    };
    let ex = Executor::start(cfg).expect("executor starts");
    // Warm up, then measure the baseline.
    ex.run_many(&[job("return x"), job("return x")]);
    let fds_before = fd_count();
    let kinds: Vec<(ExecJob, ExecStatus)> = vec![
        (job("return x * 2"), ExecStatus::Ok),
        (job("return [i * i for i in range(x * 100)]"), ExecStatus::Ok),
        (job("open('/tmp/f%d' % id(x), 'w').write('x')\nreturn 1"), ExecStatus::Ok),
        (job("import os\nos.makedirs('/tmp/a/b')\nopen('/tmp/a/b/c', 'w').write('x')\nos.chmod('/tmp/a', 0)\nreturn 1"), ExecStatus::Ok),
        (job("raise ValueError(x)"), ExecStatus::Error),
        (job("import os\nos._exit(3)"), ExecStatus::Error),
        (job("import ctypes\nctypes.string_at(0)"), ExecStatus::Error),
        (job("import os\nos.fork()"), ExecStatus::Error),
        (job("return bytearray(2**33)"), ExecStatus::Memory),
        (job("return 'y' * 10**6"), ExecStatus::OutputTooLarge),
        (job("return object()"), ExecStatus::UnsupportedType),
        (job("import os\nos.close(0)\nos.close(1)\nos.close(2)\nreturn 0"), ExecStatus::Ok),
    ];
    let timeout = (job("while True:\n    pass"), ExecStatus::Timeout);
    let mut jobs = Vec::new();
    let mut want = Vec::new();
    for i in 0..1000 {
        // 1 in 50 is a timeout (20 x 1 s), the rest cycle through the other kinds.
        let (j, s) = if i % 50 == 49 {
            &timeout
        } else {
            &kinds[i % kinds.len()]
        };
        jobs.push(j.clone());
        want.push(*s);
    }
    let outs = ex.run_many(&jobs);
    let mut by_status: HashMap<&str, usize> = HashMap::new();
    for (i, (o, w)) in outs.iter().zip(&want).enumerate() {
        assert_eq!(o.status, *w, "job {i}: {:?} -> {o:?}", jobs[i].code);
        *by_status.entry(o.status.as_str()).or_default() += 1;
    }
    eprintln!("statuses: {by_status:?}");
    // Validation goes through the same pool.
    let v = ex.validate("def f(x):\n    return x + 1\n", "1");
    assert_eq!(v.status, ExecStatus::Ok);

    assert_eq!(
        ex.worker_restarts(),
        0,
        "no worker should have needed replacing"
    );
    assert_eq!(fd_count(), fds_before, "host fds grew");
    let me = std::process::id() as i32;
    let workers = ex.worker_pids();
    assert_eq!(workers.len(), 2);
    // A job's process may still be exiting (its namespaces tearing down) when its record has
    // arrived; the fork server reaps it on its own: give it a moment.
    let mut procs = processes();
    for _ in 0..60 {
        if !procs.iter().any(|(_, ppid, _)| workers.contains(ppid)) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        procs = processes();
    }
    let zombies: Vec<_> = procs
        .iter()
        .filter(|(_, ppid, st)| *st == 'Z' && (*ppid == me || workers.contains(ppid)))
        .collect();
    assert!(zombies.is_empty(), "zombies: {zombies:?}");
    let stray: Vec<_> = procs
        .iter()
        .filter(|(_, ppid, _)| workers.contains(ppid))
        .collect();
    assert!(
        stray.is_empty(),
        "children of workers still alive: {stray:?}"
    );
    // Every worker's private /tmp is empty (seen from the host through /proc/<pid>/root).
    for pid in &workers {
        let entries: Vec<_> = std::fs::read_dir(format!("/proc/{pid}/root/tmp"))
            .expect("worker root visible to the host")
            .flatten()
            .collect();
        assert!(
            entries.is_empty(),
            "worker {pid} /tmp not empty: {entries:?}"
        );
    }
    drop(ex);
    // Dropping the executor kills and reaps the workers.
    let procs = processes();
    for pid in &workers {
        assert!(
            !procs.iter().any(|(p, _, _)| p == pid),
            "worker {pid} outlived the executor"
        );
    }
}

#[test]
fn a_hung_worker_is_killed_and_replaced() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let cfg = ExecutorConfig {
        workers: 1,
        timeout_ms: 300,
        grace_ms: 200,
        ..ExecutorConfig::default()
    };
    let ex = Executor::start(cfg).expect("executor starts");
    let code = "def f(x):\n    return x\n";
    assert_eq!(ex.run(code, "1").status, ExecStatus::Ok);
    let old = ex.worker_pids();
    assert_eq!(old.len(), 1);
    // Freeze the worker: it can no longer answer, so the host must give up on it.
    // SAFETY: SIGSTOP to a process this test owns (through the executor).
    unsafe {
        libc::kill(old[0], libc::SIGSTOP);
    }
    let t0 = std::time::Instant::now();
    let o = ex.run(code, "2");
    // The job is not lost: it runs again on the replacement.
    assert_eq!(o.status, ExecStatus::Ok, "{o:?}");
    assert_eq!(o.repr.as_deref(), Some("2"));
    assert!(t0.elapsed().as_secs_f64() < 6.0, "the host must not hang");
    assert_eq!(ex.worker_restarts(), 1);
    let new = ex.worker_pids();
    assert_eq!(new.len(), 1);
    assert_ne!(new[0], old[0]);
    assert!(
        !processes().iter().any(|(p, _, _)| *p == old[0]),
        "the hung worker was reaped"
    );
    let o = ex.run(code, "3");
    assert_eq!(o.status, ExecStatus::Ok, "the replacement works");
}
