//! The task registry: task kind name -> task type.
//!
//! Adding a task type means writing one module that implements [`TaskType`] (plus [`Proposer`]
//! when the policy proposes its tasks) and adding one `add` line to [`TaskRegistry::builtin`]
//! (or calling [`TaskRegistry::register`] from another crate). Everything that lists task
//! kinds (buffers, seeds, metric label sets, config checks, the corpus) asks the registry.

use super::abduction::Abduction;
use super::config::TasksConfig;
use super::deduction::Deduction;
use super::induction::Induction;
use super::math::Math;
use super::synthesis::Synthesis;
use super::template::{TemplateError, TemplateSet};
use super::{Proposer, TaskType};
use crate::types::{Role, TaskKind};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Errors resolving kinds against the registry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// No task type is registered under this name.
    #[error("unknown task kind `{kind}` (registered: {registered})")]
    Unknown {
        /// The name asked for.
        kind: String,
        /// The registered names, comma separated.
        registered: String,
    },
    /// The kind is registered but solve only, where proposals are needed (self-play).
    #[error(
        "task kind `{0}` is solve only (it has no proposer); self-play needs proposable kinds"
    )]
    NotProposable(TaskKind),
}

/// Task types by kind.
#[derive(Default)]
pub struct TaskRegistry {
    types: BTreeMap<TaskKind, Box<dyn TaskType>>,
}

impl std::fmt::Debug for TaskRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskRegistry")
            .field("kinds", &self.types.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Register the built-in type of section `name` when the template set has that section.
fn add<T: TaskType + 'static>(
    r: &mut TaskRegistry,
    templates: &TemplateSet,
    name: &str,
    build: impl FnOnce() -> Result<T, TemplateError>,
) -> Result<(), TemplateError> {
    if templates.has_section(name) {
        r.register(Box::new(build()?));
    } else {
        tracing::debug!(kind = name, templates = %templates.name, "no template section: kind not registered");
    }
    Ok(())
}

impl TaskRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Register a task type under its kind; returns the one it replaces, if any.
    pub fn register(&mut self, task_type: Box<dyn TaskType>) -> Option<Box<dyn TaskType>> {
        self.types.insert(task_type.kind(), task_type)
    }

    /// The built-in task types over one template set: each one whose section the set has (a
    /// file may leave out kinds it does not use). A present but malformed section is an error.
    pub fn builtin(templates: Arc<TemplateSet>, cfg: &TasksConfig) -> Result<Self, TemplateError> {
        let mut r = Self::new();
        let t = &templates;
        let (refs, multi) = (cfg.references, cfg.reject_multiple_functions);
        add(&mut r, t, "deduction", || {
            Deduction::new(t.clone(), refs, multi)
        })?;
        add(&mut r, t, "abduction", || {
            Abduction::new(t.clone(), refs, multi)
        })?;
        add(&mut r, t, "induction", || {
            Induction::new(t.clone(), cfg.induction.clone())
        })?;
        add(&mut r, t, "math", || Math::new(t.clone()))?;
        add(&mut r, t, "synthesis", || Synthesis::new(t.clone(), cfg))?;
        Ok(r)
    }

    /// The built-ins with the template set named in the config (`paper`, `compact` or a path).
    pub fn from_config(cfg: &TasksConfig) -> Result<Self, TemplateError> {
        let templates = Arc::new(TemplateSet::resolve(&cfg.templates)?);
        tracing::info!(templates = %templates.name, source = %cfg.templates, "task templates loaded");
        Self::builtin(templates, cfg)
    }

    /// The task type of `kind`.
    pub fn get(&self, kind: TaskKind) -> Option<&dyn TaskType> {
        self.types.get(&kind).map(|b| b.as_ref())
    }

    /// The proposing side of `kind`, when it is registered and proposable.
    pub fn proposer(&self, kind: TaskKind) -> Option<&dyn Proposer> {
        self.get(kind).and_then(|t| t.proposer())
    }

    /// Registered kinds, in name order.
    pub fn kinds(&self) -> Vec<TaskKind> {
        self.types.keys().copied().collect()
    }

    /// Registered kinds whose tasks the policy proposes.
    pub fn proposable(&self) -> Vec<TaskKind> {
        self.types
            .iter()
            .filter(|(_, t)| t.proposer().is_some())
            .map(|(k, _)| *k)
            .collect()
    }

    /// The (kind, role) pairs that exist: proposable kinds in both roles, the others solve only.
    pub fn task_roles(&self) -> Vec<(TaskKind, Role)> {
        self.types
            .iter()
            .flat_map(|(k, t)| {
                let roles: &[Role] = if t.proposer().is_some() {
                    &Role::ALL
                } else {
                    &[Role::Solve]
                };
                roles.iter().map(move |r| (*k, *r))
            })
            .collect()
    }

    /// The registered kind named `name`, or an error listing the registered ones.
    pub fn resolve(&self, name: &str) -> Result<TaskKind, RegistryError> {
        self.types
            .keys()
            .find(|k| k.as_str() == name)
            .copied()
            .ok_or_else(|| RegistryError::Unknown {
                kind: name.to_string(),
                registered: self
                    .types
                    .keys()
                    .map(|k| k.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// Check kinds chosen for self-play: each registered and proposable.
    pub fn check_proposable(&self, kinds: &[TaskKind]) -> Result<(), RegistryError> {
        for k in kinds {
            let kind = self.resolve(k.as_str())?;
            if self.proposer(kind).is_none() {
                return Err(RegistryError::NotProposable(kind));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_registry_has_all_kinds() {
        let r = TaskRegistry::from_config(&TasksConfig::default()).unwrap();
        for k in [
            TaskKind::Deduction,
            TaskKind::Abduction,
            TaskKind::Induction,
            TaskKind::Math,
        ] {
            assert!(r.kinds().contains(&k), "{k} registered");
        }
        assert!(!r.proposable().contains(&TaskKind::Math));
        assert!(r.proposer(TaskKind::Math).is_none());
        assert_eq!(r.proposer(TaskKind::Induction).unwrap().num_references(), 1);
        assert_eq!(r.proposer(TaskKind::Deduction).unwrap().num_references(), 6);
        assert!(r.task_roles().contains(&(TaskKind::Math, Role::Solve)));
        assert!(!r.task_roles().contains(&(TaskKind::Math, Role::Propose)));
        assert_eq!(r.resolve("deduction").unwrap(), TaskKind::Deduction);
        let err = r.resolve("dedution").unwrap_err().to_string();
        assert!(
            err.contains("dedution") && err.contains("deduction"),
            "{err}"
        );
        assert!(matches!(
            r.check_proposable(&[TaskKind::Math]),
            Err(RegistryError::NotProposable(_))
        ));
        fn assert_send_sync<T: Send + Sync>(_: &T) {}
        assert_send_sync(&r);
    }

    #[test]
    fn a_template_file_may_leave_out_kinds() {
        let mut text = crate::tasks::template::PAPER_TOML.to_string();
        let start = text.find("[math]").unwrap();
        let end = start + text[start..].find("[seed]").unwrap();
        text.replace_range(start..end, "");
        let ts = Arc::new(TemplateSet::from_toml(&text).unwrap());
        let r = TaskRegistry::builtin(ts, &TasksConfig::default()).unwrap();
        assert!(r.get(TaskKind::Math).is_none());
        assert!(r.get(TaskKind::Deduction).is_some());
    }
}
