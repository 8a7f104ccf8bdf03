//! The sandboxed Python executor.
//!
//! **Public API contract** (other modules code against exactly this; the implementation behind
//! it lives in submodules): [`Executor`], [`ExecutorConfig`], [`Outcome`], [`ExecStatus`],
//! [`PyValue`], [`ExecJob`], [`IsolationReport`], [`ExecutorError`].
//!
//! Every call is blocking and thread-safe (`Executor: Send + Sync`); callers in async code use
//! `spawn_blocking`. A hostile or broken program always yields an [`Outcome`], never a panic.

use serde::{Deserialize, Serialize};

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
    /// Refuse to start without network and filesystem isolation.
    pub require_sandbox: bool,
    /// Modules a proposed program may not import (any dotted component matches).
    pub banned_modules: Vec<String>,
    /// Python interpreter to run.
    pub python: String,
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
    /// A float; `inf`, `-inf`, `nan` and `-0.0` are preserved.
    Float(f64),
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

/// A pool of sandboxed fork-server Python workers.
pub struct Executor {
    _private: (),
}

impl Executor {
    /// Start the pool: spawn the workers, probe every isolation layer, log them.
    pub fn start(_cfg: ExecutorConfig) -> Result<Self, ExecutorError> {
        todo!("executor implementation")
    }

    /// The isolation layers found at start.
    pub fn isolation(&self) -> &IsolationReport {
        todo!("executor implementation")
    }

    /// Run `f(<input>)` once; `status = ok` carries the canonical value and its repr.
    pub fn run(&self, _code: &str, _input: &str) -> Outcome {
        todo!("executor implementation")
    }

    /// Run many jobs across the pool; outcomes are in job order.
    pub fn run_many(&self, _jobs: &[ExecJob]) -> Vec<Outcome> {
        todo!("executor implementation")
    }

    /// AZR proposal validation: parses, defines `f`, no banned import, input parses as argument
    /// literals, and `f(input)` gives equal values in two independent children. `ok` carries the
    /// gold output; otherwise `invalid` (with the reason) or the failing status.
    pub fn validate(&self, _code: &str, _input: &str) -> Outcome {
        todo!("executor implementation")
    }

    /// Parse answer text as one Python literal (`ast.literal_eval` semantics), never evaluating it.
    pub fn parse_literal(&self, _text: &str) -> Result<PyValue, String> {
        todo!("executor implementation")
    }
}

impl PyValue {
    /// Equality as the verdicts use it (documented in the implementation).
    pub fn same_as(&self, _other: &PyValue) -> bool {
        todo!("executor implementation")
    }
}
