# azr fork-server worker (embedded in the Rust binary via include_str!).
#
# Started by the Rust executor as `python3 -s -S -B -c <this file> <config json>` inside the
# namespaces and mounts the Rust side set up. Protocol on the original fds 0/1 (moved to private
# fds at start): every frame is a 4-byte big-endian length followed by that many bytes.
#   request  (Rust -> worker): JSON {"id", "op", ...op fields, "timeout_ms", "memory_mb", ...}
#   started  (worker -> Rust): JSON {"id", "ev": "started", "pid"}
#   done     (worker -> Rust): JSON header {"id", "ev": "done", "outcome", "ms", "signal", "exit"}
#                              + "\n" + the raw record the child wrote (may be empty)
# Every request runs in a fresh forked child which sets its own process group, points fds 0-2 at
# /dev/null, closes every other fd except its private result pipe, lowers rlimits, installs the
# seccomp filter handed over by Rust, and only then touches user text. The worker itself never
# parses or runs user text.
import ast
import builtins
import ctypes
import gc
import json
import math
import os
import resource
import select
import signal
import sys
import time

if sys.path and sys.path[0] in ("", "."):
    del sys.path[0]

CFG = json.loads(sys.argv[1])

# Modules programs commonly import: loaded once here so every forked child gets them for free
# (each preloaded module makes every fork a little slower, so the list is configurable).
for _name in CFG.get("preload", []):
    try:
        __import__(_name)
    except Exception:  # noqa: BLE001 - a missing optional module only costs speed
        pass
SERVER_PID = os.getpid()
LIBC = ctypes.CDLL(None, use_errno=True)
_UL = ctypes.c_ulong
PR_SET_PDEATHSIG = 1
PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
MAX_DEPTH = 100

_type = type
_repr = repr
_len = len
_isinstance = isinstance
_dumps = json.dumps
_BaseException = BaseException


def _syscall(nr, *args):
    return LIBC.syscall(ctypes.c_long(nr), *[_UL(a) for a in args])


# ---------------------------------------------------------------------------------------------
# Landlock (applied once to the worker, inherited by every child).
# ---------------------------------------------------------------------------------------------
def _landlock(rules, want_scope):
    """Restrict the filesystem to `rules` [(path, access, is_dir)], deny TCP, scope signals."""
    abi = _syscall(444, 0, 0, 1)  # LANDLOCK_CREATE_RULESET_VERSION
    if abi < 1:
        return {"abi": 0, "enforced": False, "why": "landlock unavailable (errno %d)" % ctypes.get_errno()}
    fs_all = (1 << 13) - 1  # EXECUTE .. MAKE_SYM
    if abi >= 2:
        fs_all |= 1 << 13  # REFER
    if abi >= 3:
        fs_all |= 1 << 14  # TRUNCATE
    if abi >= 5:
        fs_all |= 1 << 15  # IOCTL_DEV
    file_rights = 1 | 2 | 4 | (1 << 14 if abi >= 3 else 0)
    net = 3 if abi >= 4 else 0
    scope = 3 if (abi >= 6 and want_scope) else 0
    if abi >= 6:
        attr = ctypes.create_string_buffer(fs_all.to_bytes(8, "little") + net.to_bytes(8, "little") + scope.to_bytes(8, "little"))
        size = 24
    elif abi >= 4:
        attr = ctypes.create_string_buffer(fs_all.to_bytes(8, "little") + net.to_bytes(8, "little"))
        size = 16
    else:
        attr = ctypes.create_string_buffer(fs_all.to_bytes(8, "little"))
        size = 8
    rfd = _syscall(444, ctypes.addressof(attr), size, 0)
    if rfd < 0:
        return {"abi": abi, "enforced": False, "why": "create_ruleset errno %d" % ctypes.get_errno()}
    try:
        for path, access, is_dir in rules:
            try:
                pfd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                allowed = access & fs_all if is_dir else access & file_rights
                rule = ctypes.create_string_buffer(allowed.to_bytes(8, "little") + pfd.to_bytes(4, "little", signed=True))
                if _syscall(445, rfd, 1, ctypes.addressof(rule), 0) != 0:
                    return {"abi": abi, "enforced": False, "why": "add_rule %s errno %d" % (path, ctypes.get_errno())}
            finally:
                os.close(pfd)
        if LIBC.prctl(PR_SET_NO_NEW_PRIVS, _UL(1), _UL(0), _UL(0), _UL(0)) != 0:
            return {"abi": abi, "enforced": False, "why": "no_new_privs failed"}
        if _syscall(446, rfd, 0) != 0:
            return {"abi": abi, "enforced": False, "why": "restrict_self errno %d" % ctypes.get_errno()}
    finally:
        os.close(rfd)
    return {"abi": abi, "enforced": True, "net": net != 0, "scope": scope != 0, "why": ""}


READ = 1 | 4 | 8  # EXECUTE | READ_FILE | READ_DIR
RW_FILE = 2 | 4 | (1 << 14)
LL_RULES = [("/usr", READ, True), ("/dev/null", RW_FILE, False), ("/dev/urandom", 4, False), ("/dev/zero", 4, False)]
if CFG.get("private_tmp"):
    # Only in the minimal private root: listing "/" then shows just our own entries.
    LL_RULES.append(("/", 8, True))
    LL_RULES.append(("/tmp", (1 << 16) - 1, True))
if CFG.get("landlock", True):
    LANDLOCK = _landlock(LL_RULES, True)
else:
    LANDLOCK = {"abi": 0, "enforced": False, "why": "disabled"}

# The seccomp program for children, compiled by Rust (seccompiler) and sent as hex.
_FILTERS = []
for _hex in CFG.get("seccomp", []):
    _raw = bytes.fromhex(_hex)
    _prog = ctypes.create_string_buffer(_raw, _len(_raw))
    _fprog = ctypes.create_string_buffer((_len(_raw) // 8).to_bytes(2, "little") + b"\0" * 6 + ctypes.addressof(_prog).to_bytes(8, "little"))
    _FILTERS.append((_prog, _fprog))

DEVNULL = os.open("/dev/null", os.O_RDWR)
PROTO_IN = os.dup(0)
PROTO_OUT = os.dup(1)
os.dup2(DEVNULL, 0)
os.dup2(DEVNULL, 1)
os.dup2(DEVNULL, 2)
try:
    MAXFD = os.sysconf("SC_OPEN_MAX")
except (ValueError, OSError):
    MAXFD = 1024
IS_ROOT = os.getuid() == 0


def _read_exact(fd, n):
    buf = bytearray()
    while _len(buf) < n:
        chunk = os.read(fd, n - _len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _send(obj, tail=b""):
    body = _dumps(obj, separators=(",", ":")).encode() + (b"\n" + tail if tail is not None else b"")
    _write_all(PROTO_OUT, _len(body).to_bytes(4, "big") + body)


# ---------------------------------------------------------------------------------------------
# Values: exact builtin types only, so no user __eq__/__repr__/__hash__ ever runs here.
# ---------------------------------------------------------------------------------------------
class Unsupported(Exception):
    pass


class TooLarge(Exception):
    pass


class Budget:
    __slots__ = ("left", "bits")

    def __init__(self, cap):
        self.left = cap
        self.bits = int(cap * 3.3) + 64

    def spend(self, n):
        self.left -= n
        if self.left < 0:
            raise TooLarge()


def _canon_key(c):
    return _dumps(c, sort_keys=True, ensure_ascii=True)


def canon(x, budget, depth=0):
    t = _type(x)
    budget.spend(12)
    if x is None:
        return {"t": "none"}
    if t is bool:
        return {"t": "bool", "v": x}
    if t is int:
        if x.bit_length() > budget.bits:
            raise TooLarge()
        s = str(x)
        budget.spend(_len(s))
        return {"t": "int", "v": s}
    if t is float:
        return {"t": "float", "v": _repr(x)}
    if t is str:
        budget.spend(_len(x))
        try:
            x.encode("utf-8")
        except UnicodeEncodeError:
            raise Unsupported("str containing a lone surrogate") from None
        return {"t": "str", "v": x}
    if t is bytes:
        budget.spend(4 * _len(x))
        return {"t": "bytes", "v": list(x)}
    if depth >= MAX_DEPTH:
        raise Unsupported("value nested deeper than %d levels" % MAX_DEPTH)
    if t is list:
        return {"t": "list", "v": [canon(i, budget, depth + 1) for i in x]}
    if t is tuple:
        return {"t": "tuple", "v": [canon(i, budget, depth + 1) for i in x]}
    if t is dict:
        return {"t": "dict", "v": [[canon(k, budget, depth + 1), canon(v, budget, depth + 1)] for k, v in x.items()]}
    if t is set or t is frozenset:
        items = [canon(i, budget, depth + 1) for i in x]
        items.sort(key=_canon_key)
        return {"t": "set", "v": items}
    try:
        name = t.__qualname__ if _isinstance(t.__qualname__, str) else "object"
    except _BaseException:  # noqa: BLE001 - a hostile metaclass
        name = "object"
    raise Unsupported("unsupported result type %s" % name[:100])


def value_record(x, cap):
    """Canonical record for a returned value, or the failing status."""
    try:
        sys.set_int_max_str_digits(0)
    except AttributeError:
        pass
    try:
        c = canon(x, Budget(cap))
        r = _repr(x)
    except Unsupported as e:
        return {"status": "unsupported_type", "error": str(e.args[0]) if e.args else "unsupported"}
    except TooLarge:
        return {"status": "output_too_large", "error": "result larger than %d bytes" % cap}
    except RecursionError:
        return {"status": "unsupported_type", "error": "value nested too deeply"}
    return {"status": "ok", "value": c, "repr": r}


def exc_text(e):
    try:
        name = _type(e).__name__
        if not _isinstance(name, str):
            name = "BaseException"
    except _BaseException:  # noqa: BLE001
        name = "BaseException"
    try:
        msg = str(e)
        if not _isinstance(msg, str):
            msg = "<unprintable>"
    except _BaseException:  # noqa: BLE001 - __str__ may raise anything
        msg = "<unprintable>"
    text = (name + ": " + msg) if msg else name
    return text[:2000].encode("utf-8", "backslashreplace").decode("utf-8")


# ---------------------------------------------------------------------------------------------
# Operations (run inside the child, after the sandbox is complete).
# ---------------------------------------------------------------------------------------------
class InputError(Exception):
    pass


def parse_args(src):
    """Parse `src` as the argument list of a call `f(<src>)`; every argument must be a literal."""
    try:
        tree = ast.parse("f(" + src + "\n)", mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError) as e:
        raise InputError("input is not an argument list: " + exc_text(e)) from None
    call = tree.body
    if _type(call) is not ast.Call or _type(call.func) is not ast.Name or call.func.id != "f":
        raise InputError("input is not an argument list")
    args = []
    kwargs = {}
    try:
        for a in call.args:
            if _type(a) is ast.Starred:
                raise InputError("starred arguments are not allowed in the input")
            args.append(ast.literal_eval(a))
        for kw in call.keywords:
            if kw.arg is None:
                raise InputError("** arguments are not allowed in the input")
            kwargs[kw.arg] = ast.literal_eval(kw.value)
    except InputError:
        raise
    except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError, OverflowError) as e:
        raise InputError("input argument is not a literal: " + exc_text(e)) from None
    return args, kwargs


def static_check(tree, banned_modules, banned_names):
    banned_modules = set(banned_modules)
    banned_names = set(banned_names)
    has_f = False
    for node in tree.body:
        if _type(node) in (ast.FunctionDef, ast.AsyncFunctionDef) and node.name == "f":
            has_f = True
    for node in ast.walk(tree):
        t = _type(node)
        if t is ast.Import:
            for alias in node.names:
                for part in alias.name.split("."):
                    if part in banned_modules:
                        return "banned import: " + alias.name
        elif t is ast.ImportFrom:
            if node.level:
                return "relative import"
            for part in (node.module or "").split("."):
                if part in banned_modules:
                    return "banned import: " + (node.module or "")
        elif t is ast.Name and node.id in banned_names:
            return "banned name: " + node.id
        elif t is ast.Attribute and node.attr in banned_names:
            return "banned attribute: " + node.attr
    if not has_f:
        return "program does not define a top-level function f"
    return None


# Everything user code created stays referenced until the child exits with os._exit, so no
# user __del__ or generator `finally` runs while the result is being recorded.
_KEEP = []


def load_f(code):
    g = {"__name__": "__main__", "__builtins__": builtins}
    _KEEP.append(g)
    exec(compile(code, "<program>", "exec"), g)
    f = g.get("f")
    if f is None or not callable(f):
        raise NameError("program does not define a function f")
    return f


def parse_call(src):
    """Parse `f(<src>)` as exactly one call of `f` (arguments may be any expressions)."""
    try:
        tree = ast.parse("f(" + src + "\n)", mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError) as e:
        raise InputError("input is not an argument list: " + exc_text(e)) from None
    call = tree.body
    if _type(call) is not ast.Call or _type(call.func) is not ast.Name or call.func.id != "f":
        raise InputError("input is not an argument list")
    return compile(tree, "<input>", "eval")


def op_run(req):
    trusted = req.get("eval_input", False)
    try:
        if trusted:
            call = parse_call(req["input"])
        else:
            args, kwargs = parse_args(req["input"])
    except InputError as e:
        return {"status": "invalid", "error": str(e)}
    try:
        if trusted:
            g = {"__name__": "__main__", "__builtins__": builtins}
            _KEEP.append(g)
            exec(compile(req["code"], "<program>", "exec"), g)
            out = eval(call, g)
        else:
            _KEEP.append((args, kwargs))
            f = load_f(req["code"])
            out = f(*args, **kwargs)
        _KEEP.append(out)
    except MemoryError as e:
        _KEEP.append(e)
        return {"status": "memory", "error": "MemoryError"}
    except _BaseException as e:  # noqa: BLE001 - every exception is an outcome
        _KEEP.append(e)
        return {"status": "error", "error": exc_text(e)}
    return value_record(out, req["max_output_bytes"])


def op_validate(req):
    code = req["code"]
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError) as e:
        return {"status": "invalid", "error": "syntax error: " + exc_text(e)}
    reason = static_check(tree, req["banned_modules"], req["banned_names"])
    if reason:
        return {"status": "invalid", "error": reason}
    try:
        args1, kwargs1 = parse_args(req["input"])
        args2, kwargs2 = parse_args(req["input"])
    except InputError as e:
        return {"status": "invalid", "error": str(e)}
    _KEEP.append((args1, kwargs1, args2, kwargs2))
    try:
        f = load_f(code)
        out1 = f(*args1, **kwargs1)
        _KEEP.append(out1)
        # Occupy the memory the first call freed (the allocator hands freed blocks out again
        # first), so an address-dependent result of the second call (id(), default reprs)
        # differs from the first instead of landing on the same, just-freed address.
        _n = 64 + os.urandom(1)[0] % 64
        _KEEP.append([object() for _ in range(_n)])
        _KEEP.append([([], {}, "j" * (k % 48), k + 0.5) for k in range(_n)])
        out2 = f(*args2, **kwargs2)
        _KEEP.append(out2)
    except MemoryError as e:
        _KEEP.append(e)
        return {"status": "memory", "error": "MemoryError"}
    except _BaseException as e:  # noqa: BLE001 - any exception makes the proposal invalid
        _KEEP.append(e)
        return {"status": "invalid", "error": "raised " + exc_text(e)}
    cap = req["max_output_bytes"]
    r1 = value_record(out1, cap)
    if r1["status"] != "ok":
        return r1
    r2 = value_record(out2, cap)
    if r2["status"] != "ok" or _canon_key(r1["value"]) != _canon_key(r2["value"]) or r1["repr"] != r2["repr"]:
        return {"status": "invalid", "error": "nondeterministic: two calls in one process differ"}
    return r1


def op_parse(req):
    try:
        v = ast.literal_eval(req["text"])
        _KEEP.append(v)
    except MemoryError:
        return {"status": "invalid", "error": "not a literal: MemoryError"}
    except _BaseException as e:  # noqa: BLE001
        return {"status": "invalid", "error": "not a literal: " + exc_text(e)}
    return value_record(v, req["max_output_bytes"])


def op_probe(req):
    facts = {"uid": os.getuid(), "euid": os.geteuid(), "env": sorted(os.environ.keys())}
    try:
        facts["root_entries"] = sorted(os.listdir("/"))
    except OSError as e:
        facts["root_entries"] = ["<%s>" % e.__class__.__name__]
    try:
        with builtins.open("/etc/passwd", "rb") as fh:
            fh.read(1)
        facts["etc_passwd"] = "readable"
    except OSError as e:
        facts["etc_passwd"] = e.__class__.__name__
    try:
        with builtins.open("/usr/azr_probe_write", "wb") as fh:
            fh.write(b"x")
        facts["write_usr"] = "allowed"
    except OSError as e:
        facts["write_usr"] = e.__class__.__name__
    try:
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
        facts["fork"] = "allowed"
    except OSError as e:
        facts["fork"] = e.__class__.__name__
    try:
        import socket

        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.close()
        facts["socket"] = "allowed"
    except OSError as e:
        facts["socket"] = e.__class__.__name__
    try:
        os.kill(SERVER_PID, 0)
        facts["kill"] = "allowed"
    except OSError as e:
        facts["kill"] = e.__class__.__name__
    facts["rlimit_as"] = resource.getrlimit(resource.RLIMIT_AS)[1]
    facts["rlimit_cpu"] = resource.getrlimit(resource.RLIMIT_CPU)[1]
    facts["rlimit_fsize"] = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
    facts["rlimit_nofile"] = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    facts["landlock"] = LANDLOCK
    return {"status": "ok", "value": {"t": "none"}, "repr": _dumps(facts)}


OPS = {"run": op_run, "validate": op_validate, "parse": op_parse, "probe": op_probe}


def child(req, wfd):
    """Body of a forked child: finish the sandbox, run one op, write one record, _exit."""
    rec = None
    try:
        try:
            os.setpgid(0, 0)
        except OSError:
            pass
        LIBC.prctl(PR_SET_PDEATHSIG, _UL(signal.SIGKILL), _UL(0), _UL(0), _UL(0))
        if os.getppid() != SERVER_PID:
            os._exit(70)
        os.dup2(DEVNULL, 0)
        os.dup2(DEVNULL, 1)
        os.dup2(DEVNULL, 2)
        os.closerange(3, wfd)
        os.closerange(wfd + 1, MAXFD)
        os.environ.clear()
        mem = req["memory_mb"] * 1024 * 1024
        cpu = int(math.ceil(req["timeout_ms"] / 1000.0)) + 1
        resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        resource.setrlimit(resource.RLIMIT_FSIZE, (req["fsize_bytes"], req["fsize_bytes"]))
        resource.setrlimit(resource.RLIMIT_NOFILE, (32, 32))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if not IS_ROOT:
            resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))
        if LIBC.prctl(PR_SET_NO_NEW_PRIVS, _UL(1), _UL(0), _UL(0), _UL(0)) != 0:
            raise OSError("PR_SET_NO_NEW_PRIVS failed")
        for _prog, fprog in _FILTERS:
            if LIBC.prctl(PR_SET_SECCOMP, _UL(SECCOMP_MODE_FILTER), _UL(ctypes.addressof(fprog)), _UL(0), _UL(0)) != 0:
                raise OSError("seccomp filter rejected (errno %d)" % ctypes.get_errno())
    except _BaseException as e:  # noqa: BLE001 - never run user text in a half-built sandbox
        rec = {"status": "sandbox_failure", "error": "child setup failed: " + exc_text(e)}
    # Shift the allocator state by a random amount so that object addresses (id(), default
    # reprs) differ between children: validation then sees address-dependent programs as
    # nondeterministic instead of silently accepting them.
    _jitter = [(object(), [], {}, "j" * k) for k in range(os.urandom(1)[0] % 61)]
    try:
        if rec is None:
            try:
                rec = OPS[req["op"]](req)
            except MemoryError:
                rec = {"status": "memory", "error": "MemoryError"}
            except RecursionError as e:
                rec = {"status": "error", "error": exc_text(e)}
        try:
            data = _dumps(rec, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        except MemoryError:
            data = b'{"status":"memory","error":"MemoryError"}'
        _write_all(wfd, _len(data).to_bytes(4, "big") + data)
    finally:
        os._exit(0)


PRIVATE_TMP = bool(CFG.get("private_tmp"))


def _rmtree(path):
    try:
        os.chmod(path, 0o700)
    except OSError:
        pass
    for entry in os.scandir(path):
        p = entry.path
        if entry.is_dir(follow_symlinks=False):
            _rmtree(p)
            try:
                os.rmdir(p)
            except OSError:
                pass
        else:
            try:
                os.unlink(p)
            except OSError:
                pass


def _clean_tmp():
    """Empty the private /tmp so no execution sees files of an earlier one."""
    try:
        if os.listdir("/tmp"):
            _rmtree("/tmp")
            os.chmod("/tmp", 0o1777)
    except OSError:
        pass


def serve_one(req):
    rid = req.get("id")
    timeout = req["timeout_ms"] / 1000.0
    cap = req["max_output_bytes"] * 2 + 65536
    r, w = os.pipe()
    t0 = time.monotonic()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        child(req, w)
        os._exit(0)  # unreachable: child() always exits
    os.close(w)
    try:
        os.setpgid(pid, pid)
    except OSError:
        pass
    _send({"id": rid, "ev": "started", "pid": pid}, None)
    deadline = t0 + timeout
    buf = bytearray()
    outcome = "eof"
    poller = select.poll()
    poller.register(r, select.POLLIN | select.POLLHUP | select.POLLERR)
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            outcome = "timeout"
            break
        if not poller.poll(max(1, int(left * 1000) + 1)):
            continue
        chunk = os.read(r, 1 << 16)
        if not chunk:
            break
        buf += chunk
        if _len(buf) >= 4:
            need = int.from_bytes(buf[:4], "big")
            if need > cap:
                outcome = "too_large"
                break
            if _len(buf) >= 4 + need:
                outcome = "record"
                break
    ms = (time.monotonic() - t0) * 1000.0
    for kill in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
        try:
            kill()
        except OSError:
            pass
    _, status = os.waitpid(pid, 0)
    os.close(r)
    sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0
    code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else -1
    tail = bytes(buf[4:]) if outcome == "record" else b""
    if PRIVATE_TMP:
        _clean_tmp()
    # A child that ended on its own (not by our kill) with a signal: say which.
    _send({"id": rid, "ev": "done", "outcome": outcome, "ms": ms, "signal": sig, "exit": code}, tail)


def main():
    gc.collect()
    gc.freeze()
    _send({"id": 0, "ev": "hello", "pid": SERVER_PID, "uid": os.getuid(), "landlock": LANDLOCK,
           "python": sys.version.split()[0]}, None)
    while True:
        head = _read_exact(PROTO_IN, 4)
        if head is None:
            os._exit(0)
        n = int.from_bytes(head, "big")
        body = _read_exact(PROTO_IN, n)
        if body is None:
            os._exit(0)
        req = json.loads(body)
        serve_one(req)


main()
