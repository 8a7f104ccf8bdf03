//! Executor API: run / validate / parse_literal / same_as on ordinary programs, the JSON
//! front ends, and the reward-hack cases (which must score as wrong or unsupported).

use azr_core::executor::{batch_from_jsonl, exec_one_json, ExecStatus, Executor, ExecutorConfig, PyValue};
use std::sync::OnceLock;

fn ex() -> &'static Executor {
    static EX: OnceLock<Executor> = OnceLock::new();
    EX.get_or_init(|| Executor::start(ExecutorConfig::default()).expect("executor starts with full isolation"))
}

fn int(s: &str) -> PyValue {
    PyValue::Int(s.to_string())
}

#[test]
fn isolation_is_complete_here() {
    let iso = ex().isolation();
    eprintln!("{iso:?}");
    assert!(iso.missing().is_empty(), "missing layers: {:?}", iso.missing());
}

#[test]
fn run_returns_canonical_value_and_repr() {
    let o = ex().run("def f(a, b):\n    return [a * 2, (b, None), {'k': {1, 2}}]\n", "21, 'x'");
    assert_eq!(o.status, ExecStatus::Ok, "{o:?}");
    assert_eq!(o.repr.as_deref(), Some("[42, ('x', None), {'k': {1, 2}}]"));
    let want = PyValue::List(vec![
        int("42"),
        PyValue::Tuple(vec![PyValue::Str("x".into()), PyValue::None]),
        PyValue::Dict(vec![(PyValue::Str("k".into()), PyValue::Set(vec![int("2"), int("1")]))]),
    ]);
    assert!(o.value.as_ref().unwrap().same_as(&want));
}
