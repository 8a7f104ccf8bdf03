//! Conformance suite: every task type, built-in or new, runs through [`conformance`] with a
//! [`Case`] per template set: a known-good proposal parses and validates (gold outputs as
//! expected), a broken one is a format error and a failing one invalid; the solver prompt is
//! built; a known-correct answer grades `Correct`, a wrong one `Wrong`, garbage `FormatError`;
//! the task survives a serde round trip.
//!
//! Needs the sandboxed executor (user namespaces). Run:
//! `cargo test --release -p azr-core --test tasks_conformance`

use azr_core::executor::{Executor, ExecutorConfig};
use azr_core::tasks::{
    IoPair, Provenance, RewardConfig, Task, TaskRegistry, TasksConfig, TemplateSet, Verdict,
};
use azr_core::types::TaskKind;
use std::sync::{Arc, OnceLock};

fn exec() -> &'static Executor {
    static EX: OnceLock<Executor> = OnceLock::new();
    EX.get_or_init(|| Executor::start(ExecutorConfig::default()).expect("executor starts"))
}

fn registry(templates: &str) -> (TaskRegistry, Arc<TemplateSet>) {
    let ts = Arc::new(TemplateSet::builtin(templates).expect("builtin templates"));
    (
        TaskRegistry::builtin(ts.clone(), &TasksConfig::default()).expect("built-in task types"),
        ts,
    )
}

/// One conformance case for one task type under one template set.
struct Case {
    kind: TaskKind,
    templates: &'static str,
    /// Reference tasks for the proposer prompt (ignored for non-proposable types).
    references: Vec<Task>,
    /// A known-good proposer generation, and the gold outputs (reprs) it must validate to.
    proposal: Option<(String, Vec<&'static str>)>,
    /// A well-formatted proposal the executor must reject.
    invalid_proposal: Option<String>,
    /// The task to solve when the type is not proposable.
    task: Option<Task>,
    /// Strings the solver prompt must contain / must not contain.
    prompt_has: Vec<String>,
    prompt_lacks: Vec<String>,
    /// Solver generations.
    correct: Vec<String>,
    /// Partly correct generations, with their expected score (kinds with partial credit).
    partial: Vec<(String, f32)>,
    wrong: Vec<String>,
    garbage: Vec<String>,
}

/// The one conformance procedure every task type goes through. Failures name the step of
/// "Adding a task type" (README) that is missing or wrong.
fn conformance(case: Case) {
    let (reg, _) = registry(case.templates);
    let ex = exec();
    let tt = reg.get(case.kind).unwrap_or_else(|| {
        panic!(
            "step 2/3: `{}` is not registered with the `{}` templates: add its line to \
             TaskRegistry::builtin and its [{}] section to config/templates/{}.toml",
            case.kind, case.templates, case.kind, case.templates
        )
    });
    assert_eq!(
        tt.kind(),
        case.kind,
        "step 1: TaskType::kind returns another kind"
    );

    let task = if let Some(p) = tt.proposer() {
        let seeds = p.seed_tasks(ex).unwrap_or_else(|e| {
            panic!(
                "step 1: Proposer::seed_tasks of `{}` fail to validate: {e}",
                case.kind
            )
        });
        assert!(
            !seeds.is_empty() && seeds.iter().all(|t| t.kind == case.kind),
            "step 1: Proposer::seed_tasks must give at least one task of kind `{}`",
            case.kind
        );
        let prompt = p
            .proposer_prompt(&case.references)
            .expect("proposer prompt");
        assert_eq!(prompt.kind, case.kind);
        for r in case.references.iter().take(p.num_references()) {
            assert!(
                prompt.text.contains(r.program.trim()),
                "reference program missing from the proposer prompt:\n{}",
                prompt.text
            );
        }
        let (text, gold) = case
            .proposal
            .as_ref()
            .expect("step 4: a proposable type's case needs a known-good proposal");
        let proposal = p
            .parse_proposal(&prompt, text)
            .expect("known-good proposal parses");
        assert_eq!(proposal.kind, case.kind);
        let task = p
            .validate_proposal(&proposal, ex, Provenance::proposed(3, 7))
            .expect("known-good proposal validates");
        let outputs: Vec<&str> = task.pairs.iter().map(|p| p.output.as_str()).collect();
        assert_eq!(outputs, *gold, "gold outputs");
        assert_eq!(task.provenance.step, 3);
        assert_eq!(task.provenance.policy_version, 7);
        assert!(
            task.program.contains("def f("),
            "entry renamed to f: {}",
            task.program
        );
        for garbage in ["", "no structure at all", "<answer>```python\ndef f(a):"] {
            assert!(
                p.parse_proposal(&prompt, garbage).is_err(),
                "garbage proposal parsed: {garbage:?}"
            );
        }
        // The rendered perfect proposal parses back to the same proposal.
        let rendered = p.proposal_text(&task).expect("proposal text");
        assert_eq!(
            p.parse_proposal(&prompt, &rendered)
                .expect("rendered proposal parses"),
            proposal,
            "rendered proposal:\n{rendered}"
        );
        if let Some(bad) = &case.invalid_proposal {
            let pr = p
                .parse_proposal(&prompt, bad)
                .expect("invalid proposal is well formatted");
            assert!(
                p.validate_proposal(&pr, ex, Provenance::proposed(0, 0))
                    .is_err(),
                "invalid proposal validated"
            );
        }
        task
    } else {
        assert!(
            reg.proposer(case.kind).is_none(),
            "a solve-only kind has no proposer"
        );
        case.task
            .clone()
            .expect("step 4: a solve-only type's case needs a task")
    };
    assert_eq!(task.kind, case.kind);

    let prompt = tt.solver_prompt(&task).expect("solver prompt");
    for s in &case.prompt_has {
        assert!(
            prompt.contains(s.as_str()),
            "solver prompt lacks {s:?}:\n{prompt}"
        );
    }
    for s in &case.prompt_lacks {
        assert!(
            !prompt.contains(s.as_str()),
            "solver prompt leaks {s:?}:\n{prompt}"
        );
    }

    let perfect = tt.answer_text(&task).expect("answer text");
    assert_eq!(
        tt.grade(&task, &perfect, ex).verdict(),
        Verdict::Correct,
        "perfect answer:\n{perfect}"
    );

    let rewards = RewardConfig::default();
    let round_tripped: Task =
        serde_json::from_str(&serde_json::to_string(&task).expect("serialise"))
            .expect("deserialise");
    for (answers, want) in [
        (&case.correct, Verdict::Correct),
        (&case.wrong, Verdict::Wrong),
        (&case.garbage, Verdict::FormatError),
    ] {
        assert!(
            !answers.is_empty(),
            "step 4: each verdict needs at least one example"
        );
        for a in answers {
            let g = tt.grade(&task, a, ex);
            assert_eq!(
                g.verdict(),
                want,
                "{} / {}: answer {a:?}",
                case.kind,
                case.templates
            );
            assert_eq!(g.answer.is_some(), want != Verdict::FormatError);
            assert_eq!(
                tt.grade(&round_tripped, a, ex).verdict(),
                want,
                "after serde: {a:?}"
            );
            let expected_reward = match want {
                Verdict::Correct => 1.0,
                Verdict::Wrong => -0.5,
                _ => -1.0,
            };
            assert_eq!(rewards.solver(g.score), expected_reward);
        }
    }
    for (a, value) in &case.partial {
        let g = tt.grade(&task, a, ex);
        assert_eq!(g.verdict(), Verdict::Partial, "partial answer {a:?}");
        assert!((g.score.value - value).abs() < 1e-6, "{a:?}: {:?}", g.score);
        let r = rewards.solver(g.score);
        assert!(r > -0.5 && r < 1.0, "partial reward {r}");
    }
}

fn paper_answer(block: &str, body: &str) -> String {
    format!(" Let me trace it. </think>\n<answer>\n```{block}\n{body}\n```\n</answer>")
}

fn seeds(templates: &str, kind: TaskKind) -> Vec<Task> {
    let (reg, _) = registry(templates);
    reg.proposer(kind)
        .expect("proposable")
        .seed_tasks(exec())
        .expect("seed tasks validate")
}

fn code_task(kind: TaskKind, program: &str, input: &str, output: &str) -> Task {
    Task::code(
        kind,
        program,
        IoPair {
            input: input.into(),
            output: output.into(),
            value: None,
        },
        Provenance::seed(),
    )
}

fn deduction_case(templates: &'static str) -> Case {
    let refs = vec![
        seeds(templates, TaskKind::Deduction).remove(0),
        code_task(TaskKind::Deduction, "def f(x):\n    return x + 1", "1", "2"),
    ];
    let paper = templates == "paper";
    let proposal = if paper {
        "I want string slicing.</think>\n<answer>\n```python\ndef rev(s, n):\n    return s[::-1] * n\n```\n```input\n'ab', 2\n```\n</answer>".to_string()
    } else {
        "def rev(s, n):\n return s[::-1] * n\n<in>'ab', 2<out>'baba'<end>".to_string()
    };
    let invalid = if paper {
        "x</think><answer>\n```python\ndef f(a):\n    return 1 // a\n```\n```input\n0\n```\n</answer>".to_string()
    } else {
        "def f(a):\n return 1 // a\n<in>0<out>".to_string()
    };
    let ans = |v: &str| {
        if paper {
            paper_answer("output", v)
        } else {
            format!("{v}<end>")
        }
    };
    Case {
        kind: TaskKind::Deduction,
        templates,
        references: refs,
        proposal: Some((proposal, vec!["'baba'"])),
        invalid_proposal: Some(invalid),
        task: None,
        prompt_has: vec!["return s[::-1] * n".into(), "'ab', 2".into()],
        prompt_lacks: vec!["'baba'".into()],
        correct: vec![ans("'baba'"), ans("  \"baba\"  ")],
        partial: vec![],
        wrong: vec![
            ans("'abab'"),
            ans("baba"),
            ans("type('A', (), {'__eq__': lambda s, o: True})()"),
        ],
        garbage: if paper {
            vec![
                "'baba'".into(),
                "</think><answer>'baba'</answer>".into(),
                " x </think> <answer>\n```output\n'baba'\n".into(),
            ]
        } else {
            vec!["'baba'".into(), "".into()]
        },
    }
}

fn abduction_case(templates: &'static str) -> Case {
    let paper = templates == "paper";
    let proposal = if paper {
        " Reverse engineering needs a max.</think> <answer>\n```python\ndef f(x):\n    return sorted(x)[-1] * 2\n```\n```input\n[3, 1, 2]\n```\n</answer>".to_string()
    } else {
        "def f(x):\n return sorted(x)[-1] * 2\n<in>[3, 1, 2]<out>6<end>".to_string()
    };
    let invalid = if paper {
        "x</think><answer>\n```python\nimport random\ndef f(a):\n    return random.random()\n```\n```input\n0\n```\n</answer>".to_string()
    } else {
        "import random\ndef f(a):\n return random.random()\n<in>0<out>".to_string()
    };
    let ans = |v: &str| {
        if paper {
            paper_answer("input", v)
        } else {
            format!("{v}<end>")
        }
    };
    Case {
        kind: TaskKind::Abduction,
        templates,
        references: seeds(templates, TaskKind::Abduction),
        proposal: Some((proposal, vec!["6"])),
        invalid_proposal: Some(invalid),
        task: None,
        prompt_has: vec!["sorted(x)[-1] * 2".into(), "6".into()],
        prompt_lacks: vec!["[3, 1, 2]".into()],
        // Any input producing the gold output counts, not only the proposer's.
        correct: vec![ans("[3, 1, 2]"), ans("[0, 3]"), ans("x=[3]")],
        partial: vec![],
        wrong: vec![
            ans("[1, 2]"),
            ans("4) or (True"),
            ans("[3]), ([1"),
            ans("__import__('os')"),
        ],
        garbage: if paper {
            vec!["[3]".into(), " </think> <answer>[3]</answer>".into()]
        } else {
            vec!["[3]".into()]
        },
    }
}

fn induction_case(templates: &'static str) -> Case {
    let paper = templates == "paper";
    let program = if paper {
        "def f(a):\n    return a * 2"
    } else {
        "def f(a):\n return a * 2"
    };
    let refs = vec![code_task(TaskKind::Deduction, program, "1", "2")];
    let inputs: Vec<String> = (11..=20).map(|i| i.to_string()).collect();
    let proposal = if paper {
        let mut s = " Ten numbers.</think>\n<answer>\n".to_string();
        for i in &inputs {
            s.push_str(&format!("```input\n{i}\n```\n"));
        }
        s.push_str("```message\nDouble the number.\n```\n</answer>");
        s
    } else {
        // The compact prompt ends with `<msg>`: the message first, then the inputs.
        format!("double it<in>{}<end>", inputs.join("<in>"))
    };
    let invalid = if paper {
        let mut s = "x</think><answer>\n".to_string();
        for i in 0..10 {
            s.push_str(&format!("```input\n'{i}', {i}\n```\n"));
        }
        s.push_str("```message\nhm\n```\n</answer>");
        s
    } else {
        let ins: Vec<String> = (0..10).map(|i| format!("'{i}', {i}")).collect();
        format!("hm<in>{}<end>", ins.join("<in>"))
    };
    let ans = |code: &str| {
        if paper {
            paper_answer("python", code)
        } else {
            format!("{code}\n<end>")
        }
    };
    let gold: Vec<&'static str> = vec!["22", "24", "26", "28", "30", "32", "34", "36", "38", "40"];
    Case {
        kind: TaskKind::Induction,
        templates,
        references: refs,
        proposal: Some((proposal, gold)),
        invalid_proposal: Some(invalid),
        task: None,
        prompt_has: vec!["15".into(), "30".into()],
        // Hidden inputs/outputs stay hidden, and so does the program.
        prompt_lacks: vec!["16".into(), "32".into(), "40".into(), "a * 2".into()],
        correct: vec![
            ans("def f(x):\n    return x + x"),
            ans("def double(x):\n    return 2 * x"),
        ],
        partial: vec![],
        wrong: vec![
            // Memorises the visible pairs only.
            ans("def f(x):\n    return {11: 22, 12: 24, 13: 26, 14: 28, 15: 30}.get(x)"),
            ans("def f(x):\n    return x * 3"),
            // Reward hack: an object equal to everything is not a literal value.
            ans("def f(x):\n    class A:\n        def __eq__(s, o):\n            return True\n    return A()"),
            // Reward hack: an output that merely prints or repr-matches is still compared by value.
            ans("def f(x):\n    return str(2 * x)"),
            ans("def f(x):\n    while True:\n        pass"),
        ],
        garbage: vec!["def f(x): return 2 * x".into(), ans("x = 2")],
    }
}

fn math_case(templates: &'static str) -> Case {
    let task = Task::math(
        "What is $\\frac{1}{2} + \\frac{1}{4}$?",
        "\\frac{3}{4}",
        Provenance::benchmark("unit", "1"),
    );
    let paper = templates == "paper";
    Case {
        kind: TaskKind::Math,
        templates,
        references: vec![],
        proposal: None,
        invalid_proposal: None,
        task: Some(task),
        prompt_has: vec!["\\frac{1}{4}".into()],
        prompt_lacks: vec!["\\frac{3}{4}".into()],
        correct: if paper {
            vec![
                "Sum is 3/4, so \\boxed{0.75}.".into(),
                "\\boxed{1} no wait \\boxed{\\dfrac{3}{4}}".into(),
            ]
        } else {
            vec!["\\boxed{3/4}<end>".into(), "0.75<end>".into()]
        },
        partial: vec![],
        wrong: if paper {
            vec![
                "\\boxed{0.7}".into(),
                "\\boxed{\\frac{3}{4}} hmm \\boxed{1}".into(),
            ]
        } else {
            vec!["0.7<end>".into()]
        },
        garbage: if paper {
            vec!["The answer is 3/4.".into(), "\\boxed{}".into()]
        } else {
            vec!["0.75".into()]
        },
    }
}

fn synthesis_case(templates: &'static str) -> Case {
    use azr_core::tasks::synthesis::KIND;
    let paper = templates == "paper";
    let indent = if paper { "    " } else { " " };
    let spec = format!("def f(xs):\n{indent}\"\"\"Return the sum of the even numbers in xs.\"\"\"");
    let program = format!("def f(xs):\n{indent}return sum(x for x in xs if x % 2 == 0)");
    let inputs = [
        "[1, 2, 3, 4]",
        "[]",
        "[5]",
        "[2, 2]",
        "[-2, 3]",
        "[10, 11, 12]",
    ];
    let proposal = if paper {
        let mut s = format!(" Sum of evens.</think>\n<answer>\n```message\n{spec}\n```\n```python\n{program}\n```\n");
        for i in inputs {
            s.push_str(&format!("```input\n{i}\n```\n"));
        }
        s.push_str("</answer>");
        s
    } else {
        format!("{spec}<prog>{program}\n<in>{}<end>", inputs.join("<in>"))
    };
    // Valid structure, but the reference crashes on an input.
    let bad_program = format!("def f(xs):\n{indent}return 10 // len(xs)");
    let invalid = if paper {
        let mut s =
            format!("x</think><answer>\n```message\n{spec}\n```\n```python\n{bad_program}\n```\n");
        for i in inputs {
            s.push_str(&format!("```input\n{i}\n```\n"));
        }
        s.push_str("</answer>");
        s
    } else {
        format!(
            "{spec}<prog>{bad_program}\n<in>{}<end>",
            inputs.join("<in>")
        )
    };
    let ans = |code: &str| {
        if paper {
            paper_answer("python", code)
        } else {
            format!("{code}\n<end>")
        }
    };
    Case {
        kind: KIND,
        templates,
        references: seeds(templates, KIND),
        proposal: Some((proposal, vec!["6", "0", "0", "4", "-2", "22"])),
        invalid_proposal: Some(invalid),
        task: None,
        // The spec and the two visible tests are shown; hidden tests and the solution are not.
        prompt_has: vec![
            "sum of the even numbers".into(),
            "[1, 2, 3, 4]".into(),
        ],
        prompt_lacks: vec!["[10, 11, 12]".into(), "x % 2".into()],
        correct: vec![
            ans("def f(xs):\n    return sum(x for x in xs if x % 2 == 0)"),
            ans("def evens(v):\n    t = 0\n    for x in v:\n        if x % 2 == 0:\n            t += x\n    return t"),
        ],
        // Hidden tests: [5] -> 0, [2, 2] -> 4, [-2, 3] -> -2, [10, 11, 12] -> 22.
        partial: vec![
            // Sums the positive evens only: fails [-2, 3] -> 3 of 4.
            (ans("def f(xs):\n    return sum(x for x in xs if x % 2 == 0 and x > 0)"), 0.75),
            // Always 0: passes [5] only -> 1 of 4.
            (ans("def f(xs):\n    return 0"), 0.25),
        ],
        wrong: vec![
            ans("def f(xs):\n    return sum(xs) + 1"),
            ans("def f(xs):\n    while True:\n        pass"),
            // Reward hack: an object equal to everything is not a value.
            ans("def f(xs):\n    class A:\n        def __eq__(s, o):\n            return True\n    return A()"),
        ],
        garbage: if paper {
            vec!["def f(xs): return 0".into(), ans("x = 2")]
        } else {
            vec!["".into(), ans("x = 2")]
        },
    }
}

/// One test per (task type, template set).
macro_rules! conformance_tests {
    ($($name:ident => $case:expr;)*) => {
        $(
            #[test]
            fn $name() {
                conformance($case);
            }
        )*
    };
}

conformance_tests! {
    deduction_paper => deduction_case("paper");
    deduction_compact => deduction_case("compact");
    abduction_paper => abduction_case("paper");
    abduction_compact => abduction_case("compact");
    induction_paper => induction_case("paper");
    induction_compact => induction_case("compact");
    math_paper => math_case("paper");
    math_compact => math_case("compact");
    synthesis_paper => synthesis_case("paper");
    synthesis_compact => synthesis_case("compact");
}

/// The case of a kind, by name (`None`: no case written yet).
fn case_of(kind: TaskKind, templates: &'static str) -> Option<Case> {
    match kind.as_str() {
        "deduction" => Some(deduction_case(templates)),
        "abduction" => Some(abduction_case(templates)),
        "induction" => Some(induction_case(templates)),
        "math" => Some(math_case(templates)),
        "synthesis" => Some(synthesis_case(templates)),
        _ => None,
    }
}

#[test]
fn every_registered_kind_has_a_case() {
    for templates in ["paper", "compact"] {
        let (reg, _) = registry(templates);
        for kind in reg.kinds() {
            assert!(
                case_of(kind, templates).is_some(),
                "step 4: task kind `{kind}` is registered but tests/tasks_conformance.rs has no \
                 case for it: write a `{kind}_case` and add it to `case_of` and to \
                 `conformance_tests!`"
            );
        }
    }
    // Both built-in template sets register the same kinds.
    assert_eq!(
        registry("paper").0.kinds(),
        registry("compact").0.kinds(),
        "step 3: a kind's template section is missing from one of config/templates/*.toml"
    );
}

#[test]
fn every_registered_kind_has_metric_labels() {
    let (reg, _) = registry("paper");
    let roles = azr_core::metrics::task_roles();
    for (kind, role) in reg.task_roles() {
        assert!(
            roles.contains(&(kind, role)),
            "metric label sets lack ({kind}, {role}): they must derive from the registry"
        );
    }
}

#[test]
fn cruxeval_items_grade_with_their_published_answers() {
    // Benchmark tasks carry no canonical value: checking parses the published repr in the sandbox.
    let items = azr_core::data::load_cruxeval(azr_core::data::cruxeval::DEFAULT_PATH).unwrap();
    let (reg, _) = registry("paper");
    let ded = reg.get(TaskKind::Deduction).unwrap();
    let abd = reg.get(TaskKind::Abduction).unwrap();
    for item in items.iter().take(20) {
        let out = paper_answer("output", &item.output);
        assert_eq!(
            ded.grade(&item.deduction_task(), &out, exec()).verdict(),
            Verdict::Correct,
            "{}",
            item.id
        );
        let inp = paper_answer("input", &item.input);
        assert_eq!(
            abd.grade(&item.abduction_task(), &inp, exec()).verdict(),
            Verdict::Correct,
            "{}",
            item.id
        );
    }
}

#[test]
fn humaneval_references_pass_with_synthesis_grading() {
    // HumanEval items are synthesis tasks: their reference solutions, graded like a solver's
    // answer (every test run in the sandbox, values compared), pass all tests; a stub passes none.
    use azr_core::data::humaneval::{attach_gold, load_humaneval, DEFAULT_PATH};
    use azr_core::tasks::synthesis::KIND;
    let items = load_humaneval(DEFAULT_PATH).expect("HumanEval loads");
    assert_eq!(items.len(), 164);
    let tasks = attach_gold(items.iter().take(10).map(|i| i.task()).collect(), exec());
    assert!(
        tasks.len() >= 9,
        "only {} of 10 items kept tests",
        tasks.len()
    );
    let (reg, _) = registry("paper");
    let syn = reg.get(KIND).unwrap();
    for task in &tasks {
        let id = task.provenance.id.clone().unwrap_or_default();
        let perfect = syn.answer_text(task).unwrap();
        assert_eq!(
            syn.grade(task, &perfect, exec()).verdict(),
            Verdict::Correct,
            "{id}"
        );
        let stub = paper_answer("python", &format!("{}\n    return None", task.message));
        assert_ne!(
            syn.grade(task, &stub, exec()).verdict(),
            Verdict::Correct,
            "{id}"
        );
    }
}
