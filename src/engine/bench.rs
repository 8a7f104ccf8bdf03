//! The engine micro-benchmark: rollout tokens per second of the continuous-batching engine
//! against one-request-at-a-time generation ([`crate::model::generate`] called once per
//! request, as the old inference thread served jobs), on a mixed self-play-shaped load,
//! both measured in the same run. `azr bench pipeline` reports its `engine_speedup`.

use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::config::{EngineConfig, WeightSync};
use super::error::EngineError;
use super::handle::spawn;
use super::request::{GenRequest, SampleOut};
use crate::model::sampling::{generate, SamplingParams};
use crate::model::Snapshot;

/// The load. Defaults follow `config/default.toml`: 8 proposer prompts (long), 32 solver
/// prompts, 8 estimator prompts with 4 samples each, 96 new tokens at temperature 1 with the
/// model's EOS as stop token, 32 engine slots.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineBenchConfig {
    /// Proposer requests (one sample each).
    pub propose: usize,
    /// Solver requests (one sample each).
    pub solve: usize,
    /// Estimator requests (`estimate_n` samples each).
    pub estimate: usize,
    /// Samples per estimator request.
    pub estimate_n: usize,
    /// Proposer prompt lengths, inclusive range of tokens.
    pub propose_prompt_len: (usize, usize),
    /// Solver and estimator prompt lengths, inclusive range of tokens.
    pub solve_prompt_len: (usize, usize),
    /// New tokens per sample at most.
    pub max_new_tokens: usize,
    /// Sampling temperature.
    pub temperature: f32,
    /// Engine slots.
    pub max_slots: usize,
    /// Seed of the prompts and of the samples.
    pub seed: u64,
}

impl Default for EngineBenchConfig {
    fn default() -> Self {
        Self {
            propose: 8,
            solve: 32,
            estimate: 8,
            estimate_n: 4,
            propose_prompt_len: (160, 320),
            solve_prompt_len: (48, 160),
            max_new_tokens: 96,
            temperature: 1.0,
            max_slots: 32,
            seed: 0,
        }
    }
}

/// What [`bench`] measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EngineBenchReport {
    /// Requests in the load.
    pub requests: usize,
    /// Samples in the load.
    pub samples: usize,
    /// Tokens the engine generated.
    pub engine_tokens: u64,
    /// Wall seconds of the engine run (submission of everything to the last answer).
    pub engine_secs: f64,
    /// `engine_tokens / engine_secs`.
    pub engine_tokens_per_s: f64,
    /// Tokens the one-request-at-a-time baseline generated.
    pub sequential_tokens: u64,
    /// Wall seconds of the baseline.
    pub sequential_secs: f64,
    /// `sequential_tokens / sequential_secs`.
    pub sequential_tokens_per_s: f64,
    /// `engine_tokens_per_s / sequential_tokens_per_s`.
    pub engine_speedup: f64,
    /// Whether both produced the same samples (same seeds; expected true up to float ties).
    pub identical_samples: bool,
    /// Mean rows per engine decode iteration.
    pub mean_batch: f64,
    /// Engine prefills (one per request).
    pub prefills: u64,
    /// Engine decode iterations.
    pub decode_steps: u64,
    /// Seconds the engine spent in prefill / decode.
    pub prefill_secs: f64,
    /// Seconds the engine spent in decode iterations.
    pub decode_secs: f64,
    /// Compute threads candle used.
    pub threads: usize,
}

/// The load of `cfg` for a model with `vocab` tokens, avoiding `stop` ids in prompts.
pub fn bench_load(cfg: &EngineBenchConfig, vocab: usize, stop: &[u32]) -> Vec<GenRequest> {
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x5eed);
    let params = |seed: u64| SamplingParams {
        temperature: cfg.temperature,
        max_new_tokens: cfg.max_new_tokens,
        stop_token_ids: stop.to_vec(),
        seed,
        ..SamplingParams::default()
    };
    let prompt = |(lo, hi): (usize, usize), rng: &mut ChaCha8Rng| -> Vec<u32> {
        let len = rng.random_range(lo.max(1)..=hi.max(lo.max(1)));
        (0..len)
            .map(|_| loop {
                let t = rng.random_range(0..vocab as u32);
                if !stop.contains(&t) {
                    break t;
                }
            })
            .collect()
    };
    let mut reqs = Vec::new();
    let mut seed = cfg.seed;
    let mut push = |reqs: &mut Vec<GenRequest>, p: Vec<u32>, n: usize| {
        reqs.push(GenRequest::new(p, n, params(seed)));
        seed += 1000;
    };
    for _ in 0..cfg.propose {
        let p = prompt(cfg.propose_prompt_len, &mut rng);
        push(&mut reqs, p, 1);
    }
    for _ in 0..cfg.solve {
        let p = prompt(cfg.solve_prompt_len, &mut rng);
        push(&mut reqs, p, 1);
    }
    for _ in 0..cfg.estimate {
        let p = prompt(cfg.solve_prompt_len, &mut rng);
        push(&mut reqs, p, cfg.estimate_n);
    }
    reqs
}

/// Runs the load through a fresh engine and through per-request `generate`, in that order,
/// on `snap`'s device, and compares.
///
/// # Errors
/// A forward failure, or the engine thread could not start.
pub fn bench(snap: &Snapshot, cfg: &EngineBenchConfig) -> Result<EngineBenchReport, EngineError> {
    let mcfg = snap.config();
    let stop = mcfg
        .eos_token_id
        .as_ref()
        .map(|t| t.to_vec())
        .unwrap_or_default();
    let reqs = bench_load(cfg, mcfg.vocab_size, &stop);
    let samples: usize = reqs.iter().map(|r| r.n).sum();

    // Warm-up (allocator, thread pool) outside both timings.
    let _ = generate(snap, &[reqs[0].prompt.clone()], &SamplingParams::greedy(2))?;

    let engine_cfg = EngineConfig {
        max_slots: cfg.max_slots,
        weight_sync: WeightSync::InFlight,
        max_waiting: samples.max(1),
        max_seq_len: 0,
    };
    let (engine, join) =
        spawn(snap.clone(), 0, engine_cfg).map_err(|e| EngineError::Spawn(e.into()))?;
    let start = Instant::now();
    let tickets = reqs
        .iter()
        .map(|r| engine.submit(r.clone()))
        .collect::<Result<Vec<_>, _>>()?;
    let engine_out = tickets
        .into_iter()
        .map(|t| t.wait())
        .collect::<Result<Vec<Vec<SampleOut>>, _>>()?;
    let engine_secs = start.elapsed().as_secs_f64();
    let stats = engine.stats();
    engine.shutdown();
    let _ = join.join();

    let start = Instant::now();
    let mut seq_out = Vec::with_capacity(reqs.len());
    for r in &reqs {
        seq_out.push(generate(snap, &vec![r.prompt.clone(); r.n], &r.params)?);
    }
    let sequential_secs = start.elapsed().as_secs_f64();

    let engine_tokens: u64 = engine_out
        .iter()
        .flatten()
        .map(|s| s.tokens.len() as u64)
        .sum();
    let sequential_tokens: u64 = seq_out
        .iter()
        .flatten()
        .map(|g| g.tokens.len() as u64)
        .sum();
    let identical_samples = engine_out
        .iter()
        .zip(&seq_out)
        .all(|(e, s)| e.len() == s.len() && e.iter().zip(s).all(|(a, b)| a.tokens == b.tokens));
    let engine_tokens_per_s = engine_tokens as f64 / engine_secs.max(1e-9);
    let sequential_tokens_per_s = sequential_tokens as f64 / sequential_secs.max(1e-9);
    Ok(EngineBenchReport {
        requests: reqs.len(),
        samples,
        engine_tokens,
        engine_secs,
        engine_tokens_per_s,
        sequential_tokens,
        sequential_secs,
        sequential_tokens_per_s,
        engine_speedup: engine_tokens_per_s / sequential_tokens_per_s.max(1e-9),
        identical_samples,
        mean_batch: stats.mean_batch(),
        prefills: stats.prefills,
        decode_steps: stats.decode_steps,
        prefill_secs: stats.prefill_secs,
        decode_secs: stats.decode_secs,
        threads: candle_core::utils::get_num_threads(),
    })
}
