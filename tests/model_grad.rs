//! Gradient coverage: every trainable weight must receive a non-zero gradient from a loss on
//! the logits (candle's fused softmax/rms_norm/rope would silently cut them).

#[path = "model_common.rs"]
mod common;

use azr_core::model::{response_logprobs, BatchLayout, Model};
use candle_core::{DType, Tensor, D};

fn assert_full_coverage(model: &Model, loss: &Tensor) {
    let grads = loss.backward().unwrap();
    let mut missing = Vec::new();
    for (name, var) in model.named_vars() {
        match grads.get(var.as_tensor()) {
            Some(g) => {
                let m = g
                    .abs()
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .max(0)
                    .unwrap()
                    .to_dtype(DType::F32)
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap();
                if !(m > 0.0 && m.is_finite()) {
                    missing.push(format!("{name} (max |grad| = {m})"));
                }
            }
            None => missing.push(format!("{name} (no grad)")),
        }
    }
    assert!(missing.is_empty(), "weights without gradient: {missing:?}");
}

fn ce_loss_on_logits(model: &Model) -> Tensor {
    let dev = model.device();
    let ids: Vec<u32> = (0..2 * 9).map(|i| (i * 7 + 3) % 64).collect();
    let ids = Tensor::from_vec(ids, (2, 9), dev).unwrap();
    // Row 0 is left-padded by 3: pads must not break the gradient either.
    let layout = BatchLayout::left_padded(&[6, 9], 9).unwrap();
    let logits = model.forward(&ids, Some(&layout), None).unwrap();
    assert_eq!(logits.dims(), &[2, 9, 64]);
    let inputs = logits.narrow(1, 0, 8).unwrap().reshape((16, 64)).unwrap();
    let targets = ids.narrow(1, 1, 8).unwrap().reshape(16).unwrap();
    candle_nn::loss::cross_entropy(&inputs, &targets).unwrap()
}

#[test]
fn every_qwen2_weight_gets_a_gradient() {
    let m = common::model(common::tiny_qwen2(), 1);
    // 2 layers x (4 attn w + 3 biases + 3 mlp + 2 norms) + embed + norm + lm_head = 27
    assert_eq!(m.named_vars().len(), 27);
    assert_full_coverage(&m, &ce_loss_on_logits(&m));
}

#[test]
fn every_llama_tied_gqa_weight_gets_a_gradient() {
    let m = common::model(common::tiny_llama(), 2);
    // tied head: no lm_head var; 2 x (4 + 3 + 2) + embed + norm = 20
    assert_eq!(m.named_vars().len(), 20);
    assert!(m.named_vars().iter().all(|(n, _)| n != "lm_head.weight"));
    assert_full_coverage(&m, &ce_loss_on_logits(&m));
}

#[test]
fn response_logprobs_and_entropy_backpropagate_everywhere() {
    let m = common::model(common::tiny_qwen2(), 3);
    let batch = vec![
        (vec![5, 6, 7], vec![8, 9, 10, 11]),
        (vec![12], vec![13, 14]),
    ];
    let lp = response_logprobs(&m, &batch).unwrap();
    let loss =
        ((lp.logprobs.sum_all().unwrap() + lp.entropy.sum_all().unwrap()).unwrap() * -1.0).unwrap();
    assert_full_coverage(&m, &loss);
}

#[test]
fn training_and_inference_paths_agree() {
    let m = common::model(common::tiny_qwen2(), 4);
    let snap = m.snapshot().unwrap();
    let ids = Tensor::new(&[[3u32, 1, 4, 1, 5, 9, 2, 6]], m.device()).unwrap();
    let a = m.forward(&ids, None, None).unwrap();
    let b = snap.forward(&ids, None, None).unwrap();
    let d = (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(D::Minus1)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(d < 1e-5, "fused vs differentiable logits differ by {d}");
}

#[test]
fn snapshot_does_not_see_later_updates() {
    let m = common::model(common::tiny_llama(), 5);
    let snap = m.snapshot().unwrap();
    let ids = Tensor::new(&[[3u32, 1, 4]], m.device()).unwrap();
    let before = snap
        .forward(&ids, None, None)
        .unwrap()
        .flatten_all()
        .unwrap();
    for v in m.vars() {
        v.set(&v.as_tensor().zeros_like().unwrap()).unwrap();
    }
    let after = snap
        .forward(&ids, None, None)
        .unwrap()
        .flatten_all()
        .unwrap();
    let live = m.forward(&ids, None, None).unwrap().flatten_all().unwrap();
    assert_eq!(
        before.to_vec1::<f32>().unwrap(),
        after.to_vec1::<f32>().unwrap()
    );
    assert!(live.to_vec1::<f32>().unwrap().iter().all(|&x| x == 0.0));
}

/// The hand-written CPU kernels (softmax with mask, RMSNorm, RoPE, SwiGLU) give the same
/// logits and the same gradient for every weight as the candle-primitive composition.
#[test]
fn custom_kernels_match_composed_ops_in_value_and_gradient() {
    use azr_core::model::Kernels;
    for cfg in [common::tiny_qwen2(), common::tiny_llama()] {
        let m = common::model(cfg, 6);
        let ids: Vec<u32> = (0..2 * 9).map(|i| (i * 11 + 1) % 64).collect();
        let ids = Tensor::from_vec(ids, (2, 9), m.device()).unwrap();
        let layout = BatchLayout::left_padded(&[5, 9], 9).unwrap();
        let run = |k: Kernels| {
            let logits = m
                .transformer()
                .forward(&ids, Some(&layout), None, k)
                .unwrap();
            // A loss that weighs every logit differently.
            let w = Tensor::arange(0f32, (2 * 9 * 64) as f32, m.device())
                .unwrap()
                .reshape((2, 9, 64))
                .unwrap()
                .affine(1e-3, -0.5)
                .unwrap()
                .sin()
                .unwrap();
            let loss = (logits.clone() * w).unwrap().sum_all().unwrap();
            (logits, loss.backward().unwrap())
        };
        let (la, ga) = run(Kernels::Differentiable);
        let (lb, gb) = run(Kernels::Composed);
        let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(common::max_abs_diff(&flat(&la), &flat(&lb)) < 1e-5);
        for (name, var) in m.named_vars() {
            let a = flat(ga.get(var.as_tensor()).unwrap());
            let b = flat(gb.get(var.as_tensor()).unwrap());
            let scale = b.iter().fold(0f32, |s, x| s.max(x.abs()));
            let d = common::max_abs_diff(&a, &b);
            assert!(
                d <= 1e-4 * scale.max(1.0),
                "{name}: grads differ by {d} (scale {scale})"
            );
        }
    }
}

#[test]
fn bf16_training_path_covers_every_weight() {
    let m32 = common::model(common::tiny_qwen2(), 7);
    let m = Model::from_tensors(
        m32.config().clone(),
        m32.tensors().unwrap(),
        m32.tokenizer().clone(),
        m32.device(),
        DType::BF16,
    )
    .unwrap();
    let ids = Tensor::new(&[[3u32, 1, 4, 1, 5, 9, 2, 6]], m.device()).unwrap();
    let logits = m.forward(&ids, None, None).unwrap();
    assert_eq!(logits.dtype(), DType::BF16);
    let inputs = logits
        .narrow(1, 0, 7)
        .unwrap()
        .reshape((7, 64))
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap();
    let targets = ids.narrow(1, 1, 7).unwrap().reshape(7).unwrap();
    let loss = candle_nn::loss::cross_entropy(&inputs, &targets).unwrap();
    assert_full_coverage(&m, &loss);
}

#[test]
fn snapshots_and_models_can_cross_threads() {
    fn send_sync<T: Send + Sync + Clone>() {}
    send_sync::<azr_core::model::Snapshot>();
    send_sync::<Model>();
    let snap = common::model(common::tiny_qwen2(), 8).snapshot().unwrap();
    let handle = std::thread::spawn(move || {
        azr_core::model::generate(
            &snap,
            &[vec![1, 2, 3]],
            &azr_core::model::SamplingParams::greedy(3),
        )
        .unwrap()
    });
    assert_eq!(handle.join().unwrap()[0].tokens.len(), 3);
}

/// The fused log-prob/entropy kernel of `response_logprobs` agrees with the composed
/// log-softmax in values and in the gradient it sends to every weight.
#[test]
fn fused_logprob_entropy_matches_composed() {
    use azr_core::model::{logprobs_with_kernels, Kernels};
    let m = common::model(common::tiny_llama(), 9);
    let batch = vec![
        (vec![5, 6, 7], vec![8, 9, 10, 11, 1]),
        (vec![12], vec![13, 14]),
    ];
    let run = |k: Kernels| {
        let lp = logprobs_with_kernels(m.transformer(), k, &batch).unwrap();
        // Mixed weights on log-probs and entropies exercise both backward terms.
        let loss = ((lp.logprobs.sum_all().unwrap() * 0.7).unwrap()
            - (lp.entropy.sum_all().unwrap() * 1.3).unwrap())
        .unwrap();
        (lp, loss.backward().unwrap())
    };
    let (a, ga) = run(Kernels::Differentiable);
    let (b, gb) = run(Kernels::Composed);
    let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert!(common::max_abs_diff(&flat(&a.logprobs), &flat(&b.logprobs)) < 1e-5);
    assert!(common::max_abs_diff(&flat(&a.entropy), &flat(&b.entropy)) < 1e-5);
    assert_eq!(flat(&a.mask), flat(&b.mask));
    for (name, var) in m.named_vars() {
        let x = flat(ga.get(var.as_tensor()).unwrap());
        let y = flat(gb.get(var.as_tensor()).unwrap());
        let scale = y.iter().fold(0f32, |s, v| s.max(v.abs()));
        let d = common::max_abs_diff(&x, &y);
        assert!(d <= 1e-4 * scale.max(1.0), "{name}: grads differ by {d}");
    }
}

/// Data-parallel training: the gradient summed over row shards (each shard's token-mean loss
/// divided by the whole batch's token count, shards of different padded lengths, more shards
/// than threads) equals the whole batch's gradient, and so does the loss.
#[test]
fn sharded_gradients_equal_the_whole_batch_gradient() {
    use azr_core::rl::optim::{shard_ranges, sharded_gradients};
    let m = common::model(common::tiny_qwen2(), 10);
    let batch = vec![
        (vec![5, 6, 7], vec![8, 9, 10, 11]),
        (vec![12], vec![13, 14]),
        (vec![3, 4], vec![15, 16, 17, 18, 19, 20]),
        (vec![21, 22, 23, 24], vec![25]),
        (vec![26], vec![27, 28, 29]),
    ];
    let tokens: usize = batch.iter().map(|(_, r)| r.len()).sum();
    let loss_of = |rows: &[(Vec<u32>, Vec<u32>)]| -> candle_core::Result<Tensor> {
        let lp = response_logprobs(&m, rows).unwrap();
        let l = ((lp.logprobs.sum_all()? * -1.0)? + (lp.entropy.sum_all()? * 0.3)?)?;
        l / tokens as f64
    };
    let whole = loss_of(&batch).unwrap();
    let want = whole.backward().unwrap();
    let vars = m.named_vars();
    let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    for shards in [1, 2, 3, 5] {
        let ranges = shard_ranges(batch.len(), shards);
        assert_eq!(ranges.len(), shards);
        let (grads, outs) = sharded_gradients(&vars, ranges.len(), |i| {
            Ok::<_, candle_core::Error>((loss_of(&batch[ranges[i].clone()])?, i))
        })
        .unwrap();
        assert_eq!(
            outs.iter().map(|o| o.value).collect::<Vec<_>>(),
            (0..shards).collect::<Vec<_>>()
        );
        let loss: f32 = outs.iter().map(|o| o.loss).sum();
        assert!(
            (loss - whole.to_scalar::<f32>().unwrap()).abs() < 1e-5,
            "{shards} shards: loss {loss}"
        );
        for (i, (name, var)) in vars.iter().enumerate() {
            let x = flat(grads.get(i).unwrap());
            let y = flat(want.get(var.as_tensor()).unwrap());
            let scale = y.iter().fold(0f32, |s, v| s.max(v.abs()));
            let d = common::max_abs_diff(&x, &y);
            assert!(
                d <= 1e-4 * scale.max(1e-3),
                "{shards} shards, {name}: grads differ by {d}"
            );
        }
    }
}
