//! `[tasks]` configuration: templates, reference counts, induction sizes, rewards and buffers.

use super::buffer::BufferConfig;
use super::rewards::RewardConfig;
use super::template::TemplateError;
use crate::pretrain::chains::ChainSplit;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Settings of the induction task type (`[tasks.induction]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InductionConfig {
    /// Inputs the proposer writes per program (AZR: 10).
    pub num_inputs: usize,
    /// How many of them the solver sees; the rest are hidden checks (AZR: half, 5).
    pub num_visible: usize,
}

impl Default for InductionConfig {
    fn default() -> Self {
        Self {
            num_inputs: 10,
            num_visible: 5,
        }
    }
}

/// Task settings (`[tasks]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TasksConfig {
    /// Template set: `paper`, `compact` (built in) or a path to a TOML file. Default `paper`.
    pub templates: String,
    /// Reference tasks shown to deduction/abduction proposers (AZR `io_n`: 6).
    pub references: usize,
    /// Reject programs with more than one `def` (AZR: true).
    pub reject_multiple_functions: bool,
    /// Induction sizes.
    pub induction: InductionConfig,
    /// Reward values.
    pub rewards: RewardConfig,
    /// Buffer settings.
    pub buffer: BufferConfig,
    /// Share of the chain shapes the base model's pretraining held out (its `[corpus]
    /// chain_unseen`): 0.25, 0.5 or 0.75. Novelty counts the other chain shapes as the corpus's
    /// ([`crate::tasks::novelty::corpus_shapes_for`]). Default 0.25 (`assets/chain-base`; for a
    /// template-only base it only makes novelty stricter).
    pub chain_unseen: f64,
    /// Settings of further task kinds, `[tasks.kind.<name>]`, each read by its task type with
    /// [`TasksConfig::kind_settings`] (default: empty, every kind uses its defaults).
    pub kind: BTreeMap<String, toml::Table>,
}

impl Default for TasksConfig {
    fn default() -> Self {
        Self {
            templates: "paper".to_string(),
            references: 6,
            reject_multiple_functions: true,
            induction: InductionConfig::default(),
            rewards: RewardConfig::default(),
            buffer: BufferConfig::default(),
            chain_unseen: 0.25,
            kind: BTreeMap::new(),
        }
    }
}

/// Errors in the `[tasks]` section.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A value is out of range.
    #[error("tasks.{key}: {reason}")]
    Invalid {
        /// Key path below `tasks`.
        key: &'static str,
        /// Why.
        reason: String,
    },
}

impl TasksConfig {
    /// The `[tasks.kind.<name>]` settings of a task kind read into its settings struct, or the
    /// struct's defaults when the table is absent.
    pub fn kind_settings<T: DeserializeOwned + Default>(
        &self,
        name: &str,
    ) -> Result<T, TemplateError> {
        match self.kind.get(name) {
            None => Ok(T::default()),
            Some(table) => {
                table
                    .clone()
                    .try_into()
                    .map_err(|e: toml::de::Error| TemplateError::Settings {
                        kind: name.to_string(),
                        message: e.message().to_string(),
                    })
            }
        }
    }

    /// The chain split of `chain_unseen` (the default quarter if the value is invalid, which
    /// [`Self::validate`] rejects).
    pub fn chain_split(&self) -> ChainSplit {
        ChainSplit::from_share(self.chain_unseen).unwrap_or_default()
    }

    /// Cross-field checks.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key, reason: &str| {
            Err(ConfigError::Invalid {
                key,
                reason: reason.to_string(),
            })
        };
        if self.references == 0 {
            return bad("references", "must be at least 1");
        }
        if self.induction.num_visible == 0
            || self.induction.num_visible >= self.induction.num_inputs
        {
            return bad(
                "induction.num_visible",
                "must be at least 1 and below induction.num_inputs (some pairs must stay hidden)",
            );
        }
        if ChainSplit::from_share(self.chain_unseen).is_none() {
            return Err(ConfigError::Invalid {
                key: "chain_unseen",
                reason: format!("must be one of {:?}", ChainSplit::SHARES),
            });
        }
        if self.rewards.mc_samples == 0 {
            return bad("rewards.mc_samples", "must be at least 1");
        }
        for (key, penalty) in [
            ("rewards.diversity", self.rewards.diversity),
            ("rewards.repetition", self.rewards.repetition),
        ] {
            if !(penalty >= 0.0 && penalty.is_finite()) {
                return bad(key, "must be a finite number at least 0");
            }
        }
        if self.buffer.capacity == 0 {
            return bad("buffer.capacity", "must be at least 1");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_azr_and_partial_toml_fills_in() {
        let c: TasksConfig =
            toml::from_str("references = 3\n[induction]\nnum_inputs = 6\nnum_visible = 3").unwrap();
        assert_eq!(c.references, 3);
        assert_eq!(c.induction.num_inputs, 6);
        assert_eq!(c.rewards, RewardConfig::default());
        assert!(c.validate().is_ok());
        let d = TasksConfig::default();
        assert_eq!(
            (
                d.references,
                d.induction.num_inputs,
                d.induction.num_visible
            ),
            (6, 10, 5)
        );
        assert!(toml::from_str::<TasksConfig>("refs = 3").is_err());
        let mut bad = d.clone();
        bad.induction.num_visible = 10;
        assert!(bad.validate().is_err());
    }

    #[test]
    fn negative_or_infinite_shape_penalties_name_their_key() {
        let key_of = |c: &TasksConfig| match c.validate() {
            Err(ConfigError::Invalid { key, .. }) => key.to_string(),
            other => panic!("{other:?}"),
        };
        let mut c = TasksConfig::default();
        c.rewards.repetition = -0.5;
        assert_eq!(key_of(&c), "rewards.repetition");
        c.rewards.repetition = f32::INFINITY;
        assert_eq!(key_of(&c), "rewards.repetition");
        c.rewards.repetition = 0.5;
        c.rewards.diversity = f32::NAN;
        assert_eq!(key_of(&c), "rewards.diversity");
        c.rewards.diversity = 0.5;
        assert!(c.validate().is_ok());
    }
}
