//! Rewards for the solver and the proposer (AZR Eq. 4-6, with AZR's code as the default), with
//! partial credit.
//!
//! A task type's check gives a [`Score`]: a value in [0, 1] and a [`Verdict`] label. The
//! [`RewardConfig`] maps it to the reward:
//! * Solver: `correct` (1) for full credit, `wrong` (-0.5) for a well-formatted answer with no
//!   credit, `format_error` (-1) if the format is broken, and for partial credit `s` the linear
//!   interpolation `wrong + s * (correct - wrong)` (or `wrong` with `partial_credit = false`).
//! * Proposer: `invalid` (-1) for a proposal that does not parse or validate; otherwise the
//!   learnability `1 - s` where `s` is the mean solve score of `mc_samples` (8) solver samples,
//!   and `extreme` when `s` is 0 or 1 (AZR's code: -0.5, the paper's Eq. 4: 0).
//!
//! [`solver_reward`] is the whole solve-side computation (parse, check, map) that the reward
//! actor runs per generation.
//!
//! **Diversity term** (`diversity`, λ, default 0: off, today's reward exactly). A valid proposal
//! whose program shape ([`super::novelty`]) is *not novel*, i.e. already in the pretraining
//! corpus or in the task store's memory of the shapes admitted to the buffers, gets
//! `learnability - λ`; a novel one keeps its learnability ([`RewardConfig::proposer_with_shape`]).
//! This is the persistent-memory variant of R-Zero's `min(p, 1 - p) - cluster_share` rather than
//! the batch share: it penalises exactly what the novelty metric counts (imitating the corpus or
//! repeating an earlier proposal, not only a duplicate within one batch), it is computed per
//! proposal as it streams through the reward actor (no batch has to be gathered, so it works at
//! any staleness), and it survives a resume with the checkpointed memory. With λ at most
//! `extreme - invalid` (0.5 by default) a valid proposal never scores below an invalid one.
//!
//! **Repetition term** (`repetition`, μ, default 0: off). A valid proposal whose shape had share
//! `c` of its kind's earlier admitted proposals ([`super::novelty::ShapeSeen::share`]) gets
//! `learnability - μ·c`. The diversity term is nearly a constant: almost every proposal of a small
//! model repeats some shape, so it shifts all valid proposals alike and leaves their advantages
//! (normalised within the batch) almost unchanged. The repetition term instead ranks them: a
//! proposer that collapses onto one program shape (a few steps at a large learning rate make the
//! tiny model propose `len(x)` for a third of its tasks) loses reward on exactly that shape, and
//! rarely seen or new shapes win, the count-based form of R-Zero's `cluster_share`. Since
//! `c <= 1`, μ at most `extreme - invalid - λ` keeps every valid proposal at or above an invalid
//! one.
//!
//! Both terms apply only to kinds whose proposer writes the program
//! ([`super::Proposer::writes_program`]; the reward actor passes no shape otherwise). Induction
//! proposes inputs for a buffered program, whose shape is never novel: with the terms on it, every
//! valid induction proposal lost λ whatever it did, and at λ = 0.75, μ = 1 on
//! `assets/chain-half-base` the induction proposer stopped proposing validly (docs/evidence.md).

use super::novelty::ShapeSeen;
use super::{Graded, Score, Task, TaskType, Verdict};
use crate::executor::Executor;
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
    /// Partly correct answers (score `s` strictly between 0 and 1) get
    /// `wrong + s * (correct - wrong)`; false: they get `wrong`, as a binary reward would
    /// (default true).
    pub partial_credit: bool,
    /// Proposer reward for an invalid or unparsable proposal (default -1.0).
    pub invalid: f32,
    /// Proposer reward when the solve rate is exactly 0 or 1 (default -0.5 as in AZR's code;
    /// the paper's Eq. 4 uses 0).
    pub extreme: f32,
    /// Monte Carlo solver samples per valid proposal (default 8).
    pub mc_samples: usize,
    /// **Control runs only.** Replaces every solver reward by an uninformative or format-only
    /// one ([`RewardControl`]); default `none` (the true reward).
    pub control: RewardControl,
    /// Probability of the `correct` reward under `control = "random"` (default 0.5).
    pub control_p: f32,
    /// Diversity penalty λ subtracted from the reward of a valid proposal whose program shape is
    /// not novel (default 0: off; see the module docs).
    pub diversity: f32,
    /// Repetition penalty μ: a valid proposal loses `μ` times the share of its kind's earlier
    /// admitted proposals that had its program shape (default 0: off; see the module docs).
    pub repetition: f32,
}

/// A reward control for the solver, the baselines the "Spurious Rewards" critique of RLVR asks
/// for: a gain with the true reward counts only beyond what these give in the same budget.
/// Proposer rewards and the Monte Carlo solve rates are not affected (the shuffled-reward
/// control, `learner.shuffle_rewards`, covers both roles).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RewardControl {
    /// The true reward.
    #[default]
    None,
    /// `correct` with probability `control_p`, else `wrong`, drawn per sample independently
    /// of the answer (seeded, so a rerun draws the same rewards).
    Random,
    /// `correct` for any well-formed answer (right or wrong), `format_error` otherwise.
    Format,
}

impl Default for RewardConfig {
    fn default() -> Self {
        Self {
            correct: 1.0,
            wrong: -0.5,
            format_error: -1.0,
            partial_credit: true,
            invalid: -1.0,
            extreme: -0.5,
            mc_samples: 8,
            control: RewardControl::None,
            control_p: 0.5,
            diversity: 0.0,
            repetition: 0.0,
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
    /// Valid, with the solver's mean solve score over the Monte Carlo samples.
    Valid {
        /// Mean solve score in [0, 1].
        solve_rate: f32,
    },
}

impl RewardConfig {
    /// Solver reward of a score.
    pub fn solver(&self, score: Score) -> f32 {
        match score.verdict {
            Verdict::Correct => self.correct,
            Verdict::Wrong => self.wrong,
            Verdict::FormatError => self.format_error,
            Verdict::Partial if self.partial_credit => {
                let s = score.value.clamp(0.0, 1.0);
                self.wrong + s * (self.correct - self.wrong)
            }
            Verdict::Partial => self.wrong,
        }
    }

    /// Solver reward of a score under the configured [`RewardControl`]; `draw` is a uniform
    /// number in [0, 1) for this sample (used by `random` only).
    pub fn controlled_solver(&self, score: Score, draw: f32) -> f32 {
        match self.control {
            RewardControl::None => self.solver(score),
            RewardControl::Random if draw < self.control_p => self.correct,
            RewardControl::Random => self.wrong,
            RewardControl::Format if score.verdict == Verdict::FormatError => self.format_error,
            RewardControl::Format => self.correct,
        }
    }

    /// Learnability reward of a valid proposal with mean solve score `solve_rate`.
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

    /// Proposer reward of an outcome with the diversity and repetition terms: a valid proposal
    /// whose program shape is known (`shape` is `Some`) gets
    /// `learnability - diversity·[not novel] - repetition·share`; everything else gets
    /// [`RewardConfig::proposer`].
    pub fn proposer_with_shape(&self, outcome: ProposalOutcome, shape: Option<&ShapeSeen>) -> f32 {
        let r = self.proposer(outcome);
        match (outcome, shape) {
            (ProposalOutcome::Valid { .. }, Some(s)) => {
                let diversity = if s.novel { 0.0 } else { self.diversity };
                r - diversity - self.repetition * s.share.clamp(0.0, 1.0)
            }
            _ => r,
        }
    }
}

/// Mean solve score of Monte Carlo samples (format errors count 0, partial credit its value);
/// 0 for none. With binary checks this is the fraction solved.
pub fn solve_rate(scores: &[Score]) -> f32 {
    if scores.is_empty() {
        return 0.0;
    }
    let total: f32 = scores.iter().map(|s| s.value.clamp(0.0, 1.0)).sum();
    total / scores.len() as f32
}

/// One graded solver generation with its reward.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SolveReward {
    /// Score, label and parsed answer.
    pub graded: Graded,
    /// The reward the configuration gives the score.
    pub reward: f32,
}

/// Parse and check a solver generation with its task type and map the score to the reward:
/// what the reward actor computes for each solver generation.
pub fn solver_reward(
    task_type: &dyn TaskType,
    task: &Task,
    text: &str,
    exec: &Executor,
    cfg: &RewardConfig,
) -> SolveReward {
    let graded = task_type.grade(task, text, exec);
    SolveReward {
        reward: cfg.solver(graded.score),
        graded,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solver_rewards() {
        let r = RewardConfig::default();
        assert_eq!(r.solver(Score::correct()), 1.0);
        assert_eq!(r.solver(Score::wrong()), -0.5);
        assert_eq!(r.solver(Score::format_error()), -1.0);
    }

    #[test]
    fn controls_replace_the_solver_reward() {
        let mut r = RewardConfig {
            correct: 1.0,
            wrong: 0.0,
            format_error: 0.0,
            ..RewardConfig::default()
        };
        // None: the true reward whatever the draw.
        assert_eq!(r.controlled_solver(Score::wrong(), 0.0), 0.0);
        assert_eq!(r.controlled_solver(Score::correct(), 0.99), 1.0);
        // Random: Bernoulli(p) on the draw, whatever the answer.
        r.control = RewardControl::Random;
        assert_eq!(r.controlled_solver(Score::wrong(), 0.49), 1.0);
        assert_eq!(r.controlled_solver(Score::correct(), 0.5), 0.0);
        assert_eq!(r.controlled_solver(Score::format_error(), 0.1), 1.0);
        r.control_p = 0.2;
        assert_eq!(r.controlled_solver(Score::correct(), 0.3), 0.0);
        // Format: any well-formed answer earns `correct`.
        r.control = RewardControl::Format;
        assert_eq!(r.controlled_solver(Score::wrong(), 0.0), 1.0);
        assert_eq!(r.controlled_solver(Score::fraction(1, 3), 0.0), 1.0);
        assert_eq!(r.controlled_solver(Score::format_error(), 0.0), 0.0);
    }

    #[test]
    fn partial_credit_interpolates_between_wrong_and_correct() {
        let r = RewardConfig::default();
        // 3 of 4 hidden tests: -0.5 + 0.75 * 1.5 = 0.625.
        let s = Score::fraction(3, 4);
        assert_eq!(s.verdict, Verdict::Partial);
        assert_eq!(s.value, 0.75);
        assert_eq!(r.solver(s), 0.625);
        // 1 of 4: -0.5 + 0.25 * 1.5 = -0.125.
        assert_eq!(r.solver(Score::fraction(1, 4)), -0.125);
        // 0 of n is wrong, n of n correct, 0 of 0 wrong.
        assert_eq!(Score::fraction(0, 4), Score::wrong());
        assert_eq!(Score::fraction(4, 4), Score::correct());
        assert_eq!(Score::fraction(0, 0), Score::wrong());
        // A binary configuration gives partial answers the wrong reward.
        let binary = RewardConfig {
            partial_credit: false,
            ..RewardConfig::default()
        };
        assert_eq!(binary.solver(Score::fraction(3, 4)), -0.5);
        // Other scales: correct 1, wrong 0 -> the reward is the fraction itself.
        let frac = RewardConfig {
            wrong: 0.0,
            ..RewardConfig::default()
        };
        assert_eq!(frac.solver(Score::fraction(2, 5)), 0.4);
        // A score compares equal to its label.
        assert!(Score::fraction(1, 2) == Verdict::Partial);
    }

    #[test]
    fn proposer_rewards_follow_azr_code_and_paper() {
        let r = RewardConfig::default();
        let v = [
            Score::correct(),
            Score::wrong(),
            Score::format_error(),
            Score::correct(),
            Score::wrong(),
            Score::wrong(),
            Score::wrong(),
            Score::wrong(),
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
        // Partial credit counts its value: (1 + 0.5 + 0) / 4 = 0.375, learnability 0.625.
        let p = [
            Score::correct(),
            Score::fraction(1, 2),
            Score::wrong(),
            Score::format_error(),
        ];
        assert_eq!(solve_rate(&p), 0.375);
        assert_eq!(r.learnability(solve_rate(&p)), 0.625);
    }

    /// A shape seen by the reward: `novel`, with `share` of the kind's earlier proposals.
    fn seen(novel: bool, share: f32) -> ShapeSeen {
        ShapeSeen {
            shape: "def v0 ( v1 ) :\n return v1".into(),
            novel,
            share,
        }
    }

    #[test]
    fn the_diversity_term_penalises_valid_proposals_that_are_not_novel() {
        let valid = |s| ProposalOutcome::Valid { solve_rate: s };
        let (new, old) = (seen(true, 0.0), seen(false, 0.5));
        // Off by default: every outcome keeps its reward, novel or not, repeated or not.
        let off = RewardConfig::default();
        for o in [valid(0.25), valid(1.0), ProposalOutcome::Invalid] {
            for n in [None, Some(&new), Some(&old)] {
                assert_eq!(off.proposer_with_shape(o, n), off.proposer(o));
            }
        }
        let r = RewardConfig {
            diversity: 0.5,
            ..RewardConfig::default()
        };
        let old = seen(false, 0.0);
        // Not novel: learnability - 0.5. Solve rate 1/4: 0.75 - 0.5 = 0.25.
        assert_eq!(r.proposer_with_shape(valid(0.25), Some(&old)), 0.25);
        // Always solved (extreme, -0.5), not novel: -1.0, as low as an invalid proposal.
        assert_eq!(r.proposer_with_shape(valid(1.0), Some(&old)), -1.0);
        // Novel, or of unknown shape: the learnability.
        assert_eq!(r.proposer_with_shape(valid(0.25), Some(&new)), 0.75);
        assert_eq!(r.proposer_with_shape(valid(0.75), None), 0.25);
        // Invalid and unparsable proposals have no shape to judge.
        assert_eq!(
            r.proposer_with_shape(ProposalOutcome::Invalid, Some(&old)),
            -1.0
        );
        assert_eq!(
            r.proposer_with_shape(ProposalOutcome::FormatError, Some(&old)),
            -1.0
        );
    }

    #[test]
    fn the_repetition_term_scales_with_the_shapes_share() {
        let valid = |s| ProposalOutcome::Valid { solve_rate: s };
        let r = RewardConfig {
            repetition: 0.5,
            ..RewardConfig::default()
        };
        // Learnability 1 - 0.25 = 0.75, less 0.5 x share.
        assert_eq!(
            r.proposer_with_shape(valid(0.25), Some(&seen(false, 0.0))),
            0.75
        );
        assert_eq!(
            r.proposer_with_shape(valid(0.25), Some(&seen(false, 0.5))),
            0.5
        );
        assert_eq!(
            r.proposer_with_shape(valid(0.25), Some(&seen(true, 0.0))),
            0.75
        );
        // Extreme (-0.5) and always repeated (share 1): -1.0, never below an invalid proposal.
        assert_eq!(
            r.proposer_with_shape(valid(1.0), Some(&seen(false, 1.0))),
            -1.0
        );
        // With both terms: 0.75 - 0.25 (not novel) - 0.5 x 0.5 = 0.25.
        let both = RewardConfig {
            diversity: 0.25,
            ..r.clone()
        };
        assert_eq!(
            both.proposer_with_shape(valid(0.25), Some(&seen(false, 0.5))),
            0.25
        );
        // Unknown shape or an invalid proposal: no term applies.
        assert_eq!(r.proposer_with_shape(valid(0.25), None), 0.75);
        assert_eq!(
            r.proposer_with_shape(ProposalOutcome::Invalid, Some(&seen(false, 1.0))),
            -1.0
        );
    }
}
