//! Benchmark loaders on the real files in `../shared/data` (counts as in its README).
//!
//! Run: `cargo test --release -p azr-core --test tasks_data`

use azr_core::data::{cruxeval, load_cruxeval, load_math, MathSet};
use azr_core::types::TaskKind;

#[test]
fn cruxeval_loads_800_items_as_both_tasks() {
    let items = load_cruxeval(cruxeval::DEFAULT_PATH).expect("cruxeval loads");
    assert_eq!(items.len(), 800);
    let first = &items[0];
    assert_eq!(first.id, "sample_0");
    assert_eq!(first.input, "[1, 1, 3, 1, 3, 1]");
    assert_eq!(
        first.output,
        "[(4, 1), (4, 1), (4, 1), (4, 1), (2, 3), (2, 3)]"
    );
    assert!(first.code.starts_with("def f(nums):"));
    let d = first.deduction_task();
    let a = first.abduction_task();
    assert_eq!(d.kind, TaskKind::Deduction);
    assert_eq!(a.kind, TaskKind::Abduction);
    assert_eq!(d.pairs.len(), 1);
    assert_eq!(d.pairs[0].output, first.output);
    assert_eq!(d.provenance.id.as_deref(), Some("sample_0"));
    assert!(items.iter().all(|i| i.code.contains("def f(")));
    let ids: std::collections::HashSet<_> = items.iter().map(|i| &i.id).collect();
    assert_eq!(ids.len(), 800);
}

#[test]
fn math_sets_load_with_readme_counts_and_answers() {
    let dir = azr_core::data::math::DEFAULT_DIR;
    let expected = [
        (MathSet::Math500, 500),
        (MathSet::Aime24, 30),
        (MathSet::Aime25, 30),
        (MathSet::Amc23, 40),
        (MathSet::Minerva, 272),
        (MathSet::OlympiadBench, 675),
        (MathSet::Gsm8k, 1319),
    ];
    for (set, n) in expected {
        let items = load_math(set, dir).unwrap_or_else(|e| panic!("{set:?}: {e}"));
        assert_eq!(items.len(), n, "{set:?}");
        assert!(
            items
                .iter()
                .all(|p| !p.problem.trim().is_empty() && !p.answer.trim().is_empty()),
            "{set:?} has an empty problem or answer"
        );
        let t = items[0].task();
        assert_eq!(t.kind, TaskKind::Math);
        assert_eq!(t.answer, items[0].answer);
    }
}

#[test]
fn math_answers_are_normalised_per_format() {
    let dir = azr_core::data::math::DEFAULT_DIR;
    let math500 = load_math(MathSet::Math500, dir).unwrap();
    assert_eq!(math500[0].answer, "\\left( 3, \\frac{\\pi}{2} \\right)");
    let aime25 = load_math(MathSet::Aime25, dir).unwrap();
    assert_eq!(aime25[0].answer, "70");
    let amc = load_math(MathSet::Amc23, dir).unwrap();
    assert_eq!(amc[0].answer, "27"); // stored as the float 27.0
    let gsm = load_math(MathSet::Gsm8k, dir).unwrap();
    assert_eq!(gsm[0].answer, "18"); // "... #### 18"
    assert!(gsm
        .iter()
        .all(|p| !p.answer.contains("####") && !p.answer.contains(',')));
    let oly = load_math(MathSet::OlympiadBench, dir).unwrap();
    assert_eq!(oly[0].answer, "2");
    assert_eq!(oly[1].answer, "\\frac{1}{2 n+2}"); // `$...$` removed
    let minerva = load_math(MathSet::Minerva, dir).unwrap();
    // The answer is the last \boxed{} of the first solution.
    assert!(!minerva[0].answer.contains("\\boxed"));
    assert!(
        minerva[0].answer.starts_with("1.6"),
        "{}",
        minerva[0].answer
    );
}

#[test]
fn math_set_names_round_trip() {
    for set in MathSet::ALL {
        assert_eq!(set.name().parse::<MathSet>().unwrap(), set);
    }
    assert_eq!("minerva_math".parse::<MathSet>().unwrap(), MathSet::Minerva);
    assert!("nope".parse::<MathSet>().is_err());
}

#[test]
fn missing_file_is_an_io_error() {
    let err = load_math(MathSet::Aime24, "/nonexistent-dir").unwrap_err();
    assert!(matches!(err, azr_core::data::DataError::Io { .. }), "{err}");
}
