//! Loading GGUF files (the llama.cpp format) into full-precision, trainable weights.
//!
//! Every tensor of the file is dequantized to `f32` and renamed to its Hugging Face name
//! (`model.layers.N.self_attn.q_proj.weight`, ...), the network hyper-parameters are read from
//! the `{arch}.*` metadata into a [`ModelConfig`], and the tokenizer is rebuilt from the
//! `tokenizer.ggml.*` metadata. The result feeds the same constructor as an HF checkpoint does.
//!
//! Supported architectures: `llama` (SmolLM2, TinyLlama-style Llama 2/3 without RoPE scaling)
//! and `qwen2` (Qwen2, Qwen2.5). llama.cpp's converter stores the rows of `attn_q` / `attn_k` of
//! `llama` files permuted so that its interleaved ("normal") RoPE can be applied to them; this
//! loader undoes that permutation ([`unpermute_qk_rows`]) so that the weights work with the
//! HF-style rotate-half RoPE. `qwen2` files use the NEOX RoPE in llama.cpp and are stored
//! unpermuted.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::{Content, TensorInfo, Value};
use candle_core::quantized::tokenizer::TokenizerFromGguf;
use candle_core::{DType, Device, Tensor};
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::{SplitDelimiterBehavior, Tokenizer};

use crate::model::config::{Architecture, ModelConfig, TokenIds};

/// Errors of [`load_gguf`] and [`describe`].
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    /// The file could not be opened.
    #[error("cannot open GGUF file {path}: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The header or the tensor directory could not be parsed.
    #[error("cannot parse GGUF file {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's error.
        source: candle_core::Error,
    },
    /// A required metadata key is absent.
    #[error("GGUF metadata key `{0}` is missing")]
    MissingKey(String),
    /// A metadata key holds a value of an unexpected type or range.
    #[error("GGUF metadata key `{key}` has an unexpected value: {found}")]
    BadValue {
        /// The key.
        key: String,
        /// What was found instead.
        found: String,
    },
    /// `general.architecture` is neither `llama` nor `qwen2`.
    #[error("unsupported GGUF architecture `{0}` (supported: llama, qwen2)")]
    UnsupportedArchitecture(String),
    /// The file uses a feature the trainable model does not implement.
    #[error("unsupported GGUF feature: {0}")]
    Unsupported(String),
    /// A tensor the architecture needs is absent.
    #[error("GGUF tensor `{0}` is missing")]
    MissingTensor(String),
    /// The file holds a tensor this loader does not know how to place.
    #[error("unexpected GGUF tensor `{0}` (MoE, RoPE-scaling or other unsupported weights?)")]
    UnexpectedTensor(String),
    /// A tensor's shape disagrees with the metadata.
    #[error("GGUF tensor `{name}` has shape {found:?}, the metadata implies {expected:?}")]
    Shape {
        /// GGUF name of the tensor.
        name: String,
        /// Shape in the file (candle order: rows first).
        found: Vec<usize>,
        /// Shape implied by the configuration.
        expected: Vec<usize>,
    },
    /// Reading, dequantizing or rearranging a tensor failed.
    #[error("GGUF tensor `{name}`: {source}")]
    Tensor {
        /// GGUF name of the tensor.
        name: String,
        /// candle's error.
        source: candle_core::Error,
    },
    /// The tokenizer could not be rebuilt from the metadata.
    #[error("cannot build the tokenizer from GGUF metadata: {0}")]
    Tokenizer(String),
}

/// A GGUF file turned into full-precision weights with HF names, ready for
/// `Model::from_tensors`.
pub struct GgufModel {
    /// Network hyper-parameters read from the `{arch}.*` metadata.
    pub config: ModelConfig,
    /// Every weight, dequantized to `f32` on the requested device, keyed by its HF name.
    pub tensors: HashMap<String, Tensor>,
    /// The tokenizer rebuilt from the `tokenizer.ggml.*` metadata.
    pub tokenizer: Tokenizer,
}

impl fmt::Debug for GgufModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GgufModel")
            .field("config", &self.config)
            .field("tensors", &self.tensors.len())
            .field("vocab", &self.tokenizer.get_vocab_size(true))
            .finish()
    }
}

/// Reads the GGUF file at `path`, dequantizes every tensor to `f32` on `device`, renames the
/// tensors to HF names (undoing llama.cpp's q/k row permutation for `llama` files), and builds
/// the configuration and the tokenizer from the metadata.
pub fn load_gguf(path: &Path, device: &Device) -> Result<GgufModel, GgufError> {
    let started = std::time::Instant::now();
    let (content, mut reader) = open(path)?;
    let meta = Meta::new(&content.metadata)?;
    let config = meta.config(&content.tensor_infos)?;
    let plan = tensor_plan(&config, &content.tensor_infos)?;

    let mut tensors = HashMap::with_capacity(plan.len());
    for entry in plan {
        let tensor = read_tensor(&content, &mut reader, &entry, device)?;
        tensors.insert(entry.hf_name, tensor);
    }
    let tokenizer = build_tokenizer(&content)?;
    tracing::info!(
        path = %path.display(),
        architecture = ?config.architecture,
        tensors = tensors.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "loaded GGUF model"
    );
    Ok(GgufModel {
        config,
        tensors,
        tokenizer,
    })
}

/// A short description of a GGUF file, read from its header only (no tensor data).
#[derive(Debug, Clone)]
pub struct GgufSummary {
    /// `general.name`, if present.
    pub name: Option<String>,
    /// The network configuration the file maps to.
    pub config: ModelConfig,
    /// Number of tensors in the file.
    pub tensor_count: usize,
    /// Total number of weights (elements over all tensors).
    pub parameters: usize,
    /// How many tensors use each storage type (`Q4_1`, `Q8_0`, `F32`, ...).
    pub storage_types: BTreeMap<String, usize>,
    /// `tokenizer.ggml.pre`, the pre-tokenizer flavour.
    pub pre_tokenizer: Option<String>,
    /// Size of the file in bytes.
    pub file_bytes: u64,
}

impl fmt::Display for GgufSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.config;
        writeln!(
            f,
            "{} ({:?}), {:.1} M parameters in {} tensors, {:.1} MB on disk",
            self.name.as_deref().unwrap_or("unnamed model"),
            c.architecture,
            self.parameters as f64 / 1e6,
            self.tensor_count,
            self.file_bytes as f64 / 1e6
        )?;
        writeln!(
            f,
            "  layers {}, hidden {}, ffn {}, heads {} (kv {}), head dim {}, vocab {}",
            c.num_hidden_layers,
            c.hidden_size,
            c.intermediate_size,
            c.num_attention_heads,
            c.kv_heads(),
            c.head_dim(),
            c.vocab_size
        )?;
        writeln!(
            f,
            "  rope theta {}, rms eps {:e}, context {}, tied embeddings {}, qkv bias {}",
            c.rope_theta,
            c.rms_norm_eps,
            c.max_position_embeddings,
            c.tie_word_embeddings,
            c.qkv_bias()
        )?;
        let types: Vec<String> = self
            .storage_types
            .iter()
            .map(|(t, n)| format!("{n} x {t}"))
            .collect();
        write!(
            f,
            "  storage: {}; tokenizer pre `{}`",
            types.join(", "),
            self.pre_tokenizer.as_deref().unwrap_or("gpt2")
        )
    }
}

/// Reads the header of the GGUF file at `path` and summarises it (fast: no tensor data is read).
pub fn describe(path: &Path) -> Result<GgufSummary, GgufError> {
    let (content, _reader) = open(path)?;
    let meta = Meta::new(&content.metadata)?;
    let config = meta.config(&content.tensor_infos)?;
    let mut storage_types = BTreeMap::new();
    let mut parameters = 0;
    for info in content.tensor_infos.values() {
        *storage_types
            .entry(format!("{:?}", info.ggml_dtype))
            .or_insert(0) += 1;
        parameters += info.shape.elem_count();
    }
    let file_bytes = std::fs::metadata(path)
        .map_err(|source| GgufError::Open {
            path: path.to_path_buf(),
            source,
        })?
        .len();
    Ok(GgufSummary {
        name: meta.opt_string("general.name")?.map(str::to_string),
        config,
        tensor_count: content.tensor_infos.len(),
        parameters,
        storage_types,
        pre_tokenizer: meta.opt_string("tokenizer.ggml.pre")?.map(str::to_string),
        file_bytes,
    })
}

/// Undoes llama.cpp's row permutation of a `llama` q or k projection (weight `[n_head * d, in]`
/// or bias `[n_head * d]`).
///
/// llama.cpp's converter reorders the rows of each head from `[first half; second half]` (the
/// HF rotate-half layout) to interleaved pairs: GGUF row `2 i + h` of a head is HF row
/// `h * d / 2 + i`. `n_head` is the number of heads the tensor holds (query heads for q,
/// key/value heads for k).
pub fn unpermute_qk_rows(t: &Tensor, n_head: usize) -> candle_core::Result<Tensor> {
    regroup_rows(t, n_head, false)
}

/// llama.cpp's permutation (the inverse of [`unpermute_qk_rows`]): HF layout to GGUF layout.
pub fn permute_qk_rows(t: &Tensor, n_head: usize) -> candle_core::Result<Tensor> {
    regroup_rows(t, n_head, true)
}

/// Views the rows of every head as a `2 x d/2` (HF) or `d/2 x 2` (GGUF) grid and transposes it.
fn regroup_rows(t: &Tensor, n_head: usize, to_gguf: bool) -> candle_core::Result<Tensor> {
    let dims = t.dims().to_vec();
    let rows = dims.first().copied().unwrap_or(0);
    if n_head == 0 || rows % (2 * n_head) != 0 {
        candle_core::bail!("cannot split {rows} rows into {n_head} heads of even width")
    }
    let half = rows / n_head / 2;
    let (a, b) = if to_gguf { (2, half) } else { (half, 2) };
    let mut grid = vec![n_head, a, b];
    grid.extend_from_slice(&dims[1..]);
    t.reshape(grid)?
        .transpose(1, 2)?
        .contiguous()?
        .reshape(dims)
}

fn open(path: &Path) -> Result<(Content, BufReader<File>), GgufError> {
    let file = File::open(path).map_err(|source| GgufError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    let mut reader = BufReader::new(file);
    let content = Content::read(&mut reader).map_err(|source| GgufError::Parse {
        path: path.to_path_buf(),
        source,
    })?;
    Ok((content, reader))
}

/// Typed access to the metadata of one architecture.
struct Meta<'a> {
    md: &'a HashMap<String, Value>,
    arch: Architecture,
    prefix: &'static str,
}

impl<'a> Meta<'a> {
    fn new(md: &'a HashMap<String, Value>) -> Result<Self, GgufError> {
        let key = "general.architecture";
        let name = match md.get(key) {
            Some(Value::String(s)) => s.as_str(),
            Some(other) => return Err(bad_value(key, other)),
            None => return Err(GgufError::MissingKey(key.to_string())),
        };
        let (arch, prefix) = match name {
            "llama" => (Architecture::Llama, "llama"),
            "qwen2" => (Architecture::Qwen2, "qwen2"),
            other => return Err(GgufError::UnsupportedArchitecture(other.to_string())),
        };
        Ok(Self { md, arch, prefix })
    }

    fn key(&self, suffix: &str) -> String {
        format!("{}.{suffix}", self.prefix)
    }

    fn opt_usize(&self, key: &str) -> Result<Option<usize>, GgufError> {
        let Some(v) = self.md.get(key) else {
            return Ok(None);
        };
        let n: i128 = match v {
            Value::U8(x) => (*x).into(),
            Value::I8(x) => (*x).into(),
            Value::U16(x) => (*x).into(),
            Value::I16(x) => (*x).into(),
            Value::U32(x) => (*x).into(),
            Value::I32(x) => (*x).into(),
            Value::U64(x) => (*x).into(),
            Value::I64(x) => (*x).into(),
            other => return Err(bad_value(key, other)),
        };
        usize::try_from(n).map(Some).map_err(|_| bad_value(key, v))
    }

    fn usize(&self, key: &str) -> Result<usize, GgufError> {
        self.opt_usize(key)?
            .ok_or_else(|| GgufError::MissingKey(key.to_string()))
    }

    fn opt_f64(&self, key: &str) -> Result<Option<f64>, GgufError> {
        match self.md.get(key) {
            None => Ok(None),
            // The shortest decimal that round-trips the f32 (1e-5, not 9.99999974e-6), so that
            // a saved config.json shows the value the model was published with.
            Some(Value::F32(x)) => Ok(Some(x.to_string().parse().unwrap_or(f64::from(*x)))),
            Some(Value::F64(x)) => Ok(Some(*x)),
            Some(other) => Err(bad_value(key, other)),
        }
    }

    fn opt_string(&self, key: &str) -> Result<Option<&'a str>, GgufError> {
        match self.md.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(other) => Err(bad_value(key, other)),
        }
    }

    fn opt_u32(&self, key: &str) -> Result<Option<u32>, GgufError> {
        self.opt_usize(key)?
            .map(|n| {
                u32::try_from(n).map_err(|_| GgufError::BadValue {
                    key: key.to_string(),
                    found: n.to_string(),
                })
            })
            .transpose()
    }

    /// Maps the `{arch}.*` metadata (and the presence of optional tensors) to a [`ModelConfig`].
    fn config(&self, infos: &HashMap<String, TensorInfo>) -> Result<ModelConfig, GgufError> {
        let hidden_size = self.usize(&self.key("embedding_length"))?;
        let intermediate_size = self.usize(&self.key("feed_forward_length"))?;
        let num_hidden_layers = self.usize(&self.key("block_count"))?;
        let num_attention_heads = self.usize(&self.key("attention.head_count"))?;
        let kv_heads = self
            .opt_usize(&self.key("attention.head_count_kv"))?
            .unwrap_or(num_attention_heads);
        let max_position_embeddings = self.usize(&self.key("context_length"))?;
        let rms_key = self.key("attention.layer_norm_rms_epsilon");
        let rms_norm_eps = self
            .opt_f64(&rms_key)?
            .ok_or(GgufError::MissingKey(rms_key))?;
        // llama.cpp's default when the key is absent.
        let rope_theta = self
            .opt_f64(&self.key("rope.freq_base"))?
            .unwrap_or(10_000.0);
        if num_attention_heads == 0 || hidden_size % num_attention_heads != 0 {
            return Err(GgufError::BadValue {
                key: self.key("attention.head_count"),
                found: format!("{num_attention_heads} heads for hidden size {hidden_size}"),
            });
        }

        let default_head_dim = hidden_size / num_attention_heads;
        let key_length = self.opt_usize(&self.key("attention.key_length"))?;
        let value_length = self.opt_usize(&self.key("attention.value_length"))?;
        let head_dim = key_length.unwrap_or(default_head_dim);
        if value_length.unwrap_or(head_dim) != head_dim {
            return Err(GgufError::Unsupported(format!(
                "key length {head_dim} differs from value length {value_length:?}"
            )));
        }
        if let Some(rope_dim) = self.opt_usize(&self.key("rope.dimension_count"))? {
            if rope_dim != head_dim {
                return Err(GgufError::Unsupported(format!(
                    "partial rotary embedding ({rope_dim} of {head_dim} dimensions)"
                )));
            }
        }
        if let Some(kind) = self.opt_string(&self.key("rope.scaling.type"))? {
            let factor = self
                .opt_f64(&self.key("rope.scaling.factor"))?
                .unwrap_or(1.0);
            if kind != "none" && factor != 1.0 {
                return Err(GgufError::Unsupported(format!(
                    "RoPE scaling `{kind}` with factor {factor}"
                )));
            }
        }
        if self.opt_usize(&self.key("expert_count"))?.unwrap_or(0) > 0 {
            return Err(GgufError::Unsupported("mixture of experts".to_string()));
        }

        let embd = infos
            .get("token_embd.weight")
            .ok_or_else(|| GgufError::MissingTensor("token_embd.weight".to_string()))?;
        let vocab_size = match embd.shape.dims() {
            [rows, _] => *rows,
            dims => {
                return Err(GgufError::Shape {
                    name: "token_embd.weight".to_string(),
                    found: dims.to_vec(),
                    expected: vec![0, hidden_size],
                })
            }
        };
        if let Some(declared) = self.opt_usize(&self.key("vocab_size"))? {
            if declared != vocab_size {
                return Err(GgufError::BadValue {
                    key: self.key("vocab_size"),
                    found: format!("{declared}, but token_embd.weight has {vocab_size} rows"),
                });
            }
        }

        let bos_token_id = self.opt_u32("tokenizer.ggml.bos_token_id")?;
        let eos = self.opt_u32("tokenizer.ggml.eos_token_id")?;
        let eot = self.opt_u32("tokenizer.ggml.eot_token_id")?;
        let eos_token_id = match (eos, eot) {
            (Some(a), Some(b)) if a != b => Some(TokenIds::Many(vec![a, b])),
            (Some(a), _) | (None, Some(a)) => Some(TokenIds::One(a)),
            (None, None) => None,
        };

        Ok(ModelConfig {
            architecture: self.arch,
            vocab_size,
            hidden_size,
            intermediate_size,
            num_hidden_layers,
            num_attention_heads,
            num_key_value_heads: Some(kv_heads),
            head_dim: (head_dim != default_head_dim).then_some(head_dim),
            rope_theta,
            rms_norm_eps,
            max_position_embeddings,
            tie_word_embeddings: !infos.contains_key("output.weight"),
            attention_bias: self.arch == Architecture::Llama
                && infos.contains_key("blk.0.attn_q.bias"),
            bos_token_id,
            eos_token_id,
        })
    }
}

fn bad_value(key: &str, found: &Value) -> GgufError {
    let mut found = format!("{found:?}");
    found.truncate(80);
    GgufError::BadValue {
        key: key.to_string(),
        found,
    }
}

/// How one q/k tensor must be rearranged after dequantization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rows {
    /// Stored as in HF.
    AsIs,
    /// llama.cpp-permuted with this many heads.
    Permuted(usize),
}

/// One tensor to read: GGUF name, HF name, expected (candle-order) shape, row handling.
#[derive(Debug)]
struct PlanEntry {
    gguf_name: String,
    hf_name: String,
    shape: Vec<usize>,
    rows: Rows,
}

/// Lists every tensor the configuration needs, and rejects files with tensors it does not.
fn tensor_plan(
    config: &ModelConfig,
    infos: &HashMap<String, TensorInfo>,
) -> Result<Vec<PlanEntry>, GgufError> {
    let h = config.hidden_size;
    let q_rows = config.num_attention_heads * config.head_dim();
    let kv_rows = config.kv_heads() * config.head_dim();
    let permuted = config.architecture == Architecture::Llama;
    let q_perm = if permuted {
        Rows::Permuted(config.num_attention_heads)
    } else {
        Rows::AsIs
    };
    let k_perm = if permuted {
        Rows::Permuted(config.kv_heads())
    } else {
        Rows::AsIs
    };

    let mut plan = Vec::new();
    let mut push = |gguf: String, hf: String, shape: Vec<usize>, rows: Rows| {
        plan.push(PlanEntry {
            gguf_name: gguf,
            hf_name: hf,
            shape,
            rows,
        })
    };
    push(
        "token_embd.weight".into(),
        "model.embed_tokens.weight".into(),
        vec![config.vocab_size, h],
        Rows::AsIs,
    );
    push(
        "output_norm.weight".into(),
        "model.norm.weight".into(),
        vec![h],
        Rows::AsIs,
    );
    if !config.tie_word_embeddings {
        push(
            "output.weight".into(),
            "lm_head.weight".into(),
            vec![config.vocab_size, h],
            Rows::AsIs,
        );
    }
    for l in 0..config.num_hidden_layers {
        let g = |s: &str| format!("blk.{l}.{s}");
        let m = |s: &str| format!("model.layers.{l}.{s}");
        push(
            g("attn_norm.weight"),
            m("input_layernorm.weight"),
            vec![h],
            Rows::AsIs,
        );
        push(
            g("ffn_norm.weight"),
            m("post_attention_layernorm.weight"),
            vec![h],
            Rows::AsIs,
        );
        let projections = [
            ("attn_q", "self_attn.q_proj", q_rows, h, q_perm),
            ("attn_k", "self_attn.k_proj", kv_rows, h, k_perm),
            ("attn_v", "self_attn.v_proj", kv_rows, h, Rows::AsIs),
            ("attn_output", "self_attn.o_proj", h, q_rows, Rows::AsIs),
            (
                "ffn_gate",
                "mlp.gate_proj",
                config.intermediate_size,
                h,
                Rows::AsIs,
            ),
            (
                "ffn_up",
                "mlp.up_proj",
                config.intermediate_size,
                h,
                Rows::AsIs,
            ),
            (
                "ffn_down",
                "mlp.down_proj",
                h,
                config.intermediate_size,
                Rows::AsIs,
            ),
        ];
        for (gguf, hf, rows, cols, perm) in projections {
            push(
                g(&format!("{gguf}.weight")),
                m(&format!("{hf}.weight")),
                vec![rows, cols],
                perm,
            );
            let biased = match gguf {
                "attn_q" | "attn_k" | "attn_v" => config.qkv_bias(),
                "attn_output" => config.o_bias(),
                _ => false,
            };
            if biased {
                push(
                    g(&format!("{gguf}.bias")),
                    m(&format!("{hf}.bias")),
                    vec![rows],
                    perm,
                );
            }
        }
    }

    for entry in &plan {
        let info = infos
            .get(&entry.gguf_name)
            .ok_or_else(|| GgufError::MissingTensor(entry.gguf_name.clone()))?;
        if info.shape.dims() != entry.shape.as_slice() {
            return Err(GgufError::Shape {
                name: entry.gguf_name.clone(),
                found: info.shape.dims().to_vec(),
                expected: entry.shape.clone(),
            });
        }
    }
    if infos.len() != plan.len() {
        let known: std::collections::HashSet<&str> =
            plan.iter().map(|e| e.gguf_name.as_str()).collect();
        let mut extra: Vec<&String> = infos
            .keys()
            .filter(|k| !known.contains(k.as_str()))
            .collect();
        extra.sort();
        if let Some(name) = extra.first() {
            return Err(GgufError::UnexpectedTensor((*name).clone()));
        }
    }
    Ok(plan)
}

/// Reads one tensor, dequantizes it to `f32` on the CPU, un-permutes q/k rows and moves it to
/// `device`.
fn read_tensor(
    content: &Content,
    reader: &mut BufReader<File>,
    entry: &PlanEntry,
    device: &Device,
) -> Result<Tensor, GgufError> {
    let wrap = |source| GgufError::Tensor {
        name: entry.gguf_name.clone(),
        source,
    };
    let qtensor = content
        .tensor(reader, &entry.gguf_name, &Device::Cpu)
        .map_err(wrap)?;
    let mut t = qtensor
        .dequantize(&Device::Cpu)
        .and_then(|t| t.to_dtype(DType::F32))
        .map_err(wrap)?;
    if let Rows::Permuted(n_head) = entry.rows {
        t = unpermute_qk_rows(&t, n_head).map_err(wrap)?;
    }
    tracing::trace!(
        name = %entry.gguf_name,
        hf = %entry.hf_name,
        dtype = ?qtensor.dtype(),
        "dequantized"
    );
    t.to_device(device).map_err(wrap)
}

/// Regex of GPT-2's byte-level BPE (what `ByteLevel { use_regex: true }` applies), with the
/// digit handling of llama.cpp's `smollm` pre-tokenizer expressed as a separate `Digits` step.
fn smollm_pre_tokenizer() -> PreTokenizerWrapper {
    Sequence::new(vec![
        Digits::new(true).into(),
        ByteLevel::new(false, true, true).into(),
    ])
    .into()
}

/// Llama 3's split regex (digits in groups of up to three), followed by the byte-level mapping.
fn llama3_pre_tokenizer() -> Result<PreTokenizerWrapper, GgufError> {
    const LLAMA3: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    let split = Split::new(
        SplitPattern::Regex(LLAMA3.to_string()),
        SplitDelimiterBehavior::Isolated,
        false,
    )
    .map_err(|e| GgufError::Tokenizer(e.to_string()))?;
    Ok(Sequence::new(vec![
        split.into(),
        ByteLevel::new(false, true, false).into(),
    ])
    .into())
}

/// Builds the tokenizer from `tokenizer.ggml.*`: vocabulary, merges and special tokens via
/// candle's GGUF tokenizer builder, then the pre-tokenizer of the file's `tokenizer.ggml.pre`
/// flavour (candle covers `qwen2`; `smollm`, `gpt2` and `llama-bpe` are set here, as candle
/// would otherwise fall back to a GPT-2 pre-tokenizer that adds a prefix space).
fn build_tokenizer(content: &Content) -> Result<Tokenizer, GgufError> {
    let mut tokenizer =
        Tokenizer::from_gguf(content).map_err(|e| GgufError::Tokenizer(e.to_string()))?;
    let pre = match content.metadata.get("tokenizer.ggml.pre") {
        None => "gpt2",
        Some(Value::String(s)) => s.as_str(),
        Some(other) => return Err(bad_value("tokenizer.ggml.pre", other)),
    };
    match pre {
        "qwen2" | "llama3" | "smaug-bpe" => {}
        "llama-bpe" => {
            tokenizer.with_pre_tokenizer(Some(llama3_pre_tokenizer()?));
            tokenizer.with_decoder(Some(ByteLevelDecoder::new(true, true, true)));
        }
        "smollm" => {
            tokenizer.with_pre_tokenizer(Some(smollm_pre_tokenizer()));
            tokenizer.with_decoder(Some(ByteLevelDecoder::default()));
        }
        "gpt2" | "default" => {
            tokenizer.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
            tokenizer.with_decoder(Some(ByteLevelDecoder::default()));
        }
        other => {
            return Err(GgufError::Tokenizer(format!(
                "unsupported pre-tokenizer `{other}` (supported: smollm, qwen2, gpt2, llama-bpe)"
            )))
        }
    }
    Ok(tokenizer)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The permutation written out index by index, as in llama.cpp's converter:
    /// `w.reshape(n_head, 2, d/2, cols).swapaxes(1, 2).reshape(w.shape)`.
    fn permute_reference(rows: &[Vec<f32>], n_head: usize) -> Vec<Vec<f32>> {
        let d = rows.len() / n_head;
        let mut out = vec![Vec::new(); rows.len()];
        for head in 0..n_head {
            for half in 0..2 {
                for i in 0..d / 2 {
                    // Source index (head, half, i) lands at (head, i, half).
                    out[head * d + 2 * i + half] = rows[head * d + half * d / 2 + i].clone();
                }
            }
        }
        out
    }

    #[test]
    fn permutation_matches_llama_cpp_and_round_trips() {
        let (n_head, d, cols) = (3, 8, 5);
        let data: Vec<f32> = (0..n_head * d * cols).map(|x| x as f32).collect();
        let t = Tensor::from_vec(data, (n_head * d, cols), &Device::Cpu).unwrap();
        let rows = t.to_vec2::<f32>().unwrap();

        let permuted = permute_qk_rows(&t, n_head).unwrap();
        assert_eq!(
            permuted.to_vec2::<f32>().unwrap(),
            permute_reference(&rows, n_head)
        );
        // Row 1 of GGUF head 0 is HF row d/2 of that head.
        assert_eq!(permuted.to_vec2::<f32>().unwrap()[1], rows[d / 2]);
        let back = unpermute_qk_rows(&permuted, n_head).unwrap();
        assert_eq!(back.to_vec2::<f32>().unwrap(), rows);
    }

    #[test]
    fn permutation_of_a_bias_vector() {
        let t = Tensor::new(&[0f32, 1., 2., 3., 10., 11., 12., 13.], &Device::Cpu).unwrap();
        let p = permute_qk_rows(&t, 2).unwrap();
        assert_eq!(
            p.to_vec1::<f32>().unwrap(),
            [0., 2., 1., 3., 10., 12., 11., 13.]
        );
        let back = unpermute_qk_rows(&p, 2).unwrap();
        assert_eq!(back.to_vec1::<f32>().unwrap(), t.to_vec1::<f32>().unwrap());
    }

    #[test]
    fn permutation_rejects_odd_head_width() {
        let t = Tensor::zeros((6, 2), DType::F32, &Device::Cpu).unwrap();
        assert!(unpermute_qk_rows(&t, 2).is_err());
        assert!(unpermute_qk_rows(&t, 0).is_err());
    }
}
