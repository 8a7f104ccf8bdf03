//! Hand-computed checks of the RL math: advantage estimators, the PPO policy loss with its
//! aggregation modes, entropy and KL terms, and the learning-rate schedules.
//!
//! Run: `cargo test --release -p azr-core --test rl_math`

use azr_core::rl::advantage::{
    self, grpo, reinforce_pp, rloo, shuffle_rewards, task_relative_reinforce_pp, AdvantageEstimator,
};
use azr_core::rl::loss::{
    agg_loss, kl_penalty, policy_loss, KlEstimator, LossAggMode, LossScale, PolicyLossConfig,
    PolicyLossInputs,
};
use azr_core::rl::schedule::LrSchedule;
use azr_core::rl::RlError;
use azr_core::types::{Role, ScoredRollout, TaskKind};
use candle_core::{Device, Tensor, Var};

fn close(a: f32, b: f32, tol: f32) -> bool {
    (a - b).abs() <= tol
}

fn assert_all_close(got: &[f32], want: &[f32], tol: f32) {
    assert_eq!(got.len(), want.len(), "lengths differ: {got:?} vs {want:?}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            close(*g, *w, tol),
            "index {i}: got {g}, want {w} (all: {got:?})"
        );
    }
}

// ---------------------------------------------------------------- advantages

#[test]
fn grpo_matches_hand_computation() {
    // Group 7: rewards 1,0,0,1 -> mean 0.5, unbiased var = 4 * 0.25 / 3 = 1/3, std = 0.577350;
    //   adv = ±0.5 / (0.577350 + 1e-6) = ±0.866024.
    // Group 3: rewards 1,1 -> mean 1, std 0 -> adv = 0 / 1e-6 = 0.
    // Group 9 (single rollout): mean 0, std 1 -> adv = 0.5 / (1 + 1e-6) = 0.4999995.
    let rewards = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.5];
    let groups = [7, 7, 7, 7, 3, 3, 9];
    let adv = grpo(&rewards, &groups, true).unwrap();
    assert_all_close(
        &adv,
        &[
            0.866024, -0.866024, -0.866024, 0.866024, 0.0, 0.0, 0.4999995,
        ],
        1e-5,
    );
    // Dr. GRPO (no std): r - mean -> ±0.5, 0, 0.5 (single group: mean 0).
    let adv = grpo(&rewards, &groups, false).unwrap();
    assert_all_close(&adv, &[0.5, -0.5, -0.5, 0.5, 0.0, 0.0, 0.5], 1e-6);
}

#[test]
fn grpo_groups_are_interleaved_correctly() {
    // Same data as above but the groups are shuffled in the batch: each rollout keeps its value.
    let rewards = [1.0, 1.0, 0.0, 1.0, 0.0, 1.0];
    let groups = [7, 3, 7, 7, 7, 3];
    let adv = grpo(&rewards, &groups, true).unwrap();
    assert_all_close(
        &adv,
        &[0.866024, 0.0, -0.866024, 0.866024, -0.866024, 0.0],
        1e-5,
    );
    assert!(matches!(
        grpo(&rewards, &groups[..3], true),
        Err(RlError::Shape { .. })
    ));
}

#[test]
fn rloo_matches_hand_computation() {
    // Group [1,0,0,1]: r=1 -> 1 - mean(0,0,1) = 1 - 1/3 = 2/3; r=0 -> 0 - mean(1,0,1) = -2/3.
    // Group [1,1]: 1 - 1 = 0. Single rollout 0.5: kept as 0.5 (verl).
    let adv = rloo(&[1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.5], &[7, 7, 7, 7, 3, 3, 9]).unwrap();
    let t = 2.0 / 3.0;
    assert_all_close(&adv, &[t, -t, -t, t, 0.0, 0.0, 0.5], 1e-6);
}

#[test]
fn reinforce_pp_whitens_token_weighted_with_unbiased_variance() {
    // Tokens: rollout 0 (r=1) has 2 tokens, rollout 1 (r=0) 1, rollout 2 (r=0.5) 1 -> N = 4.
    // mean = (1+1+0+0.5)/4 = 0.625.
    // sum of squared deviations = 2*0.375^2 + 0.625^2 + 0.125^2 = 0.28125 + 0.390625 + 0.015625
    //   = 0.6875; unbiased var = 0.6875 / 3 = 0.2291667; std = 0.4787136.
    // adv = (r - 0.625) / sqrt(0.2291667 + 1e-8) = 0.7833494, -1.3055824, -0.2611165.
    let (adv, w) = reinforce_pp(&[1.0, 0.0, 0.5], &[2, 1, 1]).unwrap();
    assert_all_close(&adv, &[0.7833494, -1.3055824, -0.2611165], 1e-5);
    assert!((w.mean - 0.625).abs() < 1e-12);
    assert!((w.std - 0.4787136).abs() < 1e-6);
    assert_eq!(w.tokens, 4);
    // One token in total: no variance -> advantages 0 (verl would raise).
    let (adv, w) = reinforce_pp(&[3.0], &[1]).unwrap();
    assert_eq!(adv, vec![0.0]);
    assert_eq!(w.std, 0.0);
}

#[test]
fn task_relative_reinforce_pp_uses_one_baseline_per_key() {
    // Key A = (deduction, solve): r = 1 (1 token), 0 (1 token): mean 0.5,
    //   unbiased var = (0.25 + 0.25) / 1 = 0.5, std 0.7071068 -> adv ±0.7071067.
    // Key B = (abduction, propose): r = 0.5 (2 tokens), -1 (2 tokens): mean -0.25,
    //   deviations ±0.75 on 4 tokens -> unbiased var = 2.25 / 3 = 0.75, std 0.8660254
    //   -> adv ±0.8660254.
    // Key C = (induction, solve): a single 1-token rollout -> adv 0.
    let a = (TaskKind::Deduction, Role::Solve);
    let b = (TaskKind::Abduction, Role::Propose);
    let c = (TaskKind::Induction, Role::Solve);
    let rewards = [1.0, 0.5, 0.0, -1.0, 0.3];
    let lengths = [1, 2, 1, 2, 1];
    let keys = [a, b, a, b, c];
    let (adv, stats) = task_relative_reinforce_pp(&rewards, &lengths, &keys).unwrap();
    let h = std::f32::consts::FRAC_1_SQRT_2; // 0.5 / sqrt(0.5 + 1e-8) = 0.7071068 = 1/sqrt(2)
    assert_all_close(&adv, &[h, 0.8660254, -h, -0.8660254, 0.0], 1e-5);
    assert_eq!(stats.len(), 3);
    assert!((stats[&b].mean + 0.25).abs() < 1e-12);
    assert!((stats[&b].std - 0.8660254).abs() < 1e-6);
    // Plain REINFORCE++ on the same batch uses one baseline and gives different values.
    let (global, _) = reinforce_pp(&rewards, &lengths).unwrap();
    assert!((global[0] - adv[0]).abs() > 0.1);
}

fn rollout(reward: f32, len: usize, group: u64, task: TaskKind, role: Role) -> ScoredRollout {
    ScoredRollout {
        prompt_ids: vec![1, 2],
        response_ids: vec![3; len],
        sample_logprobs: vec![-1.0; len],
        reward,
        task,
        role,
        group,
        policy_version: 0,
    }
}

#[test]
fn compute_dispatches_on_the_estimator() {
    let (d, s) = (TaskKind::Deduction, Role::Solve);
    let rs = vec![
        rollout(1.0, 2, 1, d, s),
        rollout(0.0, 1, 1, d, s),
        rollout(0.5, 1, 2, d, s),
    ];
    // GRPO: group 1 = [1, 0]: mean 0.5, std sqrt(0.5) -> ±0.7071058; group 2 single -> 0.4999995.
    let g = advantage::compute(AdvantageEstimator::Grpo { norm_by_std: true }, &rs).unwrap();
    assert_all_close(&g, &[0.7071058, -0.7071058, 0.4999995], 1e-5);
    // RLOO: [1 - 0, 0 - 1, 0.5].
    let r = advantage::compute(AdvantageEstimator::Rloo, &rs).unwrap();
    assert_all_close(&r, &[1.0, -1.0, 0.5], 1e-6);
    // REINFORCE++ and TRR++ (a single key) agree, and equal the hand-computed whitening above.
    let p = advantage::compute(AdvantageEstimator::ReinforcePlusPlus, &rs).unwrap();
    let t = advantage::compute(AdvantageEstimator::TaskRelativeReinforcePlusPlus, &rs).unwrap();
    assert_all_close(&p, &[0.7833494, -1.3055824, -0.2611165], 1e-5);
    assert_all_close(&t, &p, 1e-7);
}

#[test]
fn estimator_config_parses_from_toml() {
    let g: AdvantageEstimator = toml::from_str("kind = \"grpo\"").unwrap();
    assert_eq!(g, AdvantageEstimator::Grpo { norm_by_std: true });
    let g: AdvantageEstimator = toml::from_str("kind = \"grpo\"\nnorm_by_std = false").unwrap();
    assert_eq!(g, AdvantageEstimator::Grpo { norm_by_std: false });
    let t: AdvantageEstimator =
        toml::from_str("kind = \"task_relative_reinforce_plus_plus\"").unwrap();
    assert_eq!(t, AdvantageEstimator::TaskRelativeReinforcePlusPlus);
    assert_eq!(AdvantageEstimator::default(), t);
    assert!(toml::from_str::<AdvantageEstimator>("kind = \"grpo\"\nnorm = true").is_err());
    assert!(toml::from_str::<AdvantageEstimator>("kind = \"ppo\"").is_err());
}

#[test]
fn shuffle_rewards_is_a_seeded_permutation() {
    let rewards: Vec<f32> = (0..16).map(|i| i as f32).collect();
    let a = shuffle_rewards(&rewards, 42);
    let b = shuffle_rewards(&rewards, 42);
    let c = shuffle_rewards(&rewards, 43);
    assert_eq!(a, b, "same seed, same permutation");
    assert_ne!(a, rewards, "a 16-element shuffle should move something");
    assert_ne!(a, c, "different seeds give different permutations");
    let mut sorted = a.clone();
    sorted.sort_by(f32::total_cmp);
    assert_eq!(sorted, rewards, "a permutation keeps the multiset");
}

// ---------------------------------------------------------------- policy loss

fn t2(rows: &[[f32; 2]]) -> Tensor {
    let flat: Vec<f32> = rows.iter().flatten().copied().collect();
    Tensor::from_vec(flat, (rows.len(), 2), &Device::Cpu).unwrap()
}

/// Ratios [[1.5, 0.9], [0.5, pad]] (old log-probs 0), advantages +1 for row 0 and -1 for row 1.
fn ppo_case() -> (Var, Tensor, Tensor, Tensor) {
    let logp = Var::from_tensor(&t2(&[[1.5f32.ln(), 0.9f32.ln()], [0.5f32.ln(), 0.0]])).unwrap();
    let old = t2(&[[0.0, 0.0], [0.0, 0.0]]);
    let adv = t2(&[[1.0, 1.0], [-1.0, -1.0]]);
    let mask = t2(&[[1.0, 1.0], [1.0, 0.0]]);
    (logp, old, adv, mask)
}

fn no_bonus() -> PolicyLossConfig {
    PolicyLossConfig {
        entropy_coeff: 0.0,
        ..PolicyLossConfig::default()
    }
}

#[test]
fn ppo_clip_token_mean_value_metrics_and_gradient() {
    // Clip 0.2: token (0,0): r=1.5, A=+1: max(-1.5, -1.2) = -1.2 (clipped, no gradient).
    // token (0,1): r=0.9, A=+1: -0.9 either way (inside the range).
    // token (1,0): r=0.5, A=-1: max(0.5, 0.8) = 0.8 (clipped, no gradient).
    // token-mean = (-1.2 - 0.9 + 0.8) / 3 = -0.4333333; clip_frac = 2/3.
    // approx_kl = mean(old - logp) = -(ln 1.5 + ln 0.9 + ln 0.5) / 3 = 0.1310142.
    // d loss / d logp = -A r / 3 on unclipped tokens: (0,1) -> -0.9 / 3 = -0.3; else 0.
    let (logp, old, adv, mask) = ppo_case();
    let cfg = no_bonus();
    let inputs = PolicyLossInputs {
        logprobs: logp.as_tensor(),
        old_logprobs: &old,
        advantages: &adv,
        mask: &mask,
        entropy: None,
        ref_logprobs: None,
    };
    let out = policy_loss(&inputs, &cfg, LossScale::of_mask(&mask).unwrap()).unwrap();
    assert!(close(
        out.loss.to_scalar::<f32>().unwrap(),
        -0.4333333,
        1e-6
    ));
    assert!(close(out.pg_loss, -0.4333333, 1e-6));
    assert!(close(out.clip_frac, 2.0 / 3.0, 1e-6));
    assert!(close(out.approx_kl, 0.1310142, 1e-6));
    assert_eq!(out.clip_frac_lower, 0.0);
    assert_eq!(out.tokens, 3.0);
    let grads = out.loss.backward().unwrap();
    let g = grads
        .get(logp.as_tensor())
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    assert_all_close(&g.concat(), &[0.0, -0.3, 0.0, 0.0], 1e-6);
}

#[test]
fn ppo_clip_higher_lets_positive_ratios_grow_further() {
    // clip_ratio_high 0.6: token (0,0) r=1.5 is now inside [0.8, 1.6]: loss -1.5, gradient
    // -1.5/3 = -0.5. token-mean = (-1.5 - 0.9 + 0.8) / 3 = -0.5333333; clip_frac = 1/3.
    let (logp, old, adv, mask) = ppo_case();
    let cfg = PolicyLossConfig {
        clip_ratio_high: 0.6,
        ..no_bonus()
    };
    let inputs = PolicyLossInputs {
        logprobs: logp.as_tensor(),
        old_logprobs: &old,
        advantages: &adv,
        mask: &mask,
        entropy: None,
        ref_logprobs: None,
    };
    let out = policy_loss(&inputs, &cfg, LossScale::of_mask(&mask).unwrap()).unwrap();
    assert!(close(out.pg_loss, -0.5333333, 1e-6));
    assert!(close(out.clip_frac, 1.0 / 3.0, 1e-6));
    let g = out.loss.backward().unwrap();
    let g = g.get(logp.as_tensor()).unwrap().to_vec2::<f32>().unwrap();
    assert_all_close(&g.concat(), &[-0.5, -0.3, 0.0, 0.0], 1e-6);
}

#[test]
fn aggregation_modes_match_hand_computation() {
    // Per-token losses from the PPO case: row 0 = [-1.2, -0.9], row 1 = [0.8, pad].
    // seq-mean-token-mean: (mean(-1.2, -0.9) + 0.8) / 2 = (-1.05 + 0.8) / 2 = -0.125.
    // seq-mean-token-sum: ((-2.1) + 0.8) / 2 = -0.65.
    let (logp, old, adv, mask) = ppo_case();
    for (mode, want) in [
        (LossAggMode::TokenMean, -0.4333333),
        (LossAggMode::SeqMeanTokenMean, -0.125),
        (LossAggMode::SeqMeanTokenSum, -0.65),
    ] {
        let cfg = PolicyLossConfig {
            loss_agg_mode: mode,
            ..no_bonus()
        };
        let inputs = PolicyLossInputs {
            logprobs: logp.as_tensor(),
            old_logprobs: &old,
            advantages: &adv,
            mask: &mask,
            entropy: None,
            ref_logprobs: None,
        };
        let out = policy_loss(&inputs, &cfg, LossScale::of_mask(&mask).unwrap()).unwrap();
        assert!(close(out.pg_loss, want, 1e-6), "{mode:?}: {}", out.pg_loss);
    }
    assert_eq!(
        toml::from_str::<PolicyLossConfig>("loss_agg_mode = \"seq-mean-token-mean\"")
            .unwrap()
            .loss_agg_mode,
        LossAggMode::SeqMeanTokenMean
    );
}

#[test]
fn agg_loss_over_split_rows_with_the_full_scale_sums_to_the_full_loss() {
    // Rows of lengths 3 and 1; the full-batch scale is 4 tokens, 2 sequences.
    let l = Tensor::new(&[[1.0f32, 2.0, 3.0], [10.0, 0.0, 0.0]], &Device::Cpu).unwrap();
    let m = Tensor::new(&[[1.0f32, 1.0, 1.0], [1.0, 0.0, 0.0]], &Device::Cpu).unwrap();
    let scale = LossScale::of_mask(&m).unwrap();
    assert_eq!(
        scale,
        LossScale {
            tokens: 4.0,
            seqs: 2.0
        }
    );
    // token-mean 16/4 = 4; seq-mean-token-mean (2 + 10)/2 = 6; seq-mean-token-sum (6 + 10)/2 = 8.
    for (mode, want) in [
        (LossAggMode::TokenMean, 4.0),
        (LossAggMode::SeqMeanTokenMean, 6.0),
        (LossAggMode::SeqMeanTokenSum, 8.0),
    ] {
        let full = agg_loss(&l, &m, mode, scale)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        let parts: f32 = (0..2)
            .map(|i| {
                let (li, mi) = (l.narrow(0, i, 1).unwrap(), m.narrow(0, i, 1).unwrap());
                agg_loss(&li, &mi, mode, scale)
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap()
            })
            .sum();
        assert!(close(full, want, 1e-6), "{mode:?} full {full}");
        assert!(close(parts, want, 1e-6), "{mode:?} parts {parts}");
    }
}

#[test]
fn dual_clip_caps_negative_advantage_losses() {
    // One row, A = -1, ratios [4, 0.5]:
    // token 0: max(-A r, -A clip(r)) = max(4, 1.2) = 4; dual-clip c = 3 -> min(4, 3) = 3 (bound
    //   active, no gradient). token 1: max(0.5, 0.8) = 0.8 (clipped); min(0.8, 3) = 0.8.
    // token-mean with dual clip = (3 + 0.8)/2 = 1.9; without = (4 + 0.8)/2 = 2.4.
    // clip_frac: only token 1 -> 0.5; clip_frac_lower: only token 0 -> 0.5.
    // Gradient without dual clip: token 0 -> -A r / 2 = 2; with dual clip: 0.
    let logp =
        Var::from_tensor(&Tensor::new(&[[4f32.ln(), 0.5f32.ln()]], &Device::Cpu).unwrap()).unwrap();
    let old = Tensor::zeros((1, 2), candle_core::DType::F32, &Device::Cpu).unwrap();
    let adv = Tensor::new(&[[-1.0f32, -1.0]], &Device::Cpu).unwrap();
    let mask = Tensor::ones((1, 2), candle_core::DType::F32, &Device::Cpu).unwrap();
    let run = |c: Option<f32>| {
        let cfg = PolicyLossConfig {
            clip_ratio_c: c,
            ..no_bonus()
        };
        let inputs = PolicyLossInputs {
            logprobs: logp.as_tensor(),
            old_logprobs: &old,
            advantages: &adv,
            mask: &mask,
            entropy: None,
            ref_logprobs: None,
        };
        let out = policy_loss(&inputs, &cfg, LossScale::of_mask(&mask).unwrap()).unwrap();
        let g = out.loss.backward().unwrap();
        let g = g
            .get(logp.as_tensor())
            .unwrap()
            .to_vec2::<f32>()
            .unwrap()
            .concat();
        (out, g)
    };
    let (with, g_with) = run(Some(3.0));
    assert!(close(with.pg_loss, 1.9, 1e-5));
    assert!(close(with.clip_frac, 0.5, 1e-6));
    assert!(close(with.clip_frac_lower, 0.5, 1e-6));
    assert_all_close(&g_with, &[0.0, 0.0], 1e-6);
    let (without, g_without) = run(None);
    assert!(close(without.pg_loss, 2.4, 1e-5));
    assert_eq!(without.clip_frac_lower, 0.0);
    assert_all_close(&g_without, &[2.0, 0.0], 1e-5);
}

#[test]
fn kl_estimators_match_hand_computation() {
    // logp = ln 0.5, ref = ln 0.25: log-ratio d = logp - ref = ln 2 = 0.6931472.
    // k1 = 0.6931472; k2 = 0.5 d^2 = 0.2402265; k3: x = ref - logp = -ln 2, e^x - x - 1
    // = 0.5 + 0.6931472 - 1 = 0.1931472; d k3 / d logp = 1 - e^x = 0.5.
    let logp = Var::from_tensor(&Tensor::new(&[[0.5f32.ln()]], &Device::Cpu).unwrap()).unwrap();
    let r = Tensor::new(&[[0.25f32.ln()]], &Device::Cpu).unwrap();
    let v = |e| {
        kl_penalty(logp.as_tensor(), &r, e)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap()[0][0]
    };
    assert!(close(v(KlEstimator::K1), std::f32::consts::LN_2, 1e-6));
    assert!(close(v(KlEstimator::K2), 0.2402265, 1e-6));
    assert!(close(v(KlEstimator::K3), 0.1931472, 1e-6));
    let k3 = kl_penalty(logp.as_tensor(), &r, KlEstimator::K3).unwrap();
    let g = k3.sum_all().unwrap().backward().unwrap();
    let g = g.get(logp.as_tensor()).unwrap().to_vec2::<f32>().unwrap()[0][0];
    assert!(close(g, 0.5, 1e-6));
    // k3 clamps: x = 15 -> e^15 - 16 >> 10 -> 10; x = -30 -> clamp to -20 -> e^-20 + 19 -> 10.
    let zero = Tensor::new(&[[0.0f32, 0.0]], &Device::Cpu).unwrap();
    let far = Tensor::new(&[[15.0f32, -30.0]], &Device::Cpu).unwrap();
    let k = kl_penalty(&zero, &far, KlEstimator::K3)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    assert_eq!(k, vec![vec![10.0, 10.0]]);
    // Names as in verl configs.
    for (s, e) in [
        ("low_var_kl", KlEstimator::K3),
        ("k3", KlEstimator::K3),
        ("mse", KlEstimator::K2),
        ("kl", KlEstimator::K1),
    ] {
        let cfg: PolicyLossConfig = toml::from_str(&format!("kl_estimator = \"{s}\"")).unwrap();
        assert_eq!(cfg.kl_estimator, e);
    }
}

#[test]
fn total_loss_adds_entropy_bonus_and_kl_term() {
    // pg (token-mean) = -0.4333333 (PPO case). Entropy [[2, 1], [0.5, pad 9]]: token-mean
    // (2 + 1 + 0.5)/3 = 1.1666667, coefficient 0.1 -> -0.1166667. Reference = logp - 0.3 on
    // every token -> k1 = 0.3, token-mean 0.3, coefficient 0.5 -> +0.15.
    // Total = -0.4333333 - 0.1166667 + 0.15 = -0.4.
    let (logp, old, adv, mask) = ppo_case();
    let entropy = t2(&[[2.0, 1.0], [0.5, 9.0]]);
    let reference = (logp.as_tensor() - 0.3).unwrap().detach();
    let cfg = PolicyLossConfig {
        entropy_coeff: 0.1,
        kl_coef: 0.5,
        kl_estimator: KlEstimator::K1,
        ..PolicyLossConfig::default()
    };
    let inputs = PolicyLossInputs {
        logprobs: logp.as_tensor(),
        old_logprobs: &old,
        advantages: &adv,
        mask: &mask,
        entropy: Some(&entropy),
        ref_logprobs: Some(&reference),
    };
    let out = policy_loss(&inputs, &cfg, LossScale::of_mask(&mask).unwrap()).unwrap();
    assert!(close(out.entropy, 1.1666667, 1e-6));
    assert!(close(out.kl, 0.3, 1e-6));
    assert!(close(out.loss.to_scalar::<f32>().unwrap(), -0.4, 1e-6));
    // The KL term is active but the reference is missing -> error.
    let missing = PolicyLossInputs {
        ref_logprobs: None,
        ..inputs
    };
    assert!(matches!(
        policy_loss(&missing, &cfg, LossScale::of_mask(&mask).unwrap()),
        Err(RlError::MissingReference)
    ));
}

#[test]
fn loss_config_defaults_and_validation() {
    let d = PolicyLossConfig::default();
    assert_eq!((d.clip_ratio_low, d.clip_ratio_high), (0.2, 0.2));
    assert_eq!(d.clip_ratio_c, None);
    assert_eq!(d.entropy_coeff, 0.001);
    assert_eq!(d.kl_coef, 0.0);
    assert!(d.validate().is_ok());
    let bad = PolicyLossConfig {
        clip_ratio_c: Some(1.0),
        ..d
    };
    assert!(matches!(
        bad.validate(),
        Err(RlError::Config {
            key: "clip_ratio_c",
            ..
        })
    ));
    assert!(toml::from_str::<PolicyLossConfig>("clip_ratio = 0.2").is_err());
}

// ---------------------------------------------------------------- schedules

#[test]
fn schedules_match_hand_computation() {
    assert_eq!(LrSchedule::Constant.multiplier(0), 1.0);
    assert_eq!(LrSchedule::Constant.multiplier(1000), 1.0);
    let w = LrSchedule::WarmupConstant { warmup_steps: 4 };
    assert_eq!([0, 2, 4, 10].map(|s| w.multiplier(s)), [0.0, 0.5, 1.0, 1.0]);
    // warmup 2, total 10, min 0.1: step 1 -> 1/2; step 2 -> p = 0 -> 1;
    // step 6 -> p = 4/8 -> cos(pi/2) = 0 -> 0.55 * 0 + 0.55 = 0.55; step 10 -> p = 1 -> -0.45 +
    // 0.55 = 0.1; step 20 -> stays 0.1.
    let c = LrSchedule::WarmupCosine {
        warmup_steps: 2,
        total_steps: 10,
        min_lr_ratio: 0.1,
    };
    let got = [1, 2, 6, 10, 20].map(|s| c.multiplier(s) as f32);
    assert_all_close(&got, &[0.5, 1.0, 0.55, 0.1, 0.1], 1e-6);
    let parsed: LrSchedule = toml::from_str(
        "kind = \"warmup_cosine\"\nwarmup_steps = 2\ntotal_steps = 10\nmin_lr_ratio = 0.1",
    )
    .unwrap();
    assert_eq!(parsed, c);
    let bad = LrSchedule::WarmupCosine {
        warmup_steps: 5,
        total_steps: 3,
        min_lr_ratio: 0.0,
    };
    assert!(bad.validate().is_err());
}
