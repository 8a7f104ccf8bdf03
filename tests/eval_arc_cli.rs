//! `azr eval --benchmark arc-easy|arc-challenge` on the shipped tiny model (`assets/tiny-base`).
//!
//! Run: `cargo test --release -p azr --test eval_arc_cli`. The data is read from
//! `../shared/data/arc` next to the project root, or from `$AZR_SHARED_DATA/arc` when that is
//! set (a git worktree elsewhere).

mod support;

use std::path::{Path, PathBuf};

use support::{azr, ok};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn data_dir() -> PathBuf {
    match std::env::var_os("AZR_SHARED_DATA") {
        Some(d) => PathBuf::from(d).join("arc"),
        None => root().join("../shared/data/arc"),
    }
}

/// A config over the shipped tiny model; `extra` goes into `[evaluator]`, `tail` after it.
fn config(dir: &Path, extra: &str, tail: &str) -> PathBuf {
    let path = dir.join("cfg.toml");
    let text = format!(
        "[model]\npath = \"{}\"\n\n[evaluator]\narc_dir = \"{}\"\n{extra}\n{tail}\n[metrics]\nenabled = false\n",
        root().join("assets/tiny-base").display(),
        data_dir().display(),
    );
    std::fs::write(&path, text).expect("write config");
    path
}

fn eval(cfg: &Path, benchmark: &str, limit: &str) -> std::process::Output {
    azr()
        .args([
            "eval",
            "--benchmark",
            benchmark,
            "--limit",
            limit,
            "--config",
        ])
        .arg(cfg)
        .current_dir(root())
        .output()
        .expect("run azr")
}

/// The accuracy of a score line `NAME: accuracy X (...)`.
fn accuracy(line: &str) -> f64 {
    line.split_whitespace()
        .nth(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no accuracy in {line:?}"))
}

#[test]
fn eval_arc_easy_limit_5_prints_accuracy_and_decoding() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "", "");
    let out = eval(&cfg, "arc-easy", "5");
    ok(out.clone());
    let text = String::from_utf8(out.stdout).unwrap();
    println!("{text}");
    assert!(text.starts_with("arc-easy: accuracy "), "{text}");
    let acc = accuracy(&text);
    // 5 greedy answers: the accuracy is k / 5.
    assert!(
        (0.0..=1.0).contains(&acc) && ((acc * 5.0).round() - acc * 5.0).abs() < 1e-9,
        "{text}"
    );
    assert!(
        text.contains(
            "(5 items x 1 samples; temperature 0 (greedy), top_p 1, max_new_tokens 96, seed 42; weights "
        ),
        "{text}"
    );
    assert!(text.trim_end().ends_with("assets/tiny-base)"), "{text}");
}

#[test]
fn eval_arc_challenge_sampled_avg_at_k() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        "temperature = 0.8\nsamples = 2\nmax_new_tokens = 8",
        "[evaluator.arc]\ntemplate = \"Q: {question}\\n{choices}\\nA:\"\nchoice = \"({label}) {text}\"\n",
    );
    let out = eval(&cfg, "arc_challenge", "2");
    ok(out.clone());
    let text = String::from_utf8(out.stdout).unwrap();
    println!("{text}");
    assert!(text.starts_with("arc-challenge: accuracy "), "{text}");
    assert!((0.0..=1.0).contains(&accuracy(&text)), "{text}");
    assert!(
        text.contains(
            "(2 items x 2 samples; temperature 0.8, top_p 1, max_new_tokens 8, seed 42, avg@2;"
        ),
        "{text}"
    );
}

#[test]
fn a_bad_arc_prompt_names_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        "",
        "[evaluator.arc]\ntemplate = \"Question: {question}\\nAnswer:\"\n",
    );
    let out = eval(&cfg, "arc-easy", "1");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("evaluator.arc") && err.contains("{choices}"),
        "{err}"
    );
}
