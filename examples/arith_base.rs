//! Pretrains the micro arithmetic model of the 1-shot RLVR CPU demonstration and writes its
//! RLVR training pool and held-out set (`scripts/one-shot-demo.sh` runs it).
//!
//! `cargo run --release -p azr-core --example arith_base -- OUT_DIR [STEPS] [SEED]`
//!
//! The task family is two-digit addition `a+b` (a, b in 0..=99), written as the math task type
//! formats it with the `compact` template set (solver prompt + perfect answer:
//! `23+45\n<out>68<end>`, the format `config/one-shot-tiny.toml` trains and evaluates in) with
//! the tiny character tokenizer. The 10,000 problems are shuffled
//! by the seed and split: the first 6,000 form the pretraining set, the next 128 the RLVR
//! training pool (`OUT_DIR/train.jsonl`), the next 400 the held-out set (`OUT_DIR/heldout.jsonl`),
//! and the next 400 a validation set to tune on (`OUT_DIR/validation.jsonl`), so RLVR and
//! evaluation only see problems the pretraining never did. The files use the
//! DeepScaleR row layout of `dsr_sub.jsonl` (`prompt`, `reward_model.ground_truth`,
//! `extra_info.index`). The model (3 layers, width 96, ~0.3 M parameters) is written to
//! `OUT_DIR/model` as an HF directory, and its greedy held-out accuracy (generated through the
//! rollout engine, graded by the math task type) is printed.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use std::sync::Arc;

use azr_core::engine::{self, EngineConfig, GenRequest};
use azr_core::model::SamplingParams;
use azr_core::pretrain::config::{PretrainConfig, TinyModelConfig, TrainConfig};
use azr_core::pretrain::corpus::pack;
use azr_core::pretrain::tokenizer::TinyTokenizer;
use azr_core::pretrain::train::{init_model, Trainer};
use azr_core::tasks::math::Math;
use azr_core::tasks::{math_grader, Provenance, Task, TaskType, TemplateSet};
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
    let (heldout, rest) = rest.split_at(HELDOUT);
    let validation = &rest[..HELDOUT];
    for (name, set, offset) in [
        ("train.jsonl", pool, 0),
        ("heldout.jsonl", heldout, 10_000),
        ("validation.jsonl", validation, 20_000),
    ] {
        let mut f = std::fs::File::create(out.join(name))?;
        for (i, &(a, b)) in set.iter().enumerate() {
            writeln!(f, "{}", row(offset + i, a, b))?;
        }
    }

    let math = Math::new(Arc::new(TemplateSet::resolve("compact")?))?;
    let task = |a: u32, b: u32| {
        Task::math(
            format!("{a}+{b}"),
            (a + b).to_string(),
            Provenance::benchmark("arith", format!("{a}+{b}")),
        )
    };
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
                let t = task(a, b);
                let text = format!("{}{}", math.solver_prompt(&t)?, math.answer_text(&t)?);
                Ok(tok.encode(&text)?)
            })
            .collect::<AnyResult<_>>()?;
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

    // Greedy held-out accuracy through the rollout engine, graded by the math task type.
    let snap = model.snapshot()?;
    let stop: Vec<u32> = ["<end>"]
        .iter()
        .filter_map(|s| snap.tokenizer().token_to_id(s))
        .chain(snap.config().eos_token_id.iter().flat_map(|t| t.to_vec()))
        .collect();
    let (engine, join) = engine::spawn(snap.clone(), 0, EngineConfig::default())?;
    let params = SamplingParams {
        temperature: 0.0,
        max_new_tokens: 8,
        stop_token_ids: stop,
        ..SamplingParams::default()
    };
    let tasks: Vec<Task> = heldout.iter().map(|&(a, b)| task(a, b)).collect();
    let tickets = tasks
        .iter()
        .map(|t| {
            let prompt = snap.tokenizer().encode(&math.solver_prompt(t)?, true)?;
            Ok(engine.submit(GenRequest {
                prompt,
                n: 1,
                params: params.clone(),
                priority: 0,
            })?)
        })
        .collect::<AnyResult<Vec<_>>>()?;
    let mut correct = 0usize;
    for (ticket, t) in tickets.into_iter().zip(&tasks) {
        for s in ticket.wait()? {
            let text = snap.tokenizer().decode(&s.tokens, false)?;
            let ok = math
                .parse_answer(&text)
                .is_ok_and(|a| math_grader::is_equiv(&a.text, &t.answer));
            correct += usize::from(ok);
        }
    }
    engine.shutdown();
    let _ = join.join();
    let accuracy = correct as f64 / tasks.len().max(1) as f64;
    println!(
        "pretrained {steps} steps in {:.0}s; held-out greedy accuracy {:.3} ({} items)",
        t0.elapsed().as_secs_f64(),
        accuracy,
        tasks.len()
    );
    Ok(())
}
