# azr fork-server worker (embedded in the Rust binary via include_str!).
#
# Started by the Rust executor as `python3 -s -S -B -c <boot> <this file> <config json>` (the
# boot program compiles this file in a short-lived child and runs the code) inside the
# namespaces and mounts the Rust side set up, with exactly three descriptors: fd 0 is a
# SOCK_SEQPACKET control socket to Rust, fd 1 is /dev/null, fd 2 is a start-up diagnostics pipe.
#
# Control protocol (one JSON object per packet):
#   request (Rust -> server): {"id": N} carrying two descriptors (SCM_RIGHTS): the read end of
#                             the job pipe and the write end of the result pipe, both fresh for
#                             this job. The server never reads or writes either: the job's
#                             code, input and result travel between Rust and the job only.
#   started (server -> Rust): {"id", "ev": "started", "pid"} right after the clone.
#   done    (server -> Rust): {"id", "ev": "done", "signal", "exit", "timeout"} once the job
#                             process is reaped (Rust ignores it when it already has a result).
#
# Every job runs in a fresh process cloned with new PID, IPC and mount namespaces (PID 1 of its
# own namespace: the server and every other process are invisible to it), mounts a fresh tmpfs
# on /tmp, opens its own /dev/null, reads its job from its own pipe, applies Landlock, keeps only
# fds 0-2 and its result pipe (fd 3), lowers rlimits, drops every capability, installs the
# seccomp filters handed over by Rust, writes the ready byte 'R', and only then touches user text.
# The result stream is 'R' + one frame (4-byte big-endian length + JSON record) or, when the setup
# failed, 'F' + one frame with the reason. Records are plain data; Rust decodes, renders and
# compares every value itself, so a program that tampers with this file's code in its own process
# can at most report a value it could have returned.
import ast
import builtins
import ctypes
import gc
import json
import math
import os
import resource
import select
import sys
import time

# The C modules behind `signal` and `socket`: their Python wrappers build enum classes, and
# every resident page of this process is paid in each job's clone and exit.
import _signal as signal
import _socket as socket

if sys.path and sys.path[0] in ("", "."):
    del sys.path[0]

CFG = json.loads(sys.argv[1])

# Modules programs commonly import: loaded once here so every job gets them for free (each
# preloaded module makes every clone a little slower, so the list is configurable).
for _name in CFG.get("preload", []):
    try:
        __import__(_name)
    except Exception:  # noqa: BLE001 - a missing optional module only costs speed
        pass

# Both processes are single-threaded: no call needs to release the GIL (doing so only
# touches more of the interpreter's pages in every job).
LIBC = ctypes.PyDLL(None, use_errno=True)
# The GIL stays held across clone (like os.fork), so the child owns it on return.
PYLIBC = ctypes.PyDLL(None, use_errno=True)
_UL = ctypes.c_ulong
PR_SET_PDEATHSIG = 1
PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
MAX_DEPTH = 100
# One digit limit for inputs (CPython's default int/str conversion limit, which ast.literal_eval
# applies to answers) and outputs: a result no answer could spell is refused.
MAX_INT_DIGITS = int(CFG.get("max_int_digits", 4300))
SYS_CLONE = 56
SYS_CAPSET = 126
SYS_CLOSE_RANGE = 436
CLONE_NEWNS = 0x00020000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8

JOB_NS = bool(CFG.get("job_ns"))
PRIVATE_TMP = bool(CFG.get("private_tmp"))
MEMORY = int(CFG["memory_mb"]) * 1024 * 1024
TIMEOUT_S = int(CFG["timeout_ms"]) / 1000.0
CPU_S = int(math.ceil(TIMEOUT_S)) + 1
FSIZE = int(CFG["fsize_bytes"])
TMP_OPTS = ("size=%dm,mode=1777" % max(1, int(CFG.get("tmp_mb", 16)))).encode()

_type = type
_repr = repr
_len = len
_str = str
_isinstance = isinstance
_dumps = json.dumps
# The record encoder, built once (json.dumps with arguments builds a JSONEncoder per call).
_encode_record = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_BaseException = BaseException


def _syscall(nr, *args):
    return LIBC.syscall(ctypes.c_long(nr), *[_UL(a) for a in args])


# ---------------------------------------------------------------------------------------------
# Landlock: the rule targets are opened and their rule structs built once here; every job builds
# its own ruleset from them plus a rule on its own /tmp (a fresh tmpfs: Landlock ignores rules on
# the hidden mount point under it, so the rule must name the new mount) and restricts itself.
# ---------------------------------------------------------------------------------------------
READ = 1 | 4 | 8  # EXECUTE | READ_FILE | READ_DIR
RW_FILE = 2 | 4 | (1 << 14)
LL_ABI = _syscall(444, 0, 0, 1) if CFG.get("landlock", True) else 0  # CREATE_RULESET_VERSION
if LL_ABI < 0:
    LL_ABI = 0
LL_FS_ALL = (1 << 13) - 1
if LL_ABI >= 2:
    LL_FS_ALL |= 1 << 13  # REFER
if LL_ABI >= 3:
    LL_FS_ALL |= 1 << 14  # TRUNCATE
if LL_ABI >= 5:
    LL_FS_ALL |= 1 << 15  # IOCTL_DEV
LL_FILE = 1 | 2 | 4 | (1 << 14 if LL_ABI >= 3 else 0)
LL_NET = 3 if LL_ABI >= 4 else 0
LL_SCOPE = 3 if LL_ABI >= 6 else 0
if LL_ABI >= 6:
    _LL_ATTR = ctypes.create_string_buffer(LL_FS_ALL.to_bytes(8, "little") + LL_NET.to_bytes(8, "little") + LL_SCOPE.to_bytes(8, "little"))
    _LL_SIZE = 24
elif LL_ABI >= 4:
    _LL_ATTR = ctypes.create_string_buffer(LL_FS_ALL.to_bytes(8, "little") + LL_NET.to_bytes(8, "little"))
    _LL_SIZE = 16
else:
    _LL_ATTR = ctypes.create_string_buffer(LL_FS_ALL.to_bytes(8, "little"))
    _LL_SIZE = 8


def _ll_rule_struct(fd, allowed):
    """A `landlock_path_beneath_attr` (allowed access, parent fd), kept alive by the caller."""
    return ctypes.create_string_buffer(allowed.to_bytes(8, "little") + fd.to_bytes(4, "little", signed=True))


# (rule struct, its address as a syscall argument); the O_PATH fds stay open (close-on-exec).
LL_RULES = []
if LL_ABI >= 1:
    _rules = [("/usr", READ, True), ("/dev/null", RW_FILE, False), ("/dev/urandom", 4, False), ("/dev/zero", 4, False)]
    if PRIVATE_TMP:
        # Only in the minimal private root: listing "/" then shows just our own entries.
        _rules.append(("/", 8, True))
    for _path, _access, _is_dir in _rules:
        try:
            _fd = os.open(_path, os.O_PATH | os.O_CLOEXEC)
        except OSError:
            continue
        _rule = _ll_rule_struct(_fd, _access & LL_FS_ALL if _is_dir else _access & LL_FILE)
        LL_RULES.append((_rule, _UL(ctypes.addressof(_rule))))
# The job's /tmp rule: its fd is patched in per job.
_LL_TMP_RULE = _ll_rule_struct(0, ((1 << 16) - 1) & LL_FS_ALL)
_LL_TMP_RULE_ADDR = _UL(ctypes.addressof(_LL_TMP_RULE))
_LL_CREATE = (ctypes.c_long(444), _UL(ctypes.addressof(_LL_ATTR)), _UL(_LL_SIZE), _UL(0))
_LL_ADD = ctypes.c_long(445)
_LL_RESTRICT = ctypes.c_long(446)
_LL_ONE = _UL(1)
_LL_ZERO = _UL(0)
LANDLOCK = {"abi": LL_ABI, "enforced": LL_ABI >= 1, "net": LL_NET != 0, "scope": LL_SCOPE != 0}


def landlock_self():
    """Restrict this job to the rules above plus everything beneath its own /tmp."""
    if LL_ABI < 1:
        return
    sys_ = LIBC.syscall
    rfd = sys_(*_LL_CREATE)
    if rfd < 0:
        raise OSError("landlock create_ruleset errno %d" % ctypes.get_errno())
    r = _UL(rfd)
    for _rule, addr in LL_RULES:
        if sys_(_LL_ADD, r, _LL_ONE, addr, _LL_ZERO) != 0:
            raise OSError("landlock add_rule errno %d" % ctypes.get_errno())
    if PRIVATE_TMP:
        tfd = os.open("/tmp", os.O_PATH | os.O_CLOEXEC)
        _LL_TMP_RULE[8:12] = tfd.to_bytes(4, "little")
        if sys_(_LL_ADD, r, _LL_ONE, _LL_TMP_RULE_ADDR, _LL_ZERO) != 0:
            raise OSError("landlock add_rule errno %d" % ctypes.get_errno())
        os.close(tfd)
    if sys_(_LL_RESTRICT, r, _LL_ZERO) != 0:
        raise OSError("landlock restrict_self errno %d" % ctypes.get_errno())
    os.close(rfd)


# The seccomp program for jobs, built by Rust (`job_filter` in sandbox.rs) and sent as hex.
_FILTERS = []
for _hex in CFG.get("seccomp", []):
    _raw = bytes.fromhex(_hex)
    _prog = ctypes.create_string_buffer(_raw, _len(_raw))
    _fprog = ctypes.create_string_buffer((_len(_raw) // 8).to_bytes(2, "little") + b"\0" * 6 + ctypes.addressof(_prog).to_bytes(8, "little"))
    _FILTERS.append((_prog, _fprog))

# capset(2) arguments that clear the effective, permitted and inheritable sets (the ambient set
# follows the permitted one). _LINUX_CAPABILITY_VERSION_3 = 0x20080522, pid 0 = self.
_CAP_HEAD = ctypes.create_string_buffer((0x20080522).to_bytes(4, "little") + (0).to_bytes(4, "little"))
_CAP_ZERO = ctypes.create_string_buffer(24)

# The control socket moves off fd 0; fds 0 and 1 become /dev/null (fd 2 too once started).
CTRL = os.dup(0)
SOCK = socket.socket(fileno=CTRL)
_null = os.open("/dev/null", os.O_RDWR)
os.dup2(_null, 0)
os.dup2(_null, 1)
os.close(_null)
IS_ROOT = os.getuid() == 0
# User code runs with an empty environment. The interpreter read PYTHONHASHSEED at start, so the
# server empties its own environment (os.environ and the C environ) once and every job inherits it.
os.environ.clear()
SERVER_PID = os.getpid()
# st_dev of the server's own /tmp: a job's fresh tmpfs must differ (checked by the probe).
try:
    SERVER_TMP_DEV = os.stat("/tmp").st_dev
except OSError:
    SERVER_TMP_DEV = -1


def _send(obj):
    SOCK.send(_dumps(obj, separators=(",", ":")).encode())


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


# ---------------------------------------------------------------------------------------------
# Values: exact builtin types only, so no user __eq__/__repr__/__hash__ ever runs here. Sets keep
# their iteration order (Rust renders the repr from it and compares order-free).
# ---------------------------------------------------------------------------------------------
class Unsupported(Exception):
    pass


class TooLarge(Exception):
    pass


class Budget:
    __slots__ = ("left",)

    def __init__(self, cap):
        self.left = cap

    def spend(self, n):
        self.left -= n
        if self.left < 0:
            raise TooLarge("result larger than the output limit")


# Bits above which an int certainly has more than MAX_INT_DIGITS digits.
_INT_BITS = int(MAX_INT_DIGITS * 3.33) + 8


def canon(x, budget, depth=0):
    t = _type(x)
    budget.spend(12)
    if x is None:
        return {"t": "none"}
    if t is bool:
        return {"t": "bool", "v": x}
    if t is int:
        if x.bit_length() > _INT_BITS:
            raise TooLarge("int with more than %d digits" % MAX_INT_DIGITS)
        try:
            s = _str(x)
        except ValueError:
            raise TooLarge("int with more than %d digits" % MAX_INT_DIGITS) from None
        if _len(s.lstrip("-")) > MAX_INT_DIGITS:
            raise TooLarge("int with more than %d digits" % MAX_INT_DIGITS)
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
    if t is set:
        return {"t": "set", "v": [canon(i, budget, depth + 1) for i in x]}
    if t is frozenset:
        return {"t": "fset", "v": [canon(i, budget, depth + 1) for i in x]}
    try:
        name = t.__qualname__ if _isinstance(t.__qualname__, str) else "object"
    except _BaseException:  # noqa: BLE001 - a hostile metaclass
        name = "object"
    raise Unsupported("unsupported result type %s" % name[:100])


def value_of(x, cap):
    """(canonical value, None) or (None, failing record)."""
    try:
        return canon(x, Budget(cap)), None
    except Unsupported as e:
        return None, {"status": "unsupported_type", "error": _str(e.args[0]) if e.args else "unsupported"}
    except TooLarge as e:
        return None, {"status": "output_too_large", "error": _str(e.args[0]) if e.args else "too large"}
    except RecursionError:
        return None, {"status": "unsupported_type", "error": "value nested too deeply"}


def exc_text(e):
    try:
        name = _type(e).__name__
        if not _isinstance(name, str):
            name = "BaseException"
    except _BaseException:  # noqa: BLE001
        name = "BaseException"
    try:
        msg = _str(e)
        if not _isinstance(msg, str):
            msg = "<unprintable>"
    except _BaseException:  # noqa: BLE001 - __str__ may raise anything
        msg = "<unprintable>"
    text = (name + ": " + msg) if msg else name
    return text[:2000].encode("utf-8", "backslashreplace").decode("utf-8")


# ---------------------------------------------------------------------------------------------
# Operations (run inside the job process, after the sandbox is complete).
# ---------------------------------------------------------------------------------------------
class InputError(Exception):
    pass


_SPECIAL_FLOATS = {"inf": float("inf"), "-inf": float("-inf"), "nan": float("nan"), "+inf": float("inf")}


def _literal_node(node):
    """ast.literal_eval's input, with `float('inf'|'-inf'|'nan')` and `frozenset(<literal>)`
    allowed as well (the spellings of values that have no plain literal)."""
    for n in ast.walk(node):
        if _type(n) is ast.Call and _type(n.func) is ast.Name and not n.keywords:
            if n.func.id == "float" and _len(n.args) == 1 and _type(n.args[0]) is ast.Constant and n.args[0].value in _SPECIAL_FLOATS:
                v = _SPECIAL_FLOATS[n.args[0].value]
                n.__class__ = ast.Constant
                n.value = v
                n.kind = None
            elif n.func.id == "frozenset" and _len(n.args) <= 1:
                arg = n.args[0] if n.args else ast.Set(elts=[])
                if _type(arg) in (ast.Set, ast.List, ast.Tuple):
                    n.__class__ = ast.Set
                    n.elts = arg.elts
    return node


def literal(node):
    return ast.literal_eval(_literal_node(node))


# Inputs that are also JSON (numbers, lists, dicts with str keys, strings without escapes) are
# decoded by json's C scanner, which builds the very values ast.literal_eval would (the text
# checks below exclude every token whose meaning differs: true/false/null, NaN/Infinity, escapes
# and nesting deep enough to hit the parser's limits); everything else goes through ast.
def _no_constant(name):
    raise ValueError("not a Python literal: " + name)


_JSON_LIST = json.decoder.JSONDecoder(parse_constant=_no_constant).scan_once
_NOT_JSON_SAFE = ("\\", "true", "false", "null", "NaN", "Infinity")


def _json_args(src):
    """The positional arguments of `f(<src>)` when `src` is a JSON-safe literal list, else None."""
    if src.count("[") + src.count("{") > 90:
        return None
    for word in _NOT_JSON_SAFE:
        if word in src:
            return None
    text = "[" + src + "]"
    try:
        args, end = _JSON_LIST(text, 0)
    except _BaseException:  # noqa: BLE001 - not JSON: the ast path decides
        return None
    if end != _len(text):
        return None
    return args


def parse_args(src):
    """Parse `src` as the argument list of a call `f(<src>)`; every argument must be a literal."""
    args = _json_args(src)
    if args is not None:
        return args, {}
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


# Everything user code created stays referenced until the job exits with os._exit, so no user
# __del__ or generator `finally` runs while the result is being recorded.
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
        return {"status": "invalid", "error": _str(e)}
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
    v, bad = value_of(out, req["max_output_bytes"])
    return bad or {"status": "ok", "value": v}


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
        return {"status": "invalid", "error": _str(e)}
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
    v1, bad = value_of(out1, cap)
    if bad:
        return bad
    v2, bad = value_of(out2, cap)
    if bad:
        return bad
    # Rust compares the two calls (and a second, independent process).
    return {"status": "ok", "values": [v1, v2]}


def op_parse(req):
    try:
        v = literal(ast.parse(req["text"].strip(), mode="eval").body)
        _KEEP.append(v)
    except MemoryError:
        return {"status": "invalid", "error": "not a literal: MemoryError"}
    except _BaseException as e:  # noqa: BLE001
        return {"status": "invalid", "error": "not a literal: " + exc_text(e)}
    v, bad = value_of(v, req["max_output_bytes"])
    if bad:
        return {"status": "invalid", "error": "not a supported literal: " + bad["error"]}
    return {"status": "ok", "value": v}


def _open_fds():
    fds = []
    for fd in range(0, 4096):
        try:
            os.fstat(fd)
            fds.append(fd)
        except OSError:
            pass
    return fds


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
    # Per-job layers: own PID namespace (PID 1, parent invisible), only fds 0-3, a fresh /tmp,
    # no capabilities, and a SysV IPC namespace of its own (the key the previous probe created
    # must not exist here).
    facts["pid"] = os.getpid()
    facts["ppid"] = os.getppid()
    facts["fds"] = _open_fds()
    try:
        st = os.stat("/tmp")
        facts["tmp_fresh"] = st.st_dev != SERVER_TMP_DEV and os.listdir("/tmp") == []
    except OSError:
        facts["tmp_fresh"] = False
    head = ctypes.create_string_buffer((0x20080522).to_bytes(4, "little") + (0).to_bytes(4, "little"))
    data = ctypes.create_string_buffer(24)
    facts["caps"] = "error" if _syscall(125, ctypes.addressof(head), ctypes.addressof(data)) != 0 else data.raw.hex()
    key = 0x617A72  # "azr"
    facts["ipc_leftover"] = LIBC.shmget(ctypes.c_int(key), _UL(0), ctypes.c_int(0)) >= 0
    facts["ipc_created"] = LIBC.shmget(ctypes.c_int(key), _UL(4096), ctypes.c_int(0o1000 | 0o600)) >= 0
    return {"status": "ok", "facts": facts}


OPS = {"run": op_run, "validate": op_validate, "parse": op_parse, "probe": op_probe}


def _read_all(fd, limit):
    chunks = []
    total = 0
    while True:
        # 64 KiB reads: a 1 MiB buffer would be a fresh mapping (and a shrinking mremap) per job.
        chunk = os.read(fd, 65536)
        if not chunk:
            return b"".join(chunks)
        total += _len(chunk)
        if total > limit:
            raise OSError("job larger than %d bytes" % limit)
        chunks.append(chunk)


# The C scanner behind json.loads, called directly: the job is compact JSON written by Rust, so
# json.loads' Python-level wrapper (two regex matches, a decoder object) is pure per-job cost.
_SCAN = json.decoder.JSONDecoder().scan_once


def _decode_job(data):
    text = data.decode("utf-8")
    try:
        req, end = _SCAN(text, 0)
    except StopIteration:
        raise ValueError("job is not JSON") from None
    if end != _len(text):
        raise ValueError("trailing data after the job")
    if _type(req) is not dict:
        raise ValueError("job is not an object")
    return req


def _frame(tag, data):
    return tag + _len(data).to_bytes(4, "big") + data


# Everything a job's setup calls, resolved and built once here: a job then touches as few of the
# server's pages as possible (each page it writes is a copy-on-write fault, the main per-job cost).
_prctl = LIBC.prctl
_mount = LIBC.mount
_sys = LIBC.syscall
_A_PDEATHSIG = (_UL(PR_SET_PDEATHSIG), _UL(signal.SIGKILL), _UL(0), _UL(0), _UL(0))
_A_MOUNT_TMP = (b"tmpfs", b"/tmp", b"tmpfs", _UL(MS_NOSUID | MS_NODEV | MS_NOEXEC), TMP_OPTS)
_A_NO_NEW_PRIVS = (_UL(PR_SET_NO_NEW_PRIVS), _UL(1), _UL(0), _UL(0), _UL(0))
_A_CLOSE_RANGE = (ctypes.c_long(SYS_CLOSE_RANGE), _UL(4), _UL(0xFFFFFFFF), _UL(0))
_A_CAPSET = (ctypes.c_long(SYS_CAPSET), _UL(ctypes.addressof(_CAP_HEAD)), _UL(ctypes.addressof(_CAP_ZERO)))
_A_SECCOMP = [(_UL(PR_SET_SECCOMP), _UL(SECCOMP_MODE_FILTER), _UL(ctypes.addressof(fprog)), _UL(0), _UL(0)) for _prog, fprog in _FILTERS]
# prlimit64(0, resource, new, NULL) with the new limits as prebuilt structs: the same warm ctypes
# path as the calls above, where resource.setrlimit would touch pages of its own in every job.
SYS_PRLIMIT64 = 302
_LIMIT_STRUCTS = []
for _res, _soft, _hard in [
    (resource.RLIMIT_AS, MEMORY, MEMORY),
    (resource.RLIMIT_CPU, CPU_S, CPU_S + 1),
    (resource.RLIMIT_FSIZE, FSIZE, FSIZE),
    (resource.RLIMIT_NOFILE, 32, 32),
    (resource.RLIMIT_CORE, 0, 0),
] + ([] if IS_ROOT else [(resource.RLIMIT_NPROC, 0, 0)]):
    _lim = ctypes.create_string_buffer(_soft.to_bytes(8, "little") + _hard.to_bytes(8, "little"))
    _LIMIT_STRUCTS.append((_lim, (ctypes.c_long(SYS_PRLIMIT64), _UL(0), _UL(_res), _UL(ctypes.addressof(_lim)), _UL(0))))


def _failed(what):
    raise OSError("%s: errno %d" % (what, ctypes.get_errno()))


def job_main(job_fd, res_fd):
    """Body of a job process: finish the sandbox, read the job, run it, write one record, _exit."""
    out = res_fd
    try:
        try:
            _prctl(*_A_PDEATHSIG)
            if JOB_NS and PRIVATE_TMP and _mount(*_A_MOUNT_TMP) != 0:
                _failed("mount /tmp")
            req = _decode_job(_read_all(job_fd, 64 << 20))
            os.close(job_fd)
            null = os.open("/dev/null", os.O_RDWR)
            os.dup2(null, 0)
            os.dup2(null, 1)
            os.dup2(null, 2)
            if _prctl(*_A_NO_NEW_PRIVS) != 0:
                _failed("PR_SET_NO_NEW_PRIVS")
            landlock_self()
            if res_fd != 3:
                os.dup2(res_fd, 3)
                out = 3
            if _sys(*_A_CLOSE_RANGE) != 0:
                os.closerange(4, 65536)
            for _lim, args in _LIMIT_STRUCTS:
                if _sys(*args) != 0:
                    _failed("setrlimit")
            if _sys(*_A_CAPSET) != 0:
                _failed("capset")
            for args in _A_SECCOMP:
                if _prctl(*args) != 0:
                    _failed("seccomp filter rejected")
        except _BaseException as e:  # noqa: BLE001 - never run user text in a half-built sandbox
            _write_all(out, _frame(b"F", ("job setup failed: " + exc_text(e)).encode()))
            os._exit(0)
        os.write(3, b"R")
        if req["op"] == "validate":
            # Shift the allocator state by a random amount so that object addresses (id(),
            # default reprs) differ between the two validating jobs: address-dependent programs
            # are then nondeterministic instead of silently accepted. (Other ops compare nothing
            # across jobs.)
            _jitter = [(object(), [], {}, "j" * k) for k in range(os.urandom(1)[0] % 61)]
            _KEEP.append(_jitter)
        gc.enable()
        rnd = sys.modules.get("random")
        if rnd is not None:
            try:
                rnd.seed()
            except Exception:  # noqa: BLE001
                pass
        try:
            rec = OPS[req["op"]](req)
        except MemoryError:
            rec = {"status": "memory", "error": "MemoryError"}
        except RecursionError as e:
            rec = {"status": "error", "error": exc_text(e)}
        try:
            data = _encode_record(rec).encode("utf-8")
        except MemoryError:
            data = b'{"status":"memory","error":"MemoryError"}'
        _write_all(3, _len(data).to_bytes(4, "big") + data)
    finally:
        os._exit(0)


# ---------------------------------------------------------------------------------------------
# The fork server: clone one job per request, watch its deadline, reap it, report.
# ---------------------------------------------------------------------------------------------
CLONE_FLAGS = (CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWNS if JOB_NS else 0) | signal.SIGCHLD


# Built once: objects created and freed around the clone would be written by both processes.
# CLONE_PIDFD: the kernel stores a pidfd for the job in _PIDFD (no pidfd_open call).
CLONE_PIDFD = 0x00001000
_PIDFD = ctypes.c_int(-1)
_A_CLONE = (ctypes.c_long(SYS_CLONE), _UL(CLONE_FLAGS | CLONE_PIDFD), _UL(0), _UL(ctypes.addressof(_PIDFD)), _UL(0), _UL(0))
_SYSCALL_GIL = PYLIBC.syscall


class _PollFd(ctypes.Structure):
    _fields_ = [("fd", ctypes.c_int), ("events", ctypes.c_short), ("revents", ctypes.c_short)]


# poll(2) on the control socket and the newest job, built once (see main).
_PFDS = (_PollFd * 2)()
_A_POLL = (ctypes.c_long(7), _UL(ctypes.addressof(_PFDS)), _UL(2), ctypes.c_long(max(1, int(TIMEOUT_S * 1000))))


def _clone():
    return _SYSCALL_GIL(*_A_CLONE)


def _clean_tmp():
    """Without per-job mounts (fallback modes): empty the shared /tmp after each job."""

    def rm(path):
        try:
            os.chmod(path, 0o700)
        except OSError:
            pass
        for entry in os.scandir(path):
            p = entry.path
            if entry.is_dir(follow_symlinks=False):
                rm(p)
                try:
                    os.rmdir(p)
                except OSError:
                    pass
            else:
                try:
                    os.unlink(p)
                except OSError:
                    pass

    try:
        if os.listdir("/tmp"):
            rm("/tmp")
            os.chmod("/tmp", 0o1777)
    except OSError:
        pass


# Most jobs a server keeps unreaped (see main).
MAX_EXITING = 16
# The server collects cyclic garbage every this many jobs (see main).
GC_EVERY = 1024


class Live:
    __slots__ = ("rid", "pid", "pidfd", "deadline", "timed_out", "killed")

    def __init__(self, rid, pid, pidfd, deadline):
        self.rid = rid
        self.pid = pid
        self.pidfd = pidfd
        self.deadline = deadline
        self.timed_out = False
        self.killed = False


def _kill(job):
    try:
        os.kill(job.pid, signal.SIGKILL)
    except OSError:
        pass
    job.killed = True


def main():
    gc.collect()
    gc.freeze()
    # No collection may run while a job lives (it would touch, and so copy, pages all over the
    # heap); the loop collects every GC_EVERY jobs instead, and jobs re-enable it for user code.
    gc.disable()
    served = 0
    _send({"id": 0, "ev": "hello", "pid": SERVER_PID, "uid": os.getuid(), "landlock": LANDLOCK,
           "python": sys.version.split()[0]})
    # Start-up diagnostics are over: fd 2 becomes /dev/null as well.
    os.dup2(0, 2)
    poller = select.poll()
    poller.register(CTRL, select.POLLIN)
    _PFDS[0].fd = CTRL
    _PFDS[0].events = select.POLLIN
    _PFDS[1].events = select.POLLIN
    live = {}  # pidfd -> Live
    while True:
        now = time.monotonic()
        wait = -1
        for job in live.values():
            if not job.killed:
                left = job.deadline - now
                if left <= 0:
                    job.timed_out = True
                    _kill(job)
                else:
                    ms = int(left * 1000) + 1
                    wait = ms if wait < 0 else min(wait, ms)
        events = poller.poll(wait)
        for fd, _ev in events:
            if fd == CTRL:
                try:
                    msg, fds = _recv_request()
                except OSError:
                    os._exit(0)
                if not msg:
                    os._exit(0)
                if _len(fds) != 2:
                    for x in fds:
                        os.close(x)
                    os._exit(3)
                rid = int(msg[6:-1]) if msg[:6] == b'{"id":' and msg[-1:] == b"}" else json.loads(msg)["id"]
                # Whatever ran before is over: its process must not overlap the next job.
                for job in live.values():
                    if not job.killed:
                        _kill(job)
                if not JOB_NS and PRIVATE_TMP and live:
                    for job in list(live.values()):
                        os.waitid(os.P_PID, job.pid, os.WEXITED | os.WNOWAIT)
                        _finish(job, poller, live)
                    _clean_tmp()
                elif not JOB_NS and PRIVATE_TMP:
                    _clean_tmp()
                # Killed jobs that have not finished exiting yet (their teardown waits on the
                # kernel, e.g. an RCU grace period) each hold a pidfd here; a job inherits this
                # process's descriptor table, so bound them: reap the oldest first.
                while _len(live) >= MAX_EXITING:
                    _finish(next(iter(live.values())), poller, live)
                job_fd, res_fd = fds
                served += 1
                if served % GC_EVERY == 0:
                    gc.collect()
                deadline = time.monotonic() + TIMEOUT_S
                pid = _clone()
                if pid == 0:
                    job_main(job_fd, res_fd)
                    os._exit(0)  # unreachable: job_main always exits
                if pid < 0:
                    os.close(job_fd)
                    os.close(res_fd)
                    _send({"id": rid, "ev": "done", "signal": 0, "exit": -1, "timeout": False,
                           "error": "clone failed: errno %d" % ctypes.get_errno()})
                    continue
                SOCK.send(b'{"id":%d,"ev":"started","pid":%d}' % (rid, pid))
                pidfd = _PIDFD.value
                # Every page this process writes while its job lives is copied (the job still
                # shares it): wait for the job's end, the next request or the deadline first,
                # and only then do the bookkeeping (the loop's poll sees the same event again).
                _PFDS[1].fd = pidfd
                ready = _SYSCALL_GIL(*_A_POLL)
                os.close(job_fd)
                os.close(res_fd)
                if ready > 0 and _PFDS[1].revents and not _PFDS[0].revents:
                    # The common case: the job has ended and no request waits. Reap it and report
                    # here, without the bookkeeping below (every page this loop writes per job is
                    # a write fault: clone left them all write-protected).
                    _report(rid, os.waitpid(pid, 0)[1], False)
                    os.close(pidfd)
                    break
                job = Live(rid, pid, pidfd, deadline)
                live[pidfd] = job
                poller.register(pidfd, select.POLLIN)
                # Poll again: the rest of `events` may name a pidfd reaped above whose number the
                # new job's pidfd now reuses (poll is level-triggered, so nothing is lost).
                break
            elif fd in live:
                _finish(live[fd], poller, live)


_CMSG_SPACE = socket.CMSG_SPACE(2 * 4)


def _recv_request():
    """One request packet and the descriptors it carries (plain recvmsg: socket.recv_fds does
    Python-level work, and every page the server writes while a job lives is copied)."""
    msg, anc, _flags, _addr = SOCK.recvmsg(4096, _CMSG_SPACE)
    fds = []
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            for i in range(0, _len(data) - _len(data) % 4, 4):
                fds.append(int.from_bytes(data[i : i + 4], sys.byteorder, signed=True))
    return msg, fds


def _finish(job, poller, live):
    """Reap a job that ended and report it."""
    try:
        _, status = os.waitpid(job.pid, 0)
    except ChildProcessError:
        status = 0
    poller.unregister(job.pidfd)
    os.close(job.pidfd)
    del live[job.pidfd]
    _report(job.rid, status, job.timed_out)


def _report(rid, status, timed_out):
    """Send `done` for a reaped job from its wait status."""
    sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0
    code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else -1
    SOCK.send(b'{"id":%d,"ev":"done","signal":%d,"exit":%d,"timeout":%s}' % (rid, sig, code, b"true" if timed_out else b"false"))


main()
