//! Executor API: run / validate / parse_literal / same_as on ordinary programs, the JSON
//! front ends, and the reward-hack cases (which must score as wrong or unsupported).
//!
//! Run: `cargo test --release -p azr-core --test executor_api`

use azr_core::executor::{
    batch_from_jsonl, exec_one_json, ExecJob, ExecStatus, Executor, ExecutorConfig, PyValue,
};
use std::sync::OnceLock;

fn ex() -> &'static Executor {
    static EX: OnceLock<Executor> = OnceLock::new();
    EX.get_or_init(|| {
        Executor::start(ExecutorConfig::default()).expect("executor starts with full isolation")
    })
}

/// An executor with no banned modules, to reach the runtime determinism check.
fn permissive() -> &'static Executor {
    static EX: OnceLock<Executor> = OnceLock::new();
    EX.get_or_init(|| {
        let cfg = ExecutorConfig {
            banned_modules: vec![],
            workers: 1,
            ..ExecutorConfig::default()
        };
        Executor::start(cfg).expect("executor starts")
    })
}

fn int(s: &str) -> PyValue {
    PyValue::Int(s.to_string())
}

fn s(x: &str) -> PyValue {
    PyValue::Str(x.to_string())
}

#[test]
fn isolation_is_complete_here() {
    let iso = ex().isolation();
    eprintln!("{iso:?}");
    assert!(
        iso.missing().is_empty(),
        "missing layers: {:?}",
        iso.missing()
    );
    assert!(iso.private_tmp);
}

#[test]
fn run_returns_canonical_value_and_repr() {
    let o = ex().run(
        "def f(a, b):\n    return [a * 2, (b, None), {'k': {1, 2}}]\n",
        "21, 'x'",
    );
    assert_eq!(o.status, ExecStatus::Ok, "{o:?}");
    assert_eq!(o.repr.as_deref(), Some("[42, ('x', None), {'k': {1, 2}}]"));
    let want = PyValue::List(vec![
        int("42"),
        PyValue::Tuple(vec![s("x"), PyValue::None]),
        PyValue::Dict(vec![(s("k"), PyValue::Set(vec![int("2"), int("1")]))]),
    ]);
    assert!(o.value.as_ref().unwrap().same_as(&want));
    assert!(o.error.is_none());
}

#[test]
fn run_handles_keywords_bytes_big_ints_and_special_floats() {
    let o = ex().run("def f(b, n=0):\n    return (b[::-1], 2**100 + n, float('inf'), float('nan'), -0.0, 1e300)\n", "b'ab\\x00', n=1");
    assert_eq!(o.status, ExecStatus::Ok, "{o:?}");
    assert_eq!(
        o.repr.as_deref(),
        Some("(b'\\x00ba', 1267650600228229401496703205377, inf, nan, -0.0, 1e+300)")
    );
    let PyValue::Tuple(items) = o.value.unwrap() else {
        panic!("tuple expected")
    };
    assert!(matches!(&items[0], PyValue::Bytes(b) if b == &vec![0, b'b', b'a']));
    assert!(matches!(&items[1], PyValue::Int(t) if t == "1267650600228229401496703205377"));
    assert!(matches!(items[2], PyValue::Float(x) if x == f64::INFINITY));
    assert!(matches!(items[3], PyValue::Float(x) if x.is_nan()));
    assert!(matches!(items[4], PyValue::Float(x) if x == 0.0 && x.is_sign_negative()));
    assert!(matches!(items[5], PyValue::Float(x) if x == 1e300));
}

#[test]
fn run_reports_exceptions_with_type_and_message() {
    let o = ex().run("def f(x):\n    raise ValueError('boom ' + x)\n", "'now'");
    assert_eq!(o.status, ExecStatus::Error);
    assert_eq!(o.error.as_deref(), Some("ValueError: boom now"));
    let o = ex().run("def g(x):\n    return x\n", "1");
    assert_eq!(o.status, ExecStatus::Error);
    assert!(o.error.unwrap().contains("does not define"));
    let o = ex().run("def f(x) return x", "1");
    assert_eq!(o.status, ExecStatus::Error);
    assert!(o.error.unwrap().starts_with("SyntaxError"));
}

#[test]
fn run_rejects_non_literal_inputs() {
    let code = "def f(x):\n    return x * 2\n";
    for input in [
        "4) or (True",
        "__import__('os').getpid()",
        "1, *[2]",
        "**{'x': 1}",
        "x",
        "1)(2",
        "[i for i in range(3)]",
        "(lambda: 1)()",
    ] {
        let o = ex().run(code, input);
        assert_eq!(o.status, ExecStatus::Invalid, "input {input:?} gave {o:?}");
    }
}

#[test]
fn validate_accepts_good_programs_and_returns_gold() {
    let o = ex().validate(
        "import collections\ndef f(s):\n    return sorted(collections.Counter(s).items())\n",
        "'abracadabra'",
    );
    assert_eq!(o.status, ExecStatus::Ok, "{o:?}");
    assert_eq!(
        o.repr.as_deref(),
        Some("[('a', 5), ('b', 2), ('c', 1), ('d', 1), ('r', 2)]")
    );
    let o = ex().validate(
        "def f(words):\n    return list(set(words))\n",
        "['apple', 'banana', 'cherry', 'date']",
    );
    assert_eq!(
        o.status,
        ExecStatus::Ok,
        "hash order is fixed (PYTHONHASHSEED=0): {o:?}"
    );
}

#[test]
fn validate_rejects_bad_programs_with_reasons() {
    let cases: &[(&str, &str, &str)] = &[
        ("def f(x) return x", "1", "syntax error"),
        ("def g(x):\n    return x\n", "1", "does not define"),
        (
            "import os\ndef f(x):\n    return x\n",
            "1",
            "banned import: os",
        ),
        (
            "from os import path\ndef f(x):\n    return x\n",
            "1",
            "banned import: os",
        ),
        (
            "import os.path\ndef f(x):\n    return x\n",
            "1",
            "banned import: os.path",
        ),
        (
            "import random\ndef f(x):\n    return random.random()\n",
            "1",
            "banned import: random",
        ),
        (
            "def f(x):\n    return __import__('ran' + 'dom').random()\n",
            "1",
            "banned name: __import__",
        ),
        (
            "def f(x):\n    return eval('1')\n",
            "1",
            "banned name: eval",
        ),
        (
            "def f(x):\n    return ().__class__.__bases__\n",
            "1",
            "banned attribute: __bases__",
        ),
        ("def f(x):\n    return x\n", "4) or (True", "input"),
        ("def f(x):\n    return x\n", "dict(a=1)", "input"),
        (
            "def f(x):\n    raise Exception('x')\n",
            "1",
            "raised Exception: x",
        ),
        (
            "def f(x):\n    raise StopIteration\n",
            "1",
            "raised StopIteration",
        ),
        (
            "def f(x):\n    raise KeyboardInterrupt\n",
            "1",
            "raised KeyboardInterrupt",
        ),
        (
            "def f(x):\n    raise SystemExit(0)\n",
            "1",
            "raised SystemExit",
        ),
        (
            "def f(x):\n    raise GeneratorExit\n",
            "1",
            "raised GeneratorExit",
        ),
        (
            "class E(BaseException):\n    pass\ndef f(x):\n    raise E('custom')\n",
            "1",
            "raised E: custom",
        ),
        (
            "def f(x, seen=[]):\n    seen.append(x)\n    return len(seen)\n",
            "1",
            "nondeterministic",
        ),
        (
            "def f(x):\n    return id(object())\n",
            "1",
            "nondeterministic",
        ),
    ];
    for (code, input, reason) in cases {
        let o = ex().validate(code, input);
        assert_eq!(o.status, ExecStatus::Invalid, "{code:?} {input:?} -> {o:?}");
        let err = o.error.clone().unwrap_or_default();
        assert!(
            err.contains(reason),
            "{code:?}: expected {reason:?} in {err:?}"
        );
        assert!(o.value.is_none());
    }
    // Failing statuses that are not exceptions are kept as they are.
    let o = ex().validate("def f(x):\n    return (i for i in x)\n", "[1]");
    assert_eq!(o.status, ExecStatus::UnsupportedType);
}

#[test]
fn validate_catches_runtime_nondeterminism_across_processes() {
    let o = permissive().validate(
        "import random\ndef f(x):\n    return random.random()\n",
        "1",
    );
    assert_eq!(o.status, ExecStatus::Invalid, "{o:?}");
    assert!(o.error.unwrap().contains("nondeterministic"));
    let o = permissive().validate("import time\ndef f(x):\n    return time.time()\n", "1");
    assert_eq!(o.status, ExecStatus::Invalid);
    let o = permissive().validate("import os\ndef f(x):\n    return os.urandom(4)\n", "1");
    assert_eq!(o.status, ExecStatus::Invalid);
    let o = permissive().validate(
        "import math\ndef f(x):\n    return math.factorial(x)\n",
        "20",
    );
    assert_eq!(o.status, ExecStatus::Ok);
    assert!(o.value.unwrap().same_as(&int("2432902008176640000")));
}

/// Inputs that are also JSON take the worker's JSON fast path; each must give exactly what the
/// `ast.literal_eval` path gives for the same text (forced there by a trailing comma, which
/// JSON does not allow): the program reports the repr and the type of every argument.
#[test]
fn json_shaped_inputs_have_literal_eval_semantics() {
    let code = "def f(*a):\n    return [repr(a), [type(x).__name__ for x in a]]\n";
    for input in [
        "1",
        "-0",
        "1.5",
        "-0.0",
        "1e5",
        "1E400",
        "-1e-400",
        "123456789012345678901234567890",
        "[1, [2, [3]]]",
        "{\"a\": 1, \"b\": [1.0], \"a\": 3}",
        "\"x y\"",
        "\"\u{e9}\u{1F600}\"",
        "[]",
        "{}",
        "1, 2, 3",
        "  7  ",
        "[\n1,\n2\n]",
        "\"a\tb\"",
        "[\"true\", \"null\"]",
        &("[".repeat(80) + &"]".repeat(80)),
    ] {
        let fast = ex().run(code, input);
        let slow = ex().run(code, &format!("{input},"));
        assert_eq!(
            fast.status, slow.status,
            "input {input:?}: {fast:?} vs {slow:?}"
        );
        assert_eq!(fast.repr, slow.repr, "input {input:?}");
        assert_eq!(fast.status, ExecStatus::Ok, "input {input:?}: {fast:?}");
    }
    let none = ex().run(code, "");
    assert_eq!(none.repr.as_deref(), Some("['()', []]"), "{none:?}");
    // Texts that JSON reads differently from Python give what ast.literal_eval gives.
    for input in [
        "true",
        "[null]",
        "NaN",
        "-Infinity",
        "[1] + [2]",
        "01",
        "\"a\\/b\"",
    ] {
        let o = ex().run(code, input);
        let via_ast = ex().run(code, &format!("{input},"));
        assert_eq!(
            o.status, via_ast.status,
            "input {input:?}: {o:?} vs {via_ast:?}"
        );
        assert_eq!(o.repr, via_ast.repr, "input {input:?}");
    }
    let huge = "7".repeat(5000);
    assert_eq!(ex().run(code, &huge).status, ExecStatus::Invalid);
}

#[test]
fn parse_literal_has_literal_eval_semantics() {
    let e = ex();
    assert!(e
        .parse_literal("[1, (2, 'a'), {'k': None}]")
        .unwrap()
        .same_as(&PyValue::List(vec![
            int("1"),
            PyValue::Tuple(vec![int("2"), s("a")]),
            PyValue::Dict(vec![(s("k"), PyValue::None)]),
        ])));
    assert!(e
        .parse_literal("1, 2")
        .unwrap()
        .same_as(&PyValue::Tuple(vec![int("1"), int("2")])));
    assert!(e.parse_literal("  -0x10 ").unwrap().same_as(&int("-16")));
    assert!(e
        .parse_literal("set()")
        .unwrap()
        .same_as(&PyValue::Set(vec![])));
    assert!(e.parse_literal("'a' 'b'").unwrap().same_as(&s("ab")));
    assert!(e
        .parse_literal("'\\N{BULLET}'")
        .unwrap()
        .same_as(&s("\u{2022}")));
    assert!(e
        .parse_literal("1_000.5e1")
        .unwrap()
        .same_as(&PyValue::Float(10005.0)));
    for bad in [
        "x",
        "1 +",
        "f(1)",
        "__import__('os')",
        "[1, 2",
        "1+2j",
        "inf",
        "type('A',(),{'__eq__':lambda s,o:True})()",
        "4) or (True",
    ] {
        assert!(e.parse_literal(bad).is_err(), "{bad:?} must not parse");
    }
    let deep = "[".repeat(100_000) + &"]".repeat(100_000);
    assert!(e.parse_literal(&deep).is_err());
    let deep_neg = "-".repeat(60_000) + "1";
    // CPython's parser gives up with MemoryError here; it happens in the sandboxed child.
    assert!(e.parse_literal(&deep_neg).is_err());
    assert!(e
        .parse_literal(&"9".repeat(70_000))
        .unwrap_err()
        .contains("larger than"));
    // The executor still works afterwards.
    assert!(e.parse_literal("7").unwrap().same_as(&int("7")));
}

#[test]
fn reward_hacks_score_as_wrong() {
    let e = ex();
    let code = "def f(x):\n    return x * 2\n";
    let gold = e.run(code, "5").value.unwrap();
    // Abduction injection: the predicted input is parsed as argument literals, never spliced.
    assert_eq!(e.run(code, "4) or (True").status, ExecStatus::Invalid);
    // Deduction with an always-equal object: it is not a literal.
    assert!(e
        .parse_literal("type('A',(),{'__eq__':lambda s,o:True})()")
        .is_err());
    // Induction: the solver's f returns an always-equal object (or one whose __eq__ returns code).
    let always = "class A:\n    def __eq__(self, o):\n        return True\n    __hash__ = object.__hash__\ndef f(x):\n    return A()\n";
    assert_eq!(e.run(always, "5").status, ExecStatus::UnsupportedType);
    let sneaky = "class S(int):\n    def __eq__(self, o):\n        return \"__import__('os').system('touch /tmp/pwn') and 1\"\ndef f(x):\n    return S(10)\n";
    assert_eq!(e.run(sneaky, "5").status, ExecStatus::UnsupportedType);
    let sub_list = "class L(list):\n    def __eq__(self, o):\n        return True\ndef f(x):\n    return L()\n";
    assert_eq!(e.run(sub_list, "5").status, ExecStatus::UnsupportedType);
    // The honest answer matches, a wrong one does not, types matter where Python says so.
    assert!(e.parse_literal("10").unwrap().same_as(&gold));
    assert!(e.parse_literal("10.0").unwrap().same_as(&gold));
    assert!(!e.parse_literal("'10'").unwrap().same_as(&gold));
    assert!(!e.parse_literal("[10]").unwrap().same_as(&gold));
    assert!(!std::path::Path::new("/tmp/pwn").exists());
}

#[test]
fn run_many_keeps_order() {
    let jobs: Vec<ExecJob> = (0..40)
        .map(|i| ExecJob {
            code: "def f(x):\n    return x * x\n".into(),
            input: i.to_string(),
        })
        .collect();
    let outs = ex().run_many(&jobs);
    assert_eq!(outs.len(), 40);
    for (i, o) in outs.iter().enumerate() {
        assert!(
            o.value
                .as_ref()
                .unwrap()
                .same_as(&int(&(i * i).to_string())),
            "{i}: {o:?}"
        );
    }
}

#[test]
fn json_front_ends() {
    let line = exec_one_json(ex(), "def f(x):\n    return [x, None]\n", "1.5");
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["status"], "ok");
    assert_eq!(v["repr"], "[1.5, None]");
    assert_eq!(v["value"]["t"], "list");
    assert!(v["error"].is_null());
    assert!(v["millis"].as_f64().unwrap() > 0.0);

    let input = concat!(
        "{\"code\": \"def f(x):\\n    return x + 1\\n\", \"input\": \"1\"}\n",
        "not json\n",
        "\n",
        "{\"code\": \"def f(x):\\n    while True: pass\\n\", \"input\": \"1\"}\n",
        "{\"code\": \"def f(x):\\n    return float('inf')\\n\", \"input\": \"1\"}\n",
        "{\"code\": \"def f(x):\\n    return x\\n\", \"input\": \"dict(a=1)\", \"eval_input\": true}\n",
        "{\"code\": \"def f(x):\\n    return x\\n\", \"input\": \"dict(a=1)\"}\n",
    );
    let cfg = ExecutorConfig {
        timeout_ms: 1000,
        ..ExecutorConfig::default()
    };
    let short = Executor::start(cfg).unwrap();
    let mut out = Vec::new();
    let summary = batch_from_jsonl(input.as_bytes(), &mut out, &short).unwrap();
    assert_eq!(summary.lines, 6);
    assert_eq!(summary.ok, 3);
    let lines: Vec<serde_json::Value> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let statuses: Vec<&str> = lines
        .iter()
        .map(|l| l["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["ok", "invalid", "timeout", "ok", "ok", "invalid"]
    );
    assert_eq!(lines[4]["repr"], "{'a': 1}");
    assert_eq!(lines[0]["value"]["v"], "2");
    assert_eq!(lines[3]["value"]["v"], "inf");
}

#[test]
fn run_trusted_evaluates_inputs_in_the_program_namespace() {
    let code = "K = [1, 2]\ndef f(a, b):\n    return a + b\n";
    let o = ex().run_trusted(code, "K[:], [len('abc')]");
    assert_eq!(o.repr.as_deref(), Some("[1, 2, 3]"), "{o:?}");
    // Still exactly one call of f: no smuggling a second expression.
    assert_eq!(
        ex().run_trusted(code, "1, 2) or (True").status,
        ExecStatus::Invalid
    );
    // Still sandboxed.
    let o = ex().run_trusted("def f(x):\n    return x\n", "__import__('os').listdir('/')");
    assert_eq!(o.status, ExecStatus::Ok);
    assert!(!o.repr.unwrap().contains("etc"));
}
