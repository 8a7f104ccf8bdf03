//! The example crate end to end: the `reverse` task type on its own (prompts, parsing, partial
//! credit, validation), then two self-play steps of the shipped tiny model with the `reverse`
//! kind and the length-penalty reward actor plugged in through `azr::PipelineBuilder`, checked
//! from the run's rollout dumps.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use azr_core::executor::{Executor, ExecutorConfig};
use azr_core::tasks::{Proposer, Provenance, Score, TaskType, TasksConfig, TemplateSet, Verdict};
use azr_example_custom_task::reward::OUTCOME_TAG;
use azr_example_custom_task::{builder, Reverse, COMPACT_SECTIONS, CONFIG_TOML, KIND};

fn exec() -> &'static Executor {
    static EX: OnceLock<Executor> = OnceLock::new();
    EX.get_or_init(|| {
        Executor::start(ExecutorConfig {
            workers: 1,
            require_sandbox: false,
            ..ExecutorConfig::default()
        })
        .expect("executor starts")
    })
}

fn reverse() -> Reverse {
    let mut set = TemplateSet::builtin("compact").unwrap();
    let sections: toml::Table = toml::from_str(COMPACT_SECTIONS).unwrap();
    for (name, value) in sections {
        set.sections.insert(name, value.as_table().unwrap().clone());
    }
    Reverse::new(Arc::new(set), &TasksConfig::default()).unwrap()
}

#[test]
fn the_reverse_task_type_round_trips_and_gives_partial_credit() {
    let r = reverse();
    let seeds = r.seed_tasks(exec()).unwrap();
    assert_eq!(seeds.len(), 3);
    let hello = &seeds[0];
    assert_eq!(
        (hello.problem.as_str(), hello.answer.as_str()),
        ("hello", "olleh")
    );

    // Solving: the perfect reply is correct, a partly right one partial, a bare word wrong,
    // an unterminated one a format error.
    let prompt = r.solver_prompt(hello).unwrap();
    assert!(prompt.ends_with("<in>'hello'<out>"), "{prompt}");
    let perfect = r.answer_text(hello).unwrap();
    assert_eq!(perfect, "'olleh'<end>");
    assert_eq!(r.grade(hello, &perfect, exec()).score, Score::correct());
    let partial = r.grade(hello, "'ollxh'<end>", exec()).score;
    assert_eq!(partial.verdict, Verdict::Partial);
    assert!((partial.value - 0.8).abs() < 1e-6, "{partial:?}");
    assert_eq!(r.grade(hello, "olleh<end>", exec()).score, Score::wrong());
    assert_eq!(
        r.grade(hello, "'olleh'", exec()).score,
        Score::format_error()
    );

    // Proposing: the prompt shows the references, a perfect proposal parses back to its task.
    let pp = r.proposer_prompt(&seeds[..2]).unwrap();
    assert!(pp.text.contains("<in>'azr'<out>'rza'<end>"), "{}", pp.text);
    assert!(pp.text.ends_with("<in>"), "{}", pp.text);
    let text = r.proposal_text(&seeds[2]).unwrap();
    let proposal = r.parse_proposal(&pp, &text).unwrap();
    let task = r
        .validate_proposal(&proposal, exec(), Provenance::proposed(3, 2))
        .unwrap();
    assert_eq!((task.kind, task.answer.as_str()), (KIND, "pu level"));
    for bad in [
        "42<out>",
        "'a\\'b'<out>",
        "'this one is far too long'<out>",
        "''<out>",
    ] {
        let p = r.parse_proposal(&pp, bad);
        let valid = p.map(|p| r.validate_proposal(&p, exec(), Provenance::seed()).is_ok());
        assert!(!valid.unwrap_or(false), "{bad} accepted");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_self_play_steps_train_the_custom_kind_with_the_custom_reward() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = tempfile::tempdir().unwrap();
    let cfg = azr::Config::from_toml_str_with_overrides(
        CONFIG_TOML,
        "config.toml",
        &[
            format!("model.path=\"{}\"", root.join("assets/tiny-base").display()),
            format!("run.run_dir=\"{}\"", dir.path().display()),
            "run.max_steps=2".to_string(),
        ],
    )
    .unwrap();
    let (rewards, max_tokens) = (
        cfg.raw.tasks.rewards.clone(),
        cfg.raw.sampling.max_new_tokens,
    );
    let coef = 0.25;
    let outcome = builder(cfg, coef).run().await.unwrap();
    assert_eq!((outcome.steps, outcome.version), (2, 2));

    let (mut penalised, mut differs) = (0, 0);
    for step in 0..2 {
        let path = dir.path().join(format!("rollouts/step_{step:06}.jsonl"));
        let text = std::fs::read_to_string(&path).unwrap();
        let mut per_key: BTreeMap<(String, String), usize> = BTreeMap::new();
        for line in text.lines() {
            let r: azr::DumpRecord = serde_json::from_str(line).unwrap();
            *per_key
                .entry((r.task.to_string(), r.role.to_string()))
                .or_default() += 1;
            let tagged = r.outcome.split_once(OUTCOME_TAG);
            if r.role.to_string() == "propose" || r.outcome.starts_with("no_reward") {
                assert!(tagged.is_none(), "penalty on {r:?}");
                continue;
            }
            // Every rewarded answer went through our reward actor: its tag carries the penalty
            // of the answer's length, and the reward is the built-in one minus that penalty.
            let (verdict, p) = tagged.unwrap_or_else(|| panic!("no penalty tag: {r:?}"));
            let p: f32 = p.parse().unwrap();
            let expect_p = coef * r.response_tokens as f32 / max_tokens as f32;
            assert!((p - expect_p).abs() < 1e-6, "{r:?}");
            let base = match verdict.trim() {
                "correct" => Some(rewards.solver(Score::correct())),
                "wrong" => Some(rewards.solver(Score::wrong())),
                "format_error" => Some(rewards.solver(Score::format_error())),
                "partial" => None,
                other => panic!("unexpected outcome {other}"),
            };
            if let Some(base) = base {
                assert!((r.reward - (base - p)).abs() < 1e-5, "{r:?}");
            } else {
                assert!(r.reward < rewards.correct - p + 1e-5, "{r:?}");
            }
            penalised += 1;
            differs += usize::from(p > 0.0);
        }
        // Both roles of the custom kind were trained, as many as the config's batch asks.
        for role in ["propose", "solve"] {
            assert_eq!(
                per_key.get(&(KIND.to_string(), role.to_string())),
                Some(&2),
                "reverse/{role} at step {step}: {per_key:?}"
            );
        }
    }
    assert!(penalised >= 8, "{penalised} penalised answers");
    assert!(differs > 0, "no answer had a length");
}
