//! Advantage estimators for outcome rewards: GRPO, REINFORCE++, task-relative REINFORCE++ (AZR's
//! TRR++) and RLOO, as pure functions over plain slices.
//!
//! Every estimator here works on *outcome* rewards (one scalar per rollout, given on its last
//! token) and returns **one advantage per rollout**; the learner broadcasts it over the rollout's
//! response tokens (`A[b, t] = adv[b] * mask[b, t]`, shape `[B, T]`). This is exact for all four
//! estimators: with `gamma = 1` every token of a response carries the same return, so verl's
//! token-level tensors are constant along `t` as well.
//!
//! Semantics follow verl's `verl/trainer/ppo/core_algos.py` (checked against the source):
//!
//! | estimator | verl function | formula (per rollout `i`) |
//! |---|---|---|
//! | GRPO | `compute_grpo_outcome_advantage` | `(r_i - mean_g) / (std_g + 1e-6)`, `std_g` **unbiased** (`torch.std`); groups of one: mean 0, std 1 |
//! | GRPO, `norm_by_std = false` (Dr. GRPO) | same, `norm_adv_by_std_in_grpo=False` | `r_i - mean_g` |
//! | REINFORCE++ | `compute_reinforce_plus_plus_outcome_advantage` + `masked_whiten` | `(r_i - mu) / sqrt(var + 1e-8)` with token-weighted `mu`, `var` over all response tokens of the batch; `var` **unbiased** (`masked_var(unbiased=True)`: times `N/(N-1)`, `N` = token count) |
//! | TRR++ (AZR Eq. 8) | REINFORCE++ called once per (task, role) sub-batch | as REINFORCE++, with `mu`, `var` per key `(TaskKind, Role)`: six baselines |
//! | RLOO | `compute_rloo_outcome_advantage` | `(r_i - mean_g) * n/(n-1)` = `r_i - mean of the other n-1`; groups of one: `r_i` |

use std::collections::BTreeMap;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::rl::RlError;
use crate::types::{BaselineKey, ScoredRollout};

/// `epsilon` added to the group std in GRPO (verl default).
pub const GRPO_EPS: f64 = 1e-6;
/// Constant added to the variance inside `masked_whiten` (verl: `rsqrt(var + 1e-8)`).
pub const WHITEN_EPS: f64 = 1e-8;

/// Which advantage estimator the learner uses (`[learner.advantage]` in TOML, `kind = "..."`).
///
/// Default: [`AdvantageEstimator::TaskRelativeReinforcePlusPlus`], AZR's estimator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum AdvantageEstimator {
    /// GRPO: normalise rewards within each group of rollouts of the same prompt
    /// (`ScoredRollout::group`). 1-shot RLVR uses this.
    Grpo {
        /// Divide by the group std (original GRPO, default `true`); `false` is Dr. GRPO.
        #[serde(default = "default_true")]
        norm_by_std: bool,
    },
    /// REINFORCE++: whiten the outcome reward over all response tokens of the batch.
    ReinforcePlusPlus,
    /// Task-relative REINFORCE++ (AZR): REINFORCE++ whitening done separately for each
    /// `(TaskKind, Role)` key.
    #[default]
    TaskRelativeReinforcePlusPlus,
    /// RLOO: leave-one-out group baseline.
    Rloo,
}

fn default_true() -> bool {
    true
}

/// Mean and std a whitening used, for metrics (per TRR++ key or for the whole batch).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Whitening {
    /// Token-weighted mean of the rewards.
    pub mean: f64,
    /// `sqrt` of the unbiased token-weighted variance (0 when fewer than 2 tokens).
    pub std: f64,
    /// Number of response tokens the statistics were computed over.
    pub tokens: usize,
}

fn check_len(what: &'static str, a: usize, b: usize) -> Result<(), RlError> {
    if a == b {
        Ok(())
    } else {
        Err(RlError::Shape {
            what,
            detail: format!("{a} rewards but {b} entries"),
        })
    }
}

/// Indices of the rollouts of each group, in first-appearance order of the groups.
fn group_members(groups: &[u64]) -> Vec<Vec<usize>> {
    let mut slot: BTreeMap<u64, usize> = BTreeMap::new();
    let mut members: Vec<Vec<usize>> = Vec::new();
    for (i, g) in groups.iter().enumerate() {
        let s = *slot.entry(*g).or_insert_with(|| {
            members.push(Vec::new());
            members.len() - 1
        });
        members[s].push(i);
    }
    members
}

/// GRPO outcome advantages (DeepSeekMath; verl `compute_grpo_outcome_advantage`).
///
/// `rewards[i]` is rollout `i`'s scalar reward and `groups[i]` its prompt group (both length `B`).
/// Returns `adv` of length `B`:
/// `adv_i = (r_i - mean_g) / (std_g + 1e-6)` with `std_g` the unbiased (Bessel-corrected) std of
/// group `g`, or `adv_i = r_i - mean_g` when `norm_by_std` is false. A group with a single rollout
/// uses mean 0 and std 1, as verl does.
pub fn grpo(rewards: &[f32], groups: &[u64], norm_by_std: bool) -> Result<Vec<f32>, RlError> {
    check_len("grpo", rewards.len(), groups.len())?;
    let mut adv = vec![0.0f32; rewards.len()];
    for members in group_members(groups) {
        let n = members.len() as f64;
        let (mean, std) = if members.len() == 1 {
            (0.0, 1.0)
        } else {
            let mean = members.iter().map(|&i| f64::from(rewards[i])).sum::<f64>() / n;
            let ss = members
                .iter()
                .map(|&i| (f64::from(rewards[i]) - mean).powi(2))
                .sum::<f64>();
            (mean, (ss / (n - 1.0)).sqrt())
        };
        for &i in &members {
            let centred = f64::from(rewards[i]) - mean;
            adv[i] = if norm_by_std {
                (centred / (std + GRPO_EPS)) as f32
            } else {
                centred as f32
            };
        }
    }
    Ok(adv)
}

/// RLOO outcome advantages (Ahmadian et al. 2024; verl `compute_rloo_outcome_advantage`).
///
/// For a group of `n > 1` rollouts: `adv_i = r_i - (sum_g - r_i)/(n-1) = (r_i - mean_g) * n/(n-1)`.
/// A group with a single rollout keeps `adv_i = r_i` (verl behaviour). Inputs and output have
/// length `B`.
pub fn rloo(rewards: &[f32], groups: &[u64]) -> Result<Vec<f32>, RlError> {
    check_len("rloo", rewards.len(), groups.len())?;
    let mut adv = rewards.to_vec();
    for members in group_members(groups) {
        let n = members.len() as f64;
        if members.len() < 2 {
            continue;
        }
        let sum = members.iter().map(|&i| f64::from(rewards[i])).sum::<f64>();
        for &i in &members {
            let r = f64::from(rewards[i]);
            adv[i] = (r - (sum - r) / (n - 1.0)) as f32;
        }
    }
    Ok(adv)
}

/// Masked whitening of an outcome reward broadcast over response tokens (verl `masked_whiten`
/// applied to `gamma = 1` returns).
///
/// Rollout `i` contributes `lengths[i]` tokens, each with value `rewards[i]`. With
/// `N = sum_i L_i`, `mu = sum_i L_i r_i / N`, `var = (sum_i L_i (r_i - mu)^2 / N) * N/(N-1)`,
/// the advantage is `adv_i = (r_i - mu) / sqrt(var + 1e-8)`.
///
/// Deviation from verl: verl raises when `N < 2`; here every advantage is then 0 (with one token
/// there is only one rollout, so `r_i - mu = 0` anyway) and the returned std is 0.
pub fn reinforce_pp(rewards: &[f32], lengths: &[usize]) -> Result<(Vec<f32>, Whitening), RlError> {
    check_len("reinforce_pp", rewards.len(), lengths.len())?;
    let n: usize = lengths.iter().sum();
    if n == 0 {
        return Ok((
            vec![0.0; rewards.len()],
            Whitening {
                mean: 0.0,
                std: 0.0,
                tokens: 0,
            },
        ));
    }
    let nf = n as f64;
    let mean = rewards
        .iter()
        .zip(lengths)
        .map(|(&r, &l)| f64::from(r) * l as f64)
        .sum::<f64>()
        / nf;
    if n < 2 {
        return Ok((
            vec![0.0; rewards.len()],
            Whitening {
                mean,
                std: 0.0,
                tokens: n,
            },
        ));
    }
    let biased = rewards
        .iter()
        .zip(lengths)
        .map(|(&r, &l)| (f64::from(r) - mean).powi(2) * l as f64)
        .sum::<f64>()
        / nf;
    let var = biased * nf / (nf - 1.0);
    let inv = 1.0 / (var + WHITEN_EPS).sqrt();
    let adv = rewards
        .iter()
        .map(|&r| ((f64::from(r) - mean) * inv) as f32)
        .collect();
    Ok((
        adv,
        Whitening {
            mean,
            std: var.sqrt(),
            tokens: n,
        },
    ))
}

/// Task-relative REINFORCE++ (AZR paper Eq. 8, `A = (r - mu_{task,role}) / sigma_{task,role}`):
/// [`reinforce_pp`] applied separately to the rollouts of each `(TaskKind, Role)` key.
///
/// `rewards`, `lengths`, `keys` have length `B`. Returns the `B` advantages and the whitening
/// statistics of every key present.
pub fn task_relative_reinforce_pp(
    rewards: &[f32],
    lengths: &[usize],
    keys: &[BaselineKey],
) -> Result<(Vec<f32>, BTreeMap<BaselineKey, Whitening>), RlError> {
    check_len("task_relative_reinforce_pp", rewards.len(), lengths.len())?;
    check_len("task_relative_reinforce_pp", rewards.len(), keys.len())?;
    let mut by_key: BTreeMap<BaselineKey, Vec<usize>> = BTreeMap::new();
    for (i, k) in keys.iter().enumerate() {
        by_key.entry(*k).or_default().push(i);
    }
    let mut adv = vec![0.0f32; rewards.len()];
    let mut stats = BTreeMap::new();
    for (key, members) in by_key {
        let r: Vec<f32> = members.iter().map(|&i| rewards[i]).collect();
        let l: Vec<usize> = members.iter().map(|&i| lengths[i]).collect();
        let (a, w) = reinforce_pp(&r, &l)?;
        for (&i, v) in members.iter().zip(a) {
            adv[i] = v;
        }
        stats.insert(key, w);
    }
    Ok((adv, stats))
}

/// Advantages of a batch of rollouts under `estimator`: one value per rollout, in order.
///
/// Groups come from `ScoredRollout::group`, TRR++ keys from `(task, role)`, token counts from
/// `response_ids.len()`.
pub fn compute(
    estimator: AdvantageEstimator,
    rollouts: &[ScoredRollout],
) -> Result<Vec<f32>, RlError> {
    let rewards: Vec<f32> = rollouts.iter().map(|r| r.reward).collect();
    match estimator {
        AdvantageEstimator::Grpo { norm_by_std } => {
            let groups: Vec<u64> = rollouts.iter().map(|r| r.group).collect();
            grpo(&rewards, &groups, norm_by_std)
        }
        AdvantageEstimator::Rloo => {
            let groups: Vec<u64> = rollouts.iter().map(|r| r.group).collect();
            rloo(&rewards, &groups)
        }
        AdvantageEstimator::ReinforcePlusPlus => {
            let lengths: Vec<usize> = rollouts.iter().map(|r| r.response_ids.len()).collect();
            Ok(reinforce_pp(&rewards, &lengths)?.0)
        }
        AdvantageEstimator::TaskRelativeReinforcePlusPlus => {
            let lengths: Vec<usize> = rollouts.iter().map(|r| r.response_ids.len()).collect();
            let keys: Vec<BaselineKey> = rollouts.iter().map(|r| (r.task, r.role)).collect();
            Ok(task_relative_reinforce_pp(&rewards, &lengths, &keys)?.0)
        }
    }
}

/// A seeded random permutation of `rewards`, for the shuffled-reward control runs (the reward
/// signal is kept in distribution but decoupled from the responses). Deterministic in `seed`
/// (ChaCha8 + Fisher-Yates).
pub fn shuffle_rewards(rewards: &[f32], seed: u64) -> Vec<f32> {
    let mut out = rewards.to_vec();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    out.shuffle(&mut rng);
    out
}

/// Advantages of a batch in which some rollouts have **no reward** (`rewarded[i] == false`: the
/// sandbox or the engine failed, so the outcome is unknown). Those rollouts are left out of every
/// statistic the estimator computes (group means and stds, whitening means and variances) and
/// get `None`; the others get exactly what [`compute`] gives on the rewarded subset. An
/// infrastructure failure is thereby never scored as a 0 or -1 reward.
pub fn compute_partial(
    estimator: AdvantageEstimator,
    rollouts: &[ScoredRollout],
    rewarded: &[bool],
) -> Result<Vec<Option<f32>>, RlError> {
    check_len("compute_partial", rollouts.len(), rewarded.len())?;
    let present: Vec<ScoredRollout> = rollouts
        .iter()
        .zip(rewarded)
        .filter(|(_, &ok)| ok)
        .map(|(r, _)| r.clone())
        .collect();
    let mut adv = compute(estimator, &present)?.into_iter();
    Ok(rewarded
        .iter()
        .map(|&ok| if ok { adv.next() } else { None })
        .collect())
}
