//! The model benchmark: training throughput (forward + backward + AdamW), sampling throughput
//! with and without the KV cache, and peak resident memory, on random-weight Qwen2 models.
//! The binary exposes it as `azr bench model`.

use std::fmt;
use std::time::Instant;

use candle_core::{DType, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use serde::{Deserialize, Serialize};

use super::config::{Architecture, ModelConfig};
use super::error::Result;
use super::kernels::Kernels;
use super::policy::Model;
use super::sampling::{generate, SamplingParams};
use super::tokenizer::Tokenizer;
use super::weights::random_tensors;

/// The shape of one benchmarked model (Qwen2 architecture, MHA, untied head).
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
            num_key_value_heads: Some(self.heads),
            head_dim: None,
            rope_theta: 10_000.0,
            rms_norm_eps: 1e-6,
            max_position_embeddings: 1024,
            tie_word_embeddings: false,
            attention_bias: false,
            bos_token_id: None,
            eos_token_id: None,
        }
    }
}

/// What to measure. Defaults: the small and medium models, train batch 16 x 128 for 3 timed
/// steps after 1 warm-up step, sampling batches 1 and 16 with a 16-token prompt and 64 new
/// tokens, with and without the KV cache, f32, seed 0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BenchConfig {
    /// Models to benchmark, in order.
    pub models: Vec<BenchModel>,
    /// Training batch size (rows).
    pub train_batch: usize,
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
}

impl Default for BenchConfig {
    fn default() -> Self {
        Self {
            models: vec![BenchModel::small(), BenchModel::medium()],
            train_batch: 16,
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
        }
    }
}

/// Training measurements (medians over the timed steps).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainBench {
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
    /// Loss of the first and the last step (it must fall on this repetitive data).
    pub first_loss: f32,
    /// Loss of the last step.
    pub last_loss: f32,
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
    /// Generated tokens per second, all rows together.
    pub tokens_per_s: f64,
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
    /// Training throughput with the composed-ops baseline, if measured.
    pub train_baseline: Option<TrainBench>,
    /// Sampling throughputs.
    pub sampling: Vec<SampleBench>,
    /// Peak resident set size while benchmarking this model (VmHWM), MiB; `None` where
    /// `/proc/self/status` is unavailable.
    pub peak_rss_mib: Option<f64>,
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
}

/// Runs the benchmark on the configured device (the CPU by default).
///
/// # Errors
/// A bad dtype string or a tensor failure.
pub fn run(cfg: &BenchConfig) -> Result<BenchReport> {
    let dtype = super::device::parse_dtype(&cfg.dtype)?;
    let device = super::device::parse_device(&cfg.device)?;
    let mut models = Vec::new();
    for shape in &cfg.models {
        reset_peak_rss();
        let mcfg = shape.config();
        let tok = Tokenizer::synthetic(shape.vocab)?;
        let model = Model::random(mcfg, tok, &device, dtype, cfg.seed)?;
        tracing::info!(model = %shape.name, params = model.num_params(), "benchmarking");
        let train = bench_train(&model, cfg, Kernels::Differentiable)?;
        let train_baseline = if cfg.baseline {
            // Fresh weights so both runs start from the same point.
            let base = Model::from_tensors(
                model.config().clone(),
                random_tensors(model.config(), &device, dtype, cfg.seed)?,
                model.tokenizer().clone(),
                &device,
                dtype,
            )?;
            Some(bench_train(&base, cfg, Kernels::Composed)?)
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
                let start = Instant::now();
                let gens = generate(&snap, &prompts, &params)?;
                let seconds = start.elapsed().as_secs_f64();
                let produced: usize = gens.iter().map(|g| g.tokens.len()).sum();
                sampling.push(SampleBench {
                    batch,
                    kv_cache,
                    seconds,
                    tokens_per_s: produced as f64 / seconds,
                });
            }
        }
        models.push(ModelBench {
            model: shape.clone(),
            params: model.num_params(),
            train,
            train_baseline,
            sampling,
            peak_rss_mib: peak_rss_mib(),
        });
    }
    Ok(BenchReport {
        threads: candle_core::utils::get_num_threads(),
        dtype: cfg.dtype.clone(),
        device: cfg.device.clone(),
        train_shape: (cfg.train_batch, cfg.train_seq),
        models,
    })
}

fn bench_train(model: &Model, cfg: &BenchConfig, kernels: Kernels) -> Result<TrainBench> {
    let (b, t) = (cfg.train_batch, cfg.train_seq);
    let vocab = model.config().vocab_size;
    // A repeating pattern the model can learn within a few steps.
    let data: Vec<u32> = (0..b * (t + 1))
        .map(|i| ((i % 97) * 5 % vocab) as u32)
        .collect();
    let data = Tensor::from_vec(data, (b, t + 1), model.device())?;
    let inputs = data.narrow(1, 0, t)?;
    let targets = data.narrow(1, 1, t)?.flatten_all()?;
    let mut opt = AdamW::new(
        model.vars(),
        ParamsAdamW {
            lr: 1e-3,
            ..ParamsAdamW::default()
        },
    )?;
    let mut times = Vec::new();
    let mut losses = Vec::new();
    for step in 0..=cfg.train_steps {
        let t0 = Instant::now();
        let logits = model.transformer().forward(&inputs, None, None, kernels)?;
        let logits = logits.reshape((b * t, vocab))?.to_dtype(DType::F32)?;
        let loss = candle_nn::loss::cross_entropy(&logits, &targets)?;
        losses.push(loss.to_scalar::<f32>()?);
        let t1 = Instant::now();
        let grads = loss.backward()?;
        let t2 = Instant::now();
        opt.step(&grads)?;
        let t3 = Instant::now();
        if step > 0 {
            times.push([
                (t3 - t0).as_secs_f64(),
                (t1 - t0).as_secs_f64(),
                (t2 - t1).as_secs_f64(),
                (t3 - t2).as_secs_f64(),
            ]);
        }
    }
    let med = |k: usize| {
        let mut v: Vec<f64> = times.iter().map(|x| x[k]).collect();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    };
    let step_s = med(0);
    Ok(TrainBench {
        step_s,
        forward_s: med(1),
        backward_s: med(2),
        optimizer_s: med(3),
        tokens_per_s: (b * t) as f64 / step_s,
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
                "  train step {:.3} s ({:.0} tok/s): forward {:.3} s, backward {:.3} s, AdamW {:.3} s; loss {:.3} -> {:.3}",
                tr.step_s, tr.tokens_per_s, tr.forward_s, tr.backward_s, tr.optimizer_s,
                tr.first_loss, tr.last_loss
            )?;
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
                    "  sample b{:<3} {:<8} {:>8.1} tok/s ({:.2} s)",
                    s.batch,
                    if s.kv_cache { "kv-cache" } else { "no-cache" },
                    s.tokens_per_s,
                    s.seconds
                )?;
            }
            match m.peak_rss_mib {
                Some(mib) => writeln!(f, "  peak RSS {mib:.0} MiB")?,
                None => writeln!(f, "  peak RSS unavailable")?,
            }
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
}
