//! The `azr` subcommands on small inputs.

mod support;

use support::{azr, ok, tiny_model, Fixture};

#[test]
fn generate_is_deterministic_for_a_seed() {
    let dir = tempfile::tempdir().unwrap();
    tiny_model(dir.path());
    let run = |seed: &str| {
        let out = azr()
            .args([
                "generate",
                "--prompt",
                "w3 w4 w5",
                "--max-tokens",
                "8",
                "--temperature",
                "1.0",
                "--seed",
                seed,
                "--model",
            ])
            .arg(dir.path())
            .output()
            .unwrap();
        ok(out.clone());
        String::from_utf8(out.stdout).unwrap()
    };
    let a = run("5");
    assert_eq!(a, run("5"));
    assert!(!a.trim().is_empty());
    // Every generated word is a token of the synthetic vocabulary.
    for w in a.split_whitespace() {
        assert!(w == "<eos>" || w == "<unk>" || w.starts_with('w'), "{w}");
    }
}

#[test]
fn bench_pipeline_reports_both_variants() {
    let f = Fixture::new("");
    let out = azr()
        .args(["bench", "pipeline", "--steps", "2", "--config"])
        .arg(f.config())
        .output()
        .unwrap();
    ok(out.clone());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["steps"], 2);
    // Every variant in one run: S = 1, S = 0 and the engine against one request at a time.
    assert_eq!(v["overlap"]["steps"].as_array().unwrap().len(), 2);
    assert_eq!(v["on_policy"]["steps"].as_array().unwrap().len(), 2);
    assert_eq!(
        (
            v["overlap"]["staleness"].as_u64(),
            v["on_policy"]["staleness"].as_u64()
        ),
        (Some(1), Some(0))
    );
    let o = v["overlap"]["samples_per_second"].as_f64().unwrap();
    let p = v["on_policy"]["samples_per_second"].as_f64().unwrap();
    assert!(o > 0.0 && p > 0.0);
    assert!((v["speedup"].as_f64().unwrap() - o / p).abs() < 1e-9);
    let idle = v["trainer_idle_ratio"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&idle));
    assert!(v["engine_speedup"].as_f64().unwrap() > 0.0);
    assert_eq!(v["engine"]["identical_samples"], true);
}

#[test]
fn help_lists_every_subcommand() {
    let out = azr().arg("--help").output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    for cmd in [
        "run", "eval", "exec", "generate", "bench", "pretrain", "select", "rlvr", "node",
    ] {
        assert!(text.contains(cmd), "{cmd} missing from --help");
    }
}

#[test]
fn select_ranks_pi1_first_and_pi13_thirteenth() {
    let d = "../shared/data/one-shot-rlvr";
    let out = azr()
        .args(["select", "--top", "13", "--history"])
        .arg(format!("{d}/acc_step_500.json"))
        .arg("--dataset")
        .arg(format!("{d}/dsr_sub.jsonl"))
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .unwrap();
    ok(out.clone());
    let text = String::from_utf8(out.stdout).unwrap();
    let rows: Vec<Vec<&str>> = text
        .lines()
        .skip(1)
        .map(|l| l.split('\t').collect())
        .collect();
    assert_eq!(rows.len(), 13);
    // pi_1 (DSR-sub index 124, answer 12.8) and pi_13 (index 682, answer 4/3).
    assert_eq!(&rows[0][..2], &["1", "124"]);
    assert!(rows[0][4].starts_with("The pressure"));
    assert_eq!(rows[0][3], "12.8");
    assert_eq!(&rows[12][..2], &["13", "682"]);
    assert_eq!(rows[12][3], "\\frac{4}{3}");
    let scores: Vec<f64> = rows.iter().map(|r| r[2].parse().unwrap()).collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]));
}

#[test]
fn exec_runs_one_program_and_a_batch() {
    let dir = tempfile::tempdir().unwrap();
    let code = dir.path().join("f.py");
    std::fs::write(&code, "def f(a, b):\n    return a * 4 - b\n").unwrap();
    let cfg = dir.path().join("cfg.toml");
    std::fs::write(&cfg, "[executor]\nrequire_sandbox = false\n").unwrap();
    let out = azr()
        .args(["exec", "--input", "9, 3", "--code"])
        .arg(&code)
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    ok(out.clone());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], "ok");
    assert_eq!(v["repr"], "33");

    let batch = dir.path().join("jobs.jsonl");
    std::fs::write(
        &batch,
        concat!(
            "{\"code\": \"def f(x):\\n    return x[::-1]\", \"input\": \"'abc'\"}\n",
            "{\"code\": \"def f(x):\\n    return 1 // x\", \"input\": \"0\"}\n",
        ),
    )
    .unwrap();
    let out = azr()
        .args(["exec", "--batch"])
        .arg(&batch)
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    ok(out.clone());
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["repr"], "'cba'");
    assert_eq!(lines[1]["status"], "error");
}

#[test]
fn eval_scores_a_cruxeval_slice() {
    let f = Fixture::new("");
    let out = azr()
        .args([
            "eval",
            "--benchmark",
            "cruxeval-o",
            "--limit",
            "3",
            "--config",
        ])
        .arg(f.config())
        .arg("--items")
        .arg(f.dir.path().join("items.jsonl"))
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .unwrap();
    ok(out.clone());
    let text = String::from_utf8(out.stdout).unwrap();
    // A random-weight model answers nothing right; the line reports the decoding used.
    assert!(
        text.starts_with("cruxeval-o: accuracy 0.0000 (3 items x 1 samples; temperature 0"),
        "{text}"
    );
    // One line per item, in order, with the item's id.
    let items = std::fs::read_to_string(f.dir.path().join("items.jsonl")).unwrap();
    let rows: Vec<serde_json::Value> = items
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 3, "{items}");
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r["benchmark"], "cruxeval-o");
        assert_eq!(r["index"], i);
        assert_eq!(r["correct"], 0);
        assert_eq!(r["samples"], 1);
        assert_eq!(r["id"], format!("sample_{i}"), "{r}");
    }
}
