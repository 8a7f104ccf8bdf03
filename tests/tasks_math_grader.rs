//! The math answer grader on equivalent and non-equivalent pairs, many taken from real
//! MATH500 / AMC23 / OlympiadBench / Minerva reference answers (`../shared/data/math`).
//!
//! Run: `cargo test --release -p azr-core --test tasks_math_grader`

use azr_core::tasks::math_grader::is_equiv;

/// (model answer, reference answer) pairs that must be judged equivalent.
const EQUIVALENT: &[(&str, &str)] = &[
    // Fractions, decimals, division.
    ("0.5", "\\frac{1}{2}"),
    ("1/2", "\\frac{1}{2}"),
    ("\\dfrac{1}{2}", "0.5"),
    ("\\frac12", "1/2"),
    ("0.34", "\\dfrac{17}{50}"),        // MATH500 `\dfrac{17}{50}`
    ("\\frac{14}{3}", "\\frac{14}{3}"), // MATH500
    ("14/3", "\\frac{14}{3}"),
    ("0.35625", ".35625"),                // MATH500 `.35625`
    ("6.72 \\times 10^{-5}", ".0000672"), // MATH500 `.0000672`
    ("\\frac{3}{56}", "\\frac{3}{56}"),
    // Integers, signs, thousands separators, AMC floats.
    ("27", "27"),        // AMC23 answer 27.0 (loader gives "27")
    ("-9", "-9"),        // MATH500
    ("58500", "58,500"), // MATH500 `58,500`
    ("1,000,000", "1000000"),
    ("\\$18", "18"),
    ("18.00", "18"),
    // Radicals and pi.
    ("\\sqrt{51}", "\\sqrt{51}"), // MATH500
    ("\\sqrt51", "\\sqrt{51}"),
    ("\\frac{\\sqrt{21}}{5}", "\\frac{1}{5}\\sqrt{21}"), // MATH500 `\frac{\sqrt{21}}{5}`
    ("2\\sqrt{2}", "\\sqrt{8}"),
    ("288\\pi", "288 \\pi"), // MATH500 `288 \pi`
    ("\\pi \\cdot 288", "288\\pi"),
    ("8 \\sqrt{2}", "$8 \\sqrt{2}$"),    // OlympiadBench style
    ("1024-256\\pi", "$1024-256 \\pi$"), // OlympiadBench
    ("2^{10}", "1024"),
    // Units, degrees, text.
    ("90", "90^\\circ"), // MATH500 `90^\circ`
    ("145^{\\circ}", "145^\\circ"),
    ("\\frac{270}{7}", "\\frac{270}7\\text{ degrees}"), // MATH500
    ("10 \\text{ cm}", "10"),
    ("Evelyn", "\\text{Evelyn}"), // MATH500
    ("\\text{(C)}", "C"),         // MATH500 `\text{(C)}`
    ("50\\%", "50"),
    // Tuples, intervals, sets, matrices.
    (
        "(3, \\frac{\\pi}{2})",
        "\\left( 3, \\frac{\\pi}{2} \\right)",
    ), // MATH500
    ("(6, 31, -1)", "(6,31,-1)"), // MATH500
    ("(-\\sqrt{3}, \\sqrt{3})", "(-\\sqrt{3}, \\sqrt{3})"),
    ("(3, 4]", "(3,4]"),               // MATH500
    ("[-2, 7]", "x \\in [-2,7]"),      // MATH500
    ("(-\\infty,0]", "(-\\infty, 0]"), // MATH500
    (
        "(3,\\infty) \\cup (-\\infty,2)",
        "(-\\infty, 2) \\cup (3, \\infty)",
    ), // MATH500
    ("\\{-2, 1\\}", "\\{1, -2\\}"),
    ("13, 11", "11,13"), // OlympiadBench `11,13`
    (
        "\\begin{pmatrix} -0.3333333333 \\\\ 2/3 \\\\ 5/3 \\end{pmatrix}",
        "\\begin{pmatrix} -1/3 \\\\ 2/3 \\\\ 5/3 \\end{pmatrix}",
    ),
    // Symbolic.
    ("-q + p", "p - q"),          // MATH500 `p - q`
    ("x = 5", "5"),               // MATH500 `x=5`
    ("y = 3 + 2x", "y = 2x + 3"), // MATH500
    ("(x+1)^2", "x^2+2x+1"),
    ("6-5i", "6 - 5i"),                        // MATH500
    ("\\frac{1}{2n+2}", "$\\frac{1}{2 n+2}$"), // OlympiadBench
];

/// Pairs that must be judged different.
const DIFFERENT: &[(&str, &str)] = &[
    ("12.7", "12.8"),
    ("0.33", "\\frac{1}{3}"),
    ("-9", "9"),
    ("\\frac{2}{1}", "\\frac{1}{2}"),
    ("(3, 4)", "(3,4]"), // open vs half-open interval
    ("[3, 4]", "(3, 4)"),
    ("(4, 3)", "(3, 4)"), // tuples are ordered
    ("(6, 31, 1)", "(6,31,-1)"),
    ("(1, 2)", "(1, 2, 3)"),
    ("\\sqrt{50}", "\\sqrt{51}"),
    ("288", "288 \\pi"),
    ("p + q", "p - q"),
    ("x^2+1", "(x+1)^2"),
    ("Eve", "\\text{Evelyn}"),
    ("seat", "\\text{east}"), // MATH500 `\text{east}`: words are not products
    ("B", "\\text{(C)}"),
    ("58,501", "58,500"),
    ("(2,\\infty)", "[2,\\infty)"),
    ("", "5"),
    ("5", ""),
    ("\\frac{1}{2n}", "\\frac{1}{2 n+2}"),
    ("1024", "2^{11}"),
    ("6+5i", "6 - 5i"),
];

#[test]
fn equivalent_pairs_are_equal() {
    let failed: Vec<_> = EQUIVALENT.iter().filter(|(a, b)| !is_equiv(a, b)).collect();
    assert!(failed.is_empty(), "judged different: {failed:?}");
}

#[test]
fn equivalence_is_symmetric_on_the_suite() {
    let failed: Vec<_> = EQUIVALENT.iter().filter(|(a, b)| !is_equiv(b, a)).collect();
    assert!(
        failed.is_empty(),
        "judged different when swapped: {failed:?}"
    );
}

#[test]
fn different_pairs_are_not_equal() {
    let failed: Vec<_> = DIFFERENT
        .iter()
        .filter(|(a, b)| is_equiv(a, b) || is_equiv(b, a))
        .collect();
    assert!(failed.is_empty(), "judged equal: {failed:?}");
}

#[test]
fn suite_is_large_enough() {
    assert!(EQUIVALENT.len() + DIFFERENT.len() >= 40);
}

#[test]
fn every_real_math500_answer_matches_itself_and_not_a_perturbation() {
    let problems = azr_core::data::load_math(
        azr_core::data::MathSet::Math500,
        azr_core::data::math::DEFAULT_DIR,
    )
    .expect("math500 loads");
    let mut self_fail = Vec::new();
    for p in &problems {
        if !is_equiv(&p.answer, &p.answer) {
            self_fail.push(p.answer.clone());
        }
    }
    assert!(
        self_fail.is_empty(),
        "answers not equal to themselves: {self_fail:?}"
    );
    // Integer answers: the next integer must be judged different.
    let mut wrong_ok = Vec::new();
    for p in &problems {
        if let Ok(n) = p.answer.trim().parse::<i64>() {
            if is_equiv(&(n + 1).to_string(), &p.answer) {
                wrong_ok.push(p.answer.clone());
            }
        }
    }
    assert!(wrong_ok.is_empty(), "off-by-one accepted: {wrong_ok:?}");
}

#[test]
fn every_benchmark_answer_is_equivalent_to_itself() {
    use azr_core::data::{load_math, MathSet};
    let mut bad = Vec::new();
    for set in MathSet::ALL {
        for p in load_math(set, azr_core::data::math::DEFAULT_DIR).unwrap() {
            if !is_equiv(&p.answer, &p.answer) {
                bad.push((set, p.answer));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "{} answers not self-equivalent: {bad:?}",
        bad.len()
    );
}
