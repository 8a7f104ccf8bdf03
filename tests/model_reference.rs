//! Our forward against independent implementations (candle-transformers' `qwen2` and `llama`)
//! on the same random weights. Tolerance: 1e-4 absolute on logits of magnitude ~1 (f32;
//! differences come only from summation order and fused vs composed kernels).

#[path = "model_common.rs"]
mod common;

use azr_core::model::{BatchLayout, Model};
use candle_core::{DType, Device, IndexOp, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::{llama, qwen2};

const TOL: f32 = 1e-4;

fn to_vec(t: &Tensor) -> Vec<f32> {
    t.flatten_all()
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap()
        .to_vec1()
        .unwrap()
}

fn ids() -> Vec<u32> {
    vec![1, 7, 9, 33, 2, 60, 17, 42, 5, 0, 63, 8]
}

#[test]
fn qwen2_forward_matches_candle_transformers() {
    let cfg = common::tiny_qwen2();
    let m = common::model(cfg.clone(), 21);
    let rcfg = qwen2::Config {
        vocab_size: cfg.vocab_size,
        hidden_size: cfg.hidden_size,
        intermediate_size: cfg.intermediate_size,
        num_hidden_layers: cfg.num_hidden_layers,
        num_attention_heads: cfg.num_attention_heads,
        num_key_value_heads: cfg.kv_heads(),
        max_position_embeddings: cfg.max_position_embeddings,
        sliding_window: cfg.max_position_embeddings,
        max_window_layers: cfg.num_hidden_layers,
        tie_word_embeddings: cfg.tie_word_embeddings,
        rope_theta: cfg.rope_theta,
        rms_norm_eps: cfg.rms_norm_eps,
        use_sliding_window: false,
        hidden_act: candle_nn::Activation::Silu,
    };
    let tensors = m.tensors().unwrap();
    let vb = VarBuilder::from_tensors(tensors.clone(), DType::F32, &Device::Cpu);
    let mut reference = qwen2::Model::new(&rcfg, vb).unwrap();
    let ids = Tensor::from_vec(ids(), (1, 12), &Device::Cpu).unwrap();
    let hidden = reference.forward(&ids, 0, None).unwrap();
    let ref_logits = hidden
        .squeeze(0)
        .unwrap()
        .matmul(&tensors["lm_head.weight"].t().unwrap())
        .unwrap();
    let ours = m.forward(&ids, None, None).unwrap();
    let d = common::max_abs_diff(&to_vec(&ours), &to_vec(&ref_logits));
    assert!(d < TOL, "qwen2 logits differ by {d}");
    // Snapshot (fused) path too.
    let snap = m.snapshot().unwrap().forward(&ids, None, None).unwrap();
    let d = common::max_abs_diff(&to_vec(&snap), &to_vec(&ref_logits));
    assert!(d < TOL, "qwen2 snapshot logits differ by {d}");

    // A left-padded row gives the reference's logits on the unpadded prompt.
    let padded = Tensor::new(
        &[[0u32, 0, 0, 1, 7, 9, 33, 2, 60, 17, 42, 5, 0, 63, 8]],
        &Device::Cpu,
    )
    .unwrap();
    let layout = BatchLayout::left_padded(&[12], 15).unwrap();
    let ours = m
        .forward(&padded, Some(&layout), None)
        .unwrap()
        .narrow(1, 3, 12)
        .unwrap();
    let d = common::max_abs_diff(&to_vec(&ours), &to_vec(&ref_logits));
    assert!(d < TOL, "left-padded qwen2 logits differ by {d}");
}

#[test]
fn llama_forward_matches_candle_transformers() {
    let cfg = common::tiny_llama();
    let m: Model = common::model(cfg.clone(), 22);
    let rcfg = llama::Config {
        hidden_size: cfg.hidden_size,
        intermediate_size: cfg.intermediate_size,
        vocab_size: cfg.vocab_size,
        num_hidden_layers: cfg.num_hidden_layers,
        num_attention_heads: cfg.num_attention_heads,
        num_key_value_heads: cfg.kv_heads(),
        use_flash_attn: false,
        rms_norm_eps: cfg.rms_norm_eps,
        rope_theta: cfg.rope_theta as f32,
        bos_token_id: None,
        eos_token_id: None,
        rope_scaling: None,
        max_position_embeddings: cfg.max_position_embeddings,
        tie_word_embeddings: true,
    };
    let vb = VarBuilder::from_tensors(m.tensors().unwrap(), DType::F32, &Device::Cpu);
    let reference = llama::Llama::load(vb, &rcfg).unwrap();
    // The reference returns only the last position, so feed it one token at a time through
    // its KV cache to get every position.
    let mut cache = llama::Cache::new(true, DType::F32, &rcfg, &Device::Cpu).unwrap();
    let ids = ids();
    let mut ref_rows = Vec::new();
    for (i, &t) in ids.iter().enumerate() {
        let x = Tensor::new(&[[t]], &Device::Cpu).unwrap();
        ref_rows.extend(to_vec(&reference.forward(&x, i, &mut cache).unwrap()));
    }
    let x = Tensor::from_vec(ids.clone(), (1, ids.len()), &Device::Cpu).unwrap();
    let ours = m.forward(&x, None, None).unwrap();
    let d = common::max_abs_diff(&to_vec(&ours), &ref_rows);
    assert!(d < TOL, "llama logits differ by {d}");
    // And a full-sequence call of the reference agrees on the last position.
    let mut cache = llama::Cache::new(false, DType::F32, &rcfg, &Device::Cpu).unwrap();
    let last = reference.forward(&x, 0, &mut cache).unwrap();
    let ours_last = ours.i((.., ids.len() - 1, ..)).unwrap();
    let d = common::max_abs_diff(&to_vec(&ours_last), &to_vec(&last));
    assert!(d < TOL, "llama last-position logits differ by {d}");
}
