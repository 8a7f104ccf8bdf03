//! The `azr` subcommands on small inputs.

mod support;

use support::{azr, ok, tiny_model, Fixture};

#[test]
fn generate_is_deterministic_for_a_seed() {
    let dir = tempfile::tempdir().unwrap();
    tiny_model(dir.path());
    let run = |seed: &str| {
        let out = azr()
            .args(["generate", "--prompt", "w3 w4 w5", "--max-tokens", "8", "--temperature", "1.0", "--seed", seed, "--model"])
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
    assert_eq!(v["overlap_steps"].as_array().unwrap().len(), 2);
    assert_eq!(v["on_policy_steps"].as_array().unwrap().len(), 2);
    let o = v["overlap_step_seconds"].as_f64().unwrap();
    let p = v["on_policy_step_seconds"].as_f64().unwrap();
    assert!(o > 0.0 && p > 0.0);
    assert!((v["speedup"].as_f64().unwrap() - p / o).abs() < 1e-9);
}

#[test]
fn help_lists_every_subcommand() {
    let out = azr().arg("--help").output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    for cmd in ["run", "eval", "exec", "generate", "bench", "pretrain", "select"] {
        assert!(text.contains(cmd), "{cmd} missing from --help");
    }
}
