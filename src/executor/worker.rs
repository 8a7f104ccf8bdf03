//! One fork-server worker process and the Rust side of its protocol.
//!
//! Frames are a 4-byte big-endian length plus a body. Per request the worker answers with a
//! `started` frame (`{"id","ev":"started","pid"}`) as soon as the child is forked, then a `done`
//! frame: a JSON header, a newline, and the raw record the child wrote. Every frame's `id` is
//! checked against the request. Rust keeps its own deadline (timeout + grace): if the worker does
//! not report in time, Rust kills the child's process group itself, and if the worker still stays
//! silent it is declared hung (the pool kills and replaces it).

use super::sandbox::{spawn_worker, SpawnPlan};
use serde::Deserialize;
use serde_json::Value;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::process::{Child, ChildStdin, ChildStdout};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The worker source, embedded at compile time.
pub(crate) const WORKER_PY: &str = include_str!("worker.py");

/// Largest protocol frame accepted from a worker (records are capped far below this).
const MAX_FRAME: usize = 64 << 20;

/// Why a worker can no longer be trusted (the pool kills and replaces it).
#[derive(Debug)]
pub(crate) enum Fault {
    /// No frame before the deadline.
    Silent,
    /// The pipe closed or failed.
    Gone(String),
    /// A frame that does not follow the protocol (wrong id, bad JSON, oversized).
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

/// What the worker reported for one child.
#[derive(Debug)]
pub(crate) struct Done {
    /// `record`, `timeout`, `too_large` or `eof` (child ended without a complete record).
    pub outcome: String,
    /// Wall time of the child in ms, as measured by the worker.
    pub ms: f64,
    /// Terminating signal of the child (0 if none).
    pub signal: i32,
    /// Exit status of the child (-1 if signalled).
    pub exit: i32,
    /// The raw record bytes (JSON), empty unless `outcome == "record"`.
    pub record: Vec<u8>,
    /// Rust killed the child because the worker missed the deadline.
    pub killed_by_host: bool,
}

#[derive(Deserialize)]
struct Header {
    id: u64,
    ev: String,
    #[serde(default)]
    pid: i32,
    #[serde(default)]
    outcome: String,
    #[serde(default)]
    ms: f64,
    #[serde(default)]
    signal: i32,
    #[serde(default)]
    exit: i32,
}

/// A running worker.
pub(crate) struct WorkerProc {
    child: Child,
    stdin: ChildStdin,
    stdout: ChildStdout,
    buf: Vec<u8>,
    next_id: u64,
    /// The `hello` frame the worker sent at start (uid, landlock status, Python version).
    pub hello: Value,
}

impl WorkerProc {
    /// Spawn a worker under `plan` and wait (up to `start_timeout`) for its hello.
    pub(crate) fn spawn(
        python: &str,
        config_json: &str,
        plan: Arc<SpawnPlan>,
        start_timeout: Duration,
    ) -> Result<Self, String> {
        let mut child =
            spawn_worker(python, WORKER_PY, config_json, plan).map_err(|e| e.to_string())?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            kill_and_reap(&mut child);
            return Err("worker pipes missing".into());
        };
        let stderr = child.stderr.take();
        let mut w = WorkerProc {
            child,
            stdin,
            stdout,
            buf: Vec::new(),
            next_id: 1,
            hello: Value::Null,
        };
        match w.read_frame(Instant::now() + start_timeout) {
            Ok(frame) => match serde_json::from_slice::<Value>(&frame) {
                Ok(v) if v.get("ev").and_then(Value::as_str) == Some("hello") => {
                    w.hello = v;
                    // The worker pointed its fd 2 at /dev/null; nothing more will arrive there.
                    drop(stderr);
                    Ok(w)
                }
                _ => {
                    w.kill();
                    Err("worker sent a malformed hello".into())
                }
            },
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

    /// Kill the worker's process group and reap it (its children die with it via PDEATHSIG).
    pub(crate) fn kill(&mut self) {
        kill_and_reap(&mut self.child);
    }

    fn fill(&mut self, deadline: Instant) -> Result<(), Fault> {
        let fd = self.stdout.as_raw_fd();
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
            let mut chunk = [0u8; 65536];
            return match self.stdout.read(&mut chunk) {
                Ok(0) => Err(Fault::Gone("pipe closed".into())),
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    Ok(())
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => Err(Fault::Gone(e.to_string())),
            };
        }
    }

    fn read_frame(&mut self, deadline: Instant) -> Result<Vec<u8>, Fault> {
        while self.buf.len() < 4 {
            self.fill(deadline)?;
        }
        let n = u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]) as usize;
        if n > MAX_FRAME {
            return Err(Fault::Protocol(format!("frame of {n} bytes")));
        }
        while self.buf.len() < 4 + n {
            self.fill(deadline)?;
        }
        let frame = self.buf[4..4 + n].to_vec();
        self.buf.drain(..4 + n);
        Ok(frame)
    }

    fn send(&mut self, body: &[u8]) -> Result<(), Fault> {
        let len =
            u32::try_from(body.len()).map_err(|_| Fault::Protocol("request too large".into()))?;
        let mut msg = Vec::with_capacity(body.len() + 4);
        msg.extend_from_slice(&len.to_be_bytes());
        msg.extend_from_slice(body);
        self.stdin
            .write_all(&msg)
            .and_then(|_| self.stdin.flush())
            .map_err(|e| Fault::Gone(e.to_string()))
    }

    /// Run one request (`req` is a JSON object without `id`) with a child wall limit of
    /// `timeout`; `grace` is how long past it Rust waits before killing the child itself.
    pub(crate) fn request(
        &mut self,
        mut req: serde_json::Map<String, Value>,
        timeout: Duration,
        grace: Duration,
    ) -> Result<Done, Fault> {
        let id = self.next_id;
        self.next_id += 1;
        req.insert("id".into(), Value::from(id));
        let body =
            serde_json::to_vec(&Value::Object(req)).map_err(|e| Fault::Protocol(e.to_string()))?;
        self.send(&body)?;
        let started = self.read_frame(Instant::now() + Duration::from_secs(10))?;
        let head: Header = serde_json::from_slice(&started)
            .map_err(|e| Fault::Protocol(format!("bad started frame: {e}")))?;
        if head.id != id || head.ev != "started" || head.pid <= 0 {
            return Err(Fault::Protocol(format!(
                "expected started #{id}, got {} #{}",
                head.ev, head.id
            )));
        }
        let child_pid = head.pid;
        let t0 = Instant::now();
        let mut killed_by_host = false;
        let frame = match self.read_frame(t0 + timeout + grace) {
            Ok(f) => f,
            Err(Fault::Silent) => {
                // The worker missed its own deadline: enforce it from here.
                // SAFETY: plain kill(2). The worker reaps a child only right before reporting it,
                // so the pid still names our child (or a zombie) when we get here.
                unsafe {
                    libc::kill(-child_pid, libc::SIGKILL);
                    libc::kill(child_pid, libc::SIGKILL);
                }
                killed_by_host = true;
                self.read_frame(Instant::now() + Duration::from_secs(2))?
            }
            Err(e) => return Err(e),
        };
        let split = frame
            .iter()
            .position(|&b| b == b'\n')
            .unwrap_or(frame.len());
        let head: Header = serde_json::from_slice(&frame[..split])
            .map_err(|e| Fault::Protocol(format!("bad done frame: {e}")))?;
        if head.id != id || head.ev != "done" {
            return Err(Fault::Protocol(format!(
                "expected done #{id}, got {} #{}",
                head.ev, head.id
            )));
        }
        let record = if split < frame.len() {
            frame[split + 1..].to_vec()
        } else {
            Vec::new()
        };
        Ok(Done {
            outcome: head.outcome,
            ms: head.ms,
            signal: head.signal,
            exit: head.exit,
            record,
            killed_by_host,
        })
    }
}

impl Drop for WorkerProc {
    fn drop(&mut self) {
        self.kill();
    }
}

fn kill_and_reap(child: &mut Child) {
    let pid = child.id() as i32;
    // SAFETY: SIGKILL to the worker's own process group (it was spawned with process_group(0)).
    unsafe {
        libc::kill(-pid, libc::SIGKILL);
    }
    let _ = child.kill();
    let _ = child.wait();
}
