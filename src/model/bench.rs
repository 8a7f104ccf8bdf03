//! The model benchmark: training throughput (forward + backward + AdamW), sampling throughput
//! with and without the KV cache, and peak resident memory, on random-weight Qwen2 models; and,
//! given a Python with `torch` and `transformers`, the same measurements of PyTorch eager
//! (transformers' `Qwen2ForCausalLM`, `generate`) in the same run, with the ratios.
//! The binary exposes it as `azr bench model`.

use std::fmt;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use candle_core::Tensor;
use candle_nn::{Optimizer, ParamsAdamW};
use serde::{Deserialize, Serialize};

use super::bench_device::{engine_sweep, parity, train_flops_per_token, EngineSweep, ParityReport};
use super::config::{Architecture, ModelConfig};
use super::error::Result;
use super::kernels::{cross_entropy, Kernels};
use super::policy::Model;
use super::sampling::{generate, SamplingParams};
use super::tokenizer::Tokenizer;
use super::weights::random_tensors;
use crate::rl::optim::{shard_ranges, sharded_gradients, AdamW, AdamWConfig};

/// The PyTorch reference script run by [`run`] with `--reference-python`.
const REFERENCE_SCRIPT: &str = include_str!("bench_reference.py");

/// The shape of one benchmarked model (Qwen2 architecture; by default MHA, untied head, no
/// attention bias; `kv_heads`, `tie_embeddings` and `attention_bias` give Qwen2.5's shapes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BenchModel {
    /// Label in the report.
    pub name: String,
    /// Residual width.
    pub hidden: usize,
    /// Decoder layers.
    pub layers: usize,
    /// Attention heads (as many KV heads).
    pub heads: usize,
    /// MLP width.
    pub ffn: usize,
    /// Vocabulary size.
    pub vocab: usize,
    /// Key/value heads (grouped-query attention); default: as many as `heads`.
    #[serde(default)]
    pub kv_heads: Option<usize>,
    /// Output head tied to the input embedding. Default false.
    #[serde(default)]
    pub tie_embeddings: bool,
    /// Biases on the query/key/value projections (Qwen2). Default false.
    #[serde(default)]
    pub attention_bias: bool,
}

impl BenchModel {
    /// d256 L4 H4 ffn1024 V512, about 4.5 M parameters.
    pub fn small() -> Self {
        Self {
            name: "small-4.5M".into(),
            hidden: 256,
            layers: 4,
            heads: 4,
            ffn: 1024,
            vocab: 512,
            kv_heads: None,
            tie_embeddings: false,
            attention_bias: false,
        }
    }

    /// d512 L8 H8 ffn2048 V512, about 34 M parameters.
    pub fn medium() -> Self {
        Self {
            name: "medium-34M".into(),
            hidden: 512,
            layers: 8,
            heads: 8,
            ffn: 2048,
            vocab: 512,
            kv_heads: None,
            tie_embeddings: false,
            attention_bias: false,
        }
    }

    /// The model configuration of this shape.
    pub fn config(&self) -> ModelConfig {
        ModelConfig {
            architecture: Architecture::Qwen2,
            vocab_size: self.vocab,
            hidden_size: self.hidden,
            intermediate_size: self.ffn,
            num_hidden_layers: self.layers,
            num_attention_heads: self.heads,
            num_key_value_heads: Some(self.kv_heads.unwrap_or(self.heads)),
            head_dim: None,
            rope_theta: 10_000.0,
            rms_norm_eps: 1e-6,
            max_position_embeddings: 1024,
            tie_word_embeddings: self.tie_embeddings,
            attention_bias: self.attention_bias,
            bos_token_id: None,
            eos_token_id: None,
        }
    }
}

/// What to measure. Defaults: the small and medium models, train batch 16 x 128 for 3 timed
/// steps after 1 warm-up step, sampling batches 1 and 16 with a 16-token prompt and 64 new
/// tokens (after a 4-token warm-up call), with and without the KV cache, f32, seed 0, no
/// PyTorch reference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BenchConfig {
    /// Models to benchmark, in order.
    pub models: Vec<BenchModel>,
    /// Training batch size (rows).
    pub train_batch: usize,
    /// Training batch sizes to sweep, smallest first, instead of `train_batch`; the sweep
    /// stops at the first size that fails (out of memory) and the largest that ran is the
    /// reported `train`. Default empty (only `train_batch`).
    pub train_batches: Vec<usize>,
    /// Training sequence length (tokens per row).
    pub train_seq: usize,
    /// Timed training steps (the median is reported); one untimed warm-up step precedes them.
    pub train_steps: usize,
    /// Sampling batch sizes.
    pub sample_batches: Vec<usize>,
    /// Prompt length for sampling.
    pub prompt_len: usize,
    /// New tokens per sample.
    pub new_tokens: usize,
    /// Also measure sampling without the KV cache (slow: it re-runs the prefix every step).
    pub no_cache: bool,
    /// Also measure training with [`Kernels::Composed`] (softmax/RMSNorm/RoPE/SwiGLU built
    /// from candle primitives, as a plain candle model does), side by side under the same
    /// machine load.
    pub baseline: bool,
    /// `"f32"` or `"bf16"`.
    pub dtype: String,
    /// Seed of weights, data and sampling.
    pub seed: u64,
    /// Device: `"cpu"` (default) or `"cuda:N"` (needs the `cuda` feature).
    pub device: String,
    /// A Python interpreter with `torch` and `transformers`: when set, every model is also
    /// measured with PyTorch eager (same shapes, dtype and thread count) right after ours, and
    /// the report carries the ratios. Default: none.
    pub reference_python: Option<PathBuf>,
    /// Greedy tokens of the parity check (the device against the CPU, f32, same seeded
    /// weights); 0 (default) skips it.
    pub parity_tokens: usize,
    /// Batch sizes of the rollout-engine sweep ([`super::bench_device::engine_sweep`]), with
    /// `prompt_len` and `new_tokens`. Default empty (skipped).
    pub engine_batches: Vec<usize>,
    /// The device's dense peak in TFLOP/s at the bench dtype, for MFU. Default none.
    pub peak_tflops: Option<f64>,
    /// The device's memory bandwidth in GB/s, for the batch-1 decode bound. Default none.
    pub hbm_gbps: Option<f64>,
}

impl Default for BenchConfig {
    fn default() -> Self {
        Self {
            models: vec![BenchModel::small(), BenchModel::medium()],
            train_batch: 16,
            train_batches: Vec::new(),
            train_seq: 128,
            train_steps: 3,
            sample_batches: vec![1, 16],
            prompt_len: 16,
            new_tokens: 64,
            no_cache: true,
            baseline: true,
            dtype: "f32".into(),
            seed: 0,
            device: "cpu".into(),
            reference_python: None,
            parity_tokens: 0,
            engine_batches: Vec::new(),
            peak_tflops: None,
            hbm_gbps: None,
        }
    }
}

/// Training measurements (medians over the timed steps).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainBench {
    /// Rows per step.
    #[serde(default)]
    pub batch: usize,
    /// Training FLOPs per token ([`super::bench_device::train_flops_per_token`]).
    #[serde(default)]
    pub flops_per_token: f64,
    /// Model FLOPs utilisation against `peak_tflops`, when that is given.
    #[serde(default)]
    pub mfu: Option<f64>,
    /// Whole step: forward + loss + backward + AdamW, seconds.
    pub step_s: f64,
    /// Forward + cross-entropy, seconds.
    pub forward_s: f64,
    /// Backward, seconds.
    pub backward_s: f64,
    /// AdamW update, seconds.
    pub optimizer_s: f64,
    /// Trained tokens per second (`batch * seq / step_s`).
    pub tokens_per_s: f64,
    /// CPU time (user + system, all threads) of a step, seconds (median): the work done,
    /// less sensitive than wall time to other processes on the machine.
    pub step_cpu_s: f64,
    /// Loss of the first and the last step (it must fall on this repetitive data).
    pub first_loss: f32,
    /// Loss of the last step.
    pub last_loss: f32,
}

/// One size of the training-batch sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainPoint {
    /// Rows per step.
    pub batch: usize,
    /// Trained tokens per second; `None` when the size failed.
    pub tokens_per_s: Option<f64>,
    /// MFU, when measured and `peak_tflops` is given.
    pub mfu: Option<f64>,
    /// Why the size failed (the sweep stops there).
    pub error: Option<String>,
}

/// One sampling measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleBench {
    /// Number of prompts sampled together.
    pub batch: usize,
    /// Whether the KV cache was used.
    pub kv_cache: bool,
    /// Wall time of the whole `generate` call (prefill included), seconds.
    pub seconds: f64,
    /// CPU time of the call (user + system, all threads), seconds.
    pub cpu_s: f64,
    /// Generated tokens per second, all rows together.
    pub tokens_per_s: f64,
}

/// One sampling measurement of the PyTorch reference (`generate` with the KV cache).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReferenceSample {
    /// Number of prompts sampled together.
    pub batch: usize,
    /// Wall time of the `generate` call, seconds.
    pub seconds: f64,
    /// CPU time of the call (`time.process_time`), seconds.
    #[serde(default)]
    pub cpu_s: f64,
    /// Generated tokens per second, all rows together.
    pub tokens_per_s: f64,
}

/// The PyTorch eager reference of one model, measured in the same run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReferenceBench {
    /// Training step (forward + loss + backward + AdamW), seconds (median).
    pub train_step_s: f64,
    /// CPU time of a step (median), seconds.
    #[serde(default)]
    pub train_step_cpu_s: f64,
    /// Trained tokens per second.
    pub train_tokens_per_s: f64,
    /// Sampling throughputs per batch size.
    pub sampling: Vec<ReferenceSample>,
    /// `torch.__version__`.
    pub torch: String,
}

/// Everything measured for one model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelBench {
    /// The shape measured.
    pub model: BenchModel,
    /// Trainable parameters.
    pub params: usize,
    /// Training throughput (custom differentiable kernels).
    pub train: TrainBench,
    /// Every size of the training-batch sweep (one entry without a sweep).
    #[serde(default)]
    pub train_sweep: Vec<TrainPoint>,
    /// Training throughput with the composed-ops baseline, if measured.
    pub train_baseline: Option<TrainBench>,
    /// Sampling throughputs.
    pub sampling: Vec<SampleBench>,
    /// Greedy parity against the CPU, when `parity_tokens` > 0.
    #[serde(default)]
    pub parity: Option<ParityReport>,
    /// The rollout-engine sweep, when `engine_batches` is set.
    #[serde(default)]
    pub engine: Option<EngineSweep>,
    /// Peak resident set size while benchmarking this model (VmHWM), MiB; `None` where
    /// `/proc/self/status` is unavailable.
    pub peak_rss_mib: Option<f64>,
    /// The PyTorch reference, when requested and available.
    pub reference: Option<ReferenceBench>,
    /// Our training tokens/s over PyTorch's (> 1: we are faster).
    pub train_ratio_vs_pytorch: Option<f64>,
    /// Our batch-1 KV-cache sampling tokens/s over HF `generate`'s.
    pub sample_b1_ratio: Option<f64>,
    /// Our batch-16 KV-cache sampling tokens/s over HF `generate`'s.
    pub sample_b16_ratio: Option<f64>,
}

impl ModelBench {
    /// Our KV-cache sampling throughput at `batch` over the reference's.
    fn sample_ratio(&self, batch: usize) -> Option<f64> {
        let ours = self
            .sampling
            .iter()
            .find(|s| s.batch == batch && s.kv_cache)?;
        let theirs = self
            .reference
            .as_ref()?
            .sampling
            .iter()
            .find(|s| s.batch == batch)?;
        Some(ours.tokens_per_s / theirs.tokens_per_s)
    }
}

/// The benchmark's result; `Display` renders it as a table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchReport {
    /// Compute threads candle uses (`RAYON_NUM_THREADS`, else the cores).
    pub threads: usize,
    /// Dtype benchmarked.
    pub dtype: String,
    /// Device benchmarked.
    pub device: String,
    /// Train batch shape.
    pub train_shape: (usize, usize),
    /// Per-model results.
    pub models: Vec<ModelBench>,
    /// 1-, 5- and 15-minute load averages when the benchmark started (Linux).
    pub load_start: Option<[f64; 3]>,
    /// The same when it ended.
    pub load_end: Option<[f64; 3]>,
    /// The Python used for the reference, if any.
    pub reference_python: Option<String>,
    /// Why the reference could not be measured (e.g. that Python lacks torch).
    pub reference_error: Option<String>,
    /// The smallest per-model training ratio (ours / PyTorch tokens/s), if measured.
    pub train_ratio_vs_pytorch: Option<f64>,
    /// The smallest per-model batch-1 sampling ratio (ours / HF `generate`), if measured.
    pub sample_b1_ratio: Option<f64>,
    /// The smallest per-model batch-16 sampling ratio, if measured.
    pub sample_b16_ratio: Option<f64>,
}

/// Runs the benchmark on the configured device (the CPU by default).
///
/// # Errors
/// A bad dtype string or a tensor failure.
pub fn run(cfg: &BenchConfig) -> Result<BenchReport> {
    super::tune_allocator();
    let dtype = super::device::parse_dtype(&cfg.dtype)?;
    let device = super::device::parse_device(&cfg.device)?;
    let load_start = load_average();
    let mut models = Vec::new();
    let mut reference_error = None;
    for shape in &cfg.models {
        reset_peak_rss();
        let mcfg = shape.config();
        let tok = Tokenizer::synthetic(shape.vocab)?;
        let model = Model::random(mcfg.clone(), tok, &device, dtype, cfg.seed)?;
        tracing::info!(model = %shape.name, params = model.num_params(), "benchmarking");
        let parity = match cfg.parity_tokens {
            0 => None,
            n => Some(parity(
                &mcfg,
                model.tokenizer(),
                &device,
                &cfg.device,
                cfg.seed,
                cfg.prompt_len,
                n,
            )?),
        };
        let mut batches = if cfg.train_batches.is_empty() {
            vec![cfg.train_batch]
        } else {
            cfg.train_batches.clone()
        };
        batches.sort_unstable();
        let mut train = None;
        let mut train_sweep = Vec::new();
        for &b in &batches {
            match bench_train(&model, cfg, b, Kernels::Differentiable) {
                Ok(t) => {
                    tracing::info!(batch = b, tokens_per_s = t.tokens_per_s, mfu = ?t.mfu, "train point");
                    train_sweep.push(TrainPoint {
                        batch: b,
                        tokens_per_s: Some(t.tokens_per_s),
                        mfu: t.mfu,
                        error: None,
                    });
                    train = Some(t);
                }
                // The first size must run; a later one may hit the memory ceiling.
                Err(e) if train.is_some() => {
                    tracing::warn!(batch = b, error = %e, "train batch failed; sweep stops");
                    train_sweep.push(TrainPoint {
                        batch: b,
                        tokens_per_s: None,
                        mfu: None,
                        // The first line: candle appends a backtrace to some errors.
                        error: e.to_string().lines().next().map(str::to_string),
                    });
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        let Some(train) = train else {
            return Err(super::error::ModelError::InvalidInput(
                "train_batches holds no batch size".into(),
            ));
        };
        let train_baseline = if cfg.baseline {
            // Fresh weights so both runs start from the same point.
            let base = Model::from_tensors(
                model.config().clone(),
                random_tensors(model.config(), &device, dtype, cfg.seed)?,
                model.tokenizer().clone(),
                &device,
                dtype,
            )?;
            Some(bench_train(&base, cfg, train.batch, Kernels::Composed)?)
        } else {
            None
        };
        let snap = model.snapshot()?;
        let mut sampling = Vec::new();
        for &batch in &cfg.sample_batches {
            let prompts: Vec<Vec<u32>> = (0..batch)
                .map(|b| {
                    (0..cfg.prompt_len)
                        .map(|t| ((b * 31 + t * 7 + 2) % shape.vocab) as u32)
                        .collect()
                })
                .collect();
            let caches: &[bool] = if cfg.no_cache {
                &[true, false]
            } else {
                &[true]
            };
            for &kv_cache in caches {
                let params = SamplingParams {
                    temperature: 1.0,
                    max_new_tokens: cfg.new_tokens,
                    seed: cfg.seed,
                    use_cache: kv_cache,
                    ..SamplingParams::default()
                };
                // Warm-up (first-call allocations), as the reference does.
                let warm = SamplingParams {
                    max_new_tokens: cfg.new_tokens.min(4),
                    ..params.clone()
                };
                generate(&snap, &prompts, &warm)?;
                let (start, cpu0) = (Instant::now(), cpu_seconds());
                let gens = generate(&snap, &prompts, &params)?;
                let seconds = start.elapsed().as_secs_f64();
                let cpu_s = cpu_seconds() - cpu0;
                let produced: usize = gens.iter().map(|g| g.tokens.len()).sum();
                sampling.push(SampleBench {
                    batch,
                    kv_cache,
                    seconds,
                    cpu_s,
                    tokens_per_s: produced as f64 / seconds,
                });
            }
        }
        let params = model.num_params();
        let engine = if cfg.engine_batches.is_empty() {
            None
        } else {
            Some(
                engine_sweep(
                    &snap,
                    params,
                    &cfg.engine_batches,
                    cfg.prompt_len,
                    cfg.new_tokens,
                    cfg.seed,
                    cfg.hbm_gbps,
                )
                .map_err(|e| super::error::ModelError::InvalidInput(e.to_string()))?,
            )
        };
        let peak_rss_mib = peak_rss_mib();
        drop((model, snap));
        let reference = match (&cfg.reference_python, &reference_error) {
            (Some(py), None) => match run_reference(py, cfg, train.batch, shape) {
                Ok(r) => Some(r),
                Err(e) => {
                    tracing::warn!(python = %py.display(), error = %e, "no PyTorch reference");
                    reference_error = Some(e);
                    None
                }
            },
            _ => None,
        };
        let mut mb = ModelBench {
            model: shape.clone(),
            params,
            train_ratio_vs_pytorch: reference
                .as_ref()
                .map(|r| train.tokens_per_s / r.train_tokens_per_s),
            train,
            train_sweep,
            train_baseline,
            sampling,
            parity,
            engine,
            peak_rss_mib,
            reference,
            sample_b1_ratio: None,
            sample_b16_ratio: None,
        };
        mb.sample_b1_ratio = mb.sample_ratio(1);
        mb.sample_b16_ratio = mb.sample_ratio(16);
        models.push(mb);
    }
    let min_of =
        |f: fn(&ModelBench) -> Option<f64>| models.iter().filter_map(f).min_by(f64::total_cmp);
    Ok(BenchReport {
        threads: candle_core::utils::get_num_threads(),
        dtype: cfg.dtype.clone(),
        device: cfg.device.clone(),
        // The batch the (first) model's reported `train` ran at: the largest of a sweep.
        train_shape: (
            models.first().map_or(cfg.train_batch, |m| m.train.batch),
            cfg.train_seq,
        ),
        train_ratio_vs_pytorch: min_of(|m| m.train_ratio_vs_pytorch),
        sample_b1_ratio: min_of(|m| m.sample_b1_ratio),
        sample_b16_ratio: min_of(|m| m.sample_b16_ratio),
        models,
        load_start,
        load_end: load_average(),
        reference_python: cfg
            .reference_python
            .as_ref()
            .map(|p| p.display().to_string()),
        reference_error,
    })
}

/// Runs the embedded PyTorch script for one model shape; the error says why it could not.
fn run_reference(
    python: &std::path::Path,
    cfg: &BenchConfig,
    train_batch: usize,
    shape: &BenchModel,
) -> std::result::Result<ReferenceBench, String> {
    #[derive(Deserialize)]
    struct Out {
        error: Option<String>,
        train_step_s: Option<f64>,
        train_step_cpu_s: Option<f64>,
        train_tokens_per_s: Option<f64>,
        sampling: Option<Vec<ReferenceSample>>,
        torch: Option<String>,
    }
    let spec = serde_json::json!({
        "threads": candle_core::utils::get_num_threads(),
        "seed": cfg.seed,
        "dtype": cfg.dtype,
        "device": cfg.device,
        "train_batch": train_batch,
        "train_seq": cfg.train_seq,
        "train_steps": cfg.train_steps,
        "sample_batches": cfg.sample_batches,
        "prompt_len": cfg.prompt_len,
        "new_tokens": cfg.new_tokens,
        "models": [shape],
    });
    tracing::info!(python = %python.display(), model = %shape.name, "running the PyTorch reference");
    let out = Command::new(python)
        .arg("-c")
        .arg(REFERENCE_SCRIPT)
        .arg(spec.to_string())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let parsed: Option<Out> = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l.trim()).ok());
    match parsed {
        Some(Out { error: Some(e), .. }) => Err(format!(
            "{} lacks torch/transformers: {e}",
            python.display()
        )),
        Some(Out {
            train_step_s: Some(step),
            train_step_cpu_s,
            train_tokens_per_s: Some(tps),
            sampling: Some(sampling),
            torch,
            ..
        }) if out.status.success() => Ok(ReferenceBench {
            train_step_s: step,
            train_step_cpu_s: train_step_cpu_s.unwrap_or(f64::NAN),
            train_tokens_per_s: tps,
            sampling,
            torch: torch.unwrap_or_default(),
        }),
        _ => {
            let err = String::from_utf8_lossy(&out.stderr);
            let tail: String = err.lines().rev().take(5).collect::<Vec<_>>().join(" | ");
            Err(format!(
                "the PyTorch reference failed ({}): {tail}",
                out.status
            ))
        }
    }
}

/// CPU time (user + system) of this process so far, seconds.
fn cpu_seconds() -> f64 {
    // SAFETY: `getrusage` fills the zero-initialised struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer to a `rusage`.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return f64::NAN;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// 1-, 5- and 15-minute load averages (`/proc/loadavg`).
fn load_average() -> Option<[f64; 3]> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut it = text.split_whitespace().map(|x| x.parse::<f64>().ok());
    Some([it.next()??, it.next()??, it.next()??])
}

fn bench_train(model: &Model, cfg: &BenchConfig, b: usize, kernels: Kernels) -> Result<TrainBench> {
    let t = cfg.train_seq;
    let vocab = model.config().vocab_size;
    // A repeating pattern the model can learn within a few steps.
    let data: Vec<u32> = (0..b * (t + 1))
        .map(|i| ((i % 97) * 5 % vocab) as u32)
        .collect();
    let data = Tensor::from_vec(data, (b, t + 1), model.device())?;
    let inputs = data.narrow(1, 0, t)?;
    let targets = data.narrow(1, 1, t)?.flatten_all()?;
    // Ours: the fused cross-entropy and the project's fused AdamW (what the learner uses); the
    // composed baseline: what a plain candle model uses (candle_nn's loss and AdamW).
    let (lr, wd) = (1e-3, 0.01);
    let mut ours = (kernels != Kernels::Composed)
        .then(|| {
            AdamW::new(
                model.named_vars(),
                AdamWConfig {
                    lr,
                    weight_decay: wd,
                    ..AdamWConfig::default()
                },
            )
        })
        .transpose()
        .map_err(|e| super::error::ModelError::InvalidInput(e.to_string()))?;
    let mut plain = candle_nn::AdamW::new(
        model.vars(),
        ParamsAdamW {
            lr,
            weight_decay: wd,
            ..ParamsAdamW::default()
        },
    )?;
    let mut times = Vec::new();
    let mut losses = Vec::new();
    // Ours trains as the learner and the pretrainer do: the batch's rows split into one shard
    // per compute thread, each shard's forward and backward on its own thread, gradients
    // summed ([`sharded_gradients`]); each shard's mean loss is weighted by its share of the
    // rows, so the sum is the batch mean.
    let shards = shard_ranges(b, super::train_shards(b, model.device()));
    let shard_inputs = shards
        .iter()
        .map(|r| {
            Ok((
                inputs.narrow(0, r.start, r.len())?,
                targets.narrow(0, r.start * t, r.len() * t)?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    let named = model.named_vars();
    for step in 0..=cfg.train_steps {
        let (t0, cpu0) = (Instant::now(), cpu_seconds());
        let (t1, t2) = match &mut ours {
            Some(opt) => {
                let (g, outs) = sharded_gradients(&named, shards.len(), |i| {
                    let (x, y) = &shard_inputs[i];
                    let rows = x.dim(0)?;
                    let logits = model.transformer().forward(x, None, None, kernels)?;
                    let logits = logits.reshape((rows * t, vocab))?;
                    let loss = (cross_entropy(&logits, y, kernels)? * (rows as f64 / b as f64))?;
                    Ok::<_, super::error::ModelError>((loss, ()))
                })?;
                losses.push(outs.iter().map(|o| o.loss).sum::<f32>());
                // Forward time as seen by the slowest shard; the rest of the gradient phase
                // (backward and the summation of the shards' gradients) counts as backward.
                let fwd = outs.iter().map(|o| o.forward_s).fold(0.0, f64::max);
                let t2 = Instant::now();
                let t1 = (t0 + std::time::Duration::from_secs_f64(fwd)).min(t2);
                opt.step(&g, lr, 1.0)
                    .map_err(|e| super::error::ModelError::InvalidInput(e.to_string()))?;
                (t1, t2)
            }
            None => {
                let logits = model.transformer().forward(&inputs, None, None, kernels)?;
                let logits = logits.reshape((b * t, vocab))?;
                let loss = cross_entropy(&logits, &targets, kernels)?;
                losses.push(loss.to_scalar::<f32>()?);
                let t1 = Instant::now();
                let grads = loss.backward()?;
                let t2 = Instant::now();
                plain.step(&grads)?;
                (t1, t2)
            }
        };
        let t3 = Instant::now();
        if step > 0 {
            times.push([
                (t3 - t0).as_secs_f64(),
                (t1 - t0).as_secs_f64(),
                (t2 - t1).as_secs_f64(),
                (t3 - t2).as_secs_f64(),
                cpu_seconds() - cpu0,
            ]);
        }
    }
    let med = |k: usize| {
        let mut v: Vec<f64> = times.iter().map(|x| x[k]).collect();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    };
    let step_s = med(0);
    let tokens_per_s = (b * t) as f64 / step_s;
    let flops_per_token = train_flops_per_token(model.config(), t);
    Ok(TrainBench {
        batch: b,
        flops_per_token,
        mfu: cfg
            .peak_tflops
            .map(|p| flops_per_token * tokens_per_s / (p * 1e12)),
        step_s,
        forward_s: med(1),
        backward_s: med(2),
        optimizer_s: med(3),
        tokens_per_s,
        step_cpu_s: med(4),
        first_loss: losses.first().copied().unwrap_or(f32::NAN),
        last_loss: losses.last().copied().unwrap_or(f32::NAN),
    })
}

/// Resets the kernel's peak-RSS counter of this process (Linux `clear_refs` value 5).
fn reset_peak_rss() {
    // Best effort: on other systems (or without permission) the peak simply accumulates.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// VmHWM of this process in MiB.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "model benchmark: {}, {} threads, {}, train batch {}x{}",
            self.device, self.threads, self.dtype, self.train_shape.0, self.train_shape.1
        )?;
        let load = |l: &Option<[f64; 3]>| match l {
            Some([a, b, c]) => format!("{a:.2} {b:.2} {c:.2}"),
            None => "n/a".into(),
        };
        writeln!(
            f,
            "load average at start {}, at end {}",
            load(&self.load_start),
            load(&self.load_end)
        )?;
        for m in &self.models {
            let tr = &m.train;
            writeln!(
                f,
                "{} ({:.2} M params)",
                m.model.name,
                m.params as f64 / 1e6
            )?;
            writeln!(
                f,
                "  train step {:.3} s ({:.0} tok/s; cpu {:.3} s): forward {:.3} s, backward {:.3} s, AdamW {:.3} s; loss {:.3} -> {:.3}",
                tr.step_s, tr.tokens_per_s, tr.step_cpu_s, tr.forward_s, tr.backward_s, tr.optimizer_s,
                tr.first_loss, tr.last_loss
            )?;
            if let Some(mfu) = tr.mfu {
                writeln!(
                    f,
                    "  train batch {}: {:.0} FLOP/token, MFU {:.1} %",
                    tr.batch,
                    tr.flops_per_token,
                    100.0 * mfu
                )?;
            }
            if m.train_sweep.len() > 1 {
                for p in &m.train_sweep {
                    match (&p.error, p.tokens_per_s) {
                        (Some(e), _) => writeln!(f, "  sweep b{:<4} failed: {e}", p.batch)?,
                        (None, Some(tps)) => writeln!(
                            f,
                            "  sweep b{:<4} {tps:>10.0} tok/s{}",
                            p.batch,
                            p.mfu
                                .map(|m| format!(", MFU {:.1} %", 100.0 * m))
                                .unwrap_or_default()
                        )?,
                        (None, None) => {}
                    }
                }
            }
            if let Some(p) = &m.parity {
                writeln!(
                    f,
                    "  parity {} vs cpu (f32): {} of {} greedy tokens match{}, max |logit diff| {:.2e} (max |logit| {:.2})",
                    p.device,
                    p.matching_prefix,
                    p.tokens,
                    if p.identical { " (identical)" } else { "" },
                    p.max_abs_logit_diff,
                    p.max_abs_logit
                )?;
            }
            if let Some(e) = &m.engine {
                for p in &e.points {
                    writeln!(
                        f,
                        "  engine b{:<4} {:>10.1} tok/s ({} tokens in {:.2} s; decode {:.2} ms/step, {:.1} tok/s)",
                        p.batch, p.tokens_per_s, p.tokens, p.seconds, p.ms_per_decode_step, p.decode_tokens_per_s
                    )?;
                }
                if let (Some(bound), Some(frac)) = (e.b1_bound_tokens_per_s, e.b1_fraction_of_bound)
                {
                    writeln!(
                        f,
                        "  batch-1 decode: {:.1} % of the bandwidth bound ({:.0} tok/s = {:.0} GB/s / {:.3} GB of weights)",
                        100.0 * frac,
                        bound,
                        e.hbm_gbps.unwrap_or(f64::NAN),
                        e.weight_bytes as f64 / 1e9
                    )?;
                }
            }
            if let Some(b) = &m.train_baseline {
                writeln!(
                    f,
                    "  baseline (composed candle ops) step {:.3} s ({:.0} tok/s): forward {:.3} s, backward {:.3} s; speed-up x{:.2}",
                    b.step_s, b.tokens_per_s, b.forward_s, b.backward_s, b.step_s / tr.step_s
                )?;
            }
            for s in &m.sampling {
                writeln!(
                    f,
                    "  sample b{:<3} {:<8} {:>8.1} tok/s ({:.2} s, cpu {:.2} s)",
                    s.batch,
                    if s.kv_cache { "kv-cache" } else { "no-cache" },
                    s.tokens_per_s,
                    s.seconds,
                    s.cpu_s
                )?;
            }
            match m.peak_rss_mib {
                Some(mib) => writeln!(f, "  peak RSS {mib:.0} MiB")?,
                None => writeln!(f, "  peak RSS unavailable")?,
            }
            if let Some(r) = &m.reference {
                writeln!(
                    f,
                    "  PyTorch {} eager: train step {:.3} s ({:.0} tok/s; cpu {:.3} s) -> ours x{:.2}",
                    r.torch,
                    r.train_step_s,
                    r.train_tokens_per_s,
                    r.train_step_cpu_s,
                    m.train_ratio_vs_pytorch.unwrap_or(f64::NAN)
                )?;
                for s in &r.sampling {
                    let ratio = m.sample_ratio(s.batch).unwrap_or(f64::NAN);
                    writeln!(
                        f,
                        "  HF generate b{:<3} {:>8.1} tok/s ({:.2} s, cpu {:.2} s) -> ours x{ratio:.2}",
                        s.batch, s.tokens_per_s, s.seconds, s.cpu_s
                    )?;
                }
            }
        }
        if let Some(e) = &self.reference_error {
            writeln!(f, "PyTorch reference not measured: {e}")?;
        }
        let ratio = |r: Option<f64>| r.map_or_else(|| "n/a".to_string(), |r| format!("x{r:.2}"));
        if self.reference_python.is_some() {
            writeln!(
                f,
                "vs PyTorch (worst model): train {}, sample b1 {}, sample b16 {}",
                ratio(self.train_ratio_vs_pytorch),
                ratio(self.sample_b1_ratio),
                ratio(self.sample_b16_ratio)
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiny_benchmark_runs_and_learns() {
        let cfg = BenchConfig {
            models: vec![BenchModel {
                name: "tiny".into(),
                hidden: 32,
                layers: 1,
                heads: 2,
                ffn: 64,
                vocab: 64,
                kv_heads: None,
                tie_embeddings: false,
                attention_bias: false,
            }],
            train_batch: 4,
            train_seq: 32,
            train_steps: 8,
            sample_batches: vec![1, 3],
            new_tokens: 5,
            ..BenchConfig::default()
        };
        let report = run(&cfg).unwrap();
        let m = &report.models[0];
        assert_eq!(m.sampling.len(), 4);
        assert!(m.train.tokens_per_s > 0.0);
        assert!(m.train.last_loss < m.train.first_loss, "{:?}", m.train);
        // Same weights, same data, same optimizer: the baseline follows the same trajectory.
        let base = m.train_baseline.as_ref().unwrap();
        assert!((base.first_loss - m.train.first_loss).abs() < 1e-4);
        assert!((base.last_loss - m.train.last_loss).abs() < 1e-2);
        assert!(report.to_string().contains("no-cache"));
    }

    #[test]
    fn sweep_parity_and_engine_are_reported() {
        let cfg = BenchConfig {
            models: vec![BenchModel {
                layers: 1,
                ..crate::model::bench_device::tests::tiny_shape()
            }],
            train_batches: vec![4, 2],
            train_seq: 16,
            train_steps: 1,
            sample_batches: vec![],
            no_cache: false,
            baseline: false,
            prompt_len: 6,
            new_tokens: 5,
            parity_tokens: 4,
            engine_batches: vec![1, 2],
            peak_tflops: Some(1.0),
            hbm_gbps: Some(10.0),
            ..BenchConfig::default()
        };
        let report = run(&cfg).unwrap();
        let m = &report.models[0];
        // Sorted, both ran, the larger one is the reported `train`.
        let sizes: Vec<usize> = m.train_sweep.iter().map(|p| p.batch).collect();
        assert_eq!(sizes, [2, 4]);
        assert_eq!(m.train.batch, 4);
        let mfu = m.train.mfu.unwrap();
        let want = m.train.flops_per_token * m.train.tokens_per_s / 1e12;
        assert!((mfu - want).abs() <= 1e-12 + 1e-9 * want, "{mfu} vs {want}");
        assert!(m.parity.as_ref().unwrap().identical);
        let e = m.engine.as_ref().unwrap();
        assert_eq!(
            e.points.iter().map(|p| p.tokens).collect::<Vec<_>>(),
            [5, 10]
        );
        assert!(e.b1_fraction_of_bound.is_some());
        let text = report.to_string();
        assert!(
            text.contains("MFU")
                && text.contains("parity cpu vs cpu")
                && text.contains("bandwidth bound"),
            "{text}"
        );
    }
}
