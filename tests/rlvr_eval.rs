//! Math benchmark scoring on hand-written responses, with the one math grader (the math task
//! type: the last `\boxed{}` of a response, compared by `math_grader::is_equiv`, as the training
//! reward and the evaluator grade): greedy accuracy, avg@k and the six-benchmark average,
//! checked against hand-computed values.
//!
//! Run: `cargo test --release -p azr-core --test rlvr_eval`

use std::sync::Arc;

use azr_core::data::{load_math, MathSet};
use azr_core::eval::{
    avg_at_k, benchmark_name, pass_at_k, six_average, BenchmarkScore, EvalSettings, SIX_BENCHMARKS,
};
use azr_core::tasks::math::Math;
use azr_core::tasks::{math_grader, TaskType, TemplateSet};

/// Whether `response` answers `reference` correctly under the `paper` template set's math type.
fn grade(math: &Math, response: &str, reference: &str) -> bool {
    math.parse_answer(response)
        .is_ok_and(|a| math_grader::is_equiv(&a.text, reference))
}

fn paper_math() -> Math {
    Math::new(Arc::new(TemplateSet::resolve("paper").unwrap())).unwrap()
}

#[test]
fn boxed_answers_are_graded_by_value() {
    let m = paper_math();
    assert!(grade(&m, "so the answer is \\boxed{12.8}.", "12.8"));
    assert!(grade(&m, "\\boxed{1} then \\boxed{12.80}", "12.8"));
    assert!(!grade(&m, "\\boxed{12.9}", "12.8"));
    // No box, or an empty one, is no answer.
    assert!(!grade(&m, "12.8", "12.8"));
    assert!(!grade(&m, "\\boxed{}", "12.8"));
}

#[test]
fn avg_at_k_by_hand() {
    // Items: 3/4, 0/4, 4/4, 1/4 -> (0.75 + 0 + 1 + 0.25) / 4 = 0.5.
    let graded = vec![
        vec![true, true, false, true],
        vec![false; 4],
        vec![true; 4],
        vec![false, false, true, false],
    ];
    assert!((avg_at_k(&graded) - 0.5).abs() < 1e-12);
    assert_eq!(avg_at_k(&[]), 0.0);
    // pass@4: items 1, 3 and 4 have a correct sample -> 3 / 4; greedy (one sample) is accuracy.
    assert_eq!(pass_at_k(&graded), 0.75);
    assert_eq!(pass_at_k(&[]), 0.0);
    assert_eq!(pass_at_k(&[vec![true], vec![false]]), 0.5);
    let s =
        BenchmarkScore::from_graded("aime24", &graded, &EvalSettings::sampled(4, 0.6, 16)).unwrap();
    assert_eq!((s.items, s.samples, s.correct), (4, 4, 8));
    assert!((s.accuracy - 0.5).abs() < 1e-12);
    // A wrong sample count is an error, and greedy scoring wants exactly one sample per item.
    assert!(BenchmarkScore::from_graded("x", &graded, &EvalSettings::sampled(8, 0.6, 16)).is_err());
    assert!(BenchmarkScore::from_graded("x", &graded, &EvalSettings::greedy(16)).is_err());
}

#[test]
fn avg_at_8_of_written_responses() {
    // Two AMC-style items, eight responses each, graded by the math task type.
    let references = ["27", "\\frac{3}{4}"];
    let r = |s: &str| s.to_string();
    let item1 = [
        r("\\boxed{27}"),
        r("so \\boxed{27.0}"),
        r("\\boxed{26}"),
        r("27"),
        r("\\boxed{ 27 }"),
        r("\\boxed{28}"),
        r("\\boxed{27}<|im_end|>"),
        r("\\boxed{27} or \\boxed{72}"),
    ];
    // correct: 0, 1, 4, 6 -> 4/8 (an unboxed 27 is no answer; the last box counts).
    let item2 = [
        r("\\boxed{0.75}"),
        r("\\boxed{3/4}"),
        r("\\boxed{\\frac34}"),
        r("\\boxed{\\dfrac{3}{4}}"),
        r("\\boxed{4/3}"),
        r("none"),
        r("\\boxed{}"),
        r("\\boxed{\\frac{6}{8}}"),
    ];
    let m = paper_math();
    let graded1: Vec<bool> = item1.iter().map(|t| grade(&m, t, references[0])).collect();
    assert_eq!(
        graded1,
        [true, true, false, false, true, false, true, false],
        "{item1:?}"
    );
    let graded2: Vec<bool> = item2.iter().map(|t| grade(&m, t, references[1])).collect();
    let n2 = graded2.iter().filter(|&&c| c).count();
    // 0.75, 3/4, \frac34, \dfrac{3}{4} are equal to 3/4; 4/3, no answer, empty box are not.
    assert!(graded2[..4].iter().all(|&c| c), "{graded2:?}");
    assert!(!graded2[4] && !graded2[5] && !graded2[6], "{graded2:?}");
    let s = BenchmarkScore::from_graded(
        "amc23",
        &[graded1, graded2],
        &EvalSettings::paper(MathSet::Amc23),
    )
    .unwrap();
    assert_eq!(s.samples, 8);
    assert_eq!(s.correct, 4 + n2);
    assert!((s.accuracy - (4.0 / 8.0 + n2 as f64 / 8.0) / 2.0).abs() < 1e-12);
    assert_eq!(s.temperature, 0.6);
}

#[test]
fn six_benchmark_average_and_paper_settings() {
    let accs = [0.736, 0.167, 0.108, 0.538, 0.235, 0.357];
    let names: Vec<&str> = SIX_BENCHMARKS.iter().map(|s| benchmark_name(*s)).collect();
    // Paper Table 8, pi_13 row: mean of the six = 2.141 / 6 = 0.35683.
    let avg = six_average(names.iter().copied().zip(accs)).unwrap();
    assert!((avg - 2.141 / 6.0).abs() < 1e-12);
    // Config names (`minerva`) count as well as file stems (`minerva_math`); other sets do not.
    let mut by_name: Vec<(&str, f64)> = SIX_BENCHMARKS.iter().map(|s| s.name()).zip(accs).collect();
    by_name.push(("gsm8k", 1.0));
    assert!((six_average(by_name.iter().copied()).unwrap() - 2.141 / 6.0).abs() < 1e-12);
    assert_eq!(six_average(names[1..].iter().copied().zip(accs)), None);
    assert_eq!(benchmark_name(MathSet::Minerva), "minerva_math");
    for set in MathSet::ALL {
        assert!(azr_core::metrics::BENCHMARKS.contains(&benchmark_name(set)));
    }
    let aime = EvalSettings::paper(MathSet::Aime25);
    assert_eq!((aime.samples, aime.temperature), (8, 0.6));
    let m = EvalSettings::paper(MathSet::Math500);
    assert!(m.is_greedy());
    assert_eq!(m.effective_samples(), 1);
}

#[test]
fn shipped_benchmarks_load_with_references() {
    let dir = std::path::Path::new(azr_core::data::math::DEFAULT_DIR);
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
        let items = load_math(set, dir).unwrap();
        assert_eq!(items.len(), n, "{set:?}");
        // A response boxing the reference answer is graded correct on every item.
        let m = paper_math();
        let wrong: Vec<_> = items
            .iter()
            .filter(|p| !grade(&m, &format!("\\boxed{{{}}}", p.answer), &p.answer))
            .map(|p| p.id.clone())
            .collect();
        assert!(wrong.is_empty(), "{set:?}: {wrong:?}");
    }
}
