//! HF checkpoint format: save -> load gives identical logits; sharded checkpoints load.

#[path = "model_common.rs"]
mod common;

use std::collections::HashMap;

use azr_core::model::{Model, ModelConfig, ModelError};
use candle_core::{DType, Device, Tensor};

fn logits(m: &Model) -> Vec<f32> {
    let ids = Tensor::new(&[[1u32, 7, 9, 33, 2, 60], [5, 5, 6, 6, 7, 7]], m.device()).unwrap();
    m.forward(&ids, None, None)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap()
        .to_vec1()
        .unwrap()
}

#[test]
fn save_then_load_gives_identical_logits() {
    for cfg in [common::tiny_qwen2(), common::tiny_llama()] {
        let m = common::model(cfg.clone(), 11);
        let dir = tempfile::tempdir().unwrap();
        m.save_hf_dir(dir.path()).unwrap();
        for f in ["config.json", "model.safetensors", "tokenizer.json"] {
            assert!(dir.path().join(f).is_file(), "{f} missing");
        }
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join("config.json")).unwrap())
                .unwrap();
        let arch = json["architectures"][0].as_str().unwrap();
        assert!(arch == "Qwen2ForCausalLM" || arch == "LlamaForCausalLM");
        assert_eq!(json["torch_dtype"], "float32");
        assert_eq!(json["num_key_value_heads"], cfg.kv_heads());
        let loaded = Model::load(dir.path(), &Device::Cpu, DType::F32).unwrap();
        // Defaults become explicit in the written file, so compare the HF view.
        assert_eq!(
            loaded.config().to_hf_json("float32"),
            m.config().to_hf_json("float32")
        );
        assert_eq!(logits(&loaded), logits(&m));
        assert_eq!(
            loaded.tokenizer().encode("w5 w6", false).unwrap(),
            vec![5, 6]
        );
    }
}

#[test]
fn bf16_save_and_load_round_trips() {
    let m = common::model(common::tiny_qwen2(), 12);
    let dir = tempfile::tempdir().unwrap();
    let bf = Model::from_tensors(
        m.config().clone(),
        m.tensors().unwrap(),
        m.tokenizer().clone(),
        &Device::Cpu,
        DType::BF16,
    )
    .unwrap();
    bf.save_hf_dir(dir.path()).unwrap();
    let loaded = Model::load_hf_dir(dir.path(), &Device::Cpu, DType::BF16).unwrap();
    assert_eq!(loaded.dtype(), DType::BF16);
    assert_eq!(logits(&loaded), logits(&bf));
    // bf16 logits stay close to the f32 ones.
    let d = common::max_abs_diff(&logits(&bf), &logits(&m));
    assert!(d < 0.05, "bf16 vs f32 logits differ by {d}");
}

#[test]
fn sharded_checkpoint_loads() {
    let m = common::model(common::tiny_qwen2(), 13);
    let dir = tempfile::tempdir().unwrap();
    m.save_hf_dir(dir.path()).unwrap();
    std::fs::remove_file(dir.path().join("model.safetensors")).unwrap();
    let tensors = m.tensors().unwrap();
    let mut names: Vec<&String> = tensors.keys().collect();
    names.sort();
    let (a, b) = names.split_at(names.len() / 2);
    let mut weight_map = serde_json::Map::new();
    for (file, part) in [
        ("model-00001-of-00002.safetensors", a),
        ("model-00002-of-00002.safetensors", b),
    ] {
        let shard: HashMap<String, Tensor> = part
            .iter()
            .map(|n| ((*n).clone(), tensors[*n].clone()))
            .collect();
        candle_core::safetensors::save(&shard, dir.path().join(file)).unwrap();
        for n in part {
            weight_map.insert((*n).clone(), file.into());
        }
    }
    let index = serde_json::json!({"metadata": {"total_size": 0}, "weight_map": weight_map});
    std::fs::write(
        dir.path().join("model.safetensors.index.json"),
        index.to_string(),
    )
    .unwrap();
    let loaded = Model::load_hf_dir(dir.path(), &Device::Cpu, DType::F32).unwrap();
    assert_eq!(logits(&loaded), logits(&m));

    // A shard that lacks a listed tensor is an error, not a silent partial load.
    let mut broken = weight_map.clone();
    broken.insert(
        "model.layers.9.extra".into(),
        "model-00001-of-00002.safetensors".into(),
    );
    let index = serde_json::json!({"weight_map": broken});
    std::fs::write(
        dir.path().join("model.safetensors.index.json"),
        index.to_string(),
    )
    .unwrap();
    let err = Model::load_hf_dir(dir.path(), &Device::Cpu, DType::F32).unwrap_err();
    assert!(matches!(err, ModelError::MissingWeight(_)), "{err}");
}

#[test]
fn wrong_shapes_and_missing_weights_are_reported() {
    let cfg = common::tiny_qwen2();
    let m = common::model(cfg.clone(), 14);
    let mut t = m.tensors().unwrap();
    t.remove("model.layers.1.self_attn.k_proj.bias");
    let err = Model::from_tensors(
        cfg.clone(),
        t,
        m.tokenizer().clone(),
        &Device::Cpu,
        DType::F32,
    )
    .unwrap_err();
    assert!(
        matches!(err, ModelError::MissingWeight(ref n) if n == "model.layers.1.self_attn.k_proj.bias")
    );
    let wider = ModelConfig {
        intermediate_size: 80,
        ..cfg
    };
    let err = Model::from_tensors(
        wider,
        m.tensors().unwrap(),
        m.tokenizer().clone(),
        &Device::Cpu,
        DType::F32,
    )
    .unwrap_err();
    assert!(matches!(err, ModelError::WeightShape { .. }), "{err}");
}

#[test]
fn real_hf_config_json_parses() {
    // The Qwen2.5-0.5B-Instruct config.json as published (unmodelled keys are ignored).
    let text = r#"{
      "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643,
      "eos_token_id": 151645, "hidden_act": "silu", "hidden_size": 896, "initializer_range": 0.02,
      "intermediate_size": 4864, "max_position_embeddings": 32768, "max_window_layers": 21,
      "model_type": "qwen2", "num_attention_heads": 14, "num_hidden_layers": 24,
      "num_key_value_heads": 2, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0,
      "sliding_window": 32768, "tie_word_embeddings": true, "torch_dtype": "bfloat16",
      "transformers_version": "4.43.1", "use_cache": true, "use_sliding_window": false,
      "vocab_size": 151936
    }"#;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("config.json");
    std::fs::write(&p, text).unwrap();
    let cfg = ModelConfig::load(&p).unwrap();
    assert_eq!(cfg.head_dim(), 64);
    assert_eq!(cfg.kv_heads(), 2);
    assert!(cfg.qkv_bias() && !cfg.o_bias() && cfg.tie_word_embeddings);
    assert_eq!(cfg.rope_theta, 1_000_000.0);
}

/// What a rollout node receives (`azr node --roles rollout`): a snapshot written as one
/// safetensors buffer, with its config and tokenizer as text, reads back to the same logits.
#[test]
fn a_snapshot_round_trips_through_its_wire_form() {
    use azr_core::model::{Snapshot, Tokenizer};
    for cfg in [common::tiny_qwen2(), common::tiny_llama()] {
        let m = common::model(cfg.clone(), 12);
        let snap = m.snapshot().unwrap();
        let bytes = snap.to_safetensors().unwrap();
        let config: ModelConfig =
            serde_json::from_str(&serde_json::to_string(snap.config()).unwrap()).unwrap();
        let tok = Tokenizer::from_json(&snap.tokenizer().to_json().unwrap()).unwrap();
        assert_eq!(tok.vocab_size(), snap.tokenizer().vocab_size());
        let back =
            Snapshot::from_safetensors(config, &bytes, tok, &Device::Cpu, DType::F32).unwrap();
        let ids = Tensor::new(&[[1u32, 7, 9, 33, 2, 60]], &Device::Cpu).unwrap();
        let a = snap
            .forward(&ids, None, None)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let b = back
            .forward(&ids, None, None)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(a, b, "{:?}", cfg.architecture);
        // A truncated buffer is an error, not a model.
        assert!(Snapshot::from_safetensors(
            snap.config().clone(),
            &bytes[..bytes.len() / 2],
            snap.tokenizer().clone(),
            &Device::Cpu,
            DType::F32
        )
        .is_err());
    }
}
