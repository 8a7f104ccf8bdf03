//! Rewards for the solver and the proposer (AZR Eq. 4-6, with AZR's code as the default).
//!
//! * Solver: `correct` (1) if correct, `wrong` (-0.5) if well formatted but wrong,
//!   `format_error` (-1) if the format is broken.
//! * Proposer: `invalid` (-1) for a proposal that does not parse or validate; otherwise the
//!   learnability `1 - s` where `s` is the mean solve rate of `mc_samples` (8) solver samples, and
//!   `extreme` when `s` is 0 or 1 (AZR's code: -0.5, the paper's Eq. 4: 0).

use super::Verdict;
use serde::{Deserialize, Serialize};

/// Reward values (`[tasks.rewards]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RewardConfig {
    /// Solver reward for a correct answer (default 1.0).
    pub correct: f32,
    /// Solver reward for a well-formatted wrong answer (default -0.5).
    pub wrong: f32,
    /// Solver reward for a format error (default -1.0).
    pub format_error: f32,
    /// Proposer reward for an invalid or unparsable proposal (default -1.0).
    pub invalid: f32,
    /// Proposer reward when the solve rate is exactly 0 or 1 (default -0.5 as in AZR's code;
    /// the paper's Eq. 4 uses 0).
    pub extreme: f32,
    /// Monte Carlo solver samples per valid proposal (default 8).
    pub mc_samples: usize,
}

impl Default for RewardConfig {
    fn default() -> Self {
        Self {
            correct: 1.0,
            wrong: -0.5,
            format_error: -1.0,
            invalid: -1.0,
            extreme: -0.5,
            mc_samples: 8,
        }
    }
}

/// What happened to a proposal.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProposalOutcome {
    /// The generation did not parse.
    FormatError,
    /// It parsed but the executor rejected it.
    Invalid,
    /// Valid, with the solver's mean solve rate over the Monte Carlo samples.
    Valid {
        /// Mean solve rate in [0, 1].
        solve_rate: f32,
    },
}

impl RewardConfig {
    /// Solver reward of a verdict.
    pub fn solver(&self, verdict: Verdict) -> f32 {
        match verdict {
            Verdict::Correct => self.correct,
            Verdict::Wrong => self.wrong,
            Verdict::FormatError => self.format_error,
        }
    }

    /// Learnability reward of a valid proposal with mean solve rate `solve_rate`.
    pub fn learnability(&self, solve_rate: f32) -> f32 {
        if solve_rate <= 0.0 || solve_rate >= 1.0 {
            self.extreme
        } else {
            1.0 - solve_rate
        }
    }

    /// Proposer reward of an outcome.
    pub fn proposer(&self, outcome: ProposalOutcome) -> f32 {
        match outcome {
            ProposalOutcome::FormatError | ProposalOutcome::Invalid => self.invalid,
            ProposalOutcome::Valid { solve_rate } => self.learnability(solve_rate),
        }
    }
}

/// Mean solve rate of Monte Carlo verdicts (format errors count as unsolved); 0 for none.
pub fn solve_rate(verdicts: &[Verdict]) -> f32 {
    if verdicts.is_empty() {
        return 0.0;
    }
    let solved = verdicts.iter().filter(|v| **v == Verdict::Correct).count();
    solved as f32 / verdicts.len() as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solver_rewards() {
        let r = RewardConfig::default();
        assert_eq!(r.solver(Verdict::Correct), 1.0);
        assert_eq!(r.solver(Verdict::Wrong), -0.5);
        assert_eq!(r.solver(Verdict::FormatError), -1.0);
    }

    #[test]
    fn proposer_rewards_follow_azr_code_and_paper() {
        let r = RewardConfig::default();
        let v = [
            Verdict::Correct,
            Verdict::Wrong,
            Verdict::FormatError,
            Verdict::Correct,
            Verdict::Wrong,
            Verdict::Wrong,
            Verdict::Wrong,
            Verdict::Wrong,
        ];
        let s = solve_rate(&v);
        assert_eq!(s, 0.25);
        assert_eq!(r.proposer(ProposalOutcome::Valid { solve_rate: s }), 0.75);
        assert_eq!(r.proposer(ProposalOutcome::Valid { solve_rate: 0.0 }), -0.5);
        assert_eq!(r.proposer(ProposalOutcome::Valid { solve_rate: 1.0 }), -0.5);
        assert_eq!(r.proposer(ProposalOutcome::Invalid), -1.0);
        assert_eq!(r.proposer(ProposalOutcome::FormatError), -1.0);
        let paper = RewardConfig {
            extreme: 0.0,
            ..RewardConfig::default()
        };
        assert_eq!(paper.learnability(1.0), 0.0);
        assert_eq!(paper.learnability(0.5), 0.5);
        assert_eq!(solve_rate(&[]), 0.0);
    }
}
