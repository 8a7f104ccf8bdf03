//! ARC-Easy / ARC-Challenge: the loader on the shipped files, the prompt, the answer-label
//! extraction on hand-written responses, and scoring by label.
//!
//! Run: `cargo test --release -p azr-core --test eval_arc`. The data is read from
//! `../shared/data/arc` next to the project root, or from `$AZR_SHARED_DATA/arc` when that is
//! set (a git worktree elsewhere).

use std::path::{Path, PathBuf};

use azr_core::data::arc::{load_arc, ArcChoice, ArcItem, ArcSet};
use azr_core::data::DataError;
use azr_core::eval::arc::{
    decoding_summary, extract_label, is_arc_benchmark, label_family, score_responses, task,
    task_verdict, ArcPrompt, DEFAULT_TEMPLATE,
};
use azr_core::eval::EvalSettings;
use azr_core::tasks::Verdict;
use azr_core::types::TaskKind;

fn data_dir() -> PathBuf {
    match std::env::var_os("AZR_SHARED_DATA") {
        Some(d) => PathBuf::from(d).join("arc"),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/arc"),
    }
}

fn item(labels: &[&str], answer: &str) -> ArcItem {
    ArcItem {
        set: ArcSet::Easy,
        id: "t1".to_string(),
        question: "  Which gas do plants take in? ".to_string(),
        choices: labels
            .iter()
            .zip(["oxygen", "carbon dioxide", "helium", "neon", "argon"])
            .map(|(l, t)| ArcChoice {
                label: l.to_string(),
                text: t.to_string(),
            })
            .collect(),
        answer: answer.to_string(),
    }
}

#[test]
fn loader_reads_both_sets_exactly() {
    let dir = data_dir();
    for (set, count, numeric) in [(ArcSet::Challenge, 1172, 22), (ArcSet::Easy, 2376, 97)] {
        let items = load_arc(set, &dir).unwrap_or_else(|e| panic!("{}: {e}", set.name()));
        assert_eq!(items.len(), count, "{}", set.name());
        let mut ids: Vec<&str> = items.iter().map(|i| i.id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), count, "ids are unique");
        for it in &items {
            assert_eq!(it.set, set);
            assert!(!it.question.is_empty() && it.choices.len() >= 3, "{it:?}");
            assert!(it.labels().contains(&it.answer.as_str()), "{it:?}");
            assert_eq!(it.choices[it.answer_index().unwrap()].label, it.answer);
        }
        // Questions labelled 1-4 (or 1-3) keep their numeric labels and numeric keys.
        let num: Vec<&ArcItem> = items.iter().filter(|i| i.choices[0].label == "1").collect();
        assert_eq!(num.len(), numeric, "{}", set.name());
        for it in &num {
            assert!(it.labels().iter().all(|l| ["1", "2", "3", "4"].contains(l)));
            assert!(["1", "2", "3", "4"].contains(&it.answer.as_str()), "{it:?}");
        }
        // Every other question is lettered from A (3 to 5 options).
        for it in items.iter().filter(|i| i.choices[0].label != "1") {
            let want = &["A", "B", "C", "D", "E"][..it.choices.len()];
            assert_eq!(it.labels(), want, "{it:?}");
        }
    }
    let easy = load_arc(ArcSet::Easy, &dir).unwrap();
    assert_eq!(easy[0].id, "Mercury_417466");
    assert_eq!(easy[0].answer, "A");
    assert_eq!(
        easy[0].choices[0].text,
        "Sunlight is the source of energy for nearly all ecosystems."
    );
}

#[test]
fn loader_rejects_inconsistent_rows() {
    let dir = tempfile::tempdir().unwrap();
    let write = |line: &str| {
        std::fs::write(dir.path().join(ArcSet::Easy.file_name()), line).unwrap();
        load_arc(ArcSet::Easy, dir.path())
    };
    let field = |r: Result<Vec<ArcItem>, DataError>| match r {
        Err(DataError::Field { field, line, .. }) => (field, line),
        other => panic!("expected a field error, got {other:?}"),
    };
    let ok = r#"{"id":"x","question":"q?","choices":{"text":["a","b"],"label":["1","2"]},"answerKey":"2"}"#;
    let items = write(&format!("\n{ok}\n")).unwrap();
    assert_eq!(items[0].answer, "2");
    assert_eq!(items[0].answer_index(), Some(1));
    let key = ok.replace(r#""answerKey":"2""#, r#""answerKey":"C""#);
    assert_eq!(field(write(&key)), ("answerKey", 1));
    let short = ok.replace(r#"["a","b"]"#, r#"["a"]"#);
    assert_eq!(field(write(&format!("{ok}\n{short}"))), ("choices", 2));
    let dup = ok.replace(r#"["1","2"]"#, r#"["1","1"]"#);
    assert_eq!(field(write(&dup)), ("choices", 1));
    let no_q = ok.replace(r#""question":"q?","#, "");
    assert_eq!(field(write(&no_q)), ("question", 1));
    assert!(matches!(
        load_arc(ArcSet::Challenge, dir.path()),
        Err(DataError::Io { .. })
    ));
}

#[test]
fn set_names() {
    assert_eq!(ArcSet::from_name("arc-easy"), Some(ArcSet::Easy));
    assert_eq!(ArcSet::from_name("ARC_Challenge"), Some(ArcSet::Challenge));
    assert_eq!(ArcSet::from_name("arc"), None);
    assert_eq!("arc-challenge".parse::<ArcSet>(), Ok(ArcSet::Challenge));
    assert!("math500"
        .parse::<ArcSet>()
        .unwrap_err()
        .contains("arc-easy"));
    assert!(is_arc_benchmark("arc_easy") && !is_arc_benchmark("gsm8k"));
    assert_eq!(ArcSet::Easy.file_name(), "ARC-Easy-test.jsonl");
    // The metric labels of both sets are declared.
    for s in ArcSet::ALL {
        assert!(azr_core::metrics::BENCHMARKS.contains(&s.name().replace('-', "_").as_str()));
    }
}

#[test]
fn prompt_rendering() {
    let p = ArcPrompt::default();
    assert_eq!(p.template, DEFAULT_TEMPLATE);
    p.validate().unwrap();
    let it = item(&["A", "B", "C", "D"], "B");
    assert_eq!(
        p.render(&it),
        "Question: Which gas do plants take in?\nA. oxygen\nB. carbon dioxide\nC. helium\nD. neon\nAnswer:"
    );
    assert_eq!(
        p.body(&it),
        "Which gas do plants take in?\nA. oxygen\nB. carbon dioxide\nC. helium\nD. neon"
    );
    // Numeric labels are shown as the data labels them; custom templates and option lines.
    let chat = ArcPrompt {
        template: "<|im_start|>user\n{question}\n\n{choices}\nReply with the label.<|im_end|>\n<|im_start|>assistant\n".to_string(),
        choice: "({label}) {text}".to_string(),
        stop: vec!["<|im_end|>".to_string()],
    };
    chat.validate().unwrap();
    let num = item(&["1", "2", "3"], "2");
    assert_eq!(
        chat.render(&num),
        "<|im_start|>user\nWhich gas do plants take in?\n\n(1) oxygen\n(2) carbon dioxide\n(3) helium\nReply with the label.<|im_end|>\n<|im_start|>assistant\n"
    );
    // A placeholder inside the question text is not expanded again.
    let mut odd = item(&["A", "B"], "A");
    odd.question = "What is {choices}?".to_string();
    assert_eq!(
        p.render(&odd),
        "Question: What is {choices}?\nA. oxygen\nB. carbon dioxide\nAnswer:"
    );
    // Missing slots are named.
    let bad = ArcPrompt {
        template: "Q: {question}".to_string(),
        ..ArcPrompt::default()
    };
    assert!(bad
        .validate()
        .unwrap_err()
        .to_string()
        .contains("{choices}"));
    let bad = ArcPrompt {
        choice: "{text}".to_string(),
        ..ArcPrompt::default()
    };
    assert!(bad.validate().unwrap_err().to_string().contains("choice"));
    // The prompt parses from TOML with defaults for omitted keys.
    let t: ArcPrompt = toml::from_str("choice = \"{label}) {text}\"").unwrap();
    assert_eq!(t.template, DEFAULT_TEMPLATE);
    assert!(toml::from_str::<ArcPrompt>("tmpl = \"x\"").is_err());
}

#[test]
fn extraction_on_hand_written_responses() {
    let abcd = ["A", "B", "C", "D"];
    let x = |text: &str| extract_label(text, &abcd);
    let cases: &[(&str, Option<&str>)] = &[
        // Bare labels at the start.
        ("B", Some("B")),
        (" B", Some("B")),
        (" C. helium", Some("C")),
        ("D)\n", Some("D")),
        ("**A**", Some("A")),
        ("B\nbecause plants breathe", Some("B")),
        // Several letters: the first at the start; the answer phrase over the leading one.
        ("B, C", Some("B")),
        ("A. oxygen\nB. carbon dioxide", Some("A")),
        ("A is wrong, the answer is C.", Some("C")),
        ("The answer is A. Wait, no: the answer is D", Some("D")),
        (
            "The answer is C. Checking the answer again, yes.",
            Some("C"),
        ),
        // Answer phrases.
        ("the answer is B", Some("B")),
        ("Answer: C", Some("C")),
        ("**Final Answer:** D", Some("D")),
        ("<answer> A </answer>", Some("A")),
        ("The correct answer would be option B.", Some("B")),
        ("My answer is (c).", Some("C")),
        // Parentheses, anywhere; the last one wins.
        ("(B)", Some("B")),
        ("(b) carbon dioxide", Some("B")),
        ("Not (A), so I pick (D) here", Some("D")),
        // Boxed (math-style models), over everything else.
        ("\\boxed{C}", Some("C")),
        (
            "Reasoning... the answer is A, or rather \\boxed{B}",
            Some("B"),
        ),
        ("so \\boxed{\\text{(D)}}.", Some("D")),
        ("\\boxed{c}", Some("C")),
        ("\\boxed{C. helium}", Some("C")),
        // A boxed non-label falls through to the next rules.
        ("\\boxed{42}, i.e. the answer is A", Some("A")),
        ("\\boxed{E}", None),
        // Lower case only where it cannot be a word.
        ("b", Some("B")),
        ("a.", Some("A")),
        ("a plant needs carbon dioxide", None),
        ("the answer is a gas", None),
        // Prose starting with the article `A` is not a label.
        ("A plant takes in carbon dioxide.", None),
        // No answer.
        ("", None),
        ("Plants take in carbon dioxide.", None),
        ("The answer is E", None),
        ("Both are gases.", None),
        ("I do not know the answer.", None),
    ];
    for (text, want) in cases {
        assert_eq!(x(text).as_deref(), *want, "response {text:?}");
    }

    // Numeric labels.
    let nums = ["1", "2", "3", "4"];
    let n = |text: &str| extract_label(text, &nums);
    assert_eq!(n("2").as_deref(), Some("2"));
    assert_eq!(n("3. helium").as_deref(), Some("3"));
    assert_eq!(n("The answer is (4)").as_deref(), Some("4"));
    assert_eq!(n("\\boxed{1}").as_deref(), Some("1"));
    assert_eq!(n("answer: 2 moles").as_deref(), Some("2"));
    assert_eq!(n("1.5 grams"), None);
    assert_eq!(n("12"), None);
    assert_eq!(n("The answer is B"), None);
    // A letter question is not answered by a number, and vice versa.
    assert_eq!(x("2"), None);

    // Three options: D is not a label of this item.
    assert_eq!(extract_label("\\boxed{D}", &["A", "B", "C"]), None);
    // Five options: E is.
    assert_eq!(
        extract_label("answer is E", &["A", "B", "C", "D", "E"]).as_deref(),
        Some("E")
    );
}

#[test]
fn stop_strings_cut_before_extraction() {
    let p = ArcPrompt::default();
    let it = item(&["A", "B", "C", "D"], "B");
    assert_eq!(
        p.extract(
            " B. carbon dioxide\nQuestion: Which is a metal?\nA. iron\nAnswer: A",
            &it.labels()
        )
        .as_deref(),
        Some("B")
    );
    assert!(p.grade(" B<|im_end|>(A)", &it));
    assert!(!p.grade("<|endoftext|>B", &it));
    assert!(!p.grade(" A. oxygen", &it));
}

#[test]
fn scoring_by_label_and_avg_at_k() {
    let p = ArcPrompt::default();
    let items = vec![
        item(&["A", "B", "C", "D"], "B"),
        item(&["1", "2", "3", "4"], "3"),
        item(&["A", "B", "C"], "A"),
    ];
    let greedy = EvalSettings::greedy(16);
    let responses = vec![
        vec![" B".to_string()],
        vec![" 3. helium".to_string()],
        vec!["I cannot tell.".to_string()],
    ];
    let s = score_responses(&p, "arc-easy", &items, &responses, &greedy).unwrap();
    assert_eq!((s.items, s.samples, s.correct), (3, 1, 2));
    assert!((s.accuracy - 2.0 / 3.0).abs() < 1e-12);
    assert_eq!(s.benchmark, "arc-easy");
    assert_eq!(s.temperature, 0.0);

    // avg@4: item 1 right 3/4, item 2 right 1/4, item 3 right 0/4 -> (0.75 + 0.25 + 0) / 3.
    let k4 = EvalSettings::sampled(4, 0.6, 16);
    let r = |v: [&str; 4]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let responses = vec![
        r(["B", "(B)", "\\boxed{B}", "C"]),
        r(["3", "2", "1", "no idea"]),
        r(["B", "C", "", "D"]),
    ];
    let s = score_responses(&p, "arc-challenge", &items, &responses, &k4).unwrap();
    assert_eq!((s.items, s.samples, s.correct), (3, 4, 4));
    assert!((s.accuracy - 1.0 / 3.0).abs() < 1e-12);
    assert_eq!(s.temperature, 0.6);

    // Mismatched counts are an error, not a silent score.
    assert!(score_responses(&p, "arc-easy", &items[..2], &responses, &k4).is_err());
    assert!(score_responses(&p, "arc-easy", &items, &responses, &greedy).is_err());

    assert_eq!(
        decoding_summary(&EvalSettings {
            seed: 42,
            ..EvalSettings::greedy(96)
        }),
        "temperature 0 (greedy), top_p 1, max_new_tokens 96, seed 42"
    );
    assert_eq!(
        decoding_summary(&k4),
        "temperature 0.6, top_p 1, max_new_tokens 16, seed 0, avg@4"
    );
}

#[test]
fn items_as_tasks_for_the_pipeline() {
    let p = ArcPrompt::default();
    let it = item(&["1", "2", "3", "4"], "2");
    let t = task(&it, &p);
    assert_eq!(t.kind, TaskKind::Math);
    assert_eq!(t.problem, p.body(&it));
    assert_eq!(t.answer, "2");
    assert_eq!(label_family("2"), ["1", "2", "3", "4", "5"]);
    assert_eq!(label_family("C"), ["A", "B", "C", "D", "E"]);
    assert_eq!(task_verdict(&t, "\\boxed{2}"), Verdict::Correct);
    assert_eq!(task_verdict(&t, "<answer> 2 </answer>"), Verdict::Correct);
    assert_eq!(task_verdict(&t, "The answer is 3"), Verdict::Wrong);
    assert_eq!(task_verdict(&t, "carbon dioxide"), Verdict::Wrong);
}
