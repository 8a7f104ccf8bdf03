//! The seven isolation classes of issue #11, each attacked by hostile programs and each checked
//! from OUTSIDE the sandbox (this test process, `/proc`, sentinel descriptors and processes):
//!
//! 1. inherited descriptors (sentinels at fds >= 256 in this process),
//! 2. processes outside the job (a sentinel process under the jobs' outer uid),
//! 3. the fork server (its rlimits, nice value, affinity, scheduler; the health check that
//!    replaces a changed or dead worker),
//! 4. leftovers between jobs (`/tmp`, SysV IPC, `/dev/null` flags),
//! 5. other jobs' data in the fork server's memory (read through `/proc/<pid>/mem`),
//! 6. forged reports (a program writing its own record or patching the reporting code),
//! 7. one digit limit for inputs and outputs.
//!
//! Run: `cargo test --release -p azr-core --test executor_isolation` (a few seconds).

use azr_core::executor::{ExecStatus, Executor, ExecutorConfig, Outcome, PyValue, MAX_INT_DIGITS};
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

/// Sentinel descriptors this process holds (without close-on-exec) before any executor starts.
struct Sentinels {
    pipe_read: std::fs::File,
    /// A separate read-only handle on the (already unlinked) sentinel file.
    file_read: std::fs::File,
    pipe_fd: i32,
    file_fd: i32,
}

const PIPE_FD: i32 = 300;
const FILE_FD: i32 = 301;
const FILE_TEXT: &[u8] = b"sentinel file: must stay exactly like this\n";

fn sentinels() -> &'static Sentinels {
    static S: OnceLock<Sentinels> = OnceLock::new();
    S.get_or_init(|| {
        let mut fds = [0i32; 2];
        // SAFETY: plain pipe/dup2/fcntl calls on fds this test owns.
        unsafe {
            assert_eq!(libc::pipe(fds.as_mut_ptr()), 0);
            assert_eq!(libc::dup2(fds[1], PIPE_FD), PIPE_FD);
            libc::close(fds[1]);
            let fl = libc::fcntl(fds[0], libc::F_GETFL);
            libc::fcntl(fds[0], libc::F_SETFL, fl | libc::O_NONBLOCK);
        }
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target");
        let _ = std::fs::create_dir_all(&dir);
        let file_path = dir.join(format!("azr_fd_sentinel_{}", std::process::id()));
        let mut f = std::fs::File::create(&file_path).unwrap();
        f.write_all(FILE_TEXT).unwrap();
        drop(f);
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&file_path)
            .unwrap();
        // SAFETY: dup2 onto a fixed high fd; the duplicate has no close-on-exec flag.
        unsafe {
            assert_eq!(libc::dup2(f.as_raw_fd(), FILE_FD), FILE_FD);
        }
        drop(f);
        let file_read = std::fs::File::open(&file_path).unwrap();
        // Nothing left on disk: the descriptors keep the file alive.
        std::fs::remove_file(&file_path).unwrap();
        // SAFETY: fds[0] is the pipe's read end, owned from here on by the File.
        let pipe_read = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fds[0]) };
        Sentinels {
            pipe_read,
            file_read,
            pipe_fd: PIPE_FD,
            file_fd: FILE_FD,
        }
    })
}

/// One executor with a single worker, so every job runs right after the previous one on the
/// same fork server; started after the sentinel descriptors exist.
fn ex() -> &'static Executor {
    static EX: OnceLock<Executor> = OnceLock::new();
    EX.get_or_init(|| {
        sentinels();
        let cfg = ExecutorConfig {
            workers: 1,
            timeout_ms: 3000,
            ..ExecutorConfig::default()
        };
        Executor::start(cfg).expect("executor starts with every layer")
    })
}

/// A permissive executor (no banned modules or names) to reach the trusted path directly.
fn permissive() -> &'static Executor {
    static EX: OnceLock<Executor> = OnceLock::new();
    EX.get_or_init(|| {
        let cfg = ExecutorConfig {
            workers: 1,
            timeout_ms: 3000,
            banned_modules: vec![],
            banned_names: vec![],
            ..ExecutorConfig::default()
        };
        Executor::start(cfg).expect("executor starts")
    })
}

fn wrap(body: &str) -> String {
    let mut s = String::from("def f(x):\n");
    for line in body.lines() {
        s.push_str("    ");
        s.push_str(line);
        s.push('\n');
    }
    s
}

fn ok(o: &Outcome) -> &PyValue {
    assert_eq!(o.status, ExecStatus::Ok, "{o:?}");
    o.value.as_ref().unwrap()
}

fn ints(v: &PyValue) -> Vec<i64> {
    match v {
        PyValue::List(items) => items
            .iter()
            .map(|i| match i {
                PyValue::Int(t) => t.parse().unwrap(),
                other => panic!("{other:?}"),
            })
            .collect(),
        other => panic!("{other:?}"),
    }
}

/// What another process looks like from outside: rlimits, nice, policy, affinity, ioprio.
#[derive(Debug, PartialEq, Eq)]
struct Looks {
    limits: String,
    nice: i32,
    policy: i32,
    affinity: String,
    ioprio: i64,
}

fn looks(pid: i32) -> Looks {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let affinity = status
        .lines()
        .find(|l| l.starts_with("Cpus_allowed_list"))
        .unwrap_or("")
        .to_string();
    // SAFETY: read-only queries about another process.
    unsafe {
        *libc::__errno_location() = 0;
        Looks {
            limits,
            nice: libc::getpriority(libc::PRIO_PROCESS, pid as libc::id_t),
            policy: libc::sched_getscheduler(pid),
            affinity,
            ioprio: libc::syscall(libc::SYS_ioprio_get, 1, pid),
        }
    }
}

/// A process under the uid the jobs' user namespace maps to (65534 when this test is root).
fn sentinel_process() -> Child {
    let mut cmd = Command::new("/bin/sleep");
    cmd.arg("120")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: getuid cannot fail.
    if unsafe { libc::getuid() } == 0 {
        use std::os::unix::process::CommandExt;
        cmd.uid(65534).gid(65534);
    }
    cmd.spawn().expect("sentinel process")
}

/// Every attack a job can try on the processes whose pids it is given (as seen outside).
const ATTACK: &str = r#"
import os, resource, ctypes, fcntl, signal
libc = ctypes.CDLL(None, use_errno=True)
res = {"pid": os.getpid(), "ppid": os.getppid(), "hits": []}
targets = list(x) + [os.getppid(), 0, -1]
for pid in targets:
    for name, act in [
        ("prlimit_nofile", lambda: resource.prlimit(pid, resource.RLIMIT_NOFILE, (8, 8))),
        ("prlimit_as", lambda: resource.prlimit(pid, resource.RLIMIT_AS, (1 << 20, 1 << 20))),
        ("prlimit_cpu", lambda: resource.prlimit(pid, resource.RLIMIT_CPU, (1, 1))),
        ("nice", lambda: os.setpriority(os.PRIO_PROCESS, pid, 19)),
        ("affinity", lambda: os.sched_setaffinity(pid, {0})),
        ("sched", lambda: os.sched_setscheduler(pid, os.SCHED_IDLE, os.sched_param(0))),
        ("ioprio", lambda: libc.syscall(251, 1, pid, (3 << 13) | 7) == 0 or (_ for _ in ()).throw(OSError())),
        ("kill", lambda: os.kill(pid, signal.SIGKILL)),
    ]:
        if pid in (0, 1) and name not in ("kill",):
            continue
        try:
            act()
            res["hits"].append(name + ":" + str(pid))
        except (OSError, ValueError, TypeError):
            pass
for who in (os.PRIO_USER, os.PRIO_PGRP):
    try:
        os.setpriority(who, 0, 19)
    except OSError:
        pass
# Descriptor-ownership signals: point SIGIO/SIGURG of our descriptors at the targets.
r, w = os.pipe()
for fd in (0, 1, 2, 3, r, w):
    for pid in targets:
        try:
            fcntl.fcntl(fd, fcntl.F_SETOWN, pid)
            fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_ASYNC)
            fcntl.fcntl(fd, 10, signal.SIGKILL)  # F_SETSIG
        except OSError:
            pass
os.write(w, b"x")
return res["pid"], res["ppid"], sorted(res["hits"])
"#;

#[test]
fn class1_only_protocol_descriptors_reach_a_job() {
    let s = sentinels();
    let o = ex().run(
        &wrap(
            "import os\nopen_fds = []\nfor fd in range(0, 65536):\n    try:\n        os.fstat(fd)\n    except OSError:\n        continue\n    open_fds.append(fd)\n    if fd > 3:\n        try:\n            os.write(fd, b'ESCAPED')\n        except OSError:\n            pass\n        try:\n            os.ftruncate(fd, 0)\n        except OSError:\n            pass\nreturn open_fds",
        ),
        "0",
    );
    assert_eq!(
        ints(ok(&o)),
        vec![0, 1, 2, 3],
        "a job saw more than its own fds"
    );
    // Outside: nothing arrived on the sentinel pipe, the sentinel file is unchanged.
    let mut buf = [0u8; 64];
    let n = (&s.pipe_read).read(&mut buf);
    assert!(
        matches!(&n, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the sentinel pipe received {n:?}"
    );
    let mut text = vec![0u8; 4096];
    let n = std::os::unix::fs::FileExt::read_at(&s.file_read, &mut text, 0).unwrap();
    assert_eq!(&text[..n], FILE_TEXT);
    // Outside: the fork server itself holds neither sentinel.
    let mine: Vec<String> = [s.pipe_fd, s.file_fd]
        .iter()
        .map(|fd| {
            std::fs::read_link(format!("/proc/self/fd/{fd}"))
                .unwrap()
                .display()
                .to_string()
        })
        .collect();
    for pid in ex().worker_pids() {
        for entry in std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .flatten()
        {
            let target = std::fs::read_link(entry.path())
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            assert!(
                !mine.contains(&target),
                "worker {pid} holds sentinel {target}"
            );
        }
    }
}

#[test]
fn class2_outside_processes_are_invisible_and_unchangeable() {
    let mut sentinel = sentinel_process();
    let spid = sentinel.id() as i32;
    std::thread::sleep(std::time::Duration::from_millis(50));
    let before = looks(spid);
    let me = std::process::id() as i32;
    let me_before = looks(me);
    let o = permissive().run(&wrap(ATTACK), &format!("[{spid}, {me}]"));
    let v = ok(&o);
    let PyValue::Tuple(items) = v else {
        panic!("{v:?}")
    };
    assert!(
        matches!(&items[0], PyValue::Int(p) if p == "1"),
        "a job must be PID 1 of its own namespace: {v:?}"
    );
    assert!(
        matches!(&items[1], PyValue::Int(p) if p == "0"),
        "a job's parent must be invisible: {v:?}"
    );
    assert!(
        matches!(&items[2], PyValue::List(h) if h.is_empty()),
        "attacks succeeded: {:?}",
        o.repr
    );
    assert_eq!(looks(spid), before, "the sentinel process was changed");
    assert_eq!(looks(me), me_before, "the test process was changed");
    assert!(
        sentinel.try_wait().unwrap().is_none(),
        "the sentinel process was killed"
    );
    let _ = sentinel.kill();
    let _ = sentinel.wait();
}

#[test]
fn class3_the_fork_server_is_unreachable_from_its_jobs() {
    let workers = permissive().worker_pids();
    let before: Vec<Looks> = workers.iter().map(|p| looks(*p)).collect();
    let restarts = permissive().worker_restarts();
    let list = workers
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    for _ in 0..3 {
        let o = permissive().run(&wrap(ATTACK), &format!("[{list}]"));
        let PyValue::Tuple(items) = ok(&o) else {
            panic!()
        };
        assert!(
            matches!(&items[2], PyValue::List(h) if h.is_empty()),
            "attacks succeeded: {:?}",
            o.repr
        );
    }
    assert_eq!(permissive().worker_pids(), workers, "a worker died");
    let after: Vec<Looks> = workers.iter().map(|p| looks(*p)).collect();
    assert_eq!(after, before, "a fork server was changed by its jobs");
    assert_eq!(permissive().worker_restarts(), restarts);
    let o = permissive().run(&wrap("return x + 1"), "1");
    assert_eq!(o.repr.as_deref(), Some("2"));
}

/// Runs `body` on a one-worker executor with a local metrics recorder, then checks that the
/// recorder counted exactly two worker replacements.
fn one_worker_replaced_twice(body: impl FnOnce(&Executor)) {
    let cfg = ExecutorConfig {
        workers: 1,
        ..ExecutorConfig::default()
    };
    let ex = Executor::start(cfg).expect("executor starts");
    let rec = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = rec.handle();
    metrics::with_local_recorder(&rec, || {
        azr_core::metrics::register_all();
        body(&ex);
    });
    let text = handle.render();
    assert!(
        text.contains("azr_executor_worker_replacements_total 2"),
        "{text}"
    );
}

#[test]
fn class3_a_changed_or_dead_fork_server_is_replaced_and_every_job_gets_an_outcome() {
    let code = wrap("return x * 3");
    one_worker_replaced_twice(|ex| {
        assert_eq!(ex.run(&code, "1").repr.as_deref(), Some("3"));
        // Changed from outside (as a job would have liked to): lower priority.
        let pid = ex.worker_pids()[0];
        // SAFETY: renicing a process this test owns (through the executor).
        assert_eq!(
            unsafe { libc::setpriority(libc::PRIO_PROCESS, pid as libc::id_t, 7) },
            0
        );
        let o = ex.run(&code, "2");
        assert_eq!(o.repr.as_deref(), Some("6"), "{o:?}");
        assert_eq!(ex.worker_restarts(), 1);
        let pid2 = ex.worker_pids()[0];
        assert_ne!(pid2, pid, "the changed worker was replaced");
        // Dead: kill the fork server; the next job still gets its outcome.
        // SAFETY: SIGKILL to a process this test owns (through the executor).
        unsafe {
            libc::kill(pid2, libc::SIGKILL);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        let o = ex.run(&code, "3");
        assert_eq!(o.repr.as_deref(), Some("9"), "{o:?}");
        assert_eq!(ex.worker_restarts(), 2);
    });
}

/// Lower `resource` of process `pid` to `bytes` from outside it: directly when this process may
/// (same uid: an unprivileged run), else (a root run without `CAP_SYS_RESOURCE`, whose workers
/// run as 65534) through `prlimit(1)` running under the workers' uid. `Err` says why neither
/// worked.
fn lower_rlimit_from_outside(pid: i32, resource: &str, bytes: u64) -> Result<(), String> {
    let lim = libc::rlimit {
        rlim_cur: bytes,
        rlim_max: bytes,
    };
    let which = match resource {
        "as" => libc::RLIMIT_AS,
        "nofile" => libc::RLIMIT_NOFILE,
        other => return Err(format!("unknown resource {other}")),
    };
    // SAFETY: prlimit on a process this test owns (through the executor); only lowers.
    if unsafe { libc::prlimit(pid, which, &lim, std::ptr::null_mut()) } == 0 {
        return Ok(());
    }
    let direct = std::io::Error::last_os_error();
    use std::os::unix::process::CommandExt;
    let out = Command::new("/usr/bin/prlimit")
        .arg(format!("--pid={pid}"))
        .arg(format!("--{resource}={bytes}:{bytes}"))
        .uid(65534)
        .gid(65534)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("direct: {direct}; prlimit(1): {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "direct: {direct}; prlimit(1) as 65534: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

#[test]
fn class3_a_fork_server_with_a_lowered_rlimit_is_replaced_and_the_job_gets_an_outcome() {
    // Needs a starting address-space limit above the subtle one below (normally unlimited).
    let code = wrap("return x * 5");
    one_worker_replaced_twice(|ex| {
        assert_eq!(ex.run(&code, "1").repr.as_deref(), Some("5"));
        let pid = ex.worker_pids()[0];
        let limits_at_start = looks(pid).limits;
        // A subtle change first: an address-space limit above the jobs' own 512 MiB, so every
        // job could still set itself up and only the health check can notice it.
        const SUBTLE: u64 = 768 << 20;
        lower_rlimit_from_outside(pid, "as", SUBTLE)
            .expect("lowering the worker's RLIMIT_AS from outside");
        let lowered = looks(pid).limits;
        assert_ne!(lowered, limits_at_start, "the limit did not change");
        assert!(
            lowered
                .lines()
                .any(|l| l.starts_with("Max address space") && l.contains(&SUBTLE.to_string())),
            "{lowered}"
        );
        // The next job: the health check sees the change, the worker is replaced, and the job
        // runs on the replacement.
        let o = ex.run(&code, "2");
        assert_eq!(o.repr.as_deref(), Some("10"), "{o:?}");
        assert_eq!(
            ex.worker_restarts(),
            1,
            "the health check missed the lowered limit"
        );
        let pid2 = ex.worker_pids()[0];
        assert_ne!(pid2, pid, "the worker was not replaced");
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "the replaced worker {pid} still exists"
        );
        assert_eq!(
            looks(pid2).limits,
            limits_at_start,
            "the replacement does not have the original limits"
        );
        // The classic attack: a limit so low that every later job would fail to set itself up.
        lower_rlimit_from_outside(pid2, "as", 64 << 20)
            .expect("lowering the worker's RLIMIT_AS from outside");
        let o = ex.run(&code, "3");
        assert_eq!(o.repr.as_deref(), Some("15"), "{o:?}");
        assert_eq!(ex.worker_restarts(), 2);
        // The replacement is healthy: no further replacement.
        assert_eq!(ex.run(&code, "4").repr.as_deref(), Some("20"));
        assert_eq!(ex.worker_restarts(), 2);
    });
}

#[test]
fn class4_nothing_is_left_for_the_next_job() {
    let flags = wrap("import fcntl\nreturn [fcntl.fcntl(fd, fcntl.F_GETFL) for fd in (0, 1, 2)]");
    let clean_flags = ints(ok(&permissive().run(&flags, "0")));
    let worker = permissive().worker_pids()[0];
    let fdinfo = |pid: i32| -> Vec<String> {
        (0..3)
            .map(|fd| {
                std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")).unwrap_or_default()
            })
            .map(|t| {
                t.lines()
                    .find(|l| l.starts_with("flags"))
                    .unwrap_or("")
                    .to_string()
            })
            .collect()
    };
    let server_flags = fdinfo(worker);
    // Job A leaves files (in an unreadable deep tree too), SysV IPC objects and changed flags
    // on its stdio.
    let leave = wrap(
        "import os, ctypes, fcntl\nlibc = ctypes.CDLL(None, use_errno=True)\nopen('/tmp/leftover', 'w').write('secret')\nd = '/tmp'\nfor i in range(200):\n    d = d + '/d'\n    os.mkdir(d)\nopen(d + '/deep', 'w').write('secret')\nos.chmod('/tmp/d', 0)\nok = [libc.shmget(0x617a7201, 4096, 0o1000 | 0o666) >= 0, libc.msgget(0x617a7202, 0o1000 | 0o666) >= 0, libc.semget(0x617a7203, 1, 0o1000 | 0o666) >= 0]\nfor fd in (0, 1, 2):\n    fcntl.fcntl(fd, fcntl.F_SETFL, os.O_NONBLOCK | os.O_APPEND)\nreturn ok",
    );
    let o = permissive().run(&leave, "0");
    assert_eq!(o.repr.as_deref(), Some("[True, True, True]"), "{o:?}");
    // Job B sees none of it.
    let look = wrap(
        "import os, ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\nreturn [os.listdir('/tmp'), libc.shmget(0x617a7201, 0, 0), libc.msgget(0x617a7202, 0), libc.semget(0x617a7203, 0, 0)]",
    );
    let o = permissive().run(&look, "0");
    assert_eq!(o.repr.as_deref(), Some("[[], -1, -1, -1]"), "{o:?}");
    assert_eq!(ints(ok(&permissive().run(&flags, "0"))), clean_flags);
    // Outside: the fork server's /tmp is empty and its own descriptors' flags are unchanged.
    let tmp: Vec<_> = std::fs::read_dir(format!("/proc/{worker}/root/tmp"))
        .unwrap()
        .flatten()
        .collect();
    assert!(tmp.is_empty(), "{tmp:?}");
    assert_eq!(fdinfo(worker), server_flags);
    // Outside: the host IPC namespace has none of the keys.
    for table in ["shm", "msg", "sem"] {
        let text = std::fs::read_to_string(format!("/proc/sysvipc/{table}")).unwrap_or_default();
        for key in ["1635414529", "1635414530", "1635414531"] {
            assert!(!text.contains(key), "{table} holds {key}");
        }
    }
}

fn worker_memory_contains(pid: i32, needles: &[&str]) -> Option<Vec<String>> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).ok()?;
    let mut mem = std::fs::File::open(format!("/proc/{pid}/mem")).ok()?;
    let mut found = Vec::new();
    for line in maps.lines() {
        let mut parts = line.split_whitespace();
        let (Some(range), Some(perms)) = (parts.next(), parts.next()) else {
            continue;
        };
        if !perms.starts_with('r') {
            continue;
        }
        let Some((a, b)) = range.split_once('-') else {
            continue;
        };
        let (Ok(a), Ok(b)) = (u64::from_str_radix(a, 16), u64::from_str_radix(b, 16)) else {
            continue;
        };
        if b - a > 1 << 30 {
            continue;
        }
        let mut buf = vec![0u8; (b - a) as usize];
        if mem.seek(std::io::SeekFrom::Start(a)).is_err() || mem.read_exact(&mut buf).is_err() {
            continue;
        }
        for n in needles {
            if buf.windows(n.len()).any(|w| w == n.as_bytes()) {
                found.push(n.to_string());
            }
        }
    }
    Some(found)
}

#[test]
fn class5_the_fork_server_never_holds_a_jobs_data() {
    let tag = format!(
        "{:x}",
        std::process::id() as u64 * 2654435761 % 1_000_000_007
    );
    let code_marker = format!("AZRCODE{tag}");
    let input_marker = format!("AZRINPUT{tag}");
    let output_marker = format!("AZROUTPUT{tag}");
    // The output marker is built at run time: it appears in no code or input.
    let code = format!(
        "def f(x):\n    note = '{code_marker}'\n    return x.replace('INPUT', 'OUT' + 'PUT') + '!'\n"
    );
    let v = ex().validate(&code, &format!("'{input_marker}'"));
    assert_eq!(
        v.repr.as_deref(),
        Some(format!("'{output_marker}!'").as_str()),
        "{v:?}"
    );
    assert!(ex().run(&code, &format!("'{input_marker}'")).is_ok());
    // Inside: the next job searches every object it can reach.
    let snoop = wrap(&format!(
        "import gc\nhits = set()\nfor o in gc.get_objects():\n    try:\n        t = repr(o)\n    except Exception:\n        continue\n    for m in ('{}', '{}', '{}'):\n        if m.replace('_', '') in t and o is not x:\n            hits.add(m)\nreturn sorted(hits)",
        code_marker.replace("AZR", "AZR_"),
        input_marker.replace("AZR", "AZR_"),
        output_marker.replace("AZR", "AZR_")
    ));
    let o = permissive().run(&snoop, "0");
    assert_eq!(o.repr.as_deref(), Some("[]"), "{o:?}");
    // Outside: the fork server's whole memory holds none of the three.
    for pid in ex().worker_pids() {
        match worker_memory_contains(pid, &[&code_marker, &input_marker, &output_marker]) {
            Some(found) => assert!(found.is_empty(), "worker {pid} memory holds {found:?}"),
            None => eprintln!("cannot read /proc/{pid}/mem here; memory check skipped"),
        }
    }
}

/// A program that writes its own record on its result fd (3) and exits.
fn forge(record: &str) -> String {
    wrap(&format!(
        "import os\ndata = {record:?}.encode()\nos.write(3, len(data).to_bytes(4, 'big') + data)\nos._exit(0)"
    ))
}

#[test]
fn class6_forged_reports_are_at_most_a_returnable_value() {
    let ex = permissive();
    // Statuses only the host decides, impossible values: errors, never a result.
    for (record, want) in [
        (
            r#"{"status":"sandbox_failure","error":"x"}"#,
            ExecStatus::Error,
        ),
        (r#"{"status":"timeout"}"#, ExecStatus::Error),
        (r#"{"status":"ok"}"#, ExecStatus::Error),
        (
            r#"{"status":"ok","value":{"t":"int","v":"12a"}}"#,
            ExecStatus::Error,
        ),
        (
            r#"{"status":"ok","value":{"t":"dict","v":[[{"t":"list","v":[]},{"t":"none"}]]}}"#,
            ExecStatus::Error,
        ),
        (
            r#"{"status":"ok","value":{"t":"set","v":[{"t":"int","v":"1"},{"t":"float","v":"1.0"}]}}"#,
            ExecStatus::Error,
        ),
        (
            r#"{"status":"ok","value":{"t":"object","v":"__eq__"}}"#,
            ExecStatus::Error,
        ),
    ] {
        let o = ex.run(&forge(record), "0");
        assert_eq!(o.status, want, "{record}: {o:?}");
        assert!(o.value.is_none());
    }
    // A forged value that a function could have returned is just that value, with the repr
    // rendered by Rust (a forged repr is ignored).
    let o = ex.run(
        &forge(r#"{"status":"ok","value":{"t":"int","v":"999"},"repr":"HACKED"}"#),
        "0",
    );
    assert_eq!(o.repr.as_deref(), Some("999"), "{o:?}");
    // Patching the reporting code in the job's own process: the same.
    let patch = wrap(
        "import sys\nm = sys.modules['__main__']\nm.value_of = lambda v, cap: ({'t': 'str', 'v': 'patched'}, None)\nreturn 1",
    );
    assert_eq!(ex.run(&patch, "0").repr.as_deref(), Some("'patched'"));
    // Validation: the two calls are compared in Rust, and the two processes too.
    let two = ex.validate(
        &forge(r#"{"status":"ok","values":[{"t":"int","v":"1"},{"t":"int","v":"2"}]}"#),
        "0",
    );
    assert_eq!(two.status, ExecStatus::Invalid, "{two:?}");
    // Cross-process tampering: the forged value is drawn once per process, at module level, so
    // both calls inside one process report the same value and the in-process comparison cannot
    // see anything; only the comparison of the two processes can.
    let forged_per_process = |n: &str| {
        format!(
            "import os, sys\nn = {n}\ndef f(x):\n    m = sys.modules['__main__']\n    m.value_of = lambda v, cap: ({{'t': 'int', 'v': str(n)}}, None)\n    return 1\n"
        )
    };
    let per_process = forged_per_process("int.from_bytes(os.urandom(8), 'big')");
    // In one process the forgery works: the reported value is the drawn one, not f's 1.
    let one = ex.run(&per_process, "0");
    assert_eq!(one.status, ExecStatus::Ok, "{one:?}");
    assert_ne!(
        one.repr.as_deref(),
        Some("1"),
        "the forgery did not take: {one:?}"
    );
    let o = ex.validate(&per_process, "0");
    assert_eq!(
        o.status,
        ExecStatus::Invalid,
        "nondeterminism hidden by forging: {o:?}"
    );
    assert!(
        o.error
            .as_deref()
            .unwrap_or("")
            .contains("two processes returned different values"),
        "caught by the wrong check: {o:?}"
    );
    // Control: the same forgery with one value in every process is accepted (as the value it
    // forges, which f could have returned), so the refusal above is the cross-process check's.
    let o = ex.validate(&forged_per_process("7"), "0");
    assert_eq!(o.repr.as_deref(), Some("7"), "{o:?}");
    let noise = wrap("import os\nreturn os.urandom(8)");
    assert_eq!(ex.validate(&noise, "0").status, ExecStatus::Invalid);
}

#[test]
fn class7_one_digit_limit_for_inputs_and_outputs() {
    let ex = ex();
    let d = MAX_INT_DIGITS;
    let o = ex.run(&wrap(&format!("return 10**{d} - 1")), "0");
    assert_eq!(o.repr.as_ref().map(|r| r.len()), Some(d), "{o:?}");
    let o = ex.run(&wrap(&format!("return 10**{d}")), "0");
    assert_eq!(o.status, ExecStatus::OutputTooLarge, "{o:?}");
    let o = ex.run(&wrap(&format!("return [1, -(10**{})]", d + 500)), "0");
    assert_eq!(o.status, ExecStatus::OutputTooLarge, "{o:?}");
    // A gold no answer can spell is refused at validation.
    let o = ex.validate(&wrap(&format!("return 10**{d}")), "0");
    assert_eq!(o.status, ExecStatus::Invalid, "{o:?}");
    assert!(o.error.unwrap().contains("cannot be answered"));
    // Inputs and answers: the same limit.
    let nines = "9".repeat(d);
    assert!(ex.parse_literal(&nines).is_ok());
    assert!(ex.parse_literal(&format!("{nines}9")).is_err());
    assert_eq!(
        ex.run(&wrap("return x"), &format!("{nines}9")).status,
        ExecStatus::Invalid
    );
    // Every valid gold is answerable: its literal parses back to an equal value.
    for body in [
        format!("return 10**{d} - 1"),
        "return [float('nan'), float('inf'), -0.0, frozenset({1, 2}), set(), b'\\x00']".into(),
        "return {'k': (1, 2.5, None, True)}".into(),
    ] {
        let v = ex.validate(&wrap(&body), "0");
        let gold = ok(&v).clone();
        let back = ex
            .parse_literal(&gold.to_literal())
            .expect("gold answerable");
        assert!(back.same_as(&gold), "{body}: {gold:?} vs {back:?}");
        let again = ex.parse_literal(v.repr.as_deref().unwrap());
        if !body.contains("nan") {
            assert!(again.expect("repr parses").same_as(&gold), "{body}");
        }
    }
    // A forged over-long int is refused by the host as well.
    let o = permissive().run(
        &forge(&format!(
            r#"{{"status":"ok","value":{{"t":"int","v":"{}"}}}}"#,
            "7".repeat(d + 1)
        )),
        "0",
    );
    assert_eq!(o.status, ExecStatus::OutputTooLarge, "{o:?}");
}

#[test]
fn isolation_report_lists_every_new_layer() {
    let iso = ex().isolation();
    for layer in [
        "job_pid_ns",
        "job_ipc_ns",
        "job_tmp",
        "job_fds",
        "job_no_caps",
    ] {
        assert!(
            iso.required_layers()
                .iter()
                .any(|(n, on)| *n == layer && *on),
            "{layer}: {iso:?}"
        );
    }
    assert!(iso.missing().is_empty(), "{iso:?}");
}
