//! The 1-shot RLVR commands through the `azr` binary: `azr select` puts the paper's pi_1 and
//! pi_13 at ranks 1 and 13 of the shipped history, and a short `azr rlvr` run on a tiny
//! random-weight model completes and writes its accuracy history, step log and evaluations.
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

#[test]
fn one_shot_smoke_run_writes_history() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base");
    // A random-weight micro model with the tiny character tokenizer.
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
    // The shipped tiny config, pointed at the temporary files.
    let shipped = std::fs::read_to_string(root().join("config/one-shot-tiny.toml")).unwrap();
    let text = shipped.replace("runs/demo/base", &base.display().to_string());
    assert_ne!(text, shipped);
    let config = tmp.path().join("tiny.toml");
    std::fs::write(&config, text).unwrap();
    let run_dir = tmp.path().join("run");

    let out = azr()
        .arg("rlvr")
        .arg("--config")
        .arg(&config)
        .args(["--max-steps", "3", "--examples", "3,9", "--run-dir"])
        .arg(&run_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("rlvr: 3 steps, 3 epochs"), "{stdout}");

    // Two examples < batch 16: every step is one epoch; each example has 3 accuracies, in
    // multiples of 1/64 (8 copies x 8 samples each per epoch).
    let history = AccuracyHistory::load(run_dir.join("accuracy_history.json")).unwrap();
    assert_eq!(history.len(), 2);
    for key in ["3", "9"] {
        let accs = history.get(key).unwrap();
        assert_eq!(accs.len(), 3, "{key}");
        for a in accs {
            assert!((0.0..=1.0).contains(a));
            assert!((a * 64.0 - (a * 64.0).round()).abs() < 1e-9, "{a}");
        }
    }
    assert!(history.get("5").is_none());
    let steps = std::fs::read_to_string(run_dir.join("train.jsonl")).unwrap();
    assert_eq!(steps.lines().count(), 3);
    let evals: Vec<serde_json::Value> = std::fs::read_to_string(run_dir.join("eval.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let eval_steps: Vec<u64> = evals.iter().map(|e| e["step"].as_u64().unwrap()).collect();
    assert_eq!(eval_steps, vec![0, 3]);
    assert!(evals
        .iter()
        .all(|e| e["benchmark"] == "heldout" && e["items"] == 4));
    // The final checkpoint holds the weights and the history.
    let ckpt = run_dir.join("checkpoints/step_000003");
    assert!(ckpt.join("model/config.json").exists());
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ckpt.join("state.json")).unwrap()).unwrap();
    assert_eq!(state["step"], 3);
    assert_eq!(
        state["mode_state"]["history"]["3"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
}
