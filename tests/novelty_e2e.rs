//! Proposal novelty end to end on the shipped tiny model (`assets/tiny-base`, `config/smoke.toml`)
//! with the diversity term on (`tasks.rewards.diversity = 0.5`): the novelty metrics are served,
//! every valid proposal's dump record carries its program shape and whether it was novel, its
//! reward is `learnability - 0.5` exactly when the shape was not novel, and the shape memory is
//! checkpointed.
//!
//! Run: `cargo test --release -p azr --test novelty_e2e`

mod support;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use support::{azr, free_addr, sample, scrape, wait_for};

const DIVERSITY: f64 = 0.5;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// AZR's learnability with the default rewards (`extreme` = -0.5).
fn learnability(s: f64) -> f64 {
    if s <= 0.0 || s >= 1.0 {
        -0.5
    } else {
        1.0 - s
    }
}

#[test]
fn diversity_term_metrics_dumps_and_checkpointed_memory() {
    let tmp = tempfile::tempdir().unwrap();
    let run_dir = tmp.path().join("run");
    let addr = free_addr();
    let set_run_dir = format!("run.run_dir=\"{}\"", run_dir.display());
    let set_diversity = format!("tasks.rewards.diversity={DIVERSITY}");
    let mut child = azr()
        .current_dir(root())
        .args([
            "run",
            "--config",
            "config/smoke.toml",
            "--max-steps",
            "100000",
        ])
        .args(["--metrics-addr", &addr])
        .args(["--set", &set_run_dir, "--set", &set_diversity])
        .args(["--set", "evaluator.every=0"])
        .stderr(std::fs::File::create(tmp.path().join("run.stderr")).unwrap())
        .spawn()
        .unwrap();
    let text = wait_for(
        &mut child,
        &tmp.path().join("run.stderr"),
        "4 steps in the metrics",
        Duration::from_secs(300),
        || scrape(&addr).filter(|t| sample(t, "azr_steps_total").unwrap_or(0.0) >= 4.0),
    );
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");

    // The metrics: every kind has the novelty series; the memory holds at least the seed shape.
    for kind in ["abduction", "deduction", "induction"] {
        for series in [
            format!("azr_proposals_novel_total{{task=\"{kind}\"}}"),
            format!("azr_novel_proposal_ratio{{task=\"{kind}\"}}"),
        ] {
            assert!(
                sample(&text, &series).is_some(),
                "{series} missing:\n{text}"
            );
        }
        let shapes = sample(&text, &format!("azr_program_shapes{{task=\"{kind}\"}}"));
        assert!(shapes.is_some_and(|n| n >= 1.0), "{kind}: {shapes:?}");
    }
    let novel_total: f64 = ["abduction", "deduction", "induction"]
        .iter()
        .filter_map(|k| sample(&text, &format!("azr_proposals_novel_total{{task=\"{k}\"}}")))
        .sum();
    let valid_total: f64 = ["abduction", "deduction", "induction"]
        .iter()
        .filter_map(|k| sample(&text, &format!("azr_proposals_valid_total{{task=\"{k}\"}}")))
        .sum();
    assert!(novel_total <= valid_total, "{novel_total} > {valid_total}");

    // The dumps: the reward of every valid proposal follows the formula.
    let ck = run_dir.join("checkpoints");
    let latest = std::fs::read_to_string(ck.join("latest")).unwrap();
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(ck.join(latest.trim()).join("state.json")).unwrap(),
    )
    .unwrap();
    let steps = state["step"].as_u64().unwrap();
    assert!(steps >= 4);
    let (mut valid, mut penalised) = (0usize, 0usize);
    let mut novel_shapes = HashSet::new();
    let mut valid_per_kind: BTreeMap<String, u64> = BTreeMap::new();
    for step in 0..steps {
        let p = run_dir
            .join("rollouts")
            .join(format!("step_{step:06}.jsonl"));
        for line in std::fs::read_to_string(&p).unwrap().lines() {
            let r: serde_json::Value = serde_json::from_str(line).unwrap();
            if r["role"] != "propose" {
                assert!(r.get("shape").is_none() && r.get("novel").is_none(), "{r}");
                continue;
            }
            let reward = r["reward"].as_f64().unwrap();
            let Some(s) = r["solve_rate"].as_f64() else {
                // Invalid or unparsable: no shape, and the diversity term does not apply.
                assert!(r.get("shape").is_none() && r.get("novel").is_none(), "{r}");
                if !r["outcome"].as_str().unwrap().starts_with("no_reward") {
                    assert_eq!(reward, -1.0, "{r}");
                }
                continue;
            };
            valid += 1;
            *valid_per_kind
                .entry(r["task"].as_str().unwrap().to_string())
                .or_default() += 1;
            let shape = r["shape"].as_str().expect("valid proposals carry a shape");
            let novel = r["novel"].as_bool().expect("and whether it is novel");
            // Induction reuses a buffered program, so the term never applies to it.
            let writes_program = r["task"] != "induction";
            let expected = learnability(s)
                - if novel || !writes_program {
                    0.0
                } else {
                    DIVERSITY
                };
            assert!((reward - expected).abs() < 1e-6, "{r}: expected {expected}");
            if !writes_program {
                assert!(!novel, "{r}");
            } else if novel {
                // A shape is novel once over the run, and never the seed's (identity) shape.
                assert!(novel_shapes.insert(shape.to_string()), "novel twice: {r}");
                assert_ne!(shape, "def v0 ( v1 ) :\n return v1");
            } else {
                penalised += 1;
            }
        }
    }
    assert!(valid > 0, "no valid proposal in {steps} steps");
    assert!(penalised > 0, "the penalty never applied in {steps} steps");

    // The shape memory is checkpointed with the buffers: per kind, the seed plus every valid
    // proposal admitted (at least those dumped; slots in flight at the checkpoint may add more).
    let shapes = &state["mode_state"]["shapes"];
    for kind in ["abduction", "deduction", "induction"] {
        let observed: u64 = shapes[kind]
            .as_array()
            .unwrap_or_else(|| panic!("no shape memory for {kind}: {shapes}"))
            .iter()
            .map(|e| e[1].as_u64().unwrap())
            .sum();
        let dumped = valid_per_kind.get(kind).copied().unwrap_or(0);
        assert!(
            observed > dumped,
            "{kind}: {observed} observed, {dumped} dumped"
        );
    }
}

#[test]
fn a_negative_diversity_is_rejected_naming_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let set_run_dir = format!("run.run_dir=\"{}\"", tmp.path().join("run").display());
    let out = azr()
        .current_dir(root())
        .args(["run", "--config", "config/smoke.toml", "--max-steps", "1"])
        .args(["--set", &set_run_dir])
        .args(["--set", "tasks.rewards.diversity=-0.5"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("rewards.diversity"), "{err}");
}
