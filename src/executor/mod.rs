//! The sandboxed Python executor.
//!
//! **Public API contract** (other modules code against exactly this; the implementation behind
//! it lives in submodules): [`Executor`], [`ExecutorConfig`], [`Outcome`], [`ExecStatus`],
//! [`PyValue`], [`ExecJob`], [`IsolationReport`], [`ExecutorError`].
//!
//! Every call is blocking and thread-safe (`Executor: Send + Sync`); callers in async code use
//! `spawn_blocking`. A hostile or broken program always yields an [`Outcome`], never a panic.
//!
//! Layout: [`sandbox`] (namespaces, mounts, uid, seccomp programs), `worker` (one fork-server
//! process and its protocol; the Python side is `worker.py`), `pool` (checkout, health check,
//! kill and replace), `wire` (strict decoding of what a job reports, and Python's `repr`),
//! `value` (verdict equality [`PyValue::same_as`] and literal rendering), [`jsonl`] (what
//! `azr exec` prints) and [`bench`] (throughput measurement).
//!
//! Isolation of one job (see `worker.py` for the order): a fresh process cloned by its worker's
//! fork server with new PID, IPC and mount namespaces (it is PID 1 of its own namespace; the
//! server and every other process are invisible to it), a fresh tmpfs on `/tmp`, its own
//! `/dev/null`, only fds 0-2 and its result pipe, no capabilities, Landlock, rlimits and seccomp;
//! the worker itself runs in user, mount, network, IPC and UTS namespaces with a minimal
//! read-only root. The job reads its code and input from its own pipe and writes its record to
//! its own pipe: the fork server never sees either. Values are decoded, rendered and compared
//! here, in Rust.

pub mod bench;
pub mod jsonl;
mod pool;
pub mod sandbox;
mod value;
mod wire;
mod worker;

pub use jsonl::{batch_from_jsonl, exec_one_json, outcome_json, BatchSummary};

use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Most decimal digits an int may have, in inputs (answers, which `ast.literal_eval` parses
/// under CPython's default limit) and in outputs alike: a result no answer could spell is
/// `output_too_large`, and a proposal whose gold has such an int is `invalid`.
pub const MAX_INT_DIGITS: usize = 4300;

/// Executor settings (`[executor]` in the TOML configs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExecutorConfig {
    /// Number of long-lived fork-server workers.
    pub workers: usize,
    /// Wall-clock limit per execution, in milliseconds.
    pub timeout_ms: u64,
    /// Address-space cap per execution, in MiB.
    pub memory_mb: u64,
    /// Largest accepted result (canonical JSON + repr), in bytes; larger results are rejected.
    pub max_output_bytes: usize,
    /// Refuse to start unless every isolation layer is active ([`IsolationReport::missing`] is
    /// empty): network, filesystem, empty environment, non-root, seccomp, rlimits and the per-job
    /// PID/IPC namespaces, fresh `/tmp`, descriptor hygiene and dropped capabilities.
    pub require_sandbox: bool,
    /// Modules a proposed program may not import (any dotted component matches).
    pub banned_modules: Vec<String>,
    /// Python interpreter to run (resolved to its real path; must live under `/usr` for the
    /// namespace modes, which expose only `/usr`).
    pub python: String,
    /// Names a proposed program may not mention (as a variable or attribute), e.g. `eval`.
    pub banned_names: Vec<String>,
    /// Largest program accepted, in bytes (larger: `invalid`). Default 65536.
    pub max_code_bytes: usize,
    /// Largest input / answer text accepted, in bytes (larger: `invalid`). Default 65536.
    pub max_input_bytes: usize,
    /// Size of each worker's private `/tmp`, in MiB. Default 16.
    pub tmp_mb: u64,
    /// Largest file a program may write (`RLIMIT_FSIZE`), in bytes. Default 1 MiB.
    pub max_file_bytes: u64,
    /// How long past `timeout_ms` the host waits for the worker before killing the child
    /// itself, in milliseconds. Default 500.
    pub grace_ms: u64,
    /// Modules each worker imports once before forking, so children get them for free.
    /// Default: the ones AZR programs use most (`typing`, `collections`, `itertools`,
    /// `functools`, `math`, `re`, `heapq`, `bisect`, `string`, `operator`, `copy`). Every
    /// preloaded module makes each fork slightly slower (larger page tables).
    pub preload_modules: Vec<String>,
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        Self {
            workers: 2,
            timeout_ms: 2000,
            memory_mb: 512,
            max_output_bytes: 64 * 1024,
            require_sandbox: true,
            banned_modules: [
                "logging",
                "random",
                "multiprocessing",
                "pebble",
                "subprocess",
                "threading",
                "datetime",
                "time",
                "hashlib",
                "hmac",
                "bcrypt",
                "os",
                "sys",
                "calendar",
                "socket",
                "shutil",
                "importlib",
                "ctypes",
                "signal",
                "resource",
                "pathlib",
                "io",
                "builtins",
                "gc",
                "inspect",
                "asyncio",
                "concurrent",
                "pickle",
                "marshal",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            python: "/usr/bin/python3".to_string(),
            banned_names: [
                "__import__",
                "eval",
                "exec",
                "compile",
                "open",
                "input",
                "breakpoint",
                "globals",
                "locals",
                "vars",
                "exit",
                "quit",
                "help",
                "memoryview",
                "__builtins__",
                "__loader__",
                "__spec__",
                "__subclasses__",
                "__globals__",
                "__code__",
                "__closure__",
                "__bases__",
                "__mro__",
                "__getattribute__",
                "__reduce__",
                "__reduce_ex__",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            max_code_bytes: 65536,
            max_input_bytes: 65536,
            tmp_mb: 16,
            max_file_bytes: 1 << 20,
            grace_ms: 500,
            preload_modules: [
                "typing",
                "collections",
                "itertools",
                "functools",
                "math",
                "re",
                "heapq",
                "bisect",
                "string",
                "operator",
                "copy",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        }
    }
}

/// A canonical, JSON-safe Python literal value.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "t", content = "v", rename_all = "lowercase")]
pub enum PyValue {
    /// `None`
    None,
    /// `True` / `False`
    Bool(bool),
    /// An int of any size, as its decimal text.
    Int(String),
    /// A float; `inf`, `-inf`, `nan` and `-0.0` are preserved (JSON: a number, or the
    /// strings `"inf"`, `"-inf"`, `"nan"`).
    Float(#[serde(with = "value::float_text")] f64),
    /// A str.
    Str(String),
    /// A bytes object.
    Bytes(Vec<u8>),
    /// A list.
    List(Vec<PyValue>),
    /// A tuple.
    Tuple(Vec<PyValue>),
    /// A dict, as (key, value) pairs in insertion order.
    Dict(Vec<(PyValue, PyValue)>),
    /// A set or frozenset, elements in canonical order.
    Set(Vec<PyValue>),
}

/// What happened to one execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecStatus {
    /// Ran and returned a supported value.
    Ok,
    /// Raised an exception (any exception, including `SystemExit`/`KeyboardInterrupt`).
    Error,
    /// Exceeded the wall-clock limit and was killed.
    Timeout,
    /// Exceeded the memory cap.
    Memory,
    /// The result was larger than `max_output_bytes` (rejected, never truncated).
    OutputTooLarge,
    /// Returned something that is not a plain literal (objects, generators, ...).
    UnsupportedType,
    /// Failed validation (syntax, no `f`, banned import, bad input literal, nondeterminism).
    Invalid,
    /// The sandbox itself failed (worker died, protocol error); not the program's fault.
    SandboxFailure,
}

impl ExecStatus {
    /// Snake-case name used in JSON and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            ExecStatus::Ok => "ok",
            ExecStatus::Error => "error",
            ExecStatus::Timeout => "timeout",
            ExecStatus::Memory => "memory",
            ExecStatus::OutputTooLarge => "output_too_large",
            ExecStatus::UnsupportedType => "unsupported_type",
            ExecStatus::Invalid => "invalid",
            ExecStatus::SandboxFailure => "sandbox_failure",
        }
    }
}

/// The result of one execution, as `azr exec` prints it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Outcome {
    /// What happened.
    pub status: ExecStatus,
    /// The canonical value (status `ok` only).
    pub value: Option<PyValue>,
    /// Python's `repr` of the value (status `ok` only).
    pub repr: Option<String>,
    /// Error text / invalid reason (other statuses).
    pub error: Option<String>,
    /// Wall time of the execution in milliseconds.
    pub millis: f64,
}

/// One job for [`Executor::run_many`]: call `f(<input>)` where `f` is defined by `code`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecJob {
    /// Python source defining `f`.
    pub code: String,
    /// Argument text, pasted as `f(<input>)` *inside the sandbox only* (e.g. `'ab', [1, 2]`).
    pub input: String,
}

/// Which isolation layers are active, as probed at start.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IsolationReport {
    /// A private network namespace (no interfaces but loopback).
    pub network: bool,
    /// A read-only minimal filesystem view with a private /tmp.
    pub filesystem: bool,
    /// User code runs with an empty environment.
    pub empty_env: bool,
    /// User code runs as a non-root uid.
    pub non_root: bool,
    /// A seccomp filter forbids fork/exec/socket/kill/ptrace.
    pub seccomp: bool,
    /// rlimits on address space, CPU, file size and open files.
    pub rlimits: bool,
    /// How the workers are isolated (e.g. `user+mount+net namespaces`).
    #[serde(default)]
    pub mode: String,
    /// A Landlock ruleset restricts the filesystem (and TCP where the ABI allows).
    #[serde(default)]
    pub landlock: bool,
    /// The Landlock ABI version of the kernel (0: unavailable).
    #[serde(default)]
    pub landlock_abi: u32,
    /// Each worker has a private, size-capped, writable `/tmp` (emptied after every execution).
    #[serde(default)]
    pub private_tmp: bool,
    /// Every job is PID 1 of its own PID namespace: no process outside it (its fork server, the
    /// trainer, the user's shell) is visible or changeable.
    #[serde(default)]
    pub job_pid_ns: bool,
    /// Every job has its own SysV IPC / POSIX message queue namespace (nothing persists).
    #[serde(default)]
    pub job_ipc_ns: bool,
    /// Every job gets a fresh, empty tmpfs on `/tmp` in its own mount namespace.
    #[serde(default)]
    pub job_tmp: bool,
    /// A job holds only fds 0-2 (its own `/dev/null`) and its result pipe.
    #[serde(default)]
    pub job_fds: bool,
    /// A job holds no capabilities (effective, permitted, inheritable, ambient).
    #[serde(default)]
    pub job_no_caps: bool,
}

impl IsolationReport {
    /// Every layer `require_sandbox` requires, by name, with whether it is active (the names
    /// are the `layer` values of `azr_executor_isolation_layer`).
    pub fn required_layers(&self) -> Vec<(&'static str, bool)> {
        vec![
            ("network", self.network),
            ("filesystem", self.filesystem),
            ("empty_env", self.empty_env),
            ("non_root", self.non_root),
            ("seccomp", self.seccomp),
            ("rlimits", self.rlimits),
            ("job_pid_ns", self.job_pid_ns),
            ("job_ipc_ns", self.job_ipc_ns),
            ("job_tmp", self.job_tmp),
            ("job_fds", self.job_fds),
            ("job_no_caps", self.job_no_caps),
        ]
    }

    /// The required layers that are missing, by name (empty when everything is active).
    pub fn missing(&self) -> Vec<&'static str> {
        self.required_layers()
            .into_iter()
            .filter(|(_, on)| !on)
            .map(|(name, _)| name)
            .collect()
    }
}

/// Errors starting the executor (executions themselves never error: they yield outcomes).
#[derive(Debug, thiserror::Error)]
pub enum ExecutorError {
    /// The interpreter could not be started.
    #[error("cannot start python `{python}`: {reason}")]
    Spawn {
        /// Interpreter path.
        python: String,
        /// Why.
        reason: String,
    },
    /// `require_sandbox = true` but a required layer is unavailable.
    #[error(
        "sandbox unavailable ({missing}); set executor.require_sandbox = false to run without it"
    )]
    SandboxUnavailable {
        /// The missing layers.
        missing: String,
    },
}

impl Outcome {
    /// An outcome without a value (any status but `ok`).
    pub fn failed(status: ExecStatus, error: impl Into<String>, millis: f64) -> Self {
        Outcome {
            status,
            value: None,
            repr: None,
            error: Some(error.into()),
            millis,
        }
    }

    /// Whether the status is `ok` (then `value` and `repr` are set).
    pub fn is_ok(&self) -> bool {
        self.status == ExecStatus::Ok && self.value.is_some()
    }
}

/// A job's record as it writes it (JSON; values still in wire form, decoded by `wire`).
#[derive(Deserialize)]
struct Record {
    status: String,
    #[serde(default)]
    value: Option<serde_json::Value>,
    /// `validate`: the values of the two calls in the job.
    #[serde(default)]
    values: Option<Vec<serde_json::Value>>,
    #[serde(default)]
    error: Option<String>,
    /// `probe` only.
    #[serde(default)]
    facts: Option<serde_json::Value>,
}

/// Facts the `probe` op reports from inside a fully set-up child.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Probe {
    uid: i64,
    env: Vec<String>,
    root_entries: Vec<String>,
    etc_passwd: String,
    write_usr: String,
    fork: String,
    socket: String,
    kill: String,
    rlimit_as: i64,
    rlimit_cpu: i64,
    rlimit_fsize: i64,
    rlimit_nofile: i64,
    landlock: serde_json::Value,
    pid: i64,
    ppid: i64,
    fds: Vec<i64>,
    tmp_fresh: bool,
    caps: String,
    ipc_leftover: bool,
    ipc_created: bool,
}

/// A pool of sandboxed fork-server Python workers.
pub struct Executor {
    cfg: ExecutorConfig,
    pool: pool::Pool,
    isolation: IsolationReport,
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGBUS => "SIGBUS",
        libc::SIGABRT => "SIGABRT",
        libc::SIGILL => "SIGILL",
        libc::SIGFPE => "SIGFPE",
        libc::SIGSYS => "SIGSYS",
        libc::SIGKILL => "SIGKILL",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        _ => "signal",
    }
}

impl Executor {
    /// Start the pool: spawn the workers, probe every isolation layer, log them.
    ///
    /// Isolation modes are tried strongest first (see [`sandbox`]); the first one whose worker
    /// starts is probed from inside a child. Missing layers are logged at `error` level; with
    /// `require_sandbox = true` (the default) a missing network or filesystem layer is an error.
    pub fn start(cfg: ExecutorConfig) -> Result<Self, ExecutorError> {
        let spawn_err = |reason: String| ExecutorError::Spawn {
            python: cfg.python.clone(),
            reason,
        };
        if cfg.workers == 0 || cfg.timeout_ms == 0 || cfg.memory_mb == 0 {
            return Err(spawn_err(
                "workers, timeout_ms and memory_mb must be positive".into(),
            ));
        }
        let python = std::fs::canonicalize(&cfg.python).map_err(|e| spawn_err(e.to_string()))?;
        let python = python
            .to_str()
            .ok_or_else(|| spawn_err("non-UTF-8 interpreter path".into()))?
            .to_string();
        let filters = sandbox::child_filters().map_err(spawn_err)?;
        // SAFETY: getuid cannot fail.
        let root = unsafe { libc::getuid() } == 0;
        let mut modes = vec![sandbox::Mode::UserNs];
        if root {
            modes.push(sandbox::Mode::RootNs);
        }
        modes.push(sandbox::Mode::Bare);
        let mut failures = Vec::new();
        for mode in modes {
            if mode.has_private_root() && !python.starts_with("/usr/") {
                failures.push(format!(
                    "{}: interpreter {python} is outside /usr",
                    mode.name()
                ));
                continue;
            }
            let plan = match sandbox::SpawnPlan::new(mode, cfg.tmp_mb) {
                Ok(p) => Arc::new(p),
                Err(e) => {
                    failures.push(format!("{}: {e}", mode.name()));
                    continue;
                }
            };
            let config_json = serde_json::json!({
                "seccomp": filters,
                "private_tmp": mode.has_private_root(),
                "job_ns": mode.has_job_namespaces(),
                "landlock": true,
                "preload": cfg.preload_modules,
                "memory_mb": cfg.memory_mb,
                "timeout_ms": cfg.timeout_ms,
                "fsize_bytes": cfg.max_file_bytes,
                "tmp_mb": cfg.tmp_mb,
                "max_int_digits": MAX_INT_DIGITS,
            })
            .to_string();
            let spawner = pool::Spawner::new(python.clone(), config_json, Arc::clone(&plan))
                .map_err(spawn_err)?;
            let first = match spawner.spawn() {
                Ok(w) => w,
                Err(e) => {
                    tracing::warn!(mode = mode.name(), error = %e, "executor isolation mode unavailable");
                    failures.push(format!("{}: {e}", mode.name()));
                    continue;
                }
            };
            let pool = pool::Pool::new(vec![first], spawner);
            let mut ex = Executor {
                cfg: cfg.clone(),
                pool,
                isolation: IsolationReport::default(),
            };
            ex.isolation = ex.probe(plan.mode())?;
            ex.log_isolation();
            let missing_required = ex.isolation.missing();
            if !missing_required.is_empty() && cfg.require_sandbox {
                return Err(ExecutorError::SandboxUnavailable {
                    missing: missing_required.join(", "),
                });
            }
            for _ in 1..cfg.workers {
                let w = ex.pool.spawn().map_err(spawn_err)?;
                ex.pool.add(w);
            }
            return Ok(ex);
        }
        Err(spawn_err(failures.join("; ")))
    }

    fn probe_once(&self) -> Result<Probe, ExecutorError> {
        let fail = |why: String| ExecutorError::Spawn {
            python: self.cfg.python.clone(),
            reason: format!("isolation probe failed: {why}"),
        };
        let job = serde_json::json!({"op": "probe", "max_output_bytes": self.cfg.max_output_bytes});
        let done = self
            .pool
            .request(
                job.to_string().as_bytes(),
                1 << 20,
                Duration::from_millis(self.cfg.timeout_ms.max(2000)),
                Duration::from_millis(self.cfg.grace_ms),
            )
            .map_err(fail)?;
        match done.ending {
            worker::Ending::Record(bytes) => serde_json::from_slice::<Record>(&bytes)
                .ok()
                .and_then(|r| r.facts)
                .and_then(|f| serde_json::from_value::<Probe>(f).ok())
                .ok_or_else(|| fail("unreadable probe record".into())),
            other => Err(fail(format!("{other:?}"))),
        }
    }

    fn probe(&self, mode: sandbox::Mode) -> Result<IsolationReport, ExecutorError> {
        // Twice on the same (only) worker: the second job must not see the SysV IPC object
        // the first one created.
        let first = self.probe_once()?;
        let facts = self.probe_once()?;
        let denied = |s: &str| !s.is_empty() && s != "allowed";
        let landlock = facts
            .landlock
            .get("enforced")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false);
        let landlock_abi = facts
            .landlock
            .get("abi")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0) as u32;
        let minimal_root = mode.has_private_root()
            && !facts
                .root_entries
                .iter()
                .any(|e| e == "etc" || e == "home" || e == "root");
        let mem = (self.cfg.memory_mb * 1024 * 1024) as i64;
        tracing::debug!(?facts.root_entries, uid = facts.uid, "executor probe");
        Ok(IsolationReport {
            network: mode.has_netns() || denied(&facts.socket),
            filesystem: (minimal_root || landlock)
                && facts.etc_passwd != "readable"
                && denied(&facts.write_usr),
            empty_env: facts.env.is_empty(),
            non_root: facts.uid > 0,
            seccomp: denied(&facts.fork) && denied(&facts.socket) && denied(&facts.kill),
            rlimits: facts.rlimit_as == mem
                && facts.rlimit_cpu > 0
                && facts.rlimit_fsize > 0
                && facts.rlimit_nofile > 0,
            mode: mode.name().to_string(),
            landlock,
            landlock_abi,
            private_tmp: mode.has_private_root(),
            job_pid_ns: facts.pid == 1 && facts.ppid == 0,
            job_ipc_ns: first.ipc_created && facts.ipc_created && !facts.ipc_leftover,
            job_tmp: facts.tmp_fresh && first.tmp_fresh,
            job_fds: facts.fds == [0, 1, 2, 3],
            job_no_caps: facts.caps.len() == 48 && facts.caps.chars().all(|c| c == '0'),
        })
    }

    fn log_isolation(&self) {
        let iso = &self.isolation;
        let mut layers = iso.required_layers();
        layers.push(("landlock", iso.landlock));
        layers.push(("private_tmp", iso.private_tmp));
        for (name, on) in layers {
            crate::metrics::EXECUTOR_ISOLATION_LAYER
                .gauge(&[("layer", name)])
                .set(if on { 1.0 } else { 0.0 });
            if on {
                tracing::info!(layer = name, mode = %iso.mode, "executor isolation layer active");
            } else {
                tracing::error!(layer = name, mode = %iso.mode, "EXECUTOR ISOLATION LAYER UNAVAILABLE: untrusted code runs without it");
            }
        }
    }

    /// The isolation layers found at start.
    pub fn isolation(&self) -> &IsolationReport {
        &self.isolation
    }

    /// The configuration the executor runs with.
    pub fn config(&self) -> &ExecutorConfig {
        &self.cfg
    }

    /// Workers killed and replaced since start.
    pub fn worker_restarts(&self) -> u64 {
        self.pool.restarts()
    }

    /// Pids of the live worker processes (each is also a process-group id).
    pub fn worker_pids(&self) -> Vec<i32> {
        self.pool.worker_pids()
    }

    /// Send one op to a job process and turn whatever happens into an [`Outcome`]. For
    /// `validate` the outcome carries the first call's value after Rust checked that the
    /// second call in the same process gave the same value and repr.
    fn submit(&self, op: &str, mut fields: serde_json::Map<String, serde_json::Value>) -> Outcome {
        use serde_json::Value;
        fields.insert("op".into(), Value::from(op));
        fields.insert(
            "max_output_bytes".into(),
            Value::from(self.cfg.max_output_bytes),
        );
        let t0 = Instant::now();
        let timeout = Duration::from_millis(self.cfg.timeout_ms);
        let job = match serde_json::to_vec(&Value::Object(fields)) {
            Ok(j) => j,
            Err(e) => return Outcome::failed(ExecStatus::SandboxFailure, e.to_string(), 0.0),
        };
        // Room for two values (validate) plus the framing.
        let max_record = 2 * self.cfg.max_output_bytes + 4096;
        // Executions by status and their latency are recorded by the caller (the executor
        // actor) under `azr_executions_total` / `azr_execution_duration_seconds`.
        match self.pool.request(
            &job,
            max_record,
            timeout,
            Duration::from_millis(self.cfg.grace_ms),
        ) {
            Ok(done) => self.outcome_of(done),
            Err(why) => Outcome::failed(
                ExecStatus::SandboxFailure,
                why,
                t0.elapsed().as_secs_f64() * 1000.0,
            ),
        }
    }

    /// Decode one wire value: `Ok((value, repr))` or the failing outcome.
    fn decode_value(&self, v: &serde_json::Value, ms: f64) -> Result<(PyValue, String), Outcome> {
        match wire::decode(v, MAX_INT_DIGITS) {
            Ok(w) => {
                let repr = wire::repr(&w);
                if repr.len() > self.cfg.max_output_bytes {
                    return Err(Outcome::failed(
                        ExecStatus::OutputTooLarge,
                        format!(
                            "result repr of {} bytes exceeds {} bytes",
                            repr.len(),
                            self.cfg.max_output_bytes
                        ),
                        ms,
                    ));
                }
                Ok((wire::to_py(&w), repr))
            }
            Err(e @ wire::DecodeError::TooLarge(_)) => Err(Outcome::failed(
                ExecStatus::OutputTooLarge,
                e.to_string(),
                ms,
            )),
            Err(e) => Err(Outcome::failed(ExecStatus::Error, e.to_string(), ms)),
        }
    }

    fn outcome_of(&self, done: worker::Done) -> Outcome {
        use worker::Ending;
        let ms = done.ms;
        let limit = self.cfg.timeout_ms;
        match done.ending {
            Ending::Record(bytes) => {
                let r = match serde_json::from_slice::<Record>(&bytes) {
                    Ok(r) => r,
                    Err(e) => {
                        return Outcome::failed(
                            ExecStatus::Error,
                            format!(
                            "corrupt result record (the program wrote to its result channel?): {e}"
                        ),
                            ms,
                        )
                    }
                };
                // Statuses a job may report for itself; `timeout` and `sandbox_failure` are
                // only ever decided here, from outside the job.
                let status = match r.status.as_str() {
                    "ok" => ExecStatus::Ok,
                    "error" => ExecStatus::Error,
                    "memory" => ExecStatus::Memory,
                    "output_too_large" => ExecStatus::OutputTooLarge,
                    "unsupported_type" => ExecStatus::UnsupportedType,
                    "invalid" => ExecStatus::Invalid,
                    other => {
                        return Outcome::failed(
                            ExecStatus::Error,
                            format!(
                                "corrupt result record: status {:?}",
                                other.chars().take(40).collect::<String>()
                            ),
                            ms,
                        )
                    }
                };
                if status != ExecStatus::Ok {
                    let err = r.error.unwrap_or_else(|| status.as_str().to_string());
                    return Outcome::failed(status, err.chars().take(4000).collect::<String>(), ms);
                }
                let (value, repr) = match (r.value, r.values) {
                    (Some(v), None) => match self.decode_value(&v, ms) {
                        Ok(x) => x,
                        Err(o) => return o,
                    },
                    (None, Some(vs)) if vs.len() == 2 => {
                        let a = match self.decode_value(&vs[0], ms) {
                            Ok(x) => x,
                            Err(o) => return o,
                        };
                        let b = match self.decode_value(&vs[1], ms) {
                            Ok(x) => x,
                            Err(o) => return o,
                        };
                        if !a.0.same_as(&b.0) || a.1 != b.1 {
                            return Outcome::failed(
                                ExecStatus::Invalid,
                                "nondeterministic: two calls in one process differ",
                                ms,
                            );
                        }
                        a
                    }
                    _ => {
                        return Outcome::failed(
                            ExecStatus::Error,
                            "corrupt result record (no value)",
                            ms,
                        )
                    }
                };
                Outcome {
                    status: ExecStatus::Ok,
                    value: Some(value),
                    repr: Some(repr),
                    error: None,
                    millis: ms,
                }
            }
            Ending::TooLarge => Outcome::failed(
                ExecStatus::OutputTooLarge,
                format!("result exceeds {} bytes", self.cfg.max_output_bytes),
                ms,
            ),
            Ending::Timeout => Outcome::failed(
                ExecStatus::Timeout,
                format!("exceeded the wall-clock limit of {limit} ms"),
                ms,
            ),
            Ending::SetupFailed(why) => Outcome::failed(ExecStatus::SandboxFailure, why, ms),
            Ending::NoRecord { .. } if done.killed_by_host => Outcome::failed(
                ExecStatus::Timeout,
                format!("exceeded the wall-clock limit of {limit} ms (killed by the host)"),
                ms,
            ),
            Ending::NoRecord { signal, .. }
                if signal == libc::SIGXCPU || signal == libc::SIGKILL =>
            {
                Outcome::failed(
                    ExecStatus::Timeout,
                    format!("killed by {} (CPU limit)", signal_name(signal)),
                    ms,
                )
            }
            Ending::NoRecord { signal, .. } if signal != 0 => Outcome::failed(
                ExecStatus::Error,
                format!("crashed: signal {} ({})", signal, signal_name(signal)),
                ms,
            ),
            Ending::NoRecord { exit, .. } => Outcome::failed(
                ExecStatus::Error,
                format!("exited with code {exit} without a result"),
                ms,
            ),
        }
    }

    fn too_big(&self, code: &str, input: &str) -> Option<Outcome> {
        if code.len() > self.cfg.max_code_bytes {
            return Some(Outcome::failed(
                ExecStatus::Invalid,
                format!("program larger than {} bytes", self.cfg.max_code_bytes),
                0.0,
            ));
        }
        if input.len() > self.cfg.max_input_bytes {
            return Some(Outcome::failed(
                ExecStatus::Invalid,
                format!("input larger than {} bytes", self.cfg.max_input_bytes),
                0.0,
            ));
        }
        None
    }

    /// Run `f(<input>)` once; `status = ok` carries the canonical value and its repr.
    ///
    /// `input` is parsed inside the sandbox as the argument list of a call (`ast.parse` of
    /// `f(<input>)` must give exactly one call of `f`), and each argument with
    /// `ast.literal_eval`; anything else (`4) or (True`, `__import__(...)`) is `invalid`.
    pub fn run(&self, code: &str, input: &str) -> Outcome {
        if let Some(o) = self.too_big(code, input) {
            return o;
        }
        let mut m = serde_json::Map::new();
        m.insert("code".into(), code.into());
        m.insert("input".into(), input.into());
        self.submit("run", m)
    }

    /// Run many jobs across the pool; outcomes are in job order.
    pub fn run_many(&self, jobs: &[ExecJob]) -> Vec<Outcome> {
        self.par_map(jobs, |j| self.run(&j.code, &j.input))
    }

    /// Like [`Executor::run`], but the arguments in `input` are evaluated as Python
    /// expressions in the program's namespace (inside the sandbox), as CRUXEval and AZR
    /// proposers write them (`dict(a=1)`, `'x'.upper()`, a global of the program). Only for
    /// inputs written by the same author as the code (datasets, proposals), never for solver
    /// answers: those go through [`Executor::run`] or [`Executor::parse_literal`].
    pub fn run_trusted(&self, code: &str, input: &str) -> Outcome {
        if let Some(o) = self.too_big(code, input) {
            return o;
        }
        let mut m = serde_json::Map::new();
        m.insert("code".into(), code.into());
        m.insert("input".into(), input.into());
        m.insert("eval_input".into(), true.into());
        self.submit("run", m)
    }

    /// Jobs paired with "evaluate the input" flags ([`Executor::run_trusted`] when set,
    /// [`Executor::run`] otherwise), across the pool; outcomes are in job order.
    pub fn run_many_mixed(&self, jobs: &[(ExecJob, bool)]) -> Vec<Outcome> {
        self.par_map(jobs, |(j, trusted)| {
            if *trusted {
                self.run_trusted(&j.code, &j.input)
            } else {
                self.run(&j.code, &j.input)
            }
        })
    }

    /// [`Executor::run_trusted`] for many jobs across the pool; outcomes are in job order.
    pub fn run_many_trusted(&self, jobs: &[ExecJob]) -> Vec<Outcome> {
        self.par_map(jobs, |j| self.run_trusted(&j.code, &j.input))
    }

    /// AZR proposal validation: parses, defines `f`, no banned import, input parses as argument
    /// literals, and `f(input)` gives equal values in two independent children. `ok` carries the
    /// gold output; otherwise `invalid` (with the reason) or the failing status.
    ///
    /// Each child runs the static checks, executes the program once and calls `f` twice on
    /// freshly parsed arguments and reports both values; Rust checks that the two calls agree
    /// (catching hidden state) and that the two children agree (catching randomness, time,
    /// addresses), on values and on the reprs it renders itself. Any exception, including
    /// `SystemExit`, `KeyboardInterrupt` and other `BaseException` subclasses, is `invalid`; so
    /// is a gold that no answer could spell (an int over [`MAX_INT_DIGITS`] digits, a literal
    /// longer than `max_input_bytes`).
    pub fn validate(&self, code: &str, input: &str) -> Outcome {
        if let Some(o) = self.too_big(code, input) {
            return o;
        }
        let mut m = serde_json::Map::new();
        m.insert("code".into(), code.into());
        m.insert("input".into(), input.into());
        m.insert(
            "banned_modules".into(),
            self.cfg.banned_modules.clone().into(),
        );
        m.insert("banned_names".into(), self.cfg.banned_names.clone().into());
        let first = self.submit("validate", m.clone());
        if first.status == ExecStatus::OutputTooLarge {
            let why = first.error.unwrap_or_default();
            return Outcome::failed(
                ExecStatus::Invalid,
                format!("gold output cannot be answered: {why}"),
                first.millis,
            );
        }
        if !first.is_ok() {
            return first;
        }
        let second = self.submit("validate", m);
        let millis = first.millis + second.millis;
        if !second.is_ok() {
            let why = format!(
                "nondeterministic: second process gave {}: {}",
                second.status.as_str(),
                second.error.unwrap_or_default()
            );
            return Outcome::failed(ExecStatus::Invalid, why, millis);
        }
        let same = match (&first.value, &second.value) {
            (Some(a), Some(b)) => a.same_as(b) && first.repr == second.repr,
            _ => false,
        };
        if !same {
            return Outcome::failed(
                ExecStatus::Invalid,
                "nondeterministic: two processes returned different values",
                millis,
            );
        }
        // The gold must be answerable: its literal has to fit the input limit (its ints are
        // within MAX_INT_DIGITS already, or the job's outcome was `output_too_large`).
        if let Some(v) = &first.value {
            let len = v.to_literal().len();
            if len > self.cfg.max_input_bytes {
                return Outcome::failed(
                    ExecStatus::Invalid,
                    format!(
                        "gold output cannot be answered: its literal has {len} bytes, answers at most {}",
                        self.cfg.max_input_bytes
                    ),
                    millis,
                );
            }
        }
        Outcome { millis, ..first }
    }

    /// [`Executor::validate`] for many jobs across the pool; outcomes are in job order.
    pub fn validate_many(&self, jobs: &[ExecJob]) -> Vec<Outcome> {
        self.par_map(jobs, |j| self.validate(&j.code, &j.input))
    }

    /// Parse answer text as one Python literal (`ast.literal_eval` semantics), never evaluating it.
    ///
    /// The parse runs in a sandboxed child (deep nesting or giant literals can exhaust the
    /// parser's stack or memory; that must not touch the host). `Err` says why the text is not a
    /// supported literal (syntax, not a literal, complex numbers, too large...).
    pub fn parse_literal(&self, text: &str) -> Result<PyValue, String> {
        if text.len() > self.cfg.max_input_bytes {
            return Err(format!(
                "text larger than {} bytes",
                self.cfg.max_input_bytes
            ));
        }
        let mut m = serde_json::Map::new();
        m.insert("text".into(), text.into());
        let out = self.submit("parse", m);
        match (out.status, out.value) {
            (ExecStatus::Ok, Some(v)) => Ok(v),
            (status, _) => Err(out.error.unwrap_or_else(|| status.as_str().to_string())),
        }
    }

    /// Map `f` over `items` with one thread per worker; results keep the order of `items`.
    fn par_map<T: Sync>(&self, items: &[T], f: impl Fn(&T) -> Outcome + Sync) -> Vec<Outcome> {
        let threads = self.cfg.workers.min(items.len());
        if threads <= 1 {
            return items.iter().map(f).collect();
        }
        let next = AtomicUsize::new(0);
        let results: Vec<Mutex<Option<Outcome>>> = items.iter().map(|_| Mutex::new(None)).collect();
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    let out = f(item);
                    *results[i].lock().unwrap_or_else(|p| p.into_inner()) = Some(out);
                });
            }
        });
        results
            .into_iter()
            .map(|m| {
                m.into_inner()
                    .unwrap_or_else(|p| p.into_inner())
                    .unwrap_or_else(|| {
                        Outcome::failed(ExecStatus::SandboxFailure, "result lost", 0.0)
                    })
            })
            .collect()
    }
}

impl PyValue {
    /// Equality as the verdicts use it: Python `==` on literal types (numbers by exact value
    /// across bool/int/float, list != tuple, order-free dict/set, str != bytes) except that NaN
    /// equals NaN. See the `value` module docs for the justification.
    pub fn same_as(&self, other: &PyValue) -> bool {
        value::same_as(self, other)
    }

    /// Python source for this value (`repr`-like; sets in canonical order; non-finite floats as
    /// `float('inf')`/`float('nan')`).
    pub fn to_literal(&self) -> String {
        self.to_string()
    }
}
