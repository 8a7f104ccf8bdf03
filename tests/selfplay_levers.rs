//! The #16 levers end to end on the shipped tiny model (`config/smoke.toml`, 2 steps, rollout
//! dumps on): the estimator's samples trained as solver groups
//! (`selfplay.train_estimator_samples`), and the solver reward controls
//! (`tasks.rewards.control = "format" | "random"`), checked record by record in the dumps; and
//! greedy-miss targeting's probe (`tasks.buffer.prefer_greedy_miss`), checked in the checkpointed
//! buffers; and corpus replay in solver batches (`selfplay.replay_fraction`), by the source field
//! of the solver records.
//!
//! Run: `cargo test --release -p azr --test selfplay_levers`

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use support::azr;

/// `azr run --config config/smoke.toml --max-steps 2` with `sets`; every dumped record.
fn run(sets: &[&str]) -> Vec<serde_json::Value> {
    run_with_state(sets).0
}

/// [`run`], and the final checkpoint's `state.json`.
fn run_with_state(sets: &[&str]) -> (Vec<serde_json::Value>, serde_json::Value) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let tmp = tempfile::tempdir().unwrap();
    let run_dir: PathBuf = tmp.path().join("run");
    let set_run_dir = format!("run.run_dir=\"{}\"", run_dir.display());
    let mut cmd = azr();
    cmd.current_dir(&root)
        .args(["run", "--config", "config/smoke.toml", "--max-steps", "2"])
        .args(["--set", "metrics.enabled=false"])
        .args(["--set", &set_run_dir, "--set", "run.dump_rollouts=true"])
        .args(["--set", "evaluator.every=0"]);
    for s in sets {
        cmd.args(["--set", s]);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut records = Vec::new();
    for step in 0..2 {
        let p = run_dir.join(format!("rollouts/step_{step:06}.jsonl"));
        for line in std::fs::read_to_string(&p).unwrap().lines() {
            records.push(serde_json::from_str(line).unwrap());
        }
    }
    let ck = run_dir.join("checkpoints");
    let latest = std::fs::read_to_string(ck.join("latest")).unwrap();
    let state = std::fs::read_to_string(ck.join(latest.trim()).join("state.json")).unwrap();
    (records, serde_json::from_str(&state).unwrap())
}

/// `(solve rate, greedy verdict)` of every proposed task in the checkpointed buffers.
fn proposed_estimates(state: &serde_json::Value) -> Vec<(Option<f64>, Option<bool>)> {
    let buffers = state["mode_state"]["buffers"].as_object().unwrap();
    buffers
        .values()
        .flat_map(|b| b["tasks"].as_array().unwrap())
        .map(|t| &t["provenance"])
        .filter(|p| p["source"] == "proposed")
        .map(|p| (p["solve_rate"].as_f64(), p["greedy_correct"].as_bool()))
        .collect()
}

#[test]
fn greedy_miss_targeting_probes_every_admitted_proposal() {
    let (records, state) = run_with_state(&["tasks.buffer.prefer_greedy_miss=true"]);
    let valid = records
        .iter()
        .filter(|r| r["role"] == "propose" && r["outcome"] == "valid")
        .count();
    let proposed = proposed_estimates(&state);
    // Duplicates are not admitted, and proposals of the step in flight at the end may be.
    assert!(valid > 0, "no valid proposal in 2 smoke steps");
    assert!(!proposed.is_empty(), "no proposed task in the buffers");
    assert!(
        proposed.iter().all(|(p, g)| p.is_some() && g.is_some()),
        "each carries its solve rate and greedy verdict: {proposed:?}"
    );
    // Without the switch there is no probe.
    let (_, plain) = run_with_state(&[]);
    assert!(proposed_estimates(&plain)
        .iter()
        .all(|(p, g)| p.is_some() && g.is_none()));
}

#[test]
fn estimator_samples_become_one_more_solver_group_per_valid_proposal() {
    // smoke.toml: solve_batch 2, mc_samples 2, one answer per solver task.
    let records = run(&["selfplay.train_estimator_samples=true"]);
    let mut solves: BTreeMap<(u64, String), usize> = BTreeMap::new();
    let mut valid: BTreeMap<(u64, String), usize> = BTreeMap::new();
    for r in &records {
        let key = (
            r["step"].as_u64().unwrap(),
            r["task"].as_str().unwrap().to_string(),
        );
        match r["role"].as_str().unwrap() {
            "solve" => *solves.entry(key).or_default() += 1,
            _ if r["outcome"] == "valid" => *valid.entry(key).or_default() += 1,
            _ => {}
        }
    }
    assert!(valid.values().sum::<usize>() > 0, "no valid proposal");
    for (key, n) in &solves {
        let v = valid.get(key).copied().unwrap_or(0);
        assert_eq!(
            *n,
            2 + 2 * v,
            "{key:?}: {n} solve records, {v} valid proposals"
        );
    }
}

#[test]
fn the_format_control_rewards_every_well_formed_answer_as_correct() {
    let records = run(&["tasks.rewards.control=format"]);
    let mut wrong_but_rewarded = 0;
    for r in records.iter().filter(|r| r["role"] == "solve") {
        let reward = r["reward"].as_f64().unwrap();
        match r["outcome"].as_str().unwrap() {
            "format_error" => assert_eq!(reward, -1.0, "{r}"),
            o if o.starts_with("no_reward") => {}
            o => {
                assert_eq!(reward, 1.0, "{r}");
                wrong_but_rewarded += usize::from(o != "correct");
            }
        }
    }
    assert!(
        wrong_but_rewarded > 0,
        "no wrong answer was rewarded: not a control"
    );
}

#[test]
fn the_random_control_ignores_correctness() {
    let records = run(&["tasks.rewards.control=random"]);
    let solves: Vec<_> = records.iter().filter(|r| r["role"] == "solve").collect();
    let true_reward = |o: &str| if o == "correct" { 1.0 } else { -0.5 };
    let mut differ = 0;
    for r in &solves {
        let reward = r["reward"].as_f64().unwrap();
        assert!(reward == 1.0 || reward == -0.5, "{r}");
        differ += usize::from(reward != true_reward(r["outcome"].as_str().unwrap()));
    }
    assert!(
        differ > 0,
        "every random reward equalled the true one over {} answers",
        solves.len()
    );
}

#[test]
fn replay_takes_its_share_of_solver_tasks_from_the_corpus() {
    let sources = |records: &[serde_json::Value]| -> BTreeMap<String, usize> {
        let mut n = BTreeMap::new();
        for r in records.iter().filter(|r| r["role"] == "solve") {
            *n.entry(r["source"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
        n
    };
    // Every solver task replayed (the estimator's samples stay on proposals).
    let all = sources(&run(&[
        "selfplay.replay_fraction=1.0",
        "selfplay.replay_pool=16",
    ]));
    assert!(all.get("replay").copied().unwrap_or(0) > 0, "{all:?}");
    assert_eq!(all.keys().collect::<Vec<_>>(), ["replay"], "{all:?}");
    // Off by default: solver tasks come from the buffers (the seed, then proposals).
    let plain = sources(&run(&[]));
    assert!(!plain.contains_key("replay"), "{plain:?}");
    assert!(plain.contains_key("seed"), "{plain:?}");
}
