//! AdamW (against `candle_nn::AdamW` and by hand), gradient clipping, optimizer state round
//! trips, and the learner step on a tiny bigram policy.
//!
//! Run: `cargo test --release -p azr-core --test rl_training`
//! (the AdamW speed comparison is `#[ignore]`d: add `-- --ignored adamw_speed` to run it).

use std::collections::HashMap;

use azr_core::rl::advantage::{self, AdvantageEstimator};
use azr_core::rl::learner::{Learner, LearnerConfig, OldLogprobs, TrainablePolicy};
use azr_core::rl::loss::{KlEstimator, LossAggMode, PolicyLossConfig};
use azr_core::rl::optim::{clip_coefficient, AdamW, AdamWConfig, Gradients};
use azr_core::rl::RlError;
use azr_core::types::{Role, ScoredRollout, TaskKind};
use candle_core::{DType, Device, Tensor, Var, D};
use candle_nn::optim::Optimizer;

// ---------------------------------------------------------------- a tiny trainable policy

/// A bigram language model: `logits(next | prev) = W[prev]`, `W` a `[V, V]` variable.
struct Bigram {
    w: Var,
}

impl Bigram {
    fn new(values: Vec<f32>, v: usize) -> Self {
        let t = Tensor::from_vec(values, (v, v), &Device::Cpu).unwrap();
        Self {
            w: Var::from_tensor(&t).unwrap(),
        }
    }

    fn zeros(v: usize) -> Self {
        Self::new(vec![0.0; v * v], v)
    }

    /// Deterministic, non-uniform weights.
    fn varied(v: usize, seed: u32) -> Self {
        let vals = (0..v * v)
            .map(|i| (((i as u32 * 7 + seed * 13) % 11) as f32 - 5.0) * 0.2)
            .collect();
        Self::new(vals, v)
    }

    /// Detached log-prob of a whole response.
    fn seq_logprob(&self, prompt: &[u32], response: &[u32]) -> f32 {
        let (lp, _, mask) = self
            .response_logprobs(&[(prompt.to_vec(), response.to_vec())])
            .unwrap();
        (lp * mask)
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }
}

impl TrainablePolicy for Bigram {
    fn named_vars(&self) -> Vec<(String, Var)> {
        vec![("w".to_string(), self.w.clone())]
    }

    fn response_logprobs(
        &self,
        batch: &[(Vec<u32>, Vec<u32>)],
    ) -> Result<(Tensor, Tensor, Tensor), RlError> {
        let r = batch.iter().map(|(_, y)| y.len()).max().unwrap_or(0);
        let (mut prev, mut next, mut mask) = (vec![], vec![], vec![]);
        for (p, y) in batch {
            for t in 0..r {
                if t < y.len() {
                    prev.push(if t == 0 { *p.last().unwrap() } else { y[t - 1] });
                    next.push(y[t]);
                    mask.push(1.0f32);
                } else {
                    prev.push(0);
                    next.push(0);
                    mask.push(0.0);
                }
            }
        }
        let n = prev.len();
        let dev = Device::Cpu;
        let prev = Tensor::from_vec(prev, n, &dev)?;
        let next = Tensor::from_vec(next, (n, 1), &dev)?;
        let rows = self.w.as_tensor().index_select(&prev, 0)?;
        let logsm = candle_nn::ops::log_softmax(&rows, D::Minus1)?;
        let lp = logsm.gather(&next, 1)?.reshape((batch.len(), r))?;
        let ent = (logsm.exp()? * &logsm)?
            .sum(D::Minus1)?
            .neg()?
            .reshape((batch.len(), r))?;
        let mask = Tensor::from_vec(mask, (batch.len(), r), &dev)?;
        Ok((lp, ent, mask))
    }
}

fn rollout(
    policy: &Bigram,
    prompt: Vec<u32>,
    response: Vec<u32>,
    reward: f32,
    group: u64,
    key: (TaskKind, Role),
) -> ScoredRollout {
    let (lp, _, _) = policy
        .response_logprobs(&[(prompt.clone(), response.clone())])
        .unwrap();
    let sample_logprobs = lp.to_vec2::<f32>().unwrap().remove(0);
    ScoredRollout {
        prompt_ids: prompt,
        response_ids: response,
        sample_logprobs,
        reward,
        task: key.0,
        role: key.1,
        group,
        policy_version: 0,
    }
}

const DS: (TaskKind, Role) = (TaskKind::Deduction, Role::Solve);
const AP: (TaskKind, Role) = (TaskKind::Abduction, Role::Propose);

// ---------------------------------------------------------------- AdamW

fn make_vars(seed: u64, dtype: DType) -> Vec<Var> {
    let dev = Device::Cpu;
    let vals = |n: usize, k: u64| -> Vec<f32> {
        (0..n)
            .map(|i| ((((i as u64 + 1) * 2654435761 + seed * 97 + k) % 1000) as f32 / 500.0) - 1.0)
            .collect()
    };
    let a = Tensor::from_vec(vals(48 * 16, 1), (48, 16), &dev).unwrap();
    let b = Tensor::from_vec(vals(16, 2), 16, &dev).unwrap();
    vec![
        Var::from_tensor(&a.to_dtype(dtype).unwrap()).unwrap(),
        Var::from_tensor(&b.to_dtype(dtype).unwrap()).unwrap(),
    ]
}

/// A loss with non-trivial, step-dependent gradients: sum(tanh(x W + b)^2) with fixed x.
fn toy_loss(vars: &[Var], step: usize) -> Tensor {
    let dtype = vars[0].dtype();
    let x: Vec<f32> = (0..4 * 48)
        .map(|i| (((i * 31 + step * 7) % 17) as f32 - 8.0) / 8.0)
        .collect();
    let x = Tensor::from_vec(x, (4, 48), &Device::Cpu)
        .unwrap()
        .to_dtype(dtype)
        .unwrap();
    let h = x
        .matmul(vars[0].as_tensor())
        .unwrap()
        .broadcast_add(vars[1].as_tensor())
        .unwrap()
        .tanh()
        .unwrap();
    h.sqr().unwrap().sum_all().unwrap()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

fn compare_with_candle_nn(weight_decay: f64, dtype: DType) {
    let ours_vars = make_vars(3, dtype);
    let theirs_vars = make_vars(3, dtype);
    let named: Vec<(String, Var)> = ours_vars
        .iter()
        .enumerate()
        .map(|(i, v)| (format!("p{i}"), v.clone()))
        .collect();
    let cfg = AdamWConfig {
        lr: 1e-2,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay,
    };
    let mut ours = AdamW::new(named.clone(), cfg).unwrap();
    let mut theirs = candle_nn::AdamW::new(
        theirs_vars.clone(),
        candle_nn::ParamsAdamW {
            lr: cfg.lr,
            beta1: cfg.beta1,
            beta2: cfg.beta2,
            eps: cfg.eps,
            weight_decay,
        },
    )
    .unwrap();
    for step in 0..5 {
        let g_ours = toy_loss(&ours_vars, step).backward().unwrap();
        ours.step(&Gradients::from_store(&g_ours, &named), cfg.lr, 1.0)
            .unwrap();
        let g_theirs = toy_loss(&theirs_vars, step).backward().unwrap();
        theirs.step(&g_theirs).unwrap();
    }
    for (a, b) in ours_vars.iter().zip(&theirs_vars) {
        let d = max_abs_diff(a.as_tensor(), b.as_tensor());
        assert!(d < 1e-6, "wd {weight_decay} {dtype:?}: max diff {d}");
    }
    // The run really moved the weights (5 steps of lr 1e-2 -> changes of order 5e-2).
    let fresh = make_vars(3, dtype);
    assert!(max_abs_diff(ours_vars[0].as_tensor(), fresh[0].as_tensor()) > 1e-2);
    assert_eq!(ours.step_count(), 5);
}

#[test]
fn adamw_matches_candle_nn_without_weight_decay() {
    compare_with_candle_nn(0.0, DType::F32);
}

#[test]
fn adamw_matches_candle_nn_with_weight_decay() {
    compare_with_candle_nn(0.1, DType::F32);
}

#[test]
fn adamw_tensor_fallback_matches_candle_nn_for_f64() {
    // f64 variables take the tensor-op path instead of the fused f32 loop.
    compare_with_candle_nn(0.1, DType::F64);
}

#[test]
fn adamw_first_step_by_hand() {
    // w = [1, -2], loss = 0.5 w0 - 0.1 w1 -> g = [0.5, -0.1]; lr 0.1, wd 0.01.
    // Step 1: m_hat = g, v_hat = g^2 -> update g / (|g| + 1e-8) = [0.99999998, -0.9999999].
    // w = w (1 - 0.1 * 0.01) - 0.1 * update = [0.999 - 0.1, -1.998 + 0.1] = [0.899, -1.898].
    let w = Var::new(&[1.0f32, -2.0], &Device::Cpu).unwrap();
    let named = vec![("w".to_string(), w.clone())];
    let cfg = AdamWConfig {
        lr: 0.1,
        weight_decay: 0.01,
        ..AdamWConfig::default()
    };
    let mut opt = AdamW::new(named.clone(), cfg).unwrap();
    let coeffs = Tensor::new(&[0.5f32, -0.1], &Device::Cpu).unwrap();
    let loss = (w.as_tensor() * &coeffs).unwrap().sum_all().unwrap();
    let grads = Gradients::from_store(&loss.backward().unwrap(), &named);
    opt.step(&grads, 0.1, 1.0).unwrap();
    let got = w.as_tensor().to_vec1::<f32>().unwrap();
    assert!(
        (got[0] - 0.899).abs() < 1e-6 && (got[1] + 1.898).abs() < 1e-6,
        "{got:?}"
    );
}

#[test]
fn grad_norm_and_clip_coefficient() {
    // Gradients [3] and [4] (two variables) -> global norm 5.
    let a = Var::new(&[1.0f32], &Device::Cpu).unwrap();
    let b = Var::new(&[1.0f32], &Device::Cpu).unwrap();
    let named = vec![("a".to_string(), a.clone()), ("b".to_string(), b.clone())];
    let loss = ((a.as_tensor() * 3.0).unwrap() + (b.as_tensor() * 4.0).unwrap())
        .unwrap()
        .sum_all()
        .unwrap();
    let mut grads = Gradients::from_store(&loss.backward().unwrap(), &named);
    assert!((grads.global_norm().unwrap() - 5.0).abs() < 1e-9);
    // Accumulating the same gradients once more doubles them: norm 10.
    grads.accumulate(&loss.backward().unwrap(), &named).unwrap();
    assert!((grads.global_norm().unwrap() - 10.0).abs() < 1e-9);
    // torch: min(1, max_norm / (norm + 1e-6)).
    assert!((clip_coefficient(5.0, 1.0) - 1.0 / 5.000001).abs() < 1e-12);
    assert_eq!(clip_coefficient(0.5, 1.0), 1.0);
    assert_eq!(clip_coefficient(100.0, 0.0), 1.0);
}

#[test]
fn adamw_grad_scale_equals_prescaled_gradients() {
    let va = make_vars(5, DType::F32);
    let vb = make_vars(5, DType::F32);
    let na: Vec<(String, Var)> = va
        .iter()
        .enumerate()
        .map(|(i, v)| (format!("p{i}"), v.clone()))
        .collect();
    let nb: Vec<(String, Var)> = vb
        .iter()
        .enumerate()
        .map(|(i, v)| (format!("p{i}"), v.clone()))
        .collect();
    let cfg = AdamWConfig {
        lr: 1e-2,
        ..AdamWConfig::default()
    };
    let mut oa = AdamW::new(na.clone(), cfg).unwrap();
    let mut ob = AdamW::new(nb.clone(), cfg).unwrap();
    for step in 0..3 {
        let scale = 0.25 * (step + 1) as f64;
        let ga = Gradients::from_store(&toy_loss(&va, step).backward().unwrap(), &na);
        oa.step(&ga, 1e-2, scale).unwrap();
        let lb = (toy_loss(&vb, step) * scale).unwrap();
        let gb = Gradients::from_store(&lb.backward().unwrap(), &nb);
        ob.step(&gb, 1e-2, 1.0).unwrap();
    }
    for (a, b) in va.iter().zip(&vb) {
        assert!(max_abs_diff(a.as_tensor(), b.as_tensor()) < 1e-6);
    }
}

#[test]
fn adamw_state_dict_round_trip_through_safetensors() {
    let cfg = AdamWConfig {
        lr: 1e-2,
        ..AdamWConfig::default()
    };
    let va = make_vars(7, DType::F32);
    let na: Vec<(String, Var)> = va
        .iter()
        .enumerate()
        .map(|(i, v)| (format!("p{i}"), v.clone()))
        .collect();
    let mut oa = AdamW::new(na.clone(), cfg).unwrap();
    for step in 0..2 {
        let g = Gradients::from_store(&toy_loss(&va, step).backward().unwrap(), &na);
        oa.step(&g, 1e-2, 1.0).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("opt.safetensors");
    candle_core::safetensors::save(&oa.state_dict().unwrap(), &path).unwrap();
    let loaded: HashMap<String, Tensor> =
        candle_core::safetensors::load(&path, &Device::Cpu).unwrap();
    assert_eq!(loaded.len(), 5); // 2 vars x (exp_avg, exp_avg_sq) + step

    // A second optimizer on a copy of the weights, restored from the file.
    let vb: Vec<Var> = va
        .iter()
        .map(|v| Var::from_tensor(&v.as_tensor().copy().unwrap()).unwrap())
        .collect();
    let nb: Vec<(String, Var)> = vb
        .iter()
        .enumerate()
        .map(|(i, v)| (format!("p{i}"), v.clone()))
        .collect();
    let mut ob = AdamW::new(nb.clone(), cfg).unwrap();
    ob.load_state_dict(&loaded).unwrap();
    assert_eq!(ob.step_count(), 2);
    let ga = Gradients::from_store(&toy_loss(&va, 2).backward().unwrap(), &na);
    oa.step(&ga, 1e-2, 1.0).unwrap();
    let gb = Gradients::from_store(&toy_loss(&vb, 2).backward().unwrap(), &nb);
    ob.step(&gb, 1e-2, 1.0).unwrap();
    for (a, b) in va.iter().zip(&vb) {
        assert_eq!(max_abs_diff(a.as_tensor(), b.as_tensor()), 0.0);
    }
    // A state dict missing a key is rejected.
    let mut broken = loaded.clone();
    broken.remove("p1.exp_avg_sq");
    assert!(matches!(
        ob.load_state_dict(&broken),
        Err(RlError::State(_))
    ));
}

/// Speed of the fused AdamW vs candle_nn::AdamW on ~4.2M f32 parameters, 5 steps each.
/// Ignored by default (takes ~10 s): `cargo test --release -p azr-core --test rl_training --
/// --ignored adamw_speed --nocapture`.
#[test]
#[ignore]
fn adamw_speed_vs_candle_nn() {
    let dev = Device::Cpu;
    let make = || {
        (0..4)
            .map(|i| {
                Var::from_tensor(
                    &Tensor::ones((1024, 1024), DType::F32, &dev)
                        .unwrap()
                        .affine(0.1 * i as f64, 0.0)
                        .unwrap(),
                )
                .unwrap()
            })
            .collect::<Vec<_>>()
    };
    let (va, vb) = (make(), make());
    let named: Vec<(String, Var)> = va
        .iter()
        .enumerate()
        .map(|(i, v)| (format!("p{i}"), v.clone()))
        .collect();
    let loss_a = va
        .iter()
        .map(|v| v.as_tensor().sqr().unwrap().sum_all().unwrap())
        .reduce(|a, b| (a + b).unwrap())
        .unwrap();
    let loss_b = vb
        .iter()
        .map(|v| v.as_tensor().sqr().unwrap().sum_all().unwrap())
        .reduce(|a, b| (a + b).unwrap())
        .unwrap();
    let ga = Gradients::from_store(&loss_a.backward().unwrap(), &named);
    let gb = loss_b.backward().unwrap();
    let mut ours = AdamW::new(named, AdamWConfig::default()).unwrap();
    let mut theirs = candle_nn::AdamW::new(vb.clone(), candle_nn::ParamsAdamW::default()).unwrap();
    let t = std::time::Instant::now();
    for _ in 0..5 {
        ours.step(&ga, 1e-3, 1.0).unwrap();
    }
    let ours_s = t.elapsed().as_secs_f64() / 5.0;
    let t = std::time::Instant::now();
    for _ in 0..5 {
        theirs.step(&gb).unwrap();
    }
    let theirs_s = t.elapsed().as_secs_f64() / 5.0;
    println!(
        "AdamW step on 4.19M params: fused {:.1} ms, candle_nn {:.1} ms",
        ours_s * 1e3,
        theirs_s * 1e3
    );
    assert!(ours_s < theirs_s, "fused AdamW should be faster");
}

// ---------------------------------------------------------------- learner

fn cfg_with(advantage: AdvantageEstimator, lr: f64) -> LearnerConfig {
    LearnerConfig {
        advantage,
        optimizer: AdamWConfig {
            lr,
            weight_decay: 0.0,
            ..AdamWConfig::default()
        },
        ..LearnerConfig::default()
    }
}

#[test]
fn one_step_raises_positive_and_lowers_negative_advantage_responses() {
    let policy = Bigram::varied(4, 1);
    let good = (vec![0u32], vec![1u32, 2]);
    let bad = (vec![0u32], vec![3u32]);
    let rollouts = vec![
        rollout(&policy, good.0.clone(), good.1.clone(), 1.0, 0, DS),
        rollout(&policy, bad.0.clone(), bad.1.clone(), 0.0, 0, DS),
    ];
    let before_good = policy.seq_logprob(&good.0, &good.1);
    let before_bad = policy.seq_logprob(&bad.0, &bad.1);
    let mut learner = Learner::new(
        cfg_with(AdvantageEstimator::Grpo { norm_by_std: true }, 0.05),
        &policy,
    )
    .unwrap();
    let stats = learner.step(&policy, &rollouts, None).unwrap();
    let after_good = policy.seq_logprob(&good.0, &good.1);
    let after_bad = policy.seq_logprob(&bad.0, &bad.1);
    assert!(
        after_good > before_good + 0.01,
        "{before_good} -> {after_good}"
    );
    assert!(after_bad < before_bad - 0.01, "{before_bad} -> {after_bad}");
    assert_eq!(stats.optimizer_steps, 1);
    assert_eq!(stats.policy_version, 1);
    assert_eq!(learner.step_count(), 1);
    assert_eq!(
        (stats.tokens, stats.sequences, stats.response_len_max),
        (3, 2, 2)
    );
    assert!((stats.reward_mean - 0.5).abs() < 1e-6);
    assert!((stats.lr - 0.05).abs() < 1e-12);
    // On-policy: ratio 1 everywhere, nothing clipped, approx_kl 0.
    assert_eq!(stats.clip_frac, 0.0);
    assert!(stats.approx_kl.abs() < 1e-6);
    assert!(stats.entropy > 0.0);
}

#[test]
fn grad_norm_matches_hand_computation() {
    // V = 2, W = 0 (uniform, p = 0.5). Group of two: prompt [0] -> response [1] (r = 1) and
    // [0] (r = 0). GRPO: mean 0.5, unbiased std sqrt(0.5) -> A = ±0.5 / (0.7071068 + 1e-6)
    // = ±0.7071058. On-policy ratio 1; token-mean loss L = -(A r1 - A r2) / 2.
    // d r / d W[0,:] = e_y - p: y=1 -> (-0.5, 0.5), y=0 -> (0.5, -0.5).
    // dL/dW[0,:] = -(A (-0.5, 0.5) - A (0.5, -0.5)) / 2 = (A/2, -A/2); row 1 gets 0.
    // The entropy term adds nothing: dH/dW = 0 at the uniform distribution.
    // Norm = A / sqrt(2) = 0.4999993. Reported before clipping (grad_clip 0.25 here).
    let policy = Bigram::zeros(2);
    let rollouts = vec![
        rollout(&policy, vec![0], vec![1], 1.0, 5, DS),
        rollout(&policy, vec![0], vec![0], 0.0, 5, DS),
    ];
    let cfg = LearnerConfig {
        grad_clip: 0.25,
        ..cfg_with(AdvantageEstimator::Grpo { norm_by_std: true }, 1e-3)
    };
    let mut learner = Learner::new(cfg, &policy).unwrap();
    let adv = advantage::compute(cfg.advantage, &rollouts).unwrap();
    let old: Vec<Vec<f32>> = rollouts.iter().map(|r| r.sample_logprobs.clone()).collect();
    let (grads, _) = learner
        .compute_gradients(&policy, &rollouts, &adv, &old, None)
        .unwrap();
    let g = grads.get(0).unwrap().to_vec2::<f32>().unwrap();
    let a = 0.7071058f32;
    assert!(
        (g[0][0] - a / 2.0).abs() < 1e-6 && (g[0][1] + a / 2.0).abs() < 1e-6,
        "{g:?}"
    );
    assert!(g[1][0].abs() < 1e-9 && g[1][1].abs() < 1e-9);
    let stats = learner.step(&policy, &rollouts, None).unwrap();
    assert!(
        (stats.grad_norm - 0.4999993).abs() < 1e-6,
        "{}",
        stats.grad_norm
    );
}

/// Five rollouts over two TRR++ keys with uneven lengths and off-policy old log-probs, so the
/// ratio clips on some tokens; a reference policy for the KL term.
fn mixed_batch(policy: &Bigram) -> Vec<ScoredRollout> {
    type Spec = (Vec<u32>, Vec<u32>, f32, (TaskKind, Role));
    let specs: [Spec; 5] = [
        (vec![0, 1], vec![2, 3, 1], 1.0, DS),
        (vec![2], vec![0], 0.0, DS),
        (vec![3], vec![1, 1, 2, 0], -0.5, AP),
        (vec![1, 2], vec![3, 2], 1.0, AP),
        (vec![0], vec![2, 2, 2, 2, 1], 0.0, DS),
    ];
    specs
        .into_iter()
        .enumerate()
        .map(|(i, (p, y, r, k))| {
            let mut ro = rollout(policy, p, y, r, i as u64, k);
            for (t, lp) in ro.sample_logprobs.iter_mut().enumerate() {
                *lp += if (i + t) % 2 == 0 { 0.4 } else { -0.15 };
            }
            ro
        })
        .collect()
}

#[test]
fn micro_batching_gives_the_full_batch_gradient_for_every_aggregation() {
    let policy = Bigram::varied(4, 2);
    let reference = Bigram::varied(4, 5);
    let rollouts = mixed_batch(&policy);
    for mode in [
        LossAggMode::TokenMean,
        LossAggMode::SeqMeanTokenMean,
        LossAggMode::SeqMeanTokenSum,
    ] {
        let base = LearnerConfig {
            loss: PolicyLossConfig {
                loss_agg_mode: mode,
                entropy_coeff: 0.01,
                kl_coef: 0.1,
                kl_estimator: KlEstimator::K3,
                ..PolicyLossConfig::default()
            },
            ..cfg_with(AdvantageEstimator::TaskRelativeReinforcePlusPlus, 1e-2)
        };
        let adv = advantage::compute(base.advantage, &rollouts).unwrap();
        let old: Vec<Vec<f32>> = rollouts.iter().map(|r| r.sample_logprobs.clone()).collect();
        let grads_for = |micro: usize| {
            let cfg = LearnerConfig {
                micro_batch_size: micro,
                ..base
            };
            let learner = Learner::new(cfg, &policy).unwrap();
            let (g, s) = learner
                .compute_gradients(&policy, &rollouts, &adv, &old, Some(&reference))
                .unwrap();
            (g.get(0).unwrap().clone(), s)
        };
        let (full, s_full) = grads_for(5);
        assert!(s_full.clip_frac > 0.0, "the case should clip some tokens");
        assert!(s_full.kl > 0.0);
        for micro in [1, 2, 3] {
            let (part, s_part) = grads_for(micro);
            let d = max_abs_diff(&full, &part);
            assert!(d < 1e-6, "{mode:?} micro {micro}: gradient differs by {d}");
            assert!((s_full.loss - s_part.loss).abs() < 1e-5);
            assert!((s_full.clip_frac - s_part.clip_frac).abs() < 1e-6);
        }
        let norm = max_abs_diff(&full, &full.zeros_like().unwrap());
        assert!(norm > 1e-4, "{mode:?}: gradient should be non-trivial");
    }
}

#[test]
fn learner_errors_and_edge_cases() {
    let policy = Bigram::varied(4, 3);
    let mut rollouts = mixed_batch(&policy);
    // KL loss on without a reference -> error.
    let mut l = Learner::new(LearnerConfig::one_shot_rlvr(), &policy).unwrap();
    assert!(matches!(
        l.step(&policy, &rollouts, None),
        Err(RlError::MissingReference)
    ));
    // Log-prob count mismatch -> shape error.
    let mut l = Learner::new(LearnerConfig::default(), &policy).unwrap();
    rollouts[1].sample_logprobs.push(0.0);
    assert!(matches!(
        l.step(&policy, &rollouts, None),
        Err(RlError::Shape { .. })
    ));
    rollouts[1].sample_logprobs.pop();
    // Empty responses are dropped and counted.
    let mut empty = rollouts[0].clone();
    empty.response_ids.clear();
    empty.sample_logprobs.clear();
    rollouts.push(empty.clone());
    let stats = l.step(&policy, &rollouts, None).unwrap();
    assert_eq!((stats.dropped_empty, stats.sequences), (1, 5));
    assert!(matches!(
        l.step(&policy, &[empty], None),
        Err(RlError::EmptyBatch(_))
    ));
    // Two mini-batches x two epochs -> four optimizer steps, staleness measured from version 1.
    let cfg = LearnerConfig {
        mini_batch_size: Some(3),
        ppo_epochs: 2,
        ..LearnerConfig::default()
    };
    let mut l = Learner::new(cfg, &policy).unwrap();
    let stats = l.step(&policy, &rollouts[..5], None).unwrap();
    assert_eq!(stats.optimizer_steps, 4);
    assert_eq!(l.step_count(), 4);
    let stats = l.step(&policy, &rollouts[..5], None).unwrap();
    assert_eq!((stats.staleness_max, stats.policy_version), (4, 8));
    assert_eq!(stats.per_key.len(), 2);
}

#[test]
fn learner_config_defaults_and_toml() {
    let azr = LearnerConfig::azr();
    assert_eq!(
        azr.advantage,
        AdvantageEstimator::TaskRelativeReinforcePlusPlus
    );
    assert_eq!(azr.optimizer.lr, 1e-6);
    assert_eq!(azr.grad_clip, 1.0);
    assert_eq!(azr.loss.kl_coef, 0.0);
    let one = LearnerConfig::one_shot_rlvr();
    assert_eq!(
        one.advantage,
        AdvantageEstimator::Grpo { norm_by_std: true }
    );
    assert_eq!((one.loss.kl_coef, one.loss.entropy_coeff), (0.001, 0.001));
    assert_eq!(one.loss.kl_estimator, KlEstimator::K3);
    assert_eq!(one.optimizer.weight_decay, 0.01);
    let parsed: LearnerConfig = toml::from_str(
        r#"
        micro_batch_size = 4
        [advantage]
        kind = "grpo"
        [loss]
        kl_coef = 0.001
        kl_estimator = "low_var_kl"
        [optimizer]
        lr = 1e-6
        [schedule]
        kind = "warmup_constant"
        warmup_steps = 10
        "#,
    )
    .unwrap();
    assert_eq!(parsed.micro_batch_size, 4);
    assert_eq!(parsed.loss.kl_coef, 0.001);
    assert!(toml::from_str::<LearnerConfig>("micro_batch = 4").is_err());
    let bad = LearnerConfig {
        micro_batch_size: 0,
        ..LearnerConfig::default()
    };
    assert!(matches!(
        bad.validate(),
        Err(RlError::Config {
            key: "micro_batch_size",
            ..
        })
    ));
}

#[test]
fn recomputed_old_logprobs_make_the_first_update_on_policy() {
    // mixed_batch's sample log-probs are off by +0.4 / -0.15, so with the sampler's log-probs
    // the ratio is not 1 and some tokens clip; recomputing them gives ratio 1 exactly.
    let policy = Bigram::varied(4, 4);
    let rollouts = mixed_batch(&policy);
    let base = cfg_with(AdvantageEstimator::TaskRelativeReinforcePlusPlus, 1e-3);
    let mut sampler = Learner::new(base, &policy).unwrap();
    let s = sampler.step(&policy, &rollouts, None).unwrap();
    assert!(s.clip_frac > 0.0 && s.approx_kl.abs() > 1e-3);
    let policy = Bigram::varied(4, 4);
    let cfg = LearnerConfig {
        old_logprobs: OldLogprobs::Recompute,
        ..base
    };
    let mut recompute = Learner::new(cfg, &policy).unwrap();
    let s = recompute.step(&policy, &rollouts, None).unwrap();
    assert_eq!(s.clip_frac, 0.0);
    assert!(s.approx_kl.abs() < 1e-6);
}
