//! Off-policy correction (truncated importance sampling, AReaL's decoupled PPO weights, weight
//! statistics) and advantages with missing rewards, on hand-computed cases and a tiny bigram
//! policy.
//!
//! Run: `cargo test --release -p azr-core --test rl_offpolicy`

use azr_core::rl::advantage::{self, AdvantageEstimator};
use azr_core::rl::learner::{Learner, LearnerConfig, TrainablePolicy};
use azr_core::rl::offpolicy::{
    decoupled_weight, importance_weight, token_weights, truncated_is_weight, weight_stats,
    OffPolicyCorrection,
};
use azr_core::rl::optim::AdamWConfig;
use azr_core::rl::RlError;
use azr_core::types::{Role, ScoredRollout, TaskKind};
use candle_core::{Device, Tensor, Var, D};

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol
}

#[test]
fn weights_by_hand() {
    // log(0.5) - log(0.25) = log 2: the proximal policy likes the token twice as much.
    let (p, b) = (0.5f32.ln(), 0.25f32.ln());
    assert!(close(f64::from(importance_weight(p, b)), 2.0, 1e-6));
    assert!(close(f64::from(truncated_is_weight(p, b, 1.5)), 1.5, 1e-6));
    assert!(close(f64::from(truncated_is_weight(p, b, 3.0)), 2.0, 1e-6));
    // Decoupled PPO masks a token above the cap instead of truncating it.
    assert_eq!(decoupled_weight(p, b, 1.5), 0.0);
    assert!(close(f64::from(decoupled_weight(p, b, 2.5)), 2.0, 1e-6));
    // Below 1 nothing is cut.
    assert!(close(f64::from(truncated_is_weight(b, p, 2.0)), 0.5, 1e-6));
    assert!(close(f64::from(decoupled_weight(b, p, 2.0)), 0.5, 1e-6));
    // On-policy data: weight 1 whatever the correction.
    for c in [
        OffPolicyCorrection::None,
        OffPolicyCorrection::TruncatedIs { cap: 2.0 },
        OffPolicyCorrection::Decoupled { cap: 2.0 },
    ] {
        assert_eq!(c.weight(-1.3, -1.3), 1.0, "{c:?}");
    }
    // Extreme log-ratios stay finite.
    assert!(importance_weight(100.0, -100.0).is_finite());
    let w = token_weights(
        OffPolicyCorrection::TruncatedIs { cap: 2.0 },
        &[p, b, p],
        &[b, p, p],
    );
    assert_eq!(w.len(), 3);
    assert!(close(f64::from(w[0]), 2.0, 1e-6) && close(f64::from(w[1]), 0.5, 1e-6));
    assert_eq!(w[2], 1.0);
}

#[test]
fn weight_stats_by_hand() {
    // w = [1, 1, 1, 1]: mean 1, std 0, ESS 1.
    let s = weight_stats(&[1.0; 4]);
    assert_eq!((s.mean, s.std, s.ess, s.tokens), (1.0, 0.0, 1.0, 4));
    // w = [2, 0]: mean 1, std 1, ESS = (2)^2 / (2 * 4) = 0.5.
    let s = weight_stats(&[2.0, 0.0]);
    assert!(close(s.mean, 1.0, 1e-12) && close(s.std, 1.0, 1e-12));
    assert!(close(s.ess, 0.5, 1e-12));
    // w = [0.5, 1.5, 1, 1]: mean 1, var = (0.25 + 0.25) / 4 = 0.125, ESS = 16 / (4 * 4.5).
    let s = weight_stats(&[0.5, 1.5, 1.0, 1.0]);
    assert!(close(s.std, 0.125f64.sqrt(), 1e-9));
    assert!(close(s.ess, 16.0 / 18.0, 1e-9));
    // Empty: the on-policy values; all masked: ESS stays positive.
    let e = weight_stats(&[]);
    assert_eq!((e.mean, e.std, e.ess), (1.0, 0.0, 1.0));
    let z = weight_stats(&[0.0, 0.0]);
    assert!(z.ess > 0.0 && z.ess <= 1.0);
}

#[test]
fn config_parses_and_rejects_a_bad_cap() {
    let c: OffPolicyCorrection = toml::from_str("kind = \"truncated_is\"").unwrap();
    assert_eq!(c, OffPolicyCorrection::TruncatedIs { cap: 2.0 });
    let c: OffPolicyCorrection = toml::from_str("kind = \"decoupled\"\ncap = 3.0").unwrap();
    assert_eq!(c, OffPolicyCorrection::Decoupled { cap: 3.0 });
    assert!(OffPolicyCorrection::TruncatedIs { cap: 0.5 }
        .validate()
        .is_err());
    let cfg = LearnerConfig {
        off_policy: OffPolicyCorrection::Decoupled { cap: f32::NAN },
        ..LearnerConfig::default()
    };
    assert!(cfg
        .validate()
        .unwrap_err()
        .to_string()
        .contains("off_policy"));
}

fn r(reward: f32, group: u64, task: TaskKind, role: Role) -> ScoredRollout {
    ScoredRollout {
        prompt_ids: vec![1],
        response_ids: vec![2, 3],
        sample_logprobs: vec![-1.0, -1.0],
        reward,
        task,
        role,
        group,
        policy_version: 0,
    }
}

#[test]
fn missing_rewards_are_left_out_of_advantage_statistics() {
    // GRPO group [1, 0, <missing>]: the missing one must not count as a 0 (it would pull the
    // mean to 1/3); the other two are normalised among themselves: +-0.7071.
    let rs = vec![
        r(1.0, 7, TaskKind::Math, Role::Solve),
        r(0.0, 7, TaskKind::Math, Role::Solve),
        r(0.0, 7, TaskKind::Math, Role::Solve),
    ];
    let est = AdvantageEstimator::Grpo { norm_by_std: true };
    let a = advantage::compute_partial(est, &rs, &[true, true, false]).unwrap();
    assert_eq!(a[2], None);
    let s = std::f64::consts::FRAC_1_SQRT_2;
    assert!(close(f64::from(a[0].unwrap()), s, 1e-4), "{a:?}");
    assert!(close(f64::from(a[1].unwrap()), -s, 1e-4), "{a:?}");
    // Identical to computing on the rewarded subset alone, for every estimator.
    for est in [
        AdvantageEstimator::Grpo { norm_by_std: false },
        AdvantageEstimator::Rloo,
        AdvantageEstimator::ReinforcePlusPlus,
        AdvantageEstimator::TaskRelativeReinforcePlusPlus,
    ] {
        let part = advantage::compute_partial(est, &rs, &[true, true, false]).unwrap();
        let sub = advantage::compute(est, &rs[..2]).unwrap();
        assert_eq!(part[..2], [Some(sub[0]), Some(sub[1])], "{est:?}");
    }
    assert!(advantage::compute_partial(est, &rs, &[true]).is_err());
}

/// A bigram policy: `logits(next | prev) = W[prev]`.
struct Bigram {
    w: Var,
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

fn bigram(v: usize) -> Bigram {
    let vals: Vec<f32> = (0..v * v)
        .map(|i| (((i * 7 + 13) % 11) as f32 - 5.0) * 0.2)
        .collect();
    let t = Tensor::from_vec(vals, (v, v), &Device::Cpu).unwrap();
    Bigram {
        w: Var::from_tensor(&t).unwrap(),
    }
}

fn batch(policy: &Bigram, shift: f32) -> Vec<ScoredRollout> {
    let items = [
        (vec![0u32], vec![1u32, 2], 1.0f32),
        (vec![1], vec![3, 0, 2], -0.5),
        (vec![2], vec![2], 0.25),
        (vec![3], vec![1, 1], 1.0),
    ];
    items
        .into_iter()
        .map(|(p, y, reward)| {
            let (lp, _, _) = policy.response_logprobs(&[(p.clone(), y.clone())]).unwrap();
            // `shift` makes the behaviour policy differ from the current weights (stale data).
            let sample_logprobs: Vec<f32> = lp
                .to_vec2::<f32>()
                .unwrap()
                .remove(0)
                .into_iter()
                .map(|l| l - shift)
                .collect();
            ScoredRollout {
                prompt_ids: p,
                response_ids: y,
                sample_logprobs,
                reward,
                task: TaskKind::Deduction,
                role: Role::Solve,
                group: 0,
                policy_version: 0,
            }
        })
        .collect()
}

fn cfg(off_policy: OffPolicyCorrection) -> LearnerConfig {
    LearnerConfig {
        optimizer: AdamWConfig {
            lr: 1e-2,
            weight_decay: 0.0,
            ..AdamWConfig::default()
        },
        off_policy,
        ..LearnerConfig::default()
    }
}

fn weights_after(c: LearnerConfig, rollouts: &[ScoredRollout]) -> (Vec<f32>, f64, f64) {
    let policy = bigram(4);
    let mut l = Learner::new(c, &policy).unwrap();
    let s = l.step(&policy, rollouts, None).unwrap();
    let w = policy
        .w
        .as_tensor()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    (w, s.importance.mean, s.importance.ess)
}

#[test]
fn correction_is_exact_on_policy_and_caps_stale_tokens() {
    let policy = bigram(4);
    let on = batch(&policy, 0.0);
    // On-policy data: every correction gives the plain update, with weights 1 and ESS 1.
    let (plain, m, e) = weights_after(cfg(OffPolicyCorrection::None), &on);
    assert_eq!((m, e), (1.0, 1.0));
    for c in [
        OffPolicyCorrection::TruncatedIs { cap: 2.0 },
        OffPolicyCorrection::Decoupled { cap: 2.0 },
    ] {
        let (w, mean, ess) = weights_after(cfg(c), &on);
        assert!(close(mean, 1.0, 1e-5) && close(ess, 1.0, 1e-5), "{c:?}");
        for (a, b) in w.iter().zip(&plain) {
            assert!((a - b).abs() < 1e-5, "{c:?}: {a} vs {b}");
        }
    }
    // Stale data where the behaviour policy gave every token e^-1 times less mass than now:
    // raw weight e = 2.718; TIS truncates it to the cap, decoupled PPO masks every token.
    let stale = batch(&policy, 1.0);
    let (_, mean, _) = weights_after(cfg(OffPolicyCorrection::TruncatedIs { cap: 2.0 }), &stale);
    assert!(close(mean, 2.0, 1e-5), "{mean}");
    let (w, mean, _) = weights_after(cfg(OffPolicyCorrection::Decoupled { cap: 2.0 }), &stale);
    assert_eq!(mean, 0.0);
    // Every advantage is masked: the update is the one of a batch without any advantage
    // (equal rewards), i.e. the entropy bonus alone.
    let mut flat = stale.clone();
    for r in &mut flat {
        r.reward = 1.0;
    }
    let (entropy_only, _, _) = weights_after(cfg(OffPolicyCorrection::None), &flat);
    for (a, b) in w.iter().zip(&entropy_only) {
        assert!((a - b).abs() < 1e-6, "{a} vs {b}");
    }
    // Two PPO epochs: the proximal policy is recomputed once, same weights on the first pass.
    let two = LearnerConfig {
        ppo_epochs: 2,
        ..cfg(OffPolicyCorrection::TruncatedIs { cap: 2.0 })
    };
    let (_, mean, _) = weights_after(two, &stale);
    assert!(close(mean, 2.0, 1e-5), "{mean}");
}
