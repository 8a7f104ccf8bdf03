//! One fork-server worker process and the Rust side of its protocol.
//!
//! The worker's fd 0 is a `SOCK_SEQPACKET` control socket (one JSON object per packet). For
//! every job Rust creates two fresh pipes, writes the job (op, code, input) into the first and
//! hands the worker only the job's ends of both (`SCM_RIGHTS`) with a `{"id"}` request. The worker
//! clones the job process, which reads its job from its own pipe and writes its record into its
//! own result pipe, which Rust reads directly: the fork server never holds a job's code, input or
//! result. The worker reports `started` (the job's pid) and, once reaped, `done` (exit status,
//! signal, whether it killed the job at the deadline); frames carry the request id and stale ones
//! (jobs whose record Rust already had) are skipped.
//!
//! Rust keeps its own deadline (timeout + grace): if neither a record nor `done` arrives in time,
//! Rust kills the job itself, and if the worker still stays silent it is declared hung (the pool
//! kills and replaces it). Before each job the pool compares the worker's rlimits, nice value,
//! CPU affinity, scheduler and I/O priority with what they were at start ([`Health`]).

use super::sandbox::{spawn_worker, SpawnPlan};
use serde::Deserialize;
use serde_json::Value;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::process::Child;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The worker source, embedded at compile time.
pub(crate) const WORKER_PY: &str = include_str!("worker.py");

/// The `-c` program that starts a worker: it compiles the worker source (its first argument) in
/// a short-lived child and runs the marshalled code. Compiling in the worker itself would leave
/// megabytes of the compiler's freed temporaries resident in its heap, and every job's `clone`
/// and exit walk the page tables of everything resident (about a quarter of a job's CPU time).
pub(crate) const WORKER_BOOT: &str = r#"import marshal, os, sys
def _load(src):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            view = memoryview(marshal.dumps(compile(src, "<azr-worker>", "exec")))
            while view:
                view = view[os.write(w, view):]
        finally:
            os._exit(0)
    os.close(w)
    chunks = []
    while True:
        chunk = os.read(r, 1 << 20)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(r)
    os.waitpid(pid, 0)
    return marshal.loads(b"".join(chunks))
_code = _load(sys.argv.pop(1))
del _load
exec(_code)
"#;

/// Why a worker can no longer be trusted (the pool kills and replaces it).
#[derive(Debug)]
pub(crate) enum Fault {
    /// No frame before the deadline.
    Silent,
    /// The socket closed or failed.
    Gone(String),
    /// A frame that does not follow the protocol (wrong id, bad JSON).
    Protocol(String),
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fault::Silent => write!(f, "worker did not answer in time"),
            Fault::Gone(why) => write!(f, "worker exited ({why})"),
            Fault::Protocol(why) => write!(f, "protocol violation ({why})"),
        }
    }
}

/// How one job ended, as seen from outside it.
#[derive(Debug)]
pub(crate) enum Ending {
    /// A complete record (the bytes of the JSON frame after the ready byte).
    Record(Vec<u8>),
    /// The job's setup failed before any user text ran (the reason).
    SetupFailed(String),
    /// More than the allowed bytes arrived on the result pipe (the job was killed).
    TooLarge,
    /// The worker killed the job at the deadline.
    Timeout,
    /// The job ended without a complete record (signal number, exit code; -1 if signalled).
    NoRecord { signal: i32, exit: i32 },
}

/// What happened to one job.
#[derive(Debug)]
pub(crate) struct Done {
    /// How it ended.
    pub ending: Ending,
    /// Wall time from the request to the ending, in ms.
    pub ms: f64,
    /// Rust killed the job because the worker missed the deadline.
    pub killed_by_host: bool,
}

#[derive(Deserialize)]
struct Header {
    id: u64,
    ev: String,
    #[serde(default)]
    pid: i32,
    #[serde(default)]
    signal: i32,
    #[serde(default)]
    exit: i32,
    #[serde(default)]
    timeout: bool,
}

/// Facts about a worker process that a job could try to change (it cannot: it is in another PID
/// namespace) and that every later job would inherit; compared before every job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Health {
    /// `/proc/<pid>/limits` (every rlimit, soft and hard).
    limits: String,
    /// The nice value.
    nice: i32,
    /// Scheduling policy and priority.
    scheduler: (i32, i32),
    /// CPU affinity mask.
    affinity: Vec<u8>,
    /// I/O priority (`ioprio_get`).
    ioprio: i64,
}

impl Health {
    /// Read the facts of process `pid` from outside it; `limits_file` is its open
    /// `/proc/<pid>/limits` (kept open and re-read from offset 0: the kernel regenerates the text
    /// on every read, and the path lookup is not paid per job).
    pub(crate) fn of(pid: i32, limits_file: &std::fs::File) -> Result<Health, String> {
        use std::os::unix::fs::FileExt;
        let mut raw = Vec::with_capacity(2048);
        let mut buf = [0u8; 2048];
        loop {
            let n = limits_file
                .read_at(&mut buf, raw.len() as u64)
                .map_err(|e| format!("read /proc/{pid}/limits: {e}"))?;
            if n == 0 {
                break;
            }
            raw.extend_from_slice(&buf[..n]);
        }
        if raw.is_empty() {
            return Err("process gone".into());
        }
        let limits = String::from_utf8_lossy(&raw).into_owned();
        // SAFETY: plain queries about another process; every out-pointer is owned here.
        unsafe {
            *libc::__errno_location() = 0;
            let nice = libc::getpriority(libc::PRIO_PROCESS, pid as libc::id_t);
            if nice == -1 && *libc::__errno_location() != 0 {
                return Err(format!("getpriority: {}", std::io::Error::last_os_error()));
            }
            let policy = libc::sched_getscheduler(pid);
            let mut param: libc::sched_param = std::mem::zeroed();
            if policy < 0 || libc::sched_getparam(pid, &mut param) != 0 {
                return Err(format!("sched_get*: {}", std::io::Error::last_os_error()));
            }
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            if libc::sched_getaffinity(pid, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
                return Err(format!(
                    "sched_getaffinity: {}",
                    std::io::Error::last_os_error()
                ));
            }
            let affinity = std::slice::from_raw_parts(
                (&set as *const libc::cpu_set_t).cast::<u8>(),
                std::mem::size_of::<libc::cpu_set_t>(),
            )
            .to_vec();
            // ioprio_get(IOPRIO_WHO_PROCESS = 1, pid)
            let ioprio = libc::syscall(libc::SYS_ioprio_get, 1, pid);
            Ok(Health {
                limits,
                nice,
                scheduler: (policy, param.sched_priority),
                affinity,
                ioprio,
            })
        }
    }

    /// Which facts differ from `baseline` (empty when healthy).
    pub(crate) fn diff(&self, baseline: &Health) -> Vec<&'static str> {
        let mut d = Vec::new();
        if self.limits != baseline.limits {
            d.push("rlimits");
        }
        if self.nice != baseline.nice {
            d.push("nice");
        }
        if self.scheduler != baseline.scheduler {
            d.push("scheduler");
        }
        if self.affinity != baseline.affinity {
            d.push("affinity");
        }
        if self.ioprio != baseline.ioprio {
            d.push("ioprio");
        }
        d
    }
}

/// A running worker.
pub(crate) struct WorkerProc {
    child: Child,
    ctrl: OwnedFd,
    next_id: u64,
    baseline: Health,
    /// The worker's `/proc/<pid>/limits`, open from start (see [`Health::of`]).
    limits_file: Option<std::fs::File>,
    /// The `hello` frame the worker sent at start (uid, landlock status, Python version).
    pub hello: Value,
}

fn cvt(rc: libc::c_int, what: &str) -> Result<libc::c_int, String> {
    if rc < 0 {
        Err(format!("{what}: {}", std::io::Error::last_os_error()))
    } else {
        Ok(rc)
    }
}

/// A pipe (read end, write end), both close-on-exec.
fn pipe() -> Result<(OwnedFd, OwnedFd), String> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: pipe2 fills two fds that we then own.
    cvt(
        unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) },
        "pipe2",
    )?;
    // SAFETY: both fds were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn set_nonblocking(fd: RawFd) {
    // SAFETY: fcntl on an fd we own.
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK);
    }
}

/// Send `body` with two descriptors over the control socket.
fn send_with_fds(sock: RawFd, body: &[u8], fds: [RawFd; 2]) -> Result<(), Fault> {
    let fd_bytes = std::mem::size_of::<[RawFd; 2]>() as u32;
    // SAFETY: CMSG_SPACE is a pure computation.
    let space = unsafe { libc::CMSG_SPACE(fd_bytes) } as usize;
    let mut cbuf = vec![0u64; space.div_ceil(8)];
    let mut iov = libc::iovec {
        iov_base: body.as_ptr() as *mut libc::c_void,
        iov_len: body.len(),
    };
    // SAFETY: msghdr/cmsghdr built over buffers that outlive the sendmsg call.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = space as _;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(fd_bytes) as _;
        std::ptr::copy_nonoverlapping(fds.as_ptr(), libc::CMSG_DATA(cmsg).cast::<RawFd>(), 2);
        loop {
            let n = libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL);
            if n >= 0 {
                return Ok(());
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(Fault::Gone(format!("sendmsg: {e}")));
            }
        }
    }
}

impl WorkerProc {
    /// Spawn a worker under `plan` and wait (up to `start_timeout`) for its hello.
    pub(crate) fn spawn(
        python: &str,
        config_json: &str,
        plan: Arc<SpawnPlan>,
        start_timeout: Duration,
    ) -> Result<Self, String> {
        let mut pair = [0 as RawFd; 2];
        // SAFETY: socketpair fills two fds that we then own.
        cvt(
            unsafe {
                libc::socketpair(
                    libc::AF_UNIX,
                    libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
                    0,
                    pair.as_mut_ptr(),
                )
            },
            "socketpair",
        )?;
        // SAFETY: both fds were just created and are owned by nobody else.
        let (ours, theirs) =
            unsafe { (OwnedFd::from_raw_fd(pair[0]), OwnedFd::from_raw_fd(pair[1])) };
        let mut child = spawn_worker(python, WORKER_BOOT, WORKER_PY, config_json, plan, theirs)
            .map_err(|e| e.to_string())?;
        let stderr = child.stderr.take();
        let pid = child.id() as i32;
        let mut w = WorkerProc {
            child,
            ctrl: ours,
            next_id: 1,
            baseline: Health {
                limits: String::new(),
                nice: 0,
                scheduler: (0, 0),
                affinity: Vec::new(),
                ioprio: 0,
            },
            limits_file: None,
            hello: Value::Null,
        };
        let hello = w.recv(Instant::now() + start_timeout).and_then(|frame| {
            serde_json::from_slice::<Value>(&frame)
                .ok()
                .filter(|v| v.get("ev").and_then(Value::as_str) == Some("hello"))
                .ok_or_else(|| Fault::Protocol("malformed hello".into()))
        });
        match hello {
            Ok(v) => {
                w.hello = v;
                // The worker pointed its fd 2 at /dev/null; nothing more will arrive there.
                drop(stderr);
                let limits_file = std::fs::File::open(format!("/proc/{pid}/limits"))
                    .map_err(|e| format!("open /proc/{pid}/limits: {e}"))?;
                w.baseline = Health::of(pid, &limits_file)?;
                w.limits_file = Some(limits_file);
                Ok(w)
            }
            Err(fault) => {
                w.kill();
                let mut diag = String::new();
                if let Some(mut e) = stderr {
                    let mut bytes = Vec::new();
                    let _ = e.read_to_end(&mut bytes);
                    diag = String::from_utf8_lossy(&bytes)
                        .chars()
                        .rev()
                        .take(600)
                        .collect::<Vec<_>>()
                        .into_iter()
                        .rev()
                        .collect();
                }
                Err(format!("{fault}; stderr: {}", diag.trim()))
            }
        }
    }

    /// The worker's pid (also its process group id).
    pub(crate) fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Kill the worker's process group and reap it (its jobs die with it via PDEATHSIG).
    pub(crate) fn kill(&mut self) {
        let pid = self.child.id() as i32;
        // SAFETY: SIGKILL to the worker's own process group (it was spawned with process_group(0)).
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// `Err` names what changed when the worker is dead or its limits, priority, affinity,
    /// scheduler or I/O priority differ from what they were at start.
    pub(crate) fn check_health(&mut self) -> Result<(), String> {
        if let Ok(Some(status)) = self.child.try_wait() {
            return Err(format!("worker exited ({status})"));
        }
        let Some(limits_file) = self.limits_file.as_ref() else {
            return Err("worker has no health baseline".into());
        };
        let now = Health::of(self.pid(), limits_file)?;
        let diff = now.diff(&self.baseline);
        if diff.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "worker {} changed: {}",
                self.pid(),
                diff.join(", ")
            ))
        }
    }

    /// Receive one control packet (blocking until `deadline`).
    fn recv(&mut self, deadline: Instant) -> Result<Vec<u8>, Fault> {
        let fd = self.ctrl.as_raw_fd();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Fault::Silent);
            }
            let mut pfd = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            let ms = left.as_millis().clamp(1, i32::MAX as u128) as i32;
            // SAFETY: one valid pollfd.
            let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
            if rc < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(Fault::Gone(e.to_string()));
            }
            if rc == 0 {
                continue;
            }
            return self.recv_now();
        }
    }

    /// Receive one packet that poll said is there.
    fn recv_now(&mut self) -> Result<Vec<u8>, Fault> {
        let mut buf = vec![0u8; 4096];
        loop {
            // SAFETY: recv into a buffer we own.
            let n = unsafe {
                libc::recv(
                    self.ctrl.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if n > 0 {
                buf.truncate(n as usize);
                return Ok(buf);
            }
            if n == 0 {
                return Err(Fault::Gone("control socket closed".into()));
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(Fault::Gone(e.to_string()));
            }
        }
    }

    /// Run one job: `job` is the JSON the job process reads; it may write at most `max_record`
    /// record bytes. `timeout` is the job's wall limit (enforced by the worker); `grace` is how
    /// long past it Rust waits before killing the job itself.
    pub(crate) fn request(
        &mut self,
        job: &[u8],
        max_record: usize,
        timeout: Duration,
        grace: Duration,
    ) -> Result<Done, Fault> {
        let t0 = Instant::now();
        let id = self.next_id;
        self.next_id += 1;
        // Reports about earlier jobs (whose records we already had) are stale: drop them all
        // now, so they never pile up in the socket (a full socket would block the worker).
        while pipe_has_data(self.ctrl.as_raw_fd()) {
            let frame = self.recv_now()?;
            let head: Header = serde_json::from_slice(&frame)
                .map_err(|e| Fault::Protocol(format!("bad frame: {e}")))?;
            if head.id >= id {
                return Err(Fault::Protocol(format!(
                    "unrequested {} #{}",
                    head.ev, head.id
                )));
            }
        }
        let (job_r, job_w) = pipe().map_err(Fault::Gone)?;
        let (res_r, res_w) = pipe().map_err(Fault::Gone)?;
        if job.len() > 65536 {
            // SAFETY: fcntl on an fd we own; failure only means writing in several steps.
            unsafe {
                libc::fcntl(
                    job_w.as_raw_fd(),
                    libc::F_SETPIPE_SZ,
                    job.len().min(1 << 20) as libc::c_int,
                );
            }
        }
        set_nonblocking(job_w.as_raw_fd());
        set_nonblocking(res_r.as_raw_fd());
        let mut job_w = Some(job_w);
        let mut written = 0usize;
        self.write_job(&mut job_w, job, &mut written)?;
        let body = format!("{{\"id\":{id}}}");
        send_with_fds(
            self.ctrl.as_raw_fd(),
            body.as_bytes(),
            [job_r.as_raw_fd(), res_w.as_raw_fd()],
        )?;
        drop(job_r);
        drop(res_w);

        let mut result: Vec<u8> = Vec::new();
        let mut result_eof = false;
        let mut child_pid: i32 = 0;
        let mut killed_by_host = false;
        let limit = max_record + 5;
        // Until `started`: forking takes milliseconds; a worker that cannot report one is hung.
        let mut deadline = t0 + timeout.max(Duration::from_secs(2)) + grace;
        let elapsed_ms = |t0: Instant| t0.elapsed().as_secs_f64() * 1000.0;
        loop {
            // Decide from what we have.
            if let Some(ending) = parse_result(&result, limit) {
                if matches!(ending, Ending::TooLarge) && child_pid > 0 {
                    // SAFETY: SIGKILL to our job (it is not reaped before `done`, which we
                    // have not seen, so the pid still names it).
                    unsafe {
                        libc::kill(child_pid, libc::SIGKILL);
                    }
                }
                return Ok(Done {
                    ending,
                    ms: elapsed_ms(t0),
                    killed_by_host,
                });
            }
            let mut pfds = [
                libc::pollfd {
                    fd: self.ctrl.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: if result_eof { -1 } else { res_r.as_raw_fd() },
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: job_w.as_ref().map_or(-1, |f| f.as_raw_fd()),
                    events: libc::POLLOUT,
                    revents: 0,
                },
            ];
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                if child_pid > 0 && !killed_by_host {
                    // The worker missed its own deadline: enforce it from here, then give the
                    // worker a last chance to report the kill.
                    // SAFETY: plain kill(2) of our job (not reaped before `done`).
                    unsafe {
                        libc::kill(child_pid, libc::SIGKILL);
                    }
                    killed_by_host = true;
                    deadline = Instant::now() + Duration::from_secs(2);
                    continue;
                }
                return Err(Fault::Silent);
            }
            let ms = left.as_millis().clamp(1, i32::MAX as u128) as i32;
            // SAFETY: three valid pollfds (negative fds are ignored by poll).
            let rc = unsafe { libc::poll(pfds.as_mut_ptr(), 3, ms) };
            if rc < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(Fault::Gone(e.to_string()));
            }
            if pfds[2].revents != 0 {
                self.write_job(&mut job_w, job, &mut written)?;
            }
            if pfds[1].revents != 0 {
                result_eof = read_some(res_r.as_raw_fd(), &mut result, limit + 1);
            }
            if pfds[0].revents != 0 {
                let frame = self.recv_now()?;
                let head: Header = serde_json::from_slice(&frame)
                    .map_err(|e| Fault::Protocol(format!("bad frame: {e}")))?;
                if head.id < id {
                    continue; // about a job whose record we already had
                }
                if head.id != id {
                    return Err(Fault::Protocol(format!(
                        "expected #{id}, got {} #{}",
                        head.ev, head.id
                    )));
                }
                match head.ev.as_str() {
                    "started" if child_pid == 0 && head.pid > 0 => {
                        child_pid = head.pid;
                        if !killed_by_host {
                            deadline = Instant::now() + timeout + grace;
                        }
                    }
                    "done" => {
                        // The job is reaped: everything it wrote is in the pipe.
                        while !result_eof && result.len() <= limit {
                            result_eof = read_some(res_r.as_raw_fd(), &mut result, limit + 1);
                            if !result_eof && !pipe_has_data(res_r.as_raw_fd()) {
                                break;
                            }
                        }
                        let ending = match parse_result(&result, limit) {
                            Some(e) => e,
                            None if head.timeout => Ending::Timeout,
                            None => Ending::NoRecord {
                                signal: head.signal,
                                exit: head.exit,
                            },
                        };
                        return Ok(Done {
                            ending,
                            ms: elapsed_ms(t0),
                            killed_by_host,
                        });
                    }
                    other => {
                        return Err(Fault::Protocol(format!("unexpected {other} #{id}")));
                    }
                }
            }
        }
    }

    fn write_job(
        &mut self,
        job_w: &mut Option<OwnedFd>,
        job: &[u8],
        written: &mut usize,
    ) -> Result<(), Fault> {
        let Some(fd) = job_w.as_ref() else {
            return Ok(());
        };
        while *written < job.len() {
            // SAFETY: write from a live slice to an fd we own.
            let n = unsafe {
                libc::write(
                    fd.as_raw_fd(),
                    job[*written..].as_ptr().cast(),
                    job.len() - *written,
                )
            };
            if n > 0 {
                *written += n as usize;
                continue;
            }
            let e = std::io::Error::last_os_error();
            match e.kind() {
                std::io::ErrorKind::Interrupted => continue,
                std::io::ErrorKind::WouldBlock => return Ok(()),
                // The job is gone (EPIPE): its ending will say why.
                _ => break,
            }
        }
        *job_w = None; // all written (or the reader is gone): close, the job reads EOF
        Ok(())
    }
}

/// Whether `fd` is readable right now.
fn pipe_has_data(fd: RawFd) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout.
    unsafe { libc::poll(&mut pfd, 1, 0) > 0 }
}

/// Read what is available (non-blocking) into `buf`, keeping at most `cap` bytes; true at EOF.
fn read_some(fd: RawFd, buf: &mut Vec<u8>, cap: usize) -> bool {
    let mut chunk = [0u8; 65536];
    loop {
        // SAFETY: read into a stack buffer we own.
        let n = unsafe { libc::read(fd, chunk.as_mut_ptr().cast(), chunk.len()) };
        if n == 0 {
            return true;
        }
        if n < 0 {
            let e = std::io::Error::last_os_error();
            return match e.kind() {
                std::io::ErrorKind::Interrupted => continue,
                std::io::ErrorKind::WouldBlock => false,
                _ => true,
            };
        }
        let n = n as usize;
        let room = cap.saturating_sub(buf.len());
        buf.extend_from_slice(&chunk[..n.min(room)]);
        if buf.len() >= cap {
            return false;
        }
    }
}

/// The ending the result stream already determines: `R` + a complete frame, `F` + a complete
/// frame, anything else at the first byte (a job cannot write before its ready byte, so this is
/// corruption: treated as no record), or more than `limit` bytes.
fn parse_result(buf: &[u8], limit: usize) -> Option<Ending> {
    let tag = *buf.first()?;
    if buf.len() > limit {
        return Some(if tag == b'F' {
            Ending::SetupFailed("oversized setup report".into())
        } else {
            Ending::TooLarge
        });
    }
    if buf.len() < 5 {
        return None;
    }
    let n = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
    if n > limit {
        return Some(Ending::TooLarge);
    }
    if buf.len() < 5 + n {
        return None;
    }
    let body = buf[5..5 + n].to_vec();
    match tag {
        b'R' => Some(Ending::Record(body)),
        b'F' => Some(Ending::SetupFailed(
            String::from_utf8_lossy(&body).into_owned(),
        )),
        _ => Some(Ending::SetupFailed("corrupt result stream".into())),
    }
}

impl Drop for WorkerProc {
    fn drop(&mut self) {
        self.kill();
    }
}
