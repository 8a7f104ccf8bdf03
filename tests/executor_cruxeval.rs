//! CRUXEval as an oracle: running each of the 800 programs on its input in the sandbox must
//! reproduce the published output, compared as values (`parse_literal` + `same_as`).
//!
//! Run: `cargo test --release -p azr-core --test executor_cruxeval -- --nocapture`
//! (about 5-10 s on 2 cores).

use azr_core::executor::{ExecJob, ExecStatus, Executor, ExecutorConfig};
use serde::Deserialize;
use std::path::Path;

#[derive(Deserialize)]
struct Item {
    code: String,
    input: String,
    output: String,
    id: String,
}

#[test]
fn cruxeval_outputs_are_reproduced() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/cruxeval/cruxeval.jsonl");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let items: Vec<Item> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(items.len(), 800);
    let ex = Executor::start(ExecutorConfig::default()).expect("executor starts");
    let t0 = std::time::Instant::now();
    let jobs: Vec<ExecJob> = items
        .iter()
        .map(|it| ExecJob {
            code: it.code.clone(),
            input: it.input.clone(),
        })
        .collect();
    // CRUXEval inputs are written by the dataset authors and 12 of them are expressions
    // (`dict(a=1)`, `''.join(...)`, a global of the program): evaluate them in the sandbox.
    let outs = ex.run_many_trusted(&jobs);
    let mut failures = Vec::new();
    for (it, o) in items.iter().zip(&outs) {
        if o.status != ExecStatus::Ok {
            failures.push(format!(
                "{}: {} {}",
                it.id,
                o.status.as_str(),
                o.error.clone().unwrap_or_default()
            ));
            continue;
        }
        match ex.parse_literal(&it.output) {
            Ok(gold) if gold.same_as(o.value.as_ref().unwrap()) => {}
            Ok(_) => failures.push(format!(
                "{}: got {} want {}",
                it.id,
                o.repr.clone().unwrap_or_default(),
                it.output
            )),
            Err(e) => failures.push(format!("{}: published output does not parse: {e}", it.id)),
        }
    }
    eprintln!(
        "cruxeval: {} / {} reproduced in {:.1} s",
        items.len() - failures.len(),
        items.len(),
        t0.elapsed().as_secs_f64()
    );
    for f in &failures {
        eprintln!("  {f}");
    }
    assert!(
        failures.is_empty(),
        "{} items not reproduced",
        failures.len()
    );
    // With literal-only inputs (solver mode) exactly those 12 expression inputs are refused.
    let literal = ex.run_many(&jobs);
    let refused: Vec<&str> = items
        .iter()
        .zip(&literal)
        .filter(|(_, o)| o.status == ExecStatus::Invalid)
        .map(|(it, _)| it.id.as_str())
        .collect();
    assert_eq!(refused.len(), 12, "{refused:?}");
    assert!(literal
        .iter()
        .all(|o| matches!(o.status, ExecStatus::Ok | ExecStatus::Invalid)));
    // Every accepted literal input (those that are also JSON take the worker's JSON fast path)
    // gives the value the trusted path gave.
    let mut differ = Vec::new();
    for ((it, lit), trusted) in items.iter().zip(&literal).zip(&outs) {
        if lit.status == ExecStatus::Ok && lit.repr != trusted.repr {
            differ.push(format!("{}: {:?} vs {:?}", it.id, lit.repr, trusted.repr));
        }
    }
    assert!(differ.is_empty(), "{differ:?}");
}
