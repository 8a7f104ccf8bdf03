//! The 1-shot RLVR commands through the `azr` binary: `azr select` puts the paper's pi_1 and
//! pi_13 at ranks 1 and 13 of the shipped history; `azr rlvr` (the `azr run` dataflow with the
//! RLVR preset) on the shipped tiny config and a random-weight micro model writes an accuracy
//! history `azr select` reads, evaluates pinned weight versions, trains on `--examples all`,
//! scores its benchmarks with `--eval-only`, and names a bad `--set` key.
//!
//! Run: `cargo test --release -p azr --test rlvr_cli`

use std::path::{Path, PathBuf};
use std::process::Command;

use azr_core::oneshot::dataset::load_jsonl;
use azr_core::oneshot::history::AccuracyHistory;
use azr_core::pretrain::train::init_model;
use azr_core::pretrain::{PretrainConfig, TinyModelConfig, TinyTokenizer};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn azr() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_azr"));
    c.current_dir(root())
        .env("RAYON_NUM_THREADS", "1")
        .env("RUST_LOG", "warn");
    c
}

#[test]
fn select_prints_pi1_first_and_pi13_thirteenth() {
    let dir = "../shared/data/one-shot-rlvr";
    let out = azr()
        .args(["select", "--history"])
        .arg(format!("{dir}/acc_step_500.json"))
        .args(["--top", "13", "--method", "std", "--dataset"])
        .arg(format!("{dir}/dsr_sub.jsonl"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let rows: Vec<Vec<&str>> = text
        .lines()
        .skip(1)
        .map(|l| l.split('\t').collect())
        .collect();
    assert_eq!(rows.len(), 13, "{text}");
    let pi1 = load_jsonl(root().join(dir).join("pi1.jsonl"))
        .unwrap()
        .remove(0);
    let pi13 = load_jsonl(root().join(dir).join("pi13.jsonl"))
        .unwrap()
        .remove(0);
    assert_eq!(&rows[0][..2], &["1", pi1.index.as_str()], "{text}");
    assert_eq!(&rows[12][..2], &["13", pi13.index.as_str()], "{text}");
    // pi_1's std (reference: 0.4068), its answer and the start of its problem.
    let score: f64 = rows[0][2].parse().unwrap();
    assert!((score - 0.40676).abs() < 1e-4, "{text}");
    assert_eq!(rows[0][3], "12.8");
    assert!(rows[0][4].starts_with("The pressure"), "{text}");
    // Without a dataset only rank, index and score are printed.
    let out = azr()
        .args(["select", "--top", "2", "--history"])
        .arg(format!("{dir}/acc_step_500.json"))
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 3, "{text}");
    assert_eq!(text.lines().nth(1).unwrap().split('\t').count(), 3);
}

fn row(index: usize, problem: &str, answer: &str) -> String {
    serde_json::json!({
        "prompt": [{"role": "user", "content": problem}],
        "reward_model": {"ground_truth": answer},
        "extra_info": {"index": index},
    })
    .to_string()
}

/// A random-weight micro model, a 3-row training pool (indices 3, 5, 9) and a 4-row held-out
/// set in `tmp/base`, and the shipped `config/one-shot-tiny.toml` pointed at them.
fn tiny_setup(tmp: &Path) -> PathBuf {
    let base = tmp.join("base");
    let tok = TinyTokenizer::build().unwrap();
    let cfg = PretrainConfig {
        model: TinyModelConfig {
            hidden_size: 32,
            intermediate_size: 64,
            num_hidden_layers: 1,
            num_attention_heads: 2,
            max_position_embeddings: 64,
            ..TinyModelConfig::default()
        },
        ..PretrainConfig::default()
    };
    let model = init_model(&cfg, &tok, &candle_core::Device::Cpu).unwrap();
    model.save_hf_dir(&base.join("model")).unwrap();
    let train: Vec<String> = [(3, "1+2", "3"), (5, "2+2", "4"), (9, "4+5", "9")]
        .iter()
        .map(|(i, p, a)| row(*i, p, a))
        .collect();
    std::fs::write(base.join("train.jsonl"), train.join("\n")).unwrap();
    let held: Vec<String> = (0..4)
        .map(|i| row(100 + i, &format!("{i}+1"), &(i + 1).to_string()))
        .collect();
    std::fs::write(base.join("heldout.jsonl"), held.join("\n")).unwrap();
    let shipped = std::fs::read_to_string(root().join("config/one-shot-tiny.toml")).unwrap();
    let text = shipped.replace("runs/demo/base", &base.display().to_string());
    assert_ne!(text, shipped);
    let config = tmp.join("tiny.toml");
    std::fs::write(&config, text).unwrap();
    config
}

fn ok(out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn jsonl(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn tiny_rlvr_run_writes_a_history_that_select_reads() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tiny_setup(tmp.path());
    let run_dir = tmp.path().join("run");
    let stdout = ok(azr()
        .arg("rlvr")
        .arg("--config")
        .arg(&config)
        .args(["--max-steps", "2", "--examples", "3,9", "--run-dir"])
        .arg(&run_dir)
        .args(["--set", "evaluator.every=1"])
        .output()
        .unwrap());
    assert!(stdout.contains("rlvr: 2 steps (version 2)"), "{stdout}");

    // Two examples < batch 16: every batch holds each 8 times x 8 samples; one accuracy per
    // example per trained batch, in multiples of 1/64.
    let history_path = run_dir.join("accuracy_history.json");
    let history = AccuracyHistory::load(&history_path).unwrap();
    assert_eq!(history.len(), 2);
    for key in ["3", "9"] {
        let accs = history.get(key).unwrap();
        assert_eq!(accs.len(), 2, "{key}");
        for a in accs {
            assert!((0.0..=1.0).contains(a));
            assert!((a * 64.0 - (a * 64.0).round()).abs() < 1e-9, "{a}");
        }
    }
    assert!(history.get("5").is_none());
    // The step log, and the configured run: mode rlvr, on-policy by the preset's file value.
    let steps = jsonl(&run_dir.join("train.jsonl"));
    assert_eq!(steps.len(), 2);
    // The preset keeps a reference (kl_coef > 0): each step logs its KL to it. k3 is never
    // negative in exact arithmetic; at the first step (policy = reference) f32 rounding of the
    // two forward passes leaves values of order 1e-9 either side of 0.
    for row in &steps {
        let kl = row["kl_reference"].as_f64();
        assert!(kl.is_some_and(|k| k >= -1e-6 && k.is_finite()), "{row}");
    }
    let written = std::fs::read_to_string(run_dir.join("config.toml")).unwrap();
    assert!(written.contains("mode = \"rlvr\""), "{written}");
    // Evaluations of pinned versions: the starting weights (no step), then after each step.
    let evals = jsonl(&run_dir.join("eval.jsonl"));
    let mut seen: Vec<(Option<u64>, u64)> = evals
        .iter()
        .map(|e| (e["step"].as_u64(), e["policy_version"].as_u64().unwrap()))
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        vec![(None, 0), (Some(0), 1), (Some(1), 2)],
        "{evals:?}"
    );
    assert!(evals
        .iter()
        .all(|e| e["benchmark"] == "heldout" && e["items"] == 4 && e["samples"] == 1));
    // The final checkpoint holds the history.
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(run_dir.join("checkpoints/step_000002/state.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(state["step"], 2);
    assert_eq!(state["mode_state"]["9"].as_array().unwrap().len(), 2);

    // `azr select` ranks the recorded examples.
    let text = ok(azr()
        .args(["select", "--top", "2", "--history"])
        .arg(&history_path)
        .arg("--dataset")
        .arg(tmp.path().join("base/train.jsonl"))
        .output()
        .unwrap());
    let mut ranked: Vec<&str> = text
        .lines()
        .skip(1)
        .map(|l| l.split('\t').nth(1).unwrap())
        .collect();
    ranked.sort_unstable();
    assert_eq!(ranked, ["3", "9"], "{text}");
}

#[test]
fn examples_all_trains_on_the_whole_pool() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tiny_setup(tmp.path());
    let run_dir = tmp.path().join("run");
    ok(azr()
        .arg("rlvr")
        .arg("--config")
        .arg(&config)
        .args(["--max-steps", "1", "--examples", "all", "--run-dir"])
        .arg(&run_dir)
        .args(["--set", "evaluator.at_start=false"])
        .output()
        .unwrap());
    let history = AccuracyHistory::load(run_dir.join("accuracy_history.json")).unwrap();
    let keys: Vec<&str> = history.iter().map(|(k, _)| k).collect();
    assert_eq!(keys, ["3", "5", "9"]);
    assert!(history.iter().all(|(_, v)| v.len() == 1));
    // every = 20 and no evaluation at start: nothing evaluated in one step.
    assert!(!run_dir.join("eval.jsonl").exists());
}

#[test]
fn eval_only_scores_the_configured_benchmarks() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tiny_setup(tmp.path());
    let text = ok(azr()
        .args(["rlvr", "--eval-only", "--config"])
        .arg(&config)
        .output()
        .unwrap());
    assert!(text.starts_with("heldout: accuracy "), "{text}");
    assert!(
        text.contains("(4 items x 1 samples; temperature 0 (greedy), top_p 1, max_new_tokens 6, seed 7; weights "),
        "{text}"
    );
    assert!(text.trim_end().ends_with("base/model)"), "{text}");
}

#[test]
fn bad_keys_and_examples_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tiny_setup(tmp.path());
    for (args, named) in [
        (vec!["--set", "rlvr.exampels=[3]"], "exampels"),
        (vec!["--set", "rlvr.batch=0"], "rlvr.batch"),
        (vec!["--examples", "3,x"], "--examples"),
        (vec!["--examples", "4"], "rlvr.examples"),
    ] {
        let out = azr()
            .args(["rlvr", "--max-steps", "1", "--config"])
            .arg(&config)
            .args(&args)
            .arg("--run-dir")
            .arg(tmp.path().join("run"))
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(named), "{args:?}: {err}");
    }
}
