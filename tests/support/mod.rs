//! Helpers shared by the pipeline and CLI tests: a tiny random-weight model on disk and
//! small run configs.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use azr_core::model::{Architecture, Model, ModelConfig, TokenIds, Tokenizer};
use candle_core::{DType, Device};

/// The `azr` binary under test.
pub fn azr() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_azr"));
    c.env("RAYON_NUM_THREADS", "1").env("RUST_LOG", "info");
    c
}

/// Write a random-weight Llama model (2 layers, width 32, 64-token synthetic vocabulary) into
/// `dir` in HF format.
pub fn tiny_model(dir: &Path) {
    let cfg = ModelConfig {
        architecture: Architecture::Llama,
        vocab_size: 64,
        hidden_size: 32,
        intermediate_size: 64,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        num_key_value_heads: Some(2),
        head_dim: None,
        rope_theta: 10_000.0,
        rms_norm_eps: 1e-6,
        max_position_embeddings: 1024,
        tie_word_embeddings: true,
        attention_bias: false,
        bos_token_id: None,
        eos_token_id: Some(TokenIds::One(1)),
    };
    let tok = Tokenizer::synthetic(64).expect("synthetic tokenizer");
    let m = Model::random(cfg, tok, &Device::Cpu, DType::F32, 7).expect("random model");
    m.save_hf_dir(dir).expect("save model");
}

/// A small self-play config over the model at `model` writing into `run_dir`.
pub fn config_text(model: &Path, run_dir: &Path, extra: &str) -> String {
    format!(
        r#"
[run]
seed = 3
max_steps = 3
run_dir = "{run}"
checkpoint_every = 2
staleness = 1
request_timeout_s = 60

[model]
path = "{model}"

[sampling]
max_new_tokens = 12

[selfplay]
propose_batch = 2
solve_batch = 2

[executor]
require_sandbox = false
timeout_ms = 2000

[tasks]
templates = "compact"
references = 2

[tasks.induction]
num_inputs = 4
num_visible = 2

[tasks.rewards]
mc_samples = 2

[learner.optimizer]
lr = 1e-3

[evaluator]
every = 0

[metrics]
enabled = false
{extra}
"#,
        run = run_dir.display(),
        model = model.display(),
    )
}

/// A temp dir holding a tiny model (`model/`), a run dir (`run/`) and a config (`cfg.toml`).
pub struct Fixture {
    /// Owns the files.
    pub dir: tempfile::TempDir,
}

impl Fixture {
    /// Build the fixture; `extra` is appended to the config (whole TOML sections).
    pub fn new(extra: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        tiny_model(&dir.path().join("model"));
        let f = Self { dir };
        f.write_config(extra);
        f
    }

    /// Rewrite the config with another `extra`.
    pub fn write_config(&self, extra: &str) {
        std::fs::write(
            self.config(),
            config_text(&self.model(), &self.run_dir(), extra),
        )
        .expect("write config");
    }

    /// Model dir.
    pub fn model(&self) -> PathBuf {
        self.dir.path().join("model")
    }

    /// Run dir.
    pub fn run_dir(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    /// A file for a spawned run's stderr, read back by [`Fixture::wait_for`].
    pub fn stderr_file(&self) -> std::fs::File {
        std::fs::File::create(self.stderr_path()).expect("stderr file")
    }

    fn stderr_path(&self) -> PathBuf {
        self.dir.path().join("run.stderr")
    }

    /// [`wait_for`] a run spawned with [`Fixture::stderr_file`], for at most 240 s.
    pub fn wait_for<T>(
        &self,
        child: &mut Child,
        what: &str,
        probe: impl FnMut() -> Option<T>,
    ) -> T {
        wait_for(
            child,
            &self.stderr_path(),
            what,
            Duration::from_secs(240),
            probe,
        )
    }

    /// Config path.
    pub fn config(&self) -> PathBuf {
        self.dir.path().join("cfg.toml")
    }

    /// `state.json` of the latest checkpoint.
    pub fn latest_state(&self) -> serde_json::Value {
        let ck = self.run_dir().join("checkpoints");
        let name = std::fs::read_to_string(ck.join("latest")).expect("latest checkpoint");
        let text = std::fs::read_to_string(ck.join(name.trim()).join("state.json")).expect("state");
        serde_json::from_str(&text).expect("state json")
    }

    /// Records of the rollout dump of `step`.
    pub fn dump(&self, step: u64) -> Vec<serde_json::Value> {
        let p = self
            .run_dir()
            .join("rollouts")
            .join(format!("step_{step:06}.jsonl"));
        std::fs::read_to_string(&p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .lines()
            .map(|l| serde_json::from_str(l).expect("dump line"))
            .collect()
    }
}

/// Assert success and return stderr as text (printing both streams on failure).
pub fn ok(out: Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        out.status.success(),
        "azr failed: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        stderr
    );
    stderr
}

/// Poll `probe` every 50 ms until it gives a value. Fails with the run's stderr (the file at
/// `stderr`) when `child` exits first or `timeout` passes (the child is then killed).
pub fn wait_for<T>(
    child: &mut Child,
    stderr: &Path,
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> Option<T>,
) -> T {
    let t0 = Instant::now();
    let log = || std::fs::read_to_string(stderr).unwrap_or_default();
    loop {
        if let Some(v) = probe() {
            return v;
        }
        if let Some(status) = child.try_wait().expect("try_wait") {
            panic!("azr exited ({status}) before {what}:\n{}", log());
        }
        if t0.elapsed() > timeout {
            let _ = child.kill();
            panic!("no {what} after {timeout:?}:\n{}", log());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A free local TCP address for `--metrics-addr`.
pub fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    format!("127.0.0.1:{}", l.local_addr().expect("local addr").port())
}

/// GET `/metrics` over plain HTTP/1.0 (no client crate needed); `None` while nothing answers.
pub fn scrape(addr: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    Some(body)
}

/// The value of the sample whose series is exactly `series` (name plus labels).
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.split_whitespace().next() == Some(series))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
}
