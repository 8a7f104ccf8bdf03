//! Pretrains the micro arithmetic model of the 1-shot RLVR CPU demonstration and writes its
//! RLVR training pool and held-out set (`scripts/one-shot-demo.sh` runs it).
//!
//! `cargo run --release -p azr-core --example arith_base -- OUT_DIR [STEPS] [SEED]`
//!
//! The task family is two-digit addition `a+b` (a, b in 0..=99), in the compact format
//! `Q: 23+45\nA: 68<end>` with the tiny character tokenizer. The 10,000 problems are shuffled
//! by the seed and split: the first 6,000 form the pretraining set, the next 128 the RLVR
//! training pool (`OUT_DIR/train.jsonl`), the next 400 the held-out set (`OUT_DIR/heldout.jsonl`),
//! so RLVR and evaluation only see problems the pretraining never did. Both files use the
//! DeepScaleR row layout of `dsr_sub.jsonl` (`prompt`, `reward_model.ground_truth`,
//! `extra_info.index`). The model (3 layers, width 96, ~0.3 M parameters) is written to
//! `OUT_DIR/model` as an HF directory, and its greedy held-out accuracy is printed.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use azr_core::eval::{evaluate_problems, AnswerFormat, EvalSettings, MathPrompt, Problem};
use azr_core::pretrain::config::{PretrainConfig, TinyModelConfig, TrainConfig};
use azr_core::pretrain::corpus::pack;
use azr_core::pretrain::tokenizer::TinyTokenizer;
use azr_core::pretrain::train::{init_model, Trainer};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

type AnyResult<T> = Result<T, Box<dyn std::error::Error>>;

const PRETRAIN: usize = 6000;
const POOL: usize = 128;
const HELDOUT: usize = 400;
/// Tokens per packed pretraining row.
const ROW: usize = 48;
/// Rows per pretraining step.
const ROWS: usize = 16;

fn row(index: usize, a: u32, b: u32) -> serde_json::Value {
    serde_json::json!({
        "prompt": [{"role": "user", "content": format!("{a}+{b}")}],
        "reward_model": {"ground_truth": (a + b).to_string()},
        "extra_info": {"index": index},
    })
}

fn main() -> AnyResult<()> {
    let mut args = std::env::args().skip(1);
    let out = PathBuf::from(
        args.next()
            .ok_or("usage: arith_base OUT_DIR [STEPS] [SEED]")?,
    );
    let steps: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(1500);
    let seed: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(0);
    std::fs::create_dir_all(&out)?;

    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut pairs: Vec<(u32, u32)> = (0..100)
        .flat_map(|a| (0..100).map(move |b| (a, b)))
        .collect();
    pairs.shuffle(&mut rng);
    let (pretrain, rest) = pairs.split_at(PRETRAIN);
    let (pool, rest) = rest.split_at(POOL);
    let heldout = &rest[..HELDOUT];
    for (name, set, offset) in [("train.jsonl", pool, 0), ("heldout.jsonl", heldout, 10_000)] {
        let mut f = std::fs::File::create(out.join(name))?;
        for (i, &(a, b)) in set.iter().enumerate() {
            writeln!(f, "{}", row(offset + i, a, b))?;
        }
    }

    let tok = TinyTokenizer::build()?;
    let cfg = PretrainConfig {
        seed,
        model: TinyModelConfig {
            hidden_size: 96,
            intermediate_size: 288,
            num_hidden_layers: 3,
            num_attention_heads: 4,
            max_position_embeddings: 128,
            ..TinyModelConfig::default()
        },
        ..PretrainConfig::default()
    };
    let model = init_model(&cfg, &tok, &candle_core::Device::Cpu)?;
    let train_cfg = TrainConfig {
        seq_len: ROW,
        batch_size: ROWS,
        lr: 3e-3,
        warmup_steps: 50,
        max_steps: steps,
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::new(model, train_cfg, tok.pad_id)?;
    let t0 = Instant::now();
    let per_step = ROWS * ROW / 16;
    for step in 0..steps {
        let samples: Vec<Vec<u32>> = (0..per_step)
            .map(|_| {
                let (a, b) = pretrain[rng.random_range(0..pretrain.len())];
                tok.encode(&format!("Q: {a}+{b}\nA: {}<end>", a + b))
            })
            .collect::<Result<_, _>>()?;
        let rows: Vec<Vec<u32>> = pack(&samples, ROW, tok.pad_id)?
            .into_iter()
            .take(ROWS)
            .collect();
        let s = trainer.step(&rows)?;
        if step % 100 == 0 || step + 1 == steps {
            println!(
                "step {step:5}  loss {:.4}  lr {:.2e}  {:.0}s",
                s.loss,
                s.lr,
                t0.elapsed().as_secs_f64()
            );
        }
    }
    let model = trainer.model();
    model.save_hf_dir(&out.join("model"))?;

    let prompt = MathPrompt {
        template: "Q: {problem}\nA: ".to_string(),
        answer: AnswerFormat::Plain,
        stop: vec!["<end>".to_string()],
    };
    let problems: Vec<Problem> = heldout
        .iter()
        .enumerate()
        .map(|(i, &(a, b))| Problem {
            id: (10_000 + i).to_string(),
            problem: format!("{a}+{b}"),
            answer: (a + b).to_string(),
        })
        .collect();
    let snap = model.snapshot()?;
    let score = evaluate_problems(
        &snap,
        &prompt,
        "heldout",
        &problems,
        &EvalSettings::greedy(8),
    )?;
    println!(
        "pretrained {steps} steps in {:.0}s; held-out greedy accuracy {:.3} ({} items)",
        t0.elapsed().as_secs_f64(),
        score.accuracy,
        score.items
    );
    Ok(())
}
