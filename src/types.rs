//! Plain data shared by every part of the system. Everything here is `serde` so it can be
//! checkpointed, dumped to JSONL and, one day, sent between machines.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Monotonic version of the policy weights; bumped by the learner after every optimizer step.
pub type PolicyVersion = u64;

/// The kind of a task: the name a task type is registered under in the
/// [`TaskRegistry`](crate::tasks::TaskRegistry) (`deduction`, `abduction`, `induction`, `math`,
/// `synthesis`, or any name a user registers).
///
/// A kind is a name, not a closed enum: nothing outside the registry lists the kinds. Names are
/// lower-case ASCII letters, digits, `_` and `-`, starting with a letter, at most 32 bytes (they
/// become config values, metric labels and file names). Two kinds are equal when their names
/// are; ordering is by name. `Copy`: the name is `&'static str` (names read at run time, from a
/// config or a checkpoint, are interned once per distinct name).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskKind(&'static str);

/// Why a string is not a task kind name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid task kind name `{0}`: use 1-32 lower-case ASCII letters, digits, `_` or `-`, starting with a letter")]
pub struct KindNameError(pub String);

const fn valid_kind_name(name: &str) -> bool {
    let b = name.as_bytes();
    if b.is_empty() || b.len() > 32 || !b[0].is_ascii_lowercase() {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_' || c == b'-') {
            return false;
        }
        i += 1;
    }
    true
}

// The built-in kinds keep the spelling of the former enum variants, so `TaskKind::Deduction`
// reads (and matches) as before.
#[allow(non_upper_case_globals)]
impl TaskKind {
    /// Program + input -> predict the output (AZR `code_o`).
    pub const Deduction: TaskKind = TaskKind::from_static("deduction");
    /// Program + output -> find an input producing it (AZR `code_i`).
    pub const Abduction: TaskKind = TaskKind::from_static("abduction");
    /// Input/output pairs + message -> write the program (AZR `code_f`).
    pub const Induction: TaskKind = TaskKind::from_static("induction");
    /// A math problem with a reference answer in `\boxed{}` (solve only).
    pub const Math: TaskKind = TaskKind::from_static("math");
}

impl TaskKind {
    /// The three AZR self-play kinds, in the order AZR processes them (the default of
    /// `selfplay.task_kinds`; the registry, not this list, says which kinds exist).
    pub const CODE: [TaskKind; 3] = [
        TaskKind::Abduction,
        TaskKind::Deduction,
        TaskKind::Induction,
    ];

    /// A kind from a name known at compile time; an invalid name fails the build (in a `const`)
    /// or panics.
    pub const fn from_static(name: &'static str) -> TaskKind {
        assert!(valid_kind_name(name), "invalid task kind name");
        TaskKind(name)
    }

    /// A kind from a name read at run time (config, checkpoint, command line). Checks the
    /// syntax only; whether a task type is registered under it is the registry's business
    /// ([`TaskRegistry::resolve`](crate::tasks::TaskRegistry::resolve)).
    pub fn new(name: &str) -> Result<TaskKind, KindNameError> {
        if !valid_kind_name(name) {
            return Err(KindNameError(name.to_string()));
        }
        static NAMES: std::sync::OnceLock<
            std::sync::Mutex<std::collections::HashSet<&'static str>>,
        > = std::sync::OnceLock::new();
        let names = NAMES.get_or_init(Default::default);
        // A poisoned lock only means another thread panicked while inserting; the set is intact.
        let mut names = names.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = names.get(name) {
            return Ok(TaskKind(n));
        }
        // Leaked once per distinct name: kinds are few and live for the whole process.
        let leaked: &'static str = Box::leak(name.to_string().into_boxed_str());
        names.insert(leaked);
        Ok(TaskKind(leaked))
    }

    /// The name, used in configs, metric labels and file names.
    pub fn as_str(self) -> &'static str {
        self.0
    }
}

impl fmt::Debug for TaskKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TaskKind({})", self.0)
    }
}

impl fmt::Display for TaskKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for TaskKind {
    type Err = KindNameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TaskKind::new(s)
    }
}

impl Serialize for TaskKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0)
    }
}

impl<'de> Deserialize<'de> for TaskKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        TaskKind::new(&name).map_err(serde::de::Error::custom)
    }
}

/// A group id unique per (step, task kind, role, prompt index): GRPO / RLOO groups are the
/// rollouts sampled from one prompt. A 64-bit FNV-1a hash of the four, so any number of kinds
/// gets distinct ids (two different keys collide with probability about 2^-64).
pub fn group_id(step: u64, kind: TaskKind, role: Role, index: usize) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    eat(&step.to_le_bytes());
    eat(kind.as_str().as_bytes());
    eat(&[0xff, role as u8]);
    eat(&(index as u64).to_le_bytes());
    h
}

/// The role the policy plays when producing a sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Writes a new task (program + input(s)).
    Propose,
    /// Answers a task.
    Solve,
}

impl Role {
    /// Both roles.
    pub const ALL: [Role; 2] = [Role::Propose, Role::Solve];

    /// Lower-case name, used in metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Propose => "propose",
            Role::Solve => "solve",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The key of one of AZR's six task-relative baselines (task kind x role).
pub type BaselineKey = (TaskKind, Role);

/// One sampled sequence, scored, as the learner consumes it.
///
/// `response_ids` and `sample_logprobs` have the same length: the log-prob, under the policy
/// that sampled it (`policy_version`), of each generated token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoredRollout {
    /// Prompt token ids (no padding).
    pub prompt_ids: Vec<u32>,
    /// Generated token ids (no padding), including the stop token if one was produced.
    pub response_ids: Vec<u32>,
    /// Per-token log-probs of `response_ids` under the sampling policy.
    pub sample_logprobs: Vec<f32>,
    /// Scalar sequence reward.
    pub reward: f32,
    /// Task kind this sequence belongs to.
    pub task: TaskKind,
    /// Role the policy played.
    pub role: Role,
    /// Rollouts sharing a `group` were sampled from the same prompt (GRPO / RLOO groups).
    pub group: u64,
    /// Policy version that generated the sequence (for staleness accounting).
    pub policy_version: PolicyVersion,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_names() {
        let k: TaskKind = "deduction".parse().unwrap();
        assert_eq!(k, TaskKind::Deduction);
        assert_eq!(TaskKind::new("my_kind-2").unwrap().as_str(), "my_kind-2");
        assert_eq!(
            TaskKind::new("my_kind-2").unwrap(),
            TaskKind::new("my_kind-2").unwrap()
        );
        for bad in ["", "Deduction", "1x", "a b", "x".repeat(33).as_str()] {
            assert!(TaskKind::new(bad).is_err(), "{bad:?}");
        }
        let json = serde_json::to_string(&TaskKind::Math).unwrap();
        assert_eq!(json, "\"math\"");
        let back: TaskKind = serde_json::from_str("\"synthesis\"").unwrap();
        assert_eq!(back.to_string(), "synthesis");
        assert!(serde_json::from_str::<TaskKind>("\"Bad Name\"").is_err());
    }

    #[test]
    fn group_ids_differ_per_kind_role_and_index() {
        let a = TaskKind::new("alpha").unwrap();
        let b = TaskKind::new("beta").unwrap();
        let mut ids = std::collections::HashSet::new();
        for kind in [a, b, TaskKind::Deduction, TaskKind::Math] {
            for role in Role::ALL {
                for i in 0..100 {
                    assert!(ids.insert(group_id(7, kind, role, i)));
                }
            }
        }
        assert_eq!(
            group_id(7, a, Role::Solve, 3),
            group_id(7, a, Role::Solve, 3)
        );
        assert_ne!(
            group_id(7, a, Role::Solve, 3),
            group_id(8, a, Role::Solve, 3)
        );
    }
}
