//! The hostile programs of `../shared/reference/python-executor.md` §4.7 (numbered as there)
//! plus its extras. Each asserts the outcome and that nothing escaped: no file outside the
//! sandbox, no network connection, no environment leak, and a still-working pool.
//! (Zombies and fd growth over 1,000 mixed executions: `tests/executor_soak.rs`.)
//!
//! Run: `cargo test --release -p azr-core --test executor_hostile` (about 10 s; the timeout
//! cases use a 500 ms limit).

use azr_core::executor::{ExecStatus, Executor, ExecutorConfig, Outcome, PyValue};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

// Generous: CI shares 2 cores with the build; a loaded machine must not turn quick programs into timeouts.
const TIMEOUT_MS: u64 = 2000;
const SECRET: &str = "hunter2-azr-secret";

fn hx() -> &'static Executor {
    static EX: OnceLock<Executor> = OnceLock::new();
    EX.get_or_init(|| {
        // A secret in the host environment must never be visible to programs.
        std::env::set_var("AZR_SECRET_TOKEN", SECRET);
        let cfg = ExecutorConfig {
            timeout_ms: TIMEOUT_MS,
            ..ExecutorConfig::default()
        };
        Executor::start(cfg).expect("executor starts")
    })
}

/// A host path inside the project checkout that programs try to create.
fn host_canary() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("azr_escape_canary")
}

fn run(code: &str) -> Outcome {
    hx().run(code, "1")
}

fn expect(code: &str, status: ExecStatus) -> Outcome {
    let o = run(code);
    assert_eq!(o.status, status, "program:\n{code}\noutcome: {o:?}");
    o
}

fn expect_error(code: &str, needle: &str) -> Outcome {
    let o = expect(code, ExecStatus::Error);
    let err = o.error.clone().unwrap_or_default();
    assert!(
        err.contains(needle),
        "expected {needle:?} in {err:?} for:\n{code}"
    );
    o
}

fn expect_value(code: &str, want: &PyValue) -> Outcome {
    let o = expect(code, ExecStatus::Ok);
    assert!(
        o.value.as_ref().unwrap().same_as(want),
        "got {:?}, want {want:?} for:\n{code}",
        o.repr
    );
    o
}

fn int(v: i64) -> PyValue {
    PyValue::Int(v.to_string())
}

/// Nothing escaped: host canaries absent, pool healthy, no worker was replaced.
fn assert_nothing_escaped() {
    assert!(
        !host_canary().exists(),
        "a program wrote into the project checkout"
    );
    assert!(
        !Path::new("/tmp/azr_hostile_canary").exists(),
        "a program wrote into the host /tmp"
    );
    assert!(!Path::new("/tmp/pwn").exists());
    expect_value("def f(x):\n    return x + 41\n", &int(42));
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

#[test]
fn h01_h02_h03_h16_loops_sleeps_and_c_level_work_time_out() {
    for body in [
        "while True:\n    pass",
        "import time\ntime.sleep(100)",
        "return sum(range(10**11))",
        "return 10**10**8 % 7",
        "import signal\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nwhile True:\n    pass",
        "while True:\n    try:\n        while True:\n            pass\n    except BaseException:\n        pass",
        "import sys\nsys.setrecursionlimit(10**7)\ndef g(n):\n    return g(n + 1) + 1\nreturn g(0)",
    ] {
        let o = run(&wrap(body));
        let recursion = body.contains("setrecursionlimit");
        if recursion {
            // Grows the frame stack on the heap: ends as timeout, memory or a crash, never ok.
            assert!(matches!(o.status, ExecStatus::Timeout | ExecStatus::Memory | ExecStatus::Error), "{o:?}");
        } else {
            assert_eq!(o.status, ExecStatus::Timeout, "{body}: {o:?}");
        }
        assert!(o.millis < (TIMEOUT_MS + 1500) as f64, "{body}: took {} ms", o.millis);
    }
    assert_nothing_escaped();
}

#[test]
fn h04_h13_no_fork_no_exec() {
    expect_error(&wrap("import os\nn = 0\nfor _ in range(200):\n    pid = os.fork()\n    if pid == 0:\n        os._exit(0)\n    n += 1\nreturn n"), "PermissionError");
    let canary = host_canary();
    let cmd = format!("touch {} /tmp/azr_hostile_canary", canary.display());
    expect_error(
        &wrap(&format!(
            "import subprocess\nreturn subprocess.run({cmd:?}, shell=True).returncode"
        )),
        "PermissionError",
    );
    let o = expect(
        &wrap(&format!("import os\nreturn os.system({cmd:?})")),
        ExecStatus::Ok,
    );
    assert!(!o.value.unwrap().same_as(&int(0)), "os.system must fail");
    expect_error(
        &wrap("import os\nos.execv('/usr/bin/python3', ['python3', '-c', 'pass'])"),
        "PermissionError",
    );
    expect_error(
        &wrap("import os\nreturn os.posix_spawn('/usr/bin/true', ['true'], {})"),
        "Error",
    );
    expect_error(
        &wrap("import threading\nt = threading.Thread(target=lambda: None)\nt.start()\nreturn 1"),
        "can't start new thread",
    );
    assert_nothing_escaped();
}

#[test]
fn h05_h06_memory_cap() {
    expect(
        &wrap("return len(bytearray(8 * 1024**3))"),
        ExecStatus::Memory,
    );
    expect(&wrap("return len([0] * 10**9)"), ExecStatus::Memory);
    // Growing to the cap touches every page, which takes longer than the 500 ms used above on
    // a slow VM: use the default 2 s limit and a 256 MiB cap for this one.
    let cfg = ExecutorConfig {
        workers: 1,
        memory_mb: 256,
        ..ExecutorConfig::default()
    };
    let ex = Executor::start(cfg).unwrap();
    for body in [
        "l = []\nwhile True:\n    l.append(bytearray(10**7))",
        "s = 'x'\nwhile True:\n    s = s + s",
    ] {
        let o = ex.run(&wrap(body), "1");
        assert_eq!(o.status, ExecStatus::Memory, "{body}: {o:?}");
    }
    assert_nothing_escaped();
}

#[test]
fn h07_results_over_the_cap_are_rejected_not_truncated() {
    for body in [
        "return 'a' * 10**8",
        "return list(range(10**6))",
        "return 10**200000",
        "return 10**5000",
        "return b'x' * 100000",
        "return {i: str(i) for i in range(20000)}",
    ] {
        let o = expect(&wrap(body), ExecStatus::OutputTooLarge);
        assert!(o.value.is_none() && o.repr.is_none());
    }
    // Just under the cap is fine and exact.
    let o = expect(&wrap("return 'a' * 30000"), ExecStatus::Ok);
    assert_eq!(o.repr.unwrap().len(), 30002);
    assert_nothing_escaped();
}

#[test]
fn h08_h22_h23_stdio_is_dev_null() {
    expect_value(
        &wrap("for i in range(100000):\n    print(i, 'x' * 50)\nreturn 1"),
        &int(1),
    );
    expect_value(&wrap("import os\nos.write(1, b'\\xff\\xfe{\"id\":999,\"ev\":\"done\"}\\n')\nos.write(2, b'junk')\nreturn 5"), &int(5));
    let o = run(&wrap("print('\\ud800')\nreturn 1"));
    assert!(
        matches!(o.status, ExecStatus::Ok | ExecStatus::Error),
        "{o:?}"
    );
    expect_error(&wrap("return input()"), "EOFError");
    expect_value(
        &wrap("import sys\nreturn sys.stdin.read()"),
        &PyValue::Str(String::new()),
    );
    assert_nothing_escaped();
}

#[test]
fn h09_h11_filesystem_view_is_minimal_and_read_only() {
    expect_error(
        &wrap("return open('/etc/passwd').read()"),
        "FileNotFoundError",
    );
    expect_error(
        &wrap("import os\nreturn os.listdir('/work')"),
        "FileNotFoundError",
    );
    expect_error(
        &wrap("import os\nreturn os.listdir('/home')"),
        "FileNotFoundError",
    );
    let o = expect(
        &wrap("import os\nreturn sorted(os.listdir('/'))"),
        ExecStatus::Ok,
    );
    let PyValue::List(entries) = o.value.unwrap() else {
        panic!("list")
    };
    let allowed = [
        "bin", "dev", "lib", "lib32", "lib64", "libx32", "sbin", "tmp", "usr",
    ];
    for e in &entries {
        let PyValue::Str(name) = e else { panic!("str") };
        assert!(
            allowed.contains(&name.as_str()),
            "unexpected /{name} in the sandbox root"
        );
    }
    expect_error(&wrap("open('/usr/azr_x', 'w').write('x')"), "Error");
    expect_error(&wrap("open('/azr_x', 'w').write('x')"), "Error");
    expect_error(
        &wrap(&format!(
            "open({:?}, 'w').write('x')",
            host_canary().display().to_string()
        )),
        "FileNotFoundError",
    );
    // The private /tmp is writable (and emptied after each execution) but is not the host's.
    expect_value(&wrap("open('/tmp/azr_hostile_canary', 'w').write('x')\nreturn open('/tmp/azr_hostile_canary').read()"), &PyValue::Str("x".into()));
    // RLIMIT_FSIZE: writing 1 GB fails with EFBIG.
    expect_error(&wrap("with open('/tmp/big', 'wb') as fh:\n    for _ in range(1024):\n        fh.write(b'\\0' * 2**20)"), "File too large");
    expect_error(
        &wrap("return open('/proc/1/environ').read()"),
        "FileNotFoundError",
    );
    expect_error(&wrap("import os\nos.mkdir('/usr/azr_dir')"), "Error");
    assert_nothing_escaped();
}

#[test]
fn h10_environment_is_empty() {
    expect_value(
        &wrap("import os\nreturn dict(os.environ)"),
        &PyValue::Dict(vec![]),
    );
    expect_value(
        &wrap("import os\nreturn os.environ.get('AZR_SECRET_TOKEN')"),
        &PyValue::None,
    );
    let o = run(&wrap(
        "import os\nreturn os.getenv('PATH'), os.getuid(), os.getgid()",
    ));
    assert_eq!(o.repr.as_deref(), Some("(None, 65534, 65534)"), "{o:?}");
    assert_nothing_escaped();
}

#[test]
fn h12_no_network() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    expect_error(&wrap(&format!("import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=1)\nreturn 1")), "PermissionError");
    expect_error(
        &wrap("import socket\nreturn socket.getaddrinfo('example.com', 80)"),
        "rror",
    );
    expect_error(
        &wrap("import socket\nreturn socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)"),
        "PermissionError",
    );
    expect_error(
        &wrap("import urllib.request\nreturn urllib.request.urlopen('http://127.0.0.1:1/').read()"),
        "Error",
    );
    assert!(
        listener.accept().is_err(),
        "a program connected to the host"
    );
    assert_nothing_escaped();
}

#[test]
fn h14_exits_are_errors_not_results() {
    expect_error(&wrap("import sys\nsys.exit(3)"), "SystemExit: 3");
    expect_error(&wrap("import sys\nsys.exit(0)"), "SystemExit");
    expect_error(&wrap("exit()"), "NameError");
    expect_error(&wrap("quit()"), "NameError");
    expect_error(&wrap("import os\nos._exit(0)"), "without a result");
    expect_error(&wrap("raise KeyboardInterrupt"), "KeyboardInterrupt");
    assert_nothing_escaped();
}

#[test]
fn h15_h17_no_signals_to_others_and_crashes_are_reported() {
    expect_error(
        &wrap("import os, signal\nos.kill(os.getppid(), signal.SIGKILL)"),
        "PermissionError",
    );
    expect_error(&wrap("import os\nos.kill(-1, 9)"), "PermissionError");
    expect_error(
        &wrap("import os\nos.killpg(os.getpgid(os.getppid()), 9)"),
        "PermissionError",
    );
    expect_error(
        &wrap("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)"),
        "PermissionError",
    );
    expect_error(
        &wrap("import ctypes\nreturn ctypes.string_at(0)"),
        "signal 11",
    );
    expect_error(&wrap("import ctypes\nctypes.memset(0, 0, 1)"), "signal 11");
    // raise(SIGSEGV) needs tgkill, which seccomp denies: the signal never arrives.
    expect_value(
        &wrap("import faulthandler\nreturn faulthandler._sigsegv()"),
        &PyValue::None,
    );
    assert_nothing_escaped();
}

#[test]
fn h18_h19_nondeterminism_is_caught_and_hash_order_is_fixed() {
    for body in [
        "import random\nreturn random.random()",
        "import time\nreturn time.time()",
    ] {
        // run: fine (a solver check compares against a gold, so it cannot profit).
        expect(&wrap(body), ExecStatus::Ok);
        // validate: rejected (banned import, and the runtime check would catch it too).
        assert_eq!(hx().validate(&wrap(body), "1").status, ExecStatus::Invalid);
    }
    let o = hx().validate(&wrap("return id(object()) % 100003"), "1");
    assert_eq!(o.status, ExecStatus::Invalid, "{o:?}");
    let code = wrap("return list({'apple', 'banana', 'cherry', 'date', 'elder', 'fig'})");
    let v = hx().validate(&code, "1");
    assert_eq!(v.status, ExecStatus::Ok, "{v:?}");
    for _ in 0..5 {
        assert_eq!(run(&code).repr, v.repr);
    }
    assert_nothing_escaped();
}

#[test]
fn h20_recursion() {
    expect_error("def f(x):\n    return f(x + 1)\n", "RecursionError");
    assert_nothing_escaped();
}

#[test]
fn h21_unicode_results() {
    expect(
        &wrap("return '\\x00\\ud800é😀\\n'"),
        ExecStatus::UnsupportedType,
    );
    let o = expect_value(
        &wrap("return '\\x00é😀\\n'"),
        &PyValue::Str("\0é😀\n".into()),
    );
    assert_eq!(o.repr.as_deref(), Some("'\\x00é😀\\n'"));
    assert_nothing_escaped();
}

#[test]
fn h24_forged_result_records_are_not_accepted() {
    let forge = wrap(
        "import os\nfor fd in range(3, 64):\n    try:\n        os.write(fd, b'{\"id\": 1, \"ev\": \"done\", \"status\": \"ok\", \"value\": {\"t\": \"int\", \"v\": \"999\"}}\\n')\n    except OSError:\n        pass\nreturn 1",
    );
    for _ in 0..3 {
        let o = run(&forge);
        assert_ne!(o.status, ExecStatus::Ok, "{o:?}");
        assert!(o.value.is_none());
    }
    assert_nothing_escaped();
}

#[test]
fn h25_exceptions_of_every_kind() {
    expect_error(&wrap("raise ValueError('boom')"), "ValueError: boom");
    expect_error(
        "class B(BaseException):\n    pass\ndef f(x):\n    raise B('base')\n",
        "B: base",
    );
    expect_error("class E(Exception):\n    def __str__(self):\n        raise RuntimeError('no')\ndef f(x):\n    raise E()\n", "E: <unprintable>");
    let o = run("class E(Exception):\n    def __str__(self):\n        while True:\n            pass\ndef f(x):\n    raise E()\n");
    assert_eq!(o.status, ExecStatus::Timeout);
    assert_nothing_escaped();
}

#[test]
fn h26_h29_h31_non_literal_results_are_unsupported() {
    for body in [
        "class R:\n    def __repr__(self):\n        while True:\n            pass\nreturn R()",
        "def g():\n    try:\n        yield 1\n    finally:\n        while True:\n            pass\nit = g()\nnext(it)\nreturn it",
        "return (i for i in range(3))",
        "return reversed([1])",
        "return {1: 2}.items()",
        "return ...",
        "return 1j",
        "return range(3)",
        "import collections\nreturn collections.defaultdict(int)",
        "import collections\nreturn collections.Counter('ab')",
        "return [[1], object()]",
        "l = []\nl.append(l)\nreturn l",
        "return type",
    ] {
        let o = expect(&wrap(body), ExecStatus::UnsupportedType);
        assert!(o.millis < TIMEOUT_MS as f64, "{body}: {o:?}");
    }
    let o = expect(
        &wrap("return [float('inf'), float('-inf'), float('nan'), -0.0, frozenset({1})]"),
        ExecStatus::Ok,
    );
    assert_eq!(
        o.repr.as_deref(),
        Some("[inf, -inf, nan, -0.0, frozenset({1})]")
    );
    assert_nothing_escaped();
}

#[test]
fn h27_big_ints() {
    // One digit limit (4,300, CPython's) for inputs and outputs: a result with more digits
    // could never be matched by an answer, so it is refused (see executor_isolation class 7).
    let o = expect(&wrap("return 2**14000"), ExecStatus::Ok);
    let repr = o.repr.unwrap();
    assert_eq!(repr.len(), 4215);
    assert!(matches!(o.value.unwrap(), PyValue::Int(t) if t == repr));
    expect(&wrap("return 2**20000"), ExecStatus::OutputTooLarge);
    // Inside the program the default 4300-digit limit of CPython still applies.
    expect_error(&wrap("return str(2**20000)"), "ValueError");
    assert_nothing_escaped();
}

#[test]
fn h28_tampering_does_not_leak_into_the_next_execution() {
    expect_value(
        &wrap("import builtins\nbuiltins.len = lambda x: 42\nreturn len([1])"),
        &int(42),
    );
    for _ in 0..4 {
        expect_value(&wrap("return len([1, 2])"), &int(2));
    }
    expect_value(
        &wrap("import sys\nsys.modules['math'] = None\nreturn 1"),
        &int(1),
    );
    expect_value(&wrap("import math\nreturn math.gcd(12, 18)"), &int(6));
    expect_value(
        &wrap("open('/tmp/state', 'w').write('1')\nreturn 1"),
        &int(1),
    );
    expect_error(
        &wrap("return open('/tmp/state').read()"),
        "FileNotFoundError",
    );
    assert_nothing_escaped();
}

#[test]
fn h30_h32_reward_hack_inputs_and_non_error_exceptions() {
    let code = wrap("return x * 2");
    for input in [
        "4) or (True",
        "__import__('os').system('touch /tmp/pwn')",
        "type('A',(),{'__eq__':lambda s,o:True})()",
    ] {
        assert_eq!(
            hx().run(&code, input).status,
            ExecStatus::Invalid,
            "{input}"
        );
        assert!(hx().parse_literal(input).is_err());
    }
    for exc in [
        "Exception('x')",
        "StopIteration",
        "KeyboardInterrupt",
        "SystemExit",
        "GeneratorExit",
        "BaseException",
    ] {
        let o = hx().validate(&wrap(&format!("raise {exc}")), "1");
        assert_eq!(o.status, ExecStatus::Invalid, "{exc}: {o:?}");
    }
    assert_nothing_escaped();
}

#[test]
fn extras() {
    // Huge inputs are rejected before they reach a worker.
    let big = "1".repeat(70_000);
    assert_eq!(
        hx().run(&wrap("return x"), &big).status,
        ExecStatus::Invalid
    );
    // numpy is not installed here: a clean error.
    expect_error(&wrap("import numpy\nreturn 1"), "numpy");
    // Closing or redirecting fds 0-2 is harmless.
    expect_value(
        &wrap("import os\nos.close(0)\nos.close(1)\nos.close(2)\nreturn 1"),
        &int(1),
    );
    expect_value(&wrap("import os\nfd = os.open('/dev/null', os.O_RDONLY)\nos.dup2(fd, 1)\nos.dup2(fd, 0)\nreturn 2"), &int(2));
    // No leaving the process group.
    expect_error(&wrap("import os\nos.setsid()"), "PermissionError");
    expect_error(&wrap("import os\nos.setpgid(0, 0)"), "PermissionError");
    // rlimits cannot be raised again.
    expect_error(
        &wrap("import resource\nresource.setrlimit(resource.RLIMIT_AS, (-1, -1))"),
        "ValueError",
    );
    expect_error(
        &wrap("import resource\nresource.setrlimit(resource.RLIMIT_CPU, (1000, 1000))"),
        "ValueError",
    );
    // Raw syscalls through ctypes are filtered too.
    let o = expect(&wrap("import ctypes\nlibc = ctypes.CDLL(None)\nreturn [libc.syscall(57), libc.syscall(272, 0x40000000), libc.syscall(41, 2, 1, 0)]"), ExecStatus::Ok);
    assert_eq!(o.repr.as_deref(), Some("[-1, -1, -1]"));
    // No privileges inside.
    expect_error(&wrap("import os\nos.setuid(0)"), "PermissionError");
    assert_nothing_escaped();
}
