//! Per-step numbers: what the step log line prints and the gauges report.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use azr_core::types::{Role, TaskKind};
use serde::{Deserialize, Serialize};

/// Running statistics of one (task kind, role) sub-batch.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SubBatchStats {
    /// Sequences.
    pub count: usize,
    /// Sum of rewards.
    pub reward_sum: f64,
    /// Solver: correct answers. Proposer: valid proposals.
    pub hits: usize,
    /// Proposer: sum of the learnability rewards of valid proposals.
    pub learnability_sum: f64,
    /// Response tokens.
    pub tokens: usize,
    /// Samples without a reward (infrastructure failure; not trained on).
    pub unrewarded: usize,
}

impl SubBatchStats {
    /// Mean reward of the rewarded samples (0 for none).
    pub fn reward_mean(&self) -> f64 {
        self.reward_sum / (self.count - self.unrewarded.min(self.count)).max(1) as f64
    }

    /// Proposer: mean learnability reward of the valid proposals (0 when none was valid).
    pub fn learnability_mean(&self) -> f64 {
        self.learnability_sum / self.hits.max(1) as f64
    }

    /// Hit rate: solver accuracy or valid-proposal rate.
    pub fn hit_rate(&self) -> f64 {
        self.hits as f64 / self.count.max(1) as f64
    }
}

/// What one step's rollouts looked like.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StepSummary {
    /// Per (kind, role).
    pub sub: BTreeMap<(TaskKind, Role), SubBatchStats>,
}

impl StepSummary {
    /// The stats of a (kind, role), created on first use.
    pub fn entry(&mut self, kind: TaskKind, role: Role) -> &mut SubBatchStats {
        self.sub.entry((kind, role)).or_default()
    }

    /// Total response tokens.
    pub fn tokens(&self) -> usize {
        self.sub.values().map(|s| s.tokens).sum()
    }

    /// Total sequences.
    pub fn sequences(&self) -> usize {
        self.sub.values().map(|s| s.count).sum()
    }

    /// A compact text: `ded p=0.50/-0.31 l=0.25 s=0.25/+0.12 | abd ...` (proposer valid rate /
    /// mean reward, mean learnability of the valid proposals; solver accuracy / mean reward).
    pub fn compact(&self) -> String {
        let mut out = String::new();
        let mut last: Option<TaskKind> = None;
        for ((kind, role), s) in &self.sub {
            if last != Some(*kind) {
                if last.is_some() {
                    out.push_str(" |");
                }
                let _ = write!(out, " {}", &kind.as_str()[..3]);
                last = Some(*kind);
            }
            match role {
                Role::Propose => {
                    let _ = write!(
                        out,
                        " p={:.2}/{:+.2} l={:.2}",
                        s.hit_rate(),
                        s.reward_mean(),
                        s.learnability_mean()
                    );
                }
                Role::Solve => {
                    let _ = write!(out, " s={:.2}/{:+.2}", s.hit_rate(), s.reward_mean());
                }
            }
            if s.unrewarded > 0 {
                let _ = write!(out, " nr={}", s.unrewarded);
            }
        }
        out.trim_start().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn means_and_compact_text() {
        let mut s = StepSummary::default();
        let e = s.entry(TaskKind::Deduction, Role::Solve);
        e.count = 4;
        e.hits = 1;
        e.reward_sum = 1.0 - 0.5 * 2.0 - 1.0;
        let p = s.entry(TaskKind::Deduction, Role::Propose);
        p.count = 2;
        p.hits = 1;
        p.reward_sum = 0.5 - 1.0;
        p.learnability_sum = 0.5;
        assert_eq!(s.sequences(), 6);
        assert!((s.sub[&(TaskKind::Deduction, Role::Solve)].reward_mean() + 0.25).abs() < 1e-12);
        assert_eq!(s.compact(), "ded p=0.50/-0.25 l=0.50 s=0.25/-0.25");
    }
}
